//! End-to-end: docker service create/ls/ps/inspect/update/scale/rollback/rm
//! through the stock CLI, with the orchestrator, allocator and scheduler
//! running. No executor runs yet, so tasks stop at `assigned`.

mod common;

use common::wait_for;
use common::Daemon;

fn lines(s: &str) -> Vec<&str> {
    s.lines().filter(|l| !l.trim().is_empty()).collect()
}

/// `docker service ps` rows as (name, desired, current) for the service.
fn ps(d: &Daemon, svc: &str, extra: &[&str]) -> Vec<(String, String, String)> {
    let mut args = vec![
        "service",
        "ps",
        "--format",
        "{{.Name}}|{{.DesiredState}}|{{.CurrentState}}",
    ];
    args.extend_from_slice(extra);
    args.push(svc);
    d.ok(&args)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut p = l.split('|').map(str::to_string);
            (
                p.next().unwrap_or_default(),
                p.next().unwrap_or_default(),
                p.next().unwrap_or_default(),
            )
        })
        .collect()
}

fn running_desired(d: &Daemon, svc: &str) -> usize {
    ps(d, svc, &["--filter", "desired-state=running"]).len()
}

/// Waits until the scheduler has said why a task of `svc` fits nowhere.
fn scheduler_reason(d: &Daemon, svc: &str, what: &str) -> String {
    wait_for(20, what, || {
        let out = d.ok(&["service", "ps", "--no-trunc", "--format", "{{.Error}}", svc]);
        out.contains("no suitable node").then_some(out)
    })
}

fn wait_assigned(d: &Daemon, svc: &str, n: usize) {
    wait_for(20, &format!("{n} assigned tasks of {svc}"), || {
        let rows = ps(d, svc, &["--filter", "desired-state=running"]);
        (rows.len() == n && rows.iter().all(|r| r.2.starts_with("Assigned"))).then_some(())
    });
}

