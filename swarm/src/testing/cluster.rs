//! [`TestCluster`]: N managers in one process, each a real raft node (redb
//! log on disk, snapshots, the store as state machine) with its own
//! [`Store`], talking through one fault-injecting [`Router`].

use std::collections::BTreeMap;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::RaftMetrics;
use openraft::ServerState;
use tokio::time::Instant;

use super::forwarder::SimForwarder;
use super::router::addr;
use super::router::NodeNetwork;
use super::router::Router;
use super::tempdir::TempRoot;
use crate::error::Error;
use crate::error::Result;
use crate::raft;
use crate::raft::encryption::Sealer;
use crate::raft::membership;
use crate::raft::membership::MembershipError;
use crate::raft::NodeId;
use crate::raft::RaftProposer;
use crate::raft::RaftSettings;
use crate::raft::ShoalRaft;
use crate::store::SharedState;
use crate::store::Store;

/// How long a new member may take to catch up before `add_voter` fails.
const CATCH_UP: Duration = Duration::from_secs(30);
/// How long the harness itself waits for a leader or for a restarted node's
/// files to be released before it gives up.
const HARNESS_WAIT: Duration = Duration::from_secs(30);
/// The longest a wait goes without looking at the cluster again, for
/// conditions that no metrics change announces.
const RECHECK: Duration = Duration::from_millis(50);
/// Commits a store's watch channel holds for a slow subscriber.
const WATCH_CAPACITY: usize = 4096;

type Metrics = RaftMetrics<NodeId, openraft::BasicNode>;

#[derive(Clone)]
struct Running {
    raft: ShoalRaft,
    store: Arc<Store>,
}

/// One manager of a [`TestCluster`]: its data directory and key, and its
/// raft and store while it runs.
pub struct TestNode {
    id: NodeId,
    dir: PathBuf,
    sealer: Arc<Sealer>,
    running: Option<Running>,
}

impl std::fmt::Debug for TestNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestNode")
            .field("id", &self.id)
            .field("running", &self.running.is_some())
            .finish_non_exhaustive()
    }
}

impl TestNode {
    /// Its raft node ID (1, 2, ... in the order the cluster added it).
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Its raft data directory (log, snapshot), kept across restarts.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key its log and snapshots are sealed with.
    pub fn sealer(&self) -> &Arc<Sealer> {
        &self.sealer
    }

    /// Whether it runs (not stopped).
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    fn running(&self) -> &Running {
        match &self.running {
            Some(r) => r,
            None => panic!("node {} is stopped", self.id),
        }
    }

    /// Its store: writes through it go to raft (forwarded when it does not
    /// lead), reads see what it applied.
    ///
    /// # Panics
    /// When the node is stopped; a test that stops nodes checks first.
    pub fn store(&self) -> Arc<Store> {
        self.running().store.clone()
    }

    /// Its raft handle.
    ///
    /// # Panics
    /// When the node is stopped.
    pub fn raft(&self) -> ShoalRaft {
        self.running().raft.clone()
    }

    /// Its latest raft metrics.
    ///
    /// # Panics
    /// When the node is stopped.
    pub fn metrics(&self) -> Metrics {
        self.running().raft.metrics().borrow().clone()
    }
}

/// An in-process cluster of managers for deterministic distributed tests;
/// see the [module docs](super) for how to write one.
pub struct TestCluster {
    router: Router,
    settings: RaftSettings,
    nodes: BTreeMap<NodeId, TestNode>,
    // Declared last: dropped after the nodes that keep files open in it.
    root: TempRoot,
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCluster")
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

fn timeout_error(what: &str, timeout: Duration) -> Error {
    Error::internal(format!("timed out after {timeout:?} waiting for {what}"))
}

fn membership_error(e: MembershipError) -> Error {
    match e {
        MembershipError::NotLeader(addr) => Error::internal(format!(
            "membership change off the leader (leader: {addr:?})"
        )),
        MembershipError::Failed(e) => e,
    }
}

impl TestCluster {
    /// `n` managers with the default raft settings: node 1 bootstraps the
    /// cluster, the others join one by one as voters. Returns once a leader
    /// is established and every node applied the membership.
    pub async fn new(n: usize) -> Result<TestCluster> {
        TestCluster::with_settings(n, RaftSettings::default()).await
    }

    /// `n` managers with `settings` (say a small snapshot interval).
    pub async fn with_settings(n: usize, settings: RaftSettings) -> Result<TestCluster> {
        let root = TempRoot::new("shoal-sim").map_err(|e| Error::internal(e.to_string()))?;
        let mut c = TestCluster {
            router: Router::default(),
            settings,
            nodes: BTreeMap::new(),
            root,
        };
        if n == 0 {
            return Ok(c);
        }
        let first = c.start_node().await?;
        let r = c.node(first).raft();
        raft::bootstrap(&r, first, &addr(first)).await?;
        raft::wait_leader(&r, first, HARNESS_WAIT).await?;
        for _ in 1..n {
            c.add_node().await?;
        }
        c.wait_leader(HARNESS_WAIT).await?;
        c.wait_synced(HARNESS_WAIT).await?;
        Ok(c)
    }

