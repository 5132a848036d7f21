//! A cluster under faults, each as a user would meet it: the leader's
//! machine dies under a stream of writes, a worker dies whole or goes
//! silent, and they come back.

use std::time::Duration;
use std::time::Instant;

use compat_tests::cluster::swarm;
use compat_tests::cluster::wait_for;
use compat_tests::cluster::writes;
use compat_tests::cluster::writes::secrets_on;
use compat_tests::cluster::writes::Writes;
use compat_tests::cluster::Engine;
use compat_tests::cluster::Lab;

#[test]
fn e2e_cluster_leader_killed_under_writes() {
    let Some(lab) = Lab::for_test(Engine::Shoald) else {
        return;
    };
    let nodes = swarm::form(&lab, 3, 1);
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
    assert_eq!(swarm::leader(n2).as_deref(), Some("node1"));

    let w = Writes::start(n2.clone(), "w");
    wait_for(60, "writes acknowledged through a follower", || {
        (w.acked().len() >= 5).then_some(())
    });
    n1.kill_node();
    let killed = Instant::now();
    // The API answers again through the other managers: a new leader, and
    // a write acknowledged after the crash.
    wait_for(60, "a write acknowledged after the leader died", || {
        (w.acked_after(killed) > 0).then_some(())
    });
    let new_leader = wait_for(30, "a new leader", || {
        swarm::leader(n3).filter(|l| l != "node1")
    });
    let acked = w.stop();
    // No acknowledged write is lost, on either surviving manager.
    for m in [n2, n3] {
        let missing = writes::missing_on(m, &acked).expect("secret ls");
        assert!(missing.is_empty(), "node{} lost {missing:?}", m.n());
    }
    // The dead manager shows as such.
    wait_for(30, "node1 down and unreachable", || {
        let rows = swarm::node_ls(n2)?;
        let r = rows.iter().find(|r| r.hostname == "node1")?;
        (r.status == "Down" && r.manager_status == "Unreachable").then_some(())
    });
    // It boots again, catches up, and is a reachable manager.
    n1.start_node().expect("node1 boots");
    wait_for(60, "node1 ready and reachable again", || {
        let rows = swarm::node_ls(n3)?;
        let r = rows.iter().find(|r| r.hostname == "node1")?;
        (r.status == "Ready" && matches!(r.manager_status.as_str(), "Reachable" | "Leader"))
            .then_some(())
    });
    wait_for(30, "node1 has every acknowledged write", || {
        writes::missing_on(n1, &acked).filter(Vec::is_empty)
    });
    assert_ne!(new_leader, "node1");
}

#[test]
fn e2e_cluster_dead_and_silent_workers_tasks_move() {
    let Some(lab) = Lab::for_test(Engine::Shoald) else {
        return;
    };
    let nodes = swarm::form(&lab, 3, 2);
    let (n1, n4, n5) = (&nodes[0], &nodes[3], &nodes[4]);
    for n in &nodes {
        n.load_test_image().expect("test image");
    }
    swarm::create_httpd(n1, "web", 5, &["--replicas-max-per-node", "2"]);
    let hosts = wait_for(90, "five replicas, one per node", || {
        swarm::running_on(n1, "web").filter(|h| h.len() == 5)
    });
    assert!(hosts.contains(&"node4".to_string()), "{hosts:?}");

    // A worker dies whole: its tasks run elsewhere and it shows Down.
    n4.kill_node();
    wait_for(30, "node4's task running elsewhere", || {
        swarm::running_on(n1, "web").filter(|h| h.len() == 5 && !h.contains(&"node4".into()))
    });
    wait_for(10, "node4 down", || {
        let rows = swarm::node_ls(n1)?;
        (rows.iter().find(|r| r.hostname == "node4")?.status == "Down").then_some(())
    });

    // Another goes silent (its link down, no reset reaches anyone).
    n5.link_down().expect("link down");
    wait_for(30, "node5's task running elsewhere", || {
        swarm::running_on(n1, "web").filter(|h| {
            h.len() == 5 && !h.contains(&"node4".into()) && !h.contains(&"node5".into())
        })
    });

    // Both come back: ready again, and their stale tasks are shut down.
    n5.link_up().expect("link up");
    n4.start_node().expect("node4 boots");
    for (n, name) in [(n4, "node4"), (n5, "node5")] {
        wait_for(60, "the node ready again", || {
            let rows = swarm::node_ls(n1)?;
            (rows.iter().find(|r| r.hostname == name)?.status == "Ready").then_some(())
        });
        wait_for(60, "no stale task container running on the node", || {
            let r = n.docker(&["ps", "-q", "--filter", "name=web."]);
            (r.success() && r.stdout.trim().is_empty()).then_some(())
        });
    }
    let hosts = swarm::running_on(n1, "web").unwrap();
    assert_eq!(hosts.len(), 5, "{hosts:?}");
}

