//! containerd containers, their snapshots and their tasks (processes): thin
//! typed calls in namespace `shoal`.

use std::collections::HashMap;

use containerd_client::services::v1::container::Runtime;
use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::MountsRequest;
use containerd_client::services::v1::snapshots::PrepareSnapshotRequest;
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::CloseIoRequest;
use containerd_client::services::v1::Container;
use containerd_client::services::v1::CreateContainerRequest;
use containerd_client::services::v1::CreateTaskRequest;
use containerd_client::services::v1::DeleteContainerRequest;
use containerd_client::services::v1::DeleteProcessRequest;
use containerd_client::services::v1::DeleteTaskRequest;
use containerd_client::services::v1::ExecProcessRequest;
use containerd_client::services::v1::GetContainerRequest;
use containerd_client::services::v1::GetRequest;
use containerd_client::services::v1::KillRequest;
use containerd_client::services::v1::ListContainersRequest;
use containerd_client::services::v1::ResizePtyRequest;
use containerd_client::services::v1::StartRequest;
use containerd_client::services::v1::WaitRequest;
use containerd_client::types::v1::Process;
use containerd_client::types::v1::Status;
use containerd_client::types::Mount;

use crate::client::Containerd;
use crate::error::Error;
use crate::error::Result;
use crate::images::unpack::SNAPSHOTTER;

/// The label that ties a container to its swarm task.
pub const TASK_LABEL: &str = "com.docker.swarm.task.id";

/// The runc shim every shoal container runs under.
pub const RUNTIME: &str = "io.containerd.runc.v2";
const SPEC_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
const PROCESS_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";

/// What a new container record holds.
#[derive(Debug, Clone)]
pub struct NewContainer {
    /// Container ID (also the snapshot key).
    pub id: String,
    /// Full image name.
    pub image: String,
    /// Labels (the `com.docker.swarm.*` set among them).
    pub labels: HashMap<String, String>,
    /// The OCI runtime spec as JSON.
    pub spec: Vec<u8>,
}

/// A task's process as containerd reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessState {
    /// Host PID (0 once stopped).
    pub pid: u32,
    /// Whether it still runs (or is paused).
    pub running: bool,
    /// Exit code once stopped.
    pub exit_code: u32,
}

/// Which container holds each swarm task, kept beside containerd's records
/// so that finding a task's container is not a labelled listing of every
/// container (once per task, it grew with the node's container count).
/// Loaded by one listing on first use; every create and delete through
/// this client keeps it current.
#[derive(Default)]
pub struct TaskIndex {
    map: tokio::sync::Mutex<Option<HashMap<String, String>>>,
}

impl Containerd {
    /// The container of swarm task `task`, if this node has one.
    pub async fn task_container(&self, task: &str) -> Result<Option<String>> {
        let mut slot = self.task_index().map.lock().await;
        if slot.is_none() {
            let all = self
                .container_list(vec![format!("labels.\"{TASK_LABEL}\"")])
                .await?;
            let map = all
                .into_iter()
                .filter_map(|c| Some((c.labels.get(TASK_LABEL)?.clone(), c.id)))
                .collect();
            *slot = Some(map);
        }
        Ok(slot.as_ref().and_then(|m| m.get(task).cloned()))
    }

    /// Drops task `task`'s entry when it names container `id`.
    pub async fn task_container_forget(&self, task: &str, id: &str) {
        if let Some(m) = self.task_index().map.lock().await.as_mut() {
            if m.get(task).is_some_and(|c| c == id) {
                m.remove(task);
            }
        }
    }

    async fn index_created(&self, id: &str, labels: &HashMap<String, String>) {
        let Some(task) = labels.get(TASK_LABEL) else {
            return;
        };
        if let Some(m) = self.task_index().map.lock().await.as_mut() {
            m.insert(task.clone(), id.to_string());
        }
    }

    async fn index_deleted(&self, id: &str) {
        if let Some(m) = self.task_index().map.lock().await.as_mut() {
            m.retain(|_, c| c != id);
        }
    }

    fn is_not_found(s: &tonic::Status) -> bool {
        s.code() == tonic::Code::NotFound
    }

