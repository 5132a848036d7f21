//! One task's container on containerd: the `swarm::exec::Controller` the
//! agent drives through prepare, start, wait, shutdown and remove.
//!
//! Every step first looks for the task's existing container (by the
//! `com.docker.swarm.task.id` label), so a restarted shoald adopts what is
//! already running instead of starting a duplicate.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use swarm::events::Actor;
use swarm::exec::Controller;
use swarm::exec::DepKind;
use swarm::exec::DependencyGetter;
use swarm::exec::ExecError;
use swarm::exec::ExitStatus;
use swarm::exec::NetworkAttacher;
use swarm::exec::TaskNetns;
use swarm::model::api;
use swarm::model::Task;

use super::files;
use super::group;
use super::health;
use super::ids;
use super::secrets;
use super::spec;
use super::users::UserDb;
use super::NodeEnv;
use crate::containers::NewContainer;
use crate::error::Error;
use crate::error::ErrorKind;
use crate::images::RegistryAuth;
use crate::logs::Copier;
use crate::view::spec::MountView;
use crate::volumes::VolumeStore;
use crate::Containerd;

pub use crate::containers::TASK_LABEL;
/// dockerd's default stop grace period.
const DEFAULT_GRACE: Duration = Duration::from_secs(10);
const SIGKILL: u32 = 9;
/// How long a task that is to stop may wait for the node's load balancers
/// to stop sending it new connections (dockerd always waits this long).
const UNBALANCE_LIMIT: Duration = Duration::from_secs(2);

/// Drives one task's container.
pub struct TaskController {
    ctd: Containerd,
    env: Arc<NodeEnv>,
    task: Task,
    deps: Arc<dyn DependencyGetter>,
    net: Option<Arc<dyn NetworkAttacher>>,
    container_id: Option<String>,
    pid: Option<u32>,
    exit_code: Option<i64>,
    logs: Option<Copier>,
    // The copier still draining the pipes after the process exited.
    draining: Option<tokio::task::JoinHandle<()>>,
    health: Option<health::Monitor>,
    // The task's health check once resolved (`Some(None)`: it has none);
    // known from `create`, looked up again only for an adopted container.
    check: Option<Option<health::Check>>,
    // Whether this controller attached the task to its networks (in
    // `create`); an adopted container is attached again once, which brings
    // back what lived in the previous shoald (DNS server, port checks).
    attached: bool,
    // The container as its events name it, read once from its record.
    actor: Option<Actor>,
    // The root filesystem mounts of a container this controller made: its
    // first start needs no lookup of them, nor of a task it cannot have yet.
    made: Option<Vec<containerd_client::types::Mount>>,
    // The volume mounts of the container, known from its spec when this
    // controller made it (read from containerd once for an adopted one),
    // so its start and die report them without asking containerd.
    volumes: Option<Vec<MountView>>,
    // Set by a start of this controller, taken by the wait after it: the
    // process state is known without asking containerd.
    started: bool,
    // Shared by the node's controllers: bounds the task processes started
    // and removed at once (see `ContainerdExecutor`).
    heavy_work_limit: Option<Arc<tokio::sync::Semaphore>>,
}

/// How a runtime error shows in a task: retried when containerd is away,
/// otherwise the task fails or is rejected with the error's text.
fn exec_err(e: Error) -> ExecError {
    match e.kind() {
        ErrorKind::Unavailable => ExecError::Temporary(e.to_string()),
        _ => ExecError::Fatal(e.to_string()),
    }
}

fn container_spec(task: &Task) -> api::TaskSpecContainerSpec {
    task.api
        .spec
        .as_ref()
        .and_then(|s| s.container_spec.clone())
        .unwrap_or_default()
}

