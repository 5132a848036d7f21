//! Replicated services: one wanted task per slot 1..=Replicas.

use std::collections::BTreeMap;

use super::is_alive;
use super::is_dirty;
use super::is_wanted;
use super::new_task;
use super::restart;
use super::update;
use super::Action;
use super::Plan;
use crate::model::Service;
use crate::model::Task;

/// Reconciles one replicated service against its tasks at time `now`.
pub fn reconcile(s: &Service, tasks: &[&Task], now: time::OffsetDateTime, now_str: &str) -> Plan {
    let mut plan = Plan::default();
    let replicas = s
        .spec()
        .mode
        .as_ref()
        .and_then(|m| m.replicated.as_ref())
        .and_then(|r| r.replicas)
        .unwrap_or(1)
        .max(0);
    let mut slots: BTreeMap<i64, Vec<&Task>> = BTreeMap::new();
    for t in tasks {
        slots.entry(t.api.slot.unwrap_or(0)).or_default().push(t);
    }
    let policy = s
        .spec()
        .task_template
        .as_ref()
        .and_then(|t| t.restart_policy.as_ref());
    let mut budget = update::budget(s, tasks);
    for slot in 1..=replicas {
        let history: Vec<&Task> = slots.get(&slot).cloned().unwrap_or_default();
        let wanted: Vec<&Task> = history.iter().copied().filter(|t| is_wanted(t)).collect();
        let alive: Vec<&Task> = wanted.iter().copied().filter(|t| is_alive(t)).collect();
        if let Some(t) = alive.first() {
            if is_dirty(t, s) {
                if budget > 0 {
                    budget -= 1;
                    plan.actions
                        .push(Action::Shutdown(t.api.id.clone().unwrap_or_default()));
                    plan.actions.push(Action::Create(Box::new(new_task(
                        s,
                        Some(slot),
                        None,
                        now_str,
                    ))));
                }
            } else if t.spec_version != s.spec_version {
                plan.actions.push(Action::Bless(
                    t.api.id.clone().unwrap_or_default(),
                    s.spec_version,
                ));
            }
            continue;
        }
        match wanted.last() {
            None => plan.actions.push(Action::Create(Box::new(new_task(
                s,
                Some(slot),
                None,
                now_str,
            )))),
            Some(ended) => match restart::decide(policy, ended, &history, now) {
                restart::Restart::Now => {
                    for t in &wanted {
                        plan.actions
                            .push(Action::Shutdown(t.api.id.clone().unwrap_or_default()));
                    }
                    plan.actions.push(Action::Create(Box::new(new_task(
                        s,
                        Some(slot),
                        None,
                        now_str,
                    ))));
                }
                restart::Restart::After(d) => plan.wake(d),
                restart::Restart::Never => {}
            },
        }
    }
    for (slot, ts) in slots.range(replicas + 1..) {
        let _ = slot;
        for t in ts.iter().filter(|t| is_wanted(t)) {
            plan.actions
                .push(Action::Shutdown(t.api.id.clone().unwrap_or_default()));
        }
    }
    let created = plan.actions.iter().any(|a| matches!(a, Action::Create(_)));
    if !created {
        plan.actions.extend(update::completion(s, tasks, now_str));
    }
    plan
}

#[cfg(test)]
#[path = "replicated_tests.rs"]
mod tests;
