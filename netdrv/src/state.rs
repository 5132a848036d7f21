//! The pure core of the driver: what the kernel should hold for a set of
//! attached tasks, and the actions that turn one such state into another.
//!
//! [`NodeState`] is both the persisted record of what the driver made and
//! the desired state of a change: `attach` computes the state with the task
//! added, `detach` the state with it removed, and [`diff`] lists the kernel
//! actions between the two in a safe order (bridges before the tasks that
//! plug into them, tasks before the bridges they leave). [`leftovers`] adds
//! removals for kernel objects found on the node that no record explains
//! (a crash between making an object and recording it). Nothing here
//! touches the kernel, so every decision is unit-tested.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
pub use swarm::exec::mac_for;

use ipnet::Ipv4Net;
use serde::Deserialize;
use serde::Serialize;
use swarm::exec::Attachment;
use swarm::exec::HostPort;
use swarm::exec::NetworkSpec;

use crate::ingress::IngressRecord;
use crate::ingress::SandboxRuleset;
use crate::local::LocalRecord;
use crate::nft::Ruleset;
pub use crate::task_record::same_networks;
pub use crate::task_record::task_record;
pub use crate::task_record::task_record_moved;

/// dockerd's overlay MTU when the network sets none: 1500 less the 50 bytes
/// of VXLAN encapsulation.
pub const DEFAULT_OVERLAY_MTU: u32 = 1450;

/// Why a set of attachments cannot be made real.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// An ID that cannot name a file (empty, `.`, `..`, or with `/`).
    #[error("invalid ID {0:?}")]
    InvalidId(String),
    /// A field that does not parse as an IPv4 address or prefix.
    #[error("network {network}: invalid {field} {value:?}")]
    InvalidAddress {
        /// The network's ID.
        network: String,
        /// Which field.
        field: &'static str,
        /// Its text.
        value: String,
    },
    /// The gateway or task address lies outside the network's subnet.
    #[error("network {network}: {address} is not in subnet {subnet}")]
    OutsideSubnet {
        /// The network's ID.
        network: String,
        /// The address.
        address: String,
        /// The subnet.
        subnet: String,
    },
    /// The same network appears twice in one task's attachments.
    #[error("network {0} attached twice")]
    DuplicateNetwork(String),
    /// The node-local subnet has no address left for another task.
    #[error("gateway bridge subnet {0} has no free address")]
    EgressExhausted(Ipv4Net),
    /// Ports published for a task this driver has not attached.
    #[error("task {0} is not attached")]
    NotAttached(String),
    /// A node-local network the driver has not made (or has removed).
    #[error("network {0} not found")]
    NoLocalNetwork(String),
    /// A node-local network's settings that do not hold together.
    #[error("network {network}: {reason}")]
    InvalidLocalNetwork {
        /// The network's ID.
        network: String,
        /// What is wrong.
        reason: String,
    },
    /// An address asked for outside the node-local network's subnet
    /// (dockerd's IPAM text).
    #[error("Invalid address {0}: It does not belong to any of this network's subnets")]
    AddressOutside(Ipv4Addr),
    /// An address asked for that the gateway or another container has
    /// (dockerd's IPAM text).
    #[error("Address already in use")]
    AddressInUse,
    /// No address left in a node-local network's range (dockerd's text).
    #[error("no available IPv4 addresses on this network's address pools: {0}")]
    LocalExhausted(String),
}

/// What the driver made on this node; persisted as `state.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// The kernel boot the records belong to: after a reboot none of the
    /// kernel objects exist any more.
    #[serde(default)]
    pub boot_id: String,
    /// Swarm networks with a bridge on this node, by network ID.
    #[serde(default)]
    pub networks: BTreeMap<String, NetworkRecord>,
    /// Attached tasks, by task ID.
    #[serde(default)]
    pub tasks: BTreeMap<String, TaskRecord>,
    /// The gateway bridge, while any task or the routing mesh uses it.
    #[serde(default)]
    pub egress: Option<Egress>,
    /// The routing mesh, while any port is published in ingress mode and
    /// the swarm has an ingress network (see [`crate::ingress`]).
    #[serde(default)]
    pub ingress: Option<IngressRecord>,
    /// Host-mode published ports, by task ID (only attached tasks).
    #[serde(default)]
    pub host_ports: BTreeMap<String, Vec<HostPort>>,
    /// Node-local bridge networks, by network ID: made when the network
    /// is created, they stay, used or not, until it is removed.
    #[serde(default)]
    pub local_networks: BTreeMap<String, LocalRecord>,
}

