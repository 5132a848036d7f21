//! End-to-end: containerd down when shoald starts, and containerd restarted
//! while services are created and scaled. shoald serves the API throughout
//! (swarm commands work, task starts wait for the engine), tasks converge
//! once containerd is back, and every acknowledged write is there.

mod common;

use common::wait_for;
use common::Daemon;

const IMAGE: &str = "shoal-test/busybox:latest";

/// How many of the service's tasks should run and do.
fn running(d: &Daemon, svc: &str) -> usize {
    d.ok(&[
        "service",
        "ps",
        "--format",
        "{{.DesiredState}}|{{.CurrentState}}",
        svc,
    ])
    .lines()
    .filter(|l| l.starts_with("Running|Running"))
    .count()
}

#[track_caller]
fn wait_running(d: &Daemon, svc: &str, n: usize) {
    wait_for(90, &format!("{n} running tasks of {svc}"), || {
        (running(d, svc) == n).then_some(())
    });
}

fn create(d: &Daemon, name: &str, replicas: usize) {
    d.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        name,
        "--replicas",
        &replicas.to_string(),
        IMAGE,
        "sleep",
        "600",
    ]);
}

#[test]
fn containerd_down_at_start_then_back_converges() {
    let Some((mut ctrd, mut d)) = common::swarm_with_test_image() else {
        return;
    };
    create(&d, "before", 2);
    wait_running(&d, "before", 2);
    d.stop();
    ctrd.stop();

    // shoald starts without its engine and serves the swarm API.
    d.restart();
    d.ok(&["node", "ls"]);
    d.ok(&["info"]);
    create(&d, "during", 2);
    let secret = common::temp_file(&d, "s", b"v");
    d.ok(&["secret", "create", "while-down", &secret]);
    d.ok(&["service", "scale", "--detach", "before=3"]);
    assert_eq!(running(&d, "during"), 0);
    assert!(d.log().lines().all(|l| !l.contains("panicked")));

    // The engine comes back: every task converges.
    ctrd.start_again();
    wait_running(&d, "before", 3);
    wait_running(&d, "during", 2);
    let names = d.ok(&["secret", "ls", "--format", "{{.Name}}"]);
    assert!(names.contains("while-down"), "{names}");
}

#[test]
fn containerd_restarted_under_load_converges() {
    let Some((mut ctrd, d)) = common::swarm_with_test_image() else {
        return;
    };
    create(&d, "steady", 2);
    wait_running(&d, "steady", 2);
    let restarts = 3;
    let mut created = Vec::new();
    std::thread::scope(|s| {
        // A stream of writes (secrets, services, scaling) while containerd
        // goes away and comes back `restarts` times.
        let writer = s.spawn(|| {
            let mut made = Vec::new();
            for i in 0..12 {
                let secret = common::temp_file(&d, &format!("s{i}"), b"v");
                let name = format!("load-{i}");
                d.ok(&["secret", "create", &name, &secret]);
                if i % 4 == 0 {
                    create(&d, &format!("svc-{i}"), 1);
                }
                d.ok(&[
                    "service",
                    "scale",
                    "--detach",
                    &format!("steady={}", 2 + i % 3),
                ]);
                made.push(name);
            }
            made
        });
        for _ in 0..restarts {
            ctrd.restart();
            // Reads keep being served while it restarts.
            d.ok(&["service", "ls"]);
        }
        created = writer.join().expect("writer");
    });
    d.ok(&["service", "scale", "--detach", "steady=2"]);
    wait_running(&d, "steady", 2);
    for i in [0, 4, 8] {
        wait_running(&d, &format!("svc-{i}"), 1);
    }
    let names = d.ok(&["secret", "ls", "--format", "{{.Name}}"]);
    for n in &created {
        assert!(names.lines().any(|l| l == n), "{n} lost: {names}");
    }
    assert!(
        !d.log().contains("panicked"),
        "shoald panicked:\n{}",
        d.log()
    );
    eprintln!(
        "containerd restarted {restarts} times under {} writes; all converged",
        created.len() * 2 + 3
    );
}
