//! Consensus: openraft with an encrypted on-disk log and the store as its
//! state machine. A one-manager swarm is a one-voter raft; more managers join
//! through membership changes without touching the state machine.

pub mod encryption;
mod integrity;
// openraft fixes the storage error type (large); boxing it locally buys nothing.
#[allow(clippy::result_large_err)]
mod log_store;
mod log_writer;
pub mod membership;
pub mod network;
mod proposer;
pub mod recovery;
pub mod service;
pub mod space;
#[allow(clippy::result_large_err)]
mod state_machine;
pub mod wire;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use log_store::LogStore;
use openraft::BasicNode;
use openraft::Config;
use openraft::SnapshotPolicy;
pub use proposer::is_no_leader;
pub use proposer::raft_id;
pub use proposer::Forwarder;
pub use proposer::GrpcForwarder;
pub use proposer::RaftProposer;
use serde::Deserialize;
use serde::Serialize;
pub use space::SpaceGuard;
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

/// How often the leader sends heartbeats (ms). openraft also bounds each
/// AppendEntries by this long, so it must cover a round trip plus a
/// follower's fsync: 150 ms is far above a LAN's and a loaded disk's.
pub const HEARTBEAT_MS: u64 = 150;
/// The shortest election timeout (ms). A follower that had a leader waits
/// the longest timeout (openraft's leader lease) plus a random one between
/// the two before it stands: 1.15 to 1.4 s after the last heartbeat, so a
/// new leader takes writes within about 1.5 s of the old one's death.
pub const ELECTION_MIN_MS: u64 = 450;
/// The longest election timeout (ms), also the leader lease.
pub const ELECTION_MAX_MS: u64 = 700;

/// The most entries one AppendEntries carries. openraft bounds each by
/// the heartbeat interval, so a follower catching up must get its entries
/// in pieces it can take in that time even on a loaded machine: entries
/// of the reconcilers hold up to 200 tasks each (`Store::update_batched`),
/// and openraft's default of 300 such entries would be tens of megabytes.
pub const MAX_PAYLOAD_ENTRIES: u64 = 32;

/// Raft tuning shared by every manager.
#[derive(Debug, Clone)]
pub struct RaftSettings {
    /// Entries between snapshots (swarm spec `Raft.SnapshotInterval`); 0
    /// leaves snapshots to the caller (`raft.trigger().snapshot()`).
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

/// Opens the log and state machine in `dir` and starts raft as `id`,
/// reaching the other managers through `network`.
///
/// The state machine restores the last snapshot into `state`; openraft then
/// re-applies committed entries after it before serving writes. A damaged
/// log or snapshot file is refused with a message naming it (see
/// `integrity`).
pub async fn start<N>(
    dir: &Path,
    sealer: Arc<encryption::Sealer>,
    state: Arc<SharedState>,
    id: NodeId,
    settings: &RaftSettings,
    network: N,
) -> Result<ShoalRaft>
where
    N: openraft::RaftNetworkFactory<TypeConfig>,
{
    std::fs::create_dir_all(dir).map_err(|e| Error::internal(format!("raft dir: {e}")))?;
    let (log, purged) = integrity::open_log(&dir.join("log.redb"), sealer.clone())?;
    let sm = StateMachine::open(dir, sealer, state)
        .map_err(|state_machine::Damage(file, what)| integrity::damaged(&file, &what))?;
    // Entries up to the purged index live only in the snapshot.
    if let Some(p) = purged {
        if sm.last_applied().is_none_or(|l| l.index < p.index) {
            return Err(integrity::damaged(
                sm.snapshot_file(),
                &format!(
                    "the log was compacted up to entry {} but the snapshot, which must hold those entries, is missing or older",
                    p.index
                ),
            ));
        }
    }
    let config = Config {
        cluster_name: "shoal".into(),
        heartbeat_interval: HEARTBEAT_MS,
        election_timeout_min: ELECTION_MIN_MS,
        election_timeout_max: ELECTION_MAX_MS,
        snapshot_policy: match settings.snapshot_interval {
            0 => SnapshotPolicy::Never,
            n => SnapshotPolicy::LogsSinceLast(n),
        },
        max_in_snapshot_log_to_keep: settings.keep_logs,
        max_payload_entries: MAX_PAYLOAD_ENTRIES,
        ..Default::default()
    };
    let config = Arc::new(
        config
            .validate()
            .map_err(|e| Error::internal(format!("raft config: {e}")))?,
    );
    openraft::Raft::new(id, config, network, log, sm)
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
