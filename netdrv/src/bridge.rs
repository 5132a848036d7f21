//! One bridge per swarm network, each in the network's own sandbox
//! namespace (`<state_dir>/sbox/<network id>`), as libnetwork's overlay
//! driver does.
//!
//! Why a sandbox rather than the host namespace:
//! - Overlay subnets (10.0.0.0/8 by default) stay out of the host's routing
//!   table, so they can overlap the host's own networks, and the host does
//!   not route between swarm networks or into an `--internal` one: the
//!   isolation needs no filter rules.
//! - VXLAN drops in the way libnetwork does it: the VXLAN device is created
//!   in the host namespace (its UDP socket stays on the underlay) and then
//!   moved into the sandbox and plugged into the bridge, with static FDB and
//!   neighbour entries for peers' tasks (their MACs follow from their
//!   addresses, see [`crate::state::mac_for`]).
//! - Service VIPs and the routing mesh follow dockerd's model with nftables
//!   in place of IPVS: VIP rules live in each task's namespace, the routing
//!   mesh in an ingress sandbox on the gateway bridge and the ingress
//!   network, and published ports are one DNAT in the host's `ip shoal`
//!   table towards it. None of that needs the overlay bridges on the host.
//!
//! The price is one more namespace per network, and the bridge-side veth
//! ends live in that namespace rather than in the host's.

use std::fs::File;
use std::path::Path;
use std::path::PathBuf;

use crate::error::Error;
use crate::error::Result;
use crate::netlink::up_pair;
use crate::netlink::Netlink;
use crate::netns;
use crate::state::mac_for;
use crate::state::with_prefix;
use crate::state::Interface;
use crate::state::NetworkRecord;

/// The sandbox namespace file of a network.
pub fn sandbox_path(sandbox_dir: &Path, network_id: &str) -> PathBuf {
    sandbox_dir.join(network_id)
}

/// Creates (or completes) a network's sandbox: the namespace with loopback
/// up and the bridge with the gateway address and MTU.
pub async fn create(sandbox: &Path, net: &NetworkRecord) -> Result<()> {
    if !netns::is_mounted(sandbox) {
        netns::create(sandbox).await?;
    }
    let nl = Netlink::in_netns(sandbox).await?;
    let lo = nl.must_index("lo").await?;
    nl.up(lo).await?;
    let br = nl
        .ensure_bridge(&net.bridge, net.mtu, mac_for(net.gateway))
        .await?;
    nl.ensure_address(br, with_prefix(net.gateway, net.subnet))
        .await?;
    // Bridged traffic between tasks and the VXLAN device needs no
    // netfilter pass (conntrack in every sandbox costs throughput); a
    // kernel without the per-namespace knob keeps its default.
    let off = netns::run_in(sandbox, || {
        std::fs::write(BRIDGE_NF_CALL_IPTABLES, "0")
            .map_err(Error::io(format!("write {BRIDGE_NF_CALL_IPTABLES}")))
    })
    .await;
    if let Err(e) = off {
        tracing::debug!(error = %e, "bridged traffic stays visible to netfilter");
    }
    Ok(())
}

/// Whether bridged IPv4 frames pass the IP netfilter hooks (br_netfilter),
/// per network namespace.
const BRIDGE_NF_CALL_IPTABLES: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";

/// Deletes a network's sandbox with its bridge and any port left.
pub async fn remove(sandbox: &Path) -> Result<()> {
    netns::clear_and_remove(sandbox).await
}

/// Creates `iface`'s veth pair from inside the task (`task`) with its peer
/// in the network's sandbox, plugs the peer into `bridge`, and returns once
/// both ends are up.
pub async fn plug(task: &Netlink, sandbox: &Path, bridge: &str, iface: &Interface) -> Result<()> {
    let sbox = Netlink::in_netns(sandbox).await?;
    // A peer of that name can only be a leftover of an interrupted attach.
    sbox.delete_link(&iface.peer).await?;
    let sbox_ns = File::open(sandbox).map_err(Error::io(format!("open {}", sandbox.display())))?;
    task.add_veth(&iface.name, iface.mac, iface.mtu, &iface.peer, &sbox_ns)
        .await?;
    let br = sbox.must_index(bridge).await?;
    let peer = sbox.must_index(&iface.peer).await?;
    sbox.enslave(peer, br, false).await?;
    let inner = task.must_index(&iface.name).await?;
    up_pair(task, inner, &sbox, peer, br).await
}

/// Deletes the sandbox side of `iface`, which takes the task side with it.
pub async fn unplug(sandbox: &Path, iface: &Interface) -> Result<()> {
    if !netns::is_mounted(sandbox) {
        return Ok(());
    }
    Netlink::in_netns(sandbox)
        .await?
        .delete_link(&iface.peer)
        .await
}
