//! A worker: no store and no listener, only the agent, which keeps a session
//! with the leader through whichever manager it can reach.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::state::NodeState;
use crate::ca::tls::NodeCerts;
use crate::ca::tls::TlsState;
use crate::dispatcher::client::Remote;
use crate::dispatcher::client::RemoteConnector;
use crate::dispatcher::Remotes;
use crate::error::Result;
use crate::exec::Executor;
use crate::transport::Channels;

/// A running worker.
pub struct WorkerNode {
    state: NodeState,
    tls: Arc<TlsState>,
    remotes: Remotes,
    sessions: tokio::sync::watch::Sender<Option<crate::dispatcher::wire::SessionMessage>>,
    current: tokio::sync::watch::Sender<Option<Arc<Remote>>>,
    executor: Option<Arc<dyn Executor>>,
    cancel: CancellationToken,
    loops: tokio::sync::Mutex<JoinSet<()>>,
}

impl std::fmt::Debug for WorkerNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerNode")
            .field("node_id", &self.state.node_id)
            .finish_non_exhaustive()
    }
}

impl WorkerNode {
    /// Starts the agent of worker `state` with `certs`; the manager list is
    /// kept current in `<swarm_dir>/state.json`.
    pub fn start(
        swarm_dir: PathBuf,
        state: NodeState,
        certs: &NodeCerts,
        executor: Option<Arc<dyn Executor>>,
    ) -> Result<Arc<Self>> {
        let tls = TlsState::new(certs.clone())?;
        let channels = Channels::new(tls.client_config());
        let remotes = Remotes::new(state.remotes.clone());
        // One copy of what is on disk, changed by the manager list and by
        // certificate renewals alike.
        let saved = Arc::new(std::sync::Mutex::new(state.clone()));
        let persist = {
            let (saved, dir) = (saved.clone(), swarm_dir.clone());
            move |change: &dyn Fn(&mut NodeState)| {
                let mut s = saved.lock().unwrap_or_else(|e| e.into_inner());
                change(&mut s);
                if let Err(e) = s.save(&dir) {
                    tracing::warn!(error = %e, "saving the node state failed");
                }
            }
        };
        let persist = Arc::new(persist);
        {
            let persist = persist.clone();
            remotes.on_change(move |addrs| persist(&|s| s.remotes = addrs.to_vec()));
        }
        let sessions = tokio::sync::watch::Sender::new(None);
        let w = Arc::new(WorkerNode {
            state,
            tls,
            remotes: remotes.clone(),
            sessions: sessions.clone(),
            current: tokio::sync::watch::Sender::new(None),
            executor: executor.clone(),
            cancel: CancellationToken::new(),
            loops: tokio::sync::Mutex::new(JoinSet::new()),
        });
        if let Some(executor) = executor {
            let connector = Arc::new(RemoteConnector {
                remotes,
                channels,
                sessions,
                current: w.current.clone(),
            });
            let agent = crate::agent::run(
                w.state.node_id.clone(),
                w.state.node_addrs(),
                connector,
                executor,
                w.cancel.child_token(),
            );
            let remotes = w.remotes.clone();
            let dir = swarm_dir.clone();
            // The cluster's CA generation, as the sessions report it.
            let (desired_tx, desired) = tokio::sync::watch::channel(w.state.ca_generation);
            let mut messages = w.sessions.subscribe();
            let generations = async move {
                while messages.changed().await.is_ok() {
                    let g = messages
                        .borrow_and_update()
                        .as_ref()
                        .map(|m| m.ca_generation);
                    if let Some(g) = g {
                        desired_tx.send_if_modified(|cur| std::mem::replace(cur, g) != g);
                    }
                }
            };
            let renewer = crate::ca::renewer::run(
                w.tls.clone(),
                w.state.ca_generation,
                desired,
                move || remotes.candidates(),
                move |certs, generation| {
                    crate::ca::keystore::CertStore::new(&dir).save(certs, None)?;
                    persist(&|s| s.ca_generation = generation);
                    Ok(())
                },
                w.cancel.child_token(),
            );
            // The set is new and nobody else holds its lock yet.
            if let Ok(mut set) = w.loops.try_lock() {
                set.spawn(agent);
                set.spawn(renewer);
                let cancel = w.cancel.child_token();
                set.spawn(async move {
                    tokio::select! {
                        _ = cancel.cancelled() => {}
                        _ = generations => {}
                    }
                });
            }
        }
        Ok(w)
    }

    /// This node's membership facts.
    pub fn node_state(&self) -> &NodeState {
        &self.state
    }

    /// This node's TLS identity.
    pub fn tls(&self) -> &Arc<TlsState> {
        &self.tls
    }

    /// The session messages from the leader (the node's role changes).
    pub fn sessions(
        &self,
    ) -> tokio::sync::watch::Receiver<Option<crate::dispatcher::wire::SessionMessage>> {
        self.sessions.subscribe()
    }

    /// The open dispatcher session, waiting at most `limit` for one (the
    /// agent may be between sessions, as after a leader change).
    pub async fn session(&self, limit: Duration) -> Result<(Arc<Remote>, String)> {
        let mut rx = self.current.subscribe();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let remote = rx.borrow_and_update().clone();
            if let Some(r) = &remote {
                if let Some(id) = r.session_id() {
                    return Ok((r.clone(), id));
                }
            }
            let mut messages = remote.map(|r| r.messages());
            tokio::select! {
                _ = rx.changed() => {}
                _ = async {
                    match messages.as_mut() {
                        Some(m) => { let _ = m.changed().await; }
                        None => std::future::pending().await,
                    }
                } => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(crate::Error::new(
                        crate::ErrorKind::Unavailable,
                        "this node has no session with a manager",
                    ));
                }
            }
        }
    }

    /// The managers this worker knows.
    pub fn managers(&self) -> Vec<String> {
        self.remotes.addrs()
    }

    /// Waits until the agent has opened a session with a manager.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let mut rx = self.remotes.sessions();
        tokio::time::timeout(timeout, rx.wait_for(|n| *n > 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Stops the agent; running tasks keep running (a restart adopts them).
    pub async fn stop(&self) {
        self.cancel.cancel();
        let mut set = self.loops.lock().await;
        while set.join_next().await.is_some() {}
    }

    /// Stops the agent and every task container of this node (leaving the
    /// swarm, as dockerd removes a leaving node's containers).
    pub async fn stop_and_remove_tasks(&self) {
        self.stop().await;
        if let Some(e) = &self.executor {
            if let Err(e) = e.prune(&Default::default()).await {
                tracing::warn!(error = %e, "removing task containers failed");
            }
        }
    }
}