/// A signal name or number as docker accepts it (`SIGTERM`, `TERM`, `15`).
pub fn parse_signal(s: &str) -> Option<u32> {
    if let Ok(n) = s.parse::<u32>() {
        return Some(n);
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .ok()
        .map(|sig| sig as i32 as u32)
}

impl TaskController {
    /// A controller for `task`.
    pub fn new(
        ctd: Containerd,
        env: Arc<NodeEnv>,
        task: Task,
        deps: Arc<dyn DependencyGetter>,
        net: Option<Arc<dyn NetworkAttacher>>,
    ) -> Self {
        TaskController {
            ctd,
            env,
            task,
            deps,
            net,
            container_id: None,
            pid: None,
            attached: false,
            actor: None,
            exit_code: None,
            logs: None,
            draining: None,
            health: None,
            check: None,
            made: None,
            volumes: None,
            started: false,
            heavy_work_limit: None,
        }
    }

    /// Starts and removes this task's process and namespace only while
    /// `limit` has a permit free.
    pub fn with_heavy_work_limit(mut self, limit: Arc<tokio::sync::Semaphore>) -> Self {
        self.heavy_work_limit = Some(limit);
        self
    }

    /// Waits for a turn at work that spawns runc or takes the kernel's
    /// network lock (see `ContainerdExecutor`); `None`: no bound.
    async fn heavy_work(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        // The semaphore is never closed: no permit only means no bound.
        match &self.heavy_work_limit {
            Some(limit) => limit.clone().acquire_owned().await.ok(),
            None => None,
        }
    }

    /// Publishes container event `action` (dockerd's executor goes through
    /// the daemon, which reports every step of a task's container).
    async fn emit(&mut self, id: &str, action: &str, extra: &[(&str, String)]) {
        if self.actor.as_ref().is_none_or(|a| a.id != id) {
            self.actor = Some(self.ctd.container_actor(id).await);
        }
        if let Some(a) = &self.actor {
            self.ctd.container_event(action, a, extra);
        }
    }

    /// Publishes the `volume mount` or `unmount` events of container `id`.
    async fn volume_events(&mut self, id: &str, mount: bool) {
        if self.volumes.is_none() {
            self.volumes = Some(self.ctd.container_volumes(&self.env, id).await);
        }
        if let Some(v) = &self.volumes {
            self.ctd.volume_events(id, v, mount);
        }
    }

    fn task_id(&self) -> &str {
        self.task.api.id.as_deref().unwrap_or("")
    }

    /// The task's container ID, looked up when not known yet. A container
    /// from before a restart is confirmed by its record (the index may name
    /// one removed behind this daemon's back).
    async fn existing(&mut self) -> Result<Option<String>, ExecError> {
        if let Some(id) = &self.container_id {
            return Ok(Some(id.clone()));
        }
        let task = self.task_id().to_string();
        let Some(id) = self.ctd.task_container(&task).await.map_err(exec_err)? else {
            return Ok(None);
        };
        match self.ctd.container_get(&id).await.map_err(exec_err)? {
            Some(c) => {
                self.actor = Some(crate::events::actor_of(&id, c.labels, c.image));
                self.container_id = Some(id);
            }
            None => self.ctd.task_container_forget(&task, &id).await,
        }
        Ok(self.container_id.clone())
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.env.containers_root.join(id)
    }

    fn stop_signal(&self) -> u32 {
        container_spec(&self.task)
            .stop_signal
            .as_deref()
            .and_then(parse_signal)
            .unwrap_or(15)
    }

    fn grace(&self) -> Duration {
        container_spec(&self.task)
            .stop_grace_period
            .filter(|g| *g >= 0)
            .map(|g| Duration::from_nanos(g as u64))
            .unwrap_or(DEFAULT_GRACE)
    }

    async fn create(&mut self) -> Result<String, ExecError> {
        // Step times, logged at debug: they show where a task's create
        // spends its time under load (the density bench's timeline).
        let mut steps = StepTimes::start();
        let c = container_spec(&self.task);
        let image_ref = c.image.clone().unwrap_or_default();
        // A local image wins (loaded images have no registry); otherwise
        // pull it, as dockerd's executor does.
        let image = match self.ctd.image_for_task(&image_ref).await {
            Ok(i) => i,
            Err(Error::NoSuchImage(_)) => {
                let auth = self
                    .deps
                    .get(self.task_id(), DepKind::RegistryAuth, "")
                    .await?
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|h| RegistryAuth::from_header(&h));
                match self.ctd.image_ensure(&image_ref, auth.as_ref()).await {
                    Ok(i) => i,
                    Err(e) if e.kind() == ErrorKind::Unavailable => return Err(exec_err(e)),
                    // As dockerd: the pull's own error goes to the log, the
                    // task says the image is missing.
                    Err(e) => {
                        tracing::error!(task = %self.task_id(), error = %e, "pulling image failed");
                        return Err(ExecError::Fatal(format!("No such image: {image_ref}")));
                    }
                }
            }
            Err(e) => return Err(exec_err(e)),
        };
        steps.mark("image");
        self.check = Some(health::resolve(&self.task, &image.config));
        let id = ids::random_hex(32);
        // Everything made below is leased until the container record refers
        // to it: containerd collects unreferenced snapshots at any time.
        let lease = self.ctd.creation_lease().await.map_err(exec_err)?;
        steps.mark("lease");
        let created = self
            .create_leased(&mut steps, &id, lease.id(), &image, &image_ref)
            .await;
        lease.release().await;
        steps.mark("unlease");
        tracing::debug!(task = self.task_id(), steps = %steps, "task container created");
        let (mounts, actor, volumes) = created?;
        self.made = Some(mounts);
        self.actor = Some(actor);
        self.volumes = Some(volumes);
        Ok(id)
    }

    async fn create_leased(
        &self,
        steps: &mut StepTimes,
        id: &str,
        lease: &str,
        image: &crate::images::ImageInfo,
        image_ref: &str,
    ) -> Result<(Vec<containerd_client::types::Mount>, Actor, Vec<MountView>), ExecError> {
        let mounts = self
            .ctd
            .rootfs_prepare(id, image, lease)
            .await
            .map_err(exec_err)?;
        let dir = self.dir(id);
        let fail = |e: ExecError| async {
            if let Some(net) = &self.net {
                let _ = net.detach(self.task_id()).await;
            }
            self.ctd.snapshot_remove(id).await;
            secrets::release(&dir);
            let _ = std::fs::remove_dir_all(&dir);
            Err(e)
        };
        if let Err(e) = std::fs::create_dir_all(&dir) {
            return fail(ExecError::Fatal(format!("create {}: {e}", dir.display()))).await;
        }
        steps.mark("rootfs");
        let dep_files = match secrets::materialize(&dir, &self.task, self.deps.as_ref()).await {
            Ok(f) => f,
            Err(e) => return fail(e).await,
        };
        steps.mark("secrets");
        let netns = match self.attach_networks().await {
            Ok(Some((netns, atts))) => {
                if let Err(e) = super::endpoints::Endpoints::of(&netns, &atts).write(&dir) {
                    return fail(ExecError::Fatal(format!("record the endpoints: {e}"))).await;
                }
                Some(netns)
            }
            Ok(None) => None,
            Err(e) => return fail(e).await,
        };
        steps.mark("network");
        let volumes = match self.prepare_volumes(image, &mounts).await {
            Ok(v) => v,
            Err(e) => return fail(e).await,
        };
        steps.mark("volumes");
        // A container that is not made leaves no anonymous volume behind.
        let discard = || async {
            let names: Vec<String> = volumes
                .values()
                .filter_map(|p| p.parent()?.file_name()?.to_str().map(str::to_string))
                .collect();
            remove_anonymous_volumes(&self.ctd, &self.env, &names).await;
        };
        let built = self.build(id, image, &mounts, &dep_files, &volumes, netns.as_ref());
        let (spec_json, labels) = match built {
            Ok(b) => b,
            Err(e) => {
                discard().await;
                return fail(ExecError::Fatal(e)).await;
            }
        };
        steps.mark("spec");
        let volume_mounts = if volumes.is_empty() {
            Vec::new()
        } else {
            crate::events::volume_mounts(&spec_json, &dir, &self.env.volumes_root)
        };
        let image_name = image
            .names
            .first()
            .cloned()
            .unwrap_or_else(|| image_ref.to_string());
        let actor = crate::events::actor_of(id, labels.clone(), image_name.clone());
        let created = self
            .ctd
            .container_create(NewContainer {
                id: id.to_string(),
                image: image_name,
                labels,
                spec: spec_json,
            })
            .await;
        if let Err(e) = created {
            discard().await;
            return fail(exec_err(e)).await;
        }
        steps.mark("container");
        Ok((mounts, actor, volume_mounts))
    }

    /// Makes (or finds) the task's volumes and the image's, seeding new
    /// ones from the image: a copy that may be large, so off the async
    /// threads.
    async fn prepare_volumes(
        &self,
        image: &crate::images::ImageInfo,
        mounts: &[containerd_client::types::Mount],
    ) -> Result<HashMap<String, PathBuf>, ExecError> {
        let node_id = self.task.api.node_id.clone().unwrap_or_default();
        prepare_volumes(
            self.ctd.events(),
            &self.env,
            &self.task,
            &node_id,
            &image.config,
            mounts,
        )
        .await
        .map_err(ExecError::Fatal)
    }

    fn build(
        &self,
        id: &str,
        image: &crate::images::ImageInfo,
        mounts: &[containerd_client::types::Mount],
        dep_files: &[secrets::DepFile],
        volumes: &HashMap<String, PathBuf>,
        netns: Option<&TaskNetns>,
    ) -> Result<(Vec<u8>, HashMap<String, String>), String> {
        let dir = self.dir(id);
        let users = UserDb::from_layers(&files::layer_dirs(mounts));
        let node_id = self.task.api.node_id.clone().unwrap_or_default();
        let file_paths = files::paths(&dir);
        let ctx = spec::TaskContext {
            task: &self.task,
            node_id: &node_id,
            node_hostname: &self.env.hostname,
            container_id: id,
            image_config: &image.config,
            files: &file_paths,
            volumes,
            users: &users,
            dep_files,
            init_binary: self.env.init_binary.as_deref(),
            netns: netns.map(|n| n.path.as_path()),
            cgroup_parent: &self.env.cgroup_parent,
        };
        let mut oci = spec::build(&ctx)?;
        if let Some(g) = group::shim_group(&self.task, self.env.shim_group_size) {
            let mut notes = oci.annotations().clone().unwrap_or_default();
            notes.insert(group::GROUP_ANNOTATION.into(), g);
            oci.set_annotations(Some(notes));
        }
        files::write(&file_paths, &spec::hostname(&ctx), netns)
            .map_err(|e| format!("write container files: {e}"))?;
        let mut labels = spec::labels(&ctx);
        labels.insert(files::NAME_LABEL.into(), spec::container_name(&self.task));
        let json = serde_json::to_vec(&oci).map_err(|e| e.to_string())?;
        Ok((json, labels))
    }

    async fn attach_logs(&mut self, id: &str) -> Result<(PathBuf, PathBuf), ExecError> {
        let dir = self.dir(id);
        std::fs::create_dir_all(&dir).map_err(|e| ExecError::Fatal(e.to_string()))?;
        let (copier, out, err) =
            Copier::start(&dir, crate::logs::log_path(&dir, id), self.env.log_rotation)
                .map_err(|e| ExecError::Fatal(format!("open log pipes: {e}")))?;
        if let Some(old) = self.logs.replace(copier) {
            old.finish().await;
        }
        Ok((out, err))
    }

    /// The task's network namespace from the network driver, when there is
    /// one: its attachments with each network's details from the manager.
    async fn attach_networks(
        &self,
    ) -> Result<Option<(TaskNetns, Vec<swarm::exec::Attachment>)>, ExecError> {
        let Some(net) = &self.net else {
            return Ok(None);
        };
        let mut atts = Vec::with_capacity(self.task.networks.len());
        for a in &self.task.networks {
            let raw = self
                .deps
                .get(self.task_id(), DepKind::Network, &a.network_id)
                .await?
                .ok_or_else(|| ExecError::Fatal(format!("network {} not found", a.network_id)))?;
            let network = serde_json::from_slice(&raw)
                .map_err(|e| ExecError::Fatal(format!("network {}: {e}", a.network_id)))?;
            atts.push(swarm::exec::Attachment {
                network,
                address: a.addresses.first().cloned().unwrap_or_default(),
                aliases: a.aliases.clone(),
            });
        }
        let netns = net.attach(self.task_id(), &atts).await?;
        net.publish_host_ports(self.task_id(), &self.task.host_ports)
            .await
            .map_err(|e| match e {
                // dockerd's wording around a port the node cannot give.
                ExecError::Fatal(m) => ExecError::Fatal(format!(
                    "starting container failed: driver failed programming external connectivity on endpoint {} ({}): {m}",
                    spec::container_name(&self.task),
                    ids::random_hex(32),
                )),
                other => other,
            })?;
        Ok(Some((netns, atts)))
    }

    /// Attaches a container this controller did not create (adopted after a
    /// restart) once; the driver's attach is idempotent.
    async fn reattach(&mut self) -> Result<(), ExecError> {
        if !self.attached {
            // The task's networks may have changed while shoald was down
            // or before this: the container's files follow them.
            if let Some(id) = self.existing().await? {
                self.apply_networks(&id).await?;
            } else {
                self.attach_networks().await?;
            }
            self.attached = true;
        }
        Ok(())
    }

    /// Attaches the task to its networks as they are now and records them
    /// in the container's `endpoints.json` (endpoint IDs kept) and
    /// `/etc/hosts`, as dockerd rewrites it on connect (written in place:
    /// it is bind-mounted).
    async fn apply_networks(&mut self, id: &str) -> Result<(), ExecError> {
        let Some((netns, atts)) = self.attach_networks().await? else {
            return Ok(());
        };
        let dir = self.dir(id);
        let old = super::endpoints::Endpoints::read(&dir);
        super::endpoints::Endpoints::of(&netns, &atts)
            .keeping_ids(old.as_ref())
            .write(&dir)
            .map_err(|e| ExecError::Fatal(format!("record the endpoints: {e}")))?;
        let paths = files::paths(&dir);
        let hostname = std::fs::read_to_string(&paths.hostname).unwrap_or_default();
        files::write(&paths, hostname.trim(), Some(&netns))
            .map_err(|e| ExecError::Fatal(format!("write container files: {e}")))
    }

    /// Gives the task's network namespace and addresses back once its
    /// container has stopped for good, as dockerd releases a container's
    /// network when it exits: the manager hands a finished task's addresses
    /// to new tasks at once, so a namespace kept until `remove` would
    /// answer for a new task's address. A failure is left to `remove`.
    async fn release_network(&mut self) {
        if let Some(net) = &self.net {
            if let Err(e) = net.detach(self.task_id()).await {
                tracing::warn!(task = self.task_id(), error = %e, "releasing the task's network");
            }
        }
    }

    /// Starts the health monitor when the task has a check and none runs yet.
    async fn monitor_health(&mut self, id: &str) -> Result<bool, ExecError> {
        if self.health.is_some() {
            return Ok(true);
        }
        let check = match &self.check {
            Some(c) => c.clone(),
            None => {
                let image_ref = container_spec(&self.task).image.unwrap_or_default();
                let image = self
                    .ctd
                    .image_for_task(&image_ref)
                    .await
                    .map_err(exec_err)?;
                let c = health::resolve(&self.task, &image.config);
                self.check = Some(c.clone());
                c
            }
        };
        let Some(check) = check else {
            return Ok(false);
        };
        self.health = Some(health::Monitor::start(
            self.ctd.clone(),
            id.to_string(),
            self.dir(id),
            check,
        ));
        Ok(true)
    }

    /// Kills an unhealthy container and returns dockerd's task error.
    async fn kill_unhealthy(&mut self, id: &str) -> ExecError {
        let _ = self.ctd.task_kill(id, SIGKILL, true).await;
        let code = self.ctd.task_wait(id).await.unwrap_or(137);
        self.drain_logs();
        self.release_network().await;
        self.exit_code = Some(code as i64);
        self.pid = None;
        self.health = None;
        ExecError::Fatal(format!(
            "task: non-zero exit ({code}): dockerexec: unhealthy container"
        ))
    }

    /// Stops copying output once the pipes are quiet, in the background:
    /// the exit is reported at once and `remove` waits for the last lines.
    fn drain_logs(&mut self) {
        if let Some(c) = self.logs.take() {
            self.draining = Some(tokio::spawn(c.finish()));
        }
    }

    async fn finish_logs(&mut self) {
        self.drain_logs();
        if let Some(d) = self.draining.take() {
            let _ = d.await;
        }
    }
}

