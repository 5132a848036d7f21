//! Promotion and demotion as the node lives them: the node notices its new
//! role (a worker from its session, a manager from leaving the raft
//! membership), renews its certificate for that role, and restarts as a
//! manager or a worker. Running tasks keep running across the change; the
//! new agent adopts them.

use std::sync::Arc;
use std::time::Duration;

use super::state::NodeState;
use super::Phase;
use super::SwarmNode;
use crate::ca::identity::Role;
use crate::ca::tls::NodeCerts;
use crate::error::Result;
use crate::model::api;

/// How long to wait before trying a failed change again.
const RETRY: Duration = Duration::from_secs(2);

impl SwarmNode {
    /// Watches for role changes for as long as the node lives.
    pub(super) async fn watch_roles(self: Arc<Self>) {
        let mut generation = self.generation.subscribe();
        loop {
            let phase = self.phase_snapshot();
            match phase {
                Snapshot::Manager(m) => {
                    tokio::select! {
                        r = generation.changed() => if r.is_err() { return },
                        _ = m.demoted() => self.demote(&m).await,
                    }
                }
                Snapshot::Worker(w) => {
                    let mut sessions = w.sessions();
                    let promoted = async move {
                        let _ = sessions
                            .wait_for(|m| {
                                m.as_ref().and_then(|m| m.desired_role)
                                    == Some(api::NodeSpecRoleEnum::MANAGER)
                            })
                            .await;
                    };
                    tokio::select! {
                        r = generation.changed() => if r.is_err() { return },
                        _ = promoted => self.promote(&w).await,
                    }
                }
                Snapshot::Other => {
                    if generation.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    fn phase_snapshot(&self) -> Snapshot {
        match &*self.phase.read().unwrap_or_else(|e| e.into_inner()) {
            Phase::Manager(m) => Snapshot::Manager(m.clone()),
            Phase::Worker(w) => Snapshot::Worker(w.clone()),
            _ => Snapshot::Other,
        }
    }

    fn still(&self, f: impl Fn(&Phase) -> bool) -> bool {
        f(&self.phase.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// A manager that left the raft membership becomes a worker.
    async fn demote(&self, m: &Arc<crate::manager::Manager>) {
        let _g = self.lifecycle.lock().await;
        if !self.still(|p| matches!(p, Phase::Manager(x) if Arc::ptr_eq(x, m))) {
            return;
        }
        let peers = m.peer_addrs();
        let (certs, generation) = match crate::ca::renewer::renew(m.tls(), &peers).await {
            Ok((c, g)) if role_of(&c) == Some(Role::Worker) => (c, g),
            Ok(_) => {
                tracing::warn!("demoted, but the managers still issue a manager certificate");
                tokio::time::sleep(RETRY).await;
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "demoted, but no manager renewed the certificate yet");
                tokio::time::sleep(RETRY).await;
                return;
            }
        };
        tracing::info!("this manager was demoted: continuing as a worker");
        m.stop().await;
        let dir = self.swarm_dir();
        let _ = std::fs::remove_dir_all(dir.join("raft"));
        let _ = std::fs::remove_file(dir.join("raft-dek.json"));
        let mut state = m.node_state().clone();
        state.role = Role::Worker;
        state.remotes = peers;
        state.ca_generation = generation;
        if let Err(e) = self.become_worker(state, &certs) {
            tracing::error!(error = %e, "starting as a worker after demotion failed");
        }
    }

    fn become_worker(&self, state: NodeState, certs: &NodeCerts) -> Result<()> {
        crate::ca::keystore::CertStore::new(&self.swarm_dir()).save(certs, None)?;
        state.save(&self.swarm_dir())?;
        let w = self.start_worker(state, certs)?;
        self.set(Phase::Worker(w));
        Ok(())
    }

    /// A worker whose spec asks for a manager becomes one.
    async fn promote(&self, w: &Arc<super::WorkerNode>) {
        let _g = self.lifecycle.lock().await;
        if !self.still(|p| matches!(p, Phase::Worker(x) if Arc::ptr_eq(x, w))) {
            return;
        }
        let remotes = w.managers();
        let (certs, generation) = match crate::ca::renewer::renew(w.tls(), &remotes).await {
            Ok((c, g)) if role_of(&c) == Some(Role::Manager) => (c, g),
            other => {
                if let Err(e) = other {
                    tracing::warn!(error = %e, "promoted, but no manager renewed the certificate yet");
                }
                tokio::time::sleep(RETRY).await;
                return;
            }
        };
        let mut state = w.node_state().clone();
        state.ca_generation = generation;
        let Ok(listen) = state.listen_addr.parse::<std::net::SocketAddr>() else {
            return;
        };
        tracing::info!("this worker was promoted: joining the managers");
        w.stop().await;
        state.role = Role::Manager;
        let dir = self.swarm_dir();
        if let Err(e) = crate::ca::keystore::CertStore::new(&dir).save(&certs, None) {
            tracing::error!(error = %e, "saving the manager certificate failed");
        }
        let mut joined = None;
        for remote in &remotes {
            // Each attempt binds anew: a failed attempt's manager closed its copy.
            let l = match crate::transport::server::bind(listen).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %e, "promoted, but the listen address is taken");
                    break;
                }
            };
            match crate::manager::Manager::join(
                self.manager_config(),
                state.clone(),
                &certs,
                None,
                l,
                remote,
            )
            .await
            {
                Ok(m) => {
                    joined = Some(m);
                    break;
                }
                Err(e) => tracing::warn!(%remote, error = %e, "joining raft failed"),
            }
        }
        match joined {
            Some(m) => self.set(Phase::Manager(m)),
            None => {
                // Carry on as a worker (a manager certificate serves an agent
                // too) and try again on the next change.
                state.role = Role::Worker;
                if let Err(e) = self.become_worker(state, &certs) {
                    tracing::error!(error = %e, "restarting as a worker failed");
                }
            }
        }
    }
}

fn role_of(c: &NodeCerts) -> Option<Role> {
    crate::ca::identity::parse_cert_pem(&c.cert_pem)
        .ok()
        .map(|i| i.role)
}

/// The phase, without the lock.
pub(super) enum Snapshot {
    Manager(Arc<crate::manager::Manager>),
    Worker(Arc<super::WorkerNode>),
    Other,
}
