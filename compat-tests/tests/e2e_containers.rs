//! End-to-end: `docker container ls/inspect/logs/rm/stop/kill/wait` on the
//! task containers of a swarm service, against shoald on a private
//! containerd, driven by the stock CLI.
//!
//! Ending a task's container from the container API must look to the swarm
//! as it does under dockerd: the task fails with `task: non-zero exit (137)`
//! and the orchestrator starts a replacement.
//!
//! Skips (with the reason) when not root or when containerd is missing,
//! unless SHOAL_REQUIRE_CONTAINERD is set.

mod common;

use std::collections::BTreeMap;

use common::wait_for;
use common::Daemon;

const IMAGE: &str = "shoal-test/busybox:latest";
/// The tasks' command: one line on each stream (stderr first, a second
/// apart so the order in the log is fixed), then a server that keeps the
/// container up.
const SCRIPT: &str = "echo to-stderr >&2; sleep 1; echo hello from $HOSTNAME; exec httpd -f -p 80";

/// Creates a service of `replicas` tasks running [`SCRIPT`] (PID 1 ignores
/// SIGTERM, hence the short grace period).
fn create_service(d: &Daemon, name: &str, replicas: u32) {
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        name,
        "--replicas",
        &replicas.to_string(),
        "--stop-grace-period",
        "1s",
        IMAGE,
        "sh",
        "-c",
        SCRIPT,
    ]);
}

/// One row of `docker container ls`.
#[derive(Debug, Clone)]
struct Row {
    id: String,
    name: String,
    state: String,
    status: String,
    image: String,
    command: String,
}

fn list_rows(d: &Daemon, extra: &[&str]) -> Vec<Row> {
    let mut args = vec![
        "container",
        "ls",
        "--no-trunc",
        "--format",
        "{{.ID}}|{{.Names}}|{{.State}}|{{.Status}}|{{.Image}}|{{.Command}}",
    ];
    args.extend_from_slice(extra);
    d.ok(&args)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.splitn(6, '|').collect();
            Row {
                id: f[0].into(),
                name: f[1].into(),
                state: f[2].into(),
                status: f[3].into(),
                image: f[4].into(),
                command: f[5].into(),
            }
        })
        .collect()
}

/// Waits (bounded) until `service` has `n` running containers that print
/// their first line; returns them.
fn running(d: &Daemon, service: &str, n: usize) -> Vec<Row> {
    let filter = format!("label=com.docker.swarm.service.name={service}");
    let rows = wait_for(60, &format!("{n} running containers of {service}"), || {
        let r = list_rows(d, &["--filter", &filter]);
        (r.len() == n && r.iter().all(|r| r.state == "running")).then_some(r)
    });
    for r in &rows {
        wait_for(20, "the task's first output", || {
            d.docker(&["logs", &r.id])
                .stdout
                .contains("hello")
                .then_some(())
        });
    }
    rows
}

/// Task slot to full task ID of the service's running tasks.
fn task_ids(d: &Daemon, service: &str) -> BTreeMap<String, String> {
    d.ok(&[
        "service",
        "ps",
        service,
        "--no-trunc",
        "--filter",
        "desired-state=running",
        "--format",
        "{{.Name}} {{.ID}}",
    ])
    .lines()
    .filter_map(|l| l.split_once(' '))
    .map(|(n, id)| (n.to_string(), id.to_string()))
    .collect()
}

/// Waits (bounded) until the service's task history shows a task that
/// failed with `error`.
fn wait_task_error(d: &Daemon, service: &str, error: &str) {
    wait_for(
        30,
        &format!("a task of {service} failing with {error}"),
        || {
            d.ok(&[
                "service",
                "ps",
                service,
                "--no-trunc",
                "--format",
                "{{.Error}}",
            ])
            .lines()
            .any(|l| l.contains(error))
            .then_some(())
        },
    );
}

