//! The scheduler: assigns pending tasks to nodes.
//!
//! [`pipeline::schedule`] is the pure decision core (filters, then the least
//! loaded node); [`run`] is the driver that feeds it from the store and
//! commits each batch of decisions in one transaction.

pub mod constraint;
pub mod filter;
pub mod pipeline;

use std::collections::HashSet;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use pipeline::schedule;
pub use pipeline::Decision;

use crate::model::api::TaskState;
use crate::model::api::TaskStatus;
use crate::model::Node;
use crate::model::Object;
use crate::model::Task;
use crate::store::EventAction;
use crate::store::Store;
use crate::store::Watched;

/// How long the scheduler waits after a change for more before a pass.
const BATCH_DELAY: std::time::Duration = std::time::Duration::from_millis(50);

/// Message of a task the scheduler placed (swarmkit's).
pub const ASSIGNED_MESSAGE: &str = "scheduler assigned task to node";

fn pending(t: &Task) -> bool {
    t.state() == TaskState::PENDING && t.desired_state() <= TaskState::COMPLETE
}

/// Which pending tasks a pass looks at.
#[derive(Debug, Default)]
pub enum Scope {
    /// Every pending task (at start, and after a change that may free or
    /// add capacity: a node changed, a placed task ended or went away).
    #[default]
    All,
    /// Only these tasks, which became pending since the last pass; the
    /// others were already tried against the same nodes and capacity.
    Tasks(HashSet<String>),
}

impl Scope {
    /// Widens the scope by one change seen on the watch.
    pub fn add(&mut self, w: &Watched) {
        let c = match w {
            Watched::Commit(c) => c,
            Watched::Lagged => {
                *self = Scope::All;
                return;
            }
        };
        for e in &c.events {
            if matches!(self, Scope::All) {
                return;
            }
            match &e.object {
                None | Some(Object::Node(_)) => *self = Scope::All,
                Some(Object::Task(t)) if pending(t) && e.action != EventAction::Remove => {
                    if let Scope::Tasks(ids) = self {
                        ids.insert(t.api.id.clone().unwrap_or_default());
                    }
                }
                Some(Object::Task(t)) => {
                    let freed = e.action == EventAction::Remove
                        || t.desired_state() > TaskState::COMPLETE
                        || t.state() > TaskState::RUNNING;
                    if t.node_id().is_some() && freed {
                        *self = Scope::All;
                    }
                }
                Some(_) => {}
            }
        }
    }
}

/// One scheduling pass over every pending task; returns how many it assigned.
pub async fn pass(store: &Store) -> crate::Result<usize> {
    pass_scoped(store, &Scope::All).await
}

/// One scheduling pass over the pending tasks in `scope`.
pub async fn pass_scoped(store: &Store, scope: &Scope) -> crate::Result<usize> {
    let wanted = |task: &Task| match scope {
        Scope::All => true,
        Scope::Tasks(ids) => ids.contains(task.api.id.as_deref().unwrap_or("")),
    };
    let (nodes, active, queue) = store.view(|v| {
        let t = v.tables();
        let nodes: Vec<Node> = t.iter::<Node>().cloned().collect();
        let mut active = Vec::new();
        let mut queue = Vec::new();
        for task in t.iter::<Task>() {
            if pending(task) {
                if !wanted(task) {
                    continue;
                }
                queue.push(task.clone());
            } else if task.node_id().is_some()
                && task.desired_state() <= TaskState::COMPLETE
                && task.state() <= TaskState::RUNNING
            {
                active.push(task.clone());
            }
        }
        (nodes, active, queue)
    });
    if queue.is_empty() {
        return Ok(0);
    }
    let decisions = schedule(&nodes, &active, &queue);
    store
        .update_batched(|tx| {
            let mut assigned = 0;
            for d in &decisions {
                let Some(mut t) = tx.get::<Task>(d.task_id()) else {
                    continue;
                };
                if !pending(&t) {
                    continue;
                }
                match d {
                    Decision::Assign { node_id, .. } => {
                        t.api.node_id = Some(node_id.clone());
                        t.api.status = Some(TaskStatus {
                            timestamp: Some(tx.now().to_string()),
                            state: Some(TaskState::ASSIGNED),
                            message: Some(ASSIGNED_MESSAGE.into()),
                            ..Default::default()
                        });
                        assigned += 1;
                    }
                    Decision::Unplaceable { message, .. } => {
                        let st = t.api.status.get_or_insert_with(Default::default);
                        if st.err.as_deref() == Some(message.as_str()) {
                            continue;
                        }
                        st.err = Some(message.clone());
                        st.timestamp = Some(tx.now().to_string());
                    }
                }
                tx.update(t)?;
            }
            Ok(assigned)
        })
        .await
}

