//! End-to-end: the service specs, job fields and version-specific shapes a
//! client reads back, byte for byte as dockerd 20.10 writes them.
//!
//! - A spec is stored in the shape dockerd's round trip through swarmkit
//!   gives it: given update, rollback and restart configs gain the fields Go
//!   always writes, empty lists, maps, strings and zero sizes vanish; and
//!   `?insertDefaults=true` fills only what swarmkit's defaults fill (a
//!   given update config keeps its zero `Parallelism`). The expected JSON
//!   below is what dockerd 20.10.24 answered to the same bodies.
//! - Jobs: `JobStatus` on the service, `JobIteration` on tasks, iteration 0
//!   first (`{}`), one more per update; no update config allowed; a task of
//!   an earlier run that never reached a node is deleted.
//! - Secret and config references: refused with swarmkit's texts when
//!   malformed or when no stored object has that ID and name.
//! - Older `/v1.NN/` prefixes: request fields newer than the version are
//!   dropped (a job under 1.40 is a replicated service), `/info` has the
//!   fields of that version; and the stock CLI at `DOCKER_API_VERSION` 1.30,
//!   1.35 and 1.41.

mod common;

use std::process::Command;

use common::docker_bin;
use common::wait_for;
use common::Daemon;
use serde_json::json;
use serde_json::Value;

fn parse(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("bad JSON ({e}): {s}"))
}

fn get(d: &Daemon, path: &str) -> Value {
    let (code, body) = d.curl("GET", path, None);
    assert_eq!(code, 200, "GET {path}: {body}");
    parse(&body)
}

fn create(d: &Daemon, prefix: &str, spec: &Value) {
    let path = format!("{prefix}/services/create");
    let (code, body) = d.curl("POST", &path, Some(&spec.to_string()));
    assert_eq!(code, 201, "{path}: {body}");
}

/// `(status, message)` of a request that must fail.
fn refused(d: &Daemon, path: &str, body: &Value) -> (u16, String) {
    let (code, out) = d.curl("POST", path, Some(&body.to_string()));
    let message = parse(&out)["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{path}: no message in {out}"))
        .to_string();
    (code, message)
}

fn rpc(desc: &str) -> String {
    format!("rpc error: code = InvalidArgument desc = {desc}")
}

