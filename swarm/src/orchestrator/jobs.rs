//! Replicated jobs: run tasks to completion, at most MaxConcurrent at a time,
//! until TotalCompletions have completed. Global jobs go through `global`.

use super::is_alive;
use super::is_wanted;
use super::new_task;
use super::restart;
use super::Action;
use super::Plan;
use crate::model::api::TaskState;
use crate::model::Service;
use crate::model::Task;

/// Reconciles one replicated job at time `now`.
pub fn reconcile(s: &Service, tasks: &[&Task], now: time::OffsetDateTime, now_str: &str) -> Plan {
    let mut plan = Plan::default();
    let job = s
        .spec()
        .mode
        .as_ref()
        .and_then(|m| m.replicated_job.clone())
        .unwrap_or_default();
    let max_concurrent = job.max_concurrent.unwrap_or(1).max(0) as usize;
    let total = job
        .total_completions
        .unwrap_or(max_concurrent as i64)
        .max(0) as usize;
    // Only tasks of this iteration of the job count.
    let current: Vec<&Task> = tasks
        .iter()
        .copied()
        .filter(|t| t.spec_version == s.spec_version)
        .collect();
    // As swarmkit: a task of an earlier iteration that has not ended is
    // marked for removal; the reaper deletes it once stopped, or at once if
    // it never reached a node.
    for t in tasks.iter().filter(|t| {
        t.spec_version != s.spec_version && is_alive(t) && t.desired_state() != TaskState::REMOVE
    }) {
        plan.actions
            .push(Action::Remove(t.api.id.clone().unwrap_or_default()));
    }
    let completed = current
        .iter()
        .filter(|t| t.state() == TaskState::COMPLETE)
        .count();
    let alive = current
        .iter()
        .filter(|t| is_wanted(t) && is_alive(t))
        .count();
    let policy = s
        .spec()
        .task_template
        .as_ref()
        .and_then(|t| t.restart_policy.as_ref());
    let mut retries = 0;
    for t in current
        .iter()
        .filter(|t| is_wanted(t) && !is_alive(t) && t.state() != TaskState::COMPLETE)
    {
        match restart::decide(policy, t, &current, now) {
            restart::Restart::Now => {
                plan.actions
                    .push(Action::Shutdown(t.api.id.clone().unwrap_or_default()));
                retries += 1;
            }
            restart::Restart::After(d) => plan.wake(d),
            restart::Restart::Never => {}
        }
    }
    let room = max_concurrent.saturating_sub(alive);
    let left = total.saturating_sub(completed + alive);
    // swarmkit numbers a job's slots from 0 and gives a retry the slot of
    // the task it replaces: the free slots are those no completed or live
    // task holds. Slot 0 is no slot on the wire (Go's `omitempty`).
    let used: std::collections::BTreeSet<i64> = current
        .iter()
        .filter(|t| t.state() == TaskState::COMPLETE || (is_wanted(t) && is_alive(t)))
        .map(|t| t.api.slot.unwrap_or(0))
        .collect();
    let _ = retries;
    let free = (0..).filter(|n| !used.contains(n));
    for slot in free.take(room.min(left)) {
        plan.actions.push(Action::Create(Box::new(new_task(
            s,
            (slot != 0).then_some(slot),
            None,
            now_str,
        ))));
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::api;

    fn job(max: i64, total: i64) -> Service {
        let mut s = Service::default();
        s.api.id = Some("j".into());
        s.spec_version = 1;
        s.api.spec = Some(api::ServiceSpec {
            mode: Some(api::ServiceSpecMode {
                replicated_job: Some(api::ServiceSpecModeReplicatedJob {
                    max_concurrent: Some(max),
                    total_completions: Some(total),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        s
    }

    const NOW: time::OffsetDateTime = time::macros::datetime!(2026-01-01 00:00:00 UTC);

    #[test]
    fn respects_max_concurrent_and_total() {
        let s = job(2, 3);
        let p = reconcile(&s, &[], NOW, "now");
        assert_eq!(p.actions.len(), 2);
        let mut done = new_task(&s, Some(1), None, "now");
        done.api.status.as_mut().unwrap().state = Some(TaskState::COMPLETE);
        let mut running = new_task(&s, Some(2), None, "now");
        running.api.status.as_mut().unwrap().state = Some(TaskState::RUNNING);
        let p = reconcile(&s, &[&done, &running], NOW, "now");
        assert_eq!(p.actions.len(), 1, "one more to reach 3 completions");
        let mut done2 = running.clone();
        done2.api.status.as_mut().unwrap().state = Some(TaskState::COMPLETE);
        let mut done3 = new_task(&s, Some(3), None, "now");
        done3.api.status.as_mut().unwrap().state = Some(TaskState::COMPLETE);
        assert!(reconcile(&s, &[&done, &done2, &done3], NOW, "now")
            .actions
            .is_empty());
    }

    #[test]
    fn tasks_of_an_earlier_iteration_not_ended_are_marked_for_removal() {
        let mut s = job(1, 1);
        let mut pending = new_task(&s, None, None, "now");
        pending.api.id = Some("old".into());
        pending.api.status.as_mut().unwrap().state = Some(TaskState::PENDING);
        let mut done = new_task(&s, Some(1), None, "now");
        done.api.id = Some("done".into());
        done.api.status.as_mut().unwrap().state = Some(TaskState::COMPLETE);
        s.spec_version = 2;
        let p = reconcile(&s, &[&pending, &done], NOW, "now");
        assert!(p.actions.contains(&Action::Remove("old".into())));
        assert!(
            !p.actions.contains(&Action::Remove("done".into())),
            "a completed task of the earlier run stays history"
        );
        assert_eq!(
            p.actions
                .iter()
                .filter(|a| matches!(a, Action::Create(_)))
                .count(),
            1,
            "the new iteration starts its task"
        );
    }
}
