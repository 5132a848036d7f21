//! End-to-end: `docker service logs` (and task logs) against shoald on a
//! private containerd, driven by the stock CLI: the `name.slot.task@node`
//! prefixes the CLI builds from the details dockerd sends, `--no-task-ids`,
//! `--raw`, `--tail`, `-t`, and `-f` picking up lines written later and
//! tasks started later.
//!
//! Skips (with the reason) when not root or when containerd is missing,
//! unless SHOAL_REQUIRE_CONTAINERD is set.

mod common;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;
use std::time::Instant;

use common::wait_for;
use common::Daemon;

const IMAGE: &str = "shoal-test/busybox:latest";
const SCRIPT: &str = "echo to-stderr >&2; sleep 1; echo hello from $HOSTNAME; exec httpd -f -p 80";

fn create_service(d: &Daemon, name: &str, replicas: u32, script: &str) {
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
        script,
    ]);
}

/// Running task name (`web.1`) to (full task ID, container ID), once
/// `n` tasks run and each has printed a line containing `ready`.
fn wait_running(
    d: &Daemon,
    service: &str,
    n: usize,
    ready: &str,
) -> BTreeMap<String, (String, String)> {
    let filter = format!("label=com.docker.swarm.service.name={service}");
    let found = wait_for(60, &format!("{n} running tasks of {service}"), || {
        let out = d.ok(&[
            "container",
            "ls",
            "--no-trunc",
            "--filter",
            &filter,
            "--format",
            "{{.ID}} {{.Names}}",
        ]);
        let mut m = BTreeMap::new();
        for l in out.lines() {
            let (id, name) = l.split_once(' ')?;
            // web.1.<task id>
            let (task_name, task_id) = name.rsplit_once('.')?;
            m.insert(task_name.to_string(), (task_id.to_string(), id.to_string()));
        }
        (m.len() == n).then_some(m)
    });
    for (_, cid) in found.values() {
        wait_for(20, "the task's output", || {
            d.docker(&["logs", cid])
                .stdout
                .contains(ready)
                .then_some(())
        });
    }
    found
}

fn node_hostname(d: &Daemon) -> String {
    d.ok(&[
        "node",
        "inspect",
        "self",
        "--format",
        "{{.Description.Hostname}}",
    ])
    .trim()
    .to_string()
}

fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn service_logs_prefix_each_line_with_its_task() {
    let Some((_ctrd, d)) = common::swarm_with_test_image() else {
        return;
    };
    create_service(&d, "web", 2, SCRIPT);
    let tasks = wait_running(&d, "web", 2, "hello");
    let host = node_hostname(&d);

    let out = d.docker(&["service", "logs", "web"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let want = |text: &dyn Fn(&str) -> String, ids: bool| -> Vec<String> {
        let mut v: Vec<String> = tasks
            .iter()
            .map(|(name, (task, cid))| {
                let prefix = if ids {
                    format!("{name}.{}", &task[..12])
                } else {
                    name.clone()
                };
                format!("{prefix}@{host}    | {}", text(cid))
            })
            .collect();
        v.sort();
        v
    };
    let hello = |cid: &str| format!("hello from {}", &cid[..12]);
    let stderr = |_: &str| "to-stderr".to_string();
    assert_eq!(
        sorted_lines(&out.stdout),
        want(&hello, true),
        "{}",
        out.stdout
    );
    assert_eq!(
        sorted_lines(&out.stderr),
        want(&stderr, true),
        "{}",
        out.stderr
    );

    let out = d.docker(&["service", "logs", "--no-task-ids", "web"]);
    assert_eq!(sorted_lines(&out.stdout), want(&hello, false));

    let raw = d.docker(&["service", "logs", "--raw", "web"]);
    let mut expected: Vec<String> = tasks.values().map(|(_, cid)| hello(cid)).collect();
    expected.sort();
    assert_eq!(sorted_lines(&raw.stdout), expected);
    assert_eq!(raw.stderr, "to-stderr\nto-stderr\n");

    // The tail counts per task: the last line of each is its hello.
    let tail = d.docker(&["service", "logs", "--tail", "1", "web"]);
    assert_eq!(sorted_lines(&tail.stdout), want(&hello, true));
    assert_eq!(tail.stderr, "");

    let stamped = d.ok(&["service", "logs", "-t", "web"]);
    let re = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z web\.[12]\.[0-9a-z]{12}@\S+    \| hello from [0-9a-f]{12}$").unwrap();
    for l in stamped.lines() {
        assert!(re.is_match(l), "{l:?}");
    }
    assert_eq!(stamped.lines().count(), 2);

    // One task's logs, by task ID.
    let (task, cid) = &tasks["web.1"];
    let one = d.docker(&["service", "logs", task]);
    assert_eq!(
        one.stdout,
        format!("web.1.{}@{host}    | {}\n", &task[..12], hello(cid))
    );
    let err = d.fail(&["service", "logs", "nosuch"]);
    assert!(err.contains("no such task or service: nosuch"), "{err}");
    let (code, body) = d.curl("GET", "/v1.41/services/web/logs", None);
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("must specify at least one of 'stdout' or 'stderr'"),
        "{body}"
    );
    d.ok(&["service", "rm", "web"]);
}

/// `docker service logs -f SERVICE`, its stdout lines sent to a channel.
struct Follow {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Follow {
    fn start(d: &Daemon, service: &str) -> Follow {
        let mut child = Command::new(common::docker_bin())
            .args(["service", "logs", "-f", "--raw", service])
            .env("DOCKER_HOST", d.docker_host())
            .env("DOCKER_CONFIG", d.dir.path().join("cli-config"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Follow { child, lines }
    }

    /// Waits (at most `secs`) for a line matching `f`.
    fn expect(&self, secs: u64, what: &str, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) if f(&l) => return l,
                Ok(l) => seen.push(l),
                Err(_) => break,
            }
        }
        panic!("no line with {what} within {secs}s; saw {seen:?}");
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        // The CLI just hangs up, as when a user presses ^C.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn service_logs_follow_sees_later_lines_and_new_tasks() {
    let Some((_ctrd, d)) = common::swarm_with_test_image() else {
        return;
    };
    create_service(
        &d,
        "ticker",
        1,
        "i=0; while true; do echo tick $i $HOSTNAME; i=$((i+1)); sleep 1; done",
    );
    let tasks = wait_running(&d, "ticker", 1, "tick 1 ");
    let (_, cid) = &tasks["ticker.1"];

    // What is logged before following starts...
    let before = d.ok(&["service", "logs", "--raw", "ticker"]);
    let last = before
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .max()
        .unwrap();
    let follow = Follow::start(&d, "ticker");
    // ... and a line written after it.
    follow.expect(15, &format!("a tick after {last}"), |l| {
        l.split_whitespace()
            .nth(1)
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n > last + 1)
    });

    // A task started while following shows up too.
    d.ok(&["container", "rm", "-f", cid]);
    let short = &cid[..12];
    follow.expect(40, "a tick from the replacement task", |l| {
        l.starts_with("tick ") && !l.ends_with(short)
    });
    drop(follow);

    // The daemon still answers after the client hung up.
    d.ok(&["service", "ls"]);
    d.ok(&["service", "rm", "ticker"]);
}

#[test]
fn container_logs_follow_ends_when_the_container_stops() {
    let Some((_ctrd, d)) = common::swarm_with_test_image() else {
        return;
    };
    create_service(&d, "web", 1, SCRIPT);
    let tasks = wait_running(&d, "web", 1, "hello");
    let (_, cid) = &tasks["web.1"];
    let mut child = Command::new(common::docker_bin())
        .args(["logs", "-f", cid])
        .env("DOCKER_HOST", d.docker_host())
        .env("DOCKER_CONFIG", d.dir.path().join("cli-config"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(child.try_wait().unwrap().is_none(), "still following");
    d.ok(&["stop", "-t", "1", cid]);
    let done = wait_for(15, "docker logs -f to end", || child.try_wait().unwrap());
    assert!(done.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("hello from {}\n", &cid[..12])
    );
    d.ok(&["service", "rm", "web"]);
}
