//! End-to-end: rolling updates and rollbacks of services whose tasks run as
//! real containerd containers, driven by the stock CLI as a user would:
//! `service update` waiting on its progress, batches paced by parallelism
//! and delay, start-first order, failure actions (pause, rollback),
//! `service rollback` and `--force`.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::docker_bin;
use common::wait_for;
use common::Daemon;

const IMAGE: &str = "shoal-test/busybox:latest";

/// One row of `service ps --no-trunc`.
#[derive(Debug, Clone)]
struct Row {
    id: String,
    slot: String,
    desired: String,
    current: String,
}

fn ps(d: &Daemon, svc: &str) -> Vec<Row> {
    d.ok(&[
        "service",
        "ps",
        "--no-trunc",
        "--format",
        "{{.ID}}|{{.Name}}|{{.DesiredState}}|{{.CurrentState}}",
        svc,
    ])
    .lines()
    .map(|l| {
        let f: Vec<&str> = l.split('|').collect();
        Row {
            id: f[0].into(),
            slot: f[1].trim().trim_start_matches("\\_").trim().into(),
            desired: f[2].into(),
            current: f[3].into(),
        }
    })
    .collect()
}

fn is_running(r: &Row) -> bool {
    r.desired == "Running" && r.current.starts_with("Running")
}

#[track_caller]
fn wait_running(d: &Daemon, svc: &str, n: usize) -> Vec<Row> {
    wait_for(60, &format!("{n} running tasks of {svc}"), || {
        let r: Vec<Row> = ps(d, svc).into_iter().filter(is_running).collect();
        (r.len() == n).then_some(r)
    })
}

/// The service's tasks as the API shows them.
fn tasks(d: &Daemon, svc: &str) -> Vec<serde_json::Value> {
    // `{"service":{"NAME":true}}`, URL-encoded.
    let (code, body) = d.curl(
        "GET",
        &format!("/v1.41/tasks?filters=%7B%22service%22%3A%7B%22{svc}%22%3Atrue%7D%7D"),
        None,
    );
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn args_of(t: &serde_json::Value) -> String {
    t["Spec"]["ContainerSpec"]["Args"].to_string()
}

/// Seconds since the epoch of an RFC 3339 UTC timestamp as the API writes
/// them (`2026-01-02T03:04:05.123456789Z`).
fn epoch(ts: &str) -> f64 {
    let (date, time) = ts.trim_end_matches('Z').split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let t: Vec<f64> = time.split(':').map(|p| p.parse().unwrap()).collect();
    days as f64 * 86_400.0 + t[0] * 3600.0 + t[1] * 60.0 + t[2]
}

fn state(d: &Daemon, svc: &str) -> (String, String) {
    let out = d.service_format(svc, "{{.UpdateStatus.State}}|{{.UpdateStatus.Message}}");
    let (s, m) = out.trim().split_once('|').unwrap();
    (s.to_string(), m.to_string())
}

#[track_caller]
fn wait_state(d: &Daemon, svc: &str, want: &str) -> String {
    wait_for(90, &format!("{svc} update state {want}"), || {
        let (s, m) = state(d, svc);
        (s == want).then_some(m)
    })
}

/// Creates `name` running busybox httpd (which ignores SIGTERM, hence the
/// short grace period) with extra flags, and waits for its tasks.
fn create(d: &Daemon, name: &str, replicas: usize, flags: &[&str]) -> Vec<Row> {
    let n = replicas.to_string();
    let mut args = vec![
        "service",
        "create",
        "-d",
        "--name",
        name,
        "--replicas",
        &n,
        "--stop-grace-period",
        "1s",
    ];
    args.extend(flags);
    args.extend([IMAGE, "httpd", "-f", "-p", "80"]);
    d.ok(&args);
    wait_running(d, name, replicas)
}

#[test]
fn update_waits_converges_and_replaces_in_batches() {
    let Some((_ctrd, d)) = common::swarm_with_test_image() else {
        return;
    };
    let before = create(
        &d,
        "web",
        4,
        &[
            "--update-parallelism",
            "2",
            "--update-delay",
            "2s",
            "--update-monitor",
            "1s",
        ],
    );
    // Watch the slots while the CLI waits on the update: never more than
    // two of them without a running task.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        let host = d.docker_host();
        let config = d.dir.path().join("cli-config");
        std::thread::spawn(move || {
            let mut worst = 0;
            let mut polls = 0;
            while !stop.load(Ordering::SeqCst) && polls < 600 {
                polls += 1;
                let o = Command::new(docker_bin())
                    .args([
                        "service",
                        "ps",
                        "--format",
                        "{{.Name}}|{{.DesiredState}}|{{.CurrentState}}",
                        "web",
                    ])
                    .env("DOCKER_HOST", &host)
                    .env("DOCKER_CONFIG", &config)
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&o.stdout).into_owned();
                let mut slots: BTreeMap<String, bool> = BTreeMap::new();
                for l in text.lines() {
                    let f: Vec<&str> = l.split('|').collect();
                    if f.len() < 3 {
                        continue;
                    }
                    let slot = f[0].trim().trim_start_matches("\\_").trim().to_string();
                    let up = f[1] == "Running" && f[2].starts_with("Running");
                    *slots.entry(slot).or_default() |= up;
                }
                if slots.len() == 4 {
                    worst = worst.max(slots.values().filter(|up| !**up).count());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            worst
        })
    };
    let out = d.docker_within(
        Duration::from_secs(120),
        &["service", "update", "--env-add", "V=2", "web"],
        None,
    );
    stop.store(true, Ordering::SeqCst);
    let worst = watcher.join().unwrap();
    assert_eq!(out.code, 0, "{out:?}\n{}", d.log());
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("overall progress: 4 out of 4 tasks"), "{all}");
    assert!(all.contains("verify: Service web converged"), "{all}");
    assert!(worst <= 2, "{worst} slots were down at once");

    assert_eq!(wait_state(&d, "web", "completed"), "update completed");
    let after = wait_running(&d, "web", 4);
    assert!(after.iter().all(|r| before.iter().all(|b| b.id != r.id)));

    // Two batches: each of the two update workers starts its second task
    // two seconds (the delay) after its first one runs, as swarmkit's
    // updater does (per worker, so the batches need not line up).
    let mut new: Vec<(f64, f64)> = tasks(&d, "web")
        .iter()
        .filter(|t| t["DesiredState"] == "running")
        .map(|t| {
            (
                epoch(t["CreatedAt"].as_str().unwrap()),
                epoch(t["Status"]["Timestamp"].as_str().unwrap()),
            )
        })
        .collect();
    new.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(new.len(), 4);
    assert!(new[1].0 - new[0].0 < 0.5, "first batch together: {new:?}");
    assert!(new[3].0 - new[2].0 < 0.5, "second batch together: {new:?}");
    let first_running = new[0].1.min(new[1].1);
    assert!(
        new[2].0 - first_running >= 1.9,
        "second batch {:.2}s after the first ran: {new:?}",
        new[2].0 - first_running
    );
}

