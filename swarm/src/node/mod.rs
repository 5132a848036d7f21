//! `SwarmNode`: this machine's membership in a swarm and its lifecycle:
//! inactive, locked, a manager (init, join, restart, unlock, leave) or a
//! worker (join, restart, leave).

mod attachments;
mod join;
mod roles;
mod state;
mod worker;

use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::RwLock;
use std::time::Duration;

pub use join::JoinRequest;
use serde::Deserialize;
use serde::Serialize;
pub use state::NodeState;
pub use worker::WorkerNode;

use crate::ca::identity::Role;
use crate::ca::keystore::CertStore;
use crate::ca::keystore::LoadedCerts;
use crate::ca::tls::NodeCerts;
use crate::error::Error;
use crate::error::ErrorKind;
use crate::error::Result;
use crate::error::ALREADY_IN_SWARM;
use crate::error::NOT_IN_SWARM;
use crate::manager::Manager;
use crate::model::api;
use crate::raft::encryption::KeyStore;
use crate::raft::encryption::LoadedKey;
use crate::raft::encryption::SealError;

/// How long `swarm join` waits for a worker's first session before
/// answering with dockerd's "continue in the background" text.
const JOIN_READY: Duration = Duration::from_secs(20);

/// dockerd's text when a join outlasts its wait.
pub const JOIN_TIMEOUT: &str = "Timeout was reached before node joined. The attempt to join the swarm will continue in the background. Use the \"docker info\" command to see the current swarm status of your node.";

/// Static facts about this node, from flags and the machine.
#[derive(Clone)]
pub struct NodeConfig {
    /// `--data-root`; swarm state lives in `<data_root>/swarm`.
    pub data_root: PathBuf,
    /// The engine version reported in node descriptions.
    pub engine_version: String,
    /// The hostname reported in node descriptions.
    pub hostname: String,
    /// Runs this node's tasks (containerd); `None` leaves tasks at `assigned`.
    pub executor: Option<Arc<dyn crate::exec::Executor>>,
    /// The daemon's event bus; managers publish the cluster's events to it.
    pub events: crate::events::EventBus,
}

enum Phase {
    Inactive,
    Locked(NodeState),
    Manager(Arc<Manager>),
    Worker(Arc<WorkerNode>),
}

/// The swarm membership of this machine.
pub struct SwarmNode {
    cfg: NodeConfig,
    phase: RwLock<Phase>,
    // Bumped on every phase change, for the role watcher.
    generation: tokio::sync::watch::Sender<u64>,
    // Serializes init, join, leave and unlock.
    lifecycle: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for SwarmNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwarmNode").finish_non_exhaustive()
    }
}

/// `POST /swarm/init`'s body: the API type plus `Availability`, which the
/// generated type lacks.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InitRequest {
    /// The documented fields.
    #[serde(flatten)]
    pub base: api::SwarmInitRequest,
    /// `--availability` of this first node.
    #[serde(
        rename = "Availability",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub availability: Option<api::NodeSpecAvailabilityEnum>,
}

/// dockerd's `LocalNodeState`, as `docker info` shows it.
pub use api::LocalNodeState;

/// What `docker info` shows of a node that is not a manager.
#[derive(Debug, Clone)]
pub struct WorkerInfo {
    /// Its membership facts.
    pub state: NodeState,
    /// The managers it knows.
    pub managers: Vec<String>,
}

fn bad_unlock_key(e: SealError) -> Error {
    match e {
        SealError::BadUnlockKey => Error::new(ErrorKind::InvalidArgument, "invalid key string"),
        SealError::Open => Error::new(
            ErrorKind::Unauthorized,
            "swarm could not be unlocked: invalid key provided",
        ),
        other => Error::new(ErrorKind::Internal, other.to_string()),
    }
}

