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
///
/// As in swarmkit, tasks are handled in groups that need the same (one
/// service spec, one preset node): the filters run once per group, then
/// each task takes the best candidate from a heap keyed by (tasks of the
/// service on the node, tasks on the node, node ID); a candidate is checked
/// again before use, since placing tasks uses its resources up.
pub fn schedule(nodes: &[Node], active: &[Task], pending: &[Task]) -> Vec<Decision> {
    let mut infos = node_infos(nodes, active);
    // Node IDs ranked once, so heap keys are plain integers.
    let mut by_id: Vec<usize> = (0..infos.len()).collect();
    by_id.sort_by(|&x, &y| infos[x].node.api.id.cmp(&infos[y].node.api.id));
    let mut rank = vec![0usize; infos.len()];
    for (r, &i) in by_id.iter().enumerate() {
        rank[i] = r;
    }
    let mut decisions: Vec<Option<Decision>> = vec![None; pending.len()];
    for group in groups(pending) {
        let first = &pending[group[0]];
        let mut g = Group::new(&infos, first, &rank);
        for &ti in &group {
            let task_id = pending[ti].api.id.clone().unwrap_or_default();
            decisions[ti] = Some(match g.next(&mut infos) {
                Ok(i) => Decision::Assign {
                    task_id,
                    node_id: infos[i].node.api.id.clone().unwrap_or_default(),
                },
                Err(message) => Decision::Unplaceable { task_id, message },
            });
        }
    }
    decisions.into_iter().flatten().collect()
}

/// Indexes of `pending` grouped by identical needs, in first-seen order.
fn groups(pending: &[Task]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut by_key: HashMap<(&str, u64, Option<&str>), Vec<usize>> = HashMap::new();
    for (i, t) in pending.iter().enumerate() {
        let key = (t.service_id(), t.spec_version, t.node_id());
        let candidates = by_key.entry(key).or_default();
        let same = candidates
            .iter()
            .copied()
            .find(|&g| pending[out[g][0]].api.spec == t.api.spec);
        match same {
            Some(g) => out[g].push(i),
            None => {
                candidates.push(out.len());
                out.push(vec![i]);
            }
        }
    }
    out
}

type Key = std::cmp::Reverse<(usize, usize, usize, usize)>;

/// The placement state of one task group within a pass.
struct Group {
    needs: Needs,
    preset: Option<String>,
    /// Tasks of this service per node (indexed like the node infos).
    count: Vec<usize>,
    /// Node ID ranks, the last tie-breaker.
    rank: Vec<usize>,
    /// Candidates per spread value (one bucket without a spread preference).
    buckets: Vec<std::collections::BinaryHeap<Key>>,
    /// Sum of `count` over each bucket's remaining candidates.
    sums: Vec<usize>,
    bucket_of: Vec<usize>,
    /// Set once no candidate is left.
    failed: Option<String>,
}

impl Group {
    fn new(infos: &[NodeInfo], first: &Task, rank: &[usize]) -> Group {
        let needs = Needs::of(first);
        let preset = first.node_id().map(str::to_string);
        let count: Vec<usize> = infos
            .iter()
            .map(|n| n.per_service.get(&needs.service_id).copied().unwrap_or(0))
            .collect();
        let mut values: BTreeMap<String, usize> = BTreeMap::new();
        let spread = spread_key(first);
        let mut bucket_of = vec![0; infos.len()];
        for (i, n) in infos.iter().enumerate() {
            if let Some(k) = &spread {
                let v = label_value(&n.node, k);
                let next = values.len();
                bucket_of[i] = *values.entry(v).or_insert(next);
            }
        }
        let n_buckets = values.len().max(1);
        let mut g = Group {
            needs,
            preset,
            count,
            rank: rank.to_vec(),
            buckets: vec![Default::default(); n_buckets],
            sums: vec![0; n_buckets],
            bucket_of,
            failed: None,
        };
        let mut refusals: BTreeMap<Refusal, usize> = BTreeMap::new();
        for (i, n) in infos.iter().enumerate() {
            if g.preset
                .as_deref()
                .is_some_and(|p| n.node.api.id.as_deref() != Some(p))
            {
                continue;
            }
            match filter::check(n, &g.needs) {
                Ok(()) => {
                    let b = g.bucket_of[i];
                    g.sums[b] += g.count[i];
                    let key = g.key(infos, i);
                    g.buckets[b].push(key);
                }
                Err(r) => *refusals.entry(r).or_default() += 1,
            }
        }
        if g.buckets.iter().all(|b| b.is_empty()) {
            g.failed = Some(g.message(infos, &refusals));
        }
        g
    }

    fn key(&self, infos: &[NodeInfo], i: usize) -> Key {
        std::cmp::Reverse((self.count[i], infos[i].total, self.rank[i], i))
    }

    fn message(&self, infos: &[NodeInfo], refusals: &BTreeMap<Refusal, usize>) -> String {
        if infos.is_empty() || (self.preset.is_some() && refusals.is_empty()) {
            "no suitable node".to_string()
        } else {
            explain(refusals)
        }
    }

    /// The node for the group's next task, or why there is none.
    fn next(&mut self, infos: &mut [NodeInfo]) -> Result<usize, String> {
        loop {
            if let Some(m) = &self.failed {
                return Err(m.clone());
            }
            // The spread value with the fewest of this service's tasks.
            let b = (0..self.buckets.len())
                .filter(|&b| !self.buckets[b].is_empty())
                .min_by_key(|&b| self.sums[b]);
            let Some(b) = b else {
                // Every candidate filled up during this pass: say why now.
                let mut refusals: BTreeMap<Refusal, usize> = BTreeMap::new();
                for n in infos.iter() {
                    if let Err(r) = filter::check(n, &self.needs) {
                        *refusals.entry(r).or_default() += 1;
                    }
                }
                self.failed = Some(self.message(infos, &refusals));
                continue;
            };
            let Some(std::cmp::Reverse((.., i))) = self.buckets[b].pop() else {
                continue;
            };
            self.sums[b] -= self.count[i];
            if filter::check(&infos[i], &self.needs).is_err() {
                continue;
            }
            place(&mut infos[i], &self.needs);
            self.count[i] += 1;
            self.sums[b] += self.count[i];
            let key = self.key(infos, i);
            self.buckets[b].push(key);
            return Ok(i);
        }
    }
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
