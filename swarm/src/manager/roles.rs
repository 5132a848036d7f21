//! The leader's role manager (swarmkit's `roleManager`): a manager whose
//! spec was demoted leaves the raft membership once the others keep a
//! quorum without it, and its node object then shows it as a worker. A
//! promotion needs nothing here: the promoted node renews its certificate
//! as a manager and joins raft itself (`Cluster.Join`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Manager;
use crate::model::api;
use crate::model::Node;
use crate::raft::raft_id;
use crate::raft::NodeId;

/// How often the roles are checked.
const EVERY: Duration = Duration::from_millis(500);
/// A manager that has not answered raft for this long does not count
/// towards the quorum a removal must keep.
const WINDOW: Duration = Duration::from_secs(2);

/// One step the role manager takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleAction {
    /// Remove this demoted manager from the raft membership.
    RemoveMember(String),
    /// The demoted node left raft: record it as a worker.
    MarkWorker(String),
}

fn wants_worker(n: &Node) -> bool {
    n.api.spec.as_ref().and_then(|s| s.role) == Some(api::NodeSpecRoleEnum::WORKER)
}

/// The next steps, given the nodes, the raft voters, who leads and who
/// answers. At most one removal per pass, and only if the voters left keep
/// a reachable majority. Pure.
pub fn decide(
    nodes: &[Node],
    voters: &BTreeSet<NodeId>,
    leader: NodeId,
    reachable: impl Fn(NodeId) -> bool,
) -> Vec<RoleAction> {
    let mut out = Vec::new();
    let mut removing = false;
    for n in nodes.iter().filter(|n| wants_worker(n)) {
        let id = n.api.id.clone().unwrap_or_default();
        let rid = raft_id(&id);
        if voters.contains(&rid) {
            if removing {
                continue;
            }
            let rest: Vec<NodeId> = voters.iter().copied().filter(|v| *v != rid).collect();
            let up = rest
                .iter()
                .filter(|v| **v == leader || reachable(**v))
                .count();
            if !rest.is_empty() && up * 2 > rest.len() {
                out.push(RoleAction::RemoveMember(id));
                removing = true;
            }
        } else if n.role == Some(api::NodeSpecRoleEnum::MANAGER) {
            out.push(RoleAction::MarkWorker(id));
        }
    }
    out
}

/// The leader loop applying [`decide`].
pub async fn run(m: Arc<Manager>, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
        let voters = crate::raft::membership::voters(&m.raft);
        let nodes: Vec<Node> = m.store.view(|v| v.list::<Node>());
        let actions = decide(&nodes, &voters, m.state.raft_id, |id| {
            m.health.answered_within(id, WINDOW)
        });
        for a in actions {
            match a {
                RoleAction::RemoveMember(id) => {
                    tracing::info!(node = %id, "removing a demoted manager from raft");
                    if let Err(e) = crate::raft::membership::remove(&m.raft, raft_id(&id)).await {
                        tracing::warn!(node = %id, error = ?e, "removing a demoted manager failed");
                    }
                }
                RoleAction::MarkWorker(id) => {
                    let r = m
                        .store
                        .update(|tx| {
                            let Some(mut n) = tx.get::<Node>(&id) else {
                                return Ok(());
                            };
                            n.role = Some(api::NodeSpecRoleEnum::WORKER);
                            n.api.manager_status = None;
                            tx.update(n)
                        })
                        .await;
                    if let Err(e) = r {
                        tracing::debug!(node = %id, error = %e, "recording a demotion failed");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, spec: api::NodeSpecRoleEnum, observed: api::NodeSpecRoleEnum) -> Node {
        let mut n = Node::default();
        n.api.id = Some(id.into());
        n.api.spec = Some(api::NodeSpec {
            role: Some(spec),
            ..Default::default()
        });
        n.role = Some(observed);
        n
    }

    #[test]
    fn a_demoted_manager_leaves_raft_only_with_a_quorum_left() {
        use api::NodeSpecRoleEnum::MANAGER as M;
        use api::NodeSpecRoleEnum::WORKER as W;
        let nodes = vec![node("a", M, M), node("b", M, M), node("c", W, M)];
        let voters: BTreeSet<NodeId> = ["a", "b", "c"].iter().map(|n| raft_id(n)).collect();
        let leader = raft_id("a");
        assert_eq!(
            decide(&nodes, &voters, leader, |_| true),
            vec![RoleAction::RemoveMember("c".into())]
        );
        // b unreachable: a alone is not a majority of {a, b}.
        assert!(decide(&nodes, &voters, leader, |id| id != raft_id("b")).is_empty());
        // Once out of raft, the node is recorded as a worker.
        let voters: BTreeSet<NodeId> = ["a", "b"].iter().map(|n| raft_id(n)).collect();
        assert_eq!(
            decide(&nodes, &voters, leader, |_| true),
            vec![RoleAction::MarkWorker("c".into())]
        );
    }

    #[test]
    fn one_removal_per_pass() {
        use api::NodeSpecRoleEnum::MANAGER as M;
        use api::NodeSpecRoleEnum::WORKER as W;
        let nodes: Vec<Node> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|id| node(id, if *id > "c" { W } else { M }, M))
            .collect();
        let voters: BTreeSet<NodeId> = nodes
            .iter()
            .map(|n| raft_id(n.api.id.as_deref().unwrap()))
            .collect();
        let out = decide(&nodes, &voters, raft_id("a"), |_| true);
        assert_eq!(out.len(), 1);
    }
}
