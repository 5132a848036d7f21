//! End-to-end: docker node ls/inspect/update/promote/demote/rm.

mod common;

use common::Daemon;

fn self_id(d: &Daemon) -> String {
    d.ok(&["info", "--format", "{{.Swarm.NodeID}}"])
        .trim()
        .to_string()
}

#[test]
fn node_ls_shows_self_as_leader() {
    let d = Daemon::with_swarm();
    let id = self_id(&d);
    let out = d.ok(&["node", "ls"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("ID"), "{out}");
    assert!(
        lines[0].contains("MANAGER STATUS") && lines[0].contains("ENGINE VERSION"),
        "{out}"
    );
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[1].starts_with(&format!("{id} *")), "{out}");
    for col in ["Ready", "Active", "Leader", "0.1.0"] {
        assert!(lines[1].contains(col), "missing {col}: {out}");
    }
    assert_eq!(d.ok(&["node", "ls", "-q"]).trim(), id);
    assert_eq!(
        d.ok(&["node", "ls", "-q", "--filter", "role=manager"])
            .trim(),
        id
    );
    assert_eq!(
        d.ok(&["node", "ls", "-q", "--filter", "role=worker"])
            .trim(),
        ""
    );
    let err = d.fail(&["node", "ls", "--filter", "bogus=1"]);
    assert!(err.contains("Invalid filter 'bogus'"), "{err}");
}

#[test]
fn node_inspect_by_self_hostname_and_prefix() {
    let d = Daemon::with_swarm();
    let id = self_id(&d);
    let host = d.ok(&[
        "node",
        "inspect",
        "self",
        "--format",
        "{{.Description.Hostname}}",
    ]);
    let by_host = d.ok(&["node", "inspect", host.trim(), "--format", "{{.ID}}"]);
    assert_eq!(by_host.trim(), id);
    let by_prefix = d.ok(&[
        "node",
        "inspect",
        &id[..6],
        "--format",
        "{{.Spec.Role}} {{.Status.State}} {{.ManagerStatus.Reachability}}",
    ]);
    assert_eq!(by_prefix.trim(), "manager ready reachable");
    let pretty = d.ok(&["node", "inspect", "--pretty", "self"]);
    assert!(
        pretty.contains(&format!("ID:\t\t\t{id}")) || pretty.contains(&id),
        "{pretty}"
    );
    assert!(pretty.contains("Manager Status:"), "{pretty}");
    let err = d.fail(&["node", "inspect", "nosuchnode"]);
    assert!(err.contains("node nosuchnode not found"), "{err}");
}

#[test]
fn node_update_labels_and_availability() {
    let d = Daemon::with_swarm();
    let id = self_id(&d);
    d.ok(&[
        "node",
        "update",
        "--label-add",
        "zone=a",
        "--label-add",
        "ssd",
        &id,
    ]);
    let labels = d.ok(&[
        "node",
        "inspect",
        "self",
        "--format",
        "{{json .Spec.Labels}}",
    ]);
    assert_eq!(labels.trim(), r#"{"ssd":"","zone":"a"}"#);
    d.ok(&["node", "update", "--label-rm", "ssd", &id]);
    let labels = d.ok(&[
        "node",
        "inspect",
        "self",
        "--format",
        "{{json .Spec.Labels}}",
    ]);
    assert_eq!(labels.trim(), r#"{"zone":"a"}"#);
    d.ok(&["node", "update", "--availability", "drain", &id]);
    assert!(d.ok(&["node", "ls"]).contains("Drain"));
    d.ok(&["node", "update", "--availability", "pause", &id]);
    assert_eq!(
        d.ok(&[
            "node",
            "inspect",
            "self",
            "--format",
            "{{.Spec.Availability}}"
        ])
        .trim(),
        "pause"
    );
    d.ok(&["node", "update", "--availability", "active", &id]);
    let err = d.fail(&["node", "update", "--availability", "bogus", &id]);
    assert!(err.contains("bogus"), "{err}");
    // Labels survive a kill -9.
    let mut d = d;
    d.restart_after_kill9();
    let labels = d.ok(&[
        "node",
        "inspect",
        "self",
        "--format",
        "{{json .Spec.Labels}}",
    ]);
    assert_eq!(labels.trim(), r#"{"zone":"a"}"#);
}

#[test]
fn last_manager_cannot_be_demoted_or_removed() {
    let d = Daemon::with_swarm();
    let id = self_id(&d);
    let out = d.ok(&["node", "promote", &id]);
    assert!(out.contains("is already a manager"), "{out}");
    let err = d.fail(&["node", "demote", &id]);
    assert!(err.contains("rpc error: code = FailedPrecondition desc = attempting to demote the last manager of the swarm"), "{err}");
    let err = d.fail(&["node", "update", "--role", "worker", &id]);
    assert!(
        err.contains("attempting to demote the last manager of the swarm"),
        "{err}"
    );
    let err = d.fail(&["node", "rm", "--force", &id]);
    assert!(
        err.contains(&format!("rpc error: code = FailedPrecondition desc = node {id} is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal")),
        "{err}"
    );
}

#[test]
fn node_ps_lists_the_tasks_placed_on_the_node() {
    let d = Daemon::with_swarm();
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "2",
        "busybox",
        "top",
    ]);
    let rows = common::wait_for(20, "two tasks on self", || {
        let out = d.ok(&[
            "node",
            "ps",
            "--format",
            "{{.Name}}|{{.DesiredState}}|{{.CurrentState}}",
            "self",
        ]);
        let rows: Vec<String> = out
            .lines()
            .filter(|l| l.starts_with("web."))
            .map(str::to_string)
            .collect();
        (rows.len() == 2 && rows.iter().all(|r| r.contains("|Running|Assigned"))).then_some(rows)
    });
    assert!(
        rows[0].starts_with("web.1|") && rows[1].starts_with("web.2|"),
        "{rows:?}"
    );
    let host = d.ok(&["node", "ls", "--format", "{{.Hostname}}"]);
    let by_name = d.ok(&["node", "ps", "-q", host.trim()]);
    assert_eq!(by_name.lines().count(), 2, "{by_name}");
    let err = d.fail(&["node", "ps", "nosuch"]);
    assert!(err.contains("node nosuch not found"), "{err}");
}