#[test]
fn ls_inspect_and_logs_show_the_task_containers() {
    let Some((_ctrd, d)) = common::swarm_with_test_image() else {
        return;
    };
    create_service(&d, "web", 2);
    let rows = running(&d, "web", 2);
    let tasks = task_ids(&d, "web");
    assert_eq!(tasks.len(), 2, "{tasks:?}");

    // Names are `<service>.<slot>.<task id>`, one per running task.
    let mut names: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
    names.sort();
    let expected: Vec<String> = tasks.iter().map(|(n, id)| format!("{n}.{id}")).collect();
    assert_eq!(names, expected);
    for r in &rows {
        assert_eq!(r.id.len(), 64, "{r:?}");
        assert!(r.status.starts_with("Up "), "{r:?}");
        assert_eq!(r.image, IMAGE);
        assert!(r.command.starts_with("\"sh -c 'echo to-stderr"), "{r:?}");
    }
    // Stopped containers are listed only with -a; filters narrow the list.
    let all = list_rows(&d, &["-a"]);
    assert!(
        rows.iter().all(|r| all.iter().any(|a| a.id == r.id)),
        "{all:?}"
    );
    // Anything else -a shows is a container of an earlier, ended attempt.
    assert!(
        all.iter().filter(|a| a.state == "running").count() == 2,
        "{all:?}"
    );
    let one = &rows[0];
    let by_name = list_rows(&d, &["--filter", &format!("name={}", one.name)]);
    assert_eq!(by_name.len(), 1);
    assert_eq!(by_name[0].id, one.id);
    assert_eq!(list_rows(&d, &["--filter", "status=exited"]).len(), 0);
    assert_eq!(list_rows(&d, &["--filter", "is-task=false"]).len(), 0);
    let err = d.fail(&["container", "ls", "--filter", "status=up"]);
    assert!(err.contains("invalid filter 'status=up'"), "{err}");

    // Inspect by full ID, by name and by ID prefix.
    let format = "{{.Id}}|{{.Name}}|{{.State.Status}}|{{.State.Running}}|{{.State.Pid}}|{{json .Config.Cmd}}|{{.Config.Hostname}}|{{index .Config.Labels \"com.docker.swarm.task.id\"}}|{{.Config.Image}}";
    let out = d.ok(&["container", "inspect", "--format", format, &one.id]);
    let f: Vec<&str> = out.trim().split('|').collect();
    assert_eq!(f[0], one.id);
    assert_eq!(f[1], format!("/{}", one.name));
    assert_eq!((f[2], f[3]), ("running", "true"));
    let pid: u32 = f[4].parse().unwrap();
    assert!(pid > 0);
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_eq!(comm.trim(), "httpd", "PID {pid} is the task's live process");
    assert_eq!(
        f[5],
        serde_json::to_string(&["sh", "-c", SCRIPT]).unwrap(),
        "{out}"
    );
    assert_eq!(f[6], &one.id[..12]);
    assert!(one.name.ends_with(f[7]), "{out}");
    assert_eq!(f[8], IMAGE);
    let env = d.ok(&[
        "container",
        "inspect",
        "--format",
        "{{json .Config.Env}}",
        &one.name,
    ]);
    assert!(env.contains("PATH=/usr/local/sbin"), "{env}");
    let id = d.ok(&["container", "inspect", "--format", "{{.Id}}", &one.id[..10]]);
    assert_eq!(id.trim(), one.id);
    let err = d.fail(&["container", "inspect", "nosuch"]);
    assert!(err.contains("No such container: nosuch"), "{err}");

    // Logs: each stream to its own, prefixes on request.
    let logs = d.docker(&["logs", &one.id]);
    assert_eq!(logs.code, 0, "{}", logs.stderr);
    assert_eq!(logs.stdout, format!("hello from {}\n", &one.id[..12]));
    assert_eq!(logs.stderr, "to-stderr\n");
    let tail = d.docker(&["logs", "--tail", "1", &one.name]);
    assert_eq!(
        (tail.stdout.as_str(), tail.stderr.as_str()),
        (format!("hello from {}\n", &one.id[..12]).as_str(), "")
    );
    let stamped = d.ok(&["logs", "-t", &one.id]);
    let re =
        regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z hello from [0-9a-f]{12}\n$")
            .unwrap();
    assert!(re.is_match(&stamped), "{stamped:?}");
    let details = d.ok(&["logs", "--details", &one.id]);
    assert_eq!(details, format!(" hello from {}\n", &one.id[..12]));
    let future = d.docker(&["logs", "--since", "2099-01-01T00:00:00Z", &one.id]);
    assert_eq!((future.stdout.as_str(), future.stderr.as_str()), ("", ""));
    let err = d.fail(&["logs", "nosuch"]);
    assert!(err.contains("No such container: nosuch"), "{err}");

    // Unknown container routes answer, and do not bring the daemon down.
    let (code, _) = d.curl("GET", "/v1.41/containers/nosuch/top", None);
    assert_eq!(code, 404);
    let (code, body) = d.curl("POST", "/v1.41/containers/nosuch/stop", None);
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("No such container: nosuch"), "{body}");
    // A known path with another method is dockerd's 404, not a 405.
    let (code, body) = d.curl("GET", &format!("/v1.41/containers/{}", one.id), None);
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("page not found"), "{body}");
    let (code, body) = d.curl(
        "POST",
        &format!("/v1.41/containers/{}/wait?condition=bogus", one.id),
        None,
    );
    assert_eq!(code, 400, "{body}");
    let (code, body) = d.curl("GET", &format!("/v1.41/containers/{}/logs", one.id), None);
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("must specify at least one of 'stdout' or 'stderr'"),
        "{body}"
    );
    d.ok(&["version"]);
    d.ok(&["service", "rm", "web"]);
}

