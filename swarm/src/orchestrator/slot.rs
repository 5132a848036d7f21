//! One slot of a replicated service (or one node of a global service): what
//! its tasks say about it, and the replacement and hand-over rules that the
//! replicated and global reconcilers share.

use std::time::Duration;

use time::format_description::well_known::Rfc3339;

use super::is_alive;
use super::is_dirty;
use super::is_wanted;
use super::restart;
use super::update::Order;
use super::update::Run;
use super::Action;
use super::Pass;
use super::Plan;
use crate::model::api::TaskState;
use crate::model::Service;
use crate::model::Task;

/// How long a stop-first replacement waits for its predecessor to stop
/// before it starts anyway (swarmkit's restart supervisor task timeout).
pub const OLD_TASK_TIMEOUT: Duration = Duration::from_secs(60);

/// A slot's tasks, sorted.
#[derive(Debug, Clone, PartialEq)]
pub enum Slot<'a> {
    /// A wanted task of the current spec has not ended: the slot's task.
    Current(&'a Task),
    /// Every wanted task is of an older spec; `alive` when one of them has
    /// not ended. The updater replaces such slots.
    Dirty {
        /// The wanted out-of-date tasks.
        old: Vec<&'a Task>,
        /// Whether one of them still runs (or is about to).
        alive: bool,
    },
    /// No wanted task is alive and none is out of date: the restart policy
    /// decides about the last one ended, if any (none: an empty slot).
    Ended(Option<&'a Task>),
}

fn id(t: &Task) -> String {
    t.api.id.clone().unwrap_or_default()
}

/// Sorts one slot's `history` (all its tasks, oldest first).
pub fn classify<'a>(s: &Service, history: &[&'a Task]) -> Slot<'a> {
    let wanted: Vec<&Task> = history.iter().copied().filter(|t| is_wanted(t)).collect();
    let current = wanted
        .iter()
        .copied()
        .filter(|t| is_alive(t) && !is_dirty(t, s))
        // The furthest along wins; among equals the newest.
        .max_by_key(|t| t.state());
    if let Some(t) = current {
        return Slot::Current(t);
    }
    if let Some(t) = wanted.iter().rev().find(|t| !is_dirty(t, s)) {
        // A current-spec task ended (a failed start-first replacement keeps
        // its predecessor running meanwhile).
        return Slot::Ended(Some(t));
    }
    let old: Vec<&Task> = wanted.iter().copied().filter(|t| is_dirty(t, s)).collect();
    if old.is_empty() {
        return Slot::Ended(None);
    }
    let alive = old.iter().any(|t| is_alive(t));
    Slot::Dirty { old, alive }
}

/// Whether the task's process may be running: started and not ended.
fn may_run(t: &Task) -> bool {
    t.state() >= TaskState::STARTING && t.state() <= TaskState::RUNNING
}

fn age(t: &Task, now: time::OffsetDateTime) -> Option<Duration> {
    let created = t.api.created_at.as_deref()?;
    let at = time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339)
        .ok()?;
    Some(Duration::try_from(now - at).unwrap_or(Duration::ZERO))
}

