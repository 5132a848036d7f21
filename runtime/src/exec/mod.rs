//! The containerd executor: `swarm::exec::Executor` for this node, one
//! [`controller::TaskController`] per assigned task.

pub mod controller;
pub mod endpoints;
pub mod files;
pub mod group;
pub mod health;
pub mod ids;
pub mod secrets;
pub mod spec;
pub mod template;
pub mod users;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use swarm::exec::Controller;
use swarm::exec::ExecError;
use swarm::exec::Executor;
use swarm::exec::NetworkAttacher;
use swarm::model::api;
use swarm::model::Node;
use swarm::model::Task;

use crate::logs::Rotation;
use crate::Containerd;
use controller::TaskController;
use controller::TASK_LABEL;

/// Node-wide settings every task controller shares.
#[derive(Debug, Clone)]
pub struct NodeEnv {
    /// `<data-root>/containers`: per-container files and logs.
    pub containers_root: PathBuf,
    /// `<data-root>/volumes`: named volumes.
    pub volumes_root: PathBuf,
    /// This machine's hostname.
    pub hostname: String,
    /// The engine version reported in the node description.
    pub engine_version: String,
    /// Log file rotation.
    pub log_rotation: Rotation,
    /// The init binary `--init` runs tasks under, if the node has one.
    pub init_binary: Option<PathBuf>,
    /// The cgroup every task container is put under (`<parent>/<id>`):
    /// daemons sharing a host's cgroup tree each need their own.
    pub cgroup_parent: String,
    /// Task containers per containerd shim, by service ([`group`]); 0 or
    /// 1 runs a shim per container.
    pub shim_group_size: u64,
}

impl NodeEnv {
    /// The settings for a daemon with data root `data_root`.
    pub fn new(data_root: &std::path::Path, hostname: String, engine_version: String) -> Self {
        NodeEnv {
            containers_root: data_root.join("containers"),
            volumes_root: data_root.join("volumes"),
            hostname,
            engine_version,
            log_rotation: Rotation::default(),
            init_binary: find_init(),
            cgroup_parent: DEFAULT_CGROUP_PARENT.into(),
            shim_group_size: group::size_from_env(),
        }
    }

    /// The same settings with task containers under `parent` (dockerd's
    /// `--cgroup-parent`); an empty `parent` keeps the default.
    pub fn with_cgroup_parent(mut self, parent: &str) -> Self {
        if !parent.is_empty() {
            self.cgroup_parent = parent.to_string();
        }
        self
    }
}

/// The cgroup parent of task containers when none is configured.
pub const DEFAULT_CGROUP_PARENT: &str = "/shoal";

/// A static init for `--init`: dockerd's own `docker-init` when installed,
/// else Debian's `tini-static` (the same program).
fn find_init() -> Option<PathBuf> {
    [
        "/usr/libexec/docker/docker-init",
        "/usr/bin/docker-init",
        "/usr/bin/tini-static",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// Runs tasks as containerd containers.
#[derive(Clone)]
pub struct ContainerdExecutor {
    ctd: Containerd,
    env: Arc<NodeEnv>,
    net: Option<Arc<dyn NetworkAttacher>>,
    heavy_work_limit: Arc<tokio::sync::Semaphore>,
}

/// How many task processes a node starts or removes at once: two per core.
/// Each is a runc (and often a shim) process of its own, and a removal also
/// tears down a network namespace under the kernel's one network lock;
/// 200 at once per node left the daemon's raft too little CPU to answer
/// its peers in time (the cluster lost its leader starting 1,000 tasks),
/// and the machine does the same work either way.
fn heavy_work_at_once() -> usize {
    std::thread::available_parallelism().map_or(2, |n| 2 * n.get())
}

impl std::fmt::Debug for ContainerdExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerdExecutor")
            .field("ctd", &self.ctd)
            .field("networking", &self.net.is_some())
            .finish()
    }
}

impl ContainerdExecutor {
    /// An executor on `ctd`. Without a network driver each task gets a
    /// network namespace with loopback only.
    pub fn new(ctd: Containerd, env: NodeEnv) -> Self {
        ContainerdExecutor {
            ctd,
            env: Arc::new(env),
            net: None,
            heavy_work_limit: Arc::new(tokio::sync::Semaphore::new(heavy_work_at_once())),
        }
    }

    /// Plumbs tasks into their networks with `net`.
    pub fn with_network(mut self, net: Arc<dyn NetworkAttacher>) -> Self {
        self.net = Some(net);
        self
    }
}

#[async_trait]
impl Executor for ContainerdExecutor {
    async fn describe(&self) -> Result<api::NodeDescription, ExecError> {
        // A node whose containerd does not answer takes no tasks yet.
        self.ctd
            .container_list(vec![])
            .await
            .map_err(|e| ExecError::Temporary(e.to_string()))?;
        // The node's TLS info is the CA's to record, not the executor's.
        let mut desc = swarm::manager::init::local_description(
            &self.env.hostname,
            &self.env.engine_version,
            "",
        );
        desc.tls_info = None;
        Ok(desc)
    }

    async fn configure(&self, _node: &Node) -> Result<(), ExecError> {
        Ok(())
    }

    fn controller(
        &self,
        task: &Task,
        deps: Arc<dyn swarm::exec::DependencyGetter>,
    ) -> Result<Box<dyn Controller>, ExecError> {
        Ok(Box::new(
            TaskController::new(
                self.ctd.clone(),
                self.env.clone(),
                task.clone(),
                deps,
                self.net.clone(),
            )
            .with_heavy_work_limit(self.heavy_work_limit.clone()),
        ))
    }

    async fn update_dns(&self, records: &swarm::exec::ServiceRecords) -> Result<(), ExecError> {
        match &self.net {
            Some(net) => net.update_dns(records).await,
            None => Ok(()),
        }
    }

    async fn task_logs(
        &self,
        selector: &swarm::exec::LogSelector,
        opts: &swarm::exec::LogOptions,
        tx: tokio::sync::mpsc::Sender<swarm::exec::LogMessage>,
    ) -> Result<(), ExecError> {
        crate::logs::tasks::task_logs(&self.ctd, &self.env, selector, opts, tx)
            .await
            .map_err(|e| ExecError::Temporary(e.to_string()))
    }

    async fn prune(&self, keep: &HashSet<String>) -> Result<(), ExecError> {
        let all = self
            .ctd
            .container_list(vec![format!("labels.\"{TASK_LABEL}\"")])
            .await
            .map_err(|e| ExecError::Temporary(e.to_string()))?;
        for c in all {
            let task = c.labels.get(TASK_LABEL).cloned().unwrap_or_default();
            if !keep.contains(&task) {
                tracing::info!(container = %c.id, task = %task, "removing container of a task no longer assigned");
                controller::remove_container(&self.ctd, &self.env, &c.id).await?;
            }
        }
        if let Some(net) = &self.net {
            // Standalone containers' namespaces are no task's but stay.
            let mut keep = keep.clone();
            keep.extend(
                crate::standalone::Standalone::ids(&self.ctd)
                    .await
                    .map_err(|e| ExecError::Temporary(e.to_string()))?,
            );
            net.prune(&keep).await?;
        }
        Ok(())
    }
}
