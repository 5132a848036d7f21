//! The seam between the store and consensus.

use async_trait::async_trait;

use super::StoreAction;
use crate::error::Result;

/// Replicates a transaction's actions; swarmkit's `state.Proposer`.
#[async_trait]
pub trait Proposer: Send + Sync {
    /// Proposes `actions` as one log entry. Returns the entry's index once it is
    /// committed (durable on a quorum) and applied to the shared state.
    async fn propose(&self, actions: Vec<StoreAction>) -> Result<u64>;
}
