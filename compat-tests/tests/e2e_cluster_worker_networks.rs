//! `docker network ls` and `docker network inspect` on a worker, which
//! holds no copy of the cluster's networks: as dockerd's worker, it shows
//! the swarm networks its tasks and attachable containers are on (scope
//! swarm, the cluster's ID and addresses, its own containers, the peers)
//! and not the others; an attachable container's joining is its network
//! event.

use std::collections::BTreeSet;

use compat_tests::cluster::image::TEST_IMAGE;
use compat_tests::cluster::swarm;
use compat_tests::cluster::swarm::container_on;
use compat_tests::cluster::wait_for;
use compat_tests::cluster::Engine;
use compat_tests::cluster::Lab;
use compat_tests::cluster::Node;

/// Now as the CLI takes it: seconds since the epoch with a fraction.
fn now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .unwrap();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

/// The names `docker network ls --filter scope=swarm` shows on `n`.
fn swarm_names(n: &Node) -> BTreeSet<String> {
    n.ok(&[
        "network",
        "ls",
        "--filter",
        "scope=swarm",
        "--format",
        "{{.Name}}",
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

fn inspect(n: &Node, name: &str) -> serde_json::Value {
    let out = n.ok(&["network", "inspect", name]);
    let v: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"));
    v[0].clone()
}

#[test]
fn e2e_cluster_worker_shows_its_swarm_networks() {
    let Some(lab) = Lab::for_test(Engine::Shoald) else {
        return;
    };
    let nodes = swarm::form(&lab, 1, 1);
    for n in &nodes {
        n.load_test_image().expect("image");
    }
    let (n1, n2) = (&nodes[0], &nodes[1]);
    let ov = n1.ok(&["network", "create", "-d", "overlay", "ov"]);
    let ov = ov.trim();
    n1.ok(&["network", "create", "-d", "overlay", "--attachable", "att"]);
    n1.ok(&["network", "create", "-d", "overlay", "other"]);
    n1.ok(&[
        "service",
        "create",
        "-d",
        "--quiet",
        "--name",
        "web",
        "--network",
        "ov",
        "--constraint",
        "node.hostname==node2",
        TEST_IMAGE,
        "sleep",
        "600",
    ]);
    let web = container_on(n2, "web");
    let t0 = now();
    let a1 = n2.ok(&[
        "run",
        "-d",
        "--name",
        "a1",
        "--network",
        "att",
        TEST_IMAGE,
        "sleep",
        "600",
    ]);
    let a1 = a1.trim();

    // Listed with the scope and driver dockerd shows; `other`, which no
    // task of the worker uses, is not.
    let names = wait_for(60, "ov and att on the worker", || {
        let names = swarm_names(n2);
        (names.contains("ov") && names.contains("att")).then_some(names)
    });
    assert!(!names.contains("other"), "{names:?}");
    let row = n2.ok(&[
        "network",
        "ls",
        "--no-trunc",
        "--filter",
        "name=ov",
        "--format",
        "{{.ID}} {{.Name}} {{.Driver}} {{.Scope}}",
    ]);
    assert_eq!(row.trim(), format!("{ov} ov overlay swarm"));

    // Inspected by name and by ID prefix: the cluster's object, this
    // node's container on it, and the node itself among the peers.
    let on_manager = inspect(n1, "ov");
    let v = inspect(n2, "ov");
    assert_eq!(inspect(n2, &ov[..6])["Id"], v["Id"]);
    assert_eq!(v["Id"], ov);
    assert_eq!(v["Scope"], "swarm");
    assert_eq!(v["Driver"], "overlay");
    assert_eq!(v["Attachable"], false);
    assert_eq!(v["IPAM"], on_manager["IPAM"]);
    assert_eq!(v["Created"], on_manager["Created"]);
    let c = &v["Containers"][&web];
    assert!(c["Name"].as_str().unwrap().starts_with("web.1."), "{v}");
    assert!(c["IPv4Address"].as_str().unwrap().starts_with("10."), "{v}");
    let peers: Vec<&str> = v["Peers"]
        .as_array()
        .unwrap_or_else(|| panic!("no Peers: {v}"))
        .iter()
        .filter_map(|p| p["IP"].as_str())
        .collect();
    assert!(peers.contains(&n2.addr().as_str()), "{peers:?}");

    let v = inspect(n2, "att");
    assert_eq!(v["Attachable"], true);
    assert_eq!(v["Containers"][a1]["Name"], "a1");
    // Its joining is a network event of the worker, as dockerd tells it.
    let until = now();
    let events = n2.ok(&[
        "events",
        "--since",
        &t0,
        "--until",
        &until,
        "--filter",
        "type=network",
        "--format",
        "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}} {{.Actor.Attributes.type}} {{.Actor.Attributes.container}}",
    ]);
    let want = format!("connect {} att overlay {a1}", v["Id"].as_str().unwrap());
    assert!(events.lines().any(|l| l == want), "{events}");

    assert_eq!(v["Labels"], serde_json::json!({}));

    // The others are not found, with dockerd's text; the ones shown are
    // the managers' to remove.
    let err = n2.fail(&["network", "inspect", "other"]);
    assert!(err.contains("network other not found"), "{err}");
    let err = n2.fail(&["network", "rm", "ov"]);
    assert!(
        err.contains("This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state."),
        "{err}"
    );
    let err = n2.fail(&["network", "rm", "other"]);
    assert!(err.contains("network other not found"), "{err}");
    lab.teardown();
}