#[test]
fn start_first_runs_the_new_task_before_stopping_the_old_one() {
    let Some((_ctrd, d)) = common::swarm_with_test_image() else {
        return;
    };
    let old = create(
        &d,
        "web",
        1,
        &["--update-order", "start-first", "--update-monitor", "1s"],
    )
    .remove(0);
    // The new task stays starting until its health check passes (~2 s):
    // meanwhile the old one must still run and be wanted.
    d.ok(&[
        "service",
        "update",
        "-d",
        "--health-cmd",
        "test -e /tmp/ok",
        "--health-interval",
        "1s",
        "--health-retries",
        "5",
        "--args",
        "sh -c 'sleep 2; touch /tmp/ok; exec httpd -f -p 80'",
        "web",
    ]);
    let overlap = wait_for(60, "the new task starting beside the old one", || {
        let rows = ps(&d, "web");
        let old_up = rows.iter().any(|r| r.id == old.id && is_running(r));
        let new_starting = rows
            .iter()
            .any(|r| r.id != old.id && r.desired == "Running" && r.current.starts_with("Starting"));
        (old_up && new_starting).then_some(rows)
    });
    assert_eq!(overlap.len(), 2, "{overlap:?}");
    wait_state(&d, "web", "completed");
    let all = wait_for(30, "the old task stopped", || {
        let all = tasks(&d, "web");
        all.iter()
            .any(|t| t["ID"] == old.id.as_str() && t["Status"]["State"] == "shutdown")
            .then_some(all)
    });
    let new = all.iter().find(|t| t["DesiredState"] == "running").unwrap();
    let gone = all.iter().find(|t| t["ID"] == old.id.as_str()).unwrap();
    assert_eq!(gone["DesiredState"], "shutdown");
    assert!(
        epoch(gone["Status"]["Timestamp"].as_str().unwrap())
            >= epoch(new["Status"]["Timestamp"].as_str().unwrap()),
        "the old task stopped after the new one ran: {gone} {new}"
    );
}

