//! The agent's side of a remote session: [`Remote`] implements
//! [`DispatcherApi`] over the `Dispatcher` gRPC service of the leader.
//!
//! A session is bound to the manager that accepted it. Opening one tries
//! the known managers, the leader first, and follows a manager's pointer to
//! the leader. When the session stream ends (the leader died or stepped
//! down, the link broke) every later call fails, and the agent opens a new
//! session through its connector.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::grpc::LEADER_KEY;
use super::remotes::Remotes;
use super::wire::*;
use super::AssignmentSet;
use super::Connector;
use super::DispatcherApi;
use super::SessionInfo;
use super::StatusUpdate;
use crate::error::Error;
use crate::error::ErrorKind;
use crate::error::Result;
use crate::exec::DepKind;
use crate::exec::ServiceRecords;
use crate::transport::proto::dispatcher::dispatcher_client::DispatcherClient;
use crate::transport::status::from_status;
use crate::transport::Channels;

/// How long opening a session with one manager may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one unary call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// What a live session knows.
struct Bound {
    client: DispatcherClient<Channel>,
    alive: CancellationToken,
}

/// A session with the leader over the network.
pub struct Remote {
    remotes: Remotes,
    channels: Channels,
    bound: Mutex<Option<Bound>>,
    /// The last session message (managers, the role the node's spec asks for).
    last: tokio::sync::watch::Sender<Option<SessionMessage>>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").finish_non_exhaustive()
    }
}

fn client(ch: Channel) -> DispatcherClient<Channel> {
    DispatcherClient::new(ch)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX)
}

fn gone() -> Error {
    Error::new(ErrorKind::Unavailable, "the session with the manager ended")
}

impl Remote {
    /// A client that will try `remotes` through `channels`.
    pub fn new(remotes: Remotes, channels: Channels) -> Self {
        Remote {
            remotes,
            channels,
            bound: Mutex::new(None),
            last: tokio::sync::watch::Sender::new(None),
        }
    }

    /// The ID of the session while it is open.
    pub fn session_id(&self) -> Option<String> {
        self.bound().ok()?;
        self.last.borrow().as_ref().map(|m| m.session_id.clone())
    }

    /// The session messages as they arrive.
    pub fn messages(&self) -> tokio::sync::watch::Receiver<Option<SessionMessage>> {
        self.last.subscribe()
    }

    fn bound(&self) -> Result<(DispatcherClient<Channel>, CancellationToken)> {
        let g = self.bound.lock().unwrap_or_else(|e| e.into_inner());
        match &*g {
            Some(b) if !b.alive.is_cancelled() => Ok((b.client.clone(), b.alive.clone())),
            _ => Err(gone()),
        }
    }

    /// Opens the session stream with the manager at `addr`.
    async fn open(
        &self,
        addr: &str,
        req: &SessionRequest,
    ) -> std::result::Result<
        (
            DispatcherClient<Channel>,
            tonic::Streaming<SessionMessage>,
            SessionMessage,
        ),
        tonic::Status,
    > {
        let ch = self
            .channels
            .get(addr)
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let mut c = client(ch);
        let mut stream = tokio::time::timeout(OPEN_TIMEOUT, c.session(req.clone()))
            .await
            .map_err(|_| tonic::Status::unavailable(format!("{addr}: no answer")))??
            .into_inner();
        let first = tokio::time::timeout(OPEN_TIMEOUT, stream.message())
            .await
            .map_err(|_| tonic::Status::unavailable(format!("{addr}: no session message")))??
            .ok_or_else(|| tonic::Status::unavailable(format!("{addr}: session closed")))?;
        Ok((c, stream, first))
    }
}

/// Hands a server stream's messages to the agent through a channel until
/// the stream ends, the session dies (`alive`) or the agent stops reading.
fn forward<T: Send + 'static>(
    mut stream: tonic::Streaming<T>,
    alive: CancellationToken,
) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = alive.cancelled() => return,
                _ = tx.closed() => return,
                m = stream.message() => match m {
                    Ok(Some(item)) => {
                        if tx.send(item).await.is_err() {
                            return;
                        }
                    }
                    _ => return,
                },
            }
        }
    });
    rx
}

fn timed<T>(
    r: std::result::Result<
        std::result::Result<tonic::Response<T>, tonic::Status>,
        tokio::time::error::Elapsed,
    >,
) -> Result<T> {
    match r {
        Err(_) => Err(Error::new(
            ErrorKind::Unavailable,
            "the manager did not answer in time",
        )),
        Ok(Err(s)) => Err(from_status(&s)),
        Ok(Ok(r)) => Ok(r.into_inner()),
    }
}

