//! End-to-end: the wall clock jumps forward and back under a running
//! shoald (libfaketime moves its `CLOCK_REALTIME`; the monotonic clock, which
//! never jumps on a real system, is left alone). Writes, scheduling and
//! task starts go on at every step: one day ahead, past the 90-day node
//! certificate's expiry, two days before the swarm existed, and back.

mod common;

use std::path::Path;

use common::wait_for;
use common::Containerd;
use common::Daemon;

const IMAGE: &str = "shoal-test/busybox:latest";
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

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

/// Sets the daemon's clock offset (libfaketime re-reads the file each
/// second) and waits until the daemon reports that day.
fn jump(d: &Daemon, clock: &Path, offset: &str, days: i64) {
    std::fs::write(clock, format!("{offset}\n")).unwrap();
    let day = std::process::Command::new("date")
        .args(["-u", "-d", &format!("{days} days"), "+%Y-%m-%d"])
        .output()
        .expect("date");
    let day = String::from_utf8_lossy(&day.stdout).trim().to_string();
    wait_for(
        10,
        &format!("the daemon's clock at {offset} ({day})"),
        || {
            let t = d.ok(&["system", "info", "--format", "{{.SystemTime}}"]);
            t.starts_with(&day).then_some(())
        },
    );
}

/// A write, a scale and its tasks running, at the current clock.
fn works(d: &Daemon, step: &str, replicas: usize) {
    let f = common::temp_file(d, step, step.as_bytes());
    d.ok(&["secret", "create", step, &f]);
    d.ok(&["service", "scale", "--detach", &format!("web={replicas}")]);
    wait_for(90, &format!("{replicas} tasks running at {step}"), || {
        (running(d, "web") == replicas).then_some(())
    });
    let state = d.ok(&["node", "ls", "--format", "{{.Status}}"]);
    assert_eq!(state.trim(), "Ready", "at {step}");
}

#[test]
fn clock_jumps_forward_and_back_leave_the_swarm_working() {
    if !Path::new(LIBFAKETIME).exists() {
        assert!(
            std::env::var_os("SHOAL_REQUIRE_CONTAINERD").is_none(),
            "libfaketime is required here (scripts/deps.sh installs faketime)"
        );
        eprintln!("skipping: no {LIBFAKETIME}");
        return;
    }
    let Some(ctrd) = Containerd::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let clock = dir.path().join("clock");
    std::fs::write(&clock, "+0\n").unwrap();
    let clock_s = clock.display().to_string();
    let d = Daemon::with_containerd_env(
        &ctrd,
        &[
            ("LD_PRELOAD", LIBFAKETIME),
            ("FAKETIME_TIMESTAMP_FILE", &clock_s),
            ("FAKETIME_CACHE_DURATION", "1"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    let tar = common::make_test_image(d.dir.path(), false);
    d.ok(&["load", "-i", &tar.display().to_string()]);
    d.ok(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
    d.ok(&[
        "service", "create", "--detach", "--name", "web", IMAGE, "sleep", "600",
    ]);
    works(&d, "start", 1);
    let steps = [
        ("+1d", 1, "a-day-ahead", 2),
        ("+100d", 100, "past-cert-expiry", 3),
        ("-2d", -2, "before-the-swarm", 1),
        ("+0", 0, "back", 2),
    ];
    for (offset, days, step, replicas) in steps {
        jump(&d, &clock, offset, days);
        works(&d, step, replicas);
    }
    let names = d.ok(&["secret", "ls", "--format", "{{.Name}}"]);
    for (_, _, step, _) in steps {
        assert!(names.lines().any(|l| l == step), "{step} lost: {names}");
    }
    assert!(!d.log().contains("panicked"), "{}", d.log());
    eprintln!(
        "{} clock jumps: writes, scaling and task starts worked after each",
        steps.len()
    );
}