#[test]
fn rm_refuses_a_running_container_and_rm_force_gets_it_replaced() {
    let Some((_ctrd, d)) = common::swarm_with_test_image() else {
        return;
    };
    create_service(&d, "web", 2);
    let rows = running(&d, "web", 2);
    let victim = &rows[0];

    let err = d.fail(&["container", "rm", &victim.name]);
    assert!(
        err.contains(&format!(
            "Error response from daemon: cannot remove container \"{}\": container is running: stop the container before removing or force remove",
            victim.name
        )),
        "{err}"
    );
    let out = d.ok(&["container", "rm", "-f", &victim.id[..12]]);
    assert_eq!(out.trim(), &victim.id[..12]);
    let err = d.fail(&["container", "inspect", &victim.id]);
    assert!(err.contains("No such container"), "{err}");

    wait_task_error(&d, "web", "task: non-zero exit (137)");
    let after = running(&d, "web", 2);
    assert!(after.iter().all(|r| r.id != victim.id), "{after:?}");
    assert!(
        after.iter().any(|r| r.id == rows[1].id),
        "the other task is untouched"
    );
    d.ok(&["service", "rm", "web"]);
}

#[test]
fn stop_kill_and_wait_end_tasks_that_get_replaced() {
    let Some((_ctrd, d)) = common::swarm_with_test_image() else {
        return;
    };
    create_service(&d, "web", 2);
    let rows = running(&d, "web", 2);
    let (a, b) = (&rows[0], &rows[1]);

    // httpd as PID 1 ignores SIGTERM: stop ends it with the kill after 1 s.
    let out = d.ok(&["stop", "-t", "1", &a.name]);
    assert_eq!(out.trim(), a.name);
    let state = d.ok(&[
        "inspect",
        "--format",
        "{{.State.Status}} {{.State.ExitCode}} {{.State.Pid}}",
        &a.id,
    ]);
    assert_eq!(state.trim(), "exited 137 0");
    let waited = d.ok(&["wait", &a.id]);
    assert_eq!(waited.trim(), "137");
    // Stopping it again is no error (dockerd's 304).
    d.ok(&["stop", &a.id]);
    let exited = rows_filtered(&d, "status=exited");
    assert!(
        exited
            .iter()
            .any(|r| r.id == a.id && r.status.starts_with("Exited (137) ")),
        "{exited:?}"
    );
    wait_task_error(&d, "web", "task: non-zero exit (137)");

    // kill with a signal the process ignores leaves it running; the
    // default SIGKILL ends it, and a waiting `docker wait` returns.
    d.ok(&["kill", "--signal", "SIGUSR1", &b.id]);
    let still = d.ok(&["inspect", "--format", "{{.State.Running}}", &b.id]);
    assert_eq!(still.trim(), "true");
    let waiter = {
        let host = d.docker_host();
        let cfg = d.dir.path().join("cli-config");
        let id = b.id.clone();
        std::thread::spawn(move || {
            std::process::Command::new(common::docker_bin())
                .args(["wait", &id])
                .env("DOCKER_HOST", host)
                .env("DOCKER_CONFIG", cfg)
                .output()
                .unwrap()
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(500));
    d.ok(&["kill", &b.id]);
    let out = waiter.join().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "137");
    let err = d.fail(&["kill", &b.id]);
    assert!(
        err.contains(&format!(
            "cannot kill container: {}: container {} is not running",
            b.id, b.id
        )),
        "{err}"
    );
    let err = d.fail(&["kill", "--signal", "NOPE", &b.id]);
    assert!(err.contains("invalid signal: NOPE"), "{err}");

    // Both replaced; the exited containers stay listed with -a and can be
    // removed without force.
    let after = running(&d, "web", 2);
    assert!(
        after.iter().all(|r| r.id != a.id && r.id != b.id),
        "{after:?}"
    );
    // (The agent may have removed it already with its task's history.)
    let rm = d.docker(&["rm", &a.id]);
    if rm.code == 0 {
        assert_eq!(rm.stdout.trim(), a.id);
    } else {
        assert!(rm.stderr.contains("No such container"), "{}", rm.stderr);
    }
    d.ok(&["service", "rm", "web"]);
}

fn rows_filtered(d: &Daemon, filter: &str) -> Vec<Row> {
    list_rows(d, &["-a", "--filter", filter])
}