impl SwarmNode {
    /// Opens the node: resumes a swarm found under the data root (starting
    /// the manager or the worker, or waiting locked for the unlock key) or
    /// stays inactive.
    pub async fn open(cfg: NodeConfig) -> Result<Arc<Self>> {
        let node = Arc::new(SwarmNode {
            cfg,
            phase: RwLock::new(Phase::Inactive),
            generation: tokio::sync::watch::Sender::new(0),
            lifecycle: tokio::sync::Mutex::new(()),
        });
        tokio::spawn(node.clone().watch_roles());
        let Some(state) = NodeState::load(&node.swarm_dir())? else {
            tokio::spawn(node.clone().remove_orphaned_tasks());
            return Ok(node);
        };
        if state.role == Role::Worker {
            match CertStore::new(&node.swarm_dir()).load()? {
                LoadedCerts::Ready(certs) => {
                    let w = node.start_worker(state, &certs)?;
                    node.set(Phase::Worker(w));
                }
                _ => tracing::warn!("worker state without its certificate; staying inactive"),
            }
            return Ok(node);
        }
        match node.keys().load().map_err(internal)? {
            LoadedKey::Missing => {
                tracing::warn!("swarm state without a data key; staying inactive");
            }
            LoadedKey::Locked => {
                tracing::info!("swarm is locked; waiting for docker swarm unlock");
                node.set(Phase::Locked(state));
            }
            LoadedKey::Ready(dek) => {
                let certs = match CertStore::new(&node.swarm_dir()).load()? {
                    LoadedCerts::Ready(c) => c,
                    _ => {
                        tracing::warn!("manager state without its certificate; staying inactive");
                        return Ok(node);
                    }
                };
                let m =
                    Manager::resume(node.manager_config(), state, Arc::from(dek), &certs).await?;
                node.set(Phase::Manager(m));
            }
        }
        Ok(node)
    }

    /// Removes the task containers of a swarm this node no longer knows
    /// (its swarm state was wiped while they ran: shoald leaves tasks
    /// running when it stops), as `swarm leave` removes them: no swarm
    /// will ever claim them, and dockerd on a wiped data root shows none.
    /// Under the lifecycle lock, so a join cannot start in between.
    async fn remove_orphaned_tasks(self: Arc<Self>) {
        let _g = self.lifecycle.lock().await;
        let Some(e) = self.cfg.executor.as_ref().filter(|_| self.is_inactive()) else {
            return;
        };
        if let Err(e) = e.prune(&Default::default()).await {
            tracing::warn!(error = %e, "removing the tasks of a forgotten swarm failed");
        }
    }

    fn swarm_dir(&self) -> PathBuf {
        self.cfg.data_root.join("swarm")
    }

    fn keys(&self) -> KeyStore {
        KeyStore::new(&self.swarm_dir())
    }

    fn manager_config(&self) -> crate::manager::ManagerConfig {
        crate::manager::ManagerConfig {
            dir: self.swarm_dir(),
            engine_version: self.cfg.engine_version.clone(),
            hostname: self.cfg.hostname.clone(),
            executor: self.cfg.executor.clone(),
            events: self.cfg.events.clone(),
        }
    }

    fn start_worker(&self, state: NodeState, certs: &NodeCerts) -> Result<Arc<WorkerNode>> {
        WorkerNode::start(self.swarm_dir(), state, certs, self.cfg.executor.clone())
    }

    fn set(&self, p: Phase) {
        *self.phase.write().unwrap_or_else(|e| e.into_inner()) = p;
        self.generation.send_modify(|g| *g += 1);
    }

    fn is_inactive(&self) -> bool {
        matches!(
            &*self.phase.read().unwrap_or_else(|e| e.into_inner()),
            Phase::Inactive
        )
    }

    /// The manager, when this node is an unlocked manager and the swarm has
    /// a leader (every manager call needs one, as with dockerd).
    pub fn manager(&self) -> Result<Arc<Manager>> {
        let m = match &*self.phase.read().unwrap_or_else(|e| e.into_inner()) {
            Phase::Manager(m) => m.clone(),
            Phase::Locked(_) => return Err(Error::locked()),
            Phase::Worker(_) => return Err(Error::worker_not_manager()),
            Phase::Inactive => return Err(Error::not_manager()),
        };
        if !m.has_leader() {
            return Err(Error::no_leader());
        }
        Ok(m)
    }

    /// The manager whether or not the swarm has a leader (for `docker info`,
    /// which reports a lost quorum in its `Error` field).
    pub fn manager_even_without_leader(&self) -> Option<Arc<Manager>> {
        match &*self.phase.read().unwrap_or_else(|e| e.into_inner()) {
            Phase::Manager(m) => Some(m.clone()),
            _ => None,
        }
    }

