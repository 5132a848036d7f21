//! Who gets in: joins with a wrong, foreign, malformed or rotated token are
//! refused with dockerd's texts; on the cluster port a worker cannot reach
//! raft, a certificate from another swarm is refused at the handshake; and
//! a worker is given only the secrets its own tasks use.

use std::path::PathBuf;
use std::time::Duration;

use compat_tests::cluster::image::TEST_IMAGE;
use compat_tests::cluster::swarm;
use compat_tests::cluster::wait_for;
use compat_tests::cluster::Engine;
use compat_tests::cluster::Lab;
use compat_tests::cluster::Node;
use compat_tests::cluster::Run;

/// A gRPC call as curl makes it: one length-prefixed JSON message, HTTP/2
/// over TLS with `node`'s own certificate, to the manager `target`.
/// Returns curl's run (stdout: headers and trailers) and the reply body.
fn grpc_as(node: &Node, cert_of: &Node, target: &Node, path: &str, json: &str) -> (Run, Vec<u8>) {
    let certs = cert_of.dir().join("engine/swarm/certificates");
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(json.len() as u32).to_be_bytes());
    frame.extend_from_slice(json.as_bytes());
    let req: PathBuf = node.dir().join("grpc-request");
    let reply: PathBuf = node.dir().join("grpc-reply");
    std::fs::write(&req, frame).unwrap();
    let _ = std::fs::remove_file(&reply);
    let run = node.run(&[
        "curl",
        "-sS",
        "--http2",
        "--max-time",
        "10",
        "--cacert",
        &certs.join("swarm-root-ca.crt").display().to_string(),
        "--cert",
        &certs.join("swarm-node.crt").display().to_string(),
        "--key",
        &certs.join("swarm-node.key").display().to_string(),
        "--connect-to",
        &format!("swarm-manager:2377:{}:2377", target.addr()),
        &format!("https://swarm-manager:2377{path}"),
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
        "--data-binary",
        &format!("@{}", req.display()),
        "-D",
        "-",
        "-o",
        &reply.display().to_string(),
    ]);
    let body = std::fs::read(&reply).unwrap_or_default();
    (run, body)
}

/// The JSON message in a gRPC reply body.
fn message(body: &[u8]) -> serde_json::Value {
    assert!(body.len() >= 5, "no message: {body:?}");
    serde_json::from_slice(&body[5..]).expect("a JSON message")
}

#[test]
fn e2e_cluster_refuses_foreign_tokens_certificates_and_roles() {
    let Some(lab) = Lab::for_test(Engine::Shoald) else {
        return;
    };
    let nodes = swarm::form(&lab, 1, 1);
    let (n1, n2) = (&nodes[0], &nodes[1]);
    // A swarm of its own next door, and a node that wants in.
    let outsider = lab.add_node().expect("node");
    outsider.ok(&["swarm", "init", "--advertise-addr", &outsider.addr()]);
    let n4 = lab.add_node().expect("node");
    let remote = format!("{}:2377", n1.addr());
    let worker_token = n1.ok(&["swarm", "join-token", "-q", "worker"]);
    let worker_token = worker_token.trim();

    // The right CA, the wrong secret.
    let (head, _) = worker_token.rsplit_once('-').unwrap();
    let forged = format!("{head}-{}", "0".repeat(25));
    let err = n4.fail(&["swarm", "join", "--token", &forged, &remote]);
    assert!(
        err.contains("rpc error: code = InvalidArgument desc = A valid join token is necessary to join this cluster"),
        "{err}"
    );
    // Another swarm's token: its CA digest does not match node1's root.
    let foreign = outsider.ok(&["swarm", "join-token", "-q", "worker"]);
    let err = n4.fail(&["swarm", "join", "--token", foreign.trim(), &remote]);
    assert!(
        err.contains("remote CA does not match fingerprint. Expected: "),
        "{err}"
    );
    let err = n4.fail(&["swarm", "join", "--token", "SWMTKN-1-abc", &remote]);
    assert!(err.contains("invalid join token"), "{err}");
    // A rotated token admits no one any more; the new one does.
    n1.ok(&["swarm", "join-token", "--rotate", "-q", "worker"]);
    let err = n4.fail(&["swarm", "join", "--token", worker_token, &remote]);
    assert!(err.contains("A valid join token is necessary"), "{err}");
    assert_eq!(
        n4.ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"])
            .trim(),
        "inactive",
        "refused joins leave the node outside"
    );
    // Guessing goes on: after a few free mistakes every further wrong
    // token waits longer for its answer (the manager says so), which is
    // still dockerd's refusal.
    for _ in 0..3 {
        let err = n4.fail(&["swarm", "join", "--token", &forged, &remote]);
        assert!(err.contains("A valid join token is necessary"), "{err}");
    }
    assert!(
        n1.engine_log()
            .contains("wrong join token again: answer delayed"),
        "{}",
        n1.engine_log()
    );
    // A right token is still let in at once, and forgives the address.
    let fresh = n1.ok(&["swarm", "join-token", "-q", "worker"]);
    n4.ok(&["swarm", "join", "--token", fresh.trim(), &remote]);
    n4.ok(&["swarm", "leave"]);

    // The cluster port: raft is for managers only.
    let vote =
        r#"{"vote":{"leader_id":{"term":0,"node_id":1},"committed":false},"last_log_id":null}"#;
    let (run, _) = grpc_as(n2, n2, n1, "/shoal.Raft/Vote", vote);
    assert!(
        run.stdout.contains("grpc-status: 7"),
        "a worker is denied raft: {run:?}"
    );
    // A certificate of another swarm does not get past the handshake.
    let (run, body) = grpc_as(n2, &outsider, n1, "/shoal.Raft/Vote", vote);
    assert!(
        !run.success() && body.is_empty(),
        "foreign certificate: {run:?}"
    );
    // The manager itself may (positive control: the call is well formed).
    let (run, body) = grpc_as(n1, n1, n1, "/shoal.Raft/Vote", vote);
    assert!(
        run.stdout.contains("grpc-status: 0") || run.stdout.contains("200"),
        "{run:?}"
    );
    assert!(
        message(&body).get("Ok").is_some(),
        "{}",
        String::from_utf8_lossy(&body)
    );
}

