//! Nodes that come back with nothing: a worker and a manager whose data
//! roots were wiped join again as new nodes, the way an operator replaces
//! a machine's disk, and the cluster keeps every acknowledged write.

use std::time::Duration;
use std::time::Instant;

use compat_tests::cluster::swarm;
use compat_tests::cluster::wait_for;
use compat_tests::cluster::writes;
use compat_tests::cluster::writes::Writes;
use compat_tests::cluster::Engine;
use compat_tests::cluster::Lab;
use compat_tests::cluster::Node;

/// The node's swarm ID as `docker info` reports it.
fn node_id(n: &Node) -> String {
    n.ok(&["info", "--format", "{{.Swarm.NodeID}}"])
        .trim()
        .to_string()
}

/// `docker info`'s swarm state of `n` (`active`, `inactive`...).
fn swarm_state(n: &Node) -> String {
    n.ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"])
        .trim()
        .to_string()
}

/// `docker node ls` on `on` as (ID, status, manager status) rows; `None`
/// when the call fails.
fn nodes_by_id(on: &Node) -> Option<Vec<(String, String, String)>> {
    let r = on.docker(&[
        "node",
        "ls",
        "--format",
        "{{.ID}}|{{.Status}}|{{.ManagerStatus}}",
    ]);
    r.success().then(|| {
        r.stdout
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('|').collect();
                (f.len() == 3).then(|| (f[0].into(), f[1].into(), f[2].into()))
            })
            .collect()
    })
}

/// Stops `n`'s engine by PID, deletes its data root and starts it again:
/// a machine whose disk was replaced.
fn wipe(n: &Node) {
    n.stop_engine(Duration::from_secs(20));
    std::fs::remove_dir_all(n.data_root()).expect("wipe the data root");
    n.start_engine()
        .expect("the engine starts on an empty data root");
}

#[test]
fn e2e_cluster_worker_rejoins_after_wipe() {
    let Some(lab) = Lab::for_test(Engine::Shoald) else {
        return;
    };
    let nodes = swarm::form(&lab, 1, 2);
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
    for n in [n2, n3] {
        n.load_test_image().expect("test image");
    }
    swarm::create_httpd(n1, "web", 2, &["--constraint", "node.role==worker"]);
    wait_for(90, "a replica on each worker", || {
        swarm::running_on(n1, "web").filter(|h| h == &["node2", "node3"])
    });
    let old = node_id(n2);

    wipe(n2);
    assert_eq!(swarm_state(n2), "inactive");
    // Its old task is gone with the data: the engine runs no container it
    // does not know.
    wait_for(30, "no old task container on the wiped node", || {
        let r = n2.docker(&["ps", "-q"]);
        (r.success() && r.stdout.trim().is_empty()).then_some(())
    });
    wait_for(30, "the old node down", || {
        let rows = nodes_by_id(n1)?;
        let row = rows.iter().find(|r| r.0 == old)?;
        (row.1 == "Down").then_some(())
    });
    // Its task runs again on the worker left.
    wait_for(60, "both replicas on node3", || {
        swarm::running_on(n1, "web").filter(|h| h == &["node3", "node3"])
    });

    // It joins again as a new node.
    let token = n1.ok(&["swarm", "join-token", "-q", "worker"]);
    let remote = format!("{}:2377", n1.addr());
    n2.ok(&["swarm", "join", "--token", token.trim(), &remote]);
    assert_eq!(swarm_state(n2), "active");
    let new = node_id(n2);
    assert_ne!(new, old, "a wiped node joins under a new ID");
    wait_for(30, "the old entry down and the new ready", || {
        let rows = nodes_by_id(n1)?;
        let status = |id: &str| rows.iter().find(|r| r.0 == id).map(|r| r.1.clone());
        (status(&old)? == "Down" && status(&new)? == "Ready").then_some(())
    });
    n1.ok(&["node", "rm", &old]);
    let rows = nodes_by_id(n1).expect("node ls");
    assert!(!rows.iter().any(|r| r.0 == old), "{rows:?}");
    assert_eq!(rows.len(), 3, "{rows:?}");

    // New tasks go to the new node, the least loaded.
    n2.load_test_image().expect("test image");
    n1.ok(&["service", "scale", "-d", "web=3"]);
    wait_for(60, "the third replica on the new node", || {
        swarm::running_on(n1, "web").filter(|h| h == &["node2", "node3", "node3"])
    });
    let filter = "label=com.docker.swarm.service.name=web";
    wait_for(30, "the task's container on the new node", || {
        let r = n2.docker(&["ps", "-q", "--filter", filter]);
        (r.success() && r.stdout.lines().count() == 1).then_some(())
    });
}

