use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::json;
use swarm::model::api;
use swarm::model::Task;

use super::*;

fn task(cs: api::TaskSpecContainerSpec) -> Task {
    let mut t = Task::default();
    t.api.id = Some("t1".into());
    t.api.service_id = Some("s1".into());
    t.api.node_id = Some("n1".into());
    t.api.slot = Some(2);
    t.service_name = "web".into();
    t.api.spec = Some(api::TaskSpec {
        container_spec: Some(cs),
        ..Default::default()
    });
    t
}

fn files() -> ContainerFiles {
    ContainerFiles {
        hostname: "/c/hostname".into(),
        hosts: "/c/hosts".into(),
        resolv_conf: "/c/resolv.conf".into(),
    }
}

fn image() -> serde_json::Value {
    json!({"config": {
        "Entrypoint": ["/bin/ep"],
        "Cmd": ["serve", "--port", "80"],
        "Env": ["PATH=/bin", "A=image"],
        "WorkingDir": "/srv",
        "User": "www",
        "Labels": {"from": "image"}
    }})
}

fn users() -> UserDb {
    UserDb::new("www:x:33:34::/:/bin/sh\n", "www-data:x:34:\nstaff:x:50:\n")
}

fn with<R>(cs: api::TaskSpecContainerSpec, f: impl FnOnce(&TaskContext<'_>) -> R) -> R {
    let t = task(cs);
    let img = image();
    let fl = files();
    let u = users();
    let vols = HashMap::new();
    let ctx = TaskContext {
        task: &t,
        node_id: "n1",
        node_hostname: "host1",
        container_id: "0123456789abcdef0123",
        image_config: &img,
        files: &fl,
        volumes: &vols,
        users: &u,
        dep_files: &[],
        init_binary: Some(Path::new("/usr/bin/tini-static")),
        netns: None,
        cgroup_parent: "/shoal",
    };
    f(&ctx)
}

#[test]
fn image_defaults_apply_as_docker_does() {
    let spec = with(Default::default(), |c| build(c).unwrap());
    let p = spec.process().as_ref().unwrap();
    assert_eq!(
        p.args().as_ref().unwrap(),
        &vec!["/bin/ep", "serve", "--port", "80"]
    );
    assert_eq!(p.cwd(), &PathBuf::from("/srv"));
    assert_eq!((p.user().uid(), p.user().gid()), (33, 34));
    let env = p.env().as_ref().unwrap();
    assert!(env.contains(&"PATH=/bin".to_string()), "{env:?}");
    assert!(
        env.contains(&"HOSTNAME=0123456789ab".to_string()),
        "{env:?}"
    );
    assert_eq!(spec.hostname().as_deref(), Some("0123456789ab"));
}

#[test]
fn spec_command_replaces_entrypoint_and_drops_cmd() {
    let cs = api::TaskSpecContainerSpec {
        command: Some(vec!["httpd".into()]),
        args: Some(vec!["-f".into()]),
        env: Some(vec!["A=spec".into(), "SLOT={{.Task.Slot}}".into()]),
        user: Some("1000:staff".into()),
        dir: Some("/tmp".into()),
        ..Default::default()
    };
    let spec = with(cs, |c| build(c).unwrap());
    let p = spec.process().as_ref().unwrap();
    assert_eq!(p.args().as_ref().unwrap(), &vec!["httpd", "-f"]);
    let env = p.env().as_ref().unwrap();
    assert!(env.contains(&"A=spec".to_string()) && !env.contains(&"A=image".to_string()));
    assert!(env.contains(&"SLOT=2".to_string()));
    assert_eq!((p.user().uid(), p.user().gid()), (1000, 50));
    assert_eq!(p.cwd(), &PathBuf::from("/tmp"));
}

#[test]
fn args_alone_replace_cmd_only() {
    let cs = api::TaskSpecContainerSpec {
        args: Some(vec!["other".into()]),
        ..Default::default()
    };
    assert_eq!(with(cs, args), vec!["/bin/ep", "other"]);
}

#[test]
fn hostname_templates_and_labels() {
    let cs = api::TaskSpecContainerSpec {
        hostname: Some("{{.Service.Name}}-{{.Task.Slot}}-{{.Node.Hostname}}".into()),
        labels: Some([("from".to_string(), "spec".to_string())].into()),
        ..Default::default()
    };
    let (h, l) = with(cs, |c| (hostname(c), labels(c)));
    assert_eq!(h, "web-2-host1");
    assert_eq!(l["from"], "spec");
    assert_eq!(l["com.docker.swarm.task.name"], "web.2.t1");
    assert_eq!(l["com.docker.swarm.service.name"], "web");
    assert_eq!(l["com.docker.swarm.task.id"], "t1");
    assert_eq!(l["com.docker.swarm.node.id"], "n1");
}

#[test]
fn limits_caps_and_readonly_reach_the_spec() {
    let cs = api::TaskSpecContainerSpec {
        read_only: Some(true),
        capability_add: Some(vec!["NET_ADMIN".into()]),
        capability_drop: Some(vec!["CAP_CHOWN".into()]),
        sysctls: Some([("net.core.somaxconn".to_string(), "1024".to_string())].into()),
        ulimits: Some(vec![api::ResourcesUlimits {
            name: Some("nproc".into()),
            soft: Some(100),
            hard: Some(200),
        }]),
        ..Default::default()
    };
    let mut t = task(cs);
    t.api.spec.as_mut().unwrap().resources = Some(api::TaskSpecResources {
        limits: Some(api::Limit {
            nano_cpus: Some(500_000_000),
            memory_bytes: Some(64 << 20),
            pids: Some(50),
        }),
        ..Default::default()
    });
    let img = image();
    let fl = files();
    let u = users();
    let no_vols = HashMap::new();
    let ctx = TaskContext {
        task: &t,
        node_id: "n1",
        node_hostname: "h",
        container_id: "abc",
        image_config: &img,
        files: &fl,
        volumes: &no_vols,
        users: &u,
        dep_files: &[],
        init_binary: Some(Path::new("/usr/bin/tini-static")),
        netns: None,
        cgroup_parent: "/shoal",
    };
    let spec = build(&ctx).unwrap();
    assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
    let caps = spec
        .process()
        .as_ref()
        .unwrap()
        .capabilities()
        .as_ref()
        .unwrap()
        .bounding()
        .clone()
        .unwrap();
    assert!(caps.contains(&Capability::NetAdmin));
    assert!(!caps.contains(&Capability::Chown));
    let linux = spec.linux().as_ref().unwrap();
    let res = linux.resources().as_ref().unwrap();
    assert_eq!(res.memory().as_ref().unwrap().limit(), Some(64 << 20));
    assert_eq!(res.cpu().as_ref().unwrap().quota(), Some(50_000));
    assert_eq!(res.pids().as_ref().unwrap().limit(), 50);
    assert_eq!(
        linux.sysctl().as_ref().unwrap()["net.core.somaxconn"],
        "1024"
    );
}

#[test]
fn mounts_bind_volume_tmpfs_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cs = api::TaskSpecContainerSpec {
        mounts: Some(vec![
            api::Mount {
                target: Some("/data".into()),
                source: Some("vol-{{.Service.Name}}".into()),
                typ: Some(api::MountTypeEnum::VOLUME),
                ..Default::default()
            },
            api::Mount {
                target: Some("/host".into()),
                source: Some(dir.path().display().to_string()),
                typ: Some(api::MountTypeEnum::BIND),
                read_only: Some(true),
                ..Default::default()
            },
            api::Mount {
                target: Some("/scratch".into()),
                typ: Some(api::MountTypeEnum::TMPFS),
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    let t = task(cs);
    let img = image();
    let fl = files();
    let u = users();
    let vols = tempfile::tempdir().unwrap();
    let wanted = task_volumes(&t, &template_fields(&t, "n1", "h"));
    assert_eq!(wanted.len(), 1);
    assert_eq!(wanted[0].volume.name.as_deref(), Some("vol-web"));
    let made =
        crate::volumes::task::prepare(&crate::volumes::VolumeStore::new(vols.path()), &wanted, &[])
            .unwrap();
    let ctx = TaskContext {
        task: &t,
        node_id: "n1",
        node_hostname: "h",
        container_id: "abc",
        image_config: &img,
        files: &fl,
        volumes: &made,
        users: &u,
        dep_files: &[],
        init_binary: Some(Path::new("/usr/bin/tini-static")),
        netns: None,
        cgroup_parent: "/shoal",
    };
    let spec = build(&ctx).unwrap();
    let mounts = spec.mounts().as_ref().unwrap();
    let find = |d: &str| {
        mounts
            .iter()
            .find(|m| m.destination() == Path::new(d))
            .unwrap()
    };
    assert_eq!(
        find("/data").source().as_ref().unwrap(),
        &vols.path().join("vol-web/_data")
    );
    assert!(vols.path().join("vol-web/_data").is_dir());
    assert!(find("/host")
        .options()
        .as_ref()
        .unwrap()
        .contains(&"ro".to_string()));
    assert_eq!(find("/scratch").typ().as_deref(), Some("tmpfs"));
    assert_eq!(
        find("/etc/hostname").source().as_ref().unwrap(),
        &fl.hostname
    );

    let bad = api::TaskSpecContainerSpec {
        mounts: Some(vec![api::Mount {
            target: Some("/x".into()),
            source: Some("/does/not/exist".into()),
            typ: Some(api::MountTypeEnum::BIND),
            ..Default::default()
        }]),
        ..Default::default()
    };
    assert_eq!(
        with(bad, |c| build(c).unwrap_err()),
        "invalid mount config for type \"bind\": bind source path does not exist: /does/not/exist"
    );
}

#[test]
fn init_runs_the_command_under_docker_init() {
    let cs = api::TaskSpecContainerSpec {
        init: Some(true),
        command: Some(vec!["httpd".into()]),
        ..Default::default()
    };
    let spec = with(cs, |c| build(c).unwrap());
    assert_eq!(
        spec.process().as_ref().unwrap().args().as_ref().unwrap(),
        &vec!["/sbin/docker-init", "--", "httpd"]
    );
    let m = spec.mounts().as_ref().unwrap();
    let init = m
        .iter()
        .find(|m| m.destination() == Path::new("/sbin/docker-init"))
        .unwrap();
    assert_eq!(
        init.source().as_deref(),
        Some(Path::new("/usr/bin/tini-static"))
    );
}

#[test]
fn containers_sit_under_the_node_cgroup_parent() {
    let default = with(Default::default(), |c| build(c).unwrap());
    assert_eq!(
        default.linux().as_ref().unwrap().cgroups_path(),
        &Some(PathBuf::from("/shoal/0123456789abcdef0123"))
    );
    let own = with(Default::default(), |c| {
        build(&TaskContext {
            cgroup_parent: "/shoal-lab1-node2",
            ..*c
        })
        .unwrap()
    });
    assert_eq!(
        own.linux().as_ref().unwrap().cgroups_path(),
        &Some(PathBuf::from("/shoal-lab1-node2/0123456789abcdef0123"))
    );
}

#[test]
fn cgroup_parent_forms_join_like_dockerd() {
    assert_eq!(cgroups_path("/a/b/", "c1"), PathBuf::from("/a/b/c1"));
    assert_eq!(cgroups_path("/", "c1"), PathBuf::from("/c1"));
    // Relative: below runc's own cgroup, as dockerd's cgroupfs driver does.
    assert_eq!(cgroups_path("rel", "c1"), PathBuf::from("rel/c1"));
}

#[test]
fn image_volumes_become_anonymous_volumes_unless_mounted_over() {
    let cs = api::TaskSpecContainerSpec {
        mounts: Some(vec![api::Mount {
            target: Some("/etc/".into()),
            source: Some("conf".into()),
            typ: Some(api::MountTypeEnum::VOLUME),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let t = task(cs);
    let mut img = image();
    img["config"]["Volumes"] = json!({"/data": {}, "/etc": {}, "/data/": {}});
    let wanted = image_volumes(&img, &t);
    assert_eq!(wanted.len(), 1, "{wanted:?}");
    assert_eq!(wanted[0].target, "/data");
    assert_eq!(wanted[0].volume.name, None);
    assert!(!wanted[0].no_copy);

    let vols = tempfile::tempdir().unwrap();
    let all = [task_volumes(&t, &template_fields(&t, "n1", "h")), wanted].concat();
    let made =
        crate::volumes::task::prepare(&crate::volumes::VolumeStore::new(vols.path()), &all, &[])
            .unwrap();
    let fl = files();
    let u = users();
    let ctx = TaskContext {
        task: &t,
        node_id: "n1",
        node_hostname: "h",
        container_id: "abc",
        image_config: &img,
        files: &fl,
        volumes: &made,
        users: &u,
        dep_files: &[],
        init_binary: None,
        netns: None,
        cgroup_parent: "/shoal",
    };
    let spec = build(&ctx).unwrap();
    let data = spec
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.destination() == Path::new("/data"))
        .expect("the image's volume is mounted");
    assert_eq!(data.source().as_ref(), Some(&made["/data"]));
    assert!(made["/data"].starts_with(vols.path()));
}
