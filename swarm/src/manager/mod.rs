//! `Manager`: raft, the store, the node-to-node listener and the
//! leader-only control loops of one manager.
//!
//! Every manager holds a full copy of the store and answers reads from it;
//! its writes go to the leader (`raft::RaftProposer`). Which manager leads
//! changes with elections: [`leadership`] starts the leader-only loops
//! (allocator, orchestrators, scheduler, dispatcher, reachability) when this
//! one wins and stops them when it loses.

mod autolock;
mod compaction;
mod connector;
pub mod init;
pub mod keymanager;
mod leadership;
mod log_follow;
mod reachability;
mod roles;
mod rotation;
mod services;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::ca::tls::NodeCerts;
use crate::ca::tls::TlsState;
use crate::controlapi::cluster;
use crate::dispatcher::Local;
use crate::error::Error;
use crate::error::Result;
use crate::model::new_id;
use crate::node::InitRequest;
use crate::node::NodeState;
use crate::raft;
use crate::raft::encryption::KeyStore;
use crate::raft::encryption::Sealer;
use crate::raft::network::PeerHealth;
use crate::store::SharedState;
use crate::store::Store;
use crate::transport::Channels;

/// Commits the store's watch channel holds for slow watchers.
const WATCH_COMMITS: usize = 256;
/// How long a restarted manager waits for a leader before serving the API.
const RESUME_WAIT: Duration = Duration::from_secs(5);
/// How long a joining manager waits to receive the cluster's state.
const JOIN_SYNC: Duration = Duration::from_secs(60);

/// Raft's view of one manager, as metrics report it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RaftFacts {
    /// This manager leads.
    pub leader: bool,
    /// The current term.
    pub term: u64,
    /// The index of the last entry in the log.
    pub last_log_index: u64,
    /// The index of the last entry applied to the store.
    pub applied_index: u64,
    /// The index the last snapshot covers.
    pub snapshot_index: u64,
}

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
    /// Where the cluster's events go (`docker events` on this manager).
    pub events: crate::events::EventBus,
}

