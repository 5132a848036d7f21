//! Node-local bridge networks (`docker network create` with the bridge
//! driver, for standalone containers), the pure part: the record the
//! driver keeps of each, the addresses containers get on them, and the
//! names their embedded DNS servers answer.
//!
//! Unlike a swarm network's bridge (in a sandbox namespace of its own, see
//! `crate::bridge`), a node-local network's bridge lives in the driver's
//! own namespace, as dockerd's do: it holds the gateway address, the node
//! routes to the containers on it, published ports are DNATed to their
//! addresses there, and what leaves it for elsewhere is masqueraded (or,
//! for an internal network, dropped). Different bridges are isolated from
//! each other by the `ip shoal` table (see [`crate::nft`]).
//!
//! Addresses come from the driver's records, like the gateway bridge's:
//! the lowest free one of the network's range, the gateway and every
//! attached container's address taken. dockerd's IPAM also gives an
//! address only while a container runs.

pub mod bridge;
mod driver;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::Deserialize;
use serde::Serialize;
use swarm::exec::LocalAttachment;
use swarm::exec::LocalNetwork;
use swarm::exec::NetworkRecords;

use crate::state::check_id;
use crate::state::with_prefix;
use crate::state::Link;
use crate::state::NetworkRecord;
use crate::state::NodeState;
use crate::state::PlanError;
use crate::state::Planned;

/// dockerd's MTU for a bridge network without the
/// `com.docker.network.driver.mtu` option.
pub const DEFAULT_MTU: u32 = 1500;
/// The longest Linux interface name.
const IFNAME_MAX: usize = 15;

/// One node-local bridge network as the driver made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalRecord {
    /// The network's ID.
    pub id: String,
    /// The bridge's name in the driver's namespace.
    pub bridge: String,
    /// The subnet.
    pub subnet: Ipv4Net,
    /// The bridge's address.
    pub gateway: Ipv4Addr,
    /// Where containers' addresses come from (inside the subnet).
    pub range: Ipv4Net,
    /// No way out of the node and no way in.
    pub internal: bool,
    /// MTU of the bridge and of every container interface on it.
    pub mtu: u32,
}

impl LocalRecord {
    /// The checked record of `net`.
    pub fn parse(net: &LocalNetwork) -> Result<LocalRecord, PlanError> {
        check_id(&net.id)?;
        let bad = |reason: String| PlanError::InvalidLocalNetwork {
            network: net.id.clone(),
            reason,
        };
        let name_ok = !net.bridge.is_empty()
            && net.bridge.len() <= IFNAME_MAX
            && !net.bridge.contains(['/', ' ', '\0', ':'])
            && net.bridge != "."
            && net.bridge != "..";
        if !name_ok {
            return Err(bad(format!("invalid bridge name {:?}", net.bridge)));
        }
        let subnet: Ipv4Net = net
            .subnet
            .parse()
            .map_err(|_| bad(format!("invalid subnet {:?}", net.subnet)))?;
        let subnet = subnet.trunc();
        let gateway: Ipv4Addr = net
            .gateway
            .parse()
            .map_err(|_| bad(format!("invalid gateway {:?}", net.gateway)))?;
        if !subnet.contains(&gateway) {
            return Err(bad(format!("gateway {gateway} is not in {subnet}")));
        }
        let range = if net.ip_range.is_empty() {
            subnet
        } else {
            let r: Ipv4Net = net
                .ip_range
                .parse()
                .map_err(|_| bad(format!("invalid IP range {:?}", net.ip_range)))?;
            let r = r.trunc();
            if !subnet.contains(&r) {
                return Err(bad(format!("IP range {r} is not in {subnet}")));
            }
            r
        };
        Ok(LocalRecord {
            id: net.id.clone(),
            bridge: net.bridge.clone(),
            subnet,
            gateway,
            range,
            internal: net.internal,
            mtu: if net.mtu == 0 { DEFAULT_MTU } else { net.mtu },
        })
    }

    /// The network as a planned attachment describes it.
    fn as_network(&self) -> NetworkRecord {
        NetworkRecord {
            id: self.id.clone(),
            subnet: self.subnet,
            gateway: self.gateway,
            mtu: self.mtu,
            bridge: self.bridge.clone(),
            vni: 0,
        }
    }

    /// Every address of the range, lowest first (its first and last too:
    /// only the subnet's network and broadcast addresses are unusable).
    fn range_addresses(&self) -> impl Iterator<Item = Ipv4Addr> {
        (u32::from(self.range.network())..=u32::from(self.range.broadcast())).map(Ipv4Addr::from)
    }