/// One swarm network's bridge on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    /// The network's ID (also names its sandbox namespace file).
    pub id: String,
    /// The network's subnet.
    pub subnet: Ipv4Net,
    /// The gateway address, held by the bridge.
    pub gateway: Ipv4Addr,
    /// MTU of the bridge and of every task interface on it.
    pub mtu: u32,
    /// The bridge's name inside the network's sandbox namespace.
    pub bridge: String,
    /// The VXLAN ID towards other nodes (0: none, see [`crate::overlay`]).
    #[serde(default)]
    pub vni: u32,
}

/// The node-local egress subnet of the gateway bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Egress {
    /// The subnet (`172.18.0.0/16` unless that clashes with a host route).
    pub subnet: Ipv4Net,
    /// The bridge's own address, the tasks' default gateway.
    pub gateway: Ipv4Addr,
}

/// One attached task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Its interfaces, in order: one per attachment, then the egress one.
    pub interfaces: Vec<Interface>,
    /// The resolv.conf handed out at attach (returned again, unchanged, by
    /// a repeated attach).
    pub resolv_conf: String,
    /// The task's DNS names on each node-local network it is on, by
    /// network ID (swarm networks' names come with the service records).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub names: BTreeMap<String, Vec<String>>,
}

/// One interface of a task: a veth pair with `name` inside the task's
/// namespace and `peer` on a bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Name inside the task (`eth0`, `eth1`, ...).
    pub name: String,
    /// Address with the subnet's prefix.
    pub address: Ipv4Net,
    /// MTU of both ends.
    pub mtu: u32,
    /// MAC address, derived from the IPv4 address as dockerd does, so a
    /// peer node can compute it without ARP.
    pub mac: [u8; 6],
    /// Name of the bridge-side end.
    pub peer: String,
    /// Which bridge the peer end is plugged into.
    pub link: Link,
}

/// The bridge side of an [`Interface`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Link {
    /// A swarm network's bridge, in that network's sandbox namespace.
    Network {
        /// The network's ID.
        id: String,
        /// The bridge's name in the sandbox.
        bridge: String,
    },
    /// The gateway bridge in the driver's own namespace; the task's default
    /// route goes through `gateway`.
    Egress {
        /// The gateway bridge's address.
        gateway: Ipv4Addr,
    },
    /// A node-local bridge network's bridge, in the driver's own
    /// namespace.
    Local {
        /// The network's ID.
        id: String,
        /// The bridge's name.
        bridge: String,
        /// The bridge's address.
        gateway: Ipv4Addr,
        /// Whether the task's default route goes through `gateway` (the
        /// first such network of a task without the gateway bridge).
        default_route: bool,
        /// An internal network's: no way out through it.
        #[serde(default)]
        internal: bool,
    },
}

impl Link {
    /// Whether the task's default route goes through this link.
    pub fn carries_default_route(&self) -> bool {
        match self {
            Link::Egress { .. } => true,
            Link::Local { default_route, .. } => *default_route,
            Link::Network { .. } => false,
        }
    }

    /// The network this link is on, for a swarm or node-local network.
    pub fn network_id(&self) -> Option<&str> {
        match self {
            Link::Network { id, .. } | Link::Local { id, .. } => Some(id),
            Link::Egress { .. } => None,
        }
    }
}

