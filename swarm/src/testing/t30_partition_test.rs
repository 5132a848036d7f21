//! t30: a partition that leaves the leader in the minority. Writes through
//! the minority fail with "no leader" in bounded time and leave no trace;
//! the majority elects a leader and keeps taking writes.

use std::time::Duration;

use super::*;
use crate::error::Result;
use crate::raft::is_no_leader;
use crate::raft::NodeId;

const WAIT: Duration = Duration::from_secs(20);
/// The longest a write may take to fail in the minority: the commit
/// deadline (10 s) plus the wait for an election (3 s), with room to spare.
const FAIL_WITHIN: Duration = Duration::from_secs(15);

/// Tries `count` writes through each of `nodes`; every one must fail with
/// "no leader" within [`FAIL_WITHIN`]. Returns the names attempted.
async fn minority_writes(c: &TestCluster, nodes: &[NodeId], count: usize) -> Vec<String> {
    let mut attempted = Vec::new();
    for k in 0..count {
        for id in nodes {
            let name = format!("minority-{id}-{k}");
            let started = tokio::time::Instant::now();
            let r = tokio::time::timeout(FAIL_WITHIN, create_secret(&c.node(*id).store(), &name))
                .await
                .unwrap_or_else(|_| {
                    panic!("{name} through node {id} neither failed nor succeeded")
                });
            let e = r.expect_err("a write through the minority must fail");
            assert!(is_no_leader(&e), "{name}: {e}");
            eprintln!("t30: {name} failed after {:?}", started.elapsed());
            attempted.push(name);
        }
    }
    attempted
}

/// Waits for a leader in the majority, then writes through every majority
/// node; every write must succeed.
async fn majority_writes(c: &TestCluster, majority: &[NodeId]) -> Result<Vec<String>> {
    let leader = c.wait_for(WAIT, "a leader in the majority", |c| {
        c.leader().filter(|l| majority.contains(l))
    });
    leader.await?;
    let mut written = Vec::new();
    for id in majority {
        let name = format!("majority-{id}");
        create_secret(&c.node(*id).store(), &name).await?;
        written.push(name);
    }
    Ok(written)
}

#[tokio::test(start_paused = true)]
async fn t30_minority_leader_refuses_writes_and_majority_goes_on() -> Result<()> {
    let c = TestCluster::new(5).await?;
    let old = c.wait_leader(WAIT).await?;
    let ids = c.ids();
    let buddy = *ids.iter().find(|id| **id != old).expect("five nodes");
    let minority = [old, buddy];
    let majority: Vec<NodeId> = ids
        .iter()
        .copied()
        .filter(|id| !minority.contains(id))
        .collect();
    c.partition(&[&minority, &majority]);

    // Both sides at once: the minority's writes hang on a commit that
    // cannot happen while the majority elects a leader and writes.
    let (attempted, written) = tokio::join!(
        minority_writes(&c, &minority, 3),
        majority_writes(&c, &majority)
    );
    let written = written?;

    c.heal();
    let new = c.wait_for(WAIT, "one leader for all five", |c| {
        let l = c.leader()?;
        let all = c.ids().iter().all(|id| {
            let m = c.node(*id).metrics();
            m.current_leader == Some(l) && (*id == l || m.state == openraft::ServerState::Follower)
        });
        all.then_some(l)
    });
    let new = new.await?;
    assert!(majority.contains(&new), "the leader came from the majority");
    c.wait_synced(WAIT).await?;
    for id in c.ids() {
        let names = secret_names(&c.node(id).store());
        let leaked: Vec<&String> = attempted.iter().filter(|n| names.contains(*n)).collect();
        assert!(
            leaked.is_empty(),
            "node {id} has minority writes {leaked:?}"
        );
        assert!(
            written.iter().all(|n| names.contains(n)),
            "node {id} misses majority writes"
        );
    }
    c.shutdown().await
}

/// A lossy network (a fifth of all messages lost, seeded): writes through
/// every manager eventually go through with client retries, and once the
/// network is clean again every acknowledged write is everywhere.
#[tokio::test(start_paused = true)]
async fn t31_writes_survive_a_lossy_network() -> Result<()> {
    const WRITES: usize = 30;
    const MAX_TRIES: usize = 50;
    let c = TestCluster::new(3).await?;
    c.router().faults().set_loss(0.2, 31);
    let ids = c.ids();
    let mut acked = Vec::new();
    let mut failures = 0;
    for k in 0..WRITES {
        let name = format!("lossy-{k}");
        let store = c.node(ids[k % ids.len()]).store();
        for _ in 0..MAX_TRIES {
            match create_secret(&store, &name).await {
                Ok(_) => {
                    acked.push(name.clone());
                    break;
                }
                // A lost reply may hide a commit: the retry then meets
                // its own earlier write.
                Err(e) if e.kind() == crate::ErrorKind::NameConflict => break,
                Err(e) => {
                    assert!(is_no_leader(&e), "{name}: {e}");
                    failures += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    c.router().faults().set_loss(0.0, 0);
    c.wait_synced(WAIT).await?;
    eprintln!(
        "t31: {} acknowledged, {failures} failed attempts",
        acked.len()
    );
    assert!(acked.len() >= WRITES / 2, "most writes went through");
    for id in c.ids() {
        let names = secret_names(&c.node(id).store());
        assert!(acked.iter().all(|n| names.contains(n)), "node {id}");
        assert!(names.len() <= WRITES);
    }
    c.shutdown().await
}
