//! The `Dispatcher` gRPC service: remote agents' sessions, served by the
//! leader's [`Local`] dispatcher. A manager that does not lead refuses with
//! `Unavailable` and names the leader in the `shoal-leader` metadata, and
//! the agent goes there.
//!
//! The caller's node ID comes from its certificate, never from the request.

use std::pin::Pin;
use std::sync::Arc;
use std::task::Context;
use std::task::Poll;
use std::time::Duration;

use base64::Engine;
use tokio::sync::watch;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use super::wire::*;
use super::DispatcherApi;
use super::Local;
use crate::ca::identity::Role;
use crate::exec::ServiceRecords;
use crate::model::api;
use crate::model::Node;
use crate::transport::auth;
use crate::transport::proto::dispatcher::dispatcher_server::Dispatcher;
use crate::transport::status::to_status;

/// The metadata key naming the leader in a refusal.
pub const LEADER_KEY: &str = "shoal-leader";
/// The refusal text of a manager that does not lead.
pub const NOT_LEADER: &str = "this manager is not the leader";
/// How often an open session re-sends the manager list when it changed.
const MANAGERS_EVERY: Duration = Duration::from_secs(1);

/// Where the leader is, as this manager knows it.
pub trait LeaderHint: Send + Sync {
    /// The leader's address, if one is known.
    fn leader_addr(&self) -> Option<String>;
}

/// Serves agents on behalf of the leader's dispatcher.
pub struct DispatcherService {
    slot: watch::Receiver<Option<Arc<Local>>>,
    hint: Arc<dyn LeaderHint>,
    cluster_id: String,
}

impl DispatcherService {
    /// A service answering with whatever dispatcher `slot` holds (this
    /// manager's while it leads), pointing elsewhere with `hint`.
    pub fn new(
        slot: watch::Receiver<Option<Arc<Local>>>,
        hint: Arc<dyn LeaderHint>,
        cluster_id: String,
    ) -> Self {
        DispatcherService {
            slot,
            hint,
            cluster_id,
        }
    }

    fn caller<T>(&self, req: &Request<T>) -> Result<(String, Arc<Local>), Status> {
        let peer = auth::require(req, &self.cluster_id, &[Role::Manager, Role::Worker])?;
        let local = self.slot.borrow().clone().filter(|l| l.is_serving());
        match local {
            Some(l) => Ok((peer.node_id, l)),
            None => {
                let mut s = Status::unavailable(NOT_LEADER);
                if let Some(addr) = self.hint.leader_addr() {
                    if let Ok(v) = addr.parse() {
                        s.metadata_mut().insert(LEADER_KEY, v);
                    }
                }
                Err(s)
            }
        }
    }
}

/// The managers of the cluster from the store, the leader first.
pub fn managers(store: &crate::store::Store) -> Vec<ManagerPeer> {
    let mut out: Vec<(bool, ManagerPeer)> = store.view(|v| {
        v.tables()
            .iter::<Node>()
            .filter_map(|n| {
                let ms = n.api.manager_status.as_ref()?;
                Some((
                    ms.leader == Some(true),
                    ManagerPeer {
                        node_id: n.api.id.clone()?,
                        addr: ms.addr.clone()?,
                    },
                ))
            })
            .collect()
    });
    out.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.addr.cmp(&b.1.addr)));
    out.into_iter().map(|(_, p)| p).collect()
}

fn ca_generation(store: &crate::store::Store) -> u64 {
    store.view(|v| v.cluster().map_or(0, |c| c.ca_generation))
}

fn desired_role(store: &crate::store::Store, node: &str) -> Option<api::NodeSpecRoleEnum> {
    store.view(|v| v.get::<Node>(node)?.api.spec?.role)
}

/// A session stream that tells the dispatcher when the agent is gone.
pub struct SessionStream {
    inner: ReceiverStream<Result<SessionMessage, Status>>,
    local: Arc<Local>,
    node: String,
    session_id: String,
}

impl Stream for SessionStream {
    type Item = Result<SessionMessage, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

impl Drop for SessionStream {
    fn drop(&mut self) {
        self.local.session_closed(&self.node, &self.session_id);
    }
}

type Boxed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// A node's stream of log subscriptions; when it ends, the broker stops
/// waiting for that node.
pub struct ListenStream {
    inner: Option<ReceiverStream<crate::logbroker::Subscription>>,
    local: Arc<Local>,
    node: String,
    cancel: tokio_util::sync::CancellationToken,
}

impl Stream for ListenStream {
    type Item = Result<crate::logbroker::Subscription, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.cancel.is_cancelled() {
            return Poll::Ready(None);
        }
        match self.inner.as_mut() {
            Some(s) => Pin::new(s).poll_next(cx).map(|o| o.map(Ok)),
            None => Poll::Ready(None),
        }
    }
}

impl Drop for ListenStream {
    fn drop(&mut self) {
        // Close the receiver first, so the broker sees the listener gone.
        drop(self.inner.take());
        self.local.broker().listener_gone(&self.node);
    }
}

#[tonic::async_trait]
impl Dispatcher for DispatcherService {
    type SessionStream = SessionStream;
    type AssignmentsStream = Boxed<AssignmentBatch>;
    type ServiceRecordsStream = Boxed<ServiceRecords>;
    type LogSubscriptionsStream = ListenStream;