/// One kernel change, in the order [`diff`] and [`leftovers`] emit them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create the gateway bridge with this subnet's gateway address; turn
    /// on IPv4 forwarding.
    CreateGwBridge(Egress),
    /// Replace the whole `ip shoal` nftables table with this ruleset.
    ApplyNft(Ruleset),
    /// Create a network's sandbox namespace and bridge.
    CreateNetwork(NetworkRecord),
    /// Create the task's namespace with loopback up.
    CreateTaskNetns(String),
    /// Create a veth pair for the task and plug it in.
    AddInterface {
        /// The task.
        task: String,
        /// The interface.
        iface: Interface,
    },
    /// Delete a task interface's bridge-side end (which takes the inner end
    /// with it).
    RemoveInterface {
        /// The task.
        task: String,
        /// The interface.
        iface: Interface,
    },
    /// Unmount and delete the task's namespace file.
    RemoveTaskNetns(String),
    /// Delete a network's sandbox namespace (and with it its bridge).
    RemoveNetwork(String),
    /// Make the ingress network's sandbox the ingress sandbox: plug its
    /// interface into the gateway bridge (address, default route) and turn
    /// on forwarding in it.
    CreateIngress(IngressRecord),
    /// Replace the ingress sandbox's own `ip shoal` table.
    ApplyIngressNft {
        /// The ingress network's ID (names the sandbox).
        network: String,
        /// The table's content.
        ruleset: SandboxRuleset,
    },
    /// Unplug the ingress sandbox from the gateway bridge and delete its
    /// table (the sandbox stays while tasks use the network).
    RemoveIngress(IngressRecord),
    /// Delete the `ip shoal` nftables table.
    DeleteNft,
    /// Delete the gateway bridge.
    RemoveGwBridge,
    /// Create (or complete) a node-local network's bridge.
    CreateLocalNetwork(LocalRecord),
    /// Delete a node-local network's bridge.
    RemoveLocalNetwork(LocalRecord),
}

/// Kernel objects found on the node, for [`leftovers`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Task namespace files present.
    pub task_netns: BTreeSet<String>,
    /// Network sandbox files present, by network ID.
    pub sandboxes: BTreeSet<String>,
    /// Whether the gateway bridge exists.
    pub gwbridge: bool,
    /// Whether the `ip shoal` table exists.
    pub nft_table: bool,
}

/// One attachment, parsed and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// The network as the node records it.
    pub network: NetworkRecord,
    /// The task's address on it.
    pub address: Ipv4Net,
    /// The routing-mesh network.
    pub ingress: bool,
    /// A network without a way out.
    pub internal: bool,
    /// A node-local bridge network (`network` describes its bridge).
    pub local: bool,
    /// The task's DNS names on a node-local network.
    pub names: Vec<String>,
}

/// Checks that `id` can name a file under the state directory.
pub fn check_id(id: &str) -> Result<(), PlanError> {
    if id.is_empty() || id == "." || id == ".." || id.contains('/') || id.contains('\0') {
        return Err(PlanError::InvalidId(id.to_string()));
    }
    Ok(())
}

/// The bridge's name for a network: `shoal-` and the start of the ID, so
/// `ip link` in a sandbox tells which network it is (15 bytes, the kernel's
/// limit).
pub fn bridge_name(network_id: &str) -> String {
    format!("shoal-{}", prefix(network_id, 9))
}

pub(crate) fn prefix(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// `ip` with `subnet`'s prefix length (`10.0.1.1` in `10.0.1.0/24` gives
/// `10.0.1.1/24`).
pub fn with_prefix(ip: Ipv4Addr, subnet: Ipv4Net) -> Ipv4Net {
    // A prefix length taken from a valid `Ipv4Net` is always valid.
    Ipv4Net::new(ip, subnet.prefix_len()).unwrap_or_else(|_| Ipv4Net::from(ip))
}

/// Parses and checks a task's attachments.
pub fn parse_attachments(attachments: &[Attachment]) -> Result<Vec<Planned>, PlanError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(attachments.len());
    for a in attachments {
        let n = &a.network;
        let network = parse_network(n)?;
        if !seen.insert(n.id.clone()) {
            return Err(PlanError::DuplicateNetwork(n.id.clone()));
        }
        let bad = |field: &'static str, value: &str| PlanError::InvalidAddress {
            network: n.id.clone(),
            field,
            value: value.to_string(),
        };
        let subnet = network.subnet;
        let address: Ipv4Net = match a.address.parse() {
            Ok(net) => net,
            // A bare address takes the subnet's prefix.
            Err(_) => a
                .address
                .parse::<Ipv4Addr>()
                .ok()
                .and_then(|ip| Ipv4Net::new(ip, subnet.prefix_len()).ok())
                .ok_or_else(|| bad("address", &a.address))?,
        };
        if !subnet.contains(&address.addr()) {
            return Err(PlanError::OutsideSubnet {
                network: n.id.clone(),
                address: address.addr().to_string(),
                subnet: subnet.to_string(),
            });
        }
        let address = with_prefix(address.addr(), subnet);
        out.push(Planned {
            network,
            address,
            ingress: n.ingress,
            internal: n.internal,
            local: false,
            names: Vec::new(),
        });
    }
    Ok(out)
}