    /// Prepares the container's writable snapshot on `parent` under `lease`
    /// (which keeps it from garbage collection until the container record
    /// refers to it); returns its mounts.
    pub async fn snapshot_prepare(
        &self,
        key: &str,
        parent: &str,
        lease: &str,
    ) -> Result<Vec<Mount>> {
        let mut snaps = SnapshotsClient::new(self.channel().await?);
        let req = PrepareSnapshotRequest {
            snapshotter: SNAPSHOTTER.into(),
            key: key.to_string(),
            parent: parent.to_string(),
            labels: HashMap::new(),
        };
        match snaps.prepare(self.request(req, Some(lease))).await {
            Ok(r) => Ok(r.into_inner().mounts),
            Err(s) if s.code() == tonic::Code::AlreadyExists => self.snapshot_mounts(key).await,
            Err(s) => Err(self.status("prepare snapshot", s)),
        }
    }

    /// The mounts of an existing active snapshot.
    pub async fn snapshot_mounts(&self, key: &str) -> Result<Vec<Mount>> {
        let mut snaps = SnapshotsClient::new(self.channel().await?);
        let req = MountsRequest {
            snapshotter: SNAPSHOTTER.into(),
            key: key.to_string(),
        };
        snaps
            .mounts(self.request(req, None))
            .await
            .map(|r| r.into_inner().mounts)
            .map_err(|s| self.status("snapshot mounts", s))
    }

    /// Removes a container's snapshot (ignoring one that is gone).
    pub async fn snapshot_remove(&self, key: &str) {
        self.remove_snapshot(key).await
    }

    /// Creates the container record.
    pub async fn container_create(&self, c: NewContainer) -> Result<()> {
        let mut client = ContainersClient::new(self.channel().await?);
        let id = c.id.clone();
        let labels = c.labels.clone();
        let container = Container {
            id: c.id.clone(),
            labels: c.labels,
            image: c.image,
            runtime: Some(Runtime {
                name: RUNTIME.into(),
                options: None,
            }),
            spec: Some(prost_types::Any {
                type_url: SPEC_TYPE.into(),
                value: c.spec,
            }),
            snapshotter: SNAPSHOTTER.into(),
            snapshot_key: c.id,
            ..Default::default()
        };
        client
            .create(self.request(
                CreateContainerRequest {
                    container: Some(container),
                },
                None,
            ))
            .await
            .map_err(|s| self.status("create container", s))?;
        self.index_created(&id, &labels).await;
        Ok(())
    }

    /// One container record, or `None`.
    pub async fn container_get(&self, id: &str) -> Result<Option<Container>> {
        let mut client = ContainersClient::new(self.channel().await?);
        match client
            .get(self.request(GetContainerRequest { id: id.to_string() }, None))
            .await
        {
            Ok(r) => Ok(r.into_inner().container),
            Err(s) if Self::is_not_found(&s) => Ok(None),
            Err(s) => Err(self.status("get container", s)),
        }
    }

    /// Container records matching containerd `filters` (all when empty).
    pub async fn container_list(&self, filters: Vec<String>) -> Result<Vec<Container>> {
        let mut client = ContainersClient::new(self.channel().await?);
        client
            .list(self.request(ListContainersRequest { filters }, None))
            .await
            .map(|r| r.into_inner().containers)
            .map_err(|s| self.status("list containers", s))
    }

    /// Deletes the container record (ignoring one that is gone).
    pub async fn container_delete(&self, id: &str) -> Result<()> {
        let mut client = ContainersClient::new(self.channel().await?);
        match client
            .delete(self.request(DeleteContainerRequest { id: id.to_string() }, None))
            .await
        {
            Ok(_) => {}
            Err(s) if Self::is_not_found(&s) => {}
            Err(s) => return Err(self.status("delete container", s)),
        }
        self.index_deleted(id).await;
        Ok(())
    }

