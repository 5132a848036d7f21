//! The manager-side gRPC services of raft: `Raft` (openraft's RPCs from the
//! leader) and `Cluster` (joins, leaves and forwarded writes). Both serve
//! manager certificates of this cluster only.

use std::sync::Arc;
use std::time::Duration;

use tonic::Request;
use tonic::Response;
use tonic::Status;

use super::membership;
use super::membership::MembershipError;
use super::wire::*;
use super::ShoalRaft;
use crate::ca::identity::Role;
use crate::model::api;
use crate::model::Node;
use crate::store::Proposed;
use crate::store::Store;
use crate::transport::auth;
use crate::transport::proto::cluster::cluster_client::ClusterClient;
use crate::transport::proto::cluster::cluster_server::Cluster;
use crate::transport::proto::raft::raft_server::Raft;
use crate::transport::status::to_status;
use crate::transport::Channels;

/// How long a joining manager has to catch up before the join fails.
const CATCH_UP: Duration = Duration::from_secs(60);

/// Serves `Raft` to the other managers.
pub struct RaftService {
    raft: ShoalRaft,
    cluster_id: String,
}

impl RaftService {
    /// The service for `raft` in cluster `cluster_id`.
    pub fn new(raft: ShoalRaft, cluster_id: String) -> Self {
        RaftService { raft, cluster_id }
    }

    fn check<T>(&self, req: &Request<T>) -> Result<(), Status> {
        auth::require(req, &self.cluster_id, &[Role::Manager]).map(|_| ())
    }
}

#[tonic::async_trait]
impl Raft for RaftService {
    async fn append_entries(
        &self,
        req: Request<AppendRequest>,
    ) -> Result<Response<AppendReply>, Status> {
        self.check(&req)?;
        Ok(Response::new(
            self.raft.append_entries(req.into_inner()).await,
        ))
    }

    async fn vote(&self, req: Request<VoteRequest>) -> Result<Response<VoteReply>, Status> {
        self.check(&req)?;
        Ok(Response::new(self.raft.vote(req.into_inner()).await))
    }

    async fn install_snapshot(
        &self,
        req: Request<SnapshotRequest>,
    ) -> Result<Response<SnapshotReply>, Status> {
        self.check(&req)?;
        Ok(Response::new(
            self.raft.install_snapshot(req.into_inner()).await,
        ))
    }
}

/// Serves `Cluster` to the other managers.
pub struct ClusterService {
    raft: ShoalRaft,
    store: Arc<Store>,
    channels: Channels,
    cluster_id: String,
    slot: tokio::sync::watch::Receiver<Option<Arc<crate::dispatcher::Local>>>,
}

impl ClusterService {
    /// The service of this manager; `slot` holds its dispatcher (and log
    /// broker) while it leads.
    pub fn new(
        raft: ShoalRaft,
        store: Arc<Store>,
        channels: Channels,
        cluster_id: String,
        slot: tokio::sync::watch::Receiver<Option<Arc<crate::dispatcher::Local>>>,
    ) -> Self {
        ClusterService {
            raft,
            store,
            channels,
            cluster_id,
            slot,
        }
    }

    fn leader_client(
        &self,
        addr: Option<String>,
    ) -> Result<ClusterClient<tonic::transport::Channel>, Status> {
        let addr = addr.ok_or_else(|| to_status(&crate::Error::no_leader()))?;
        let ch = self.channels.get(&addr).map_err(|e| to_status(&e))?;
        Ok(ClusterClient::new(ch))
    }
}

/// Records a new raft member on its node object: manager status reachable.
async fn mark_manager(store: &Store, node_id: &str, addr: &str) -> crate::Result<()> {
    store
        .update(|tx| {
            let Some(mut n) = tx.get::<Node>(node_id) else {
                return Ok(());
            };
            let status = api::ManagerStatus {
                leader: Some(false),
                reachability: Some(api::Reachability::REACHABLE),
                addr: Some(addr.to_string()),
            };
            if n.api.manager_status.as_ref() == Some(&status)
                && n.role == Some(api::NodeSpecRoleEnum::MANAGER)
            {
                return Ok(());
            }
            n.api.manager_status = Some(status);
            n.role = Some(api::NodeSpecRoleEnum::MANAGER);
            tx.update(n)
        })
        .await
}

