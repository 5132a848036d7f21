//! How a manager's own agent finds the dispatcher: its own, in process,
//! while it leads; the leader's over the network otherwise.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;

use super::Manager;
use crate::dispatcher::client::RemoteConnector;
use crate::dispatcher::Connector;
use crate::dispatcher::DispatcherApi;
use crate::dispatcher::Local;
use crate::dispatcher::Remotes;
use crate::error::Result;

/// The connector of a manager's agent.
pub struct ManagerConnector {
    slot: watch::Receiver<Option<Arc<Local>>>,
    remote: RemoteConnector,
    raft: crate::raft::ShoalRaft,
}

impl ManagerConnector {
    /// The connector for `m`'s agent.
    pub fn new(m: &Arc<Manager>) -> Self {
        ManagerConnector {
            slot: m.slot.subscribe(),
            remote: RemoteConnector {
                remotes: Remotes::default(),
                channels: m.channels.clone(),
                sessions: m.sessions.clone(),
                current: watch::Sender::new(None),
            },
            raft: m.raft.clone(),
        }
    }
}

#[async_trait]
impl Connector for ManagerConnector {
    async fn connect(&self) -> Result<Arc<dyn DispatcherApi>> {
        if let Some(local) = self.slot.borrow().clone().filter(|l| l.is_serving()) {
            return Ok(local);
        }
        let m = self.raft.metrics().borrow().clone();
        let mut addrs: Vec<(bool, String)> = m
            .membership_config
            .nodes()
            .filter(|(id, _)| **id != m.id)
            .map(|(id, n)| (Some(*id) == m.current_leader, n.addr.clone()))
            .collect();
        addrs.sort_by_key(|a| std::cmp::Reverse(a.0));
        self.remote
            .remotes
            .replace(addrs.into_iter().map(|(_, a)| a).collect());
        self.remote.connect().await
    }
}