    /// Whether `ip` can be a container's address: in the subnet, neither
    /// its network nor its broadcast address (a /31 or /32 has neither).
    fn usable(&self, ip: Ipv4Addr) -> bool {
        let s = self.subnet;
        self.subnet.contains(&ip)
            && (s.prefix_len() >= 31 || (ip != s.network() && ip != s.broadcast()))
    }
}

/// The addresses on node-local network `id` that tasks other than `task`
/// hold.
fn taken_on(state: &NodeState, id: &str, task: &str) -> Vec<Ipv4Addr> {
    state
        .tasks
        .iter()
        .filter(|(t, _)| t.as_str() != task)
        .flat_map(|(_, r)| &r.interfaces)
        .filter(|i| matches!(&i.link, Link::Local { id: n, .. } if n == id))
        .map(|i| i.address.addr())
        .collect()
}

/// `task`'s current address on node-local network `id`, if it has one.
fn current_address(state: &NodeState, id: &str, task: &str) -> Option<Ipv4Addr> {
    state
        .tasks
        .get(task)?
        .interfaces
        .iter()
        .find(|i| matches!(&i.link, Link::Local { id: n, .. } if n == id))
        .map(|i| i.address.addr())
}

/// Plans `task`'s place on a node-local network: the address asked for
/// (free, in the subnet), else the one it has there, else the lowest free
/// one of the range.
pub fn plan(state: &NodeState, task: &str, a: &LocalAttachment) -> Result<Planned, PlanError> {
    let rec = state
        .local_networks
        .get(&a.network_id)
        .ok_or_else(|| PlanError::NoLocalNetwork(a.network_id.clone()))?;
    let taken = taken_on(state, &rec.id, task);
    let free = |ip: &Ipv4Addr| rec.usable(*ip) && *ip != rec.gateway && !taken.contains(ip);
    let address = if a.address.is_empty() {
        current_address(state, &rec.id, task)
            .filter(|ip| free(ip))
            .or_else(|| rec.range_addresses().find(free))
            .ok_or_else(|| PlanError::LocalExhausted(rec.id.clone()))?
    } else {
        let ip: Ipv4Addr = a.address.parse().map_err(|_| PlanError::InvalidAddress {
            network: rec.id.clone(),
            field: "address",
            value: a.address.clone(),
        })?;
        if !rec.subnet.contains(&ip) {
            return Err(PlanError::AddressOutside(ip));
        }
        if !free(&ip) {
            return Err(PlanError::AddressInUse);
        }
        ip
    };
    Ok(Planned {
        network: rec.as_network(),
        address: with_prefix(address, rec.subnet),
        ingress: false,
        internal: rec.internal,
        local: true,
        names: a.aliases.clone(),
    })
}

/// The node-local networks to remove and to make for `before` to become
/// `after` (a changed record is removed and made again).
pub fn changes(before: &NodeState, after: &NodeState) -> (Vec<LocalRecord>, Vec<LocalRecord>) {
    let gone = before
        .local_networks
        .iter()
        .filter(|(id, r)| after.local_networks.get(*id) != Some(r))
        .map(|(_, r)| r.clone())
        .collect();
    let new = after
        .local_networks
        .iter()
        .filter(|(id, r)| before.local_networks.get(*id) != Some(r))
        .map(|(_, r)| r.clone())
        .collect();
    (gone, new)
}

/// Whether a task is attached to node-local network `id`.
pub fn in_use(state: &NodeState, id: &str) -> bool {
    state
        .tasks
        .values()
        .flat_map(|r| &r.interfaces)
        .any(|i| matches!(&i.link, Link::Local { id: n, .. } if n == id))
}

/// What the embedded DNS servers answer on each node-local network: every
/// attached task's names (lower-case) to its address there, as dockerd
/// answers on user-defined networks.
pub fn records(state: &NodeState) -> Vec<NetworkRecords> {
    let mut out: BTreeMap<&str, BTreeMap<String, Vec<IpAddr>>> = state
        .local_networks
        .keys()
        .map(|id| (id.as_str(), BTreeMap::new()))
        .collect();
    for rec in state.tasks.values() {
        for i in &rec.interfaces {
            let Link::Local { id, .. } = &i.link else {
                continue;
            };
            let (Some(names), Some(by_name)) = (rec.names.get(id), out.get_mut(id.as_str())) else {
                continue;
            };
            for n in names {
                let addrs = by_name.entry(n.to_ascii_lowercase()).or_default();
                let a = IpAddr::V4(i.address.addr());
                if !addrs.contains(&a) {
                    addrs.push(a);
                }
            }
        }
    }
    out.into_iter()
        .map(|(id, names)| NetworkRecords {
            network_id: id.to_string(),
            names: names
                .into_iter()
                .map(|(n, mut a)| {
                    a.sort();
                    (n, a)
                })
                .collect(),
            vips: Vec::new(),
        })
        .collect()
}
