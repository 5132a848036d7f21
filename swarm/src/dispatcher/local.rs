//! The leader's dispatcher over its store: the leader's own agent talks to
//! it directly, remote agents through the gRPC service (`grpc`). It lives
//! for one leadership term: when the term ends, its streams end and agents
//! find the next leader.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::assignments;
use super::sessions::Sessions;
use super::sessions::CLOSED_GRACE;
use super::sessions::GRACE_PERIODS;
use super::Assignment;
use super::AssignmentSet;
use super::DispatcherApi;
use super::SessionInfo;
use super::StatusUpdate;
use crate::error::Error;
use crate::error::Result;
use crate::model::api;
use crate::model::new_id;
use crate::model::Node;
use crate::model::Task;
use crate::store::Store;

/// Serves agents from this manager's store.
#[derive(Debug)]
pub struct Local {
    store: Arc<Store>,
    heartbeat: Duration,
    sessions: Mutex<Sessions>,
    broker: crate::logbroker::Broker,
    cancel: tokio_util::sync::CancellationToken,
}

impl Local {
    /// A dispatcher over `store` asking for heartbeats every `heartbeat`.
    pub fn new(store: Arc<Store>, heartbeat: Duration) -> Self {
        Local {
            store,
            heartbeat,
            sessions: Mutex::new(Sessions::default()),
            broker: crate::logbroker::Broker::default(),
            cancel: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// How long a node may go without a heartbeat before it is down.
    fn ttl(&self) -> Duration {
        self.heartbeat * GRACE_PERIODS
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The log broker of this term.
    pub fn broker(&self) -> &crate::logbroker::Broker {
        &self.broker
    }

    /// The store it serves from.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// A token that fires when this dispatcher's term ends.
    pub fn cancelled(&self) -> tokio_util::sync::CancellationToken {
        self.cancel.clone()
    }

    /// Ends every stream this dispatcher serves (its leadership term ended).
    pub fn shut_down(&self) {
        self.cancel.cancel();
    }

    /// Whether the dispatcher still serves (its term has not ended).
    pub fn is_serving(&self) -> bool {
        !self.cancel.is_cancelled()
    }

    /// A session stream of `node` ended: unless it opens another soon, it
    /// is down (a crashed node's connection closes at once; a cut link's
    /// within the transport's keepalive timeout).
    pub fn session_closed(&self, node: &str, session_id: &str) {
        let deadline = tokio::time::Instant::now() + CLOSED_GRACE;
        self.sessions().closed(node, session_id, deadline);
    }

    /// Whether `session_id` is `node`'s current session.
    pub fn is_current(&self, node: &str, session_id: &str) -> bool {
        self.sessions().is_current(node, session_id)
    }

    /// Refuses a call on a session that is not `node`'s current one.
    fn require_session(&self, node: &str, session_id: &str) -> Result<()> {
        if self.is_current(node, session_id) {
            Ok(())
        } else {
            Err(not_registered())
        }
    }

    /// The leader loop that marks nodes down when their sessions lapse.
    /// Ready nodes first get one grace period to find this new leader.
    pub async fn monitor(self: Arc<Self>, cancel: tokio_util::sync::CancellationToken) {
        let start = tokio::time::Instant::now() + self.ttl();
        let ready: Vec<String> = self.store.view(|v| {
            v.tables()
                .iter::<Node>()
                .filter(|n| {
                    n.api.status.as_ref().and_then(|s| s.state) == Some(api::NodeState::READY)
                })
                .filter_map(|n| n.api.id.clone())
                .collect()
        });
        {
            let mut s = self.sessions();
            for n in &ready {
                s.expect(n, start);
            }
        }
        loop {
            let next = self
                .sessions()
                .next_deadline()
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_millis(500))
                .min(tokio::time::Instant::now() + Duration::from_millis(500));
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep_until(next) => {}
            }
            let expired = self.sessions().take_expired(tokio::time::Instant::now());
            if expired.is_empty() {
                continue;
            }
            tracing::info!(nodes = ?expired, "node heartbeats expired: marking them down");
            let r = self
                .store
                .update(|tx| {
                    for id in &expired {
                        // It may have opened a new session since it expired.
                        if self.sessions().has_session(id) {
                            continue;
                        }
                        let Some(mut n) = tx.get::<Node>(id) else {
                            continue;
                        };
                        let st = n.api.status.get_or_insert_with(Default::default);
                        if st.state == Some(api::NodeState::DOWN) {
                            continue;
                        }
                        st.state = Some(api::NodeState::DOWN);
                        st.message = Some("heartbeat failure".into());
                        tx.update(n)?;
                    }
                    Ok(())
                })
                .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "marking nodes down failed");
            }
        }
    }
}