#[test]
fn stored_specs_and_insert_defaults_have_dockerds_shape() {
    let d = Daemon::with_swarm();
    create(
        &d,
        "/v1.41",
        &json!({
            "Name": "shape1",
            "TaskTemplate": {
                "ContainerSpec": {
                    "Image": "busybox", "Args": [], "Env": [], "Labels": {}, "Privileges": {},
                    "DNSConfig": {"Nameservers": []}, "TTY": false,
                    "Mounts": [
                        {"Source": "/tmp", "Target": "/y", "BindOptions": {}},
                        {"Type": "tmpfs", "Target": "/z", "TmpfsOptions": {"SizeBytes": 0}}
                    ]
                },
                "Placement": {"Constraints": []},
                "Resources": {"Limits": {"NanoCPUs": 0}, "Reservations": {}},
                "RestartPolicy": {},
                "LogDriver": {"Name": "", "Options": {}},
                "Networks": []
            },
            "UpdateConfig": {"Delay": 0},
            "RollbackConfig": {"Parallelism": 2, "Monitor": 0},
            "EndpointSpec": {"Ports": [{"TargetPort": 80}]}
        }),
    );
    let container = json!({
        "Image": "busybox",
        "Privileges": {"CredentialSpec": null, "SELinuxContext": null},
        "Mounts": [
            {"Type": "bind", "Source": "/tmp", "Target": "/y"},
            {"Type": "tmpfs", "Target": "/z", "TmpfsOptions": {}}
        ],
        "DNSConfig": {},
        "Isolation": "default"
    });
    let stored = json!({
        "Name": "shape1", "Labels": {},
        "TaskTemplate": {
            "ContainerSpec": container,
            "Resources": {"Limits": {}, "Reservations": {}},
            "RestartPolicy": {"Condition": "any", "MaxAttempts": 0},
            "Placement": {}, "LogDriver": {}, "ForceUpdate": 0, "Runtime": "container"
        },
        "Mode": {"Replicated": {"Replicas": 1}},
        "UpdateConfig": {"Parallelism": 0, "FailureAction": "pause", "MaxFailureRatio": 0, "Order": "stop-first"},
        "RollbackConfig": {"Parallelism": 2, "FailureAction": "pause", "MaxFailureRatio": 0, "Order": "stop-first"},
        "EndpointSpec": {"Mode": "vip", "Ports": [{"Protocol": "tcp", "TargetPort": 80, "PublishMode": "ingress"}]}
    });
    assert_eq!(get(&d, "/v1.41/services/shape1")["Spec"], stored);

    let mut defaults = stored.clone();
    let tt = &mut defaults["TaskTemplate"];
    tt["ContainerSpec"]["StopGracePeriod"] = json!(10_000_000_000i64);
    tt["RestartPolicy"]["Delay"] = json!(5_000_000_000i64);
    defaults["UpdateConfig"]["Monitor"] = json!(5_000_000_000i64);
    defaults["RollbackConfig"]["Monitor"] = json!(5_000_000_000i64);
    assert_eq!(
        get(&d, "/v1.41/services/shape1?insertDefaults=true")["Spec"],
        defaults
    );

    // A spec with nothing but an image: swarmkit's whole default update and
    // rollback configs (Order included) appear only with insertDefaults.
    create(
        &d,
        "/v1.41",
        &json!({"Name": "shape2", "TaskTemplate": {"ContainerSpec": {"Image": "busybox"}}}),
    );
    assert_eq!(
        get(&d, "/v1.41/services/shape2")["Spec"],
        json!({
            "Name": "shape2", "Labels": {},
            "TaskTemplate": {"ContainerSpec": {"Image": "busybox", "Isolation": "default"}, "ForceUpdate": 0, "Runtime": "container"},
            "Mode": {"Replicated": {"Replicas": 1}}
        })
    );
    let whole = json!({"Parallelism": 1, "FailureAction": "pause", "Monitor": 5_000_000_000i64, "MaxFailureRatio": 0, "Order": "stop-first"});
    assert_eq!(
        get(&d, "/v1.41/services/shape2?insertDefaults=true")["Spec"],
        json!({
            "Name": "shape2", "Labels": {},
            "TaskTemplate": {
                "ContainerSpec": {"Image": "busybox", "StopGracePeriod": 10_000_000_000i64, "DNSConfig": {}, "Isolation": "default"},
                "Resources": {},
                "RestartPolicy": {"Condition": "any", "Delay": 5_000_000_000i64, "MaxAttempts": 0},
                "Placement": {}, "ForceUpdate": 0, "Runtime": "container"
            },
            "Mode": {"Replicated": {"Replicas": 1}},
            "UpdateConfig": whole, "RollbackConfig": whole
        })
    );

    // An update through the stock CLI keeps the shape (it sends the spec
    // back with one change).
    d.ok(&["service", "update", "-d", "--env-add", "A=1", "shape1"]);
    // The CLI itself qualifies the image and sorts the mounts by target.
    let mut updated = stored;
    let cs = &mut updated["TaskTemplate"]["ContainerSpec"];
    cs["Env"] = json!(["A=1"]);
    cs["Image"] = json!("busybox:latest");
    let mounts = cs["Mounts"].as_array_mut().unwrap();
    mounts.reverse();
    let svc = get(&d, "/v1.41/services/shape1");
    assert_eq!(svc["Spec"], updated);
}