#[test]
fn e2e_cluster_worker_gets_only_the_secrets_its_tasks_use() {
    let Some(lab) = Lab::for_test(Engine::Shoald) else {
        return;
    };
    let nodes = swarm::form(&lab, 1, 1);
    let (n1, n2) = (&nodes[0], &nodes[1]);
    for n in &nodes {
        n.load_test_image().expect("image");
    }
    let create = |name: &str, data: &[u8]| {
        let r = n1.docker_within(
            Duration::from_secs(60),
            &["secret", "create", name, "-"],
            Some(data),
        );
        assert!(r.success(), "{r:?}");
        r.stdout.trim().to_string()
    };
    let needed_marker = "needed-7c1e0f2a9b";
    let other_marker = "other-4d8a3e61f0";
    create("needed", needed_marker.as_bytes());
    let other_id = create("other", other_marker.as_bytes());
    n1.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "app",
        "--constraint",
        "node.role==worker",
        "--secret",
        "needed",
        TEST_IMAGE,
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    wait_for(90, "the task running on the worker", || {
        swarm::running_on(n1, "app").filter(|h| h == &vec!["node2".to_string()])
    });
    // The task reads its secret.
    let cid = n2.ok(&["ps", "-q", "--filter", "name=app."]);
    let got = n2.ok(&["exec", cid.trim(), "cat", "/run/secrets/needed"]);
    assert_eq!(got, needed_marker);
    // Nothing on the worker holds the other secret, on disk or in memory
    // file systems.
    let grep = |marker: &str| {
        n2.run(&[
            "sh",
            "-c",
            &format!(
                "grep -rl --exclude-dir=containerd {marker} {} /run 2>/dev/null",
                n2.dir().join("engine").display()
            ),
        ])
        .stdout
    };
    let holders = grep(needed_marker);
    assert!(!holders.is_empty(), "the needed secret is there (control)");
    // ...and only in memory: every file holding it is on a tmpfs.
    for f in holders.lines() {
        let fs = n2.run(&["stat", "-f", "-c", "%T", f]).stdout;
        assert_eq!(fs.trim(), "tmpfs", "{f} holds a secret on disk");
    }
    assert!(
        grep(other_marker).is_empty(),
        "the other secret reached the worker"
    );
    // And asking the dispatcher for it directly with the worker's own
    // certificate gets nothing, while its own secret comes.
    let task = n1.ok(&["service", "ps", "-q", "--no-trunc", "app"]);
    let task = task.lines().next().unwrap().trim();
    let needed_id = n1.ok(&["secret", "inspect", "--format", "{{.ID}}", "needed"]);
    let ask = |id: &str| {
        let req = format!(r#"{{"session_id":"","task_id":"{task}","kind":"Secret","id":"{id}"}}"#);
        let (_, body) = grpc_as(n2, n2, n1, "/shoal.Dispatcher/TaskDependency", &req);
        message(&body)
    };
    assert!(ask(needed_id.trim())["data"].is_string(), "its own secret");
    assert!(ask(&other_id)["data"].is_null(), "another service's secret");
}
