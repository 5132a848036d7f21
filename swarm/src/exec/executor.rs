//! `Executor` and `Controller`: what the agent needs from a task runtime.

use async_trait::async_trait;

use super::ExecError;
use crate::model::api;
use crate::model::Node;
use crate::model::Task;

/// How a task's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// The exit code.
    pub code: i64,
}

/// Runs the tasks of one node.
#[async_trait]
pub trait Executor: Send + Sync {
    /// Describes this node (hostname, platform, resources, engine) for the manager.
    async fn describe(&self) -> Result<api::NodeDescription, ExecError>;
    /// Applies node-level settings after the manager accepted the node.
    async fn configure(&self, node: &Node) -> Result<(), ExecError>;
    /// A controller for one task; called once per task the node is assigned.
    /// `deps` gives the task's secrets and configs.
    fn controller(
        &self,
        task: &Task,
        deps: std::sync::Arc<dyn super::DependencyGetter>,
    ) -> Result<Box<dyn Controller>, ExecError>;
    /// Hands the node's tasks the current DNS names (see
    /// [`NetworkAttacher::update_dns`](super::NetworkAttacher::update_dns)).
    async fn update_dns(&self, records: &super::ServiceRecords) -> Result<(), ExecError> {
        let _ = records;
        Ok(())
    }
    /// Removes runtime objects of tasks not in `keep` (left over from a
    /// crash or a restart while tasks were removed). Called with each full
    /// assignment set.
    async fn prune(&self, keep: &std::collections::HashSet<String>) -> Result<(), ExecError> {
        let _ = keep;
        Ok(())
    }
    /// Sends the lines of this node's task containers that `selector`
    /// covers to `tx`, oldest first per container; with `opts.follow`, then
    /// the lines written later, from containers of tasks that start later
    /// too, until `tx` closes. Returns when it has sent all it will send.
    async fn task_logs(
        &self,
        selector: &super::LogSelector,
        opts: &super::LogOptions,
        tx: tokio::sync::mpsc::Sender<super::LogMessage>,
    ) -> Result<(), ExecError> {
        let _ = (selector, opts, tx);
        Ok(())
    }
}

/// Drives one task's runtime object. Every method is idempotent: the agent
/// may call it again after a restart.
#[async_trait]
pub trait Controller: Send + Sync {
    /// Pulls the image and creates the container.
    async fn prepare(&mut self) -> Result<(), ExecError>;
    /// Starts the container.
    async fn start(&mut self) -> Result<(), ExecError>;
    /// Waits until the started process is ready to serve: healthy when it
    /// has a health check (the task stays `starting` meanwhile).
    async fn healthy(&mut self) -> Result<(), ExecError> {
        Ok(())
    }
    /// Waits for the process to exit.
    async fn wait(&mut self) -> Result<ExitStatus, ExecError>;
    /// Stops the process gracefully (signal, then kill after the grace period).
    async fn shutdown(&mut self) -> Result<(), ExecError>;
    /// Kills the process at once.
    async fn terminate(&mut self) -> Result<(), ExecError> {
        self.shutdown().await
    }
    /// Removes the container and its resources.
    async fn remove(&mut self) -> Result<(), ExecError>;
    /// Moves the task onto `task`'s networks, changed since the controller
    /// was made (`docker network connect`/`disconnect`); a task not
    /// attached yet takes them when it is.
    async fn update_networks(&mut self, task: &Task) -> Result<(), ExecError> {
        let _ = task;
        Ok(())
    }
    /// Container details for `Status.ContainerStatus`.
    fn container_status(&self) -> Option<api::ContainerStatus> {
        None
    }
}