#[async_trait]
impl DispatcherApi for Remote {
    async fn session(&self, _node_id: &str, req: SessionRequest) -> Result<SessionInfo> {
        let mut last = gone();
        let mut tried = Vec::new();
        // A refusal may name the leader: follow it (bounded by the list).
        let mut queue = self.remotes.candidates();
        while let Some(addr) = queue.first().cloned() {
            queue.remove(0);
            if tried.contains(&addr) || tried.len() > 8 {
                continue;
            }
            tried.push(addr.clone());
            match self.open(&addr, &req).await {
                Ok((c, mut stream, first)) => {
                    let alive = CancellationToken::new();
                    self.remotes
                        .replace(first.managers.iter().map(|m| m.addr.clone()).collect());
                    self.remotes.note_session();
                    // Bound before the message goes out: whoever wakes on
                    // it finds the session usable.
                    *self.bound.lock().unwrap_or_else(|e| e.into_inner()) = Some(Bound {
                        client: c,
                        alive: alive.clone(),
                    });
                    self.last.send_replace(Some(first.clone()));
                    let remotes = self.remotes.clone();
                    let last = self.last.clone();
                    tokio::spawn(async move {
                        loop {
                            tokio::select! {
                                _ = alive.cancelled() => return,
                                m = stream.message() => match m {
                                    Ok(Some(m)) => {
                                        remotes.replace(m.managers.iter().map(|p| p.addr.clone()).collect());
                                        last.send_replace(Some(m));
                                    }
                                    _ => {
                                        alive.cancel();
                                        return;
                                    }
                                },
                            }
                        }
                    });
                    return Ok(SessionInfo {
                        session_id: first.session_id,
                        heartbeat_period: Duration::from_millis(first.heartbeat_period_ms.max(100)),
                    });
                }
                Err(s) => {
                    if let Some(leader) = s
                        .metadata()
                        .get(LEADER_KEY)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                    {
                        self.remotes.set_leader(&leader);
                        queue.insert(0, leader);
                    }
                    tracing::debug!(%addr, error = %s, "manager refused the session");
                    last = from_status(&s);
                }
            }
        }
        Err(last)
    }

    async fn heartbeat(&self, _node_id: &str, session_id: &str) -> Result<Duration> {
        let (mut c, _) = self.bound()?;
        let r = timed(
            tokio::time::timeout(
                CALL_TIMEOUT,
                c.heartbeat(HeartbeatRequest {
                    session_id: session_id.to_string(),
                }),
            )
            .await,
        )?;
        Ok(Duration::from_millis(r.period_ms.max(100)))
    }

    async fn update_task_status(
        &self,
        _node_id: &str,
        session_id: &str,
        updates: Vec<StatusUpdate>,
    ) -> Result<()> {
        let (mut c, _) = self.bound()?;
        timed(
            tokio::time::timeout(
                CALL_TIMEOUT,
                c.update_task_status(StatusRequest {
                    session_id: session_id.to_string(),
                    updates,
                }),
            )
            .await,
        )
        .map(|_| ())
    }

