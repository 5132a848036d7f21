//! The kernel side of a node-local network: its bridge in the driver's
//! namespace and the containers' ports on it.

use std::fs::File;

use super::LocalRecord;
use crate::error::Result;
use crate::gwbridge::enable_forwarding;
use crate::gwbridge::set_sysctl;
use crate::netlink::up_pair;
use crate::netlink::Netlink;
use crate::state::mac_for;
use crate::state::with_prefix;
use crate::state::Interface;

/// Creates (or completes) the network's bridge with its gateway address
/// and MTU, and turns on IPv4 forwarding. As on the gateway bridge,
/// `route_localnet` lets the node's own connections to
/// `127.0.0.1:<published>` be DNATed onto it (the `ip shoal` table drops
/// anything else from the bridge to 127.0.0.0/8), and no ICMP redirects
/// are sent for a container reaching its own node's published port.
pub async fn create(host: &Netlink, net: &LocalRecord) -> Result<()> {
    let br = host
        .ensure_bridge(&net.bridge, net.mtu, mac_for(net.gateway))
        .await?;
    host.ensure_address(br, with_prefix(net.gateway, net.subnet))
        .await?;
    let conf = format!("/proc/sys/net/ipv4/conf/{}", net.bridge);
    set_sysctl(&format!("{conf}/route_localnet"), "1")?;
    set_sysctl(&format!("{conf}/send_redirects"), "0")?;
    enable_forwarding()
}

/// Deletes the network's bridge (its remaining ports are unplugged, not
/// deleted).
pub async fn remove(host: &Netlink, net: &LocalRecord) -> Result<()> {
    host.delete_link(&net.bridge).await
}

/// Creates `iface`'s veth pair from inside the container (`task`) with its
/// peer in the driver's namespace (`host`, whose namespace file is
/// `host_ns`), plugs the peer into `bridge` (containers on one network
/// talk to each other freely), and returns once both ends are up.
pub async fn plug(
    task: &Netlink,
    host: &Netlink,
    host_ns: &File,
    bridge: &str,
    iface: &Interface,
) -> Result<()> {
    // A peer of that name can only be a leftover of an interrupted attach.
    host.delete_link(&iface.peer).await?;
    task.add_veth(&iface.name, iface.mac, iface.mtu, &iface.peer, host_ns)
        .await?;
    let br = host.must_index(bridge).await?;
    let peer = host.must_index(&iface.peer).await?;
    host.enslave(peer, br, false).await?;
    let inner = task.must_index(&iface.name).await?;
    up_pair(task, inner, host, peer, br).await
}