#[test]
fn replicated_service_create_scale_and_ls() {
    let d = Daemon::with_swarm();
    let id = d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "3",
        "--label",
        "tier=front",
        "--container-label",
        "c=1",
        "-e",
        "GREETING=hello",
        "--reserve-memory",
        "16M",
        "--limit-cpu",
        "0.5",
        "--restart-condition",
        "on-failure",
        "--restart-max-attempts",
        "3",
        "--update-parallelism",
        "2",
        "--update-delay",
        "5s",
        "--health-cmd",
        "true",
        "--health-interval",
        "10s",
        "--mount",
        "type=volume,source=data,target=/data",
        "busybox:latest",
        "sleep",
        "1000",
    ]);
    assert_eq!(id.trim().len(), 25, "{id}");
    wait_assigned(&d, "web", 3);
    let rows = ps(&d, "web", &[]);
    let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(names, ["web.1", "web.2", "web.3"]);
    assert!(rows.iter().all(|r| r.1 == "Running"), "{rows:?}");
    // Nothing runs containers yet: a task must never claim to be running.
    assert!(rows.iter().all(|r| !r.2.starts_with("Running")), "{rows:?}");

    let ls = d.ok(&[
        "service",
        "ls",
        "--format",
        "{{.Name}} {{.Mode}} {{.Replicas}}",
    ]);
    assert_eq!(ls.trim(), "web replicated 0/3");

    let ids = d.ok(&["service", "ps", "-q", "--no-trunc", "web"]);
    assert_eq!(lines(&ids).len(), 3);
    assert!(lines(&ids).iter().all(|l| l.len() == 25), "{ids}");
    let node = d.ok(&["service", "ps", "--format", "{{.Node}}", "web"]);
    let host = d.ok(&["node", "ls", "--format", "{{.Hostname}}"]);
    assert!(lines(&node).iter().all(|n| *n == host.trim()), "{node}");

    let pretty = d.ok(&["service", "inspect", "--pretty", "web"]);
    for want in [
        "Name:\t\tweb",
        "Replicas:\t3",
        "tier=front",
        "GREETING=hello",
        "Parallelism:\t2",
        "Delay:\t\t5s",
        "Target:\t/data",
    ] {
        assert!(pretty.contains(want), "missing {want:?} in\n{pretty}");
    }
    let restart = d.service_format("web", "{{json .Spec.TaskTemplate.RestartPolicy}}");
    assert_eq!(
        restart.trim(),
        r#"{"Condition":"on-failure","Delay":5000000000,"MaxAttempts":3}"#
    );
    let health = d.service_format(
        "web",
        "{{json .Spec.TaskTemplate.ContainerSpec.Healthcheck}}",
    );
    assert_eq!(
        health.trim(),
        r#"{"Test":["CMD-SHELL","true"],"Interval":10000000000}"#
    );
    let cpus = d.service_format("web", "{{.Spec.TaskTemplate.Resources.Limits.NanoCPUs}} {{.Spec.TaskTemplate.Resources.Reservations.MemoryBytes}}");
    assert_eq!(cpus.trim(), "500000000 16777216");

    d.ok(&["service", "scale", "-d", "web=5"]);
    wait_assigned(&d, "web", 5);
    let ls = d.ok(&["service", "ls", "--format", "{{.Replicas}}"]);
    assert_eq!(ls.trim(), "0/5");

    d.ok(&["service", "scale", "-d", "web=2"]);
    wait_for(20, "scale down to 2", || {
        (running_desired(&d, "web") == 2).then_some(())
    });
    let shut = ps(&d, "web", &["--filter", "desired-state=shutdown"]);
    let mut gone: Vec<&str> = shut.iter().map(|r| r.0.as_str()).collect();
    gone.sort();
    assert_eq!(gone, ["web.3", "web.4", "web.5"]);

    // Filters on ls.
    d.ok(&[
        "service", "create", "-d", "--name", "other", "busybox", "top",
    ]);
    let f = d.ok(&["service", "ls", "-q", "--filter", "label=tier=front"]);
    assert_eq!(f.trim(), &id.trim()[..12]);
    let f = d.ok(&[
        "service",
        "ls",
        "--format",
        "{{.Name}}",
        "--filter",
        "name=oth",
    ]);
    assert_eq!(f.trim(), "other");
    let f = d.ok(&[
        "service",
        "ls",
        "--format",
        "{{.Name}}",
        "--filter",
        "mode=global",
    ]);
    assert_eq!(f.trim(), "");

    d.ok(&["service", "rm", "web", "other"]);
    let ls = d.ok(&["service", "ls", "-q"]);
    assert_eq!(ls.trim(), "");
    // Their tasks are told to go; with no executor yet nothing reports them
    // stopped, so they are kept (desired `remove`) rather than forgotten.
    wait_for(20, "tasks of removed services desired remove", || {
        let (_, body) = d.curl("GET", "/v1.41/tasks", None);
        let tasks: Vec<serde_json::Value> = serde_json::from_str(&body).ok()?;
        tasks
            .iter()
            .all(|t| t["DesiredState"] == "remove")
            .then_some(())
    });
}

