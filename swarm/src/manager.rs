//! `Manager`: raft, the store and the leader-only control loops of one manager.

use std::net::IpAddr;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::ca;
use crate::controlapi::cluster;
use crate::error::Error;
use crate::error::Result;
use crate::host;
use crate::model::api;
use crate::model::new_id;
use crate::model::Cluster;
use crate::model::Node;
use crate::node::InitRequest;
use crate::node::NodeState;
use crate::raft;
use crate::raft::encryption::write_durable;
use crate::raft::encryption::KeyStore;
use crate::raft::encryption::Sealer;
use crate::store::SharedState;
use crate::store::Store;

/// Commits the store's watch channel holds for slow watchers.
const WATCH_COMMITS: usize = 256;

/// Where and as what a manager runs.
#[derive(Clone)]
pub struct ManagerConfig {
    /// `<data-root>/swarm`.
    pub dir: PathBuf,
    /// Reported in the node description.
    pub engine_version: String,
    /// Reported in the node description.
    pub hostname: String,
    /// Runs this node's tasks; without one, tasks stop at `assigned`.
    pub executor: Option<Arc<dyn crate::exec::Executor>>,
}

/// A running manager.
pub struct Manager {
    state: NodeState,
    store: Arc<Store>,
    raft: raft::ShoalRaft,
    dek: Arc<Sealer>,
    cancel: CancellationToken,
    loops: tokio::sync::Mutex<JoinSet<()>>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("node_id", &self.state.node_id)
            .finish_non_exhaustive()
    }
}

const DEFAULT_PORT: u16 = 2377;

/// How often this node's own agent heartbeats (dockerd's default period).
const AGENT_HEARTBEAT: Duration = Duration::from_secs(5);

fn invalid_addr(what: &str, addr: &str) -> Error {
    Error::new(
        crate::ErrorKind::InvalidArgument,
        format!("invalid {what} address: {addr}"),
    )
}

/// Resolves `--listen-addr` and `--advertise-addr` as dockerd does.
fn resolve_addrs(req: &api::SwarmInitRequest) -> Result<(SocketAddr, SocketAddr)> {
    let listen_raw = req.listen_addr.as_deref().unwrap_or("");
    let listen = parse_addr(listen_raw, "0.0.0.0", DEFAULT_PORT)
        .ok_or_else(|| invalid_addr("listen", listen_raw))?;
    let adv_raw = req.advertise_addr.as_deref().unwrap_or("");
    let advertise = if adv_raw.is_empty() {
        let ip = if listen.ip().is_unspecified() {
            host::default_advertise_addr().ok_or_else(|| {
                Error::new(
                    crate::ErrorKind::InvalidArgument,
                    "could not find the system's IP address - specify one with --advertise-addr",
                )
            })?
        } else {
            listen.ip()
        };
        SocketAddr::new(ip, listen.port())
    } else {
        parse_addr(adv_raw, "", listen.port()).ok_or_else(|| invalid_addr("advertise", adv_raw))?
    };
    Ok((listen, advertise))
}

/// Parses `ip`, `ip:port`, `:port` or an interface name.
fn parse_addr(raw: &str, default_ip: &str, default_port: u16) -> Option<SocketAddr> {
    if raw.is_empty() {
        return Some(SocketAddr::new(default_ip.parse().ok()?, default_port));
    }
    if let Ok(sa) = raw.parse::<SocketAddr>() {
        return Some(sa);
    }
    if let Ok(ip) = raw.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, default_port));
    }
    let (host_part, port) = match raw.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (raw, default_port),
    };
    let ip = if host_part.is_empty() {
        default_ip.parse().ok()?
    } else {
        host::interface_ipv4(host_part)?
    };
    Some(SocketAddr::new(ip, port))
}