#[test]
fn e2e_cluster_partitioned_leader_and_heal() {
    let Some(lab) = Lab::for_test(Engine::Shoald) else {
        return;
    };
    let nodes = swarm::form(&lab, 3, 0);
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
    assert_eq!(swarm::leader(n2).as_deref(), Some("node1"));
    lab.partition(&[n1]).expect("partition");
    // The majority elects a leader and takes writes.
    wait_for(30, "a leader on the majority side", || {
        swarm::leader(n2).filter(|l| l != "node1")
    });
    let r = n3.docker_within(
        Duration::from_secs(30),
        &["secret", "create", "during", "-"],
        Some(b"x"),
    );
    assert!(r.success(), "{r:?}");
    // The cut-off leader answers with dockerd's no-leader error, in bounded time.
    let started = Instant::now();
    let r = n1.docker_within(
        Duration::from_secs(40),
        &["secret", "create", "lost", "-"],
        Some(b"x"),
    );
    assert!(!r.success(), "{r:?}");
    assert!(
        r.stderr.contains("The swarm does not have a leader. It's possible that too few managers are online. Make sure more than half of the managers are online."),
        "{r:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let err = n1.fail(&["node", "ls"]);
    assert!(err.contains("The swarm does not have a leader"), "{err}");
    // Healed: node1 follows the new leader and has the majority's write,
    // and the write it could not commit is nowhere.
    lab.heal().expect("heal");
    wait_for(30, "node1 answering with the new leader", || {
        swarm::leader(n1).filter(|l| l != "node1")
    });
    wait_for(30, "node1 reachable", || {
        let rows = swarm::node_ls(n2)?;
        (rows.iter().find(|r| r.hostname == "node1")?.manager_status == "Reachable").then_some(())
    });
    for m in [n1, n2, n3] {
        let have = wait_for(30, "the majority's write everywhere", || {
            secrets_on(m).filter(|s| s.contains(&"during".to_string()))
        });
        assert!(
            !have.contains(&"lost".to_string()),
            "node{}: {have:?}",
            m.n()
        );
    }
}

#[test]
fn e2e_cluster_every_node_restarted() {
    let Some(lab) = Lab::for_test(Engine::Shoald) else {
        return;
    };
    let nodes = swarm::form(&lab, 3, 1);
    let n1 = &nodes[0];
    for n in &nodes {
        n.load_test_image().expect("image");
    }
    swarm::create_httpd(n1, "web", 4, &["--replicas-max-per-node", "1"]);
    wait_for(90, "a replica per node", || {
        swarm::running_on(n1, "web").filter(|h| h.len() == 4)
    });
    let tasks_before = n1.ok(&[
        "service",
        "ps",
        "-q",
        "--filter",
        "desired-state=running",
        "web",
    ]);
    let containers: Vec<String> = nodes
        .iter()
        .map(|n| n.ok(&["ps", "-q", "--no-trunc"]).trim().to_string())
        .collect();
    // Every daemon dies at once (their containers keep running), then all
    // come back on the same data.
    for n in &nodes {
        n.kill_engine();
    }
    for n in &nodes {
        n.restart_engine().expect("restart");
    }
    wait_for(60, "a leader and every node ready", || {
        let rows = swarm::node_ls(&nodes[1])?;
        let ready = rows.iter().filter(|r| r.status == "Ready").count();
        let leaders = rows.iter().filter(|r| r.manager_status == "Leader").count();
        (ready == 4 && leaders == 1).then_some(())
    });
    // The same tasks in the same containers: adopted, not replaced.
    let hosts = wait_for(30, "the replicas running", || {
        swarm::running_on(n1, "web").filter(|h| h.len() == 4)
    });
    assert_eq!(hosts.len(), 4);
    let tasks_after = n1.ok(&[
        "service",
        "ps",
        "-q",
        "--filter",
        "desired-state=running",
        "web",
    ]);
    assert_eq!(tasks_before, tasks_after);
    for (n, before) in nodes.iter().zip(&containers) {
        assert_eq!(
            &n.ok(&["ps", "-q", "--no-trunc"]).trim().to_string(),
            before,
            "node{}",
            n.n()
        );
    }
    // And the cluster takes writes.
    let r = nodes[2].docker_within(
        Duration::from_secs(30),
        &["secret", "create", "after", "-"],
        Some(b"x"),
    );
    assert!(r.success(), "{r:?}");
}

#[test]
fn e2e_cluster_quorum_lost_then_force_new_cluster() {
    let Some(lab) = Lab::for_test(Engine::Shoald) else {
        return;
    };
    let nodes = swarm::form(&lab, 3, 1);
    let (n1, n2, n3, n4) = (&nodes[0], &nodes[1], &nodes[2], &nodes[3]);
    n1.load_test_image().expect("image");
    n4.load_test_image().expect("image");
    let r = n1.docker_within(
        Duration::from_secs(30),
        &["secret", "create", "kept", "-"],
        Some(b"x"),
    );
    assert!(r.success(), "{r:?}");
    swarm::create_httpd(n1, "web", 2, &["--constraint", "node.role==worker"]);
    wait_for(60, "web running on the worker", || {
        swarm::running_on(n1, "web").filter(|h| h.len() == 2)
    });
    // Two of three managers die: no quorum, every manager call fails.
    n2.kill_node();
    n3.kill_node();
    let err = wait_for(30, "the no-leader error", || {
        let r = n1.docker(&["node", "ls"]);
        (!r.success() && r.stderr.contains("The swarm does not have a leader")).then_some(r.stderr)
    });
    assert!(
        err.contains("Make sure more than half of the managers are online."),
        "{err}"
    );
    // The survivor starts a new cluster from its state.
    n1.ok(&[
        "swarm",
        "init",
        "--force-new-cluster",
        "--advertise-addr",
        &n1.addr(),
    ]);
    let rows = wait_for(30, "node ls working again", swarm::node_ls_ok(n1));
    let me = rows.iter().find(|r| r.hostname == "node1").unwrap();
    assert_eq!(me.manager_status, "Leader");
    assert_eq!(
        n1.ok(&["info", "--format", "{{.Swarm.Managers}}"]).trim(),
        "1"
    );
    // Every object is still there, tasks still run, writes work.
    assert!(secrets_on(n1).unwrap().contains(&"kept".to_string()));
    assert_eq!(swarm::running_on(n1, "web").unwrap().len(), 2);
    let r = n1.docker_within(
        Duration::from_secs(30),
        &["secret", "create", "after", "-"],
        Some(b"x"),
    );
    assert!(r.success(), "{r:?}");
    // The lost managers are no raft members any more: they can be removed.
    wait_for(30, "node2 down", || {
        let rows = swarm::node_ls(n1)?;
        (rows.iter().find(|r| r.hostname == "node2")?.status == "Down").then_some(())
    });
    n1.ok(&["node", "rm", "--force", "node2"]);
    n1.ok(&["node", "rm", "--force", "node3"]);
    assert_eq!(swarm::node_ls(n1).unwrap().len(), 2);
}