#[test]
fn jobs_carry_their_status_and_iteration() {
    let d = Daemon::with_swarm();
    assert_eq!(get(&d, "/v1.41/swarm")["DefaultAddrPool"], Value::Null);
    let job = json!({
        "Name": "batch",
        "TaskTemplate": {"ContainerSpec": {"Image": "busybox", "Args": ["true"]}},
        "Mode": {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}},
    });
    let mut with_update = job.clone();
    with_update["UpdateConfig"] = json!({});
    assert_eq!(
        refused(&d, "/v1.41/services/create", &with_update),
        (400, rpc("Jobs may not have an update config"))
    );
    create(&d, "/v1.41", &job);
    let svc = get(&d, "/v1.41/services/batch");
    assert_eq!(svc["JobStatus"]["JobIteration"], json!({}), "{svc}");
    assert!(svc["JobStatus"]["LastExecution"].is_string(), "{svc}");
    let tasks = |iteration: &Value| {
        let filter = "%7B%22service%22%3A%5B%22batch%22%5D%7D";
        let all = get(&d, &format!("/v1.41/tasks?filters={filter}"));
        let all = all.as_array().cloned().unwrap_or_default();
        let of: Vec<Value> = all
            .into_iter()
            .filter(|t| &t["JobIteration"] == iteration)
            .collect();
        (!of.is_empty()).then_some(of)
    };
    let first = wait_for(20, "a task of iteration 0", || tasks(&json!({})));
    // Slots start at 0, which Go leaves out.
    assert!(first[0].get("Slot").is_none(), "{}", first[0]);

    d.ok(&["service", "update", "-d", "--force", "batch"]);
    let svc = get(&d, "/v1.41/services/batch");
    assert_eq!(svc["JobStatus"]["JobIteration"], json!({"Index": 1}));
    assert!(svc.get("UpdateStatus").is_none(), "{svc}");
    wait_for(20, "a task of iteration 1", || tasks(&json!({"Index": 1})));
    // The same fields at an older prefix: dockerd writes them at every version.
    let old = get(&d, "/v1.30/services/batch");
    assert_eq!(old["JobStatus"]["JobIteration"], json!({"Index": 1}));
}

/// A task's network attachments carry each network's spec as dockerd 20.10
/// shows it: the default ingress names no driver and an IPAM of no driver;
/// a network made by the CLI names the default IPAM driver and, with a
/// subnet, the gateway the allocator gave it.
#[test]
fn attachment_specs_are_the_networks_as_dockerd_shows_them() {
    let d = Daemon::with_swarm();
    d.ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.9.0.0/24",
        "sub",
    ]);
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "pub",
        "-p",
        "8080:80",
        "--network",
        "sub",
        "--constraint",
        "node.labels.nosuch==1",
        "busybox",
        "true",
    ]);
    let specs = wait_for(20, "the task's attachments", || {
        let all = get(&d, "/v1.41/tasks");
        let t = all.as_array()?.first()?.clone();
        let nets = t["NetworksAttachments"].as_array()?.clone();
        (nets.len() == 2).then(|| {
            nets.iter()
                .map(|n| n["Network"]["Spec"].clone())
                .collect::<Vec<_>>()
        })
    });
    let by_name = |name: &str| {
        specs
            .iter()
            .find(|s| s["Name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {specs:?}"))
    };
    assert_eq!(
        by_name("ingress"),
        json!({"Name": "ingress", "Labels": {}, "DriverConfiguration": {}, "Ingress": true,
               "IPAMOptions": {"Driver": {}}, "Scope": "swarm"})
    );
    assert_eq!(
        by_name("sub"),
        json!({"Name": "sub", "Labels": {}, "DriverConfiguration": {"Name": "overlay"},
               "IPAMOptions": {"Driver": {"Name": "default"},
                               "Configs": [{"Subnet": "10.9.0.0/24", "Gateway": "10.9.0.1"}]},
               "Scope": "swarm"})
    );
}

/// As swarmkit: a task of an earlier iteration that never reached a node is
/// deleted when the job runs again, so `service ps` lists the new run only.
#[test]
fn an_earlier_job_run_that_never_reached_a_node_leaves_no_task() {
    let d = Daemon::with_swarm();
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "stuck",
        "--mode",
        "replicated-job",
        "--constraint",
        "node.labels.nosuch==1",
        "busybox",
        "true",
    ]);
    let ids = || {
        let out = d.ok(&["service", "ps", "-q", "--no-trunc", "stuck"]);
        out.lines().map(str::to_string).collect::<Vec<_>>()
    };
    let first = wait_for(20, "the first run's task", || {
        let v = ids();
        (v.len() == 1).then_some(v)
    });
    d.ok(&["service", "update", "-d", "--force", "stuck"]);
    let now = wait_for(20, "only the second run's task", || {
        let v = ids();
        (v.len() == 1 && v != first).then_some(v)
    });
    let (code, _) = d.curl("GET", &format!("/v1.41/tasks/{}", first[0]), None);
    assert_eq!(code, 404, "the first run's task is deleted");
    let t = get(&d, &format!("/v1.41/tasks/{}", now[0]));
    assert_eq!(t["JobIteration"], json!({"Index": 1}), "{t}");
    assert_eq!(t["Status"]["State"], "pending", "{t}");
}