    /// The state `docker info` shows.
    pub fn local_state(&self) -> LocalNodeState {
        match &*self.phase.read().unwrap_or_else(|e| e.into_inner()) {
            Phase::Manager(_) | Phase::Worker(_) => LocalNodeState::ACTIVE,
            Phase::Locked(_) => LocalNodeState::LOCKED,
            Phase::Inactive => LocalNodeState::INACTIVE,
        }
    }

    /// Whether this node is an unlocked manager (dockerd's ControlAvailable).
    pub fn is_manager(&self) -> bool {
        matches!(
            &*self.phase.read().unwrap_or_else(|e| e.into_inner()),
            Phase::Manager(_)
        )
    }

    /// This node's ID and addresses while in a swarm (locked or not).
    pub fn membership(&self) -> Option<NodeState> {
        match &*self.phase.read().unwrap_or_else(|e| e.into_inner()) {
            Phase::Manager(m) => Some(m.node_state().clone()),
            Phase::Worker(w) => Some(w.node_state().clone()),
            Phase::Locked(s) => Some(s.clone()),
            Phase::Inactive => None,
        }
    }

    /// What a worker knows of the swarm, when this node is one.
    pub fn worker_info(&self) -> Option<WorkerInfo> {
        match &*self.phase.read().unwrap_or_else(|e| e.into_inner()) {
            Phase::Worker(w) => Some(WorkerInfo {
                state: w.node_state().clone(),
                managers: w.managers(),
            }),
            _ => None,
        }
    }

    /// `POST /swarm/init`: creates a one-manager swarm; returns the node ID.
    /// With `ForceNewCluster` on a manager, makes it the only manager of a
    /// new cluster with the old one's state instead.
    pub async fn init(&self, req: InitRequest) -> Result<String> {
        let _g = self.lifecycle.lock().await;
        if req.base.force_new_cluster == Some(true) {
            if let Some(m) = self.manager_even_without_leader() {
                let advertise = match req.base.advertise_addr.as_deref().unwrap_or("") {
                    "" => None,
                    raw => {
                        let port = m
                            .node_state()
                            .advertise_addr
                            .rsplit_once(':')
                            .and_then(|(_, p)| p.parse().ok())
                            .unwrap_or(crate::manager::init::DEFAULT_PORT);
                        let a =
                            crate::manager::init::parse_addr(raw, "", port).ok_or_else(|| {
                                Error::new(
                                    ErrorKind::InvalidArgument,
                                    format!("invalid advertise address: {raw}"),
                                )
                            })?;
                        Some(a.to_string())
                    }
                };
                let id = m.node_id().to_string();
                let fresh = Manager::force_new_cluster(self.manager_config(), m, advertise).await?;
                self.set(Phase::Manager(fresh));
                return Ok(id);
            }
        }
        if !self.is_inactive() {
            return Err(Error::new(ErrorKind::Unavailable, ALREADY_IN_SWARM));
        }
        let m = Manager::init(self.manager_config(), req).await?;
        self.set(Phase::Manager(m.clone()));
        Ok(m.node_id().to_string())
    }

    /// `POST /swarm/join`: joins the swarm a manager in `req` belongs to, as
    /// the token's role. Returns once the node takes part (a manager once it
    /// is a raft voter with the cluster's state; a worker once its agent has
    /// a session).
    pub async fn join(&self, req: JoinRequest) -> Result<()> {
        let _g = self.lifecycle.lock().await;
        if !self.is_inactive() {
            return Err(Error::new(ErrorKind::Unavailable, ALREADY_IN_SWARM));
        }
        let admitted = join::request_certificate(&req, &self.cfg.hostname).await?;
        let dir = self.swarm_dir();
        std::fs::create_dir_all(&dir).map_err(internal)?;
        let result = match admitted.state.role {
            Role::Manager => self.join_as_manager(&admitted).await,
            Role::Worker => self.join_as_worker(&admitted).await,
        };
        if result.is_err() && self.is_inactive() {
            let _ = remove_dir(&dir);
        }
        result
    }

