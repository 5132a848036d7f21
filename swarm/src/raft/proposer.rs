//! `RaftProposer`: the store's writes go through openraft's `client_write`;
//! on a manager that does not lead, to the leader through `Cluster.Propose`
//! (swarmkit's raft proxy, at the level of one transaction).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use openraft::error::CheckIsLeaderError;
use openraft::error::ClientWriteError;
use openraft::error::RaftError;

use super::NodeId;
use super::Proposal;
use super::ShoalRaft;
use super::SpaceGuard;
use crate::error::Error;
use crate::error::ErrorKind;
use crate::error::Result;
use crate::raft::wire::ProposeReply;
use crate::raft::wire::ProposeRequest;
use crate::raft::wire::ReadIndexRequest;
use crate::store::Proposed;
use crate::store::Proposer;
use crate::store::SharedState;
use crate::store::StoreAction;
use crate::transport::proto::cluster::cluster_client::ClusterClient;
use crate::transport::Channels;

/// How long a write may wait for a commit before the swarm counts as
/// having no leader (the leader lost its quorum, or none is elected).
const COMMIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a write waits for an election before it fails.
const ELECTION_WAIT: Duration = Duration::from_secs(3);
/// How long a forwarded write waits for this node to apply it.
const APPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Hands a transaction to the leader at an address (`Cluster.Propose`).
#[async_trait]
pub trait Forwarder: Send + Sync {
    /// Asks the leader at `addr` to commit `actions` if they still hold there.
    async fn forward(
        &self,
        addr: &str,
        base: u64,
        actions: Vec<StoreAction>,
    ) -> Result<ProposeReply>;

    /// Asks the leader at `addr` for its read index (`Cluster.ReadIndex`).
    async fn read_index(&self, addr: &str) -> Result<u64>;
}

/// [`Forwarder`] over the managers' gRPC channels.
pub struct GrpcForwarder(pub Channels);

#[async_trait]
impl Forwarder for GrpcForwarder {
    async fn forward(
        &self,
        addr: &str,
        base: u64,
        actions: Vec<StoreAction>,
    ) -> Result<ProposeReply> {
        let mut client = ClusterClient::new(self.0.get(addr)?)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        leader_answer(client.propose(ProposeRequest { base, actions })).await
    }

    async fn read_index(&self, addr: &str) -> Result<u64> {
        let mut client = ClusterClient::new(self.0.get(addr)?);
        let reply = leader_answer(client.read_index(ReadIndexRequest {})).await?;
        Ok(reply.index)
    }
}

