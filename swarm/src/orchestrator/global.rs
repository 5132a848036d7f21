//! Global services (and global jobs): one task per eligible node.

use std::collections::BTreeMap;

use super::is_alive;
use super::is_job;
use super::is_wanted;
use super::new_task;
use super::slot;
use super::slot::Slot;
use super::update;
use super::Action;
use super::Pass;
use super::Plan;
use crate::model::api;
use crate::model::api::TaskState;
use crate::model::Node;
use crate::model::Service;
use crate::model::Task;
use crate::scheduler::constraint;

/// Whether `n` should run the service's task, and whether it may get a new one.
fn eligibility(s: &Service, n: &Node) -> (bool, bool) {
    let spec = n.api.spec.clone().unwrap_or_default();
    let down = n.api.status.as_ref().and_then(|st| st.state) == Some(api::NodeState::DOWN);
    let drained = spec.availability == Some(api::NodeSpecAvailabilityEnum::DRAIN);
    let paused = spec.availability == Some(api::NodeSpecAvailabilityEnum::PAUSE);
    let fits = constraint::of_spec(s.spec().task_template.as_ref())
        .map(|cs| constraint::satisfied(n, &cs))
        .unwrap_or(false);
    let keep = fits && !drained && !down;
    (keep, keep && !paused)
}

/// Reconciles a global service or global job over the pass's nodes; `run`
/// is the updater's memory of the service's update in progress.
pub fn reconcile(s: &Service, tasks: &[&Task], pass: &Pass<'_>, run: &mut update::Run) -> Plan {
    let mut plan = Plan::default();
    let mut by_node: BTreeMap<&str, Vec<&Task>> = BTreeMap::new();
    for t in tasks {
        by_node
            .entry(t.node_id().unwrap_or(""))
            .or_default()
            .push(t);
    }
    let job = is_job(s);
    let new = |node: &str| new_task(s, None, Some(node), pass.now_str);
    let mut counts = update::Slots::default();
    let mut dirty: Vec<(&str, Vec<&Task>, Vec<&Task>, bool)> = Vec::new();
    for n in pass.nodes {
        let id = n.api.id.as_deref().unwrap_or("");
        let (keep, add) = eligibility(s, n);
        let history = by_node.remove(id).unwrap_or_default();
        if !keep {
            for t in history.iter().filter(|t| is_wanted(t) && is_alive(t)) {
                plan.actions
                    .push(Action::Shutdown(t.api.id.clone().unwrap_or_default()));
            }
            continue;
        }
        if job
            && history
                .iter()
                .any(|t| t.spec_version == s.spec_version && t.state() == TaskState::COMPLETE)
        {
            continue;
        }
        match slot::classify(s, &history) {
            Slot::Current(cur) => {
                if slot::keep(s, cur, &history, pass, &mut plan) {
                    counts.pending += 1;
                }
            }
            Slot::Dirty { old, .. } => {
                counts.dirty += 1;
                dirty.push((id, old, history, add));
            }
            Slot::Ended(None) if add => plan.actions.push(Action::Create(Box::new(new(id)))),
            Slot::Ended(None) => {}
            Slot::Ended(Some(ended)) => {
                slot::restart(s, ended, &history, pass, add, || new(id), &mut plan)
            }
        }
    }
    let decision = update::decide(s, tasks, counts, run, pass.now, pass.now_str);
    plan.actions.extend(decision.actions);
    if let Some(d) = decision.wake {
        plan.wake(d);
    }
    let mut budget = decision.budget;
    for (id, old, history, add) in dirty {
        let alive = old.iter().any(|t| is_alive(t));
        if decision.active && budget > 0 {
            budget -= 1;
            slot::replace(&old, new(id), decision.order, run, &mut plan);
        } else if !decision.active && !alive {
            if let Some(last) = old.last() {
                slot::restart(s, last, &history, pass, add, || new(id), &mut plan);
            }
        }
    }
    // Tasks on nodes that left the cluster.
    for ts in by_node.values() {
        for t in ts.iter().filter(|t| is_wanted(t) && is_alive(t)) {
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
mod tests {
    use super::*;
    use crate::scheduler::pipeline::ready_node;

    fn service(constraint: &str) -> Service {
        let mut s = Service::default();
        s.api.id = Some("svc".into());
        s.spec_version = 1;
        s.api.spec = Some(api::ServiceSpec {
            task_template: Some(api::TaskSpec {
                placement: Some(api::TaskSpecPlacement {
                    constraints: Some(if constraint.is_empty() {
                        vec![]
                    } else {
                        vec![constraint.into()]
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            mode: Some(api::ServiceSpecMode {
                global: Some(Default::default()),
                ..Default::default()
            }),
            ..Default::default()
        });
        s
    }

    const NOW: time::OffsetDateTime = time::macros::datetime!(2026-01-01 00:00:00 UTC);

    fn plan(s: &Service, tasks: &[&Task], nodes: &[Node]) -> Plan {
        let pass = Pass {
            now: NOW,
            now_str: "now",
            nodes,
        };
        reconcile(s, tasks, &pass, &mut update::Run::default())
    }

    #[test]
    fn one_task_per_eligible_node() {
        let nodes = vec![
            ready_node("a", &[("gpu", "1")], 1, 1),
            ready_node("b", &[], 1, 1),
        ];
        let p = plan(&service(""), &[], &nodes);
        assert_eq!(p.actions.len(), 2);
        let p = plan(&service("node.labels.gpu == 1"), &[], &nodes);
        assert!(matches!(&p.actions[..], [Action::Create(t)] if t.node_id() == Some("a")));
    }

    #[test]
    fn drained_nodes_lose_their_tasks() {
        let s = service("");
        let mut n = ready_node("a", &[], 1, 1);
        n.api.spec.as_mut().unwrap().availability = Some(api::NodeSpecAvailabilityEnum::DRAIN);
        let mut t = new_task(&s, None, Some("a"), "now");
        t.api.id = Some("t1".into());
        let p = plan(&s, &[&t], &[n]);
        assert_eq!(p.actions, vec![Action::Shutdown("t1".into())]);
    }
}
