//! Roles change while the cluster runs: a worker promoted becomes a raft
//! member that answers the API, a manager demoted leaves raft and keeps
//! its tasks, a drained node is emptied, a worker that leaves is Down, and
//! a manager's leave is refused with dockerd's quorum words.

use compat_tests::cluster::image::TEST_IMAGE;
use compat_tests::cluster::swarm;
use compat_tests::cluster::wait_for;
use compat_tests::cluster::Engine;
use compat_tests::cluster::Lab;

#[test]
fn e2e_cluster_promote_demote_drain_and_leave() {
    let Some(lab) = Lab::for_test(Engine::Shoald) else {
        return;
    };
    let nodes = swarm::form(&lab, 2, 2);
    let (n1, n2, n3, n4) = (&nodes[0], &nodes[1], &nodes[2], &nodes[3]);
    for n in &nodes {
        n.load_test_image().expect("image");
    }
    n1.ok(&[
        "service", "create", "-d", "--name", "web", "--mode", "global", TEST_IMAGE, "httpd", "-f",
        "-p", "80",
    ]);
    wait_for(90, "a web task on every node", || {
        swarm::running_on(n1, "web").filter(|h| h.len() == 4)
    });

    // Promote a worker: it becomes a reachable manager and answers the API.
    let out = n1.ok(&["node", "promote", "node3"]);
    assert_eq!(out.trim(), "Node node3 promoted to a manager in the swarm.");
    wait_for(60, "node3 a reachable manager", || {
        let rows = swarm::node_ls(n1)?;
        (rows.iter().find(|r| r.hostname == "node3")?.manager_status == "Reachable").then_some(())
    });
    wait_for(30, "node3 answering manager calls", || {
        let rows = swarm::node_ls(n3)?;
        (rows.len() == 4).then_some(())
    });
    let info = n3.ok(&[
        "info",
        "--format",
        "{{.Swarm.ControlAvailable}} {{.Swarm.Managers}}",
    ]);
    assert_eq!(info.trim(), "true 3");
    // Its task kept running through the change.
    assert!(swarm::running_on(n1, "web")
        .unwrap()
        .contains(&"node3".to_string()));

    // Demote a manager: it leaves raft, answers as a worker, keeps its task.
    let out = n1.ok(&["node", "demote", "node2"]);
    assert_eq!(out.trim(), "Manager node2 demoted in the swarm.");
    wait_for(60, "node2 a worker", || {
        let rows = swarm::node_ls(n1)?;
        (rows
            .iter()
            .find(|r| r.hostname == "node2")?
            .manager_status
            .is_empty())
        .then_some(())
    });
    wait_for(30, "node2 refusing manager calls", || {
        let r = n2.docker(&["node", "ls"]);
        r.stderr
            .contains("Worker nodes can't be used")
            .then_some(())
    });
    let info = n1.ok(&["info", "--format", "{{.Swarm.Managers}} {{.Swarm.Nodes}}"]);
    assert_eq!(info.trim(), "2 4");
    wait_for(30, "node2 ready with its task", || {
        let rows = swarm::node_ls(n1)?;
        let ready = rows.iter().find(|r| r.hostname == "node2")?.status == "Ready";
        let hosts = swarm::running_on(n1, "web")?;
        (ready && hosts.contains(&"node2".to_string())).then_some(())
    });

    // A manager's leave is refused in dockerd's words.
    let err = n3.fail(&["swarm", "leave"]);
    assert!(
        err.contains("You are attempting to leave the swarm on a node that is participating as a manager. Removing this node leaves 1 managers out of 2. Without a Raft quorum your swarm will be inaccessible."),
        "{err}"
    );

    // Drain empties a node; active brings tasks back.
    n1.ok(&["node", "update", "--availability", "drain", "node4"]);
    wait_for(30, "no task on the drained node", || {
        swarm::running_on(n1, "web").filter(|h| h.len() == 3 && !h.contains(&"node4".into()))
    });
    n1.ok(&["node", "update", "--availability", "active", "node4"]);
    wait_for(60, "the global task back on node4", || {
        swarm::running_on(n1, "web").filter(|h| h.len() == 4)
    });

    // A worker leaves: its tasks stop and the managers see it Down.
    let out = n4.ok(&["swarm", "leave"]);
    assert_eq!(out.trim(), "Node left the swarm.");
    wait_for(30, "node4 down", || {
        let rows = swarm::node_ls(n1)?;
        (rows.iter().find(|r| r.hostname == "node4")?.status == "Down").then_some(())
    });
    let ps = n4.ok(&["ps", "-q"]);
    assert!(
        ps.trim().is_empty(),
        "the leaving worker's tasks stopped: {ps}"
    );
    // And can be removed now.
    n1.ok(&["node", "rm", "node4"]);
    assert_eq!(swarm::node_ls(n1).unwrap().len(), 3);
}

#[test]
fn e2e_cluster_autolock_locks_every_manager() {
    let Some(lab) = Lab::for_test(Engine::Shoald) else {
        return;
    };
    let nodes = swarm::form(&lab, 3, 0);
    let (n1, n2) = (&nodes[0], &nodes[1]);
    let out = n1.ok(&["swarm", "update", "--autolock=true"]);
    let key = out
        .split_whitespace()
        .find(|w| w.starts_with("SWMKEY-1-"))
        .expect("the unlock key is printed")
        .to_string();
    // Another manager's keys follow: restarted, it is locked.
    wait_for(30, "node2's keys wrapped", || {
        let f = n2.dir().join("engine/swarm/raft-dek.json");
        std::fs::read_to_string(f)
            .ok()?
            .contains("\"locked\":true")
            .then_some(())
    });
    n2.kill_engine();
    n2.restart_engine().expect("restart");
    assert_eq!(
        n2.ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"])
            .trim(),
        "locked"
    );
    let err = n2.fail(&["node", "ls"]);
    assert!(
        err.contains("Swarm is encrypted and needs to be unlocked"),
        "{err}"
    );
    let r = n2.docker_within(
        std::time::Duration::from_secs(60),
        &["swarm", "unlock"],
        Some(format!("{key}\n").as_bytes()),
    );
    assert!(r.success(), "{r:?}");
    wait_for(30, "node2 a reachable manager again", || {
        let rows = swarm::node_ls(n2)?;
        (rows.iter().find(|r| r.hostname == "node2")?.manager_status == "Reachable").then_some(())
    });
}
