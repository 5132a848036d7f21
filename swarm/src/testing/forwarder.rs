//! Forwarded writes in process: what `raft::GrpcForwarder` and the leader's
//! `Cluster.Propose` handler do over gRPC, as a call on the leader node's
//! [`Store::propose_checked`](crate::store::Store::propose_checked), through
//! the same faults as the raft RPCs.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::router::Router;
use crate::error::Error;
use crate::error::Result;
use crate::raft::wire::ProposeReply;
use crate::raft::Forwarder;
use crate::raft::NodeId;
use crate::store::Proposed;
use crate::store::Store;
use crate::store::StoreAction;
use crate::transport::status::from_status;
use crate::transport::status::is_transport;
use crate::transport::status::to_status;

/// How long a forwarded write may take before the caller counts the swarm
/// as leaderless: the gRPC forwarder's deadline.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// The [`Forwarder`] of node `from`.
#[derive(Debug, Clone)]
pub struct SimForwarder {
    router: Router,
    from: NodeId,
}

impl SimForwarder {
    /// The forwarder node `from` hands writes to the leader with.
    pub fn new(router: Router, from: NodeId) -> Self {
        SimForwarder { router, from }
    }
}

impl SimForwarder {
    /// Runs `call` on the store of the node at `addr` as a gRPC call would
    /// reach it: through the router's faults both ways, bounded in time.
    /// Every way the call can fail in transit is "no leader", as the gRPC
    /// forwarder reports a transport error: the write may or may not have
    /// happened (a lost reply), exactly as over the network.
    async fn over_the_wire<T, F, Fut>(&self, addr: &str, call: F) -> Result<T>
    where
        F: FnOnce(Arc<Store>) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let to = Router::node_of(addr).ok_or_else(Error::no_leader)?;
        let from = self.from;
        self.router
            .leg(from, to, from, to)
            .await
            .map_err(|_| Error::no_leader())?;
        let store = self.router.store(to).ok_or_else(Error::no_leader)?;
        let outcome = tokio::time::timeout(FORWARD_TIMEOUT, call(store)).await;
        self.router
            .leg(from, to, to, from)
            .await
            .map_err(|_| Error::no_leader())?;
        match outcome {
            Err(_) => Err(Error::no_leader()),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(across_the_wire(&e)),
        }
    }
}

#[async_trait]
impl Forwarder for SimForwarder {
    async fn forward(
        &self,
        addr: &str,
        base: u64,
        actions: Vec<StoreAction>,
    ) -> Result<ProposeReply> {
        let proposed = self
            .over_the_wire(addr, |store| async move {
                store.propose_checked(base, actions).await
            })
            .await?;
        Ok(match proposed {
            Proposed::Committed(i) => ProposeReply::Committed(i),
            Proposed::Stale(i) => ProposeReply::Stale(i),
        })
    }

    async fn read_index(&self, addr: &str) -> Result<u64> {
        self.over_the_wire(addr, |store| async move { store.read_index_here().await })
            .await
    }
}

/// The error crosses the wire as a gRPC status and comes back as the gRPC
/// forwarder would return it.
fn across_the_wire(e: &Error) -> Error {
    let status = to_status(e);
    if is_transport(&status) {
        Error::no_leader()
    } else {
        from_status(&status)
    }
}
