//! Rolling updates: which out-of-date tasks to replace now, and when an
//! update is complete.

use super::is_alive;
use super::is_dirty;
use super::is_wanted;
use super::Action;
use crate::model::api;
use crate::model::api::ServiceUpdateStatusStateEnum as U;
use crate::model::Service;
use crate::model::Task;

/// Parallelism of the running update (rollback config while rolling back).
fn parallelism(s: &Service) -> usize {
    let rollback = s.api.update_status.as_ref().and_then(|u| u.state) == Some(U::ROLLBACK_STARTED);
    let p = if rollback {
        s.spec()
            .rollback_config
            .as_ref()
            .and_then(|c| c.parallelism)
    } else {
        s.spec().update_config.as_ref().and_then(|c| c.parallelism)
    };
    p.unwrap_or(1).max(0) as usize
}

/// How many dirty tasks may be replaced now: parallelism minus replacements
/// that have not reached running yet (0 parallelism: all at once).
pub fn budget(s: &Service, tasks: &[&Task]) -> usize {
    let p = parallelism(s);
    if p == 0 {
        return usize::MAX;
    }
    let updating = matches!(
        s.api.update_status.as_ref().and_then(|u| u.state),
        Some(U::UPDATING) | Some(U::ROLLBACK_STARTED)
    );
    if !updating {
        return usize::MAX;
    }
    p.saturating_sub(in_flight(s, tasks))
}

/// Replacements in flight: current tasks that have not reached running while
/// their slot (or node, for global services) still holds an out-of-date task.
/// Tasks added by a scale-up have no such predecessor and do not count.
fn in_flight(s: &Service, tasks: &[&Task]) -> usize {
    let key = |t: &Task| match t.api.slot {
        Some(slot) if slot > 0 => format!("slot:{slot}"),
        _ => format!("node:{}", t.node_id().unwrap_or("")),
    };
    let replaced: std::collections::HashSet<String> = tasks
        .iter()
        .filter(|t| is_dirty(t, s))
        .map(|t| key(t))
        .collect();
    tasks
        .iter()
        .filter(|t| {
            is_wanted(t)
                && is_alive(t)
                && !is_dirty(t, s)
                && t.state() < api::TaskState::RUNNING
                && replaced.contains(&key(t))
        })
        .count()
}

/// The update status to set once every task runs the current spec: no
/// out-of-date task is left and every replacement reached running (as
/// swarmkit's updater waits for each new task).
pub fn completion(s: &Service, tasks: &[&Task], now: &str) -> Option<Action> {
    let st = s.api.update_status.as_ref()?;
    let (state, msg) = match st.state? {
        U::UPDATING => (U::COMPLETED, "update completed"),
        U::ROLLBACK_STARTED => (U::ROLLBACK_COMPLETED, "rollback completed"),
        _ => return None,
    };
    let pending = tasks
        .iter()
        .any(|t| is_wanted(t) && is_alive(t) && is_dirty(t, s))
        || in_flight(s, tasks) > 0;
    if pending {
        return None;
    }
    Some(Action::UpdateStatus(
        s.api.id.clone().unwrap_or_default(),
        api::ServiceUpdateStatus {
            state: Some(state),
            started_at: st.started_at.clone(),
            completed_at: Some(now.to_string()),
            message: Some(msg.into()),
        },
    ))
}