/// Runs the scheduler until `cancel` fires: a pass at start and after every
/// batch of commits that touched tasks or nodes.
pub async fn run(store: Arc<Store>, cancel: CancellationToken) {
    let mut rx = store.subscribe();
    let mut scope = Scope::All;
    loop {
        if let Err(e) = pass_scoped(&store, &scope).await {
            tracing::warn!(error = %e, "scheduler pass failed");
        }
        scope = Scope::Tasks(HashSet::new());
        while matches!(&scope, Scope::Tasks(ids) if ids.is_empty()) {
            match Watched::next(&mut rx, &cancel).await {
                Some(w) => scope.add(&w),
                None => return,
            }
        }
        let Some(rest) = Watched::burst(&mut rx, &cancel, BATCH_DELAY).await else {
            return;
        };
        for w in &rest {
            scope.add(w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Commit;
    use crate::store::Event;

    fn task(id: &str, state: TaskState, desired: TaskState, node: Option<&str>) -> Task {
        let mut t = Task::default();
        t.api.id = Some(id.into());
        t.api.node_id = node.map(str::to_string);
        t.api.desired_state = Some(desired);
        t.api.status = Some(TaskStatus {
            state: Some(state),
            ..Default::default()
        });
        t
    }

    fn commit(action: EventAction, object: Object) -> Watched {
        Watched::Commit(Arc::new(Commit {
            index: 1,
            events: vec![Event {
                action,
                object: Some(object),
            }],
        }))
    }

    fn scoped() -> Scope {
        Scope::Tasks(HashSet::new())
    }

    #[test]
    fn scope_widens_only_when_capacity_may_have_changed() {
        let mut s = scoped();
        let pending = task("p", TaskState::PENDING, TaskState::RUNNING, None);
        s.add(&commit(
            EventAction::Update,
            Object::Task(Box::new(pending)),
        ));
        assert!(matches!(&s, Scope::Tasks(ids) if ids.len() == 1 && ids.contains("p")));

        // A task just placed takes capacity; it frees none.
        let placed = task("a", TaskState::ASSIGNED, TaskState::RUNNING, Some("n1"));
        s.add(&commit(
            EventAction::Update,
            Object::Task(Box::new(placed.clone())),
        ));
        assert!(matches!(&s, Scope::Tasks(ids) if ids.len() == 1));

        // A placed task told to stop, or removed, frees its node's share.
        let stopping = task("a", TaskState::ASSIGNED, TaskState::SHUTDOWN, Some("n1"));
        s.add(&commit(
            EventAction::Update,
            Object::Task(Box::new(stopping)),
        ));
        assert!(matches!(s, Scope::All));
        let mut s = scoped();
        s.add(&commit(EventAction::Remove, Object::Task(Box::new(placed))));
        assert!(matches!(s, Scope::All));

        // Any node change may add capacity; missed commits may have too.
        let mut s = scoped();
        s.add(&commit(EventAction::Update, Object::Node(Box::default())));
        assert!(matches!(s, Scope::All));
        let mut s = scoped();
        s.add(&Watched::Lagged);
        assert!(matches!(s, Scope::All));
    }
}
