//! The leader's view of its managers, written into their node objects:
//! `ManagerStatus.Leader` and `Reachability` (what `docker node ls` shows
//! as MANAGER STATUS), from whether each answered raft recently.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Manager;
use crate::model::api;
use crate::model::Node;
use crate::raft::NodeId;

/// How often the statuses are checked.
const EVERY: Duration = Duration::from_millis(500);
/// A manager that has not answered raft for this long is unreachable.
const WINDOW: Duration = Duration::from_secs(2);

/// The manager statuses the node objects should show: for each raft member
/// (by node ID), leader or not and reachable or not. Pure.
pub fn desired(
    nodes: &[Node],
    members: &HashMap<NodeId, String>,
    leader: NodeId,
    reachable: impl Fn(NodeId) -> bool,
) -> Vec<Node> {
    let mut out = Vec::new();
    for n in nodes {
        let id = n.api.id.as_deref().unwrap_or("");
        let rid = crate::raft::raft_id(id);
        let want = members.get(&rid).map(|addr| api::ManagerStatus {
            leader: Some(rid == leader),
            reachability: Some(if rid == leader || reachable(rid) {
                api::Reachability::REACHABLE
            } else {
                api::Reachability::UNREACHABLE
            }),
            addr: Some(addr.clone()),
        });
        // Nodes that never were raft members keep what they have (a joining
        // manager is a member only after its join commits).
        if want.is_none() && n.api.manager_status.is_none() {
            continue;
        }
        if n.api.manager_status != want {
            let mut n = n.clone();
            n.api.manager_status = want;
            out.push(n);
        }
    }
    out
}

/// The leader loop keeping the statuses current.
pub async fn run(m: Arc<Manager>, cancel: CancellationToken) {
    loop {
        let metrics = m.raft.metrics().borrow().clone();
        let members: HashMap<NodeId, String> = metrics
            .membership_config
            .nodes()
            .map(|(id, n)| (*id, n.addr.clone()))
            .collect();
        let nodes: Vec<Node> = m.store.view(|v| v.list::<Node>());
        let changed = desired(&nodes, &members, m.state.raft_id, |id| {
            m.health.answered_within(id, WINDOW)
        });
        if !changed.is_empty() {
            let r = m
                .store
                .update(|tx| {
                    for n in &changed {
                        let Some(mut cur) = tx.get::<Node>(n.api.id.as_deref().unwrap_or(""))
                        else {
                            continue;
                        };
                        cur.api.manager_status = n.api.manager_status.clone();
                        tx.update(cur)?;
                    }
                    Ok(())
                })
                .await;
            if let Err(e) = r {
                tracing::debug!(error = %e, "updating manager statuses failed");
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, status: Option<api::ManagerStatus>) -> Node {
        let mut n = Node::default();
        n.api.id = Some(id.into());
        n.api.manager_status = status;
        n
    }

    #[test]
    fn leader_reachable_and_unreachable_members() {
        let a = crate::raft::raft_id("a");
        let b = crate::raft::raft_id("b");
        let c = crate::raft::raft_id("c");
        let members: HashMap<NodeId, String> = [
            (a, "10.0.0.1:2377".to_string()),
            (b, "10.0.0.2:2377".to_string()),
            (c, "10.0.0.3:2377".to_string()),
        ]
        .into();
        let nodes = vec![
            node("a", None),
            node("b", None),
            node("c", None),
            node("w", None),
        ];
        let out = desired(&nodes, &members, a, |id| id == b);
        assert_eq!(out.len(), 3, "the worker keeps no manager status");
        let st = |id: &str| {
            out.iter()
                .find(|n| n.api.id.as_deref() == Some(id))
                .unwrap()
                .api
                .manager_status
                .clone()
                .unwrap()
        };
        assert_eq!(st("a").leader, Some(true));
        assert_eq!(st("b").reachability, Some(api::Reachability::REACHABLE));
        assert_eq!(st("c").reachability, Some(api::Reachability::UNREACHABLE));
        // Nothing changes when the store already shows it.
        let again: Vec<Node> = nodes
            .iter()
            .map(|n| {
                out.iter()
                    .find(|o| o.api.id == n.api.id)
                    .cloned()
                    .unwrap_or(n.clone())
            })
            .collect();
        assert!(desired(&again, &members, a, |id| id == b).is_empty());
        // A removed member loses its status.
        let gone: HashMap<NodeId, String> =
            members.into_iter().filter(|(id, _)| *id != c).collect();
        let out = desired(&again, &gone, a, |id| id == b);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].api.manager_status, None);
    }
}