/// Keeps the slot's current task `cur`: lets a stop-first replacement start
/// once the tasks it replaces have stopped, shuts the replaced tasks down
/// once a start-first replacement runs, and marks a task whose spec did not
/// change as built from the service's current spec. Returns whether the
/// slot is still between two tasks.
pub fn keep(s: &Service, cur: &Task, history: &[&Task], pass: &Pass<'_>, plan: &mut Plan) -> bool {
    let others: Vec<&Task> = history
        .iter()
        .copied()
        .filter(|t| t.api.id != cur.api.id && is_alive(t))
        .collect();
    let mut pending = false;
    let delayed = cur
        .start_after
        .as_deref()
        .and_then(|at| time::OffsetDateTime::parse(at, &Rfc3339).ok())
        .and_then(|at| Duration::try_from(at - pass.now).ok())
        .filter(|left| !left.is_zero());
    if cur.desired_state() == TaskState::READY && delayed.is_some() {
        // Its predecessor's restart delay is not over yet.
        if let Some(left) = delayed {
            plan.wake(left);
        }
        pending = true;
    } else if cur.desired_state() == TaskState::READY {
        let blocking = others
            .iter()
            .any(|t| may_run(t) && !t.node_id().is_some_and(|n| pass.node_gone(n)));
        match age(cur, pass.now) {
            Some(a) if blocking && a < OLD_TASK_TIMEOUT => {
                plan.wake(OLD_TASK_TIMEOUT - a);
                pending = true;
            }
            _ => plan.actions.push(Action::Start(id(cur))),
        }
    } else {
        let replaced: Vec<&Task> = others.iter().copied().filter(|t| is_wanted(t)).collect();
        if cur.state() == TaskState::RUNNING {
            for t in replaced {
                plan.actions.push(Action::Shutdown(id(t)));
            }
        } else if !replaced.is_empty() {
            pending = true;
        }
    }
    if !is_dirty(cur, s) && cur.spec_version != s.spec_version {
        plan.actions.push(Action::Bless(id(cur), s.spec_version));
    }
    pending
}

/// Replaces the out-of-date tasks `old` of a slot with `new` in `order`,
/// recording `new` in the update's `run`.
pub fn replace(old: &[&Task], mut new: Task, order: Order, run: &mut Run, plan: &mut Plan) {
    let alive = old.iter().any(|t| is_alive(t));
    match order {
        Order::StartFirst if alive => {
            // Ended ones have nothing to wait for.
            for t in old.iter().filter(|t| !is_alive(t)) {
                plan.actions.push(Action::Shutdown(id(t)));
            }
        }
        _ => {
            for t in old {
                plan.actions.push(Action::Shutdown(id(t)));
            }
            if old.iter().any(|t| may_run(t)) {
                // Started only once the old process is gone (see `keep`).
                new.api.desired_state = Some(TaskState::READY);
            }
        }
    }
    run.track(&id(&new));
    plan.actions.push(Action::Create(Box::new(new)));
}

/// Applies the restart policy to `ended`, the slot's last ended wanted
/// task: replaces it with `new()` now (when `add`), or looks again once its
/// restart delay is over. Wanted tasks of the slot that ended are shut down
/// with it; one still alive (a start-first predecessor) keeps running. A
/// stop-first replacement that ended while held shows as wanted running,
/// as swarmkit lets it start whatever happened.
pub fn restart(
    s: &Service,
    ended: &Task,
    history: &[&Task],
    pass: &Pass<'_>,
    add: bool,
    new: impl FnOnce() -> Task,
    plan: &mut Plan,
) {
    let policy = s
        .spec()
        .task_template
        .as_ref()
        .and_then(|t| t.restart_policy.as_ref());
    for t in history
        .iter()
        .filter(|t| is_wanted(t) && !is_alive(t) && t.desired_state() < TaskState::RUNNING)
    {
        plan.actions.push(Action::Start(id(t)));
    }
    match restart::decide(policy, ended, history, pass.now) {
        restart::Restart::Now => {
            for t in history.iter().filter(|t| is_wanted(t) && !is_alive(t)) {
                plan.actions.push(Action::Shutdown(id(t)));
            }
            if add {
                plan.actions.push(Action::Create(Box::new(new())));
            }
        }
        restart::Restart::After(d) => {
            // Listed at once, held ready until the delay is over (swarmkit's
            // delayed start): `keep` starts it then.
            if add {
                for t in history.iter().filter(|t| is_wanted(t) && !is_alive(t)) {
                    plan.actions.push(Action::Shutdown(id(t)));
                }
                let mut held = new();
                held.api.desired_state = Some(TaskState::READY);
                held.start_after = Some(
                    (pass.now + d)
                        .format(&Rfc3339)
                        .unwrap_or_else(|_| pass.now_str.to_string()),
                );
                plan.actions.push(Action::Create(Box::new(held)));
            }
            plan.wake(d);
        }
        restart::Restart::Never => {}
    }
}