#[test]
fn secret_and_config_references_are_checked() {
    let d = Daemon::with_swarm();
    let real = common::temp_file(&d, "s.txt", b"pw");
    d.ok(&["secret", "create", "realsec", &real]);
    d.ok(&["config", "create", "realcfg", &real]);
    // The CLI resolves names itself; the service stores the IDs.
    d.ok(&[
        "service", "create", "-d", "--name", "ref", "--secret", "realsec", "--config", "realcfg",
        "busybox", "true",
    ]);
    let e = d.fail(&["service", "update", "-d", "--secret-add", "nosuch", "ref"]);
    assert!(e.contains("secret not found: nosuch"), "{e}");

    let spec = |container: Value| {
        let mut cs = json!({"Image": "busybox"});
        cs.as_object_mut()
            .unwrap()
            .extend(container.as_object().unwrap().clone());
        json!({"Name": "raw", "TaskTemplate": {"ContainerSpec": cs}})
    };
    let create = "/v1.41/services/create";
    let made_up = spec(
        json!({"Secrets": [{"SecretID": "madeupid123", "SecretName": "nosuch", "File": {"Name": "a", "UID": "0", "GID": "0", "Mode": 292}}]}),
    );
    assert_eq!(
        refused(&d, create, &made_up),
        (400, rpc("secret not found: nosuch"))
    );
    // A real ID under another name is not found either.
    let sid = get(&d, "/v1.41/secrets/realsec")["ID"].clone();
    let renamed = spec(json!({"Secrets": [
        {"SecretID": sid, "SecretName": "wrongname", "File": {"Name": "a"}},
        {"SecretID": "m2", "SecretName": "n2", "File": {"Name": "b"}}]}));
    assert_eq!(
        refused(&d, create, &renamed),
        (400, rpc("secrets not found: wrongname, n2"))
    );
    let cfg = spec(
        json!({"Configs": [{"ConfigID": "zz", "ConfigName": "nocfg", "File": {"Name": "a"}}]}),
    );
    assert_eq!(
        refused(&d, create, &cfg),
        (400, rpc("config not found: nocfg"))
    );
    for (container, message) in [
        (
            json!({"Secrets": [{"SecretName": "s", "File": {"Name": "a"}}]}),
            rpc("malformed secret reference"),
        ),
        (
            json!({"Secrets": [{"SecretID": "i", "SecretName": "s"}]}),
            rpc("malformed secret reference, no target provided"),
        ),
        (
            json!({"Secrets": [{"SecretID": "i", "SecretName": "s", "File": {}}]}),
            rpc("malformed file secret reference, invalid target file name provided"),
        ),
        (
            json!({"Configs": [{"ConfigID": "i", "ConfigName": "c"}]}),
            "invalid Config: either File or Runtime should be set".to_string(),
        ),
    ] {
        assert_eq!(refused(&d, create, &spec(container)), (400, message));
    }
    // Update checks the same.
    let svc = get(&d, "/v1.41/services/ref");
    let version = svc["Version"]["Index"].as_u64().unwrap();
    let mut next = svc["Spec"].clone();
    next["TaskTemplate"]["ContainerSpec"]["Secrets"] =
        made_up["TaskTemplate"]["ContainerSpec"]["Secrets"].clone();
    assert_eq!(
        refused(
            &d,
            &format!("/v1.41/services/ref/update?version={version}"),
            &next
        ),
        (400, rpc("secret not found: nosuch"))
    );
}

