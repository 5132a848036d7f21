//! Log compaction on every manager, at the swarm spec's
//! `Raft.SnapshotInterval` (`docker swarm update --snapshot-interval`):
//! when that many entries were applied since the last snapshot, this
//! manager snapshots its store and raft drops the log before it (keeping
//! `RaftSettings::keep_logs` entries for followers a little behind; a
//! follower further behind, or a new manager, gets the snapshot).
//!
//! openraft's own snapshot policy is fixed when raft starts; reading the
//! interval from the store lets `swarm update` change it at once.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::Manager;
use crate::controlapi::cluster;

/// Runs until `cancel`.
pub async fn run(m: Arc<Manager>, cancel: CancellationToken) {
    let mut metrics = m.raft.metrics();
    // The index a snapshot was last asked for at: one request per interval.
    let mut asked_at = 0u64;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = metrics.changed() => if r.is_err() { return },
        }
        let (applied, snapshot) = {
            let x = metrics.borrow_and_update();
            (
                x.last_applied.map_or(0, |l| l.index),
                x.snapshot.map_or(0, |l| l.index),
            )
        };
        let interval = cluster::snapshot_interval(&m.store);
        if applied >= snapshot.max(asked_at) + interval {
            asked_at = applied;
            if let Err(e) = m.raft.trigger().snapshot().await {
                tracing::warn!(error = %e, "asking raft for a snapshot failed");
            }
        }
    }
}
