//! `SwarmNode`: this machine's membership in a swarm and its lifecycle:
//! inactive, locked, or an active manager (init, restart, unlock, leave).

use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::RwLock;
use std::time::Duration;

use serde::Deserialize;
use serde::Serialize;

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
use crate::raft::encryption::Sealer;

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
}

/// What survives a restart besides the raft data (no secrets in here).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeState {
    /// This node's swarm ID.
    pub node_id: String,
    /// The raft member ID.
    pub raft_id: u64,
    /// `--listen-addr` (host:port).
    pub listen_addr: String,
    /// `--advertise-addr` (host:port).
    pub advertise_addr: String,
    /// `--data-path-addr`.
    pub data_path_addr: String,
}

enum Phase {
    Inactive,
    Locked(NodeState),
    Active(Arc<Manager>),
}

/// The swarm membership of this machine.
pub struct SwarmNode {
    cfg: NodeConfig,
    phase: RwLock<Phase>,
    // Serializes init, leave and unlock.
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

impl SwarmNode {
    /// Opens the node: resumes a swarm found under the data root (starting the
    /// manager, or waiting locked for the unlock key) or stays inactive.
    pub async fn open(cfg: NodeConfig) -> Result<Arc<Self>> {
        let node = Arc::new(SwarmNode {
            cfg,
            phase: RwLock::new(Phase::Inactive),
            lifecycle: tokio::sync::Mutex::new(()),
        });
        let Some(state) = node.read_state()? else {
            return Ok(node);
        };
        match node.keys().load().map_err(internal)? {
            LoadedKey::Missing => {
                tracing::warn!("swarm state without a data key; staying inactive");
            }
            LoadedKey::Locked => {
                tracing::info!("swarm is locked; waiting for docker swarm unlock");
                node.set(Phase::Locked(state));
            }
            LoadedKey::Ready(dek) => {
                let m = Manager::resume(node.manager_config(), state, Arc::from(dek)).await?;
                node.set(Phase::Active(m));
            }
        }
        Ok(node)
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
        }
    }

    fn read_state(&self) -> Result<Option<NodeState>> {
        let path = self.swarm_dir().join("state.json");
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(internal),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(internal(e)),
        }
    }

    fn set(&self, p: Phase) {
        *self.phase.write().unwrap_or_else(|e| e.into_inner()) = p;
    }

    /// The manager, when this node is an unlocked manager.
    pub fn manager(&self) -> Result<Arc<Manager>> {
        match &*self.phase.read().unwrap_or_else(|e| e.into_inner()) {
            Phase::Active(m) => Ok(m.clone()),
            Phase::Locked(_) => Err(Error::locked()),
            Phase::Inactive => Err(Error::not_manager()),
        }
    }

    /// The state `docker info` shows.
    pub fn local_state(&self) -> LocalNodeState {
        match &*self.phase.read().unwrap_or_else(|e| e.into_inner()) {
            Phase::Active(_) => LocalNodeState::ACTIVE,
            Phase::Locked(_) => LocalNodeState::LOCKED,
            Phase::Inactive => LocalNodeState::INACTIVE,
        }
    }

    /// This node's ID and address while in a swarm (locked or not).
    pub fn membership(&self) -> Option<NodeState> {
        match &*self.phase.read().unwrap_or_else(|e| e.into_inner()) {
            Phase::Active(m) => Some(m.node_state().clone()),
            Phase::Locked(s) => Some(s.clone()),
            Phase::Inactive => None,
        }
    }

    /// `POST /swarm/init`: creates a one-manager swarm; returns the node ID.
    pub async fn init(&self, req: InitRequest) -> Result<String> {
        let _g = self.lifecycle.lock().await;
        if !matches!(
            &*self.phase.read().unwrap_or_else(|e| e.into_inner()),
            Phase::Inactive
        ) {
            return Err(Error::new(ErrorKind::Unavailable, ALREADY_IN_SWARM));
        }
        let m = Manager::init(self.manager_config(), req).await?;
        self.set(Phase::Active(m.clone()));
        Ok(m.node_id().to_string())
    }

    /// `POST /swarm/unlock`: opens the data key and starts the manager.
    pub async fn unlock(&self, key: &str) -> Result<()> {
        let _g = self.lifecycle.lock().await;
        let state = match &*self.phase.read().unwrap_or_else(|e| e.into_inner()) {
            Phase::Locked(s) => s.clone(),
            Phase::Active(_) => {
                return Err(Error::new(ErrorKind::NameConflict, "swarm is not locked"))
            }
            Phase::Inactive => return Err(Error::not_manager()),
        };
        let dek = self.keys().unlock(key).map_err(|e| match e {
            SealError::BadUnlockKey => Error::new(ErrorKind::InvalidArgument, "invalid key string"),
            SealError::Open => Error::new(
                ErrorKind::Unauthorized,
                "swarm could not be unlocked: invalid key provided",
            ),
            other => Error::new(ErrorKind::Internal, other.to_string()),
        })?;
        let m = Manager::resume(self.manager_config(), state, Arc::new(dek)).await?;
        self.set(Phase::Active(m));
        Ok(())
    }

    /// `POST /swarm/leave`: stops the manager and erases the swarm state.
    pub async fn leave(&self, force: bool) -> Result<()> {
        let _g = self.lifecycle.lock().await;
        let current = std::mem::replace(
            &mut *self.phase.write().unwrap_or_else(|e| e.into_inner()),
            Phase::Inactive,
        );
        match current {
            Phase::Inactive => {
                return Err(Error::new(ErrorKind::Unavailable, NOT_IN_SWARM));
            }
            Phase::Active(m) if !force => {
                self.set(Phase::Active(m));
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    "You are attempting to leave the swarm on a node that is participating as a manager. Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message. ",
                ));
            }
            Phase::Locked(s) if !force => {
                self.set(Phase::Locked(s));
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    "Swarm is encrypted and locked. Please unlock it first or use `--force` to ignore this message.",
                ));
            }
            Phase::Active(m) => m.stop().await,
            Phase::Locked(_) => {}
        }
        remove_dir(&self.swarm_dir())
    }

    /// Re-wraps the data key after autolock was turned on, off or rotated.
    pub fn rewrap_key(&self, dek: &Sealer, unlock_key: Option<&str>) -> Result<()> {
        self.keys().save(dek, unlock_key).map_err(internal)
    }

    /// Stops the manager (daemon shutdown); state stays on disk.
    pub async fn shutdown(&self) {
        let m = self.manager().ok();
        if let Some(m) = m {
            m.stop().await;
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