    async fn task_dependency(
        &self,
        _node_id: &str,
        session_id: &str,
        task_id: &str,
        kind: DepKind,
        id: &str,
    ) -> Result<Option<Vec<u8>>> {
        let (mut c, _) = self.bound()?;
        let r = timed(
            tokio::time::timeout(
                CALL_TIMEOUT,
                c.task_dependency(DependencyRequest {
                    session_id: session_id.to_string(),
                    task_id: task_id.to_string(),
                    kind,
                    id: id.to_string(),
                }),
            )
            .await,
        )?;
        match r.data {
            None => Ok(None),
            Some(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map(Some)
                .map_err(|e| Error::internal(format!("dependency payload: {e}"))),
        }
    }

    async fn service_records(
        &self,
        _node_id: &str,
        session_id: &str,
    ) -> Result<tokio::sync::watch::Receiver<ServiceRecords>> {
        let (mut c, alive) = self.bound()?;
        let mut stream = timed(
            tokio::time::timeout(
                CALL_TIMEOUT,
                c.service_records(SessionRef {
                    session_id: session_id.to_string(),
                }),
            )
            .await,
        )?;
        let first = tokio::time::timeout(CALL_TIMEOUT, stream.message())
            .await
            .map_err(|_| gone())?
            .map_err(|s| from_status(&s))?
            .ok_or_else(gone)?;
        let (tx, rx) = tokio::sync::watch::channel(first);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = alive.cancelled() => return,
                    m = stream.message() => match m {
                        Ok(Some(r)) => { tx.send_replace(r); }
                        // Dropping the sender tells the agent the stream ended.
                        _ => return,
                    },
                }
            }
        });
        Ok(rx)
    }

    async fn assignments(
        &self,
        _node_id: &str,
        session_id: &str,
    ) -> Result<mpsc::Receiver<AssignmentSet>> {
        let (mut c, alive) = self.bound()?;
        let stream = timed(
            tokio::time::timeout(
                CALL_TIMEOUT,
                c.assignments(SessionRef {
                    session_id: session_id.to_string(),
                }),
            )
            .await,
        )?;
        Ok(forward(stream, alive))
    }

    async fn log_subscriptions(
        &self,
        _node_id: &str,
        session_id: &str,
    ) -> Result<mpsc::Receiver<crate::logbroker::Subscription>> {
        let (mut c, alive) = self.bound()?;
        let stream = timed(
            tokio::time::timeout(
                CALL_TIMEOUT,
                c.log_subscriptions(SessionRef {
                    session_id: session_id.to_string(),
                }),
            )
            .await,
        )?;
        Ok(forward(stream, alive))
    }

    async fn attach_network(
        &self,
        _node_id: &str,
        session_id: &str,
        container_id: &str,
        network: &str,
        aliases: &[String],
    ) -> Result<crate::exec::Attachment> {
        let (mut c, _) = self.bound()?;
        timed(
            tokio::time::timeout(
                CALL_TIMEOUT,
                c.attach_network(AttachNetworkRequest {
                    session_id: session_id.to_string(),
                    container_id: container_id.to_string(),
                    network: network.to_string(),
                    aliases: aliases.to_vec(),
                }),
            )
            .await,
        )
    }

    async fn node_networks(
        &self,
        _node_id: &str,
        session_id: &str,
    ) -> Result<Vec<crate::controlapi::network::NodeNetwork>> {
        let (mut c, _) = self.bound()?;
        let reply: NodeNetworksReply = timed(
            tokio::time::timeout(
                CALL_TIMEOUT,
                c.node_networks(SessionRef {
                    session_id: session_id.to_string(),
                }),
            )
            .await,
        )?;
        Ok(reply.networks)
    }

    async fn detach_network(
        &self,
        _node_id: &str,
        session_id: &str,
        container_id: &str,
    ) -> Result<()> {
        let (mut c, _) = self.bound()?;
        timed(
            tokio::time::timeout(
                CALL_TIMEOUT,
                c.detach_network(DetachNetworkRequest {
                    session_id: session_id.to_string(),
                    container_id: container_id.to_string(),
                }),
            )
            .await,
        )
        .map(|_| ())
    }

    async fn publish_logs(
        &self,
        _node_id: &str,
        session_id: &str,
        subscription_id: &str,
        messages: Vec<crate::exec::LogMessage>,
        close: bool,
    ) -> Result<bool> {
        let (mut c, _) = self.bound()?;
        let r = timed(
            tokio::time::timeout(
                CALL_TIMEOUT,
                c.publish_logs(PublishRequest {
                    session_id: session_id.to_string(),
                    subscription_id: subscription_id.to_string(),
                    messages,
                    close,
                }),
            )
            .await,
        )?;
        Ok(r.wanted)
    }
}

/// The connector of a node that does not lead: a fresh [`Remote`] per
/// session, over the node's channels and manager list.
pub struct RemoteConnector {
    /// The managers to try.
    pub remotes: Remotes,
    /// Connections with this node's certificate.
    pub channels: Channels,
    /// Where session messages are published (the node's role changes).
    pub sessions: tokio::sync::watch::Sender<Option<SessionMessage>>,
    /// The session being opened or open, for calls outside the agent
    /// (standalone containers' network attachments).
    pub current: tokio::sync::watch::Sender<Option<Arc<Remote>>>,
}

#[async_trait]
impl Connector for RemoteConnector {
    async fn connect(&self) -> Result<Arc<dyn DispatcherApi>> {
        let r = Arc::new(Remote::new(self.remotes.clone(), self.channels.clone()));
        self.current.send_replace(Some(r.clone()));
        let mut messages = r.messages();
        let out = self.sessions.clone();
        tokio::spawn(async move {
            while messages.changed().await.is_ok() {
                let m = messages.borrow_and_update().clone();
                if m.is_some() {
                    out.send_replace(m);
                }
            }
        });
        Ok(r)
    }
}
