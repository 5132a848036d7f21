//! The gateway bridge, `shoal_gwbridge`: the node-local way out of the
//! node for tasks (dockerd's `docker_gwbridge`), and its address management.
//!
//! The bridge lives in the driver's own namespace (the host's in
//! production) and holds the gateway address of a node-local subnet; every
//! task with a non-internal network (or none) gets one more interface on it,
//! last, carrying its default route. Traffic leaving the node from that
//! subnet is masqueraded by the `ip shoal` table (see [`crate::nft`]).
//! Ports are isolated from each other, so tasks cannot talk across this
//! bridge, only out through it: dockerd gets the same effect with
//! `enable_icc=false`, which needs `br_netfilter`; port isolation needs
//! nothing but the bridge.
//!
//! Addresses are allocated here, node-locally: the subnet is picked once,
//! when the bridge is created, and each task's address is the lowest free
//! one; both are recorded in the state file, so they survive a restart.

use std::collections::BTreeSet;
use std::fs::File;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::error::Error;
use crate::error::Result;
use crate::netlink::up_pair;
use crate::netlink::Netlink;
use crate::state::mac_for;
use crate::state::with_prefix;
use crate::state::Egress;
use crate::state::Interface;
use crate::state::Link;
use crate::state::NodeState;
use crate::state::PlanError;

/// The node-local bridge that gives tasks a way out of the node (dockerd's
/// `docker_gwbridge`).
pub const GWBRIDGE: &str = "shoal_gwbridge";
/// The gateway bridge's MTU (dockerd's default for local bridges).
pub const GWBRIDGE_MTU: u32 = 1500;

/// Candidate egress subnets in order of preference: dockerd's local pools
/// after the one its default bridge takes (172.17.0.0/16).
fn egress_candidates() -> impl Iterator<Item = Ipv4Net> {
    let b =
        (18u8..=31).filter_map(|second| Ipv4Net::new(Ipv4Addr::new(172, second, 0, 0), 16).ok());
    let c = (0u8..16).filter_map(|i| Ipv4Net::new(Ipv4Addr::new(192, 168, i * 16, 0), 20).ok());
    b.chain(c)
}

/// Picks the gateway bridge's subnet: the first candidate that overlaps no
/// host route (the default route aside) and holds no nameserver, as dockerd
/// picks `docker_gwbridge`'s.
pub fn choose_egress(routes: &[Ipv4Net], nameservers: &[Ipv4Addr]) -> Option<Egress> {
    egress_candidates()
        .find(|c| {
            !routes
                .iter()
                .filter(|r| r.prefix_len() > 0)
                .any(|r| r.contains(&c.network()) || c.contains(&r.network()))
                && !nameservers.iter().any(|ns| c.contains(ns))
        })
        .and_then(|subnet| {
            let gateway = subnet.hosts().next()?;
            Some(Egress { subnet, gateway })
        })
}

/// The lowest free address of the egress subnet (the gateway, other tasks'
/// egress addresses and the ingress sandbox's are taken).
pub fn next_egress_address(state: &NodeState, egress: &Egress) -> Result<Ipv4Net, PlanError> {
    let used: BTreeSet<Ipv4Addr> = state
        .tasks
        .values()
        .flat_map(|t| &t.interfaces)
        .chain(state.ingress.iter().map(|i| &i.iface))
        .filter(|i| matches!(i.link, Link::Egress { .. }))
        .map(|i| i.address.addr())
        .collect();
    egress
        .subnet
        .hosts()
        .find(|ip| *ip != egress.gateway && !used.contains(ip))
        .map(|ip| with_prefix(ip, egress.subnet))
        .ok_or(PlanError::EgressExhausted(egress.subnet))
}

/// Creates (or completes) the gateway bridge with the egress gateway
/// address, and turns on IPv4 forwarding (as dockerd does) so tasks'
/// traffic is routed out.
///
/// Published ports need two more settings on the bridge:
/// - `route_localnet`: connections to `127.0.0.1:<published>` are DNATed
///   onto the bridge with their loopback source (masqueraded only after
///   routing), and their answers come back de-NATed to loopback; the
///   kernel drops both as martians otherwise. The `ip shoal` table drops
///   anything else from the bridge to 127.0.0.0/8.
/// - no ICMP redirects: a task reaching its own node's published port is
///   routed back out of the bridge it came in by, and must keep going
///   through the node (bridge ports are isolated from each other).
pub async fn create(host: &Netlink, egress: &Egress) -> Result<()> {
    create_routed(host, GWBRIDGE, GWBRIDGE_MTU, egress.gateway, egress.subnet).await
}

/// Creates (or completes) bridge `name` with `gateway` on `subnet` and the
/// settings [`create`] explains, and turns on IPv4 forwarding: the gateway
/// bridge, and node-local networks' bridges, which publish ports the same
/// way.
pub async fn create_routed(
    host: &Netlink,
    name: &str,
    mtu: u32,
    gateway: Ipv4Addr,
    subnet: Ipv4Net,
) -> Result<()> {
    let br = host.ensure_bridge(name, mtu, mac_for(gateway)).await?;
    host.ensure_address(br, with_prefix(gateway, subnet))
        .await?;
    let conf = format!("/proc/sys/net/ipv4/conf/{name}");
    set_sysctl(&format!("{conf}/route_localnet"), "1")?;
    set_sysctl(&format!("{conf}/send_redirects"), "0")?;
    enable_forwarding()
}

