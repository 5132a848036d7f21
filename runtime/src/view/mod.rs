//! The Docker view of task containers: what `docker container ls`,
//! `inspect`, `logs`, `stop`, `kill`, `rm`, `wait` and `exec` ([`exec`])
//! see and do.
//!
//! dockerd keeps its own record of every container; shoal has only
//! containerd's (the container record with labels and OCI spec, the task
//! with its PID and exit status) plus the files in the container's
//! directory. This module joins those into one [`ContainerInfo`] per
//! container, finds containers the way dockerd does (full ID, name, unique
//! ID prefix), and acts on them. The HTTP edge renders the JSON.

pub mod archive;
mod error;
pub mod exec;
mod lookup;
mod ops;
pub mod procfs;
pub mod spec;
pub mod state;
pub mod stats;
pub mod top;

use std::collections::HashMap;
use std::path::PathBuf;

use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::Container;
use containerd_client::services::v1::ListTasksRequest;
use containerd_client::types::v1::Process;
use containerd_client::types::v1::Status as TaskStatus;
pub use error::Error;
pub use error::Result;
pub use exec::ExecError;
pub use exec::Execs;
pub use lookup::resolve;
pub use ops::parse_signal;
pub use ops::WaitCondition;
use time::OffsetDateTime;

use self::spec::SpecView;
use self::state::RunState;
use self::state::Status;
use crate::exec::files::NAME_LABEL;
use crate::exec::NodeEnv;
use crate::Containerd;

/// One task container as the Docker API shows it.
#[derive(Debug, Clone)]
pub struct ContainerInfo {
    /// The 64-hex container ID.
    pub id: String,
    /// The Docker name without the leading `/` (`web.1.<task id>`); the ID
    /// when the record carries no name.
    pub name: String,
    /// The full image name of the containerd record.
    pub image: String,
    /// The container's labels (the `com.docker.swarm.*` set among them),
    /// shoal's own bookkeeping labels left out.
    pub labels: HashMap<String, String>,
    /// When the container record was created.
    pub created: Option<OffsetDateTime>,
    /// What its process is doing.
    pub state: RunState,
    /// Its OCI spec, read for the Docker view.
    pub spec: SpecView,
    /// Its directory (`<data-root>/containers/<id>`).
    pub dir: PathBuf,
    /// Its json-file log.
    pub log_path: PathBuf,
    /// Whether it is a standalone container (`docker run`), not a task's.
    pub standalone: bool,
}

impl ContainerInfo {
    /// A label's value, or "".
    pub fn label(&self, key: &str) -> &str {
        self.labels.get(key).map(String::as_str).unwrap_or("")
    }

    /// The swarm task this container runs (`com.docker.swarm.task.id`).
    pub fn task_id(&self) -> &str {
        self.label("com.docker.swarm.task.id")
    }

    /// The service of that task.
    pub fn service_id(&self) -> &str {
        self.label("com.docker.swarm.service.id")
    }

    /// The node it runs on.
    pub fn node_id(&self) -> &str {
        self.label("com.docker.swarm.node.id")
    }
}

fn timestamp(t: Option<&prost_types::Timestamp>) -> Option<OffsetDateTime> {
    let t = t?;
    if t.seconds <= 0 {
        return None;
    }
    let nanos = t.seconds as i128 * 1_000_000_000 + t.nanos as i128;
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

/// The run state from containerd's task (none: never started).
fn run_state(
    task: Option<&Process>,
    created: Option<OffsetDateTime>,
    recorded_start: Option<OffsetDateTime>,
) -> RunState {
    let Some(p) = task else {
        return RunState {
            status: Status::Created,
            pid: 0,
            exit_code: 0,
            started_at: None,
            finished_at: None,
        };
    };
    let status = match TaskStatus::try_from(p.status).unwrap_or(TaskStatus::Unknown) {
        TaskStatus::Running => Status::Running,
        TaskStatus::Paused | TaskStatus::Pausing => Status::Paused,
        TaskStatus::Created => Status::Created,
        TaskStatus::Stopped | TaskStatus::Unknown => Status::Exited,
    };
    let running = status.is_running();
    // containerd keeps no start time: the executor records it; without
    // that record a live process has one in /proc, and for an ended one the
    // container's creation is the closest.
    let started_at = match status {
        Status::Created => None,
        _ if recorded_start.is_some() => recorded_start,
        _ if running => procfs::start_time(p.pid).or(created),
        _ => created,
    };
    RunState {
        status,
        pid: if running { p.pid } else { 0 },
        exit_code: if running { 0 } else { p.exit_status as i64 },
        started_at,
        finished_at: if running {
            None
        } else {
            timestamp(p.exited_at.as_ref())
        },
    }
}

fn info(env: &NodeEnv, c: Container, task: Option<&Process>) -> ContainerInfo {
    let dir = env.containers_root.join(&c.id);
    let created = timestamp(c.created_at.as_ref());
    let spec_json = c.spec.as_ref().map(|a| a.value.as_slice()).unwrap_or(&[]);
    let mut labels = c.labels;
    let name = labels.remove(NAME_LABEL).unwrap_or_else(|| c.id.clone());
    let standalone = labels.remove(crate::standalone::STANDALONE_LABEL).is_some();
    // containerd keeps no empty label values: the marker dockerd gives
    // every task container ("com.docker.swarm.task": "") comes back here.
    if labels.contains_key("com.docker.swarm.task.id") {
        labels.entry("com.docker.swarm.task".into()).or_default();
    }
    ContainerInfo {
        spec: SpecView::parse(spec_json, &dir, &env.volumes_root),
        state: run_state(task, created, crate::exec::files::started_at(&dir)),
        log_path: crate::logs::log_path(&dir, &c.id),
        id: c.id,
        name,
        image: c.image,
        labels,
        created,
        dir,
        standalone,
    }
}

impl Containerd {
    /// Every container in shoal's namespace, newest first (dockerd's
    /// order). Two containerd calls, whatever the count.
    pub async fn container_infos(&self, env: &NodeEnv) -> crate::Result<Vec<ContainerInfo>> {
        let records = self.container_list(vec![]).await?;
        let tasks = self.task_list().await?;
        // containerd fills only `id` (the container's) in task lists.
        let by_id: HashMap<&str, &Process> = tasks
            .iter()
            .map(|p| {
                let id = if p.container_id.is_empty() {
                    &p.id
                } else {
                    &p.container_id
                };
                (id.as_str(), p)
            })
            .collect();
        let mut out: Vec<ContainerInfo> = records
            .into_iter()
            .map(|c| {
                let task = by_id.get(c.id.as_str()).copied();
                info(env, c, task)
            })
            .collect();
        out.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    /// The container `input` names (full ID, name with or without `/`, or
    /// unique ID prefix), as dockerd resolves it.
    pub async fn container_info(&self, env: &NodeEnv, input: &str) -> Result<ContainerInfo> {
        let all = self.container_infos(env).await?;
        resolve(&all, input).cloned()
    }

    /// The init processes of every container that has one.
    async fn task_list(&self) -> crate::Result<Vec<Process>> {
        let mut client = TasksClient::new(self.channel().await?);
        client
            .list(self.request(
                ListTasksRequest {
                    filter: String::new(),
                },
                None,
            ))
            .await
            .map(|r| r.into_inner().tasks)
            .map_err(|s| self.status("list tasks", s))
    }
}