    /// The network between the nodes, for its faults.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The IDs of every node, running or stopped, in order.
    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// A node other than `leader`.
    pub fn a_follower(&self, leader: NodeId) -> NodeId {
        self.ids()
            .into_iter()
            .find(|id| *id != leader)
            .expect("a cluster of more than one node")
    }

    /// The IDs of the running nodes.
    pub fn running_ids(&self) -> Vec<NodeId> {
        self.nodes
            .values()
            .filter(|n| n.is_running())
            .map(|n| n.id)
            .collect()
    }

    /// Node `id`.
    ///
    /// # Panics
    /// When the cluster has no such node.
    pub fn node(&self, id: NodeId) -> &TestNode {
        match self.nodes.get(&id) {
            Some(n) => n,
            None => panic!("no node {id} in this cluster"),
        }
    }

    /// Starts (or restarts) node `id` on its directory and makes it reachable.
    async fn boot(&mut self, id: NodeId) -> Result<()> {
        let (dir, sealer) = {
            let n = self.node(id);
            (n.dir.clone(), n.sealer.clone())
        };
        let state = SharedState::new(WATCH_CAPACITY);
        let raft = self.start_raft(id, &dir, &sealer, &state).await?;
        let forwarder = Arc::new(SimForwarder::new(self.router.clone(), id));
        let proposer = RaftProposer::new(raft.clone(), state.clone(), Some(forwarder));
        let store = Store::new(state, Arc::new(proposer));
        self.router.register(id, raft.clone(), store.clone());
        if let Some(n) = self.nodes.get_mut(&id) {
            n.running = Some(Running { raft, store });
        }
        Ok(())
    }

