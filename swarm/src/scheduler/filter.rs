//! Node filters, each able to explain its refusals in swarmkit's words.

use super::constraint;
use super::constraint::Constraint;
use crate::model::api;
use crate::model::Node;
use crate::model::Task;

/// What the filters need to know about one node.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// The node.
    pub node: Node,
    /// Tasks on it, per service ID.
    pub per_service: std::collections::HashMap<String, usize>,
    /// Total active tasks on it.
    pub total: usize,
    /// NanoCPUs still free.
    pub free_cpu: i64,
    /// Memory bytes still free.
    pub free_mem: i64,
    /// Host-mode published ports in use (port, protocol).
    pub host_ports: std::collections::HashSet<(u16, crate::exec::PortProtocol)>,
}

/// Why a node was refused; one variant per filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refusal {
    /// Not ready or not active.
    NotAvailable,
    /// Placement constraints.
    Constraints,
    /// Resource reservations.
    Resources,
    /// Platform mismatch.
    Platform,
    /// Host port in use.
    HostPort,
    /// Max replicas per node reached.
    MaxReplicas,
}

impl Refusal {
    /// swarmkit's explanation for `n` nodes refused this way.
    pub fn explain(self, n: usize) -> String {
        let s = if n == 1 { "" } else { "s" };
        match self {
            Refusal::NotAvailable => format!("{n} node{s} not available for new tasks"),
            Refusal::Constraints => format!("scheduling constraints not satisfied on {n} node{s}"),
            Refusal::Resources => format!("insufficient resources on {n} node{s}"),
            Refusal::Platform => format!("unsupported platform on {n} node{s}"),
            Refusal::HostPort => format!("host-mode port already in use on {n} node{s}"),
            Refusal::MaxReplicas => "max replicas per node limit exceed".to_string(),
        }
    }
}

/// A task's requirements, computed once per group of identical tasks.
#[derive(Debug, Clone)]
pub struct Needs {
    /// The service.
    pub service_id: String,
    /// Parsed constraints (None: unparseable, never placeable).
    pub constraints: Option<Vec<Constraint>>,
    /// NanoCPUs reserved.
    pub cpu: i64,
    /// Memory reserved.
    pub mem: i64,
    /// Acceptable platforms (empty: any).
    pub platforms: Vec<api::Platform>,
    /// Host-mode published ports.
    pub host_ports: Vec<(u16, crate::exec::PortProtocol)>,
    /// Max replicas per node (0: no limit).
    pub max_replicas: usize,
}

impl Needs {
    /// The requirements of `t`.
    pub fn of(t: &Task) -> Needs {
        let spec = t.api.spec.as_ref();
        let res = spec
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.reservations.as_ref());
        let placement = spec.and_then(|s| s.placement.as_ref());
        Needs {
            service_id: t.service_id().to_string(),
            constraints: constraint::of_spec(spec).ok(),
            cpu: res.and_then(|r| r.nano_cpus).unwrap_or(0),
            mem: res.and_then(|r| r.memory_bytes).unwrap_or(0),
            platforms: placement
                .and_then(|p| p.platforms.clone())
                .unwrap_or_default(),
            host_ports: t
                .host_ports
                .iter()
                .map(|p| (p.published, p.protocol))
                .collect(),
            max_replicas: placement.and_then(|p| p.max_replicas).unwrap_or(0).max(0) as usize,
        }
    }
}

fn arch_matches(want: &str, have: &str) -> bool {
    let norm = |a: &str| match a {
        "x86_64" => "amd64".to_string(),
        "aarch64" => "arm64".to_string(),
        a => a.to_ascii_lowercase(),
    };
    want.is_empty() || norm(want) == norm(have)
}

/// Checks one node for a task's needs; the first refusing filter wins.
pub fn check(n: &NodeInfo, needs: &Needs) -> Result<(), Refusal> {
    let ready = n.node.api.status.as_ref().and_then(|s| s.state) == Some(api::NodeState::READY);
    let active = n.node.api.spec.as_ref().and_then(|s| s.availability)
        == Some(api::NodeSpecAvailabilityEnum::ACTIVE);
    if !ready || !active {
        return Err(Refusal::NotAvailable);
    }
    match &needs.constraints {
        Some(cs) if constraint::satisfied(&n.node, cs) => {}
        _ => return Err(Refusal::Constraints),
    }
    if !needs.platforms.is_empty() {
        let p = n
            .node
            .api
            .description
            .as_ref()
            .and_then(|d| d.platform.clone())
            .unwrap_or_default();
        let ok = needs.platforms.iter().any(|w| {
            let os_ok = w.os.as_deref().unwrap_or("").is_empty()
                || w.os.as_deref().map(str::to_ascii_lowercase)
                    == p.os.as_deref().map(str::to_ascii_lowercase);
            os_ok
                && arch_matches(
                    w.architecture.as_deref().unwrap_or(""),
                    p.architecture.as_deref().unwrap_or(""),
                )
        });
        if !ok {
            return Err(Refusal::Platform);
        }
    }
    if needs.cpu > n.free_cpu || needs.mem > n.free_mem {
        return Err(Refusal::Resources);
    }
    if needs.host_ports.iter().any(|p| n.host_ports.contains(p)) {
        return Err(Refusal::HostPort);
    }
    if needs.max_replicas > 0
        && n.per_service.get(&needs.service_id).copied().unwrap_or(0) >= needs.max_replicas
    {
        return Err(Refusal::MaxReplicas);
    }
    Ok(())
}
