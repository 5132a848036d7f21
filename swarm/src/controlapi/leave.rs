//! dockerd's refusal of `docker swarm leave` (without `--force`) on a
//! manager, with its quorum arithmetic (moby `daemon/cluster/swarm.go`).

use crate::manager::Manager;
use crate::model::api;
use crate::model::Node;

/// Counts the managers by reachability: (this one reachable, reachable, unreachable).
pub fn manager_stats(nodes: &[Node], self_id: &str) -> (bool, usize, usize) {
    let mut current = false;
    let (mut reachable, mut unreachable) = (0, 0);
    for n in nodes {
        let Some(ms) = &n.api.manager_status else {
            continue;
        };
        match ms.reachability {
            Some(api::Reachability::REACHABLE) => {
                reachable += 1;
                if n.api.id.as_deref() == Some(self_id) {
                    current = true;
                }
            }
            Some(api::Reachability::UNREACHABLE) => unreachable += 1,
            _ => {}
        }
    }
    (current, reachable, unreachable)
}

/// The text of the refusal, from the counts (`active`: this node is an
/// active manager; `stats`: as [`manager_stats`]).
pub fn refusal(active: bool, stats: Option<(bool, usize, usize)>) -> String {
    let mut msg =
        "You are attempting to leave the swarm on a node that is participating as a manager. "
            .to_string();
    if active {
        if let Some((current, reachable, unreachable)) = stats {
            let loses_quorum = reachable as i64 - 2 <= unreachable as i64;
            if current && loses_quorum {
                if reachable == 1 && unreachable == 0 {
                    msg += "Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message. ";
                    return msg;
                }
                msg += &format!(
                    "Removing this node leaves {} managers out of {}. Without a Raft quorum your swarm will be inaccessible. ",
                    reachable - 1,
                    reachable + unreachable
                );
            }
        }
    } else {
        msg += "Doing so may lose the consensus of your cluster. ";
    }
    msg += "The only way to restore a swarm that has lost consensus is to reinitialize it with `--force-new-cluster`. Use `--force` to suppress this message.";
    msg
}

/// Why `m` may not leave without `--force`.
pub fn manager_leave_refusal(m: &Manager) -> String {
    let active = m.has_leader();
    let nodes: Vec<Node> = m.store().view(|v| v.list::<Node>());
    refusal(active, Some(manager_stats(&nodes, m.node_id())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_match_dockerd() {
        assert_eq!(
            refusal(true, Some((true, 1, 0))),
            "You are attempting to leave the swarm on a node that is participating as a manager. Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message. "
        );
        assert_eq!(
            refusal(true, Some((true, 2, 1))),
            "You are attempting to leave the swarm on a node that is participating as a manager. Removing this node leaves 1 managers out of 3. Without a Raft quorum your swarm will be inaccessible. The only way to restore a swarm that has lost consensus is to reinitialize it with `--force-new-cluster`. Use `--force` to suppress this message."
        );
        assert_eq!(
            refusal(true, Some((true, 3, 0))),
            "You are attempting to leave the swarm on a node that is participating as a manager. The only way to restore a swarm that has lost consensus is to reinitialize it with `--force-new-cluster`. Use `--force` to suppress this message."
        );
        assert!(refusal(false, None).contains("Doing so may lose the consensus of your cluster. "));
    }
}
