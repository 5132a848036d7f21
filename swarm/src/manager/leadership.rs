//! Starts the leader-only loops when this manager wins an election and
//! stops them when it loses (swarmkit's `becomeLeader`/`becomeFollower`).
//!
//! A term starts only once this node has applied everything committed
//! before it (openraft commits a blank entry at the start of each term),
//! so the loops never act on a stale store.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Manager;
use crate::controlapi::cluster;
use crate::dispatcher::Local;

/// How long a new leader waits to apply what was committed before its term.
const APPLY_WAIT: Duration = Duration::from_secs(10);

fn leads(m: &Manager) -> bool {
    let metrics = m.raft.metrics().borrow().clone();
    metrics.current_leader == Some(m.state.raft_id)
        && metrics.state == openraft::ServerState::Leader
}

/// Runs until `cancel`: one leadership term at a time.
pub async fn supervise(m: Arc<Manager>, cancel: CancellationToken) {
    let mut metrics = m.raft.metrics();
    loop {
        // Wait to lead.
        while !leads(&m) {
            tokio::select! {
                _ = cancel.cancelled() => return,
                r = metrics.changed() => if r.is_err() { return },
            }
        }
        let last = m.raft.metrics().borrow().last_log_index.unwrap_or(0);
        if !m.store.state().wait_applied(last, APPLY_WAIT).await {
            tracing::warn!("new leader could not apply its log in time; waiting for the next term");
            if !leads(&m) {
                continue;
            }
        }
        tracing::info!(node = %m.state.node_id, "this manager leads: starting the control loops");
        let term = cancel.child_token();
        let heartbeat = cluster::heartbeat_period(&m.store);
        let local = Arc::new(Local::new(m.store.clone(), heartbeat));
        let mut set = JoinSet::new();
        crate::leader::spawn(&m.store, &mut set, term.clone());
        set.spawn(local.clone().monitor(term.clone()));
        set.spawn(super::reachability::run(m.clone(), term.clone()));
        set.spawn(super::roles::run(m.clone(), term.clone()));
        set.spawn(super::rotation::run(m.clone(), term.clone()));
        set.spawn(super::keymanager::run(m.store.clone(), term.clone()));
        m.slot.send_replace(Some(local.clone()));
        // Lead until a newer term starts elsewhere or this manager stops.
        while leads(&m) {
            tokio::select! {
                _ = cancel.cancelled() => break,
                r = metrics.changed() => if r.is_err() { break },
            }
        }
        tracing::info!(node = %m.state.node_id, "this manager no longer leads: stopping the control loops");
        m.slot.send_replace(None);
        local.shut_down();
        term.cancel();
        while set.join_next().await.is_some() {}
        if cancel.is_cancelled() {
            return;
        }
    }
}
