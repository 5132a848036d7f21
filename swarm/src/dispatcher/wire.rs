//! Messages of the `Dispatcher` service between agents and the leader.

use serde::Deserialize;
use serde::Serialize;

use super::AssignmentSet;
use super::StatusUpdate;
use crate::exec::DepKind;
use crate::model::api;

/// An empty reply.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Empty {}

/// `Dispatcher.Session`: an agent opens its session.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SessionRequest {
    /// What the node is (hostname, resources, engine).
    pub description: api::NodeDescription,
    /// The node's address as its peers see it (`--advertise-addr`'s IP):
    /// `Status.Addr` of `docker node inspect`.
    #[serde(default)]
    pub addr: String,
    /// Where the node's overlay traffic goes (`--data-path-addr`, else the
    /// advertise IP): other nodes' VXLAN peers point here.
    #[serde(default)]
    pub data_addr: String,
}

/// A manager an agent can reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagerPeer {
    /// Its node ID.
    pub node_id: String,
    /// Its address (`ip:port`).
    pub addr: String,
}

/// One message on a session stream: the first opens it, later ones carry
/// changes the agent must know (managers, its own node).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SessionMessage {
    /// The session's ID, for every later call.
    pub session_id: String,
    /// How often to heartbeat, in milliseconds.
    pub heartbeat_period_ms: u64,
    /// The managers of the cluster, the leader first.
    pub managers: Vec<ManagerPeer>,
    /// The role the node's spec asks for (promotions and demotions).
    pub desired_role: Option<api::NodeSpecRoleEnum>,
    /// The cluster's CA generation (a node whose certificate is of another
    /// renews it at once: a root rotation).
    #[serde(default)]
    pub ca_generation: u64,
}

/// Names a session in later calls.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SessionRef {
    /// The session's ID.
    pub session_id: String,
}

/// `Dispatcher.Heartbeat`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    /// The session's ID.
    pub session_id: String,
}

/// `Dispatcher.Heartbeat` reply.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// Milliseconds until the next heartbeat is due.
    pub period_ms: u64,
}

/// `Dispatcher.UpdateTaskStatus`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StatusRequest {
    /// The session's ID.
    pub session_id: String,
    /// Observed task states.
    pub updates: Vec<StatusUpdate>,
}

/// One batch on the `Dispatcher.Assignments` stream.
pub type AssignmentBatch = AssignmentSet;

/// `Dispatcher.TaskDependency`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DependencyRequest {
    /// The session's ID.
    pub session_id: String,
    /// The task that needs it.
    pub task_id: String,
    /// What it is.
    pub kind: DepKind,
    /// Its ID.
    pub id: String,
}

/// `Dispatcher.TaskDependency` reply.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DependencyReply {
    /// The payload, base64; none when the task may not have it.
    pub data: Option<String>,
}

/// `Cluster.SubscribeLogs`: a manager asks the leader's broker for logs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscribeRequest {
    /// Which task containers.
    pub selector: crate::exec::LogSelector,
    /// What to read.
    pub options: crate::exec::LogOptions,
}

/// Lines on a `Cluster.SubscribeLogs` stream.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LogBatch {
    /// The lines, in the order they arrived.
    pub messages: Vec<crate::exec::LogMessage>,
}

/// `Dispatcher.PublishLogs`: a node's lines for one subscription.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishRequest {
    /// The session's ID.
    pub session_id: String,
    /// The subscription.
    pub subscription_id: String,
    /// The lines.
    pub messages: Vec<crate::exec::LogMessage>,
    /// Whether the node has sent everything it will send.
    pub close: bool,
}

/// `Dispatcher.PublishLogs` reply.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PublishReply {
    /// Whether the subscription still wants lines.
    pub wanted: bool,
}

/// `Dispatcher.AttachNetwork`: a node asks an address on an attachable
/// network for one of its standalone containers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AttachNetworkRequest {
    /// The session's ID.
    pub session_id: String,
    /// The container.
    pub container_id: String,
    /// The network's name, ID or ID prefix.
    pub network: String,
    /// The container's names on the network.
    pub aliases: Vec<String>,
}

/// `Dispatcher.DetachNetwork`: a node's standalone container is gone.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DetachNetworkRequest {
    /// The session's ID.
    pub session_id: String,
    /// The container.
    pub container_id: String,
}

/// `Dispatcher.NodeNetworks` reply: the swarm networks the node is on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeNetworksReply {
    /// The networks with their peers.
    pub networks: Vec<crate::controlapi::network::NodeNetwork>,
}
