//! The agent-to-manager interface.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::wire::SessionRequest;
use crate::error::Result;
use crate::model::api;
use crate::model::Task;

/// An open session.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Identifies the session in later calls.
    pub session_id: String,
    /// How often the agent must heartbeat.
    pub heartbeat_period: Duration,
}

/// A task's new observed status, from the agent.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StatusUpdate {
    /// The task.
    pub task_id: String,
    /// Its status as the executor observed it.
    pub status: api::TaskStatus,
}

/// One change to a node's assignments.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Assignment {
    /// The task is (still) assigned; run it or apply its new desired state.
    Update(Box<Task>),
    /// The task is no longer assigned; stop and remove it.
    Remove(String),
}

/// A batch of assignment changes. The first set of a session is `full`: any
/// task the agent runs that is not in it must be removed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AssignmentSet {
    /// Whether this set replaces everything the agent knows.
    pub full: bool,
    /// The changes.
    pub changes: Vec<Assignment>,
}

/// What an agent may ask of the manager.
#[async_trait]
pub trait DispatcherApi: Send + Sync {
    /// Opens a session for `node_id`, recording its description and
    /// addresses and marking it ready.
    async fn session(&self, node_id: &str, req: SessionRequest) -> Result<SessionInfo>;
    /// Keeps the session alive; returns the period until the next heartbeat.
    async fn heartbeat(&self, node_id: &str, session_id: &str) -> Result<Duration>;
    /// Records observed task states (never moving a task backwards).
    async fn update_task_status(
        &self,
        node_id: &str,
        session_id: &str,
        updates: Vec<StatusUpdate>,
    ) -> Result<()>;
    /// The data of secret or config `id` for task `task_id`, which must be
    /// assigned to `node_id` and reference it; `None` otherwise.
    async fn task_dependency(
        &self,
        node_id: &str,
        session_id: &str,
        task_id: &str,
        kind: crate::exec::DepKind,
        id: &str,
    ) -> Result<Option<Vec<u8>>>;
    /// Attaches standalone container `container_id` of `node_id` to the
    /// attachable swarm network `network` (swarmkit's
    /// `ResourceAllocator.AttachNetwork`): its address from the allocator.
    async fn attach_network(
        &self,
        node_id: &str,
        session_id: &str,
        container_id: &str,
        network: &str,
        aliases: &[String],
    ) -> Result<crate::exec::Attachment>;
    /// Gives back every swarm address container `container_id` of
    /// `node_id` holds (`ResourceAllocator.DetachNetwork`).
    async fn detach_network(
        &self,
        node_id: &str,
        session_id: &str,
        container_id: &str,
    ) -> Result<()>;
    /// The swarm networks `node_id`'s tasks and standalone containers are
    /// on, with their peers (a worker's `docker network ls/inspect`).
    async fn node_networks(
        &self,
        node_id: &str,
        session_id: &str,
    ) -> Result<Vec<crate::controlapi::network::NodeNetwork>>;
    /// The DNS names the node's tasks resolve, kept current.
    async fn service_records(
        &self,
        node_id: &str,
        session_id: &str,
    ) -> Result<tokio::sync::watch::Receiver<crate::exec::ServiceRecords>>;
    /// Streams the node's assignments: a full set, then incremental sets.
    async fn assignments(
        &self,
        node_id: &str,
        session_id: &str,
    ) -> Result<mpsc::Receiver<AssignmentSet>>;
    /// Streams the log subscriptions the node must serve.
    async fn log_subscriptions(
        &self,
        node_id: &str,
        session_id: &str,
    ) -> Result<mpsc::Receiver<crate::logbroker::Subscription>>;
    /// The node's lines for one subscription; `close` once it sent all.
    /// Returns whether the subscription still wants lines.
    async fn publish_logs(
        &self,
        node_id: &str,
        session_id: &str,
        subscription_id: &str,
        messages: Vec<crate::exec::LogMessage>,
        close: bool,
    ) -> Result<bool>;
}

/// Finds the dispatcher an agent opens its next session with: the leader's,
/// in process when this node leads, over the network otherwise.
#[async_trait]
pub trait Connector: Send + Sync {
    /// The dispatcher to use for the next session.
    async fn connect(&self) -> Result<std::sync::Arc<dyn DispatcherApi>>;
}

/// Always the same dispatcher (one manager, tests).
pub struct Fixed(pub std::sync::Arc<dyn DispatcherApi>);

#[async_trait]
impl Connector for Fixed {
    async fn connect(&self) -> Result<std::sync::Arc<dyn DispatcherApi>> {
        Ok(self.0.clone())
    }
}
