//! The pure scheduling pipeline: for each pending task, filter the nodes,
//! then pick the node with the fewest tasks of the same service, then the
//! fewest tasks overall (swarmkit's default strategy); spread preferences
//! first balance across the values of the named label.

use std::collections::BTreeMap;
use std::collections::HashMap;

use super::filter;
use super::filter::Needs;
use super::filter::NodeInfo;
use super::filter::Refusal;
use crate::model::api;
use crate::model::Node;
use crate::model::Task;

/// The outcome for one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run the task on `node_id`.
    Assign {
        /// The task.
        task_id: String,
        /// The chosen node.
        node_id: String,
    },
    /// No node fits; `message` says why, as dockerd shows it.
    Unplaceable {
        /// The task.
        task_id: String,
        /// `no suitable node (...)`.
        message: String,
    },
}

impl Decision {
    /// The task the decision is about.
    pub fn task_id(&self) -> &str {
        match self {
            Decision::Assign { task_id, .. } | Decision::Unplaceable { task_id, .. } => task_id,
        }
    }
}

fn node_infos(nodes: &[Node], active: &[Task]) -> Vec<NodeInfo> {
    let mut infos: Vec<NodeInfo> = nodes
        .iter()
        .map(|n| {
            let r = n
                .api
                .description
                .as_ref()
                .and_then(|d| d.resources.as_ref());
            NodeInfo {
                node: n.clone(),
                per_service: HashMap::new(),
                total: 0,
                free_cpu: r.and_then(|r| r.nano_cpus).unwrap_or(0),
                free_mem: r.and_then(|r| r.memory_bytes).unwrap_or(0),
                host_ports: Default::default(),
            }
        })
        .collect();
    let index: HashMap<String, usize> = infos
        .iter()
        .enumerate()
        .map(|(i, n)| (n.node.api.id.clone().unwrap_or_default(), i))
        .collect();
    for t in active {
        if let Some(&i) = t.node_id().and_then(|n| index.get(n)) {
            place(&mut infos[i], &Needs::of(t));
        }
    }
    infos
}

fn place(n: &mut NodeInfo, needs: &Needs) {
    *n.per_service.entry(needs.service_id.clone()).or_default() += 1;
    n.total += 1;
    n.free_cpu -= needs.cpu;
    n.free_mem -= needs.mem;
    n.host_ports.extend(needs.host_ports.iter().cloned());
}

fn spread_key(t: &Task) -> Option<String> {
    t.api
        .spec
        .as_ref()?
        .placement
        .as_ref()?
        .preferences
        .as_ref()?
        .iter()
        .find_map(|p| p.spread.as_ref()?.spread_descriptor.clone())
}

fn label_value(n: &Node, key: &str) -> String {
    let v = if let Some(l) = key.strip_prefix("node.labels.") {
        n.api
            .spec
            .as_ref()
            .and_then(|s| s.labels.as_ref())
            .and_then(|m| m.get(l).cloned())
    } else if let Some(l) = key.strip_prefix("engine.labels.") {
        n.api
            .description
            .as_ref()
            .and_then(|d| d.engine.as_ref())
            .and_then(|e| e.labels.as_ref())
            .and_then(|m| m.get(l).cloned())
    } else {
        None
    };
    v.unwrap_or_default()
}

fn explain(refusals: &BTreeMap<Refusal, usize>) -> String {
    let parts: Vec<String> = refusals.iter().map(|(r, n)| r.explain(*n)).collect();
    format!("no suitable node ({})", parts.join("; "))
}

/// Decides where each pending task goes, given the nodes and the tasks
/// already on them. Deterministic for the same input.
pub fn schedule(nodes: &[Node], active: &[Task], pending: &[Task]) -> Vec<Decision> {
    let mut infos = node_infos(nodes, active);
    let mut out = Vec::with_capacity(pending.len());
    // Tasks of one service spec (and preset node) need the same; placing
    // tasks only uses nodes up, so once such a group fits nowhere in this
    // pass its other tasks do not either (swarmkit's task groups).
    let mut failed: HashMap<(&str, u64, Option<&str>), String> = HashMap::new();
    for t in pending {
        let id = t.api.id.clone().unwrap_or_default();
        let group = (t.service_id(), t.spec_version, t.node_id());
        if let Some(message) = failed.get(&group) {
            out.push(Decision::Unplaceable {
                task_id: id,
                message: message.clone(),
            });
            continue;
        }
        let needs = Needs::of(t);
        let mut refusals: BTreeMap<Refusal, usize> = BTreeMap::new();
        let mut fit: Vec<usize> = Vec::new();
        let preset = t.node_id();
        for (i, n) in infos.iter().enumerate() {
            if preset.is_some_and(|p| n.node.api.id.as_deref() != Some(p)) {
                continue;
            }
            match filter::check(n, &needs) {
                Ok(()) => fit.push(i),
                Err(r) => *refusals.entry(r).or_default() += 1,
            }
        }
        if fit.is_empty() {
            let message = if infos.is_empty() || (preset.is_some() && refusals.is_empty()) {
                "no suitable node".to_string()
            } else {
                explain(&refusals)
            };
            failed.insert(group, message.clone());
            out.push(Decision::Unplaceable {
                task_id: id,
                message,
            });
            continue;
        }
        if let Some(key) = spread_key(t) {
            // Keep only nodes in the least-used value group of the spread label.
            let mut by_value: BTreeMap<String, usize> = BTreeMap::new();
            for &i in &fit {
                let v = label_value(&infos[i].node, &key);
                let c = infos[i]
                    .per_service
                    .get(&needs.service_id)
                    .copied()
                    .unwrap_or(0);
                *by_value.entry(v).or_default() += c;
            }
            if let Some(min) = by_value.values().min().copied() {
                fit.retain(|&i| by_value[&label_value(&infos[i].node, &key)] == min);
            }
        }
        let best = fit
            .iter()
            .copied()
            .min_by_key(|&i| {
                let n = &infos[i];
                (
                    n.per_service.get(&needs.service_id).copied().unwrap_or(0),
                    n.total,
                    n.node.api.id.clone(),
                )
            })
            .unwrap_or(fit[0]);
        place(&mut infos[best], &needs);
        out.push(Decision::Assign {
            task_id: id,
            node_id: infos[best].node.api.id.clone().unwrap_or_default(),
        });
    }
    out
}

#[doc(hidden)]
pub fn ready_node(id: &str, labels: &[(&str, &str)], cpus: i64, mem: i64) -> Node {
    let mut n = Node::default();
    n.api.id = Some(id.into());
    n.api.spec = Some(api::NodeSpec {
        role: Some(api::NodeSpecRoleEnum::WORKER),
        availability: Some(api::NodeSpecAvailabilityEnum::ACTIVE),
        labels: Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    });
    n.api.status = Some(api::NodeStatus {
        state: Some(api::NodeState::READY),
        ..Default::default()
    });
    n.api.description = Some(api::NodeDescription {
        hostname: Some(id.into()),
        resources: Some(api::ResourceObject {
            nano_cpus: Some(cpus),
            memory_bytes: Some(mem),
            ..Default::default()
        }),
        ..Default::default()
    });
    n
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