#[async_trait]
impl Controller for TaskController {
    async fn prepare(&mut self) -> Result<(), ExecError> {
        if self.existing().await?.is_none() {
            let id = self.create().await?;
            self.emit(&id, "create", &[]).await;
            self.container_id = Some(id);
            // create() attached it.
            self.attached = true;
        }
        Ok(())
    }

    async fn start(&mut self) -> Result<(), ExecError> {
        let Some(id) = self.existing().await? else {
            return Err(ExecError::Fatal("task container is gone".into()));
        };
        self.reattach().await?;
        // A container this controller made has no task yet.
        let made = self.made.take();
        if made.is_none() {
            match self.ctd.task_state(&id).await.map_err(exec_err)? {
                Some(p) if p.running => {
                    // Started before a restart: adopt it.
                    self.pid = Some(p.pid);
                    return Ok(());
                }
                Some(_) => self.ctd.task_delete(&id).await.map_err(exec_err)?,
                None => {}
            }
        }
        let (out, err) = self.attach_logs(&id).await?;
        let rootfs = match made {
            Some(m) => m,
            None => self.ctd.snapshot_mounts(&id).await.map_err(exec_err)?,
        };
        let tty = container_spec(&self.task).tty.unwrap_or(false);
        let permit = self.heavy_work().await;
        let started = async {
            self.ctd
                .task_create(
                    &id,
                    rootfs,
                    "",
                    &out.display().to_string(),
                    &err.display().to_string(),
                    tty,
                )
                .await?;
            self.ctd.task_start(&id).await
        }
        .await;
        drop(permit);
        match started {
            Ok(pid) => {
                files::record_start(&self.dir(&id));
                self.pid = Some(pid);
                self.started = true;
                self.volume_events(&id, true).await;
                self.emit(&id, "start", &[]).await;
                Ok(())
            }
            Err(e) => {
                let _ = self.ctd.task_delete(&id).await;
                self.finish_logs().await;
                // runc's own words are what dockerd shows too.
                Err(exec_err(e))
            }
        }
    }

