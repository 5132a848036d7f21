//! Global services (and global jobs): one task per eligible node.

use std::collections::BTreeMap;

use super::is_alive;
use super::is_dirty;
use super::is_job;
use super::is_wanted;
use super::new_task;
use super::restart;
use super::update;
use super::Action;
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

/// Reconciles a global service or global job over `nodes`.
pub fn reconcile(
    s: &Service,
    tasks: &[&Task],
    nodes: &[Node],
    now: time::OffsetDateTime,
    now_str: &str,
) -> Plan {
    let mut plan = Plan::default();
    let mut by_node: BTreeMap<&str, Vec<&Task>> = BTreeMap::new();
    for t in tasks {
        by_node
            .entry(t.node_id().unwrap_or(""))
            .or_default()
            .push(t);
    }
    let policy = s
        .spec()
        .task_template
        .as_ref()
        .and_then(|t| t.restart_policy.as_ref());
    let job = is_job(s);
    let mut budget = update::budget(s, tasks);
    for n in nodes {
        let id = n.api.id.as_deref().unwrap_or("");
        let (keep, add) = eligibility(s, n);
        let history = by_node.remove(id).unwrap_or_default();
        let wanted: Vec<&Task> = history.iter().copied().filter(|t| is_wanted(t)).collect();
        if !keep {
            for t in wanted.iter().filter(|t| is_alive(t)) {
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
        if let Some(t) = wanted.iter().find(|t| is_alive(t)) {
            if is_dirty(t, s) && budget > 0 {
                budget -= 1;
                plan.actions
                    .push(Action::Shutdown(t.api.id.clone().unwrap_or_default()));
                plan.actions.push(Action::Create(Box::new(new_task(
                    s,
                    None,
                    Some(id),
                    now_str,
                ))));
            } else if !is_dirty(t, s) && t.spec_version != s.spec_version {
                plan.actions.push(Action::Bless(
                    t.api.id.clone().unwrap_or_default(),
                    s.spec_version,
                ));
            }
            continue;
        }
        match wanted.last() {
            None if add => plan.actions.push(Action::Create(Box::new(new_task(
                s,
                None,
                Some(id),
                now_str,
            )))),
            None => {}
            Some(ended) => match restart::decide(policy, ended, &history, now) {
                restart::Restart::Now => {
                    for t in &wanted {
                        plan.actions
                            .push(Action::Shutdown(t.api.id.clone().unwrap_or_default()));
                    }
                    if add {
                        plan.actions.push(Action::Create(Box::new(new_task(
                            s,
                            None,
                            Some(id),
                            now_str,
                        ))));
                    }
                }
                restart::Restart::After(d) => plan.wake(d),
                restart::Restart::Never => {}
            },
        }
    }
    // Tasks on nodes that left the cluster.
    for ts in by_node.values() {
        for t in ts.iter().filter(|t| is_wanted(t) && is_alive(t)) {
            plan.actions
                .push(Action::Shutdown(t.api.id.clone().unwrap_or_default()));
        }
    }
    if !plan.actions.iter().any(|a| matches!(a, Action::Create(_))) {
        plan.actions.extend(update::completion(s, tasks, now_str));
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

    #[test]
    fn one_task_per_eligible_node() {
        let nodes = vec![
            ready_node("a", &[("gpu", "1")], 1, 1),
            ready_node("b", &[], 1, 1),
        ];
        let p = reconcile(&service(""), &[], &nodes, NOW, "now");
        assert_eq!(p.actions.len(), 2);
        let p = reconcile(&service("node.labels.gpu == 1"), &[], &nodes, NOW, "now");
        assert!(matches!(&p.actions[..], [Action::Create(t)] if t.node_id() == Some("a")));
    }

    #[test]
    fn drained_nodes_lose_their_tasks() {
        let s = service("");
        let mut n = ready_node("a", &[], 1, 1);
        n.api.spec.as_mut().unwrap().availability = Some(api::NodeSpecAvailabilityEnum::DRAIN);
        let mut t = new_task(&s, None, Some("a"), "now");
        t.api.id = Some("t1".into());
        let p = reconcile(&s, &[&t], &[n], NOW, "now");
        assert_eq!(p.actions, vec![Action::Shutdown("t1".into())]);
    }
}
