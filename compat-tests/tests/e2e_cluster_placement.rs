//! Placement on real nodes: constraints on hostname, role and labels,
//! spreading over a label, and a global service that reaches a node joining
//! later.

use compat_tests::cluster::image::TEST_IMAGE;
use compat_tests::cluster::swarm;
use compat_tests::cluster::wait_for;
use compat_tests::cluster::Engine;
use compat_tests::cluster::Lab;

/// `docker service create -d --name NAME ARGS... IMAGE httpd -f -p 80`.
fn create(n: &compat_tests::cluster::Node, name: &str, args: &[&str]) {
    let mut all = vec!["service", "create", "-d", "--name", name];
    all.extend_from_slice(args);
    all.extend_from_slice(&[TEST_IMAGE, "httpd", "-f", "-p", "80"]);
    n.ok(&all);
}

#[test]
fn e2e_cluster_placement_on_real_nodes() {
    let Some(lab) = Lab::for_test(Engine::Shoald) else {
        return;
    };
    let nodes = swarm::form(&lab, 1, 3);
    let n1 = &nodes[0];
    for n in &nodes {
        n.load_test_image().expect("image");
    }
    n1.ok(&["node", "update", "--label-add", "zone=a", "node2"]);
    n1.ok(&["node", "update", "--label-add", "zone=a", "node3"]);
    n1.ok(&["node", "update", "--label-add", "zone=b", "node4"]);

    create(n1, "pinned", &["--constraint", "node.hostname==node3"]);
    create(
        n1,
        "managers",
        &["--replicas", "2", "--constraint", "node.role==manager"],
    );
    create(
        n1,
        "zone-b",
        &["--replicas", "2", "--constraint", "node.labels.zone==b"],
    );
    create(
        n1,
        "spread",
        &[
            "--replicas",
            "4",
            "--constraint",
            "node.role==worker",
            "--placement-pref",
            "spread=node.labels.zone",
        ],
    );
    create(n1, "everywhere", &["--mode", "global"]);

    let on = |svc: &str, want: usize| {
        wait_for(90, svc, || {
            swarm::running_on(n1, svc).filter(|h| h.len() == want)
        })
    };
    assert_eq!(on("pinned", 1), vec!["node3"]);
    assert_eq!(on("managers", 2), vec!["node1", "node1"]);
    assert_eq!(on("zone-b", 2), vec!["node4", "node4"]);
    // Spread over the zone label: half the replicas in each zone.
    let spread = on("spread", 4);
    let in_b = spread.iter().filter(|h| *h == "node4").count();
    assert_eq!(in_b, 2, "{spread:?}");
    assert_eq!(
        on("everywhere", 4),
        vec!["node1", "node2", "node3", "node4"]
    );

    // A node that joins later gets the global service's task.
    let n5 = lab.add_node().expect("node");
    n5.load_test_image().expect("image");
    let token = n1.ok(&["swarm", "join-token", "-q", "worker"]);
    n5.ok(&[
        "swarm",
        "join",
        "--token",
        token.trim(),
        &format!("{}:2377", n1.addr()),
    ]);
    assert_eq!(
        on("everywhere", 5).last().map(String::as_str),
        Some("node5")
    );
    // No constraint matches: the task waits, with the scheduler's reason.
    create(n1, "nowhere", &["--constraint", "node.labels.zone==c"]);
    let err = wait_for(30, "the scheduler's reason", || {
        let out = n1.ok(&[
            "service",
            "ps",
            "--no-trunc",
            "--format",
            "{{.Error}}",
            "nowhere",
        ]);
        out.contains("no suitable node").then_some(out)
    });
    assert!(
        err.contains("scheduling constraints not satisfied on 5 nodes"),
        "{err}"
    );
}
