//! t70: the leader's dispatcher marks nodes down when their sessions lapse:
//! after three missed heartbeat periods, about a second after a session
//! stream closes (unless the node opens another), and, under a new leader,
//! only after one grace period in which ready nodes may find it.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::dispatcher::DispatcherApi;
use crate::dispatcher::Fixed;
use crate::dispatcher::Local;
use crate::error::Result;
use crate::exec::fake::FakeController;
use crate::exec::fake::FakeExecutor;
use crate::model::api;
use crate::model::api::NodeState;
use crate::model::new_id;
use crate::model::Node;
use crate::store::Store;

const WAIT: Duration = Duration::from_secs(20);
/// A grace for commits and the monitor's wake-up after a deadline.
const SLACK: Duration = Duration::from_millis(100);

async fn new_node(store: &Store) -> Result<String> {
    let id = new_id();
    let mut n = Node::default();
    n.api.id = Some(id.clone());
    store.update(|tx| tx.create(n.clone())).await?;
    Ok(id)
}

fn state_of(store: &Store, node: &str) -> Option<NodeState> {
    store
        .view(|tx| tx.get::<Node>(node))
        .and_then(|n| n.api.status)
        .and_then(|s| s.state)
}

/// Waits until `node` is in `want` on `store`; returns when that was seen.
async fn wait_state(
    store: &Store,
    node: &str,
    want: NodeState,
    timeout: Duration,
) -> Result<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut commits = store.subscribe();
        if state_of(store, node) == Some(want) {
            return Ok(Instant::now());
        }
        // Any commit (or a lag) is a reason to look again.
        if tokio::time::timeout_at(deadline, commits.recv())
            .await
            .is_err()
        {
            return Err(crate::Error::internal(format!(
                "node {node} not {want:?} within {timeout:?}"
            )));
        }
    }
}

