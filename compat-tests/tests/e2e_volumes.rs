//! End-to-end: `docker volume ls/create/inspect/rm/prune` on the local
//! volumes of a node whose stack mounts named volumes, against shoald on a
//! private containerd, driven by the stock CLI.
//!
//! What a user checks: the stack's volume is listed with the stack's label,
//! it starts out with the image's files at its mount path (unless
//! `nocopy`), `rm` of it is refused with dockerd's text while a task uses
//! it, prune leaves named volumes alone unless `--all`, and the volumes are
//! still there after shoald restarts.
//!
//! Skips (with the reason) when not root or when containerd is missing,
//! unless SHOAL_REQUIRE_CONTAINERD is set.

mod common;

use common::temp_file;
use common::wait_for;
use common::Daemon;

const STACK: &str = r#"version: "3.8"
services:
  web:
    image: shoal-test/busybox:latest
    command: ["sleep", "100000"]
    stop_grace_period: 1s
    volumes:
      - data:/etc
      - type: volume
        source: blank
        target: /home/blank
        volume:
          nocopy: true
      - type: volume
        source: quiet
        target: /etc2
        volume:
          nocopy: true
volumes:
  data:
    labels:
      tier: db
  blank: {}
  quiet: {}
"#;

fn lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

fn volume_names(d: &Daemon, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["volume", "ls", "--format", "{{.Name}}"];
    args.extend_from_slice(extra);
    lines(&d.ok(&args))
}

/// The full ID of the service's running container, once there is one.
fn running_container(d: &Daemon, service: &str) -> String {
    let filter = format!("label=com.docker.swarm.service.name={service}");
    wait_for(60, &format!("a running container of {service}"), || {
        let ids = lines(&d.ok(&["container", "ls", "-q", "--no-trunc", "--filter", &filter]));
        (ids.len() == 1).then(|| ids[0].clone())
    })
}

