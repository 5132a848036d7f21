//! Log compaction and snapshot transfer over the real transport: with
//! `--snapshot-interval`, managers snapshot their store and drop old log
//! entries, and a manager joining later (further behind than the entries
//! kept for slow followers) receives the snapshot and then the log.

use compat_tests::cluster::swarm;
use compat_tests::cluster::wait_for;
use compat_tests::cluster::Engine;
use compat_tests::cluster::Lab;

/// Raft entries kept after a snapshot for followers a little behind
/// (swarmkit's `LogEntriesForSlowFollowers` default).
const KEPT: usize = 500;

#[test]
fn e2e_cluster_new_manager_catches_up_by_snapshot() {
    let Some(lab) = Lab::for_test(Engine::Shoald) else {
        return;
    };
    let n1 = lab.add_node().expect("node");
    n1.ok(&[
        "swarm",
        "init",
        "--advertise-addr",
        &n1.addr(),
        "--snapshot-interval",
        "100",
    ]);
    // More writes than the log keeps after a snapshot, straight to the API.
    let writes = KEPT + 150;
    let script = format!(
        "for i in $(seq 1 {writes}); do curl -sf -o /dev/null --unix-socket {} \
         -H 'Content-Type: application/json' -d \"{{\\\"Name\\\":\\\"s$i\\\",\\\"Data\\\":\\\"eA==\\\"}}\" \
         http://api/v1.41/secrets/create || exit 1; done",
        n1.socket().display()
    );
    let r = n1.run_within(std::time::Duration::from_secs(300), &["sh", "-c", &script]);
    assert!(r.success(), "{r:?}");
    let raft = |n: &compat_tests::cluster::Node| n.dir().join("engine/swarm/raft/snapshot.bin");
    wait_for(30, "node1 snapshotted its store", || {
        raft(&n1).exists().then_some(())
    });

    // A manager joins: it cannot get the early entries any more, only the
    // snapshot, and it ends up with everything.
    let n2 = lab.add_node().expect("node");
    let token = n1.ok(&["swarm", "join-token", "-q", "manager"]);
    n2.ok(&[
        "swarm",
        "join",
        "--token",
        token.trim(),
        &format!("{}:2377", n1.addr()),
    ]);
    assert!(raft(&n2).exists(), "node2 installed a snapshot on joining");
    let count = |n: &compat_tests::cluster::Node| n.ok(&["secret", "ls", "-q"]).lines().count();
    assert_eq!(count(&n2), writes);
    // And the log goes on from there: a write through the new manager.
    let r = n2.docker_within(
        std::time::Duration::from_secs(30),
        &["secret", "create", "after", "-"],
        Some(b"x"),
    );
    assert!(r.success(), "{r:?}");
    assert_eq!(count(&n1), writes + 1);
    let rows = swarm::node_ls(&n2).unwrap();
    assert_eq!(
        rows.iter()
            .filter(|r| r.manager_status == "Reachable" || r.manager_status == "Leader")
            .count(),
        2
    );
}
