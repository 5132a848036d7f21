//! The multi-node harness checks itself on three shoald nodes: each node is
//! a machine of its own (hostname, address, containerd, cgroup parent),
//! nodes reach each other over the lab's bridge, a node crash takes its
//! tasks with it, the node boots again with its swarm, and nothing is left
//! behind after teardown.
//!
//! Each node runs a single-node swarm of its own: joining is not in shoald
//! yet.

use std::time::Duration;

use compat_tests::cluster::cgroups;
use compat_tests::cluster::image::TEST_IMAGE;
use compat_tests::cluster::wait_for;
use compat_tests::cluster::Engine;
use compat_tests::cluster::Lab;
use compat_tests::cluster::Node;

/// The task containers under the node's cgroup parent (their IDs).
fn containers_under(node: &Node) -> Vec<String> {
    cgroups::children(&node.cgroup_parent())
}

/// Waits until the node's service `web` has one running task, and
/// returns its container's full ID.
fn running_container(node: &Node) -> String {
    wait_for(90, "the web task to run", || {
        let ps = node.docker(&[
            "service",
            "ps",
            "web",
            "--filter",
            "desired-state=running",
            "--format",
            "{{.CurrentState}}",
        ]);
        if !ps.stdout.trim_start().starts_with("Running") {
            return None;
        }
        let ids = node.docker(&["ps", "-q", "--no-trunc"]);
        ids.stdout.lines().next().map(str::to_string)
    })
}

#[test]
fn e2e_cluster_harness_three_shoald_nodes() {
    let Some(lab) = Lab::for_test(Engine::Shoald) else {
        return;
    };
    let nodes: Vec<_> = (0..3)
        .map(|_| lab.add_node().expect("add a node"))
        .collect();
    let parents: Vec<String> = nodes.iter().map(|n| n.cgroup_parent()).collect();
    for n in &nodes {
        n.ok(&["swarm", "init", "--advertise-addr", &n.addr()]);
        let hosts = n.ok(&["node", "ls", "--format", "{{.Hostname}} {{.Status}}"]);
        assert_eq!(
            hosts.trim(),
            format!("{} Ready", n.hostname()),
            "node{}",
            n.n()
        );
        // sysfs shows the node's own links: eth0 and lo, not the host's.
        let links = n.run(&["ls", "/sys/class/net"]);
        assert!(links.stdout.contains("eth0"), "{links:?}");
    }

    // Node 1 reaches a TCP port on node 2 across the bridge.
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
    let www = n2.dir().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "served by node2\n").unwrap();
    let serve = n2.run(&[
        "busybox",
        "httpd",
        "-p",
        "7777",
        "-h",
        &www.display().to_string(),
    ]);
    assert!(serve.success(), "{serve:?}");
    let url = format!("http://{}:7777/", n2.addr());
    let got = wait_for(20, "node1 to reach node2", || {
        let r = n1.run_within(
            Duration::from_secs(10),
            &["curl", "-s", "--max-time", "5", &url],
        );
        r.success().then_some(r.stdout)
    });
    assert_eq!(got.trim(), "served by node2");
    let reaches = |from: &Node| {
        from.run_within(
            Duration::from_secs(10),
            &["curl", "-s", "--max-time", "2", &url],
        )
        .success()
    };
    // A partition cuts node 3 off from the others; heal() ends it.
    lab.partition(&[n3]).expect("partition");
    assert!(reaches(n1), "node1 and node2 are on the same side");
    assert!(!reaches(n3), "node3 is cut off");
    lab.heal().expect("heal");
    assert!(reaches(n3), "node3 after heal");
    // A link down is a silent loss; up again, traffic flows again.
    n2.link_down().expect("link down");
    assert!(!reaches(n1), "node2's link is down");
    n2.link_up().expect("link up");
    wait_for(20, "node2 back on the LAN", || reaches(n1).then_some(()));

    // A task on node 1 runs under node 1's own cgroup parent.
    n1.load_test_image().expect("load the test image");
    n1.ok(&[
        "service", "create", "-d", "--name", "web", TEST_IMAGE, "httpd", "-f", "-p", "80",
    ]);
    let cid = running_container(n1);
    assert!(
        containers_under(n1).contains(&cid),
        "{cid} under {}",
        parents[0]
    );
    for other in [n2, n3] {
        assert!(!containers_under(other).contains(&cid));
    }
    assert!(
        !cgroups::pids(&parents[0]).is_empty(),
        "the task's processes"
    );
    // A second daemon on the same host puts its tasks under its own parent.
    n2.load_test_image().expect("load the test image");
    n2.ok(&[
        "service", "create", "-d", "--name", "web", TEST_IMAGE, "httpd", "-f", "-p", "80",
    ]);
    let cid2 = running_container(n2);
    assert!(
        containers_under(n2).contains(&cid2),
        "{cid2} under {}",
        parents[1]
    );
    assert!(!containers_under(n1).contains(&cid2));
    // Only the engine dies: its containers keep running, and it comes back
    // on the same data.
    let engine = n2.pid_of_engine().expect("node2's engine");
    n2.kill_engine();
    assert!(!compat_tests::cluster::procs::alive(engine));
    assert!(
        !cgroups::pids(&parents[1]).is_empty(),
        "the task outlives its engine"
    );
    n2.restart_engine().expect("restart node2's engine");
    assert_eq!(running_container(n2), cid2, "the same container, adopted");

    // A node crash: engine, containerd, shims and the task all go.
    let before = n1.pids();
    eprintln!(
        "node1: container {cid} under {}, node processes {before:?}",
        parents[0]
    );
    assert!(
        before.len() >= 4,
        "tini, sh/cat, containerd, shoald...: {before:?}"
    );
    n1.kill_node();
    assert!(n1.pid_of_engine().is_none());
    for pid in &before {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || !compat_tests::cluster::procs::alive(*pid),
            "pid {pid} outlived its node"
        );
    }
    assert!(cgroups::pids(&parents[0]).is_empty(), "task processes left");
    assert!(
        !n1.docker(&["version"]).success(),
        "the engine answers after a crash"
    );

    // The node boots again with its swarm, and the task comes back.
    n1.start_node().expect("restart node1");
    let hosts = n1.ok(&["node", "ls", "--format", "{{.Hostname}}"]);
    assert_eq!(hosts.trim(), "node1");
    let again = running_container(n1);
    assert_ne!(again, cid, "a new container after the crash");

    // After teardown nothing of the lab is left.
    let dir = lab.dir().to_path_buf();
    let pids: Vec<u32> = nodes.iter().flat_map(|n| n.pids()).collect();
    drop(nodes);
    drop(lab);
    assert!(!dir.exists(), "the lab's temp dir is gone");
    for pid in pids {
        assert!(!compat_tests::cluster::procs::alive(pid), "pid {pid} left");
    }
    for p in &parents {
        assert!(cgroups::dirs_of(p).is_empty(), "cgroup {p} left");
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&dir.display().to_string()), "mounts left");
}
