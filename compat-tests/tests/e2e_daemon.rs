//! End-to-end: shoald as a service people run. Prometheus metrics at
//! `--metrics-addr`, SIGHUP reloading the log level from the configuration
//! file, and the systemd unit that ships with it.

mod common;

use std::time::Duration;
use std::time::Instant;

use common::Daemon;

/// `GET /metrics` from inside the daemon's namespaces.
fn scrape(d: &Daemon, addr: &str) -> String {
    let out = d.node().expect("every daemon runs in a node").run(&[
        "curl",
        "-s",
        "--max-time",
        "5",
        &format!("http://{addr}/metrics"),
    ]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of the sample `name` (labels included, as printed).
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn metrics_report_the_swarm_and_the_api_by_route() {
    let addr = "127.0.0.1:9323";
    let d = Daemon::start_with(&["--metrics-addr", addr]);
    let before = scrape(&d, addr);
    assert_eq!(sample(&before, "swarm_node_manager"), Some(0.0), "{before}");
    assert!(before.contains("engine_daemon_engine_info{"), "{before}");

    d.ok(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
    let secret = common::temp_file(&d, "s", b"x");
    d.ok(&["secret", "create", "s1", &secret]);
    d.ok(&["secret", "create", "s2", &secret]);
    d.ok(&[
        "service",
        "create",
        "--detach",
        "--replicas",
        "3",
        "--name",
        "web",
        "--no-resolve-image",
        "busybox",
    ]);
    let text = common::wait_for(20, "three tasks in the metrics", || {
        let t = scrape(&d, addr);
        let tasks: f64 = t
            .lines()
            .filter(|l| l.starts_with("swarm_manager_tasks_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        (tasks == 3.0).then_some(t)
    });
    for (name, want) in [
        ("swarm_node_manager", 1.0),
        ("swarm_manager_leader", 1.0),
        ("swarm_manager_nodes{state=\"ready\"}", 1.0),
        ("swarm_manager_nodes{state=\"down\"}", 0.0),
        ("swarm_manager_services_total", 1.0),
        ("swarm_manager_secrets_total", 2.0),
        // The ingress network.
        ("swarm_manager_networks_total", 1.0),
        ("swarm_manager_configs_total", 0.0),
    ] {
        assert_eq!(sample(&text, name), Some(want), "{name} in\n{text}");
    }
    assert!(
        sample(&text, "shoal_raft_applied_index").unwrap_or(0.0) > 0.0,
        "{text}"
    );
    // Each call counted under its route, whatever the version prefix.
    let created = "shoal_api_request_duration_seconds_count{method=\"POST\",route=\"/secrets/create\",code=\"201\"}";
    assert_eq!(sample(&text, created), Some(2.0), "{text}");
    assert!(
        text.contains("shoal_api_request_duration_seconds_bucket{le=\"0.005\",method=\"POST\",route=\"/secrets/create\",code=\"201\"}")
            || text.contains("route=\"/secrets/create\",code=\"201\",le=\"0.005\"}"),
        "{text}"
    );
    assert!(!text.contains(
        &d.ok(&["secret", "inspect", "--format", "{{.ID}}", "s1"])
            .trim()
            .to_string()
    ));
}

#[test]
fn sighup_reloads_the_log_level_from_the_configuration_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("daemon.json");
    std::fs::write(&file, r#"{"log-level": "info"}"#).unwrap();
    let d = Daemon::start_with(&["--config-file", file.to_str().unwrap()]);
    let pid: i32 = std::fs::read_to_string(d.data_root().join("shoald.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    d.ok(&["version"]);
    assert!(!d.log().contains("DEBUG"), "{}", d.log());

    std::fs::write(&file, r#"{"log-level": "debug"}"#).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    common::wait_for(10, "the reload", || {
        d.log().contains("Reloaded configuration").then_some(())
    });
    // Debug lines from then on (every CLI call leaves a few).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.log().contains("DEBUG") {
        assert!(
            Instant::now() < deadline,
            "no debug line after the reload:\n{}",
            d.log()
        );
        d.ok(&["info"]);
    }

    // A broken file changes nothing and the daemon goes on.
    std::fs::write(&file, "{not json").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    common::wait_for(10, "the refused reload", || {
        d.log()
            .contains("Error reconfiguring the daemon")
            .then_some(())
    });
    d.ok(&["version"]);
}

#[test]
fn the_systemd_unit_is_valid() {
    let Some(analyze) = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        eprintln!("skipped: systemd-analyze not installed");
        return;
    };
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/systemd/shoald.service"),
    )
    .unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("ExecReload=/bin/kill -s HUP $MAINPID"));
    // Checked with the binary under test in place of the installed one.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shoald.service");
    let bin = common::shoald_bin();
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/shoald", bin.to_str().unwrap()),
    )
    .unwrap();
    let out = std::process::Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // Units it points at that this machine lacks (containerd.service,
    // nftables.service) are fine; anything about shoald's own unit is not.
    let ours: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("shoald.service"))
        .collect();
    assert!(ours.is_empty(), "{err}");
}