#[test]
fn volumes_of_a_stack_listed_seeded_guarded_pruned_and_kept() {
    let Some((_ctrd, mut d)) = common::swarm_with_test_image() else {
        return;
    };

    // Plain volume commands.
    assert_eq!(
        d.ok(&["volume", "create", "--label", "env=test", "mine"])
            .trim(),
        "mine"
    );
    let inspect = d.ok(&[
        "volume",
        "inspect",
        "--format",
        "{{.Name}}|{{.Driver}}|{{.Scope}}|{{.Mountpoint}}|{{index .Labels \"env\"}}",
        "mine",
    ]);
    let mountpoint = d.data_root().join("volumes/mine/_data");
    assert_eq!(
        inspect.trim(),
        format!("mine|local|local|{}|test", mountpoint.display())
    );
    assert!(mountpoint.is_dir());
    let err = d.fail(&["volume", "create", "bad/name"]);
    assert!(
        err.contains(
            "create bad/name: \"bad/name\" includes invalid characters for a local volume name"
        ),
        "{err}"
    );
    let err = d.fail(&["volume", "inspect", "nope"]);
    assert!(err.contains("no such volume"), "{err}");
    let err = d.fail(&["volume", "rm", "nope"]);
    assert!(err.contains("get nope: no such volume"), "{err}");
    // -f: a missing volume is not an error.
    d.ok(&["volume", "rm", "-f", "nope"]);

    // A stack's named volumes carry its namespace label and the file's.
    let file = temp_file(&d, "stack.yml", STACK.as_bytes());
    d.ok(&["stack", "deploy", "-c", &file, "app"]);
    let container = running_container(&d, "app_web");
    assert_eq!(
        volume_names(&d, &["--filter", "label=com.docker.stack.namespace=app"]),
        ["app_blank", "app_data", "app_quiet"]
    );
    assert_eq!(
        volume_names(&d, &["--filter", "label=tier=db"]),
        ["app_data"]
    );
    assert_eq!(volume_names(&d, &["--filter", "name=^app_d"]), ["app_data"]);
    assert_eq!(volume_names(&d, &["--filter", "driver=local"]).len(), 4);

    // Seeded from the image's /etc; nocopy volumes start empty.
    let data = d.data_root().join("volumes/app_data/_data");
    let passwd = std::fs::read_to_string(data.join("passwd")).unwrap_or_default();
    assert!(
        passwd.starts_with("root:x:0:0:"),
        "app_data holds {passwd:?}"
    );
    let quiet = d.data_root().join("volumes/app_quiet/_data");
    assert_eq!(std::fs::read_dir(&quiet).unwrap().count(), 0);
    // The task sees the volume: what it writes lands in it.
    d.ok(&[
        "exec",
        &container,
        "sh",
        "-c",
        "echo from-task > /etc/written",
    ]);
    assert_eq!(
        std::fs::read_to_string(data.join("written"))
            .unwrap()
            .trim(),
        "from-task"
    );

    // In use: refused with dockerd's text and status (409 over the API).
    let err = d.fail(&["volume", "rm", "app_data"]);
    assert!(
        err.contains(&format!("remove app_data: volume is in use - [{container}")),
        "{err}"
    );
    let (status, body) = d.curl("DELETE", "/v1.41/volumes/app_data", None);
    assert_eq!(status, 409, "{body}");

    assert_eq!(volume_names(&d, &["--filter", "dangling=true"]), ["mine"]);
    assert_eq!(volume_names(&d, &["--filter", "dangling=false"]).len(), 3);

    // Prune: named volumes stay unless --all; used ones always stay.
    d.ok(&["volume", "prune", "-f"]);
    assert!(volume_names(&d, &[]).contains(&"mine".to_string()));
    let out = d.ok(&["volume", "prune", "-af"]);
    assert!(out.contains("mine"), "{out}");
    assert_eq!(
        volume_names(&d, &[]),
        ["app_blank", "app_data", "app_quiet"]
    );
    d.ok(&["volume", "create", "other"]);
    // The CLI sends empty label and option maps: dockerd shows nulls.
    let (status, body) = d.curl("GET", "/v1.41/volumes/other", None);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["Labels"].is_null() && v["Options"].is_null(), "{v}");
    assert_eq!(
        (v["Driver"].as_str(), v["Scope"].as_str()),
        (Some("local"), Some("local"))
    );
    assert_eq!(d.ok(&["volume", "rm", "other"]).trim(), "other");
    let err = d.fail(&["volume", "create", "a"]);
    assert!(
        err.contains("create a: volume name is too short, names should be at least two alphanumeric characters"),
        "{err}"
    );

    // The volumes and their labels outlive shoald.
    d.restart();
    assert_eq!(
        volume_names(&d, &["--filter", "label=com.docker.stack.namespace=app"]),
        ["app_blank", "app_data", "app_quiet"]
    );

    // Once the stack is gone the volume is free, with its data.
    d.ok(&["stack", "rm", "app"]);
    wait_for(60, "the stack's containers to go", || {
        d.ok(&["container", "ls", "-aq"])
            .trim()
            .is_empty()
            .then_some(())
    });
    assert!(
        data.join("written").is_file(),
        "a named volume keeps its data"
    );
    assert_eq!(d.ok(&["volume", "rm", "app_data"]).trim(), "app_data");
}

#[test]
fn anonymous_volumes_go_with_their_task() {
    let Some((_ctrd, d)) = common::swarm_with_test_image() else {
        return;
    };
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "anon",
        "--stop-grace-period",
        "1s",
        "--mount",
        "type=volume,target=/scratch",
        "shoal-test/busybox:latest",
        "sleep",
        "100000",
    ]);
    running_container(&d, "anon");
    let anon = volume_names(&d, &["--filter", "label=com.docker.volume.anonymous"]);
    assert_eq!(anon.len(), 1, "{anon:?}");
    assert_eq!(anon[0].len(), 64);
    d.ok(&["service", "rm", "anon"]);
    wait_for(60, "the anonymous volume to go with its container", || {
        volume_names(&d, &[]).is_empty().then_some(())
    });

    // A task whose container cannot be made leaves no volume behind.
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "broken",
        "--mount",
        "type=volume,target=/scratch",
        "--mount",
        "type=bind,source=/nonexistent-shoal-path,target=/x",
        "shoal-test/busybox:latest",
        "sleep",
        "100000",
    ]);
    wait_for(60, "a task of broken rejected", || {
        d.ok(&[
            "service",
            "ps",
            "broken",
            "--no-trunc",
            "--format",
            "{{.Error}}",
        ])
        .contains("bind source path does not exist")
        .then_some(())
    });
    d.ok(&["service", "rm", "broken"]);
    wait_for(60, "no volume left by the rejected tasks", || {
        volume_names(&d, &[]).is_empty().then_some(())
    });
}
