//! Replicated services: one wanted task per slot 1..=Replicas.

use std::collections::BTreeMap;

use super::is_wanted;
use super::new_task;
use super::slot;
use super::slot::Slot;
use super::update;
use super::Action;
use super::Pass;
use super::Plan;
use crate::model::Service;
use crate::model::Task;

/// Reconciles one replicated service against its tasks; `run` is the
/// updater's memory of the service's update in progress.
pub fn reconcile(s: &Service, tasks: &[&Task], pass: &Pass<'_>, run: &mut update::Run) -> Plan {
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
    let new = |slot: i64| new_task(s, Some(slot), None, pass.now_str);
    let mut counts = update::Slots::default();
    let mut dirty: Vec<(i64, Vec<&Task>, bool)> = Vec::new();
    for slot in 1..=replicas {
        let history: Vec<&Task> = slots.get(&slot).cloned().unwrap_or_default();
        match slot::classify(s, &history) {
            Slot::Current(cur) => {
                if slot::keep(s, cur, &history, pass, &mut plan) {
                    counts.pending += 1;
                }
            }
            Slot::Dirty { old, alive } => {
                counts.dirty += 1;
                dirty.push((slot, old, alive));
            }
            Slot::Ended(None) => plan.actions.push(Action::Create(Box::new(new(slot)))),
            Slot::Ended(Some(ended)) => {
                slot::restart(s, ended, &history, pass, true, || new(slot), &mut plan)
            }
        }
    }
    let decision = update::decide(s, tasks, counts, run, pass.now, pass.now_str);
    plan.actions.extend(decision.actions);
    if let Some(d) = decision.wake {
        plan.wake(d);
    }
    let mut budget = decision.budget;
    for (slot, old, alive) in dirty {
        if decision.active && budget > 0 {
            budget -= 1;
            slot::replace(&old, new(slot), decision.order, run, &mut plan);
        } else if !decision.active && !alive {
            // Not the updater's: an ended old task restarts as any other.
            let history: Vec<&Task> = slots.get(&slot).cloned().unwrap_or_default();
            if let Some(last) = old.last() {
                slot::restart(s, last, &history, pass, true, || new(slot), &mut plan);
            }
        }
    }
    for ts in slots.range(replicas + 1..).map(|(_, ts)| ts) {
        for t in ts.iter().filter(|t| is_wanted(t)) {
            plan.actions
                .push(Action::Shutdown(t.api.id.clone().unwrap_or_default()));
        }
    }
    let (done, wake) = update::complete(s, tasks, counts, run, pass.now, pass.now_str);
    plan.actions.extend(done);
    if let Some(d) = wake {
        plan.wake(d);
    }
    plan
}

#[cfg(test)]
#[path = "replicated_tests.rs"]
mod tests;
