//! The routing mesh: ports published in ingress mode, reachable on every
//! address of every node and spread across the service's serving tasks.
//!
//! dockerd's model with nftables in place of IPVS (this kernel has none):
//! - The ingress network's sandbox (see `bridge.rs`) doubles as dockerd's
//!   `ingress-sbox`: it gets one more interface, on the gateway bridge, with
//!   an address from the node-local subnet and a default route out.
//! - In the node's namespace the `ip shoal` table DNATs new connections to
//!   a published port on any local address to that interface (see
//!   [`crate::nft`]).
//! - Inside the sandbox its own `ip shoal` table picks a backend per new
//!   connection (`numgen inc`, round robin) and DNATs to its address on the
//!   ingress network and the target port, then masquerades out of the
//!   bridge, so the task answers the sandbox and the reply retraces both
//!   translations. A port without backends has no rule: the sandbox itself
//!   listens on nothing, so the kernel refuses (TCP reset, ICMP port
//!   unreachable), as dockerd's empty IPVS service does.
//!
//! The sandbox's port on the gateway bridge is not isolated (see
//! [`gwbridge::plug_port`]), so tasks could use it as a router into the
//! ingress network: its table forwards nothing but the connections it
//! DNATed.
//!
//! The sandbox exists while the records publish any ingress port, even with
//! no local task on the ingress network. The masquerade source is the
//! bridge's gateway address, which is the same on every node: right for
//! backends on this node; backends on other nodes need a per-node address
//! on the ingress network (dockerd's node load-balancer attachment), which
//! the records do not carry yet.

use std::net::IpAddr;
use std::net::Ipv4Addr;
use std::path::Path;

use ipnet::Ipv4Net;

use nftables::batch::Batch;
use nftables::expr::Expression;
use nftables::helper;
use nftables::schema::NfListObject;
use nftables::schema::Nftables;
use nftables::schema::Rule;
use nftables::stmt::Statement;
use nftables::stmt::NAT;
use nftables::types::NfChainPolicy;
use nftables::types::NfChainType;
use nftables::types::NfFamily;
use nftables::types::NfHook;
use serde::Deserialize;
use serde::Serialize;
use swarm::exec::PortProtocol;
use swarm::exec::ServiceRecords;

use crate::error::Result;
use crate::gwbridge;
use crate::gwbridge::next_egress_address;
use crate::gwbridge::GWBRIDGE_MTU;
use crate::netlink::Netlink;
use crate::netns;
use crate::nft;
use crate::state::bridge_name;
use crate::state::mac_for;
use crate::state::parse_network;
use crate::state::with_prefix;
use crate::state::Egress;
use crate::state::Interface;
use crate::state::Link;
use crate::state::NetworkRecord;
use crate::state::NodeState;
use crate::state::PlanError;

/// The ingress sandbox's interface on the gateway bridge.
pub const INGRESS_IFACE: &str = "gw0";
/// Its peer on the gateway bridge (no task's peer can take this name: task
/// IDs have no `-`).
pub const INGRESS_PEER: &str = "vg-ingress-sbox";

/// The routing mesh on this node; part of [`NodeState`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngressRecord {
    /// The ingress network's ID: its sandbox is the ingress sandbox.
    pub network: String,
    /// The sandbox's interface on the gateway bridge, where the node's
    /// DNAT sends published ports.
    pub iface: Interface,
    /// The published ports, by port then protocol.
    pub ports: Vec<IngressRule>,
    /// This node's own address on the ingress network (swarmkit's node
    /// load-balancer attachment), held by the bridge: connections to
    /// backends leave from it, so backends on other nodes answer here.
    /// `None`: the bridge's gateway address, right for local backends only.
    #[serde(default)]
    pub lb_address: Option<Ipv4Net>,
}

/// One port of the routing mesh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngressRule {
    /// The protocol.
    pub protocol: PortProtocol,
    /// The port on every node address.
    pub published: u16,
    /// The port in the tasks.
    pub target: u16,
    /// The serving tasks' addresses on the ingress network; empty: refused.
    pub backends: Vec<Ipv4Addr>,
}