/// Parses and checks one network as the node records it.
pub fn parse_network(n: &NetworkSpec) -> Result<NetworkRecord, PlanError> {
    check_id(&n.id)?;
    let bad = |field: &'static str, value: &str| PlanError::InvalidAddress {
        network: n.id.clone(),
        field,
        value: value.to_string(),
    };
    let subnet: Ipv4Net = n.subnet.parse().map_err(|_| bad("subnet", &n.subnet))?;
    let subnet = subnet.trunc();
    let gateway: Ipv4Addr = n.gateway.parse().map_err(|_| bad("gateway", &n.gateway))?;
    if !subnet.contains(&gateway) {
        return Err(PlanError::OutsideSubnet {
            network: n.id.clone(),
            address: gateway.to_string(),
            subnet: subnet.to_string(),
        });
    }
    Ok(NetworkRecord {
        id: n.id.clone(),
        subnet,
        gateway,
        mtu: if n.mtu == 0 {
            DEFAULT_OVERLAY_MTU
        } else {
            n.mtu
        },
        bridge: bridge_name(&n.id),
        vni: n.vni,
    })
}

/// Whether the task gets an interface on the gateway bridge: yes on the
/// default bridge (`default_bridge`, a standalone container's `bridge`);
/// no with a non-internal node-local network, whose bridge leads out;
/// otherwise yes unless every network it is on is internal. A task on no
/// network at all gets one too (dockerd puts such tasks on its default
/// bridge, which also leads out).
pub fn needs_egress(planned: &[Planned], default_bridge: bool) -> bool {
    if default_bridge {
        return true;
    }
    if planned.iter().any(|p| p.local && !p.internal) {
        return false;
    }
    planned.is_empty() || planned.iter().any(|p| !p.internal)
}

/// Whether the task's names resolve through the embedded DNS server: it is
/// on at least one swarm network. The routing mesh counts, as under dockerd
/// (libnetwork starts the resolver for any overlay endpoint): such a task
/// resolves no service names, only the node's through forwarding.
pub fn uses_embedded_dns(planned: &[Planned]) -> bool {
    !planned.is_empty()
}

impl NodeState {
    /// This state with the networks of `planned` it does not have yet.
    fn with_networks(&self, planned: &[Planned]) -> NodeState {
        let mut next = self.clone();
        for p in planned.iter().filter(|p| !p.local) {
            next.networks
                .entry(p.network.id.clone())
                .or_insert_with(|| p.network.clone());
        }
        next
    }

    /// `task`'s record replaced by `record` (its networks moved, see
    /// [`task_record_moved`]): networks only it used go, new ones come.
    pub fn with_moved_task(
        &self,
        task: &str,
        record: TaskRecord,
        planned: &[Planned],
    ) -> NodeState {
        let mut next = self.with_networks(planned);
        next.tasks.insert(task.to_string(), record);
        next.without_unused()
    }

    /// This state plus `task`, its networks and, if it has an egress
    /// interface, the gateway bridge.
    pub fn with_task(
        &self,
        task: &str,
        record: TaskRecord,
        planned: &[Planned],
        egress: Option<&Egress>,
    ) -> NodeState {
        let mut next = self.with_networks(planned);
        if record
            .interfaces
            .iter()
            .any(|i| matches!(i.link, Link::Egress { .. }))
        {
            if let Some(e) = egress {
                next.egress = Some(e.clone());
            }
        }
        next.tasks.insert(task.to_string(), record);
        next
    }

