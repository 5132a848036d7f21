//! Orchestrators: turn service specs into tasks.
//!
//! Each mode has a pure `reconcile` over one service and its tasks that
//! returns [`Action`]s (replicated slots, one task per node for global, and
//! jobs); [`slot`] sorts a slot's tasks into current, out of date or ended,
//! [`restart`] decides replacements of ended tasks, [`update`] paces rolling
//! updates and rollbacks (parallelism, delay, order, failure monitoring),
//! [`reaper`] trims task history, and [`driver`] feeds them from the store's
//! watch stream, keeps the updater's memory between passes and commits their
//! actions.

pub mod driver;
pub mod global;
pub mod jobs;
pub mod reaper;
pub mod replicated;
pub mod restart;
#[cfg(test)]
mod sim;
pub mod slot;
pub mod update;

use std::sync::Arc;

pub use driver::spawn_all;

use crate::model::api;
use crate::model::api::TaskState;
use crate::model::new_id;
use crate::model::Node;
use crate::model::Service;
use crate::model::Task;
use crate::store::Store;

/// A change the orchestrators want committed.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create this task.
    Create(Box<Task>),
    /// Set the task's desired state to shutdown.
    Shutdown(String),
    /// Set the task's desired state to remove: it stops, and the reaper
    /// deletes it once it has stopped or if it never reached a node.
    Remove(String),
    /// Delete the task from the store.
    Delete(String),
    /// Mark the task as built from the service's current spec (no restart needed).
    Bless(String, u64),
    /// Set the service's update status.
    UpdateStatus(String, api::ServiceUpdateStatus),
    /// Let a task that waits in desired state ready (a stop-first
    /// replacement waiting for its predecessor to stop) start: desired
    /// state running.
    Start(String),
    /// Roll the service back to its previous spec because the update failed
    /// (state `rollback_started` with this message; the previous spec is
    /// used up, as swarmkit does).
    Rollback(String, String),
}

/// What one reconcile pass knows besides the service and its tasks.
#[derive(Debug, Clone, Copy)]
pub struct Pass<'a> {
    /// The pass's clock.
    pub now: time::OffsetDateTime,
    /// `now` in the API's timestamp format, for new tasks and statuses.
    pub now_str: &'a str,
    /// Every node of the cluster.
    pub nodes: &'a [Node],
}

impl Pass<'_> {
    /// Whether a task on `node` can no longer be waited for: the node is
    /// down or has left the cluster.
    pub fn node_gone(&self, node: &str) -> bool {
        match self
            .nodes
            .iter()
            .find(|n| n.api.id.as_deref() == Some(node))
        {
            None => true,
            Some(n) => n.api.status.as_ref().and_then(|st| st.state) == Some(api::NodeState::DOWN),
        }
    }
}

/// A reconcile result: actions, and when to look again (restart delays).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Changes to commit.
    pub actions: Vec<Action>,
    /// Reconcile again after this long, if set.
    pub wake_after: Option<std::time::Duration>,
}

impl Plan {
    fn wake(&mut self, d: std::time::Duration) {
        self.wake_after = Some(self.wake_after.map_or(d, |w| w.min(d)));
    }
}

/// Whether the service is a job (replicated-job or global-job).
pub fn is_job(s: &Service) -> bool {
    is_job_spec(s.spec())
}

/// Whether a spec's mode is a replicated or global job.
pub fn is_job_spec(spec: &api::ServiceSpec) -> bool {
    spec.mode
        .as_ref()
        .is_some_and(|m| m.replicated_job.is_some() || m.global_job.is_some())
}

/// A new task for `service` as dockerd shows it: state new, desired running
/// (complete for jobs), in `slot` or on `node`.
pub fn new_task(service: &Service, slot: Option<i64>, node: Option<&str>, now: &str) -> Task {
    let mut t = Task::default();
    t.api.id = Some(new_id());
    t.api.labels = Some(Default::default());
    t.api.spec = service.spec().task_template.clone();
    t.api.service_id = service.api.id.clone();
    t.api.slot = slot;
    t.api.node_id = node.map(str::to_string);
    t.api.status = Some(api::TaskStatus {
        timestamp: Some(now.to_string()),
        state: Some(TaskState::NEW),
        message: Some("created".into()),
        ..Default::default()
    });
    let job = is_job(service);
    t.api.desired_state = Some(if job {
        TaskState::COMPLETE
    } else {
        TaskState::RUNNING
    });
    if job {
        // The service's iteration, as swarmkit stamps it on each task.
        t.api.job_iteration = Some(
            service
                .api
                .job_status
                .as_ref()
                .and_then(|j| j.job_iteration.clone())
                .unwrap_or_default(),
        );
    }
    t.spec_version = service.spec_version;
    t.service_name = service.name().to_string();
    t.host_ports = crate::allocator::ports::host_ports(service.spec());
    t
}

/// Whether the task is still wanted (desired state running, or complete for jobs).
pub fn is_wanted(t: &Task) -> bool {
    t.desired_state() <= TaskState::COMPLETE && t.desired_state() != TaskState::SHUTDOWN
}

/// Whether the task's process is not over yet.
pub fn is_alive(t: &Task) -> bool {
    t.state() <= TaskState::RUNNING
}

/// Whether the task runs an older spec than the service's (needs replacing).
/// A change of host-mode ports makes tasks out of date too, as in swarmkit:
/// their node forwards those ports.
pub fn is_dirty(t: &Task, s: &Service) -> bool {
    t.api.spec != s.spec().task_template
        || t.host_ports != crate::allocator::ports::host_ports(s.spec())
}

/// Shared handle for tests and the manager.
pub type SharedStore = Arc<Store>;