    async fn healthy(&mut self) -> Result<(), ExecError> {
        let Some(id) = self.existing().await? else {
            return Err(ExecError::Fatal("task container is gone".into()));
        };
        if !self.monitor_health(&id).await? {
            return Ok(());
        }
        let settled = match self.health.as_mut() {
            Some(m) => m.settled().await,
            None => true,
        };
        if settled {
            Ok(())
        } else {
            Err(self.kill_unhealthy(&id).await)
        }
    }

    async fn wait(&mut self) -> Result<ExitStatus, ExecError> {
        let Some(id) = self.existing().await? else {
            return Err(ExecError::Fatal("task container is gone".into()));
        };
        if self.logs.is_none() {
            self.reattach().await?;
            self.attach_logs(&id).await?;
        }
        // Right after this controller's start the process is known; an
        // exit since then shows in the wait below.
        if !std::mem::take(&mut self.started) {
            match self.ctd.task_state(&id).await.map_err(exec_err)? {
                None => {
                    self.finish_logs().await;
                    return Err(ExecError::Fatal("task: container has no process".into()));
                }
                Some(p) if p.running => self.pid = Some(p.pid),
                Some(_) => {}
            }
        }
        self.monitor_health(&id).await?;
        let unhealthy = async {
            match self.health.as_mut() {
                Some(m) => m.unhealthy().await,
                None => std::future::pending().await,
            }
        };
        let ctd = self.ctd.clone();
        let exited = async {
            loop {
                let err = match ctd.task_wait(&id).await {
                    Ok(code) => return Ok(code),
                    Err(e) => e,
                };
                // The wait stream breaks when containerd restarts while the
                // shim keeps the process running: look again before giving up.
                match ctd.task_state(&id).await {
                    Ok(Some(p)) if p.running => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Ok(Some(p)) => return Ok(p.exit_code),
                    Ok(None) => return Err(exec_err(err)),
                    Err(e) => return Err(ExecError::Temporary(e.to_string())),
                }
            }
        };
        let code = tokio::select! {
            r = exited => r?,
            _ = unhealthy => return Err(self.kill_unhealthy(&id).await),
        };
        self.health = None;
        self.drain_logs();
        self.release_network().await;
        self.exit_code = Some(code as i64);
        self.pid = None;
        self.emit(&id, "die", &[("exitCode", code.to_string())])
            .await;
        self.volume_events(&id, false).await;
        Ok(ExitStatus { code: code as i64 })
    }