    /// Creates the container's task (its init process, not yet started) with
    /// stdio on the given FIFOs (`stdin` empty: none); returns its PID.
    pub async fn task_create(
        &self,
        id: &str,
        rootfs: Vec<Mount>,
        stdin: &str,
        stdout: &str,
        stderr: &str,
        terminal: bool,
    ) -> Result<u32> {
        let mut client = TasksClient::new(self.channel().await?);
        let req = CreateTaskRequest {
            container_id: id.to_string(),
            rootfs,
            stdin: stdin.to_string(),
            stdout: stdout.to_string(),
            stderr: if terminal {
                String::new()
            } else {
                stderr.to_string()
            },
            terminal,
            ..Default::default()
        };
        client
            .create(self.request(req, None))
            .await
            .map(|r| r.into_inner().pid)
            .map_err(|s| self.status("create task", s))
    }

    /// Starts the container's init process.
    pub async fn task_start(&self, id: &str) -> Result<u32> {
        let mut client = TasksClient::new(self.channel().await?);
        let req = StartRequest {
            container_id: id.to_string(),
            exec_id: String::new(),
        };
        client
            .start(self.request(req, None))
            .await
            .map(|r| r.into_inner().pid)
            .map_err(|s| self.status("start task", s))
    }

    /// The init process's state, or `None` when the container has no task.
    pub async fn task_state(&self, id: &str) -> Result<Option<ProcessState>> {
        let mut client = TasksClient::new(self.channel().await?);
        let req = GetRequest {
            container_id: id.to_string(),
            exec_id: String::new(),
        };
        match client.get(self.request(req, None)).await {
            Ok(r) => Ok(r.into_inner().process.map(|p: Process| {
                let status = Status::try_from(p.status).unwrap_or(Status::Unknown);
                ProcessState {
                    pid: p.pid,
                    running: matches!(
                        status,
                        Status::Running | Status::Paused | Status::Pausing | Status::Created
                    ),
                    exit_code: p.exit_status,
                }
            })),
            Err(s) if Self::is_not_found(&s) => Ok(None),
            Err(s) => Err(self.status("get task", s)),
        }
    }

    /// Waits for the init process to exit; returns its exit code.
    pub async fn task_wait(&self, id: &str) -> Result<u32> {
        let mut client = TasksClient::new(self.channel().await?);
        let req = WaitRequest {
            container_id: id.to_string(),
            exec_id: String::new(),
        };
        client
            .wait(self.request(req, None))
            .await
            .map(|r| r.into_inner().exit_status)
            .map_err(|s| self.status("wait task", s))
    }

    /// Sends `signal` to the init process (to every process when `all`).
    /// A task that is gone or already stopped is not an error.
    pub async fn task_kill(&self, id: &str, signal: u32, all: bool) -> Result<()> {
        let mut client = TasksClient::new(self.channel().await?);
        let req = KillRequest {
            container_id: id.to_string(),
            exec_id: String::new(),
            signal,
            all,
        };
        match client.kill(self.request(req, None)).await {
            Ok(_) => Ok(()),
            Err(s) if Self::is_not_found(&s) || s.code() == tonic::Code::FailedPrecondition => {
                Ok(())
            }
            Err(s) => Err(self.status("kill task", s)),
        }
    }

    /// Deletes a stopped task (ignoring one that is gone).
    pub async fn task_delete(&self, id: &str) -> Result<()> {
        let mut client = TasksClient::new(self.channel().await?);
        let req = DeleteTaskRequest {
            container_id: id.to_string(),
        };
        match client.delete(self.request(req, None)).await {
            Ok(_) => Ok(()),
            Err(s) if Self::is_not_found(&s) => Ok(()),
            Err(s) => Err(self.status("delete task", s)),
        }
    }
}

/// An extra process in a running container (`docker exec`, health probes).
#[derive(Debug, Clone)]
pub struct NewExec {
    /// Exec ID, unique within the container.
    pub exec_id: String,
    /// The OCI process JSON (args, env, cwd, user, terminal).
    pub process: Vec<u8>,
    /// FIFO paths for stdio (empty: none).
    pub stdin: String,
    /// See `stdin`.
    pub stdout: String,
    /// See `stdin`.
    pub stderr: String,
    /// Whether the process gets a TTY.
    pub terminal: bool,
}