impl Manager {
    /// Creates a new swarm with this node as its only manager.
    pub async fn init(cfg: ManagerConfig, req: InitRequest) -> Result<Arc<Self>> {
        let (listen, advertise) = resolve_addrs(&req.base)?;
        let spec = cluster::with_defaults(req.base.spec.clone().unwrap_or_default());
        cluster::validate(&spec)?;
        std::fs::create_dir_all(&cfg.dir).map_err(|e| Error::internal(e.to_string()))?;
        let node_id = new_id();
        let state = NodeState {
            raft_id: raft::raft_id(&node_id),
            node_id,
            listen_addr: listen.to_string(),
            advertise_addr: advertise.to_string(),
            data_path_addr: req.base.data_path_addr.clone().unwrap_or_default(),
        };
        let dek = Arc::new(Sealer::generate());
        let autolock = spec
            .encryption_config
            .as_ref()
            .and_then(|e| e.auto_lock_managers)
            .unwrap_or(false);
        let unlock_key = autolock.then(raft::encryption::new_unlock_key);
        KeyStore::new(&cfg.dir)
            .save(&dek, unlock_key.as_deref())
            .map_err(|e| Error::internal(e.to_string()))?;
        let m = Manager::start(&cfg, state.clone(), dek, true).await?;
        let root = ca::root::generate(20)?;
        let cluster_obj = new_cluster(&req.base, spec, &root, unlock_key)?;
        let node_obj = self_node(&cfg, &state, &req, &root);
        m.store
            .update(|tx| {
                tx.create(cluster_obj)?;
                tx.create(node_obj)?;
                Ok(())
            })
            .await?;
        let bytes =
            serde_json::to_vec_pretty(&state).map_err(|e| Error::internal(e.to_string()))?;
        write_durable(&cfg.dir.join("state.json"), &bytes)
            .map_err(|e| Error::internal(e.to_string()))?;
        m.start_loops(cfg.executor.clone()).await;
        Ok(m)
    }

    /// Restarts the manager of an existing swarm from its data.
    pub async fn resume(
        cfg: ManagerConfig,
        state: NodeState,
        dek: Arc<Sealer>,
    ) -> Result<Arc<Self>> {
        let m = Manager::start(&cfg, state, dek, false).await?;
        m.start_loops(cfg.executor.clone()).await;
        Ok(m)
    }

    async fn start(
        cfg: &ManagerConfig,
        state: NodeState,
        dek: Arc<Sealer>,
        bootstrap: bool,
    ) -> Result<Arc<Self>> {
        // The watch ring keeps its last commits in memory until overwritten;
        // every watcher handles falling behind with a full pass, so a short
        // ring costs little and keeps memory down under heavy writes.
        let shared = SharedState::new(WATCH_COMMITS);
        let r = raft::start(
            &cfg.dir.join("raft"),
            dek.clone(),
            shared.clone(),
            state.raft_id,
            &raft::RaftSettings::default(),
        )
        .await?;
        if bootstrap {
            raft::bootstrap(&r, state.raft_id, &state.advertise_addr).await?;
        }
        raft::wait_leader(&r, state.raft_id, Duration::from_secs(30)).await?;
        let store = Store::new(shared, Arc::new(raft::RaftProposer::new(r.clone())));
        // Committed entries after the snapshot are applied once leadership is
        // confirmed; wait for that so the first read sees every acknowledged write.
        let committed = r.metrics().borrow().last_log_index;
        if let Some(idx) = committed {
            let _ = r
                .wait(Some(Duration::from_secs(30)))
                .applied_index_at_least(Some(idx), "replay")
                .await;
        }
        Ok(Arc::new(Manager {
            state,
            store,
            raft: r,
            dek,
            cancel: CancellationToken::new(),
            loops: tokio::sync::Mutex::new(JoinSet::new()),
        }))
    }

    async fn start_loops(&self, executor: Option<Arc<dyn crate::exec::Executor>>) {
        let mut set = self.loops.lock().await;
        crate::leader::spawn(&self.store, &self.state, &mut set, self.cancel.clone());
        if let Some(executor) = executor {
            // This node's own agent, served by the in-process dispatcher.
            let dispatcher = Arc::new(crate::dispatcher::Local::new(
                self.store.clone(),
                AGENT_HEARTBEAT,
            ));
            set.spawn(crate::agent::run(
                self.state.node_id.clone(),
                dispatcher,
                executor,
                self.cancel.child_token(),
            ));
        }
    }

    /// The store (writable: this manager leads).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// This node's ID.
    pub fn node_id(&self) -> &str {
        &self.state.node_id
    }

    /// This node's persistent membership facts.
    pub fn node_state(&self) -> &NodeState {
        &self.state
    }

    /// The data key (to re-wrap when autolock changes).
    pub fn dek(&self) -> &Arc<Sealer> {
        &self.dek
    }

    /// Waits until this manager leads.
    pub async fn wait_leader(&self, timeout: Duration) -> Result<()> {
        raft::wait_leader(&self.raft, self.state.raft_id, timeout).await
    }

    /// Stops the control loops and raft. The data stays on disk.
    pub async fn stop(&self) {
        self.cancel.cancel();
        let mut set = self.loops.lock().await;
        while set.join_next().await.is_some() {}
        let _ = self.raft.shutdown().await;
    }
}

