//! The TUN device the steered VXLAN datagrams go into and the opened ones
//! come out of.
//!
//! The ioctls that make it are left to `tun-rs` (the workspace denies
//! unsafe code). The device is not persistent: it lives exactly as long as
//! its file descriptor, so a crashed shoald leaves no TUN behind (its
//! routes go with it).

use std::io::ErrorKind;

use tun_rs::AsyncDevice;
use tun_rs::DeviceBuilder;

use crate::error::Error;
use crate::error::Result;

/// The device's MTU: the largest IPv4 packet. VXLAN datagrams routed into
/// the TUN are then never fragmented on the way in (a fragment without its
/// UDP header could not be checked); the sealed datagram is fragmented,
/// if at all, by the UDP socket that sends it.
const MTU: u16 = u16::MAX;
/// Room for the bursts a software-segmented TCP send makes before the
/// sealing task catches up (the kernel's default is 500).
const TX_QUEUE_LEN: u32 = 2000;

/// Creates the TUN device `name` (IPv4, no packet information header), up,
/// in the calling thread's network namespace, and sets the sysctls that let
/// the opened datagrams in: their sources are reached through the underlay,
/// not through the TUN, so a plain reverse-path check refuses them (and a
/// device without an address fails even the loose one). With
/// `src_valid_mark` the check uses the packet's mark, which the steering
/// table sets on packets from the TUN, and so finds the route into the
/// TUN: the check passes whatever `all.rp_filter` says. Loose mode on the
/// device as well, and no IPv6 (no link-local chatter into the tunnel).
pub fn create(name: &str) -> Result<AsyncDevice> {
    let dev = DeviceBuilder::new()
        .name(name)
        .mtu(MTU)
        .tx_queue_len(TX_QUEUE_LEN)
        .enable(true)
        .build_async()
        .map_err(Error::io(format!("create TUN device {name}")))?;
    sysctl(&format!("/proc/sys/net/ipv4/conf/{name}/rp_filter"), "2")?;
    sysctl(
        &format!("/proc/sys/net/ipv4/conf/{name}/src_valid_mark"),
        "1",
    )?;
    match std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1") {
        // A kernel without IPv6 has nothing to disable.
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("disable IPv6 on {name}"))(e)),
        Ok(()) => {}
    }
    Ok(dev)
}

fn sysctl(path: &str, value: &str) -> Result<()> {
    std::fs::write(path, value).map_err(Error::io(format!("write {value} to {path}")))
}
