//! Raft transport between managers: openraft's RPCs over the node-to-node
//! gRPC channels (mutual TLS with manager certificates).
//!
//! Connections are lazy and reconnect by themselves; a call that cannot
//! reach its peer is reported to openraft as `Unreachable`, which backs off
//! and retries. Each call's outcome is recorded in [`PeerHealth`], the
//! leader's view of which managers answer (node ls' MANAGER STATUS).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

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

use super::NodeId;
use super::TypeConfig;
use crate::transport::proto::raft::raft_client::RaftClient;
use crate::transport::Channels;

/// When each peer last answered a raft RPC, as this node saw it.
#[derive(Debug, Default)]
pub struct PeerHealth {
    last_ok: Mutex<HashMap<NodeId, Instant>>,
}

impl PeerHealth {
    fn ok(&self, id: NodeId) {
        self.last_ok
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Instant::now());
    }

    /// Whether `id` answered within `window`.
    pub fn answered_within(&self, id: NodeId, window: Duration) -> bool {
        self.last_ok
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .is_some_and(|t| t.elapsed() <= window)
    }
}

/// Creates connections to peer managers.
#[derive(Clone)]
pub struct Network {
    channels: Channels,
    health: Arc<PeerHealth>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network").finish_non_exhaustive()
    }
}

impl Network {
    /// A network dialling peers through `channels`, recording into `health`.
    pub fn new(channels: Channels, health: Arc<PeerHealth>) -> Self {
        Network { channels, health }
    }
}

/// A connection to one peer manager.
pub struct Peer {
    target: NodeId,
    addr: String,
    channels: Channels,
    health: Arc<PeerHealth>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer {
        Peer {
            target,
            addr: node.addr.clone(),
            channels: self.channels.clone(),
            health: self.health.clone(),
        }
    }
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, BasicNode, E>>;

fn unreachable<E: std::error::Error>(
    why: impl std::fmt::Display,
) -> RPCError<NodeId, BasicNode, E> {
    RPCError::Unreachable(Unreachable::new(&std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        why.to_string(),
    )))
}

impl Peer {
    fn client(&self) -> Result<RaftClient<tonic::transport::Channel>, std::io::Error> {
        let ch = self
            .channels
            .get(&self.addr)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        // Snapshots and large batches go in one message.
        Ok(RaftClient::new(ch)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX))
    }

    /// Runs one RPC with the option's deadline and maps its outcome.
    async fn call<T, E, F, Fut>(&self, option: &RPCOption, f: F) -> RpcResult<T, E>
    where
        E: std::error::Error,
        F: FnOnce(RaftClient<tonic::transport::Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<Result<T, E>>, tonic::Status>>,
    {
        let client = self
            .client()
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let reply = match tokio::time::timeout(option.hard_ttl(), f(client)).await {
            Err(_) => return Err(unreachable(format!("{} timed out", self.addr))),
            Ok(Err(status)) => return Err(unreachable(format!("{}: {status}", self.addr))),
            Ok(Ok(r)) => r.into_inner(),
        };
        self.health.ok(self.target);
        reply.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, RaftError<NodeId>> {
        self.call(&option, |mut c| async move { c.append_entries(rpc).await })
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        self.call(
            &option,
            |mut c| async move { c.install_snapshot(rpc).await },
        )
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, RaftError<NodeId>> {
        self.call(&option, |mut c| async move { c.vote(rpc).await })
            .await
    }
}

/// The network of a lone manager in tests and benchmarks: it has no peers,
/// and a call to one fails as unreachable.
#[derive(Debug, Clone, Copy, Default)]
pub struct Solo;

/// [`Solo`]'s (never used) connection.
#[derive(Debug)]
pub struct NoPeer;

impl RaftNetworkFactory<TypeConfig> for Solo {
    type Network = NoPeer;

    async fn new_client(&mut self, _target: NodeId, _node: &BasicNode) -> NoPeer {
        NoPeer
    }
}

impl RaftNetwork<TypeConfig> for NoPeer {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, RaftError<NodeId>> {
        Err(unreachable("no peers"))
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        Err(unreachable("no peers"))
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, RaftError<NodeId>> {
        Err(unreachable("no peers"))
    }
}