fn new_cluster(
    req: &api::SwarmInitRequest,
    spec: api::SwarmSpec,
    root: &ca::root::RootCa,
    unlock_key: Option<String>,
) -> Result<Cluster> {
    let (subject, key) = ca::root::tls_info(root);
    // Unset means the allocator's default (10.0.0.0/8); dockerd reports null then.
    let pool = req.default_addr_pool.clone().filter(|p| !p.is_empty());
    let subnet_size = match req.subnet_size {
        Some(s) if s > 0 => s,
        _ => 24,
    };
    Ok(Cluster {
        api: api::Swarm {
            id: Some(new_id()),
            spec: Some(spec),
            tls_info: Some(api::TlsInfo {
                trust_root: Some(root.cert_pem.clone()),
                cert_issuer_subject: Some(subject),
                cert_issuer_public_key: Some(key),
            }),
            root_rotation_in_progress: Some(false),
            data_path_port: Some(match req.data_path_port {
                Some(p) if p > 0 => p,
                _ => 4789,
            }),
            default_addr_pool: pool,
            subnet_size: Some(subnet_size),
            join_tokens: Some(api::JoinTokens {
                worker: Some(ca::tokens::generate(&root.cert_der)),
                manager: Some(ca::tokens::generate(&root.cert_der)),
            }),
            ..Default::default()
        },
        root_ca_cert: root.cert_pem.clone(),
        root_ca_key: root.key_pem.clone(),
        unlock_key,
        network_bootstrap_keys: Vec::new(),
    })
}

fn self_node(
    cfg: &ManagerConfig,
    state: &NodeState,
    req: &InitRequest,
    root: &ca::root::RootCa,
) -> Node {
    let (subject, key) = ca::root::tls_info(root);
    let availability = req
        .availability
        .filter(|a| *a != api::NodeSpecAvailabilityEnum::EMPTY)
        .unwrap_or(api::NodeSpecAvailabilityEnum::ACTIVE);
    let ip = state
        .advertise_addr
        .parse::<SocketAddr>()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let plugin = |t: &str, n: &str| api::EngineDescriptionPlugins {
        typ: Some(t.into()),
        name: Some(n.into()),
    };
    Node {
        api: api::Node {
            id: Some(state.node_id.clone()),
            spec: Some(api::NodeSpec {
                labels: Some(Default::default()),
                role: Some(api::NodeSpecRoleEnum::MANAGER),
                availability: Some(availability),
                ..Default::default()
            }),
            description: Some(api::NodeDescription {
                hostname: Some(cfg.hostname.clone()),
                platform: Some(api::Platform {
                    architecture: Some(std::env::consts::ARCH.into()),
                    os: Some(std::env::consts::OS.into()),
                }),
                resources: Some(api::ResourceObject {
                    nano_cpus: Some(host::cpus() * 1_000_000_000),
                    memory_bytes: Some(host::memory_bytes()),
                    ..Default::default()
                }),
                engine: Some(api::EngineDescription {
                    engine_version: Some(cfg.engine_version.clone()),
                    plugins: Some(vec![
                        plugin("Log", "json-file"),
                        plugin("Network", "bridge"),
                        plugin("Network", "host"),
                        plugin("Network", "null"),
                        plugin("Network", "overlay"),
                        plugin("Volume", "local"),
                    ]),
                    ..Default::default()
                }),
                tls_info: Some(api::TlsInfo {
                    trust_root: Some(root.cert_pem.clone()),
                    cert_issuer_subject: Some(subject),
                    cert_issuer_public_key: Some(key),
                }),
            }),
            status: Some(api::NodeStatus {
                state: Some(api::NodeState::READY),
                addr: Some(ip),
                ..Default::default()
            }),
            manager_status: Some(api::ManagerStatus {
                leader: Some(true),
                reachability: Some(api::Reachability::REACHABLE),
                addr: Some(state.advertise_addr.clone()),
            }),
            ..Default::default()
        },
        role: Some(api::NodeSpecRoleEnum::MANAGER),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_resolve_like_dockerd() {
        let req = api::SwarmInitRequest {
            advertise_addr: Some("127.0.0.1".into()),
            listen_addr: Some("127.0.0.1:2380".into()),
            ..Default::default()
        };
        let (l, a) = resolve_addrs(&req).unwrap();
        assert_eq!(l.to_string(), "127.0.0.1:2380");
        assert_eq!(a.to_string(), "127.0.0.1:2380");
        let req = api::SwarmInitRequest {
            advertise_addr: Some("127.0.0.1:4000".into()),
            ..Default::default()
        };
        let (l, a) = resolve_addrs(&req).unwrap();
        assert_eq!(l.to_string(), "0.0.0.0:2377");
        assert_eq!(a.to_string(), "127.0.0.1:4000");
    }
}