    async fn join_as_manager(&self, a: &join::Admitted) -> Result<()> {
        let listen = a
            .state
            .listen_addr
            .parse()
            .map_err(|_| Error::internal("bad listen address"))?;
        let listener = crate::transport::server::bind(listen).await?;
        CertStore::new(&self.swarm_dir()).save(&a.certs, None)?;
        let m = Manager::join(
            self.manager_config(),
            a.state.clone(),
            &a.certs,
            None,
            listener,
            &a.remote,
        )
        .await?;
        self.set(Phase::Manager(m));
        Ok(())
    }

    async fn join_as_worker(&self, a: &join::Admitted) -> Result<()> {
        CertStore::new(&self.swarm_dir()).save(&a.certs, None)?;
        a.state.save(&self.swarm_dir())?;
        let w = self.start_worker(a.state.clone(), &a.certs)?;
        self.set(Phase::Worker(w.clone()));
        if !w.wait_connected(JOIN_READY).await {
            return Err(Error::new(ErrorKind::Unavailable, JOIN_TIMEOUT));
        }
        Ok(())
    }

    /// `POST /swarm/unlock`: opens the data key and starts the manager.
    pub async fn unlock(&self, key: &str) -> Result<()> {
        let _g = self.lifecycle.lock().await;
        let state = match &*self.phase.read().unwrap_or_else(|e| e.into_inner()) {
            Phase::Locked(s) => s.clone(),
            Phase::Manager(_) | Phase::Worker(_) => {
                return Err(Error::new(ErrorKind::NameConflict, "swarm is not locked"))
            }
            Phase::Inactive => return Err(Error::not_manager()),
        };
        let dek = self.keys().unlock(key).map_err(bad_unlock_key)?;
        let certs = match CertStore::new(&self.swarm_dir()).load()? {
            LoadedCerts::Ready(c) => c,
            LoadedCerts::Locked => CertStore::new(&self.swarm_dir()).unlock(key)?,
            LoadedCerts::Missing => {
                return Err(Error::internal("this manager's certificate is missing"))
            }
        };
        let m = Manager::resume(self.manager_config(), state, Arc::new(dek), &certs).await?;
        self.set(Phase::Manager(m));
        Ok(())
    }

    /// `POST /swarm/leave`: stops the node and erases its swarm state.
    pub async fn leave(&self, force: bool) -> Result<()> {
        let _g = self.lifecycle.lock().await;
        let current = std::mem::replace(
            &mut *self.phase.write().unwrap_or_else(|e| e.into_inner()),
            Phase::Inactive,
        );
        self.generation.send_modify(|g| *g += 1);
        match current {
            Phase::Inactive => {
                return Err(Error::new(ErrorKind::Unavailable, NOT_IN_SWARM));
            }
            Phase::Manager(m) if !force => {
                let msg = crate::controlapi::leave::manager_leave_refusal(&m);
                self.set(Phase::Manager(m));
                return Err(Error::new(ErrorKind::Unavailable, msg));
            }
            Phase::Locked(s) if !force => {
                self.set(Phase::Locked(s));
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    "Swarm is encrypted and locked. Please unlock it first or use `--force` to ignore this message.",
                ));
            }
            Phase::Manager(m) => m.stop().await,
            Phase::Worker(w) => w.stop_and_remove_tasks().await,
            Phase::Locked(_) => {}
        }
        remove_dir(&self.swarm_dir())
    }

    /// Re-wraps this manager's keys after autolock was turned on, off or
    /// rotated through it (the other managers follow the store).
    pub fn rewrap_key(&self, unlock_key: Option<&str>) -> Result<()> {
        match self.manager_even_without_leader() {
            Some(m) => m.rewrap(unlock_key),
            None => Ok(()),
        }
    }

    /// Stops the node (daemon shutdown); state stays on disk and running
    /// tasks keep running.
    pub async fn shutdown(&self) {
        let _g = self.lifecycle.lock().await;
        let phase = std::mem::replace(
            &mut *self.phase.write().unwrap_or_else(|e| e.into_inner()),
            Phase::Inactive,
        );
        self.generation.send_modify(|g| *g += 1);
        match phase {
            Phase::Manager(m) => m.stop().await,
            Phase::Worker(w) => w.stop().await,
            _ => {}
        }
    }

    /// Waits for the manager to lead, for callers that need a writable store.
    pub async fn ready(&self, timeout: Duration) -> Result<()> {
        self.manager()?.wait_leader(timeout).await
    }
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(internal(e)),
    }
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::internal(e.to_string())
}