    async fn shutdown(&mut self) -> Result<(), ExecError> {
        let Some(id) = self.existing().await? else {
            return Ok(());
        };
        let running = matches!(
            self.ctd.task_state(&id).await.map_err(exec_err)?,
            Some(p) if p.running
        );
        if running {
            if let Some(net) = &self.net {
                net.wait_unbalanced(self.task_id(), UNBALANCE_LIMIT).await;
            }
            let signal = self.stop_signal();
            self.emit(&id, "kill", &[("signal", signal.to_string())])
                .await;
            self.ctd
                .task_kill(&id, signal, false)
                .await
                .map_err(exec_err)?;
            let waited = tokio::time::timeout(self.grace(), self.ctd.task_wait(&id)).await;
            let code = match waited {
                Ok(r) => r.map_err(exec_err)?,
                Err(_) => {
                    self.emit(&id, "kill", &[("signal", SIGKILL.to_string())])
                        .await;
                    self.ctd
                        .task_kill(&id, SIGKILL, true)
                        .await
                        .map_err(exec_err)?;
                    self.ctd.task_wait(&id).await.map_err(exec_err)?
                }
            };
            self.exit_code = Some(code as i64);
            self.emit(&id, "die", &[("exitCode", code.to_string())])
                .await;
            self.volume_events(&id, false).await;
            self.emit(&id, "stop", &[]).await;
        }
        self.drain_logs();
        let permit = self.heavy_work().await;
        self.release_network().await;
        drop(permit);
        self.health = None;
        self.pid = None;
        Ok(())
    }