    /// This state without `tasks` (and their host-mode ports), and without
    /// the networks and gateway bridge neither a remaining task nor the
    /// routing mesh uses.
    pub fn without_tasks<'a>(&self, tasks: impl IntoIterator<Item = &'a str>) -> NodeState {
        let mut next = self.clone();
        for t in tasks {
            next.tasks.remove(t);
            next.host_ports.remove(t);
        }
        next.without_unused()
    }

    /// This state with the routing mesh `ingress` on its network (added
    /// if missing) and the gateway bridge `egress` (when given), or
    /// without the routing mesh and what only it used.
    pub fn with_ingress(
        &self,
        ingress: Option<(NetworkRecord, IngressRecord)>,
        egress: Option<&Egress>,
    ) -> NodeState {
        let mut next = self.clone();
        next.ingress = ingress.map(|(network, record)| {
            next.networks.entry(network.id.clone()).or_insert(network);
            if let Some(e) = egress {
                next.egress = Some(e.clone());
            }
            record
        });
        next.without_unused()
    }

    /// This state with `task`'s host-mode ports replaced by `ports`.
    pub fn with_host_ports(&self, task: &str, ports: &[HostPort]) -> NodeState {
        let mut next = self.clone();
        if ports.is_empty() {
            next.host_ports.remove(task);
        } else {
            next.host_ports.insert(task.to_string(), ports.to_vec());
        }
        next
    }

    /// Drops the networks and the gateway bridge nothing uses any more.
    fn without_unused(mut self) -> NodeState {
        let mut used: BTreeSet<&str> = self
            .tasks
            .values()
            .flat_map(|t| &t.interfaces)
            .filter_map(|i| match &i.link {
                Link::Network { id, .. } => Some(id.as_str()),
                Link::Egress { .. } | Link::Local { .. } => None,
            })
            .collect();
        used.extend(self.ingress.as_ref().map(|i| i.network.as_str()));
        let unused: Vec<String> = self
            .networks
            .keys()
            .filter(|id| !used.contains(id.as_str()))
            .cloned()
            .collect();
        for id in unused {
            self.networks.remove(&id);
        }
        let any_egress = self.ingress.is_some()
            || self
                .tasks
                .values()
                .flat_map(|t| &t.interfaces)
                .any(|i| matches!(i.link, Link::Egress { .. }));
        if !any_egress {
            self.egress = None;
        }
        self
    }
}

/// Adding (or removing) each of `task`'s `ifaces`.
fn interface_actions<'a>(
    task: &'a str,
    ifaces: &'a [Interface],
    add: bool,
) -> impl Iterator<Item = Action> + 'a {
    ifaces.iter().map(move |i| {
        let (task, iface) = (task.to_string(), i.clone());
        if add {
            Action::AddInterface { task, iface }
        } else {
            Action::RemoveInterface { task, iface }
        }
    })
}

/// `actions` split into those on `task`'s own namespace and interfaces
/// (first) and the rest, each in its order.
pub fn split_task_actions(actions: Vec<Action>, task: &str) -> (Vec<Action>, Vec<Action>) {
    actions.into_iter().partition(|a| match a {
        Action::CreateTaskNetns(t) | Action::RemoveTaskNetns(t) => t == task,
        Action::AddInterface { task: t, .. } | Action::RemoveInterface { task: t, .. } => t == task,
        _ => false,
    })
}

