//! The node's side of standalone containers on swarm networks: a manager
//! writes the attachment into the store itself; a worker asks the leader's
//! dispatcher over its session (swarmkit's `ResourceAllocator`), and for
//! the networks it shows.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::worker::WorkerNode;
use super::Phase;
use super::SwarmNode;
use crate::controlapi::attachment;
use crate::dispatcher::DispatcherApi;
use crate::error::Error;
use crate::error::ErrorKind;
use crate::error::Result;
use crate::exec::Attachment;
use crate::exec::AttachmentAllocator;

/// How long a worker waits for its agent to have a session (a leader
/// change in progress) before `docker run --network` fails.
const SESSION_WAIT: Duration = Duration::from_secs(10);

/// How long a worker's `docker network ls/inspect` waits for its session.
const VIEW_WAIT: Duration = Duration::from_secs(2);

impl SwarmNode {
    fn worker_node(&self) -> Option<Arc<WorkerNode>> {
        match &*self.phase.read().unwrap_or_else(|e| e.into_inner()) {
            Phase::Worker(w) => Some(w.clone()),
            _ => None,
        }
    }

    /// On a worker, the swarm networks its tasks and standalone containers
    /// are on, asked of the leader over its session; `None` on a node that
    /// is no worker (a manager reads its own store).
    pub async fn worker_networks(
        &self,
    ) -> Option<Result<Vec<crate::controlapi::network::NodeNetwork>>> {
        let w = self.worker_node()?;
        let asked = async {
            let (remote, session) = w.session(VIEW_WAIT).await?;
            let node = &w.node_state().node_id;
            remote.node_networks(node, &session).await
        };
        Some(asked.await)
    }
}

#[async_trait]
impl AttachmentAllocator for SwarmNode {
    async fn attach(
        &self,
        container_id: &str,
        network: &str,
        aliases: &[String],
    ) -> Result<Attachment> {
        if let Some(w) = self.worker_node() {
            let (remote, session) = w.session(SESSION_WAIT).await?;
            let node = &w.node_state().node_id;
            return remote
                .attach_network(node, &session, container_id, network, aliases)
                .await;
        }
        let m = match self.manager() {
            Ok(m) => m,
            Err(_) if self.membership().is_none() => {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("network {network} not found"),
                ))
            }
            Err(e) => return Err(e),
        };
        let req = attachment::AttachRequest {
            node_id: m.node_id().to_string(),
            container_id: container_id.to_string(),
            network: network.to_string(),
            aliases: aliases.to_vec(),
        };
        let (task, net) = attachment::attach(m.store(), &req).await?;
        Ok(attachment::node_attachment(&task, &net))
    }

    async fn detach(&self, container_id: &str) -> Result<()> {
        if let Some(w) = self.worker_node() {
            let (remote, session) = w.session(SESSION_WAIT).await?;
            let node = &w.node_state().node_id;
            return remote.detach_network(node, &session, container_id).await;
        }
        match self.manager() {
            Ok(m) => attachment::detach(m.store(), container_id).await,
            Err(_) => Ok(()),
        }
    }

    async fn network_subnets(&self) -> Vec<String> {
        let Ok(m) = self.manager() else {
            return Vec::new();
        };
        crate::controlapi::network::list(m.store())
            .iter()
            .filter_map(|n| n.api.ipam.as_ref()?.config.as_ref())
            .flatten()
            .filter_map(|c| c.subnet.clone())
            .collect()
    }
}