/// A running manager.
pub struct Manager {
    state: NodeState,
    dir: PathBuf,
    // The API handler and the autolock loop may both wrap the keys.
    rewrapping: std::sync::Mutex<()>,
    tls: Arc<TlsState>,
    channels: Channels,
    store: Arc<Store>,
    raft: raft::ShoalRaft,
    dek: Arc<Sealer>,
    health: Arc<PeerHealth>,
    slot: watch::Sender<Option<Arc<Local>>>,
    // The session messages this manager's agent gets from the leader.
    sessions: watch::Sender<Option<crate::dispatcher::wire::SessionMessage>>,
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

impl Manager {
    /// Creates a new swarm with this node as its only manager.
    pub async fn init(cfg: ManagerConfig, req: InitRequest) -> Result<Arc<Self>> {
        let (listen, advertise) = init::resolve_addrs(
            req.base.listen_addr.as_deref().unwrap_or(""),
            req.base.advertise_addr.as_deref().unwrap_or(""),
        )?;
        let spec = cluster::with_defaults(req.base.spec.clone().unwrap_or_default());
        cluster::validate(&spec)?;
        let listener = crate::transport::server::bind(listen).await?;
        std::fs::create_dir_all(&cfg.dir).map_err(|e| Error::internal(e.to_string()))?;
        let node_id = new_id();
        let cluster_id = new_id();
        let root = crate::ca::root::generate(20)?;
        let expiry = cluster::cert_expiry(&spec);
        let certs = crate::ca::server::self_issue(&root, &node_id, &cluster_id, expiry)?;
        let state = NodeState {
            raft_id: raft::raft_id(&node_id),
            node_id,
            listen_addr: listen.to_string(),
            advertise_addr: advertise.to_string(),
            data_path_addr: req.base.data_path_addr.clone().unwrap_or_default(),
            role: crate::ca::identity::Role::Manager,
            remotes: Vec::new(),
            cluster_id: cluster_id.clone(),
            ca_generation: 0,
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
        crate::ca::keystore::CertStore::new(&cfg.dir).save(&certs, unlock_key.as_deref())?;
        let m = Manager::start(&cfg, state.clone(), dek, &certs, listener).await?;
        raft::bootstrap(&m.raft, state.raft_id, &state.advertise_addr).await?;
        raft::wait_leader(&m.raft, state.raft_id, Duration::from_secs(30)).await?;
        let cluster_obj = init::new_cluster(&cluster_id, &req.base, spec, &root, unlock_key)?;
        let desc = init::local_description(&cfg.hostname, &cfg.engine_version, &root.cert_pem);
        let node_obj = init::first_node(&state, &req, desc);
        m.store
            .update(|tx| {
                tx.create(cluster_obj.clone())?;
                tx.create(node_obj.clone())?;
                Ok(())
            })
            .await?;
        state.save(&cfg.dir)?;
        m.start_loops(&cfg, unlock_key_of(&m)).await;
        Ok(m)
    }

    /// Starts the manager of a node that just received its manager
    /// certificate: raft (empty), the listener, then membership through the
    /// manager at `remote`, and waits for the cluster's state to arrive.
    pub async fn join(
        cfg: ManagerConfig,
        state: NodeState,
        certs: &NodeCerts,
        unlock_key: Option<&str>,
        listener: TcpListener,
        remote: &str,
    ) -> Result<Arc<Self>> {
        let dek = Arc::new(Sealer::generate());
        KeyStore::new(&cfg.dir)
            .save(&dek, unlock_key)
            .map_err(|e| Error::internal(e.to_string()))?;
        let m = Manager::start(&cfg, state.clone(), dek, certs, listener).await?;
        let joined = services::join_raft(&m.channels, remote, &state).await;
        if let Err(e) = joined {
            m.stop().await;
            return Err(e);
        }
        let synced = tokio::time::timeout(JOIN_SYNC, async {
            let mut rx = m.store.subscribe();
            loop {
                if m.store.view(|v| v.cluster().is_some()) {
                    return;
                }
                if rx.recv().await.is_err() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        })
        .await;
        if synced.is_err() {
            m.stop().await;
            return Err(Error::internal(
                "the cluster's state did not reach this manager in time",
            ));
        }
        state.save(&cfg.dir)?;
        // Its keys were saved unwrapped: the autolock loop wraps them if the
        // cluster is locked.
        m.start_loops(&cfg, None).await;
        Ok(m)
    }

    /// `swarm init --force-new-cluster` on a running manager: stops it, makes
    /// it the only raft member with all of its state, and starts it again.
    pub async fn force_new_cluster(
        cfg: ManagerConfig,
        old: Arc<Manager>,
        advertise: Option<String>,
    ) -> Result<Arc<Self>> {
        let metrics = old.raft.metrics().borrow().clone();
        let last = metrics
            .last_applied
            .ok_or_else(|| Error::internal("this manager has applied nothing to recover"))?;
        let term = metrics.current_term.max(last.leader_id.term);
        let tables = old.store.state().read(|t| t.clone());
        let mut state = old.state.clone();
        if let Some(a) = advertise {
            state.advertise_addr = a;
        }
        let dek = old.dek.clone();
        let certs = old.tls.certs();
        old.stop().await;
        raft::recovery::force_new_cluster(
            &cfg.dir.join("raft"),
            dek.clone(),
            &tables,
            last,
            term,
            state.raft_id,
            &state.advertise_addr,
        )?;
        state.save(&cfg.dir)?;
        let m = Manager::resume(cfg, state, dek, &certs).await?;
        m.wait_leader(Duration::from_secs(30)).await?;
        // The other managers left the membership with the old cluster.
        let me = m.state.node_id.clone();
        m.store
            .update(|tx| {
                for mut n in tx.list::<crate::model::Node>() {
                    if n.api.id.as_deref() != Some(me.as_str()) && n.api.manager_status.is_some() {
                        n.api.manager_status = None;
                        tx.update(n)?;
                    }
                }
                Ok(())
            })
            .await?;
        Ok(m)
    }

    /// Restarts the manager of an existing swarm from its data.
    pub async fn resume(
        cfg: ManagerConfig,
        state: NodeState,
        dek: Arc<Sealer>,
        certs: &NodeCerts,
    ) -> Result<Arc<Self>> {
        let listen = state
            .listen_addr
            .parse()
            .map_err(|_| Error::internal(format!("bad listen address {}", state.listen_addr)))?;
        let listener = crate::transport::server::bind(listen).await?;
        let m = Manager::start(&cfg, state, dek, certs, listener).await?;
        m.catch_up(RESUME_WAIT).await;
        m.start_loops(&cfg, unlock_key_of(&m)).await;
        Ok(m)
    }

    async fn start(
        cfg: &ManagerConfig,
        state: NodeState,
        dek: Arc<Sealer>,
        certs: &NodeCerts,
        listener: TcpListener,
    ) -> Result<Arc<Self>> {
        let tls = TlsState::new(certs.clone())?;
        let channels = Channels::new(tls.client_config());
        let health = Arc::new(PeerHealth::default());
        // The watch ring keeps its last commits in memory until overwritten;
        // every watcher handles falling behind with a full pass, so a short
        // ring costs little and keeps memory down under heavy writes.
        let shared = SharedState::new(WATCH_COMMITS);
        let network = raft::network::Network::new(channels.clone(), health.clone());
        let r = raft::start(
            &cfg.dir.join("raft"),
            dek.clone(),
            shared.clone(),
            state.raft_id,
            // Snapshots follow the spec's interval (`compaction`), not a
            // policy fixed at start.
            &raft::RaftSettings {
                snapshot_interval: 0,
                ..Default::default()
            },
            network,
        )
        .await?;
        let forwarder: Arc<dyn raft::Forwarder> = Arc::new(raft::GrpcForwarder(channels.clone()));
        let proposer = raft::RaftProposer::new(r.clone(), shared.clone(), Some(forwarder))
            .with_space_guard(raft::SpaceGuard::new(&cfg.dir.join("raft")));
        let store = Store::new(shared, Arc::new(proposer));
        let m = Arc::new(Manager {
            state,
            dir: cfg.dir.clone(),
            rewrapping: std::sync::Mutex::new(()),
            tls,
            channels,
            store,
            raft: r,
            dek,
            health,
            slot: watch::Sender::new(None),
            sessions: watch::Sender::new(None),
            cancel: CancellationToken::new(),
            loops: tokio::sync::Mutex::new(JoinSet::new()),
        });
        let routes = services::routes(&m);
        let server_tls = m.tls.server_config();
        m.loops.lock().await.spawn(crate::transport::server::serve(
            listener,
            server_tls,
            routes,
            m.cancel.child_token(),
        ));
        Ok(m)
    }

    /// Waits (bounded) until a leader is known and this node has applied
    /// what its log held at start, so the first reads after a restart see
    /// every write acknowledged before it.
    async fn catch_up(&self, limit: Duration) {
        let last = self.raft.metrics().borrow().last_log_index;
        let _ = self
            .raft
            .wait(Some(limit))
            .metrics(|m| m.current_leader.is_some(), "a leader")
            .await;
        if let Some(idx) = last {
            self.store.state().wait_applied(idx, limit).await;
        }
    }

    async fn start_loops(self: &Arc<Self>, cfg: &ManagerConfig, wrapped_with: Option<String>) {
        let executor = cfg.executor.clone();
        let mut set = self.loops.lock().await;
        set.spawn(crate::events::cluster::run(
            self.store.clone(),
            cfg.events.clone(),
            self.cancel.child_token(),
        ));
        set.spawn(autolock::run(
            self.clone(),
            wrapped_with,
            self.cancel.child_token(),
        ));
        set.spawn(compaction::run(self.clone(), self.cancel.child_token()));
        let (peers, saver) = (self.clone(), self.clone());
        let (desired_tx, desired) = watch::channel(self.state.ca_generation);
        set.spawn(ca_generations(
            self.clone(),
            desired_tx,
            self.cancel.child_token(),
        ));
        set.spawn(crate::ca::renewer::run(
            self.tls.clone(),
            self.state.ca_generation,
            desired,
            move || {
                let mut addrs = vec![peers.state.advertise_addr.clone()];
                addrs.extend(peers.peer_addrs());
                addrs
            },
            move |certs, generation| {
                crate::ca::keystore::CertStore::new(&saver.dir)
                    .save(certs, unlock_key_of(&saver).as_deref())?;
                let mut s = saver.state.clone();
                s.ca_generation = generation;
                s.save(&saver.dir)
            },
            self.cancel.child_token(),
        ));
        set.spawn(leadership::supervise(
            self.clone(),
            self.cancel.child_token(),
        ));
        if let Some(executor) = executor {
            let connector = Arc::new(connector::ManagerConnector::new(self));
            set.spawn(crate::agent::run(
                self.state.node_id.clone(),
                self.state.node_addrs(),
                connector,
                executor,
                self.cancel.child_token(),
            ));
        }
    }

    /// The store: reads are local; writes go to the leader.
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

    /// Wraps this manager's raft data key and node key with `unlock_key`
    /// (unwrapped without one); durable on return.
    pub fn rewrap(&self, unlock_key: Option<&str>) -> Result<()> {
        let _one_at_a_time = self.rewrapping.lock().unwrap_or_else(|e| e.into_inner());
        KeyStore::new(&self.dir)
            .save(&self.dek, unlock_key)
            .map_err(|e| Error::internal(e.to_string()))?;
        crate::ca::keystore::CertStore::new(&self.dir).save(&self.tls.certs(), unlock_key)
    }

    /// This node's TLS identity.
    pub fn tls(&self) -> &Arc<TlsState> {
        &self.tls
    }

    /// Whether some manager leads with a working quorum, as this one sees
    /// it; without one the swarm answers no calls (swarmkit's behaviour).
    pub fn has_leader(&self) -> bool {
        let m = self.raft.metrics().borrow().clone();
        match m.current_leader {
            None => false,
            Some(l) if l == self.state.raft_id => {
                let voters = m.membership_config.membership().voter_ids().count();
                voters <= 1
                    || m.millis_since_quorum_ack
                        .is_some_and(|ms| ms <= 2 * raft::ELECTION_MAX_MS)
            }
            Some(_) => true,
        }
    }

    /// What raft reports about this manager (for metrics).
    pub fn raft_facts(&self) -> RaftFacts {
        let m = self.raft.metrics().borrow().clone();
        RaftFacts {
            leader: m.current_leader == Some(self.state.raft_id),
            term: m.current_term,
            last_log_index: m.last_log_index.unwrap_or(0),
            applied_index: m.last_applied.map_or(0, |l| l.index),
            snapshot_index: m.snapshot.map_or(0, |l| l.index),
        }
    }

    /// The addresses of the other managers, as raft knows them.
    pub fn peer_addrs(&self) -> Vec<String> {
        raft::membership::members(&self.raft)
            .into_iter()
            .filter(|(id, _)| *id != self.state.raft_id)
            .map(|(_, a)| a)
            .collect()
    }

    /// Resolves once this manager is no longer a raft member (the leader
    /// removed it after a demotion), and never while it is one. A removed
    /// member hears nothing more from raft, so the leader's word comes
    /// through the agent's session: the spec asks for a worker and the
    /// managers no longer list this node.
    pub async fn demoted(&self) {
        let me = self.state.raft_id;
        let removed = async {
            let r = self
                .raft
                .wait(None)
                .metrics(
                    |m| {
                        let c = &m.membership_config;
                        c.log_id().is_some() && !c.nodes().any(|(id, _)| *id == me)
                    },
                    "removed from raft",
                )
                .await;
            if r.is_err() {
                // Raft stopped: this manager is shutting down, not demoted.
                std::future::pending::<()>().await;
            }
        };
        let node_id = self.state.node_id.clone();
        let mut sessions = self.sessions.subscribe();
        let told = async move {
            let stopped = sessions
                .wait_for(|m| {
                    m.as_ref().is_some_and(|m| {
                        m.desired_role == Some(crate::model::api::NodeSpecRoleEnum::WORKER)
                            && !m.managers.is_empty()
                            && !m.managers.iter().any(|p| p.node_id == node_id)
                    })
                })
                .await
                .is_err();
            if stopped {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            _ = removed => {}
            _ = told => {}
        }
    }

    /// Subscribes to the logs of the selected tasks on every node, through
    /// the leader's broker (this manager's own when it leads); a following
    /// subscription moves to the next leader when leadership moves.
    pub async fn subscribe_logs(
        &self,
        selector: crate::exec::LogSelector,
        options: crate::exec::LogOptions,
    ) -> Result<tokio::sync::mpsc::Receiver<crate::exec::LogMessage>> {
        let source = log_follow::LogSource {
            slot: self.slot.subscribe(),
            raft: self.raft.clone(),
            channels: self.channels.clone(),
        };
        source.follow(selector, options).await
    }

    /// Waits until this manager leads.
    pub async fn wait_leader(&self, timeout: Duration) -> Result<()> {
        raft::wait_leader(&self.raft, self.state.raft_id, timeout).await
    }

    /// Stops the control loops, the listener and raft. The data stays on disk.
    pub async fn stop(&self) {
        self.cancel.cancel();
        let mut set = self.loops.lock().await;
        while set.join_next().await.is_some() {}
        let _ = self.raft.shutdown().await;
    }
}

/// The unlock key the cluster asks for now (what a manager's files are
/// wrapped with after init or an unlock).
fn unlock_key_of(m: &Manager) -> Option<String> {
    m.store.view(|v| v.cluster().and_then(|c| c.unlock_key))
}

/// Feeds `tx` the cluster's CA generation as this manager's store has it.
async fn ca_generations(m: Arc<Manager>, tx: watch::Sender<u64>, cancel: CancellationToken) {
    let (first, mut rx) = m
        .store
        .view_and_watch(|v| v.cluster().map(|c| c.ca_generation));
    if let Some(g) = first {
        tx.send_if_modified(|cur| std::mem::replace(cur, g) != g);
    }
    loop {
        match crate::store::Watched::next(&mut rx, &cancel).await {
            None => return,
            Some(crate::store::Watched::Commit(c))
                if !c
                    .events
                    .iter()
                    .any(|e| matches!(e.object, Some(crate::model::Object::Cluster(_)) | None)) => {
            }
            Some(_) => {
                if let Some(g) = m.store.view(|v| v.cluster().map(|c| c.ca_generation)) {
                    tx.send_if_modified(|cur| std::mem::replace(cur, g) != g);
                }
            }
        }
    }
}