fn apply_status(tx: &mut crate::store::Tx<'_>, node_id: &str, u: &StatusUpdate) -> Result<()> {
    let Some(mut t) = tx.get::<Task>(&u.task_id) else {
        return Ok(());
    };
    let new_state = u.status.state.unwrap_or(api::TaskState::NEW);
    // Only the node that runs a task reports for it, and states never go back.
    if t.node_id() != Some(node_id) || new_state < t.state() {
        return Ok(());
    }
    if t.api.status.as_ref() == Some(&u.status) {
        return Ok(());
    }
    t.api.status = Some(u.status.clone());
    tx.update(t)
}

/// How long DNS records wait for the rest of a burst of changes.
const RECORDS_DEBOUNCE: Duration = Duration::from_millis(20);

/// Payloads are stored as the API sent them: base64.
fn decode(b64: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

#[async_trait]
impl DispatcherApi for Local {
    async fn session(&self, node_id: &str, req: super::SessionRequest) -> Result<SessionInfo> {
        let desc = req.description;
        self.store
            .update(|tx| {
                let mut n = tx
                    .get::<Node>(node_id)
                    .ok_or_else(|| Error::not_found(crate::model::Kind::Node, node_id))?;
                let ready =
                    n.api.status.as_ref().and_then(|s| s.state) == Some(api::NodeState::READY);
                // What the node says of itself; its TLS info stays the CA's.
                let mut merged = n.api.description.clone().unwrap_or_default();
                if desc.hostname.is_some() {
                    merged.hostname = desc.hostname.clone();
                    merged.resources = desc.resources.clone().or(merged.resources.take());
                    merged.platform = desc.platform.clone().or(merged.platform.take());
                    merged.engine = desc.engine.clone().or(merged.engine.take());
                }
                let same_desc = n.api.description.as_ref() == Some(&merged);
                let addr = Some(req.addr.clone()).filter(|a| !a.is_empty());
                let data_addr = Some(req.data_addr.clone())
                    .filter(|a| !a.is_empty())
                    .or(addr.clone());
                let status_addr = n.api.status.as_ref().and_then(|s| s.addr.clone());
                let same_addrs = (addr.is_none() || status_addr == addr)
                    && (data_addr.is_none() || n.data_addr == data_addr);
                if !ready || !same_desc || !same_addrs {
                    let st = n.api.status.get_or_insert_with(Default::default);
                    st.state = Some(api::NodeState::READY);
                    st.message = None;
                    if addr.is_some() {
                        st.addr = addr;
                    }
                    if data_addr.is_some() {
                        n.data_addr = data_addr;
                    }
                    n.api.description = Some(merged);
                    tx.update(n)?;
                }
                Ok(())
            })
            .await?;
        let session_id = new_id();
        let deadline = tokio::time::Instant::now() + self.ttl();
        self.sessions().open(node_id, &session_id, deadline);
        Ok(SessionInfo {
            session_id,
            heartbeat_period: self.heartbeat,
        })
    }

    async fn heartbeat(&self, node_id: &str, session_id: &str) -> Result<Duration> {
        let deadline = tokio::time::Instant::now() + self.ttl();
        if !self.sessions().heartbeat(node_id, session_id, deadline) {
            return Err(not_registered());
        }
        Ok(self.heartbeat)
    }

    async fn update_task_status(
        &self,
        node_id: &str,
        _session_id: &str,
        updates: Vec<StatusUpdate>,
    ) -> Result<()> {
        self.store
            .update_batched(|tx| {
                for u in &updates {
                    apply_status(tx, node_id, u)?;
                }
                Ok(())
            })
            .await
    }

    async fn attach_network(
        &self,
        node_id: &str,
        session_id: &str,
        container_id: &str,
        network: &str,
        aliases: &[String],
    ) -> Result<crate::exec::Attachment> {
        self.require_session(node_id, session_id)?;
        let req = crate::controlapi::attachment::AttachRequest {
            node_id: node_id.to_string(),
            container_id: container_id.to_string(),
            network: network.to_string(),
            aliases: aliases.to_vec(),
        };
        let (task, net) = crate::controlapi::attachment::attach(&self.store, &req).await?;
        Ok(crate::controlapi::attachment::node_attachment(&task, &net))
    }

    async fn detach_network(
        &self,
        node_id: &str,
        session_id: &str,
        container_id: &str,
    ) -> Result<()> {
        self.require_session(node_id, session_id)?;
        crate::controlapi::attachment::detach_on(&self.store, node_id, container_id).await
    }

    async fn node_networks(
        &self,
        node_id: &str,
        session_id: &str,
    ) -> Result<Vec<crate::controlapi::network::NodeNetwork>> {
        self.require_session(node_id, session_id)?;
        Ok(crate::controlapi::network::on_node(&self.store, node_id))
    }

    async fn task_dependency(
        &self,
        node_id: &str,
        _session_id: &str,
        task_id: &str,
        kind: crate::exec::DepKind,
        id: &str,
    ) -> Result<Option<Vec<u8>>> {
        Ok(self.store.view(|v| {
            let t = v.get::<Task>(task_id)?;
            if t.node_id() != Some(node_id) {
                return None;
            }
            if kind == crate::exec::DepKind::Network {
                t.networks.iter().find(|a| a.network_id == id)?;
                let n = v.get::<crate::model::Network>(id)?;
                let spec = crate::allocator::network::node_spec(&n);
                return serde_json::to_vec(&spec).ok();
            }
            if kind == crate::exec::DepKind::RegistryAuth {
                let auth = v
                    .get::<crate::model::Service>(t.service_id())?
                    .registry_auth?;
                return Some(auth.into_bytes());
            }
            let cs = t.api.spec.as_ref()?.container_spec.as_ref()?;
            let data = match kind {
                crate::exec::DepKind::Secret => {
                    cs.secrets
                        .iter()
                        .flatten()
                        .find(|s| s.secret_id.as_deref() == Some(id))?;
                    v.get::<crate::model::Secret>(id)?.api.spec?.data
                }
                crate::exec::DepKind::Config => {
                    cs.configs
                        .iter()
                        .flatten()
                        .find(|c| c.config_id.as_deref() == Some(id))?;
                    v.get::<crate::model::Config>(id)?.api.spec?.data
                }
                crate::exec::DepKind::RegistryAuth | crate::exec::DepKind::Network => return None,
            };
            decode(data.as_deref().unwrap_or(""))
        }))
    }

    async fn service_records(
        &self,
        node_id: &str,
        _session_id: &str,
    ) -> Result<tokio::sync::watch::Receiver<crate::exec::ServiceRecords>> {
        let node = node_id.to_string();
        let (first, mut watch) = self
            .store
            .view_and_watch(|v| super::records::service_records(v.tables(), &node));
        let (tx, rx) = tokio::sync::watch::channel(first);
        let store = self.store.clone();
        let cancel = self.cancel.clone();
        tokio::spawn(async move {
            loop {
                if crate::store::Watched::next(&mut watch, &cancel)
                    .await
                    .is_none()
                {
                    return;
                }
                // Names follow task starts in bursts: one pass per burst.
                if crate::store::Watched::burst(&mut watch, &cancel, RECORDS_DEBOUNCE)
                    .await
                    .is_none()
                {
                    return;
                }
                let next = store.view(|v| super::records::service_records(v.tables(), &node));
                tx.send_if_modified(|cur| {
                    let changed = *cur != next;
                    if changed {
                        *cur = next;
                    }
                    changed
                });
                if tx.is_closed() {
                    return;
                }
            }
        });
        Ok(rx)
    }

    async fn assignments(
        &self,
        node_id: &str,
        _session_id: &str,
    ) -> Result<mpsc::Receiver<AssignmentSet>> {
        let (tx, rx) = mpsc::channel(64);
        let node = node_id.to_string();
        let (mut known, mut watch) = self
            .store
            .view_and_watch(|v| assignments::for_node(v.tasks_by_node(&node).iter()));
        let first = AssignmentSet {
            full: true,
            changes: known
                .values()
                .map(|t| Assignment::Update(Box::new(t.clone())))
                .collect(),
        };
        let store = self.store.clone();
        let cancel = self.cancel.clone();
        tokio::spawn(async move {
            if tx.send(first).await.is_err() {
                return;
            }
            loop {
                let next = tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = watch.recv() => r,
                };
                let touches_node = match next {
                    Ok(c) => c.events.iter().any(|e| match &e.object {
                        Some(crate::model::Object::Task(t)) => t.node_id() == Some(node.as_str()),
                        None => true,
                        _ => false,
                    }),
                    Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => return,
                };
                if !touches_node {
                    continue;
                }
                let next: BTreeMap<String, Task> =
                    store.view(|v| assignments::for_node(v.tasks_by_node(&node).iter()));
                let changes = assignments::diff(&known, &next);
                known = next;
                if !changes.is_empty()
                    && tx
                        .send(AssignmentSet {
                            full: false,
                            changes,
                        })
                        .await
                        .is_err()
                {
                    return;
                }
            }
        });
        Ok(rx)
    }

    async fn log_subscriptions(
        &self,
        node_id: &str,
        _session_id: &str,
    ) -> Result<mpsc::Receiver<crate::logbroker::Subscription>> {
        Ok(self.broker.listen(node_id))
    }

    async fn publish_logs(
        &self,
        node_id: &str,
        _session_id: &str,
        subscription_id: &str,
        messages: Vec<crate::exec::LogMessage>,
        close: bool,
    ) -> Result<bool> {
        Ok(self
            .broker
            .publish(node_id, subscription_id, messages, close)
            .await)
    }
}

/// swarmkit's answer to a call on a session that is not the node's
/// current one: the node must open a new session.
fn not_registered() -> Error {
    Error::new(
        crate::ErrorKind::Unavailable,
        "rpc error: code = NotFound desc = node not registered",
    )
}