    async fn terminate(&mut self) -> Result<(), ExecError> {
        if let Some(id) = self.existing().await? {
            self.emit(&id, "kill", &[("signal", SIGKILL.to_string())])
                .await;
            self.ctd
                .task_kill(&id, SIGKILL, true)
                .await
                .map_err(exec_err)?;
        }
        Ok(())
    }

    async fn update_networks(&mut self, task: &Task) -> Result<(), ExecError> {
        self.task.networks = task.networks.clone();
        // A task not attached yet (or adopted, not attached again yet)
        // takes its networks when it is; a stopped one has none.
        if !self.attached || self.net.is_none() {
            return Ok(());
        }
        let Some(id) = self.existing().await? else {
            return Ok(());
        };
        let running = matches!(
            self.ctd.task_state(&id).await.map_err(exec_err)?,
            Some(p) if p.running
        );
        if !running {
            return Ok(());
        }
        self.apply_networks(&id).await?;
        Ok(())
    }

    async fn remove(&mut self) -> Result<(), ExecError> {
        let _permit = self.heavy_work().await;
        if let Some(id) = self.existing().await? {
            self.finish_logs().await;
            // The record names the container; read it before it goes.
            if self.actor.as_ref().is_none_or(|a| a.id != id) {
                self.actor = Some(self.ctd.container_actor(&id).await);
            }
            remove_container(&self.ctd, &self.env, &id).await?;
            self.emit(&id, "destroy", &[]).await;
            self.container_id = None;
        }
        // The namespace belongs to the task: its container may already be
        // gone (removed through the container API).
        if let Some(net) = &self.net {
            net.detach(self.task_id()).await?;
        }
        Ok(())
    }