    /// `raft::start`, again while the previous run of the node still holds
    /// its log open: openraft's tasks release it only after `shutdown`
    /// returned, when they next run.
    async fn start_raft(
        &self,
        id: NodeId,
        dir: &Path,
        sealer: &Arc<Sealer>,
        state: &Arc<SharedState>,
    ) -> Result<ShoalRaft> {
        let deadline = Instant::now() + HARNESS_WAIT;
        loop {
            let network = NodeNetwork::new(self.router.clone(), id);
            match raft::start(
                dir,
                sealer.clone(),
                state.clone(),
                id,
                &self.settings,
                network,
            )
            .await
            {
                Ok(r) => return Ok(r),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    /// Starts a new node outside the membership (it knows no cluster yet and
    /// waits to be contacted); returns its ID. [`TestCluster::join_node`]
    /// makes it a voter. Between the two a test can subscribe to its store.
    pub async fn start_node(&mut self) -> Result<NodeId> {
        let id = self.nodes.keys().next_back().map_or(1, |last| last + 1);
        let dir = self.root.path().join(format!("node-{id}"));
        self.nodes.insert(
            id,
            TestNode {
                id,
                dir,
                sealer: Arc::new(Sealer::generate()),
                running: None,
            },
        );
        self.boot(id).await?;
        Ok(id)
    }

    /// Has the leader add started node `id` as a voter, as a manager join
    /// does (learner, caught up by log or snapshot, then voter).
    pub async fn join_node(&self, id: NodeId) -> Result<()> {
        let leader = self.wait_leader(HARNESS_WAIT).await?;
        let r = self.node(leader).raft();
        membership::add_voter(&r, id, &addr(id), CATCH_UP)
            .await
            .map_err(membership_error)?;
        Ok(())
    }

    /// Starts a new manager and joins it as a voter; returns its ID.
    pub async fn add_node(&mut self) -> Result<NodeId> {
        let id = self.start_node().await?;
        self.join_node(id).await?;
        Ok(id)
    }

    /// Stops node `id` as a crash would look to its peers (they can no
    /// longer reach it); its directory stays for [`TestCluster::restart`].
    /// Its `Store` handles held elsewhere fail their writes from now on.
    pub async fn stop(&mut self, id: NodeId) -> Result<()> {
        self.router.unregister(id);
        let running = self.nodes.get_mut(&id).and_then(|n| n.running.take());
        if let Some(r) = running {
            r.raft
                .shutdown()
                .await
                .map_err(|e| Error::internal(format!("raft shutdown: {e}")))?;
        }
        Ok(())
    }

    /// Starts stopped node `id` again on the same directory: it restores its
    /// snapshot and re-applies its committed log, then rejoins the cluster.
    pub async fn restart(&mut self, id: NodeId) -> Result<()> {
        if self.node(id).is_running() {
            return Ok(());
        }
        self.boot(id).await
    }

    /// Stops every node.
    pub async fn stop_all(&mut self) -> Result<()> {
        for id in self.ids() {
            self.stop(id).await?;
        }
        Ok(())
    }

    /// Restarts every stopped node.
    pub async fn restart_all(&mut self) -> Result<()> {
        for id in self.ids() {
            self.restart(id).await?;
        }
        Ok(())
    }

    /// Stops every node and removes the data directories.
    pub async fn shutdown(mut self) -> Result<()> {
        self.stop_all().await
    }

    /// Cuts every link of node `id` in both directions (raft RPCs and
    /// forwarded writes) until [`TestCluster::rejoin`] or [`TestCluster::heal`].
    pub fn isolate(&self, id: NodeId) {
        self.router.faults().isolate(id);
    }

    /// Ends the isolation of node `id`.
    pub fn rejoin(&self, id: NodeId) {
        self.router.faults().rejoin(id);
    }

    /// Splits the cluster into groups that only talk within themselves.
    pub fn partition(&self, groups: &[&[NodeId]]) {
        self.router.faults().partition(groups);
    }

    /// Ends every isolation and partition.
    pub fn heal(&self) {
        self.router.faults().heal();
    }

    fn metrics_of(&self, id: NodeId) -> Option<Metrics> {
        let n = self.nodes.get(&id)?;
        n.running
            .as_ref()
            .map(|r| r.raft.metrics().borrow().clone())
    }

    /// The leader a client can write through right now: a running node that
    /// leads, whose current term a majority of its voters (running and
    /// reachable from it) follow. An isolated old leader that still calls
    /// itself leader does not count.
    pub fn leader(&self) -> Option<NodeId> {
        let mut best: Option<(u64, NodeId)> = None;
        for id in self.running_ids() {
            let Some(m) = self.metrics_of(id) else {
                continue;
            };
            if m.state != ServerState::Leader || m.current_leader != Some(id) {
                continue;
            }
            let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
            let following = voters
                .iter()
                .filter(|v| {
                    **v == id
                        || (self.router.faults().connected(id, **v)
                            && self.metrics_of(**v).is_some_and(|f| {
                                f.current_leader == Some(id) && f.current_term == m.current_term
                            }))
                })
                .count();
            if following * 2 > voters.len() && best.is_none_or(|(t, _)| m.current_term > t) {
                best = Some((m.current_term, id));
            }
        }
        best.map(|(_, id)| id)
    }

    /// Waits (at most `timeout`) until `check` returns `Some`, looking again
    /// whenever a running node's raft metrics change (every applied entry,
    /// election and heartbeat round changes them) and at least every 50 ms.
    /// Fails with a message naming `what` when the time is up.
    pub async fn wait_for<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&TestCluster) -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            // Subscribe before looking, so a change in between is not missed.
            // `metrics()` clones openraft's receiver, which has not seen the
            // latest value: mark it seen, or `changed` is ready at once.
            let mut watches: Vec<_> = self
                .nodes
                .values()
                .filter_map(|n| n.running.as_ref().map(|r| r.raft.metrics()))
                .collect();
            for w in &mut watches {
                w.borrow_and_update();
            }
            if let Some(t) = check(self) {
                return Ok(t);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(timeout_error(what, timeout));
            }
            let wake = (now + RECHECK).min(deadline);
            if watches.is_empty() {
                tokio::time::sleep_until(wake).await;
                continue;
            }
            let any_change =
                futures::future::select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
            tokio::select! {
                (changed, _, _) = any_change => {
                    if changed.is_err() {
                        // A raft that stopped by itself: its watch stays
                        // closed, so look again on the clock instead.
                        tokio::time::sleep_until(wake).await;
                    }
                }
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Waits until a leader is established ([`TestCluster::leader`]).
    pub async fn wait_leader(&self, timeout: Duration) -> Result<NodeId> {
        self.wait_for(timeout, "an established leader", |c| c.leader())
            .await
    }

    /// Waits until a leader other than `old` is established.
    pub async fn wait_new_leader(&self, old: NodeId, timeout: Duration) -> Result<NodeId> {
        self.wait_for(timeout, "a new leader", |c| {
            c.leader().filter(|l| *l != old)
        })
        .await
    }

    /// Waits until the leader applied its whole log and every running node
    /// it can reach applied as much; returns that log index. Entries the
    /// leader appended but cannot commit (no quorum) keep this waiting.
    pub async fn wait_synced(&self, timeout: Duration) -> Result<u64> {
        self.wait_for(timeout, "every reachable node in sync", |c| {
            let leader = c.leader()?;
            let m = c.metrics_of(leader)?;
            let last = m.last_log_index?;
            if m.last_applied.map(|l| l.index) != Some(last) {
                return None;
            }
            let synced = c.running_ids().into_iter().all(|id| {
                !c.router.faults().connected(leader, id)
                    || c.metrics_of(id)
                        .is_some_and(|f| f.last_applied.map(|l| l.index) == Some(last))
            });
            synced.then_some(last)
        })
        .await
    }

    /// Waits until node `id` has applied the entry at `index`.
    pub async fn wait_applied(&self, id: NodeId, index: u64, timeout: Duration) -> Result<()> {
        self.wait_for(timeout, &format!("node {id} to apply {index}"), |c| {
            c.metrics_of(id)?
                .last_applied
                .filter(|l| l.index >= index)
                .map(|_| ())
        })
        .await
    }
}
