//! **Pure**: a task's record on the node (its interfaces, their peers'
//! names, which one carries the default route, its names on node-local
//! networks) when it is attached or moved between networks; part of the
//! driver's pure core (see [`crate::state`]).

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use ipnet::Ipv4Net;

use crate::gwbridge::next_egress_address;
use crate::gwbridge::GWBRIDGE_MTU;
use crate::state::check_id;
use crate::state::mac_for;
use crate::state::prefix;
use crate::state::Egress;
use crate::state::Interface;
use crate::state::Link;
use crate::state::NodeState;
use crate::state::PlanError;
use crate::state::Planned;
use crate::state::TaskRecord;

/// A bridge-side veth name for `task`: `prefix` and the start of the task
/// ID, unless another task already has that name on the same bridge.
fn peer_name(prefix_: &str, task: &str, taken: &BTreeSet<&str>) -> String {
    let first = format!("{prefix_}{}", prefix(task, 12));
    if !taken.contains(first.as_str()) {
        return first;
    }
    let stem = format!("{prefix_}{}", prefix(task, 10));
    (0..1296u32)
        .map(|n| {
            let d = |v: u32| char::from_digit(v, 36).unwrap_or('0');
            format!("{stem}{}{}", d(n / 36), d(n % 36))
        })
        .find(|c| !taken.contains(c.as_str()))
        .unwrap_or(first)
}

fn peers_on(state: &NodeState, on: impl Fn(&Link) -> bool) -> BTreeSet<&str> {
    state
        .tasks
        .values()
        .flat_map(|t| &t.interfaces)
        .filter(|i| on(&i.link))
        .map(|i| i.peer.as_str())
        .collect()
}

/// The record for a new task: one interface per attachment, in order, then
/// the egress interface when `egress` is given.
pub fn task_record(
    state: &NodeState,
    task: &str,
    planned: &[Planned],
    egress: Option<&Egress>,
    resolv_conf: String,
) -> Result<TaskRecord, PlanError> {
    check_id(task)?;
    let mut interfaces: Vec<Interface> = Vec::with_capacity(planned.len() + 1);
    for p in planned {
        let name = format!("eth{}", interfaces.len());
        let iface = network_interface(state, task, p, name, &interfaces);
        interfaces.push(iface);
    }
    if let Some(e) = egress {
        let address = next_egress_address(state, e)?;
        let taken = peers_on(state, |l| matches!(l, Link::Egress { .. }));
        interfaces.push(Interface {
            name: format!("eth{}", interfaces.len()),
            address,
            mtu: GWBRIDGE_MTU,
            mac: mac_for(address.addr()),
            peer: peer_name("vg-", task, &taken),
            link: Link::Egress { gateway: e.gateway },
        });
    }
    route_default_via_local(&mut interfaces);
    Ok(TaskRecord {
        interfaces,
        resolv_conf,
        names: local_names(planned),
    })
}

/// The task's names on each node-local network of `planned`.
fn local_names(planned: &[Planned]) -> BTreeMap<String, Vec<String>> {
    planned
        .iter()
        .filter(|p| p.local)
        .map(|p| (p.network.id.clone(), p.names.clone()))
        .collect()
}

/// Without an interface carrying the default route, the first node-local
/// network's carries it (dockerd's gateway endpoint, internal networks
/// included: their rules keep the traffic in).
fn route_default_via_local(interfaces: &mut [Interface]) {
    if interfaces.iter().any(|i| i.link.carries_default_route()) {
        return;
    }
    if let Some(Link::Local { default_route, .. }) = interfaces
        .iter_mut()
        .map(|i| &mut i.link)
        .find(|l| matches!(l, Link::Local { .. }))
    {
        *default_route = true;
    }
}

/// `task`'s interface `name` on the planned network `p`, its peer named
/// apart from the other peers in the same namespace: those on the swarm
/// network's bridge (in its sandbox), or, for a node-local network, every
/// node-local peer (all in the node's namespace), `siblings` (the task's
/// interfaces made before this one) included.
fn network_interface(
    state: &NodeState,
    task: &str,
    p: &Planned,
    name: String,
    siblings: &[Interface],
) -> Interface {
    let id = &p.network.id;
    let (prefix_, link, mut taken) = if p.local {
        let link = Link::Local {
            id: id.clone(),
            bridge: p.network.bridge.clone(),
            gateway: p.network.gateway,
            default_route: false,
            internal: p.internal,
        };
        let taken = peers_on(state, |l| matches!(l, Link::Local { .. }));
        ("vl-", link, taken)
    } else {
        let link = Link::Network {
            id: id.clone(),
            bridge: p.network.bridge.clone(),
        };
        let taken = peers_on(
            state,
            |l| matches!(l, Link::Network { id: i, .. } if i == id),
        );
        ("vt-", link, taken)
    };
    taken.extend(
        siblings
            .iter()
            .filter(|i| i.peer.starts_with(prefix_))
            .map(|i| i.peer.as_str()),
    );
    Interface {
        name,
        address: p.address,
        mtu: p.network.mtu,
        mac: mac_for(p.address.addr()),
        peer: peer_name(prefix_, task, &taken),
        link,
    }
}

/// `old`, the record of an attached task, moved onto the networks of
/// `planned` (`docker network connect`/`disconnect`): the interfaces of
/// networks it keeps stay as they are, a new network gets a new interface
/// (named after the highest one), a dropped network's goes. The egress
/// interface and the resolver configuration stay.
pub fn task_record_moved(
    state: &NodeState,
    task: &str,
    old: &TaskRecord,
    planned: &[Planned],
) -> Result<TaskRecord, PlanError> {
    check_id(task)?;
    let kept = |i: &Interface| match &i.link {
        Link::Network { id, .. } | Link::Local { id, .. } => planned
            .iter()
            .any(|p| &p.network.id == id && p.address == i.address),
        Link::Egress { .. } => true,
    };
    let mut interfaces: Vec<Interface> =
        old.interfaces.iter().filter(|i| kept(i)).cloned().collect();
    let mut next = old
        .interfaces
        .iter()
        .filter_map(|i| i.name.strip_prefix("eth")?.parse::<usize>().ok())
        .max()
        .map_or(0, |n| n + 1);
    for p in planned {
        let id = &p.network.id;
        let present = interfaces
            .iter()
            .any(|i| i.link.network_id() == Some(id.as_str()));
        if present {
            continue;
        }
        let iface = network_interface(state, task, p, format!("eth{next}"), &interfaces);
        interfaces.push(iface);
        next += 1;
    }
    route_default_via_local(&mut interfaces);
    Ok(TaskRecord {
        interfaces,
        resolv_conf: old.resolv_conf.clone(),
        names: local_names(planned),
    })
}

/// Whether `rec` is on exactly the networks and addresses of `planned`.
pub fn same_networks(rec: &TaskRecord, planned: &[Planned]) -> bool {
    let mut have: Vec<(&str, Ipv4Net)> = rec
        .interfaces
        .iter()
        .filter_map(|i| i.link.network_id().map(|id| (id, i.address)))
        .collect();
    let mut want: Vec<(&str, Ipv4Net)> = planned
        .iter()
        .map(|p| (p.network.id.as_str(), p.address))
        .collect();
    have.sort();
    want.sort();
    have == want
}