/// The answer of a call to the leader, bounded by [`COMMIT_TIMEOUT`]; a
/// timeout or a transport failure means the swarm has no leader (whether
/// a forwarded write happened is then unknown).
async fn leader_answer<T>(
    call: impl std::future::Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T> {
    match tokio::time::timeout(COMMIT_TIMEOUT, call).await {
        Err(_) => Err(Error::no_leader()),
        Ok(Err(s)) if crate::transport::status::is_transport(&s) => Err(Error::no_leader()),
        Ok(Err(s)) => Err(crate::transport::status::from_status(&s)),
        Ok(Ok(r)) => Ok(r.into_inner()),
    }
}

/// Proposes store transactions to raft; returns once applied here.
pub struct RaftProposer {
    raft: ShoalRaft,
    state: Arc<SharedState>,
    forwarder: Option<Arc<dyn Forwarder>>,
    space: Option<SpaceGuard>,
}

impl RaftProposer {
    /// A proposer over a started raft instance whose state machine applies
    /// to `state`; `forwarder` reaches the leader when this node does not
    /// lead (none: a lone manager).
    pub fn new(
        raft: ShoalRaft,
        state: Arc<SharedState>,
        forwarder: Option<Arc<dyn Forwarder>>,
    ) -> Self {
        RaftProposer {
            raft,
            state,
            forwarder,
            space: None,
        }
    }

    /// Refuses writes while `guard` finds the raft directory's filesystem
    /// nearly full, so a full disk never reaches the log (see `space`).
    pub fn with_space_guard(mut self, guard: SpaceGuard) -> Self {
        self.space = Some(guard);
        self
    }

    async fn forward(&self, addr: &str, base: u64, actions: Vec<StoreAction>) -> Result<Proposed> {
        let Some(forwarder) = &self.forwarder else {
            return Err(Error::no_leader());
        };
        match forwarder.forward(addr, base, actions).await? {
            ProposeReply::Committed(index) => {
                // The caller reads its own write next: apply it here first,
                // waiting as long as this node keeps catching up.
                let mut seen = self.state.applied_index();
                while !self.state.wait_applied(index, APPLY_TIMEOUT).await {
                    let now = self.state.applied_index();
                    if now == seen {
                        return Err(Error::new(
                            ErrorKind::Unavailable,
                            format!("the write was committed at index {index}, but this manager is not catching up with the leader (applied {now})"),
                        ));
                    }
                    seen = now;
                }
                Ok(Proposed::Committed(index))
            }
            ProposeReply::Stale(index) => Ok(Proposed::Stale(index)),
        }
    }

    /// Fails fast when this node knows no leader with a quorum (a leader
    /// cut off from the rest keeps its title until a new term starts).
    fn check_leader(&self) -> Result<()> {
        let m = self.raft.metrics().borrow().clone();
        let ok = match m.current_leader {
            None => false,
            Some(l) if l == m.id => {
                m.membership_config.membership().voter_ids().count() <= 1
                    || m.millis_since_quorum_ack
                        .is_some_and(|ms| ms <= 2 * super::ELECTION_MAX_MS)
            }
            Some(_) => true,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::no_leader())
        }
    }

    async fn write(
        &self,
        base: u64,
        actions: Vec<StoreAction>,
        may_forward: bool,
    ) -> Result<Proposed> {
        if self.check_leader().is_err() {
            // An election may be under way: give it a moment (nothing was
            // sent yet, so waiting cannot make the write ambiguous).
            let _ = self
                .raft
                .wait(Some(ELECTION_WAIT))
                .metrics(|m| m.current_leader.is_some(), "a leader")
                .await;
            self.check_leader()?;
        }
        if let Some(space) = &self.space {
            space.check()?;
        }
        let call = self.raft.client_write(Proposal {
            actions: actions.clone(),
        });
        match tokio::time::timeout(COMMIT_TIMEOUT, call).await {
            Err(_) => Err(Error::no_leader()),
            Ok(Ok(resp)) => Ok(Proposed::Committed(resp.log_id.index)),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                match (may_forward, f.leader_node) {
                    (true, Some(node)) => self.forward(&node.addr, base, actions).await,
                    _ => Err(Error::no_leader()),
                }
            }
            // A raft that stopped under the write (its manager is shutting
            // down): whether it committed is unknown, as with a timeout.
            Ok(Err(RaftError::Fatal(_))) => Err(Error::no_leader()),
            Ok(Err(e)) => Err(Error::internal(format!("raft: {e}"))),
        }
    }
}

#[async_trait]
impl Proposer for RaftProposer {
    async fn propose(&self, base: u64, actions: Vec<StoreAction>) -> Result<Proposed> {
        self.write(base, actions, true).await
    }

    async fn propose_here(&self, base: u64, actions: Vec<StoreAction>) -> Result<Proposed> {
        self.write(base, actions, false).await
    }

    async fn read_index(&self) -> Result<Option<u64>> {
        let leads = {
            let m = self.raft.metrics();
            let m = m.borrow();
            m.current_leader == Some(m.id)
        };
        // The leader applies a write before acknowledging it.
        if leads {
            return Ok(None);
        }
        let addr = super::membership::leader_addr(&self.raft).ok_or_else(Error::no_leader)?;
        let forwarder = self.forwarder.as_ref().ok_or_else(Error::no_leader)?;
        forwarder.read_index(&addr).await.map(Some)
    }

    async fn read_index_here(&self) -> Result<u64> {
        // Confirms with a quorum that this node still leads, then waits
        // until it has applied what it had committed.
        match tokio::time::timeout(COMMIT_TIMEOUT, self.raft.ensure_linearizable()).await {
            Ok(Ok(log_id)) => Ok(log_id.map_or(0, |l| l.index)),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_)))) | Err(_) => {
                Err(Error::no_leader())
            }
            Ok(Err(e)) => Err(Error::new(ErrorKind::Unavailable, format!("raft: {e}"))),
        }
    }
}

/// The raft node ID of a manager, derived from its swarm node ID.
pub fn raft_id(node_id: &str) -> NodeId {
    let digest = ring::digest::digest(&ring::digest::SHA256, node_id.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(b)
}

/// Whether `e` says the swarm has no leader right now.
pub fn is_no_leader(e: &Error) -> bool {
    e.kind() == ErrorKind::Unknown && e.message().ends_with(crate::error::NO_LEADER)
}