/// The stock CLI at an older API version; returns (exit code, stdout, stderr).
fn cli_at(d: &Daemon, api: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new("timeout")
        .args(["-k", "5", "60"])
        .arg(docker_bin())
        .args(args)
        .env("DOCKER_HOST", d.docker_host())
        .env("DOCKER_API_VERSION", api)
        .env("DOCKER_CONFIG", d.data_root().join("cli-at-version"))
        .output()
        .expect("docker");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn older_api_versions_get_their_own_shapes() {
    // Init under 1.30, where address pools are not in the request: the
    // cluster reports swarmkit's default pool (the CLI's empty pool at 1.41
    // reads back as null).
    let d = Daemon::start();
    let (code, body) = d.curl(
        "POST",
        "/v1.30/swarm/init",
        Some(r#"{"AdvertiseAddr":"127.0.0.1","ListenAddr":"0.0.0.0:2377","DefaultAddrPool":["10.20.0.0/16"],"SubnetSize":26}"#),
    );
    assert_eq!(code, 200, "{body}");
    let sw = get(&d, "/v1.41/swarm");
    assert_eq!(sw["DefaultAddrPool"], json!(["10.0.0.0/8"]));
    assert_eq!(sw["SubnetSize"], 24);
    // Fields newer than the request's version are dropped; a job under
    // 1.40 has no mode left and is a replicated service.
    create(
        &d,
        "/v1.40",
        &json!({
            "Name": "old",
            "TaskTemplate": {
                "ContainerSpec": {"Image": "busybox", "CapabilityAdd": ["NET_ADMIN"], "Sysctls": {"net.core.somaxconn": "100"}},
                "Resources": {"Limits": {"Pids": 3}},
                "Placement": {"MaxReplicas": 2}
            },
            "Mode": {"ReplicatedJob": {}}
        }),
    );
    let spec = get(&d, "/v1.41/services/old")["Spec"].clone();
    assert_eq!(spec["Mode"], json!({"Replicated": {"Replicas": 1}}));
    let tt = &spec["TaskTemplate"];
    assert!(tt["ContainerSpec"].get("CapabilityAdd").is_none(), "{tt}");
    assert_eq!(
        tt["ContainerSpec"]["Sysctls"],
        json!({"net.core.somaxconn": "100"})
    );
    assert_eq!(tt["Resources"]["Limits"], json!({}));
    assert_eq!(tt["Placement"]["MaxReplicas"], 2);

    let templated = json!({"Name": "t", "Data": "aGk=", "Templating": {"Name": "golang"}});
    assert_eq!(
        refused(&d, "/v1.36/secrets/create", &templated),
        (
            400,
            "secret templating is not supported on the specified API version: 1.36".to_string()
        )
    );
    assert_eq!(
        refused(&d, "/v1.30/configs/create", &templated),
        (
            400,
            "config templating is not supported on the specified API version: 1.30".to_string()
        )
    );

    // /info: the fields each version had.
    let newest = get(&d, "/info");
    for gone in ["BridgeNfIptables", "KernelMemory", "ExecutionDriver"] {
        assert!(newest.get(gone).is_none(), "{gone} at the newest version");
    }
    let at41 = get(&d, "/v1.41/info");
    assert_eq!(at41["BridgeNfIptables"], false);
    assert_eq!(at41["KernelMemory"], true);
    assert_eq!(
        at41["ContainerdCommit"]["Expected"],
        at41["ContainerdCommit"]["ID"]
    );
    assert_eq!(
        at41["RegistryConfig"]["AllowNondistributableArtifactsCIDRs"],
        json!([])
    );
    assert!(at41.get("ExecutionDriver").is_none());
    let at24 = get(&d, "/v1.24/info");
    assert_eq!(at24["ExecutionDriver"], "<not supported>");
    assert!(
        at24["SecurityOptions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| !o.as_str().unwrap().contains('=')),
        "{}",
        at24["SecurityOptions"]
    );

    // The stock CLI at older versions.
    for api in ["1.30", "1.35", "1.41"] {
        let name = format!("cli{}", api.replace('.', ""));
        let (code, _, err) = cli_at(
            &d,
            api,
            &[
                "service",
                "create",
                "-d",
                "--name",
                &name,
                "--mode",
                "replicated-job",
                "busybox",
                "true",
            ],
        );
        assert_eq!(code, 0, "{api}: {err}");
        let (_, mode, _) = cli_at(
            &d,
            api,
            &[
                "service",
                "ls",
                "--filter",
                &format!("name={name}"),
                "--format",
                "{{.Mode}}",
            ],
        );
        let want = if api == "1.41" {
            "replicated job"
        } else {
            "replicated"
        };
        assert_eq!(mode.trim(), want, "{api}");
        let (_, km, _) = cli_at(
            &d,
            api,
            &[
                "info",
                "--format",
                "{{.KernelMemory}} {{.Swarm.LocalNodeState}}",
            ],
        );
        assert_eq!(km.trim(), "true active", "{api}");
        let (code, _, err) = cli_at(
            &d,
            api,
            &[
                "service",
                "create",
                "-d",
                "--cap-add",
                "NET_ADMIN",
                "busybox",
            ],
        );
        if api == "1.41" {
            assert_eq!(code, 0, "{err}");
        } else {
            assert!(
                err.contains("\"--cap-add\" requires API version 1.41"),
                "{api}: {err}"
            );
        }
    }
}
