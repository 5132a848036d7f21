//! The gRPC services a manager serves on its listen address, and the
//! manager's own call to join raft through another manager.

use std::sync::Arc;
use std::time::Duration;

use tonic::service::Routes;

use super::Manager;
use crate::ca::server::CaService;
use crate::dispatcher::grpc::DispatcherService;
use crate::dispatcher::grpc::LeaderHint;
use crate::error::Error;
use crate::error::Result;
use crate::node::NodeState;
use crate::raft::service::ClusterService;
use crate::raft::service::RaftService;
use crate::raft::wire::JoinRequest;
use crate::transport::proto::ca::node_ca_server::NodeCaServer;
use crate::transport::proto::cluster::cluster_client::ClusterClient;
use crate::transport::proto::cluster::cluster_server::ClusterServer;
use crate::transport::proto::dispatcher::dispatcher_server::DispatcherServer;
use crate::transport::proto::raft::raft_server::RaftServer;
use crate::transport::status::from_status;
use crate::transport::Channels;

/// How long the leader may take to add this manager (it waits for it to
/// catch up by log or snapshot first).
const JOIN_TIMEOUT: Duration = Duration::from_secs(90);

struct RaftLeader(crate::raft::ShoalRaft);

impl LeaderHint for RaftLeader {
    fn leader_addr(&self) -> Option<String> {
        crate::raft::membership::leader_addr(&self.0)
    }
}

/// Opens a log subscription on the leader at `addr`; its lines arrive on
/// the receiver until the subscription ends.
pub async fn subscribe_logs(
    channels: &Channels,
    addr: &str,
    selector: crate::exec::LogSelector,
    options: crate::exec::LogOptions,
) -> Result<tokio::sync::mpsc::Receiver<crate::exec::LogMessage>> {
    let mut c = ClusterClient::new(channels.get(addr)?)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    let req = crate::dispatcher::wire::SubscribeRequest { selector, options };
    let mut stream =
        match tokio::time::timeout(Duration::from_secs(10), c.subscribe_logs(req)).await {
            Err(_) => return Err(Error::no_leader()),
            Ok(Err(s)) => return Err(from_status(&s)),
            Ok(Ok(r)) => r.into_inner(),
        };
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tx.closed() => return,
                m = stream.message() => match m {
                    Ok(Some(batch)) => {
                        for line in batch.messages {
                            if tx.send(line).await.is_err() {
                                return;
                            }
                        }
                    }
                    _ => return,
                },
            }
        }
    });
    Ok(rx)
}

/// Every service of manager `m`, each checking its callers' certificates.
pub fn routes(m: &Arc<Manager>) -> Routes {
    let cluster_id = m.state.cluster_id.clone();
    let raft = RaftServer::new(RaftService::new(m.raft.clone(), cluster_id.clone()))
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    let cluster = ClusterServer::new(ClusterService::new(
        m.raft.clone(),
        m.store.clone(),
        m.channels.clone(),
        cluster_id.clone(),
        m.slot.subscribe(),
    ))
    .max_decoding_message_size(usize::MAX)
    .max_encoding_message_size(usize::MAX);
    let ca = NodeCaServer::new(CaService::new(m.store.clone()));
    let dispatcher = DispatcherServer::new(DispatcherService::new(
        m.slot.subscribe(),
        Arc::new(RaftLeader(m.raft.clone())),
        cluster_id,
    ))
    .max_decoding_message_size(usize::MAX)
    .max_encoding_message_size(usize::MAX);
    Routes::new(raft)
        .add_service(cluster)
        .add_service(ca)
        .add_service(dispatcher)
}

/// Asks the manager at `remote` to make this node a raft voter.
pub async fn join_raft(channels: &Channels, remote: &str, state: &NodeState) -> Result<()> {
    let mut c = ClusterClient::new(channels.get(remote)?);
    let req = JoinRequest {
        node_id: state.node_id.clone(),
        raft_id: state.raft_id,
        addr: state.advertise_addr.clone(),
    };
    match tokio::time::timeout(JOIN_TIMEOUT, c.join(req)).await {
        Err(_) => Err(Error::internal(
            "timed out waiting for the managers to add this node",
        )),
        Ok(Err(s)) => Err(from_status(&s)),
        Ok(Ok(_)) => Ok(()),
    }
}
