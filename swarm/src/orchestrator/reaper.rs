//! Task history retention: keep at most `limit` finished tasks per slot (or
//! per node for global services); delete tasks of removed services once no
//! node holds them.

use std::collections::BTreeMap;

use super::is_alive;
use super::is_wanted;
use super::Action;
use crate::model::api::TaskState;
use crate::model::Task;

fn is_history(t: &Task) -> bool {
    !is_wanted(t) && (!is_alive(t) || t.state() < TaskState::ASSIGNED || t.node_id().is_none())
}

/// Deletions that bring one service's history within `limit` per slot/node.
pub fn trim(tasks: &[&Task], limit: i64) -> Vec<Action> {
    let limit = limit.max(0) as usize;
    let mut groups: BTreeMap<(i64, &str), Vec<&Task>> = BTreeMap::new();
    for t in tasks.iter().filter(|t| is_history(t)) {
        let key = match t.api.slot.filter(|s| *s > 0) {
            Some(slot) => (slot, ""),
            None => (0, t.node_id().unwrap_or("")),
        };
        groups.entry(key).or_default().push(t);
    }
    let mut out = Vec::new();
    for (_, mut hist) in groups {
        if hist.len() <= limit {
            continue;
        }
        hist.sort_by(|a, b| a.api.created_at.cmp(&b.api.created_at));
        let excess = hist.len() - limit;
        out.extend(
            hist.into_iter()
                .take(excess)
                .map(|t| Action::Delete(t.api.id.clone().unwrap_or_default())),
        );
    }
    out
}

/// Deletions of tasks whose service is gone and that no node still runs.
pub fn orphans(tasks: &[&Task]) -> Vec<Action> {
    tasks
        .iter()
        .filter(|t| !is_alive(t) || t.state() < TaskState::ASSIGNED || t.node_id().is_none())
        .map(|t| Action::Delete(t.api.id.clone().unwrap_or_default()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::api;

    fn old(id: &str, slot: i64, at: &str) -> Task {
        let mut t = Task::default();
        t.api.id = Some(id.into());
        t.api.slot = Some(slot);
        t.api.created_at = Some(at.into());
        t.api.node_id = Some("n".into());
        t.api.desired_state = Some(TaskState::SHUTDOWN);
        t.api.status = Some(api::TaskStatus {
            state: Some(TaskState::FAILED),
            ..Default::default()
        });
        t
    }

    #[test]
    fn keeps_newest_per_slot() {
        let ts = [
            old("a", 1, "1"),
            old("b", 1, "2"),
            old("c", 1, "3"),
            old("d", 2, "1"),
        ];
        let refs: Vec<&Task> = ts.iter().collect();
        assert_eq!(trim(&refs, 2), vec![Action::Delete("a".into())]);
        assert!(trim(&refs, 5).is_empty());
    }
}