/// The actions that turn the kernel state `before` describes into the one
/// `after` describes. A task in both changes only the interfaces that
/// differ (it moved between networks).
pub fn diff(before: &NodeState, after: &NodeState) -> Vec<Action> {
    let mut out = Vec::new();
    if let Some(e) = &after.egress {
        if before.egress.as_ref() != Some(e) {
            out.push(Action::CreateGwBridge(e.clone()));
        }
    }
    let (local_gone, local_new) = crate::local::changes(before, after);
    out.extend(local_new.into_iter().map(Action::CreateLocalNetwork));
    let (rs_before, rs_after) = (Ruleset::for_state(before), Ruleset::for_state(after));
    if let Some(rs) = &rs_after {
        if rs_before.as_ref() != Some(rs) {
            out.push(Action::ApplyNft(rs.clone()));
        }
    }
    for (id, net) in &after.networks {
        if !before.networks.contains_key(id) {
            out.push(Action::CreateNetwork(net.clone()));
        }
    }
    out.extend(ingress_changes(before, after));
    for (id, task) in &after.tasks {
        if !before.tasks.contains_key(id) {
            out.push(Action::CreateTaskNetns(id.clone()));
            out.extend(interface_actions(id, &task.interfaces, true));
        }
    }
    // A task moved between networks: its own interfaces change.
    for (id, task) in &after.tasks {
        let Some(old) = before.tasks.get(id) else {
            continue;
        };
        let gone: Vec<Interface> = old
            .interfaces
            .iter()
            .filter(|i| !task.interfaces.contains(i))
            .cloned()
            .collect();
        let new: Vec<Interface> = task
            .interfaces
            .iter()
            .filter(|i| !old.interfaces.contains(i))
            .cloned()
            .collect();
        out.extend(interface_actions(id, &gone, false));
        out.extend(interface_actions(id, &new, true));
    }
    for (id, task) in &before.tasks {
        if !after.tasks.contains_key(id) {
            out.extend(interface_actions(id, &task.interfaces, false));
            out.push(Action::RemoveTaskNetns(id.clone()));
        }
    }
    for id in before.networks.keys() {
        if !after.networks.contains_key(id) {
            out.push(Action::RemoveNetwork(id.clone()));
        }
    }
    out.extend(local_gone.into_iter().map(Action::RemoveLocalNetwork));
    if rs_before.is_some() && rs_after.is_none() {
        out.push(Action::DeleteNft);
    }
    if before.egress.is_some() && after.egress.is_none() {
        out.push(Action::RemoveGwBridge);
    }
    out
}

/// The routing mesh's part of [`diff`]: after the sandboxes exist, before
/// any task changes. An old plumbing goes before a new one is made, as both
/// use the same gateway bridge port name.
fn ingress_changes(before: &NodeState, after: &NodeState) -> Vec<Action> {
    let mut out = Vec::new();
    let (old, new) = (before.ingress.as_ref(), after.ingress.as_ref());
    let kept = match (old, new) {
        (Some(o), Some(n)) => {
            o.network == n.network
                && o.iface == n.iface
                && o.lb_address == n.lb_address
                && before.networks.contains_key(&n.network)
        }
        _ => false,
    };
    if let Some(o) = old.filter(|_| !kept) {
        out.push(Action::RemoveIngress(o.clone()));
    }
    if let Some(n) = new {
        if !kept {
            out.push(Action::CreateIngress(n.clone()));
        }
        if !kept || old.map(|o| &o.ports) != Some(&n.ports) {
            out.push(Action::ApplyIngressNft {
                network: n.network.clone(),
                ruleset: SandboxRuleset::for_record(n),
            });
        }
    }
    out
}

/// Removals for objects `observed` on the node that neither `before` nor
/// `after` accounts for; run after [`diff`]`(before, after)`.
pub fn leftovers(before: &NodeState, after: &NodeState, observed: &Observed) -> Vec<Action> {
    let mut out = Vec::new();
    for t in &observed.task_netns {
        if !before.tasks.contains_key(t) && !after.tasks.contains_key(t) {
            out.push(Action::RemoveTaskNetns(t.clone()));
        }
    }
    for n in &observed.sandboxes {
        if !before.networks.contains_key(n) && !after.networks.contains_key(n) {
            out.push(Action::RemoveNetwork(n.clone()));
        }
    }
    let no_egress = before.egress.is_none() && after.egress.is_none();
    let no_table = no_egress && before.local_networks.is_empty() && after.local_networks.is_empty();
    if no_table && observed.nft_table {
        out.push(Action::DeleteNft);
    }
    if no_egress && observed.gwbridge {
        out.push(Action::RemoveGwBridge);
    }
    out
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