#[test]
fn e2e_cluster_manager_rejoins_after_wipe() {
    let Some(lab) = Lab::for_test(Engine::Shoald) else {
        return;
    };
    let nodes = swarm::form(&lab, 3, 0);
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
    let r = n1.docker_within(
        Duration::from_secs(30),
        &["secret", "create", "before", "-"],
        Some(b"x"),
    );
    assert!(r.success(), "{r:?}");
    let old = node_id(n3);

    let w = Writes::start(n2.clone(), "w");
    wait_for(60, "writes acknowledged", || {
        (w.acked().len() >= 5).then_some(())
    });
    wipe(n3);
    let wiped = Instant::now();
    assert_eq!(swarm_state(n3), "inactive");
    // Two of three managers keep the quorum: writes go on.
    wait_for(60, "writes acknowledged after the wipe", || {
        (w.acked_after(wiped) >= 5).then_some(())
    });
    wait_for(30, "the old manager down and unreachable", || {
        let rows = nodes_by_id(n1)?;
        let row = rows.iter().find(|r| r.0 == old)?;
        (row.1 == "Down" && row.2 == "Unreachable").then_some(())
    });

    // Removed as dockerd wants it: a raft member must be demoted first.
    let err = n1.fail(&["node", "rm", "--force", &old]);
    assert!(
        err.contains(&format!(
            "node {old} is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal"
        )),
        "{err}"
    );
    let out = n1.ok(&["node", "demote", &old]);
    assert_eq!(out.trim(), format!("Manager {old} demoted in the swarm."));
    wait_for(30, "the demoted manager out of raft and removed", || {
        n1.docker(&["node", "rm", "--force", &old])
            .success()
            .then_some(())
    });

    // The wiped machine joins again as a manager, under a new ID.
    let token = n1.ok(&["swarm", "join-token", "-q", "manager"]);
    let remote = format!("{}:2377", n1.addr());
    n3.ok(&["swarm", "join", "--token", token.trim(), &remote]);
    let new = node_id(n3);
    assert_ne!(new, old);
    wait_for(60, "three managers, all ready and reachable", || {
        let rows = nodes_by_id(n1)?;
        let good = rows
            .iter()
            .filter(|r| r.1 == "Ready" && matches!(r.2.as_str(), "Leader" | "Reachable"))
            .count();
        (rows.len() == 3 && good == 3).then_some(())
    });
    assert_eq!(
        n1.ok(&["info", "--format", "{{.Swarm.Managers}}"]).trim(),
        "3"
    );
    let acked = w.stop();
    println!(
        "manager wipe: {} writes acknowledged, {} after the wipe",
        acked.len(),
        acked.iter().filter(|a| a.at > wiped).count()
    );
    // The raft store reached it: what was written before the wipe and every
    // acknowledged write, listed from the rejoined manager itself.
    for m in [n1, n2] {
        let missing = writes::missing_on(m, &acked).expect("secret ls");
        assert!(missing.is_empty(), "node{} lost {missing:?}", m.n());
    }
    wait_for(30, "the rejoined manager has every write", || {
        let have = writes::secrets_on(n3)?;
        let missing = writes::missing_on(n3, &acked)?;
        (have.contains(&"before".to_string()) && missing.is_empty()).then_some(())
    });

    // It is a full voter: with the first leader dead, the two left (one of
    // them the rejoined) elect a leader and commit.
    n1.kill_node();
    let killed = Instant::now();
    let leader = wait_for(60, "a leader among the two left", || {
        swarm::leader(n3).filter(|l| l != "node1")
    });
    let elected = killed.elapsed();
    let r = n3.docker_within(
        Duration::from_secs(30),
        &["secret", "create", "after", "-"],
        Some(b"x"),
    );
    assert!(r.success(), "{r:?}");
    println!(
        "manager wipe: {leader} leads {:.1} s after node1 died, first write {:.1} s after",
        elected.as_secs_f64(),
        killed.elapsed().as_secs_f64()
    );
    wait_for(30, "the write on the other manager", || {
        writes::secrets_on(n2)?
            .contains(&"after".to_string())
            .then_some(())
    });
}