#[test]
fn update_env_ports_image_force_and_rollback() {
    let d = Daemon::with_swarm();
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "api",
        "-e",
        "A=1",
        "-e",
        "B=2",
        "-p",
        "8080:80",
        "--update-parallelism",
        "0",
        "busybox:latest",
        "top",
    ]);
    wait_assigned(&d, "api", 1);
    d.ok(&[
        "service",
        "update",
        "-d",
        "--env-add",
        "C=3",
        "--env-rm",
        "A",
        "--publish-rm",
        "80",
        "--publish-add",
        "9090:90",
        "api",
    ]);
    let env = d.service_format("api", "{{json .Spec.TaskTemplate.ContainerSpec.Env}}");
    // The CLI rebuilds the list from a map: compare it as a set.
    let mut env: Vec<String> = serde_json::from_str(env.trim()).unwrap();
    env.sort();
    assert_eq!(env, ["B=2", "C=3"]);
    let ports = d.service_format(
        "api",
        "{{range .Endpoint.Ports}}{{.PublishedPort}}:{{.TargetPort}} {{end}}",
    );
    assert_eq!(ports.trim(), "9090:90");
    // The update replaced the task: the old one is shut down, a new one assigned.
    wait_for(20, "replacement after env update", || {
        let rows = ps(&d, "api", &[]);
        (rows.len() == 2
            && rows.iter().filter(|r| r.1 == "Shutdown").count() == 1
            && rows
                .iter()
                .any(|r| r.1 == "Running" && r.2.starts_with("Assigned")))
        .then_some(())
    });
    let status = d.service_format("api", "{{.UpdateStatus.State}}");
    assert!(
        ["updating", "completed"].contains(&status.trim()),
        "{status}"
    );

    d.ok(&["service", "update", "-d", "--image", "busybox:1.36", "api"]);
    let img = d.service_format("api", "{{.Spec.TaskTemplate.ContainerSpec.Image}}");
    assert_eq!(img.trim(), "busybox:1.36");
    d.ok(&["service", "rollback", "-d", "api"]);
    let img = d.service_format("api", "{{.Spec.TaskTemplate.ContainerSpec.Image}} {{.PreviousSpec.TaskTemplate.ContainerSpec.Image}}");
    assert_eq!(img.trim(), "busybox:latest busybox:1.36");
    let st = d.service_format("api", "{{.UpdateStatus.State}}");
    assert!(st.trim().starts_with("rollback_"), "{st}");

    // --force replaces the task without a spec change.
    let before = d.ok(&[
        "service",
        "ps",
        "-q",
        "--filter",
        "desired-state=running",
        "api",
    ]);
    d.ok(&["service", "update", "-d", "--force", "api"]);
    wait_for(20, "forced replacement", || {
        let now = d.ok(&[
            "service",
            "ps",
            "-q",
            "--filter",
            "desired-state=running",
            "api",
        ]);
        (lines(&now).len() == 1 && now.trim() != before.trim()).then_some(())
    });

    // A stale version is refused as dockerd refuses it.
    let (_, body) = d.curl("GET", "/v1.41/services/api", None);
    let svc: serde_json::Value = serde_json::from_str(&body).unwrap();
    let spec = svc["Spec"].to_string();
    let (code, body) = d.curl("POST", "/v1.41/services/api/update?version=1", Some(&spec));
    assert_eq!(code, 500, "{body}");
    assert!(
        body.contains("rpc error: code = Unknown desc = update out of sequence"),
        "{body}"
    );
}

#[test]
fn validation_errors_read_as_dockerd() {
    let d = Daemon::with_swarm();
    d.ok(&["service", "create", "-d", "--name", "dup", "busybox", "top"]);
    let e = d.fail(&["service", "create", "-d", "--name", "dup", "busybox", "top"]);
    assert!(
        e.contains("rpc error: code = AlreadyExists desc = name conflicts with an existing object: service dup already exists"),
        "{e}"
    );
    let e = d.fail(&[
        "service",
        "create",
        "-d",
        "--name",
        "bad_name!",
        "busybox",
        "top",
    ]);
    assert!(e.contains("rpc error: code = InvalidArgument"), "{e}");
    let e = d.fail(&[
        "service",
        "create",
        "-d",
        "--constraint",
        "node.role=manager",
        "busybox",
        "top",
    ]);
    assert!(
        e.contains("constraint expected one operator from ==, !="),
        "{e}"
    );
    let e = d.fail(&[
        "service",
        "create",
        "-d",
        "--mode",
        "global",
        "--replicas",
        "2",
        "busybox",
        "top",
    ]);
    assert!(
        e.contains("replicas can only be used with replicated or replicated-job mode"),
        "{e}"
    );
    let e = d.fail(&[
        "service", "create", "-d", "--secret", "nosuch", "busybox", "top",
    ]);
    assert!(e.contains("secret not found: nosuch"), "{e}");
    let e = d.fail(&[
        "service",
        "create",
        "-d",
        "--network",
        "nosuch",
        "busybox",
        "top",
    ]);
    assert!(e.contains("network nosuch not found"), "{e}");
    let e = d.fail(&["service", "inspect", "nosuch"]);
    assert!(e.contains("no such service: nosuch"), "{e}");
    let e = d.fail(&["service", "rm", "nosuch"]);
    assert!(e.contains("service nosuch not found"), "{e}");
    // Nothing half-created by the refused calls.
    let ls = d.ok(&["service", "ls", "--format", "{{.Name}}"]);
    assert_eq!(ls.trim(), "dup");
}