    fn container_status(&self) -> Option<api::ContainerStatus> {
        let id = self.container_id.clone()?;
        Some(api::ContainerStatus {
            container_id: Some(id),
            pid: Some(self.pid.unwrap_or(0) as i64),
            exit_code: Some(self.exit_code.unwrap_or(0)),
        })
    }
}

/// Makes (or finds) the volumes of `task`'s container and its image's on
/// node `node_id`, seeding new ones from the image layers under `mounts`:
/// a copy that may be large, so off the async threads. Returns each
/// mount's target with the host path of its volume's data. New volumes
/// are reported on `events`.
pub async fn prepare_volumes(
    events: &swarm::events::EventBus,
    env: &NodeEnv,
    task: &Task,
    node_id: &str,
    image_config: &serde_json::Value,
    mounts: &[containerd_client::types::Mount],
) -> Result<HashMap<String, PathBuf>, String> {
    let fields = spec::template_fields(task, node_id, &env.hostname);
    let wanted = [
        spec::task_volumes(task, &fields),
        spec::image_volumes(image_config, task),
    ]
    .concat();
    let store = VolumeStore::new(&env.volumes_root).with_events(events.clone());
    let layers = crate::volumes::seed::image_layers(mounts);
    tokio::task::spawn_blocking(move || crate::volumes::task::prepare(&store, &wanted, &layers))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// Kills and deletes a container with its task, snapshot and files, and
/// the anonymous volumes only it used (dockerd's executor removes task
/// containers with their volumes; named ones always stay).
pub async fn remove_container(ctd: &Containerd, env: &NodeEnv, id: &str) -> Result<(), ExecError> {
    let spec = ctd.container_spec(id).await.map_err(exec_err)?;
    let volumes: Vec<String> = spec
        .map(|json| {
            crate::events::volume_mounts(&json, &env.containers_root.join(id), &env.volumes_root)
        })
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.name)
        .collect();
    delete_container(ctd, env, id).await?;
    remove_anonymous_volumes(ctd, env, &volumes).await;
    Ok(())
}