#[test]
fn a_failing_update_pauses_until_the_next_update() {
    let Some((_ctrd, d)) = common::swarm_with_test_image() else {
        return;
    };
    // The delay keeps the second slot waiting while the first replacement
    // is watched (without it, the worker moves on as soon as the new task
    // has run at all, as swarmkit's does).
    let before = create(
        &d,
        "web",
        2,
        &["--update-monitor", "2s", "--update-delay", "3s"],
    );
    let out = d.docker_within(
        Duration::from_secs(120),
        &["service", "update", "--args", "sh -c 'exit 1'", "web"],
        None,
    );
    assert_eq!(out.code, 1, "{out:?}");
    let msg = wait_state(&d, "web", "paused");
    let failed = msg
        .strip_prefix("update paused due to failure or early termination of task ")
        .unwrap_or_else(|| panic!("{msg}"));
    assert_eq!(failed.len(), 25, "{msg}");
    assert!(
        out.stderr
            .contains(&format!("service update paused: {msg}")),
        "{out:?}"
    );
    // Paused: the second slot keeps its old task, and stays so.
    std::thread::sleep(Duration::from_secs(3));
    let all = tasks(&d, "web");
    let old_kept: Vec<&serde_json::Value> = all
        .iter()
        .filter(|t| t["DesiredState"] == "running" && !args_of(t).contains("exit 1"))
        .collect();
    assert_eq!(old_kept.len(), 1, "{all:?}");
    assert!(before.iter().any(|b| old_kept[0]["ID"] == b.id.as_str()));
    assert_eq!(state(&d, "web").0, "paused");

    // The next update starts over and goes through.
    let out = d.docker_within(
        Duration::from_secs(120),
        &["service", "update", "--args", "httpd -f -p 8080", "web"],
        None,
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("verify: Service web converged"),
        "{out:?}"
    );
    wait_state(&d, "web", "completed");
    let rows = wait_running(&d, "web", 2);
    let all = tasks(&d, "web");
    for r in rows {
        let t = all.iter().find(|t| t["ID"] == r.id.as_str()).unwrap();
        assert!(args_of(t).contains("8080"), "{t}");
    }
}

#[test]
fn a_failing_update_rolls_back_with_failure_action_rollback() {
    let Some((_ctrd, d)) = common::swarm_with_test_image() else {
        return;
    };
    create(
        &d,
        "web",
        2,
        &[
            "--update-failure-action",
            "rollback",
            "--update-monitor",
            "2s",
        ],
    );
    let out = d.docker_within(
        Duration::from_secs(120),
        &["service", "update", "--args", "sh -c 'exit 1'", "web"],
        None,
    );
    let all_out = format!("{}{}", out.stdout, out.stderr);
    assert!(
        all_out
            .contains("rollback: update rolled back due to failure or early termination of task "),
        "{out:?}"
    );
    assert_eq!(
        wait_state(&d, "web", "rollback_completed"),
        "rollback completed"
    );
    let args = d.service_format("web", "{{json .Spec.TaskTemplate.ContainerSpec.Args}}");
    assert_eq!(args.trim(), r#"["httpd","-f","-p","80"]"#);
    let prev = d.service_format("web", "{{json .PreviousSpec}}");
    assert_eq!(prev.trim(), "null", "the previous spec is used up");
    let rows = wait_running(&d, "web", 2);
    let all = tasks(&d, "web");
    for r in rows {
        let t = all.iter().find(|t| t["ID"] == r.id.as_str()).unwrap();
        assert_eq!(args_of(t), r#"["httpd","-f","-p","80"]"#, "{t}");
    }
}

#[test]
fn service_rollback_goes_back_to_the_previous_spec() {
    let Some((_ctrd, d)) = common::swarm_with_test_image() else {
        return;
    };
    create(&d, "web", 2, &["--update-monitor", "1s"]);
    d.ok(&["service", "update", "-d", "--env-add", "V=2", "web"]);
    wait_state(&d, "web", "completed");
    let out = d.docker_within(
        Duration::from_secs(120),
        &["service", "rollback", "web"],
        None,
    );
    assert_eq!(out.code, 0, "{out:?}");
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        all.contains("rollback: manually requested rollback"),
        "{all}"
    );
    assert!(all.contains("verify: Service web converged"), "{all}");
    assert_eq!(
        wait_state(&d, "web", "rollback_completed"),
        "rollback completed"
    );
    let env = d.service_format("web", "{{json .Spec.TaskTemplate.ContainerSpec.Env}}");
    assert_eq!(env.trim(), "null");
    let rows = wait_running(&d, "web", 2);
    let all = tasks(&d, "web");
    for r in rows {
        let t = all.iter().find(|t| t["ID"] == r.id.as_str()).unwrap();
        assert!(t["Spec"]["ContainerSpec"]["Env"].is_null(), "{t}");
    }
}

#[test]
fn force_replaces_every_task() {
    let Some((_ctrd, d)) = common::swarm_with_test_image() else {
        return;
    };
    let before = create(&d, "web", 3, &["--update-monitor", "1s"]);
    let out = d.docker_within(
        Duration::from_secs(120),
        &["service", "update", "--force", "web"],
        None,
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("verify: Service web converged"),
        "{out:?}"
    );
    let after = wait_running(&d, "web", 3);
    for r in &after {
        assert!(before.iter().all(|b| b.id != r.id), "{r:?} is new");
    }
    let mut slots: Vec<&str> = after.iter().map(|r| r.slot.as_str()).collect();
    slots.sort();
    assert_eq!(slots, ["web.1", "web.2", "web.3"]);
    let shut: Vec<Row> = ps(&d, "web")
        .into_iter()
        .filter(|r| before.iter().any(|b| b.id == r.id))
        .collect();
    assert_eq!(shut.len(), 3);
    assert!(shut.iter().all(|r| r.desired == "Shutdown"), "{shut:?}");
    wait_state(&d, "web", "completed");
}