/// What the records ask of this node: the ingress network, its ports and
/// this node's address on it, or `None` when no port is published in
/// ingress mode or the swarm has no ingress network. A port published twice
/// keeps its first entry; IPv6 backends are left out (the mesh is IPv4,
/// like the networks).
pub fn wanted(records: &ServiceRecords) -> Result<Option<Wanted>, PlanError> {
    let Some(spec) = &records.ingress_network else {
        return Ok(None);
    };
    if records.ingress.is_empty() {
        return Ok(None);
    }
    let network = parse_network(spec)?;
    let mut ports: Vec<IngressRule> = Vec::with_capacity(records.ingress.len());
    for p in &records.ingress {
        let taken = ports
            .iter()
            .any(|r| r.published == p.published && r.protocol == p.protocol);
        if taken || p.published == 0 {
            continue;
        }
        ports.push(IngressRule {
            protocol: p.protocol,
            published: p.published,
            target: p.target,
            backends: p
                .backends
                .iter()
                .filter_map(|b| match b {
                    IpAddr::V4(v4) => Some(*v4),
                    IpAddr::V6(_) => None,
                })
                .collect(),
        });
    }
    ports.sort_by_key(|r| (r.published, r.protocol as u8));
    let lb_address = records
        .local
        .ingress_address
        .as_deref()
        .and_then(|a| a.parse::<Ipv4Net>().ok())
        .filter(|a| network.subnet.contains(&a.addr()) && a.addr() != network.gateway)
        .map(|a| with_prefix(a.addr(), network.subnet));
    Ok(Some(Wanted {
        network,
        ports,
        lb_address,
    }))
}

/// The routing mesh the records ask of this node (see [`wanted`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The ingress network.
    pub network: NetworkRecord,
    /// Its ports.
    pub ports: Vec<IngressRule>,
    /// This node's address on it.
    pub lb_address: Option<Ipv4Net>,
}

/// The routing mesh for `state` on `network` with `ports`: the sandbox
/// keeps its gateway bridge address while the network stays the same;
/// otherwise it takes the lowest free one of `egress`.
pub fn plan(
    state: &NodeState,
    network: &NetworkRecord,
    ports: Vec<IngressRule>,
    lb_address: Option<Ipv4Net>,
    egress: &Egress,
) -> Result<IngressRecord, PlanError> {
    let iface = match &state.ingress {
        Some(i) if i.network == network.id && state.egress.as_ref() == Some(egress) => {
            i.iface.clone()
        }
        _ => {
            let address = next_egress_address(state, egress)?;
            Interface {
                name: INGRESS_IFACE.to_string(),
                address,
                mtu: GWBRIDGE_MTU,
                mac: mac_for(address.addr()),
                peer: INGRESS_PEER.to_string(),
                link: Link::Egress {
                    gateway: egress.gateway,
                },
            }
        }
    };
    Ok(IngressRecord {
        network: network.id.clone(),
        iface,
        ports,
        lb_address,
    })
}

/// The ingress sandbox's own `ip shoal` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxRuleset {
    /// The interface published ports arrive on (from the node's DNAT).
    pub inbound: String,
    /// The ingress network's bridge, towards the backends.
    pub bridge: String,
    /// The ports.
    pub ports: Vec<IngressRule>,
    /// The source of connections towards backends; `None`: masquerade
    /// (the bridge's gateway address).
    pub source: Option<Ipv4Addr>,
    /// The node-local sources `source` replaces (the gateway bridge's
    /// subnet: the node's own connections and its tasks'); others keep
    /// theirs, and the backends send the answers back to this sandbox
    /// by layer 2 (see [`crate::return_path`]). `0.0.0.0/0`: every
    /// source. Unused without `source`.
    pub local_sources: Ipv4Net,
}

const PREROUTING: &str = "prerouting";
const POSTROUTING: &str = "postrouting";
const FORWARD: &str = "forward";
/// `filter`, the priority of filtering in forward.
const FILTER_PRIORITY: i32 = 0;

impl SandboxRuleset {
    /// The table a routing mesh record needs.
    pub fn for_record(record: &IngressRecord) -> SandboxRuleset {
        SandboxRuleset {
            inbound: record.iface.name.clone(),
            bridge: bridge_name(&record.network),
            ports: record.ports.clone(),
            source: record.lb_address.map(|a| a.addr()),
            local_sources: record.iface.address.trunc(),
        }
    }

