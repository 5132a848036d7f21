//! End-to-end: every acknowledged write survives `kill -9`, objects come
//! back identical, the orchestrator resumes, and nothing under --data-root
//! is readable in plain text.

mod common;

use std::path::Path;

use common::marker;
use common::temp_file;
use common::wait_for;
use common::Daemon;

/// The raw API objects of every kind, keyed by kind, sorted by ID.
fn snapshot(d: &Daemon) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for kind in ["nodes", "services", "secrets", "configs", "tasks"] {
        let (code, body) = d.curl("GET", &format!("/v1.50/{kind}"), None);
        assert_eq!(code, 200, "{kind}: {body}");
        let mut v: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        for o in &mut v {
            // Node heartbeat state is live, not stored.
            if let Some(obj) = o.as_object_mut() {
                obj.remove("Status");
                obj.remove("ManagerStatus");
            }
        }
        v.sort_by(|a, b| a["ID"].as_str().cmp(&b["ID"].as_str()));
        out.insert(kind.into(), serde_json::Value::Array(v));
    }
    let (_, body) = d.curl(
        "GET",
        "/v1.50/networks?filters=%7B%22scope%22%3A%7B%22swarm%22%3Atrue%7D%7D",
        None,
    );
    let mut nets: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    nets.sort_by(|a, b| a["Id"].as_str().cmp(&b["Id"].as_str()));
    out.insert("networks".into(), serde_json::Value::Array(nets));
    let (_, body) = d.curl("GET", "/v1.50/swarm", None);
    let mut sw: serde_json::Value = serde_json::from_str(&body).unwrap();
    sw.as_object_mut().unwrap().remove("JoinTokens");
    out.insert("swarm".into(), sw);
    serde_json::Value::Object(out)
}

#[test]
fn every_kind_survives_kill9_unchanged() {
    let mut d = Daemon::with_swarm();
    let node = d.ok(&["node", "ls", "-q"]);
    d.ok(&["node", "update", "--label-add", "zone=a", node.trim()]);
    let pw = temp_file(&d, "pw", b"hunter2");
    d.ok(&["secret", "create", "--label", "k=v", "s1", &pw]);
    d.ok(&["config", "create", "c1", &pw]);
    d.ok(&["network", "create", "-d", "overlay", "--attachable", "n1"]);
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "2",
        "--network",
        "n1",
        "--secret",
        "s1",
        "--config",
        "c1",
        "-p",
        "8080:80",
        "busybox",
        "top",
    ]);
    d.ok(&["swarm", "update", "--task-history-limit", "3"]);
    wait_for(20, "tasks assigned", || {
        let out = d.ok(&["service", "ps", "--format", "{{.CurrentState}}", "web"]);
        (out.lines().filter(|l| l.starts_with("Assigned")).count() == 2).then_some(())
    });
    let before = snapshot(&d);

    d.restart_after_kill9();
    let after = snapshot(&d);
    assert_eq!(
        before, after,
        "objects changed across kill -9 (IDs, versions, timestamps must match)"
    );

    // The orchestrator resumes from the stored state.
    d.ok(&["service", "scale", "-d", "web=3"]);
    wait_for(20, "scale after restart", || {
        let out = d.ok(&[
            "service",
            "ps",
            "-q",
            "--filter",
            "desired-state=running",
            "web",
        ]);
        (out.lines().filter(|l| !l.is_empty()).count() == 3).then_some(())
    });
}

#[test]
fn writes_acknowledged_just_before_kill9_are_kept() {
    let mut d = Daemon::with_swarm();
    // Each create returns only once durable; kill right after the last one.
    let mut ids = Vec::new();
    for i in 0..20 {
        let run = d.docker_stdin(&["secret", "create", &format!("burst{i}"), "-"], Some(b"x"));
        assert_eq!(run.code, 0, "{}", run.stderr);
        ids.push(run.stdout.trim().to_string());
    }
    let svc = d.ok(&[
        "service", "create", "-d", "--name", "last", "busybox", "top",
    ]);
    d.restart_after_kill9();
    let ls = d.ok(&["secret", "ls", "-q"]);
    for id in &ids {
        assert!(ls.contains(id.as_str()), "secret {id} lost: {ls}");
    }
    let svc2 = d.service_format("last", "{{.ID}}");
    assert_eq!(svc2.trim(), svc.trim());
    // Its tasks are made after the restart if they were not before.
    wait_for(20, "orchestrator resumed for last", || {
        let out = d.ok(&["service", "ps", "-q", "last"]);
        (!out.trim().is_empty()).then_some(())
    });
}

fn files_under(root: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(root).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else if p.is_file() {
            out.push(p);
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn nothing_under_data_root_is_plain_text() {
    let mut d = Daemon::with_swarm();
    let secret = marker("secretval");
    let label = marker("labelval");
    let env = marker("envval");
    let f = temp_file(&d, "s", secret.as_bytes());
    d.ok(&[
        "secret",
        "create",
        "--label",
        &format!("owner={label}"),
        "s1",
        &f,
    ]);
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "app",
        "-e",
        &format!("TOKEN={env}"),
        "busybox",
        "top",
    ]);
    // Check both the live files and what a clean stop leaves (snapshots).
    for round in 0..2 {
        let mut files = Vec::new();
        files_under(&d.data_root(), &mut files);
        assert!(!files.is_empty());
        for p in &files {
            let bytes = std::fs::read(p).unwrap();
            for (what, m) in [("secret", &secret), ("label", &label), ("env", &env)] {
                assert!(
                    !contains(&bytes, m.as_bytes()),
                    "{what} value in plain text in {} (round {round})",
                    p.display()
                );
            }
        }
        d.restart();
    }
    // And the data is still all there.
    let l = d.ok(&[
        "secret",
        "inspect",
        "--format",
        "{{.Spec.Labels.owner}}",
        "s1",
    ]);
    assert_eq!(l.trim(), label);
    let e = d.service_format("app", "{{index .Spec.TaskTemplate.ContainerSpec.Env 0}}");
    assert_eq!(e.trim(), format!("TOKEN={env}"));
}