    async fn session(
        &self,
        req: Request<SessionRequest>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let (node, local) = self.caller(&req)?;
        let info = local
            .session(&node, req.into_inner())
            .await
            .map_err(|e| to_status(&e))?;
        let store = local.store().clone();
        let first = SessionMessage {
            session_id: info.session_id.clone(),
            heartbeat_period_ms: info.heartbeat_period.as_millis() as u64,
            managers: managers(&store),
            desired_role: desired_role(&store, &node),
            ca_generation: ca_generation(&store),
        };
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let _ = tx.send(Ok(first.clone())).await;
        let cancel = local.cancelled();
        let watch_node = node.clone();
        tokio::spawn(async move {
            let mut last = first;
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(MANAGERS_EVERY) => {}
                }
                let next = SessionMessage {
                    managers: managers(&store),
                    desired_role: desired_role(&store, &watch_node),
                    ca_generation: ca_generation(&store),
                    ..last.clone()
                };
                if next.managers != last.managers
                    || next.desired_role != last.desired_role
                    || next.ca_generation != last.ca_generation
                {
                    if tx.send(Ok(next.clone())).await.is_err() {
                        return;
                    }
                    last = next;
                }
            }
        });
        Ok(Response::new(SessionStream {
            inner: ReceiverStream::new(rx),
            local,
            node,
            session_id: info.session_id,
        }))
    }

    async fn heartbeat(
        &self,
        req: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatReply>, Status> {
        let (node, local) = self.caller(&req)?;
        let period = local
            .heartbeat(&node, &req.into_inner().session_id)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(HeartbeatReply {
            period_ms: period.as_millis() as u64,
        }))
    }

    async fn update_task_status(
        &self,
        req: Request<StatusRequest>,
    ) -> Result<Response<Empty>, Status> {
        let (node, local) = self.caller(&req)?;
        let r = req.into_inner();
        local
            .update_task_status(&node, &r.session_id, r.updates)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(Empty {}))
    }

    async fn assignments(
        &self,
        req: Request<SessionRef>,
    ) -> Result<Response<Self::AssignmentsStream>, Status> {
        let (node, local) = self.caller(&req)?;
        let rx = local
            .assignments(&node, &req.into_inner().session_id)
            .await
            .map_err(|e| to_status(&e))?;
        let s = tokio_stream::StreamExt::map(ReceiverStream::new(rx), Ok);
        Ok(Response::new(Box::pin(s)))
    }

    async fn task_dependency(
        &self,
        req: Request<DependencyRequest>,
    ) -> Result<Response<DependencyReply>, Status> {
        let (node, local) = self.caller(&req)?;
        let r = req.into_inner();
        let data = local
            .task_dependency(&node, &r.session_id, &r.task_id, r.kind, &r.id)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(DependencyReply {
            data: data.map(|d| base64::engine::general_purpose::STANDARD.encode(d)),
        }))
    }

    async fn attach_network(
        &self,
        req: Request<AttachNetworkRequest>,
    ) -> Result<Response<crate::exec::Attachment>, Status> {
        let (node, local) = self.caller(&req)?;
        let r = req.into_inner();
        let a = local
            .attach_network(
                &node,
                &r.session_id,
                &r.container_id,
                &r.network,
                &r.aliases,
            )
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(a))
    }

    async fn node_networks(
        &self,
        req: Request<SessionRef>,
    ) -> Result<Response<NodeNetworksReply>, Status> {
        let (node, local) = self.caller(&req)?;
        let r = req.into_inner();
        let networks = local
            .node_networks(&node, &r.session_id)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(NodeNetworksReply { networks }))
    }

    async fn detach_network(
        &self,
        req: Request<DetachNetworkRequest>,
    ) -> Result<Response<Empty>, Status> {
        let (node, local) = self.caller(&req)?;
        let r = req.into_inner();
        local
            .detach_network(&node, &r.session_id, &r.container_id)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(Empty {}))
    }

    async fn service_records(
        &self,
        req: Request<SessionRef>,
    ) -> Result<Response<Self::ServiceRecordsStream>, Status> {
        let (node, local) = self.caller(&req)?;
        let rx = local
            .service_records(&node, &req.into_inner().session_id)
            .await
            .map_err(|e| to_status(&e))?;
        let s = tokio_stream::wrappers::WatchStream::new(rx);
        Ok(Response::new(Box::pin(tokio_stream::StreamExt::map(s, Ok))))
    }

    async fn log_subscriptions(
        &self,
        req: Request<SessionRef>,
    ) -> Result<Response<Self::LogSubscriptionsStream>, Status> {
        let (node, local) = self.caller(&req)?;
        let rx = local
            .log_subscriptions(&node, &req.into_inner().session_id)
            .await
            .map_err(|e| to_status(&e))?;
        let cancel = local.cancelled();
        Ok(Response::new(ListenStream {
            inner: Some(ReceiverStream::new(rx)),
            local,
            node,
            cancel,
        }))
    }

    async fn publish_logs(
        &self,
        req: Request<PublishRequest>,
    ) -> Result<Response<PublishReply>, Status> {
        let (node, local) = self.caller(&req)?;
        let r = req.into_inner();
        let wanted = local
            .publish_logs(
                &node,
                &r.session_id,
                &r.subscription_id,
                r.messages,
                r.close,
            )
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(PublishReply { wanted }))
    }
}