impl Containerd {
    /// Creates and starts an exec process in container `id`; returns its PID.
    pub async fn exec_start(&self, id: &str, e: NewExec) -> Result<u32> {
        let mut client = TasksClient::new(self.channel().await?);
        let req = ExecProcessRequest {
            container_id: id.to_string(),
            stdin: e.stdin,
            stdout: e.stdout,
            stderr: e.stderr,
            terminal: e.terminal,
            spec: Some(prost_types::Any {
                type_url: PROCESS_TYPE.into(),
                value: e.process,
            }),
            exec_id: e.exec_id.clone(),
        };
        client
            .exec(self.request(req, None))
            .await
            .map_err(|s| self.status("exec", s))?;
        client
            .start(self.request(
                StartRequest {
                    container_id: id.to_string(),
                    exec_id: e.exec_id,
                },
                None,
            ))
            .await
            .map(|r| r.into_inner().pid)
            .map_err(|s| self.status("start exec", s))
    }

    /// Waits for an exec process to exit; returns its exit code.
    pub async fn exec_wait(&self, id: &str, exec_id: &str) -> Result<u32> {
        let mut client = TasksClient::new(self.channel().await?);
        let req = WaitRequest {
            container_id: id.to_string(),
            exec_id: exec_id.to_string(),
        };
        client
            .wait(self.request(req, None))
            .await
            .map(|r| r.into_inner().exit_status)
            .map_err(|s| self.status("wait exec", s))
    }

    /// Signals an exec process (ignoring one that is gone).
    pub async fn exec_kill(&self, id: &str, exec_id: &str, signal: u32) -> Result<()> {
        let mut client = TasksClient::new(self.channel().await?);
        let req = KillRequest {
            container_id: id.to_string(),
            exec_id: exec_id.to_string(),
            signal,
            all: false,
        };
        match client.kill(self.request(req, None)).await {
            Ok(_) => Ok(()),
            Err(s) if Self::is_not_found(&s) || s.code() == tonic::Code::FailedPrecondition => {
                Ok(())
            }
            Err(s) => Err(self.status("kill exec", s)),
        }
    }

    /// Deletes an exited exec process (ignoring one that is gone).
    pub async fn exec_delete(&self, id: &str, exec_id: &str) -> Result<()> {
        let mut client = TasksClient::new(self.channel().await?);
        let req = DeleteProcessRequest {
            container_id: id.to_string(),
            exec_id: exec_id.to_string(),
        };
        match client.delete_process(self.request(req, None)).await {
            Ok(_) => Ok(()),
            Err(s) if Self::is_not_found(&s) => Ok(()),
            Err(s) => Err(self.status("delete exec", s)),
        }
    }

    /// Closes an exec process's stdin once the FIFO writer is gone: the
    /// shim keeps its own writer on the FIFO, so without this the process
    /// never reads end-of-file.
    pub async fn exec_close_stdin(&self, id: &str, exec_id: &str) -> Result<()> {
        let mut client = TasksClient::new(self.channel().await?);
        let req = CloseIoRequest {
            container_id: id.to_string(),
            exec_id: exec_id.to_string(),
            stdin: true,
        };
        match client.close_io(self.request(req, None)).await {
            Ok(_) => Ok(()),
            Err(s) if Self::is_not_found(&s) => Ok(()),
            Err(s) => Err(self.status("close exec stdin", s)),
        }
    }

    /// Resizes the TTY of the init process (`exec_id` empty) or an exec.
    pub async fn resize_pty(&self, id: &str, exec_id: &str, width: u32, height: u32) -> Result<()> {
        let mut client = TasksClient::new(self.channel().await?);
        let req = ResizePtyRequest {
            container_id: id.to_string(),
            exec_id: exec_id.to_string(),
            width,
            height,
        };
        client
            .resize_pty(self.request(req, None))
            .await
            .map(|_| ())
            .map_err(|s| self.status("resize pty", s))
    }

    /// The OCI spec JSON stored in container `id`'s record.
    pub async fn container_spec(&self, id: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .container_get(id)
            .await?
            .and_then(|c| c.spec)
            .map(|a| a.value))
    }
}

/// Whether an error means containerd has no such object.
pub fn is_not_found(e: &Error) -> bool {
    matches!(
        e,
        Error::Containerd {
            code: tonic::Code::NotFound,
            ..
        }
    )
}