/// Deletes the gateway bridge (its remaining ports are unplugged, not
/// deleted).
pub async fn remove(host: &Netlink) -> Result<()> {
    host.delete_link(GWBRIDGE).await
}

/// Creates `iface`'s veth pair from inside the task (`task`) with its peer
/// in the driver's namespace (`host`, whose namespace file is `host_ns`),
/// plugs the peer into the gateway bridge as an isolated port, and returns
/// once both ends are up.
pub async fn plug(task: &Netlink, host: &Netlink, host_ns: &File, iface: &Interface) -> Result<()> {
    plug_port(task, host, host_ns, GWBRIDGE, iface, true).await
}

/// [`plug`], with the bridge port isolated or not. The ingress sandbox's
/// port is not: with `br_netfilter` active (`bridge-nf-call-iptables=1`,
/// as on hosts running dockerd) a frame the node DNATs to another port of
/// the same bridge is bridged rather than routed, so a task reaching its
/// own node's published port would be dropped between two isolated ports.
/// The sandbox forwards nothing but DNATed connections anyway (see
/// [`crate::ingress`]).
pub async fn plug_port(
    task: &Netlink,
    host: &Netlink,
    host_ns: &File,
    bridge: &str,
    iface: &Interface,
    isolated: bool,
) -> Result<()> {
    // A peer of that name can only be a leftover of an interrupted attach.
    host.delete_link(&iface.peer).await?;
    task.add_veth(&iface.name, iface.mac, iface.mtu, &iface.peer, host_ns)
        .await?;
    let br = host.must_index(bridge).await?;
    let peer = host.must_index(&iface.peer).await?;
    host.enslave(peer, br, isolated).await?;
    let inner = task.must_index(&iface.name).await?;
    up_pair(task, inner, host, peer, br).await
}

/// Deletes the host side of `iface`, which takes the task side with it.
pub async fn unplug(host: &Netlink, iface: &Interface) -> Result<()> {
    host.delete_link(&iface.peer).await
}

/// `net.ipv4.ip_forward = 1` in the calling thread's namespace
/// (`/proc/sys/net` shows the namespace of the thread that opens it: for
/// the driver's own, a runtime thread, never moved; for a sandbox, a thread
/// of `netns::run_in`).
pub(crate) fn enable_forwarding() -> Result<()> {
    set_sysctl("/proc/sys/net/ipv4/ip_forward", "1")
}

/// Writes `value` to the sysctl file `knob` unless it already holds it.
pub(crate) fn set_sysctl(knob: &str, value: &str) -> Result<()> {
    if std::fs::read_to_string(knob).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    std::fs::write(knob, value).map_err(Error::io(format!("write {knob}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::TaskRecord;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn first_candidate_without_clash() {
        let e = choose_egress(&[net("10.0.0.0/8"), net("192.168.1.0/24")], &[]).unwrap();
        assert_eq!(e.subnet, net("172.18.0.0/16"));
        assert_eq!(e.gateway, Ipv4Addr::new(172, 18, 0, 1));
    }

    #[test]
    fn skips_overlapping_routes_and_nameservers() {
        // 172.18.5.0/24 lies inside 172.18/16; 172.16/12 covers every
        // 172.x candidate; the nameserver sits in the first /20 of
        // 192.168.
        let routes = [net("172.16.0.0/12"), net("0.0.0.0/0")];
        let e = choose_egress(&routes, &[Ipv4Addr::new(192, 168, 3, 4)]).unwrap();
        assert_eq!(e.subnet, net("192.168.16.0/20"));
        let e = choose_egress(&[net("172.18.5.0/24")], &[]).unwrap();
        assert_eq!(e.subnet, net("172.19.0.0/16"));
    }

    #[test]
    fn nothing_left() {
        assert_eq!(choose_egress(&[net("128.0.0.0/1")], &[]), None);
    }

    fn egress_iface(addr: &str) -> Interface {
        Interface {
            name: "eth0".into(),
            address: net(addr),
            mtu: GWBRIDGE_MTU,
            mac: [0; 6],
            peer: "vg-x".into(),
            link: Link::Egress {
                gateway: Ipv4Addr::new(172, 18, 0, 1),
            },
        }
    }

    #[test]
    fn lowest_free_address() {
        let egress = Egress {
            subnet: net("172.18.0.0/16"),
            gateway: Ipv4Addr::new(172, 18, 0, 1),
        };
        let mut state = NodeState::default();
        assert_eq!(
            next_egress_address(&state, &egress),
            Ok(net("172.18.0.2/16"))
        );
        for (t, a) in [("a", "172.18.0.2/16"), ("b", "172.18.0.4/16")] {
            state.tasks.insert(
                t.into(),
                TaskRecord {
                    interfaces: vec![egress_iface(a)],
                    resolv_conf: String::new(),
                    names: Default::default(),
                },
            );
        }
        assert_eq!(
            next_egress_address(&state, &egress),
            Ok(net("172.18.0.3/16"))
        );
    }

    #[test]
    fn exhausted_subnet() {
        let egress = Egress {
            subnet: net("10.9.9.0/30"),
            gateway: Ipv4Addr::new(10, 9, 9, 1),
        };
        let mut state = NodeState::default();
        state.tasks.insert(
            "a".into(),
            TaskRecord {
                interfaces: vec![egress_iface("10.9.9.2/30")],
                resolv_conf: String::new(),
                names: Default::default(),
            },
        );
        assert_eq!(
            next_egress_address(&state, &egress),
            Err(PlanError::EgressExhausted(egress.subnet))
        );
    }
}
