//! Messages of the `Raft` and `Cluster` services between managers.

use openraft::error::InstallSnapshotError;
use openraft::error::RaftError;
use serde::Deserialize;
use serde::Serialize;

use super::NodeId;
use super::TypeConfig;
use crate::store::StoreAction;

/// `Raft.AppendEntries` request.
pub type AppendRequest = openraft::raft::AppendEntriesRequest<TypeConfig>;
/// `Raft.AppendEntries` reply: the follower's answer or its raft error.
pub type AppendReply = Result<openraft::raft::AppendEntriesResponse<NodeId>, RaftError<NodeId>>;
/// `Raft.Vote` request.
pub type VoteRequest = openraft::raft::VoteRequest<NodeId>;
/// `Raft.Vote` reply.
pub type VoteReply = Result<openraft::raft::VoteResponse<NodeId>, RaftError<NodeId>>;
/// `Raft.InstallSnapshot` request (one chunk).
pub type SnapshotRequest = openraft::raft::InstallSnapshotRequest<TypeConfig>;
/// `Raft.InstallSnapshot` reply.
pub type SnapshotReply = Result<
    openraft::raft::InstallSnapshotResponse<NodeId>,
    RaftError<NodeId, InstallSnapshotError>,
>;

/// `Cluster.Join`: a manager that holds a manager certificate asks to become
/// a raft member. Its own raft is already serving at `addr`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The joining node's swarm ID (must match its certificate).
    pub node_id: String,
    /// Its raft member ID.
    pub raft_id: NodeId,
    /// Where the other managers reach it (`--advertise-addr`).
    pub addr: String,
}

/// `Cluster.Join` reply, once the node is a voter.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinReply {
    /// Every member after the change: raft ID and address.
    pub members: Vec<(NodeId, String)>,
}

/// `Cluster.Propose`: a transaction a non-leader manager built on its own
/// copy of the store, to be committed by the leader if nothing it wrote
/// changed meanwhile (see `store::check`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProposeRequest {
    /// The raft index of the state the transaction was built on.
    pub base: u64,
    /// The transaction.
    pub actions: Vec<StoreAction>,
}

/// `Cluster.Propose` reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProposeReply {
    /// Committed and applied on the leader at this index.
    Committed(u64),
    /// An object it writes changed since it was read: catch up to this
    /// index and run the transaction again.
    Stale(u64),
}

/// `Cluster.ReadIndex`: what a manager that does not lead asks the leader
/// before it reads again something it did not find.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReadIndexRequest {}

/// `Cluster.ReadIndex` reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadIndexReply {
    /// The leader's read index: once a manager has applied through it, its
    /// reads see every write acknowledged before the call.
    pub index: u64,
}

/// `Cluster.Leave`: remove a manager from the raft membership.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaveRequest {
    /// The leaving node's swarm ID.
    pub node_id: String,
}

/// `Cluster.Leave` reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaveReply {}
