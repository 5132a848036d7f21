//! t20: losing the leader while clients write through the followers. A new
//! leader takes over, no acknowledged write is lost, and the old leader
//! comes back as a follower.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::error::Result;
use crate::raft::is_no_leader;
use crate::raft::NodeId;
use crate::store::Store;

const WAIT: Duration = Duration::from_secs(20);
/// The writer gives up after this many attempts, whatever happens.
const MAX_ATTEMPTS: usize = 400;
/// A client waits this long after a failed write before it tries again.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// What a writer saw: names acknowledged, names whose outcome is unknown
/// (the call failed, so the write may or may not have happened), and any
/// error other than "no leader".
#[derive(Debug, Default)]
struct Outcome {
    acked: Vec<String>,
    unknown: Vec<String>,
    unexpected: Vec<String>,
}

/// Writes `w-0`, `w-1`, ... through `stores` in turn until cancelled or out
/// of attempts; publishes the number of acknowledged writes on `acks`.
async fn writer(
    stores: Vec<Arc<Store>>,
    acks: watch::Sender<usize>,
    stop: CancellationToken,
) -> Outcome {
    let mut out = Outcome::default();
    for k in 0..MAX_ATTEMPTS {
        if stop.is_cancelled() {
            break;
        }
        let name = format!("w-{k}");
        match create_secret(&stores[k % stores.len()], &name).await {
            Ok(_) => {
                out.acked.push(name);
                acks.send_replace(out.acked.len());
            }
            Err(e) => {
                if !is_no_leader(&e) {
                    out.unexpected.push(format!("{name}: {e}"));
                }
                out.unknown.push(name);
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
    out
}

async fn wait_acks(acks: &mut watch::Receiver<usize>, at_least: usize) {
    tokio::time::timeout(WAIT, acks.wait_for(|n| *n >= at_least))
        .await
        .expect("the writer makes progress")
        .expect("the writer runs");
}

/// Checks that every acknowledged write is on every node, and that every
/// `w-*` secret on a node is one the writer attempted.
fn check_no_write_lost(c: &TestCluster, out: &Outcome) {
    let attempted: BTreeSet<&String> = out.acked.iter().chain(&out.unknown).collect();
    for id in c.ids() {
        let names = secret_names(&c.node(id).store());
        let missing: Vec<&String> = out.acked.iter().filter(|n| !names.contains(*n)).collect();
        assert!(
            missing.is_empty(),
            "node {id} lost acknowledged writes {missing:?}"
        );
        let phantoms: Vec<&String> = names
            .iter()
            .filter(|n| n.starts_with("w-") && !attempted.contains(n))
            .collect();
        assert!(phantoms.is_empty(), "node {id} has {phantoms:?}");
    }
}

async fn wait_follows(c: &TestCluster, id: NodeId, leader: NodeId) -> Result<()> {
    c.wait_for(WAIT, &format!("node {id} to follow {leader}"), |c| {
        let m = c.node(id).metrics();
        (m.state == openraft::ServerState::Follower && m.current_leader == Some(leader))
            .then_some(())
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn t20_isolated_leader_loses_no_acknowledged_write() -> Result<()> {
    let c = TestCluster::new(3).await?;
    let old = c.wait_leader(WAIT).await?;
    let followers: Vec<Arc<Store>> = c
        .ids()
        .into_iter()
        .filter(|id| *id != old)
        .map(|id| c.node(id).store())
        .collect();
    let (acks_tx, mut acks) = watch::channel(0);
    let stop = CancellationToken::new();
    let task = tokio::spawn(writer(followers, acks_tx, stop.clone()));

    wait_acks(&mut acks, 10).await;
    c.isolate(old);
    let new = c.wait_new_leader(old, WAIT).await?;
    let before = *acks.borrow();
    wait_acks(&mut acks, before + 10).await;
    stop.cancel();
    let out = task.await.expect("writer task");

    c.heal();
    wait_follows(&c, old, new).await?;
    c.wait_synced(WAIT).await?;
    assert!(out.unexpected.is_empty(), "{:?}", out.unexpected);
    check_no_write_lost(&c, &out);
    let on_old = secret_names(&c.node(old).store()).len();
    assert!(on_old >= out.acked.len());
    eprintln!(
        "t20: {} acknowledged, {} failed with no leader, {} secrets on the old leader",
        out.acked.len(),
        out.unknown.len(),
        on_old
    );
    c.shutdown().await
}

/// The same with the leader process gone (stopped) and then restarted on
/// its directory.
#[tokio::test(start_paused = true)]
async fn t21_stopped_leader_restarts_as_follower_with_every_write() -> Result<()> {
    let mut c = TestCluster::new(3).await?;
    let old = c.wait_leader(WAIT).await?;
    let followers: Vec<Arc<Store>> = c
        .ids()
        .into_iter()
        .filter(|id| *id != old)
        .map(|id| c.node(id).store())
        .collect();
    let (acks_tx, mut acks) = watch::channel(0);
    let stop = CancellationToken::new();
    let task = tokio::spawn(writer(followers, acks_tx, stop.clone()));

    wait_acks(&mut acks, 10).await;
    c.stop(old).await?;
    let new = c.wait_new_leader(old, WAIT).await?;
    let before = *acks.borrow();
    wait_acks(&mut acks, before + 10).await;
    stop.cancel();
    let out = task.await.expect("writer task");

    c.restart(old).await?;
    wait_follows(&c, old, new).await?;
    c.wait_synced(WAIT).await?;
    // Not checked here: a write in flight on the stopping leader fails with
    // an internal error instead of "no leader" (t22 pins that down).
    eprintln!("t21: errors other than no leader: {:?}", out.unexpected);
    check_no_write_lost(&c, &out);
    c.shutdown().await
}

/// A write forwarded to the leader is waiting for its commit when the
/// leader shuts down (a manager restart): the follower's caller must get
/// dockerd's "no leader" error (the write's fate is unknown, as with any
/// lost leader), not an internal "raft: raft stopped".
#[tokio::test(start_paused = true)]

async fn t22_a_write_in_flight_when_the_leader_stops_fails_with_no_leader() -> Result<()> {
    let mut c = TestCluster::new(3).await?;
    let leader = c.wait_leader(WAIT).await?;
    let follower = c.a_follower(leader);
    // Slow replication: the commit takes a while, the shutdown lands in it.
    for id in c.ids() {
        c.router()
            .faults()
            .set_link_latency(leader, id, Some(Duration::from_millis(40)));
    }
    let before = c.node(leader).metrics().last_log_index.unwrap_or(0);
    let store = c.node(follower).store();
    let write = tokio::spawn(async move { create_secret(&store, "in-flight").await });
    c.wait_for(WAIT, "the leader to append the write", |c| {
        (c.node(leader).metrics().last_log_index > Some(before)).then_some(())
    })
    .await?;
    c.stop(leader).await?;
    let e = write
        .await
        .expect("writer task")
        .expect_err("the leader stopped before the commit");
    assert!(is_no_leader(&e), "{e}");
    c.shutdown().await
}

/// The leader stops when nobody writes: the new leader's first entry of
/// its term (a blank one) must count as applied, or a manager waiting for
/// its log to be applied before it leads (and any caller waiting for its
/// log index) waits for a write that is not coming.
#[tokio::test(start_paused = true)]
async fn t24_a_quiet_new_leader_has_applied_its_whole_log() -> Result<()> {
    let mut c = TestCluster::new(3).await?;
    let old = c.wait_leader(WAIT).await?;
    create_secret(&c.node(old).store(), "before").await?;
    c.wait_synced(WAIT).await?;
    c.stop(old).await?;
    let new = c.wait_new_leader(old, WAIT).await?;
    let last = c
        .wait_for(WAIT, "the new term's entry committed", |c| {
            let m = c.node(new).metrics();
            let last = m.last_log_index?;
            (m.last_applied.map(|l| l.index) == Some(last)).then_some(last)
        })
        .await?;
    let store = c.node(new).store();
    let state = store.state();
    assert!(
        state.wait_applied(last, Duration::from_secs(1)).await,
        "the store's applied index stays at {} below the log's {last}",
        state.applied_index()
    );
    c.shutdown().await
}
