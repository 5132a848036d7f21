//! End-to-end: daemon start, version negotiation, system calls.

mod common;

use common::Daemon;

#[test]
fn version_and_info_before_swarm() {
    let d = Daemon::start();
    let v = d.ok(&[
        "version",
        "--format",
        "{{.Server.APIVersion}} {{.Server.MinAPIVersion}}",
    ]);
    assert_eq!(v.trim(), "1.50 1.24");
    let info = d.ok(&[
        "info",
        "--format",
        "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
    ]);
    assert_eq!(info.trim(), "inactive false");
}

#[test]
fn ping_head_and_get_carry_negotiation_headers() {
    let d = Daemon::start();
    let out = std::process::Command::new("curl")
        .args(["-s", "-I", "--unix-socket"])
        .arg(d.socket())
        .arg("http://localhost/_ping")
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    for h in [
        "api-version: 1.50",
        "ostype: linux",
        "docker-experimental: false",
        "swarm: inactive",
        "cache-control: no-cache, no-store, must-revalidate",
    ] {
        assert!(head.contains(h), "missing {h} in {head}");
    }
    let (code, body) = d.curl("GET", "/_ping", None);
    assert_eq!((code, body.as_str()), (200, "OK"));
}

#[test]
fn version_prefixes_and_unknown_routes() {
    let d = Daemon::start();
    assert_eq!(d.curl("GET", "/v1.24/version", None).0, 200);
    assert_eq!(d.curl("GET", "/v1.41/info", None).0, 200);
    let (code, body) = d.curl("GET", "/v1.99/version", None);
    assert_eq!(code, 400);
    assert_eq!(
        body,
        r#"{"message":"client version 1.99 is too new. Maximum supported API version is 1.50"}"#
    );
    let (code, body) = d.curl("GET", "/v1.11/version", None);
    assert_eq!(code, 400);
    assert_eq!(
        body,
        "client version 1.11 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version\n"
    );
    let (code, body) = d.curl("GET", "/v1.41/nosuchthing", None);
    assert_eq!(
        (code, body.as_str()),
        (404, r#"{"message":"page not found"}"#)
    );
}

#[test]
fn config_file_sets_hosts_and_conflicts_with_flags() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("cfg.sock");
    let cfg = dir.path().join("daemon.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"hosts": ["unix://{}"], "data-root": "{}"}}"#,
            sock.display(),
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(common::shoald_bin())
        .arg("--config-file")
        .arg(&cfg)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    common::wait_for(20, "config-file daemon", || {
        let out = std::process::Command::new(common::docker_bin())
            .args(["version", "--format", "{{.Server.Version}}"])
            .env("DOCKER_HOST", format!("unix://{}", sock.display()))
            .output()
            .ok()?;
        out.status.success().then_some(())
    });
    let _ = child.kill();
    let _ = child.wait();
    // The same setting as flag and in the file is refused, as dockerd does.
    let out = std::process::Command::new(common::shoald_bin())
        .arg("--config-file")
        .arg(&cfg)
        .arg("--host")
        .arg("unix:///tmp/never.sock")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("specified both as a flag and in the configuration file"));
}

#[test]
fn swarm_endpoints_before_init_answer_like_dockerd() {
    let d = Daemon::start();
    let err = d.fail(&["node", "ls"]);
    assert!(
        err.contains("This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again."),
        "{err}"
    );
    let (code, _) = d.curl("GET", "/v1.41/swarm", None);
    assert_eq!(code, 503);
    let err = d.fail(&["swarm", "leave"]);
    assert!(err.contains("This node is not part of a swarm"), "{err}");
}
