//! The in-process raft network: every node's RPCs are calls on the target
//! node's [`ShoalRaft`] handle, through the [`Faults`] the test sets.
//!
//! Each call is two legs, the request and the reply, and each leg is judged
//! on its own: a link cut while a call is in flight loses the reply after
//! the callee acted on the request, as a real network can. Errors are the
//! ones the gRPC network (`raft::network`) gives openraft: a cut link is
//! `Unreachable` (openraft backs off), a lost message a `NetworkError`
//! (retried at the next heartbeat), a call past its deadline `Unreachable`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::MutexGuard;

use openraft::error::InstallSnapshotError;
use openraft::error::NetworkError;
use openraft::error::RPCError;
use openraft::error::RaftError;
use openraft::error::RemoteError;
use openraft::error::Unreachable;
use openraft::network::RPCOption;
use openraft::network::RaftNetwork;
use openraft::network::RaftNetworkFactory;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::InstallSnapshotRequest;
use openraft::raft::InstallSnapshotResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use openraft::BasicNode;

use super::faults::Faults;
use super::faults::Verdict;
use crate::raft::NodeId;
use crate::raft::ShoalRaft;
use crate::raft::TypeConfig;
use crate::store::Store;

/// Why a leg of a call did not get through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    /// The link is cut, or the peer is not running.
    Unreachable,
    /// The message was lost.
    Lost,
}

/// The running parts of one node that its peers call.
#[derive(Clone)]
struct Endpoint {
    raft: ShoalRaft,
    store: Arc<Store>,
}

#[derive(Default)]
struct Inner {
    nodes: Mutex<BTreeMap<NodeId, Endpoint>>,
    faults: Mutex<Faults>,
}

/// Connects the nodes of one test cluster and injects faults between them.
/// Cloning gives another handle on the same network.
#[derive(Clone, Default)]
pub struct Router {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router").finish_non_exhaustive()
    }
}

/// The address node `id` advertises (its raft `BasicNode` address): the
/// router resolves it back with [`Router::node_of`].
pub fn addr(id: NodeId) -> String {
    format!("sim-{id}")
}

impl Router {
    fn nodes(&self) -> MutexGuard<'_, BTreeMap<NodeId, Endpoint>> {
        self.inner.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The fault settings, to change them. Changes apply to the next leg of
    /// every call, including calls already in flight.
    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        self.inner.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes node `id` reachable: its peers' calls now reach `raft` and
    /// forwarded writes reach `store`. Replaces an earlier registration.
    pub fn register(&self, id: NodeId, raft: ShoalRaft, store: Arc<Store>) {
        self.nodes().insert(id, Endpoint { raft, store });
    }

    /// Makes node `id` unreachable (it stopped); calls to it fail as
    /// `Unreachable` from now on.
    pub fn unregister(&self, id: NodeId) {
        self.nodes().remove(&id);
    }

    /// The node that advertises `addr`, if it is a node of this router's form.
    pub fn node_of(addr: &str) -> Option<NodeId> {
        addr.strip_prefix("sim-")?.parse().ok()
    }

    /// The store of running node `id`, for forwarded writes.
    pub fn store(&self, id: NodeId) -> Option<Arc<Store>> {
        self.nodes().get(&id).map(|e| e.store.clone())
    }

    fn raft(&self, id: NodeId) -> Option<ShoalRaft> {
        self.nodes().get(&id).map(|e| e.raft.clone())
    }

    /// Carries one leg of a call `caller` makes to `callee`, from `src` to
    /// `dst`: waits out its latency, or says why it did not arrive. The
    /// verdict is taken when the leg starts; a leg already under way arrives.
    pub async fn leg(
        &self,
        caller: NodeId,
        callee: NodeId,
        src: NodeId,
        dst: NodeId,
    ) -> Result<(), Blocked> {
        let verdict = self.faults().leg(caller, callee, src, dst);
        match verdict {
            Verdict::Unreachable => Err(Blocked::Unreachable),
            Verdict::Lost => Err(Blocked::Lost),
            Verdict::Deliver(d) if d.is_zero() => Ok(()),
            Verdict::Deliver(d) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
        }
    }
}

/// The raft network of one node: what `raft::start` is given in a test.
#[derive(Debug, Clone)]
pub struct NodeNetwork {
    router: Router,
    from: NodeId,
}

impl NodeNetwork {
    /// The network node `from` sends through.
    pub fn new(router: Router, from: NodeId) -> Self {
        NodeNetwork { router, from }
    }
}

/// One node's connection to one peer.
#[derive(Debug)]
pub struct PeerLink {
    router: Router,
    from: NodeId,
    to: NodeId,
}

impl RaftNetworkFactory<TypeConfig> for NodeNetwork {
    type Network = PeerLink;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> PeerLink {
        PeerLink {
            router: self.router.clone(),
            from: self.from,
            to: target,
        }
    }
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, BasicNode, E>>;

fn rpc_error<E: std::error::Error>(b: Blocked, what: &str) -> RPCError<NodeId, BasicNode, E> {
    match b {
        Blocked::Unreachable => RPCError::Unreachable(Unreachable::new(&std::io::Error::new(
            std::io::ErrorKind::NotConnected,
            format!("{what}: unreachable"),
        ))),
        Blocked::Lost => RPCError::Network(NetworkError::new(&std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            format!("{what}: message lost"),
        ))),
    }
}

impl PeerLink {
    /// Runs one RPC on the peer's raft: request leg, the call (bounded by
    /// the option's deadline, as the gRPC network bounds it), reply leg.
    async fn call<T, E, F, Fut>(&self, option: &RPCOption, what: &str, f: F) -> RpcResult<T, E>
    where
        E: std::error::Error,
        F: FnOnce(ShoalRaft) -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let (from, to) = (self.from, self.to);
        self.router
            .leg(from, to, from, to)
            .await
            .map_err(|b| rpc_error(b, what))?;
        let raft = self
            .router
            .raft(to)
            .ok_or_else(|| rpc_error(Blocked::Unreachable, what))?;
        let reply = tokio::time::timeout(option.hard_ttl(), f(raft))
            .await
            .map_err(|_| rpc_error(Blocked::Unreachable, what))?;
        self.router
            .leg(from, to, to, from)
            .await
            .map_err(|b| rpc_error(b, what))?;
        reply.map_err(|e| RPCError::RemoteError(RemoteError::new(to, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerLink {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, RaftError<NodeId>> {
        self.call(&option, "append_entries", |r| async move {
            r.append_entries(rpc).await
        })
        .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        self.call(&option, "install_snapshot", |r| async move {
            r.install_snapshot(rpc).await
        })
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, RaftError<NodeId>> {
        self.call(&option, "vote", |r| async move { r.vote(rpc).await })
            .await
    }
}
