//! `docker service logs` on any manager gathers the task logs of every node
//! (through the leader's log broker), and `-f` follows tasks wherever they
//! start later.

use std::io::BufRead;
use std::io::BufReader;
use std::process::Command;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;
use std::time::Instant;

use compat_tests::cluster::cli::docker_bin;
use compat_tests::cluster::image::TEST_IMAGE;
use compat_tests::cluster::swarm;
use compat_tests::cluster::wait_for;
use compat_tests::cluster::Engine;
use compat_tests::cluster::Lab;

/// The `@nodeN` of each line (`name.slot.id@host    | text`), sorted, unique.
fn hosts_in(out: &str, text: &str) -> Vec<String> {
    let mut hosts: Vec<String> = out
        .lines()
        .filter(|l| l.contains(text))
        .filter_map(|l| l.split('|').next()?.split('@').nth(1))
        .map(|h| h.trim().to_string())
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

/// `docker service logs -f ARGS...` of the stock CLI through `node`, under
/// `timeout` (bounded at `limit_secs`); its lines arrive on `lines`.
struct Follower {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    reader: std::thread::JoinHandle<()>,
}

impl Follower {
    fn start(node: &compat_tests::cluster::Node, limit_secs: u32, args: &[&str]) -> Follower {
        let mut child = Command::new("timeout")
            .args(["-k", "5", &limit_secs.to_string()])
            .arg(docker_bin())
            .args(["service", "logs", "-f"])
            .args(args)
            .env("DOCKER_HOST", node.docker_host())
            .env("DOCKER_CONFIG", node.dir().join("cli-config"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker service logs -f");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Follower {
            child,
            lines,
            reader,
        }
    }

    /// Ends the CLI: SIGTERM reaches it through `timeout` (a SIGKILL would
    /// orphan it with the pipe open).
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        drop(self.lines);
        let _ = self.reader.join();
    }
}

#[test]
fn e2e_cluster_service_logs_from_every_node() {
    let Some(lab) = Lab::for_test(Engine::Shoald) else {
        return;
    };
    let nodes = swarm::form(&lab, 2, 2);
    let (n1, n2) = (&nodes[0], &nodes[1]);
    for n in &nodes {
        n.load_test_image().expect("image");
    }
    n1.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "talk",
        "--mode",
        "global",
        TEST_IMAGE,
        "sh",
        "-c",
        "echo hello-from-task; exec sleep 3600",
    ]);
    wait_for(90, "a talk task on every node", || {
        swarm::running_on(n1, "talk").filter(|h| h.len() == 4)
    });
    // Through a manager that does not lead: every node's line.
    let all = ["node1", "node2", "node3", "node4"]
        .map(String::from)
        .to_vec();
    let hosts = wait_for(30, "a line from every node", || {
        let out = n2.ok(&["service", "logs", "talk"]);
        let hosts = hosts_in(&out, "hello-from-task");
        (hosts == all).then_some(hosts)
    });
    assert_eq!(hosts, all);

    // Follow a service on one node, then scale it out: the lines of the new
    // tasks come from wherever they start.
    n1.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "grow",
        "--replicas",
        "1",
        "--replicas-max-per-node",
        "1",
        TEST_IMAGE,
        "sh",
        "-c",
        "while true; do echo grow-line; sleep 1; done",
    ]);
    wait_for(60, "the first grow task", || {
        swarm::running_on(n1, "grow").filter(|h| h.len() == 1)
    });
    let follower = Follower::start(n2, 60, &["grow"]);
    n1.ok(&["service", "scale", "-d", "grow=4"]);
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut seen: Vec<String> = Vec::new();
    while Instant::now() < deadline && seen.len() < 4 {
        let Ok(line) = follower.lines.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        for h in hosts_in(&line, "grow-line") {
            if !seen.contains(&h) {
                seen.push(h);
            }
        }
    }
    follower.stop();
    seen.sort();
    assert_eq!(
        seen, all,
        "a followed service's lines from the nodes its new tasks run on"
    );
}

/// The numbers of the `tick-N` lines in `lines`, in order.
fn ticks(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|l| l.rsplit("tick-").next()?.trim().parse().ok())
        .collect()
}

#[test]
fn e2e_cluster_service_logs_follow_outlives_the_leader() {
    let Some(lab) = Lab::for_test(Engine::Shoald) else {
        return;
    };
    let nodes = swarm::form(&lab, 3, 1);
    let (n1, n2, n4) = (&nodes[0], &nodes[1], &nodes[3]);
    n4.load_test_image().expect("image");
    n1.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "tick",
        "--constraint",
        "node.hostname==node4",
        TEST_IMAGE,
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.2; done",
    ]);
    wait_for(90, "the tick task", || {
        swarm::running_on(n1, "tick").filter(|h| h.len() == 1)
    });
    // Followed through node2, which does not lead; node1 leads (it made the
    // swarm) until its shoald is killed.
    let follower = Follower::start(n2, 90, &["--tail", "0", "tick"]);
    let mut lines: Vec<String> = Vec::new();
    let mut read_until = |limit: Duration, enough: &dyn Fn(&[String]) -> bool| {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline && !enough(&lines) {
            if let Ok(l) = follower.lines.recv_timeout(Duration::from_millis(200)) {
                lines.push(l);
            }
        }
        lines.clone()
    };
    let before = read_until(Duration::from_secs(30), &|l| ticks(l).len() >= 10);
    assert!(ticks(&before).len() >= 10, "lines before: {before:?}");
    n1.kill_engine();
    let at_kill = ticks(&before).len();
    // 40 more lines is 8 s of the task's output: well past a new leader.
    let after = read_until(Duration::from_secs(60), &|l| ticks(l).len() >= at_kill + 40);
    follower.stop();
    let seen = ticks(&after);
    assert!(
        seen.len() >= at_kill + 40,
        "the follower went quiet after the leader died: {} lines, {} before the kill",
        seen.len(),
        at_kill
    );
    // None lost and none twice across the move to the new leader.
    for w in seen.windows(2) {
        assert_eq!(w[1], w[0] + 1, "a gap or a repeat: {seen:?}");
    }
}
