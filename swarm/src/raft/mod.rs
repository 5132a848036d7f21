//! Consensus: openraft with an encrypted on-disk log and the store as its
//! state machine. A one-manager swarm is a one-voter raft; more managers join
//! through membership changes without touching the state machine.

pub mod encryption;
// openraft fixes the storage error type (large); boxing it locally buys nothing.
#[allow(clippy::result_large_err)]
mod log_store;
mod network;
mod proposer;
#[allow(clippy::result_large_err)]
mod state_machine;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use log_store::LogStore;
use openraft::BasicNode;
use openraft::Config;
use openraft::SnapshotPolicy;
pub use proposer::raft_id;
pub use proposer::RaftProposer;
use serde::Deserialize;
use serde::Serialize;
pub use state_machine::StateMachine;

use crate::error::Error;
use crate::error::Result;
use crate::store::SharedState;
use crate::store::StoreAction;

/// One store transaction: the raft log payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proposal {
    /// The transaction's actions, applied atomically.
    pub actions: Vec<StoreAction>,
}

impl std::fmt::Display for Proposal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "proposal of {} actions", self.actions.len())
    }
}

openraft::declare_raft_types!(
    /// shoal's raft types.
    pub TypeConfig:
        D = Proposal,
        R = (),
        NodeId = u64,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A raft node ID.
pub type NodeId = u64;
/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// The raft instance.
pub type ShoalRaft = openraft::Raft<TypeConfig>;

/// Raft tuning shared by every manager.
#[derive(Debug, Clone)]
pub struct RaftSettings {
    /// Entries between snapshots (swarm spec `Raft.SnapshotInterval`).
    pub snapshot_interval: u64,
    /// Entries kept in the log after a snapshot.
    pub keep_logs: u64,
}

impl Default for RaftSettings {
    fn default() -> Self {
        RaftSettings {
            snapshot_interval: 10_000,
            keep_logs: 500,
        }
    }
}

/// Opens the log and state machine in `dir` and starts raft as `id`.
///
/// The state machine restores the last snapshot into `state`; openraft then
/// re-applies committed entries after it before serving writes.
pub async fn start(
    dir: &Path,
    sealer: Arc<encryption::Sealer>,
    state: Arc<SharedState>,
    id: NodeId,
    settings: &RaftSettings,
) -> Result<ShoalRaft> {
    std::fs::create_dir_all(dir).map_err(|e| Error::internal(format!("raft dir: {e}")))?;
    let log = LogStore::open(&dir.join("log.redb"), sealer.clone())
        .map_err(|e| Error::internal(format!("raft log: {e}")))?;
    let sm = StateMachine::open(dir, sealer, state)
        .map_err(|e| Error::internal(format!("raft snapshot: {e}")))?;
    let config = Config {
        cluster_name: "shoal".into(),
        heartbeat_interval: 100,
        election_timeout_min: 300,
        election_timeout_max: 600,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(settings.snapshot_interval),
        max_in_snapshot_log_to_keep: settings.keep_logs,
        ..Default::default()
    };
    let config = Arc::new(
        config
            .validate()
            .map_err(|e| Error::internal(format!("raft config: {e}")))?,
    );
    openraft::Raft::new(id, config, network::Network, log, sm)
        .await
        .map_err(|e| Error::internal(format!("raft start: {e}")))
}

/// Makes `raft` the single voter of a new cluster (swarm init).
pub async fn bootstrap(raft: &ShoalRaft, id: NodeId, addr: &str) -> Result<()> {
    let mut members = BTreeMap::new();
    members.insert(id, BasicNode::new(addr));
    raft.initialize(members)
        .await
        .map_err(|e| Error::internal(format!("raft initialize: {e}")))
}

/// Waits until this node leads (one voter: right after an election timeout).
pub async fn wait_leader(raft: &ShoalRaft, id: NodeId, timeout: Duration) -> Result<()> {
    raft.wait(Some(timeout))
        .current_leader(id, "become leader")
        .await
        .map(|_| ())
        .map_err(|e| Error::internal(format!("raft: no leader: {e}")))
}

#[cfg(test)]
mod tests;