/// Lines sent per message of a log stream.
const LOG_BATCH: usize = 256;

/// Groups the lines waiting on `rx` into batches for the wire.
pub fn batches(
    mut rx: tokio::sync::mpsc::Receiver<crate::exec::LogMessage>,
) -> tokio_stream::wrappers::ReceiverStream<Result<crate::dispatcher::wire::LogBatch, Status>> {
    let (tx, out) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut messages = vec![first];
            while messages.len() < LOG_BATCH {
                match rx.try_recv() {
                    Ok(m) => messages.push(m),
                    Err(_) => break,
                }
            }
            let batch = crate::dispatcher::wire::LogBatch { messages };
            if tx.send(Ok(batch)).await.is_err() {
                return;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(out)
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    type SubscribeLogsStream =
        tokio_stream::wrappers::ReceiverStream<Result<crate::dispatcher::wire::LogBatch, Status>>;

    async fn subscribe_logs(
        &self,
        req: Request<crate::dispatcher::wire::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeLogsStream>, Status> {
        auth::require(&req, &self.cluster_id, &[Role::Manager])?;
        let Some(local) = self.slot.borrow().clone().filter(|l| l.is_serving()) else {
            return Err(Status::unavailable(crate::dispatcher::grpc::NOT_LEADER));
        };
        let r = req.into_inner();
        let rx = local.broker().subscribe(r.selector, r.options);
        Ok(Response::new(batches(rx)))
    }

    async fn join(&self, req: Request<JoinRequest>) -> Result<Response<JoinReply>, Status> {
        let peer = auth::require(&req, &self.cluster_id, &[Role::Manager])?;
        let j = req.into_inner();
        if j.node_id != peer.node_id || j.raft_id != super::raft_id(&j.node_id) {
            return Err(Status::permission_denied(
                "a manager can only join as the node its certificate names",
            ));
        }
        match membership::add_voter(&self.raft, j.raft_id, &j.addr, CATCH_UP).await {
            Ok(members) => {
                mark_manager(&self.store, &j.node_id, &j.addr)
                    .await
                    .map_err(|e| to_status(&e))?;
                Ok(Response::new(JoinReply { members }))
            }
            Err(MembershipError::NotLeader(addr)) => {
                // Forward once: the leader authorizes the joiner again by its
                // own rules, this manager vouches only for the transport.
                let mut c = self.leader_client(addr)?;
                c.join(j).await
            }
            Err(MembershipError::Failed(e)) => Err(to_status(&e)),
        }
    }

    async fn propose(
        &self,
        req: Request<ProposeRequest>,
    ) -> Result<Response<ProposeReply>, Status> {
        auth::require(&req, &self.cluster_id, &[Role::Manager])?;
        let r = req.into_inner();
        match self.store.propose_checked(r.base, r.actions).await {
            Ok(Proposed::Committed(i)) => Ok(Response::new(ProposeReply::Committed(i))),
            Ok(Proposed::Stale(i)) => Ok(Response::new(ProposeReply::Stale(i))),
            Err(e) => Err(to_status(&e)),
        }
    }

    async fn read_index(
        &self,
        req: Request<ReadIndexRequest>,
    ) -> Result<Response<ReadIndexReply>, Status> {
        auth::require(&req, &self.cluster_id, &[Role::Manager])?;
        match self.store.read_index_here().await {
            Ok(index) => Ok(Response::new(ReadIndexReply { index })),
            Err(e) => Err(to_status(&e)),
        }
    }

    async fn leave(&self, req: Request<LeaveRequest>) -> Result<Response<LeaveReply>, Status> {
        let peer = auth::require(&req, &self.cluster_id, &[Role::Manager])?;
        let l = req.into_inner();
        if l.node_id != peer.node_id {
            return Err(Status::permission_denied(
                "a manager can only remove itself this way",
            ));
        }
        match membership::remove(&self.raft, super::raft_id(&l.node_id)).await {
            Ok(()) => Ok(Response::new(LeaveReply {})),
            Err(MembershipError::NotLeader(addr)) => {
                let mut c = self.leader_client(addr)?;
                c.leave(l).await
            }
            Err(MembershipError::Failed(e)) => Err(to_status(&e)),
        }
    }
}
