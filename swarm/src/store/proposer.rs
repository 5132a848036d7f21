//! The seam between the store and consensus.

use async_trait::async_trait;

use super::StoreAction;
use crate::error::Result;

/// What became of a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proposed {
    /// Committed (durable on a quorum) and applied at this index.
    Committed(u64),
    /// Not committed: the leader's copy of an object the transaction writes
    /// is newer than the one it read. Catch up to this index and run the
    /// transaction again.
    Stale(u64),
}

/// Replicates a transaction's actions; swarmkit's `state.Proposer`.
#[async_trait]
pub trait Proposer: Send + Sync {
    /// Proposes `actions`, built on the state applied at index `base`, as
    /// one log entry. On a leader: returns its index once it is committed
    /// and applied to the shared state. Elsewhere: the leader commits it if
    /// it still holds there (see `store::check`), and this returns once this
    /// node has applied it too.
    async fn propose(&self, base: u64, actions: Vec<StoreAction>) -> Result<Proposed>;

    /// Proposes `actions` only if this node leads, never forwarding them:
    /// for proposals that were already forwarded once.
    async fn propose_here(&self, base: u64, actions: Vec<StoreAction>) -> Result<Proposed> {
        self.propose(base, actions).await
    }

    /// The index this node must have applied for a read here to see every
    /// write acknowledged anywhere before the call (raft's read index,
    /// asked of the leader). `None` when this node's applied state already
    /// is that: it leads, or it is the only copy.
    async fn read_index(&self) -> Result<Option<u64>> {
        Ok(None)
    }

    /// [`Self::read_index`] answered on the leader for another manager,
    /// never forwarded: fails when this node does not lead.
    async fn read_index_here(&self) -> Result<u64> {
        Ok(0)
    }
}
