//! The kernel side of a node-local network: its bridge in the driver's
//! namespace and the containers' ports on it.

use std::fs::File;

use super::LocalRecord;
use crate::error::Result;
use crate::gwbridge;
use crate::netlink::Netlink;
use crate::state::Interface;

/// Creates (or completes) the network's bridge with its gateway address
/// and MTU, and turns on IPv4 forwarding. As on the gateway bridge,
/// `route_localnet` lets the node's own connections to
/// `127.0.0.1:<published>` be DNATed onto it (the `ip shoal` table drops
/// anything else from the bridge to 127.0.0.0/8), and no ICMP redirects
/// are sent for a container reaching its own node's published port.
pub async fn create(host: &Netlink, net: &LocalRecord) -> Result<()> {
    gwbridge::create_routed(host, &net.bridge, net.mtu, net.gateway, net.subnet).await
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
    gwbridge::plug_port(task, host, host_ns, bridge, iface, false).await
}
