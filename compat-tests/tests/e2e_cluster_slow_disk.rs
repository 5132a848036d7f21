//! One manager on a really slow disk (its data root on a loop device whose
//! writes the kernel throttles): as a follower it must not slow the
//! cluster's writes down, and as the leader the cluster must stay
//! available. Latencies are printed, not asserted: this machine's timing
//! is not the test's to judge.

use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use compat_tests::cluster::slowdisk::SlowDisk;
use compat_tests::cluster::swarm;
use compat_tests::cluster::wait_for;
use compat_tests::cluster::writes;
use compat_tests::cluster::writes::Ack;
use compat_tests::cluster::writes::Writes;
use compat_tests::cluster::Engine;
use compat_tests::cluster::Lab;
use compat_tests::cluster::Node;

/// Write requests a second the slow disk serves its engine.
const SLOW_IOPS: u32 = 5;
/// Synchronous writes timed to show how slow the disk is.
const PROBE_WRITES: u32 = 5;
/// Writes measured per phase.
const PER_PHASE: usize = 20;

/// Writes through `via` until [`PER_PHASE`] are acknowledged or a minute
/// has passed; prints their latencies and returns them.
fn phase(via: &Arc<Node>, prefix: &str, what: &str) -> (Vec<Ack>, Vec<String>) {
    let w = Writes::start(via.clone(), prefix);
    let _ = compat_tests::cluster::procs::try_wait_for(Duration::from_secs(60), || {
        (w.acked().len() >= PER_PHASE).then_some(())
    });
    let failed = w.failed();
    let acked = w.stop();
    report(what, &acked, &failed);
    (acked, failed)
}

/// Prints a phase's counts and latency percentiles.
fn report(what: &str, acked: &[Ack], failed: &[String]) {
    let [p50, p90, p99, max] = writes::percentiles(acked);
    println!(
        "{what}: {} writes acknowledged, {} failed {failed:?}; latency p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        acked.len(),
        failed.len(),
        ms(p50),
        ms(p90),
        ms(p99),
        ms(max)
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Restarts managers other than `want` one at a time (each back before the
/// next) until `want` leads; at most `tries` elections. The hostname that
/// leads at the end.
fn make_leader(nodes: &[Arc<Node>], want: &Node, tries: usize) -> String {
    let mut leader = String::new();
    for _ in 0..tries {
        leader = wait_for(60, "a leader", || swarm::leader(want));
        if leader == want.hostname() {
            break;
        }
        let current = nodes
            .iter()
            .find(|n| n.hostname() == leader)
            .expect("the leader is a lab node");
        current.kill_engine();
        let old = leader.clone();
        leader = wait_for(60, "a new leader", || {
            swarm::leader(want).filter(|l| *l != old)
        });
        current.start_engine().expect("the old leader's engine");
        wait_for(60, "the old leader reachable again", || {
            let rows = swarm::node_ls(want)?;
            let r = rows.iter().find(|r| r.hostname == old)?;
            (r.status == "Ready" && r.manager_status == "Reachable").then_some(())
        });
    }
    leader
}

#[test]
fn e2e_cluster_slow_disk_manager() {
    if let Some(why) = SlowDisk::missing() {
        if std::env::var_os("SHOAL_REQUIRE_CONTAINERD").is_some() {
            panic!("a slow disk is required here: {why}");
        }
        eprintln!("skipping: {why}");
        return;
    }
    let Some(lab) = Lab::for_test(Engine::Shoald) else {
        return;
    };
    let nodes = swarm::form(&lab, 3, 0);
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
    let disk = SlowDisk::attach(n3.clone()).expect("node3's data root on a loop device");
    wait_for(60, "node3 reachable on its new disk", || {
        let rows = swarm::node_ls(n2)?;
        let r = rows.iter().find(|r| r.hostname == "node3")?;
        (r.status == "Ready" && r.manager_status == "Reachable").then_some(())
    });
    println!(
        "node3's disk unthrottled: {} synchronous 4 KiB writes take {:.0} ms",
        PROBE_WRITES,
        ms(disk.probe(PROBE_WRITES).expect("probe the disk"))
    );
    let mut all = Vec::new();
    println!("leader: {:?}", swarm::leader(n2));
    let (a, _) = phase(n2, "fast", "all disks fast");
    all.extend(a);

    // A slow follower: the two fast managers are a quorum of their own.
    disk.throttle(SLOW_IOPS).expect("throttle node3's disk");
    println!(
        "node3's disk: {} synchronous 4 KiB writes take {:.0} ms",
        PROBE_WRITES,
        ms(disk.probe(PROBE_WRITES).expect("probe the slow disk"))
    );
    let before = disk.writes();
    println!("leader: {:?}", swarm::leader(n2));
    let (a, _) = phase(n2, "slowf", "node3's disk slow, node3 a follower");
    assert!(a.len() >= PER_PHASE / 2, "writes stalled: {}", a.len());
    println!(
        "node3's engine sent {} write requests to its slow disk meanwhile",
        disk.writes() - before
    );
    all.extend(a);

    // A slow leader: the cluster stays available, leadership may move.
    disk.throttle(0).expect("lift the throttle");
    let leader = make_leader(&nodes, n3, 4);
    println!("leader before throttling: {leader}");
    if leader == "node3" {
        disk.throttle(SLOW_IOPS).expect("throttle node3's disk");
        let started = Instant::now();
        // Who leads is watched while the writes go on (bounded: a minute).
        let w = Writes::start(n2.clone(), "slowl");
        let mut moved = None;
        while w.acked().len() < PER_PHASE && started.elapsed() < Duration::from_secs(60) {
            if moved.is_none() {
                moved = swarm::leader(n1)
                    .filter(|l| l != "node3")
                    .map(|l| (l, started.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let failed = w.failed();
        let a = w.stop();
        report("node3's disk slow, node3 the leader", &a, &failed);
        assert!(!a.is_empty(), "no write acknowledged with a slow leader");
        all.extend(a);
        match moved {
            Some((to, after)) => println!(
                "leadership moved from node3 to {to} {:.1} s into the slow-leader writes",
                after.as_secs_f64()
            ),
            None => println!("node3 kept the leadership through the slow-leader writes"),
        }
    } else {
        println!("node3 never won an election in 4 tries: slow-leader phase not run");
    }

    // Nothing acknowledged is lost, on any manager.
    disk.throttle(0).expect("lift the throttle");
    for m in &nodes {
        let what = format!("every acknowledged write on node{}", m.n());
        wait_for(60, &what, || {
            writes::missing_on(m, &all).filter(Vec::is_empty)
        });
    }
}
