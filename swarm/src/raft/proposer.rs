//! `RaftProposer`: the store's writes go through openraft's `client_write`.

use async_trait::async_trait;
use openraft::error::ClientWriteError;
use openraft::error::RaftError;

use super::NodeId;
use super::Proposal;
use super::ShoalRaft;
use crate::error::Error;
use crate::error::ErrorKind;
use crate::error::Result;
use crate::store::Proposer;
use crate::store::StoreAction;

/// Proposes store transactions to raft; returns once applied.
pub struct RaftProposer {
    raft: ShoalRaft,
}

impl RaftProposer {
    /// A proposer over a started raft instance.
    pub fn new(raft: ShoalRaft) -> Self {
        RaftProposer { raft }
    }
}

#[async_trait]
impl Proposer for RaftProposer {
    async fn propose(&self, actions: Vec<StoreAction>) -> Result<u64> {
        match self.raft.client_write(Proposal { actions }).await {
            Ok(resp) => Ok(resp.log_id.index),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => Err(Error::new(
                ErrorKind::Unavailable,
                "rpc error: code = Unavailable desc = this node is not the raft leader",
            )),
            Err(e) => Err(Error::internal(format!("raft: {e}"))),
        }
    }
}

/// The raft node ID of a manager, derived from its swarm node ID.
pub fn raft_id(node_id: &str) -> NodeId {
    let digest = ring::digest::digest(&ring::digest::SHA256, node_id.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(b)
}