fn desc() -> crate::dispatcher::SessionRequest {
    crate::dispatcher::SessionRequest {
        description: api::NodeDescription {
            hostname: Some("worker".into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Heartbeats `session` of `node` every `period` until `stop` fires.
fn keep_alive(
    d: Arc<Local>,
    node: String,
    session: String,
    period: Duration,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
            if d.heartbeat(&node, &session).await.is_err() {
                return;
            }
        }
    });
}

#[tokio::test(start_paused = true)]
async fn t70_an_agent_that_stops_heartbeating_is_down_after_three_periods() -> Result<()> {
    let period = Duration::from_secs(1);
    let store = Store::in_memory();
    let node = new_node(&store).await?;
    let d = Arc::new(Local::new(store.clone(), period));
    let term = CancellationToken::new();
    tokio::spawn(d.clone().monitor(term.clone()));
    let agent = CancellationToken::new();
    let exec = Arc::new(FakeExecutor {
        template: FakeController::runs(),
    });
    tokio::spawn(crate::agent::run(
        node.clone(),
        Default::default(),
        Arc::new(Fixed(d.clone())),
        exec,
        agent.clone(),
    ));
    wait_state(&store, &node, NodeState::READY, WAIT).await?;
    // A healthy agent stays ready well past the expiry.
    let still = wait_state(&store, &node, NodeState::DOWN, period * 10);
    assert!(still.await.is_err(), "a heartbeating node went down");

    let silent_at = Instant::now();
    agent.cancel();
    let down_at = wait_state(&store, &node, NodeState::DOWN, WAIT).await?;
    // Its last heartbeat was at most one period before it fell silent.
    let after = down_at - silent_at;
    assert!(
        after >= period * 2 && after <= period * 3 + SLACK,
        "down {after:?} after the last chance to heartbeat"
    );
    let msg = store
        .view(|tx| tx.get::<Node>(&node))
        .and_then(|n| n.api.status)
        .and_then(|s| s.message);
    assert_eq!(msg.as_deref(), Some("heartbeat failure"));
    term.cancel();
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn t71_a_closed_session_is_down_in_about_a_second_unless_it_reopens() -> Result<()> {
    // Long heartbeats: only the closed stream can explain a quick DOWN.
    let period = Duration::from_secs(5);
    let store = Store::in_memory();
    let gone = new_node(&store).await?;
    let back = new_node(&store).await?;
    let d = Arc::new(Local::new(store.clone(), period));
    let term = CancellationToken::new();
    tokio::spawn(d.clone().monitor(term.clone()));
    let s_gone = d.session(&gone, desc()).await?;
    let s_back = d.session(&back, desc()).await?;
    assert_eq!(state_of(&store, &gone), Some(NodeState::READY));

    let closed_at = Instant::now();
    d.session_closed(&gone, &s_gone.session_id);
    d.session_closed(&back, &s_back.session_id);
    // `back` reconnects half a second later (an agent restart).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s_new = d.session(&back, desc()).await?;
    let stop = CancellationToken::new();
    keep_alive(
        d.clone(),
        back.clone(),
        s_new.session_id,
        period,
        stop.clone(),
    );

    let down_at = wait_state(&store, &gone, NodeState::DOWN, WAIT).await?;
    let after = down_at - closed_at;
    assert!(
        after >= Duration::from_secs(1) && after <= Duration::from_secs(1) + SLACK,
        "down {after:?} after its stream closed"
    );
    let back_down = wait_state(&store, &back, NodeState::DOWN, period * 4);
    assert!(
        back_down.await.is_err(),
        "the node that reconnected went down"
    );
    assert!(
        d.heartbeat(&gone, &s_gone.session_id).await.is_err(),
        "the closed session is gone"
    );
    stop.cancel();
    term.cancel();
    Ok(())
}

/// Leadership moves: the new leader's dispatcher starts with every ready
/// node on a grace period. The node that finds it stays ready; the one that
/// never does is down when the grace ends, not before.
#[tokio::test(start_paused = true)]
async fn t72_a_new_leader_gives_ready_nodes_one_grace_period() -> Result<()> {
    let period = Duration::from_secs(1);
    let c = TestCluster::new(3).await?;
    let old = c.wait_leader(WAIT).await?;
    let old_store = c.node(old).store();
    let comes_back = new_node(&old_store).await?;
    let never = new_node(&old_store).await?;
    let d1 = Arc::new(Local::new(old_store.clone(), period));
    let term1 = CancellationToken::new();
    tokio::spawn(d1.clone().monitor(term1.clone()));
    d1.session(&comes_back, desc()).await?;
    d1.session(&never, desc()).await?;
    c.wait_synced(WAIT).await?;

    // The old leader is cut off; its term (and its dispatcher) ends.
    c.isolate(old);
    term1.cancel();
    d1.shut_down();
    let new = c.wait_new_leader(old, WAIT).await?;
    let store = c.node(new).store();
    assert_eq!(state_of(&store, &never), Some(NodeState::READY));
    let d2 = Arc::new(Local::new(store.clone(), period));
    let term2 = CancellationToken::new();
    let started = Instant::now();
    tokio::spawn(d2.clone().monitor(term2.clone()));

    // One node finds the new leader after a second and stays.
    tokio::time::sleep(period).await;
    let s = d2.session(&comes_back, desc()).await?;
    let stop = CancellationToken::new();
    keep_alive(
        d2.clone(),
        comes_back.clone(),
        s.session_id,
        period,
        stop.clone(),
    );

    let down_at = wait_state(&store, &never, NodeState::DOWN, WAIT).await?;
    let grace = period * 3;
    let after = down_at - started;
    assert!(
        after >= grace && after <= grace + SLACK,
        "down {after:?} after the new leader started (grace {grace:?})"
    );
    let gone = wait_state(&store, &comes_back, NodeState::DOWN, period * 6);
    assert!(gone.await.is_err(), "the node that reconnected went down");
    // Every manager agrees (the old leader once it is back).
    c.heal();
    c.wait_synced(WAIT).await?;
    for id in c.ids() {
        let s = c.node(id).store();
        assert_eq!(state_of(&s, &never), Some(NodeState::DOWN), "node {id}");
        assert_eq!(
            state_of(&s, &comes_back),
            Some(NodeState::READY),
            "node {id}"
        );
    }
    stop.cancel();
    term2.cancel();
    c.shutdown().await
}

/// A node reconnects just as its old session expires, while the store is
/// busy with another write: its new session is opened (no write needed: it
/// is still READY), then the monitor's queued "down" commits. The node
/// heartbeats on a live session from then on; it must not stay DOWN.
#[tokio::test(start_paused = true)]

async fn t73_a_node_that_reconnects_at_its_expiry_does_not_stay_down() -> Result<()> {
    let period = Duration::from_secs(1);
    let c = TestCluster::new(3).await?;
    let leader = c.wait_leader(WAIT).await?;
    let store = c.node(leader).store();
    let node = new_node(&store).await?;
    let d = Arc::new(Local::new(store.clone(), period));
    let term = CancellationToken::new();
    tokio::spawn(d.clone().monitor(term.clone()));
    let opened = Instant::now();
    d.session(&node, desc()).await?;
    let expiry = opened + period * 3;
    // Commits now take a few round trips of 40 ms.
    for id in c.ids() {
        c.router()
            .faults()
            .set_link_latency(leader, id, Some(Duration::from_millis(40)));
    }
    // Another write holds the store's write lock across the expiry...
    let busy = store.clone();
    tokio::spawn(async move {
        tokio::time::sleep_until(expiry - Duration::from_millis(50)).await;
        let _ = create_secret(&busy, "busy").await;
    });
    // ...and the node reconnects right behind it, before the expiry.
    tokio::time::sleep_until(expiry - Duration::from_millis(40)).await;
    let s = d.session(&node, desc()).await?;
    let stop = CancellationToken::new();
    keep_alive(
        d.clone(),
        node.clone(),
        s.session_id.clone(),
        period,
        stop.clone(),
    );
    assert!(d.is_current(&node, &s.session_id));

    // Two periods past the expiry the monitor has long had its turn; the
    // node heartbeats on its current session, so it must be ready.
    tokio::time::sleep_until(expiry + period * 2).await;
    assert!(
        d.heartbeat(&node, &s.session_id).await.is_ok(),
        "the session is current"
    );
    assert_eq!(
        state_of(&store, &node),
        Some(NodeState::READY),
        "the node is DOWN while it heartbeats on its current session"
    );
    stop.cancel();
    term.cancel();
    c.shutdown().await
}
