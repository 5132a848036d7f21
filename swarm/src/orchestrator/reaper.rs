//! Task history retention: keep at most `limit` finished tasks per slot (or
//! per node for global services); delete tasks of removed services once no
//! node holds them.

use std::collections::BTreeMap;

use super::is_alive;
use super::is_wanted;
use super::Action;
use crate::model::api::TaskState;
use crate::model::Task;

/// Whether the task is still meant to run (or complete) and has not ended:
/// never trimmed.
fn is_current(t: &Task) -> bool {
    is_wanted(t) && is_alive(t)
}

/// Whether a task marked for removal can go at once (swarmkit's reaper):
/// it never reached a node, or it has stopped.
fn is_removed(t: &Task) -> bool {
    t.desired_state() == TaskState::REMOVE
        && (t.state() < TaskState::ASSIGNED || t.state() >= TaskState::COMPLETE)
}

/// Deletions that bring one service's tasks within `limit` per slot (or per
/// node for global services), oldest first. As in swarmkit the limit counts
/// the current task too, and a task no longer wanted goes even if its node
/// has not reported it stopped (the node drops it from its assignments).
/// Tasks marked for removal go first, whatever the limit.
pub fn trim(tasks: &[&Task], limit: i64) -> Vec<Action> {
    let limit = limit.max(0) as usize;
    let mut out = Vec::new();
    let mut groups: BTreeMap<(i64, &str), Vec<&Task>> = BTreeMap::new();
    for t in tasks {
        if is_removed(t) {
            out.push(Action::Delete(t.api.id.clone().unwrap_or_default()));
            continue;
        }
        let key = match t.api.slot.filter(|s| *s > 0) {
            Some(slot) => (slot, ""),
            None => (0, t.node_id().unwrap_or("")),
        };
        groups.entry(key).or_default().push(t);
    }
    for (_, mut all) in groups {
        if all.len() <= limit {
            continue;
        }
        all.sort_by(|a, b| a.api.created_at.cmp(&b.api.created_at));
        let mut left = all.len();
        for t in all {
            if left <= limit {
                break;
            }
            if is_current(t) {
                continue;
            }
            out.push(Action::Delete(t.api.id.clone().unwrap_or_default()));
            left -= 1;
        }
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

    #[test]
    fn limit_counts_the_current_task_which_is_never_trimmed() {
        let mut current = old("now", 1, "9");
        current.api.desired_state = Some(TaskState::RUNNING);
        current.api.status = Some(api::TaskStatus {
            state: Some(TaskState::ASSIGNED),
            ..Default::default()
        });
        // Replaced but never reported stopped: still history.
        let mut stuck = old("stuck", 1, "2");
        stuck.api.status = current.api.status.clone();
        let ts = [old("a", 1, "1"), stuck, current];
        let refs: Vec<&Task> = ts.iter().collect();
        assert_eq!(
            trim(&refs, 2),
            vec![Action::Delete("a".into())],
            "oldest first, current kept"
        );
        assert_eq!(
            trim(&refs, 1),
            vec![Action::Delete("a".into()), Action::Delete("stuck".into())]
        );
        assert_eq!(
            trim(&refs, 0).len(),
            2,
            "the current task survives a zero limit"
        );
    }

    #[test]
    fn a_task_marked_for_removal_goes_once_stopped_or_if_never_assigned() {
        let with = |id: &str, state: TaskState| {
            let mut t = old(id, 1, "1");
            t.api.desired_state = Some(TaskState::REMOVE);
            t.api.status.as_mut().unwrap().state = Some(state);
            t
        };
        let ts = [
            with("pending", TaskState::PENDING),
            with("running", TaskState::RUNNING),
            with("stopped", TaskState::SHUTDOWN),
        ];
        let refs: Vec<&Task> = ts.iter().collect();
        assert_eq!(
            trim(&refs, 5),
            vec![
                Action::Delete("pending".into()),
                Action::Delete("stopped".into())
            ],
            "the running one waits until its node stops it"
        );
    }
}