/// Removes those of `names` that are anonymous volumes no container uses
/// any more; failures are logged, the container is gone either way.
async fn remove_anonymous_volumes(ctd: &Containerd, env: &NodeEnv, names: &[String]) {
    let store = VolumeStore::new(&env.volumes_root);
    let anonymous: Vec<&String> = names
        .iter()
        .filter(|n| store.get(n).is_ok_and(|v| v.is_anonymous()))
        .collect();
    if anonymous.is_empty() {
        return;
    }
    for name in anonymous {
        if let Err(e) = ctd.volume_remove(env, name, true).await {
            tracing::warn!(volume = %name, error = %e, "removing a task's anonymous volume");
        }
    }
}

/// Kills and deletes a container with its task, snapshot and files; its
/// volumes stay (`docker rm` without `-v`).
pub async fn delete_container(ctd: &Containerd, env: &NodeEnv, id: &str) -> Result<(), ExecError> {
    if let Some(p) = ctd.task_state(id).await.map_err(exec_err)? {
        if p.running {
            ctd.task_kill(id, SIGKILL, true).await.map_err(exec_err)?;
            let _ = tokio::time::timeout(Duration::from_secs(10), ctd.task_wait(id)).await;
        }
        ctd.task_delete(id).await.map_err(exec_err)?;
    }
    ctd.container_delete(id).await.map_err(exec_err)?;
    ctd.snapshot_remove(id).await;
    let dir = env.containers_root.join(id);
    secrets::release(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Wall time of each step of a task container's create, for the debug log.
struct StepTimes {
    last: std::time::Instant,
    steps: Vec<(&'static str, Duration)>,
}

impl StepTimes {
    fn start() -> StepTimes {
        StepTimes {
            last: std::time::Instant::now(),
            steps: Vec::new(),
        }
    }

    /// Ends step `name` now.
    fn mark(&mut self, name: &'static str) {
        let now = std::time::Instant::now();
        self.steps.push((name, now - self.last));
        self.last = now;
    }
}

impl std::fmt::Display for StepTimes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (name, d)) in self.steps.iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            write!(f, "{sep}{name}={}ms", d.as_millis())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_like_docker() {
        assert_eq!(parse_signal("SIGTERM"), Some(15));
        assert_eq!(parse_signal("int"), Some(2));
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("SIGNOPE"), None);
    }
}