#[test]
fn placement_constraints_pending_until_a_node_matches() {
    let d = Daemon::with_swarm();
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "zoned",
        "--constraint",
        "node.labels.zone==east",
        "--constraint",
        "node.role==manager",
        "busybox",
        "top",
    ]);
    let err = wait_for(20, "pending task with a reason", || {
        let out = d.ok(&[
            "service",
            "ps",
            "--no-trunc",
            "--format",
            "{{.CurrentState}}|{{.Error}}",
            "zoned",
        ]);
        // The scheduler explains a moment after the task turns pending.
        (out.starts_with("Pending") && out.contains("no suitable node")).then_some(out)
    });
    assert!(
        err.contains("no suitable node (scheduling constraints not satisfied on 1 node)"),
        "{err}"
    );
    let node = d.ok(&["node", "ls", "-q"]);
    d.ok(&["node", "update", "--label-add", "zone=east", node.trim()]);
    wait_assigned(&d, "zoned", 1);

    // Reservations larger than the node: pending with the resources reason.
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "huge",
        "--reserve-memory",
        "100T",
        "busybox",
        "top",
    ]);
    let err = scheduler_reason(&d, "huge", "pending for resources");
    assert!(err.contains("insufficient resources on 1 node"), "{err}");

    // Max replicas per node: one of two replicas fits on the single node.
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "capped",
        "--replicas",
        "2",
        "--replicas-max-per-node",
        "1",
        "busybox",
        "top",
    ]);
    wait_for(20, "one assigned, one pending", || {
        let rows = ps(&d, "capped", &[]);
        let assigned = rows.iter().filter(|r| r.2.starts_with("Assigned")).count();
        let pending = rows.iter().filter(|r| r.2.starts_with("Pending")).count();
        (assigned == 1 && pending == 1).then_some(())
    });
    let err = scheduler_reason(&d, "capped", "the pending replica's reason");
    assert!(err.contains("max replicas per node limit exceed"), "{err}");

    // Draining the node takes the wanted tasks off it.
    d.ok(&["node", "update", "--availability", "drain", node.trim()]);
    wait_for(
        20,
        "drained node has no running-desired assigned tasks",
        || {
            let rows = ps(&d, "zoned", &["--filter", "desired-state=running"]);
            rows.iter()
                .all(|r| !r.2.starts_with("Assigned"))
                .then_some(())
        },
    );
}

#[test]
fn global_and_job_modes() {
    let d = Daemon::with_swarm();
    d.ok(&[
        "service", "create", "-d", "--name", "agent", "--mode", "global", "busybox", "top",
    ]);
    wait_assigned(&d, "agent", 1);
    let ls = d.ok(&["service", "ls", "--format", "{{.Mode}} {{.Replicas}}"]);
    assert_eq!(ls.trim(), "global 0/1");
    let e = d.fail(&["service", "scale", "agent=3"]);
    assert!(
        e.contains("scale can only be used with replicated or replicated-job mode"),
        "{e}"
    );

    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "batch",
        "--mode",
        "replicated-job",
        "--replicas",
        "4",
        "--max-concurrent",
        "2",
        "busybox",
        "true",
    ]);
    wait_for(20, "two concurrent job tasks", || {
        let rows = ps(&d, "batch", &[]);
        (rows.len() == 2
            && rows
                .iter()
                .all(|r| r.1 == "Complete" && r.2.starts_with("Assigned")))
        .then_some(())
    });
    let ls = d.ok(&[
        "service",
        "ls",
        "--filter",
        "name=batch",
        "--format",
        "{{.Mode}}|{{.Replicas}}",
    ]);
    assert_eq!(ls.trim(), "replicated job|0/2 (0/4 completed)");

    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "gjob",
        "--mode",
        "global-job",
        "busybox",
        "true",
    ]);
    wait_for(20, "one global job task", || {
        (ps(&d, "gjob", &[]).len() == 1).then_some(())
    });
}

#[test]
fn task_history_limit_trims_old_tasks() {
    let d = Daemon::with_swarm();
    d.ok(&["swarm", "update", "--task-history-limit", "2"]);
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "h",
        "--update-parallelism",
        "0",
        "busybox",
        "top",
    ]);
    wait_assigned(&d, "h", 1);
    for _ in 0..4 {
        d.ok(&["service", "update", "-d", "--force", "h"]);
    }
    wait_for(20, "history trimmed to the limit", || {
        let rows = ps(&d, "h", &[]);
        let wanted = rows.iter().filter(|r| r.1 == "Running").count();
        (rows.len() <= 2 && wanted == 1).then_some(())
    });
}
