//! `docker run --network ATTACHABLE` on a worker, the reason `--attachable`
//! exists: the worker asks the leader for the container's address over its
//! dispatcher session, the container reaches a service on another node by
//! name, the service's tasks reach the container by its name, and the
//! address goes back when the container is removed.

use std::collections::BTreeSet;

use compat_tests::cluster::image::TEST_IMAGE;
use compat_tests::cluster::swarm;
use compat_tests::cluster::swarm::container_on;
use compat_tests::cluster::swarm::HTTPD;
use compat_tests::cluster::wait_for;
use compat_tests::cluster::Engine;
use compat_tests::cluster::Lab;
use compat_tests::cluster::Node;

/// The addresses busybox nslookup prints for `name` in container `c` on
/// `n` (the server's own line left out).
fn lookup(n: &Node, c: &str, name: &str) -> BTreeSet<String> {
    let r = n.docker(&["exec", c, "timeout", "5", "nslookup", name]);
    r.stdout
        .lines()
        .filter_map(|l| l.strip_prefix("Address:"))
        .map(|a| a.trim().to_string())
        .filter(|a| !a.ends_with(":53"))
        .collect()
}

#[test]
fn e2e_cluster_attach_from_a_worker() {
    let Some(lab) = Lab::for_test(Engine::Shoald) else {
        return;
    };
    let nodes = swarm::form(&lab, 1, 1);
    for n in &nodes {
        n.load_test_image().expect("image");
    }
    let (n1, n2) = (&nodes[0], &nodes[1]);
    n1.ok(&["network", "create", "-d", "overlay", "--attachable", "att"]);
    n1.ok(&["network", "create", "-d", "overlay", "closed"]);
    let mut create = vec![
        "service",
        "create",
        "-d",
        "--quiet",
        "--name",
        "web",
        "--network",
        "att",
        "--constraint",
        "node.hostname==node1",
        TEST_IMAGE,
    ];
    create.extend_from_slice(HTTPD);
    n1.ok(&create);
    let web = container_on(n1, "web");

    // A one-off container on the worker reaches the service on the manager
    // by its name (the VIP). Names and peers reach the worker once its
    // attachment is in the store, so the container asks a few times.
    // (busybox's own `wget -T` crashes in this static build: `timeout`.)
    let ask = "for i in $(seq 50); do timeout 2 wget -qO- http://web/etc/hostname && exit 0; \
               sleep 0.2; done; exit 1";
    let out = n2.ok(&[
        "run",
        "--rm",
        "--network",
        "att",
        TEST_IMAGE,
        "sh",
        "-c",
        ask,
    ]);
    assert_eq!(out.trim(), &web[..12], "the answer names web's container");

    // A detached one on the worker: the manager's task resolves and reaches
    // it by its container name.
    let mut run = vec!["run", "-d", "--name", "dbg", "--network", "att", TEST_IMAGE];
    run.extend_from_slice(HTTPD);
    let dbg = n2.ok(&run).trim().to_string();
    let addr = n2
        .ok(&[
            "inspect",
            "--format",
            "{{(index .NetworkSettings.Networks \"att\").IPAddress}}",
            "dbg",
        ])
        .trim()
        .to_string();
    assert!(addr.starts_with("10."), "an overlay address: {addr:?}");
    wait_for(30, "web to resolve dbg", || {
        (lookup(n1, &web, "dbg") == BTreeSet::from([addr.clone()])).then_some(())
    });
    let got = n1.ok(&[
        "exec",
        &web,
        "timeout",
        "5",
        "wget",
        "-qO-",
        "http://dbg/etc/hostname",
    ]);
    assert_eq!(got.trim(), &dbg[..12]);
    // Renamed: the new name resolves on the other node, to the same
    // address, and the old one no longer does.
    n2.ok(&["rename", "dbg", "dbg2"]);
    wait_for(30, "web to resolve dbg2 and not dbg", || {
        (lookup(n1, &web, "dbg2") == BTreeSet::from([addr.clone()])
            && lookup(n1, &web, "dbg").is_empty())
        .then_some(())
    });

    // Removed: its name leaves every node.
    n2.ok(&["rm", "-f", "dbg2"]);
    wait_for(30, "dbg2's name to go", || {
        lookup(n1, &web, "dbg2").is_empty().then_some(())
    });

    // A network that is not attachable is refused with dockerd's text.
    let r = n2.docker(&["run", "--rm", "--network", "closed", TEST_IMAGE, "true"]);
    assert!(!r.success());
    assert!(
        r.stderr
            .contains("Could not attach to network closed: rpc error: code = PermissionDenied desc = network closed not manually attachable"),
        "{}",
        r.stderr
    );
    lab.teardown();
}
