//! Pure assignment computation: which tasks a node must know about, and the
//! difference between two such sets.

use std::collections::BTreeMap;

use super::Assignment;
use crate::model::api::TaskState;
use crate::model::Task;

/// The tasks a node is told about: assigned to it, and past the scheduler.
/// A standalone container's network attachment is not one: the node's
/// engine runs that container itself.
pub fn for_node<'a>(tasks: impl IntoIterator<Item = &'a Task>) -> BTreeMap<String, Task> {
    tasks
        .into_iter()
        .filter(|t| t.state() >= TaskState::ASSIGNED)
        .filter(|t| !crate::controlapi::attachment::is_attachment(t))
        .filter(|t| t.desired_state() <= TaskState::REMOVE)
        .map(|t| (t.api.id.clone().unwrap_or_default(), t.clone()))
        .collect()
}

/// Changes that turn `prev` into `next`. A task counts as changed when its
/// desired state, spec or networks (`docker network connect`) changed;
/// status changes come from the agent itself.
pub fn diff(prev: &BTreeMap<String, Task>, next: &BTreeMap<String, Task>) -> Vec<Assignment> {
    let mut out = Vec::new();
    for (id, t) in next {
        let changed = match prev.get(id) {
            None => true,
            Some(p) => {
                p.api.desired_state != t.api.desired_state
                    || p.api.spec != t.api.spec
                    || p.networks != t.networks
            }
        };
        if changed {
            out.push(Assignment::Update(Box::new(t.clone())));
        }
    }
    for id in prev.keys() {
        if !next.contains_key(id) {
            out.push(Assignment::Remove(id.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::api::TaskStatus;

    fn task(id: &str, state: TaskState, desired: TaskState) -> Task {
        let mut t = Task::default();
        t.api.id = Some(id.into());
        t.api.desired_state = Some(desired);
        t.api.status = Some(TaskStatus {
            state: Some(state),
            ..Default::default()
        });
        t
    }

    #[test]
    fn only_scheduled_tasks_are_assigned() {
        let ts = [
            task("a", TaskState::PENDING, TaskState::RUNNING),
            task("b", TaskState::ASSIGNED, TaskState::RUNNING),
            task("c", TaskState::RUNNING, TaskState::SHUTDOWN),
        ];
        let m = for_node(ts.iter());
        assert_eq!(m.keys().collect::<Vec<_>>(), vec!["b", "c"]);
    }

    #[test]
    fn diff_reports_new_changed_and_removed() {
        let prev = for_node(
            [
                task("a", TaskState::RUNNING, TaskState::RUNNING),
                task("b", TaskState::RUNNING, TaskState::RUNNING),
            ]
            .iter(),
        );
        let next = for_node(
            [
                task("a", TaskState::RUNNING, TaskState::SHUTDOWN),
                task("c", TaskState::ASSIGNED, TaskState::RUNNING),
            ]
            .iter(),
        );
        let d = diff(&prev, &next);
        assert_eq!(d.len(), 3);
        assert!(matches!(&d[0], Assignment::Update(t) if t.api.id.as_deref() == Some("a")));
        assert!(matches!(&d[1], Assignment::Update(t) if t.api.id.as_deref() == Some("c")));
        assert_eq!(d[2], Assignment::Remove("b".into()));
        // Status-only changes are not sent back to the agent.
        let same = diff(
            &next,
            &for_node(
                [
                    task("a", TaskState::FAILED, TaskState::SHUTDOWN),
                    task("c", TaskState::RUNNING, TaskState::RUNNING),
                ]
                .iter(),
            ),
        );
        assert!(same.is_empty());
        // A network connected to a task is.
        let mut connected = task("c", TaskState::ASSIGNED, TaskState::RUNNING);
        connected.networks.push(crate::model::NetworkAttachment {
            network_id: "shared".into(),
            ..Default::default()
        });
        let d = diff(&next, &for_node([&next["a"], &connected]));
        assert_eq!(d.len(), 1);
        assert!(matches!(&d[0], Assignment::Update(t) if t.networks.len() == 1));
    }
}
