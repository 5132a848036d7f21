//! End-to-end: swarm init, tokens, update, autolock, leave, durability.

mod common;

use common::Daemon;

#[test]
fn init_prints_join_command_and_info_shows_swarm() {
    let d = Daemon::start();
    let out = d.ok(&[
        "swarm",
        "init",
        "--advertise-addr",
        "127.0.0.1",
        "--listen-addr",
        "127.0.0.1:2380",
        "--task-history-limit",
        "3",
        "--dispatcher-heartbeat",
        "7s",
        "--cert-expiry",
        "48h",
    ]);
    assert!(out.contains("Swarm initialized: current node ("), "{out}");
    assert!(out.contains("docker swarm join --token SWMTKN-1-"), "{out}");
    assert!(out.contains("127.0.0.1:2380"), "{out}");
    let info = d.ok(&[
        "info", "--format",
        "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}} {{.Swarm.Nodes}} {{.Swarm.Managers}} {{.Swarm.Cluster.Spec.Orchestration.TaskHistoryRetentionLimit}} {{.Swarm.Cluster.Spec.Dispatcher.HeartbeatPeriod}} {{.Swarm.Cluster.Spec.CAConfig.NodeCertExpiry}}",
    ]);
    assert_eq!(info.trim(), "active true 1 1 3 7s 48h0m0s");
    let err = d.fail(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
    assert!(
        err.contains("This node is already part of a swarm."),
        "{err}"
    );
}

#[test]
fn join_tokens_rotate() {
    let d = Daemon::with_swarm();
    let w1 = d.ok(&["swarm", "join-token", "-q", "worker"]);
    let m1 = d.ok(&["swarm", "join-token", "-q", "manager"]);
    assert!(w1.starts_with("SWMTKN-1-") && m1.starts_with("SWMTKN-1-"));
    assert_ne!(w1, m1);
    // Both tokens carry the same CA digest.
    assert_eq!(w1.split('-').nth(2), m1.split('-').nth(2));
    let full = d.ok(&["swarm", "join-token", "worker"]);
    assert!(
        full.contains("To add a worker to this swarm, run the following command:"),
        "{full}"
    );
    assert!(full.contains(w1.trim()));
    d.ok(&["swarm", "join-token", "--rotate", "worker"]);
    let w2 = d.ok(&["swarm", "join-token", "-q", "worker"]);
    assert_ne!(w1, w2);
    assert_eq!(m1, d.ok(&["swarm", "join-token", "-q", "manager"]));
}

#[test]
fn update_and_cert_expiry_validation() {
    let d = Daemon::with_swarm();
    d.ok(&["swarm", "update", "--task-history-limit", "9"]);
    let v = d.ok(&[
        "info",
        "--format",
        "{{.Swarm.Cluster.Spec.Orchestration.TaskHistoryRetentionLimit}}",
    ]);
    assert_eq!(v.trim(), "9");
    let err = d.fail(&["swarm", "update", "--cert-expiry", "1m"]);
    assert!(
        err.contains(
            "rpc error: code = InvalidArgument desc = minimum certificate expiry time is: 1h0m0s"
        ),
        "{err}"
    );
}

#[test]
fn stale_swarm_version_is_out_of_sequence() {
    let d = Daemon::with_swarm();
    let (_, body) = d.curl("GET", "/v1.41/swarm", None);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let spec = v["Spec"].to_string();
    let version = v["Version"]["Index"].as_u64().unwrap();
    let path = format!("/v1.41/swarm/update?version={version}");
    assert_eq!(d.curl("POST", &path, Some(&spec)).0, 200);
    let (code, body) = d.curl("POST", &path, Some(&spec));
    assert_eq!(code, 500);
    assert!(body.contains("update out of sequence"), "{body}");
}

#[test]
fn autolock_locks_after_restart_until_unlock() {
    let mut d = Daemon::start();
    d.ok(&[
        "swarm",
        "init",
        "--advertise-addr",
        "127.0.0.1",
        "--autolock",
    ]);
    let key = d.ok(&["swarm", "unlock-key", "-q"]).trim().to_string();
    assert!(key.starts_with("SWMKEY-1-"), "{key}");
    d.restart();
    let state = d.ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
    assert_eq!(state.trim(), "locked");
    let err = d.fail(&["node", "ls"]);
    assert!(
        err.contains("Swarm is encrypted and needs to be unlocked"),
        "{err}"
    );
    let err = d.docker_stdin(
        &["swarm", "unlock"],
        Some(b"SWMKEY-1-bm90IHRoZSBrZXkgYXQgYWxsIG5vdCB0aGUga2V5IGF0IGFsbA==\n"),
    );
    assert_ne!(err.code, 0);
    let r = d.docker_stdin(&["swarm", "unlock"], Some(format!("{key}\n").as_bytes()));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let state = d.ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
    assert_eq!(state.trim(), "active");
    // Rotation gives a new key that unlocks the next restart.
    d.ok(&["swarm", "unlock-key", "--rotate"]);
    let key2 = d.ok(&["swarm", "unlock-key", "-q"]).trim().to_string();
    assert_ne!(key, key2);
    d.restart_after_kill9();
    let r = d.docker_stdin(&["swarm", "unlock"], Some(format!("{key2}\n").as_bytes()));
    assert_eq!(r.code, 0, "{}", r.stderr);
    d.ok(&["swarm", "update", "--autolock=false"]);
    d.restart();
    let state = d.ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
    assert_eq!(state.trim(), "active");
}

#[test]
fn leave_requires_force_and_erases_state() {
    let d = Daemon::with_swarm();
    let err = d.fail(&["swarm", "leave"]);
    assert!(
        err.contains(
            "You are attempting to leave the swarm on a node that is participating as a manager."
        ),
        "{err}"
    );
    d.ok(&["swarm", "leave", "--force"]);
    let state = d.ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
    assert_eq!(state.trim(), "inactive");
    assert!(!d.data_root().join("swarm").exists());
    d.ok(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
}

#[test]
fn cluster_survives_kill9_with_same_ids_and_versions() {
    let mut d = Daemon::with_swarm();
    let before = d.curl("GET", "/v1.41/swarm", None).1;
    d.ok(&["swarm", "update", "--task-history-limit", "4"]);
    let before_upd = d.curl("GET", "/v1.41/swarm", None).1;
    assert_ne!(before, before_upd);
    d.restart_after_kill9();
    let after = d.curl("GET", "/v1.41/swarm", None).1;
    let a: serde_json::Value = serde_json::from_str(&before_upd).unwrap();
    let b: serde_json::Value = serde_json::from_str(&after).unwrap();
    for k in [
        "ID",
        "Version",
        "CreatedAt",
        "UpdatedAt",
        "Spec",
        "JoinTokens",
    ] {
        assert_eq!(a[k], b[k], "{k} changed across kill -9");
    }
}
