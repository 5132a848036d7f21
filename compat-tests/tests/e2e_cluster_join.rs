//! A real cluster, as the tutorials build it: `swarm init` on node1, two
//! managers and two workers `swarm join` with the printed tokens, every
//! manager answers the API, a worker answers as dockerd's workers do, and
//! a replicated service spreads over every node.

use std::sync::Arc;

use compat_tests::cluster::swarm;
use compat_tests::cluster::wait_for;
use compat_tests::cluster::Engine;
use compat_tests::cluster::Lab;
use compat_tests::cluster::Node;

/// `docker node ls` as (hostname, status, manager status) sorted by hostname.
fn node_ls(n: &Node) -> Vec<(String, String, String)> {
    let out = n.ok(&[
        "node",
        "ls",
        "--format",
        "{{.Hostname}}|{{.Status}}|{{.ManagerStatus}}",
    ]);
    let mut rows: Vec<(String, String, String)> = out
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (f[0].into(), f[1].into(), f[2].into())
        })
        .collect();
    rows.sort();
    rows
}

/// Five nodes: node1 inits, node2 and node3 join as managers, node4 and
/// node5 as workers. Returns the lab and its nodes.
fn five_nodes() -> Option<(Lab, Vec<Arc<Node>>)> {
    let lab = Lab::for_test(Engine::Shoald)?;
    let nodes: Vec<Arc<Node>> = (0..5).map(|_| lab.add_node().expect("node")).collect();
    let n1 = &nodes[0];
    n1.ok(&["swarm", "init", "--advertise-addr", &n1.addr()]);
    let manager_token = n1.ok(&["swarm", "join-token", "-q", "manager"]);
    let worker_token = n1.ok(&["swarm", "join-token", "-q", "worker"]);
    let remote = format!("{}:2377", n1.addr());
    for (i, n) in nodes.iter().enumerate().skip(1) {
        let token = if i < 3 { &manager_token } else { &worker_token };
        let out = n.ok(&["swarm", "join", "--token", token.trim(), &remote]);
        let role = if i < 3 { "manager" } else { "worker" };
        assert_eq!(out.trim(), format!("This node joined a swarm as a {role}."));
    }
    Some((lab, nodes))
}

#[test]
fn e2e_cluster_three_managers_two_workers() {
    let Some((_lab, nodes)) = five_nodes() else {
        return;
    };
    let (n1, n2, n4) = (&nodes[0], &nodes[1], &nodes[3]);

    // Every manager shows the same five nodes: one leader, two reachable.
    for m in &nodes[..3] {
        let rows = wait_for(30, "five ready nodes with their manager status", || {
            let rows = node_ls(m);
            let ready = rows.iter().filter(|r| r.1 == "Ready").count();
            (rows.len() == 5 && ready == 5).then_some(rows)
        });
        let status: Vec<&str> = rows.iter().map(|r| r.2.as_str()).collect();
        assert_eq!(
            status,
            vec!["Leader", "Reachable", "Reachable", "", ""],
            "node{}: {rows:?}",
            m.n()
        );
        let hosts: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(hosts, vec!["node1", "node2", "node3", "node4", "node5"]);
    }

    // docker info on a manager and on a worker.
    let info = n2.ok(&[
        "info",
        "--format",
        "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}} {{.Swarm.Managers}} {{.Swarm.Nodes}}",
    ]);
    assert_eq!(info.trim(), "active true 3 5");
    let info = n4.ok(&[
        "info",
        "--format",
        "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}} {{.Swarm.NodeAddr}}",
    ]);
    assert_eq!(info.trim(), format!("active false {}", n4.addr()));
    let managers = n4.ok(&[
        "info",
        "--format",
        "{{range .Swarm.RemoteManagers}}{{.Addr}} {{end}}",
    ]);
    assert!(
        managers.contains(&format!("{}:2377", n1.addr())),
        "a worker knows the managers: {managers}"
    );

    // A worker refuses manager calls with dockerd's text.
    let err = n4.fail(&["node", "ls"]);
    assert!(
        err.contains("This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager."),
        "{err}"
    );

    // A write through a follower is visible on every manager at once.
    let created = n2.docker_within(
        std::time::Duration::from_secs(60),
        &["secret", "create", "s1", "-"],
        Some(b"top secret"),
    );
    assert!(created.success(), "{created:?}");
    let id = created.stdout;
    for m in &nodes[..3] {
        let got = m.ok(&["secret", "inspect", "--format", "{{.ID}}", "s1"]);
        assert_eq!(got.trim(), id.trim(), "node{}", m.n());
    }

    // A service spreads over every node.
    for n in &nodes {
        n.load_test_image().expect("load the test image");
    }
    swarm::create_httpd(n2, "web", 5, &["--replicas-max-per-node", "1"]);
    let hosts = wait_for(90, "five running replicas, one per node", || {
        let out = n1.ok(&[
            "service",
            "ps",
            "web",
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Node}} {{.CurrentState}}",
        ]);
        let mut hosts: Vec<String> = out
            .lines()
            .filter(|l| l.contains("Running"))
            .map(|l| l.split(' ').next().unwrap_or("").to_string())
            .collect();
        hosts.sort();
        (hosts.len() == 5).then_some(hosts)
    });
    assert_eq!(hosts, vec!["node1", "node2", "node3", "node4", "node5"]);
    // The worker runs its task container.
    let ps = n4.ok(&["ps", "--format", "{{.Names}}"]);
    assert!(ps.trim().starts_with("web."), "{ps}");
}
