//! Raft membership changes: a joining manager becomes a learner, catches up
//! by log or snapshot, then becomes a voter; a leaving or demoted manager
//! is removed. Only the leader changes membership; elsewhere the caller is
//! told who leads.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::error::ClientWriteError;
use openraft::error::RaftError;
use openraft::BasicNode;
use openraft::ChangeMembers;

use super::NodeId;
use super::ShoalRaft;
use crate::error::Error;

/// Why a membership change did not happen here.
#[derive(Debug)]
pub enum MembershipError {
    /// This manager does not lead; the leader's address when known.
    NotLeader(Option<String>),
    /// The change failed.
    Failed(Error),
}

fn map_err(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> MembershipError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            MembershipError::NotLeader(f.leader_node.map(|n| n.addr))
        }
        other => MembershipError::Failed(Error::internal(format!("raft membership: {other}"))),
    }
}

/// Every member (voters and learners) with its address, as this node knows it.
pub fn members(raft: &ShoalRaft) -> Vec<(NodeId, String)> {
    let m = raft.metrics().borrow().membership_config.clone();
    m.nodes().map(|(id, n)| (*id, n.addr.clone())).collect()
}

/// The leader's address, as this node knows it.
pub fn leader_addr(raft: &ShoalRaft) -> Option<String> {
    let m = raft.metrics().borrow().clone();
    let leader = m.current_leader?;
    let addr = m
        .membership_config
        .nodes()
        .find(|(id, _)| **id == leader)
        .map(|(_, n)| n.addr.clone());
    addr
}

/// The voters, as this node knows them.
pub fn voters(raft: &ShoalRaft) -> BTreeSet<NodeId> {
    let m = raft.metrics().borrow().membership_config.clone();
    m.membership().voter_ids().collect()
}

/// Adds manager `id` at `addr` as a voter: learner first, then voter once it
/// has caught up (bounded by `catch_up`). Called on the leader; safe to call
/// again for a member (it stays one).
pub async fn add_voter(
    raft: &ShoalRaft,
    id: NodeId,
    addr: &str,
    catch_up: Duration,
) -> Result<Vec<(NodeId, String)>, MembershipError> {
    if !voters(raft).contains(&id) {
        let resp = raft
            .add_learner(id, BasicNode::new(addr), false)
            .await
            .map_err(map_err)?;
        let target = resp.log_id.index;
        raft.wait(Some(catch_up))
            .metrics(
                |m| {
                    m.replication
                        .as_ref()
                        .and_then(|r| r.get(&id).cloned().flatten())
                        .is_some_and(|l| l.index >= target)
                },
                "new manager caught up",
            )
            .await
            .map_err(|e| {
                MembershipError::Failed(Error::internal(format!(
                    "the new manager did not catch up: {e}"
                )))
            })?;
        raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
            .await
            .map_err(map_err)?;
    }
    Ok(members(raft))
}

/// Removes manager `id` from the membership (voter and learner). Called on
/// the leader; the caller has checked that the rest keep a quorum.
pub async fn remove(raft: &ShoalRaft, id: NodeId) -> Result<(), MembershipError> {
    let m = raft.metrics().borrow().membership_config.clone();
    let is_voter = m.membership().voter_ids().any(|v| v == id);
    let is_node = m.nodes().any(|(n, _)| *n == id);
    if is_voter {
        raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
            .await
            .map_err(map_err)?;
    } else if is_node {
        raft.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}