    /// The transaction that replaces the sandbox's table with this one.
    pub fn to_nftables(&self) -> Nftables<'static> {
        let mut batch = Batch::new();
        nft::replace_table(&mut batch);
        batch.add(nft::base_chain(
            PREROUTING,
            NfChainType::NAT,
            NfHook::Prerouting,
            nft::DSTNAT_PRIORITY,
        ));
        batch.add(nft::base_chain(
            POSTROUTING,
            NfChainType::NAT,
            NfHook::Postrouting,
            nft::SRCNAT_PRIORITY,
        ));
        let mut forward = nft::base_chain(
            FORWARD,
            NfChainType::Filter,
            NfHook::Forward,
            FILTER_PRIORITY,
        );
        if let NfListObject::Chain(c) = &mut forward {
            c.policy = Some(NfChainPolicy::Drop);
        }
        batch.add(forward);
        batch.add(rule(
            FORWARD,
            vec![nft::ct_status_dnat(), Statement::Accept(None)],
        ));
        // Frames bridged between the network's ports (tasks here, the VXLAN
        // device towards other nodes) meet this hook too where the kernel
        // passes bridged IPv4 to netfilter (br_netfilter): they pass.
        batch.add(rule(
            FORWARD,
            vec![
                nft::iifname(&self.bridge),
                nft::oifname(&self.bridge),
                Statement::Accept(None),
            ],
        ));
        for p in self.ports.iter().filter(|p| !p.backends.is_empty()) {
            let mut expr = vec![
                nft::iifname(&self.inbound),
                nft::dport(p.protocol, p.published),
            ];
            expr.push(Statement::DNAT(Some(NAT {
                addr: Some(nft::round_robin(&p.backends)),
                family: None,
                port: Some(Expression::Number(u32::from(p.target))),
                flags: None,
            })));
            batch.add(rule(PREROUTING, expr));
        }
        let out = match self.source {
            // A client's own address is kept: the backend sees it. An
            // address of this node's gateway bridge would mean nothing
            // on another node (every node has the same subnet), and a
            // task balanced to itself would drop its own address as a
            // martian source.
            Some(a) => {
                let mut out = vec![nft::oifname(&self.bridge)];
                let local = self.local_sources;
                if local.prefix_len() > 0 {
                    out.push(nft::ip_in(
                        "saddr",
                        local.network(),
                        local.prefix_len().into(),
                    ));
                }
                out.push(Statement::SNAT(Some(NAT {
                    addr: Some(Expression::String(a.to_string().into())),
                    family: None,
                    port: None,
                    flags: None,
                })));
                out
            }
            None => vec![nft::oifname(&self.bridge), Statement::Masquerade(None)],
        };
        batch.add(rule(POSTROUTING, out));
        batch.to_nftables()
    }
}

fn rule(chain: &'static str, expr: Vec<Statement<'static>>) -> NfListObject<'static> {
    NfListObject::Rule(Rule {
        family: NfFamily::IP,
        table: nft::TABLE.into(),
        chain: chain.into(),
        expr: expr.into(),
        ..Rule::default()
    })
}

/// Plugs the ingress sandbox (at `sandbox`, already made by
/// `bridge::create`) into the gateway bridge with `record`'s interface,
/// gives it its address and default route, and turns on forwarding in it.
/// `host` is the driver's namespace, whose file is `host_ns`.
pub async fn create(
    host: &Netlink,
    host_ns: &std::fs::File,
    sandbox: &Path,
    record: &IngressRecord,
) -> Result<()> {
    let sbox = Netlink::in_netns(sandbox).await?;
    let iface = &record.iface;
    gwbridge::plug_port(&sbox, host, host_ns, gwbridge::GWBRIDGE, iface, false).await?;
    let index = sbox.must_index(&iface.name).await?;
    sbox.ensure_address(index, iface.address).await?;
    if let Link::Egress { gateway } = iface.link {
        sbox.ensure_default_route(gateway, index).await?;
    }
    if let Some(lb) = record.lb_address {
        // The bridge takes the address's own MAC, the one other nodes'
        // neighbour entries give it: its frames must not carry the
        // gateway's MAC, which every node's bridge has (a bridge ignores
        // frames from its own address).
        let br = sbox.must_index(&bridge_name(&record.network)).await?;
        sbox.set_mac(br, mac_for(lb.addr())).await?;
        sbox.ensure_address(br, lb).await?;
    }
    netns::run_in(sandbox, gwbridge::enable_forwarding).await
}

/// Replaces the ingress sandbox's table (`nft` runs inside the sandbox).
pub async fn apply(sandbox: &Path, ruleset: &SandboxRuleset) -> Result<()> {
    let doc = ruleset.to_nftables();
    netns::run_in(sandbox, move || Ok(helper::apply_ruleset(&doc)?)).await
}

/// Unplugs the ingress sandbox from the gateway bridge and deletes its
/// table; a sandbox already gone is fine.
pub async fn remove(host: &Netlink, sandbox: &Path, record: &IngressRecord) -> Result<()> {
    let unplugged = gwbridge::unplug(host, &record.iface).await;
    if netns::is_mounted(sandbox) {
        if let Some(lb) = record.lb_address {
            let sbox = Netlink::in_netns(sandbox).await?;
            if let Some(br) = sbox.index(&bridge_name(&record.network)).await? {
                // The bridge keeps the MAC: nothing on this node resolves
                // the gateway, and the next routing mesh sets it again.
                sbox.remove_address(br, lb).await?;
            }
        }
        let doc = nft::delete_table();
        netns::run_in(sandbox, move || Ok(helper::apply_ruleset(&doc)?)).await?;
    }
    unplugged
}

#[cfg(test)]
#[path = "ingress_tests.rs"]
mod tests;
