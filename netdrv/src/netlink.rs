//! A thin rtnetlink wrapper bound to one network namespace, with adds that
//! accept "already there" and deletes that accept "already gone", so every
//! step of an attach or detach can be run again after a partial failure.

use std::fs::File;
use std::net::IpAddr;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;
use std::time::Instant;

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::address::AddressMessage;
use netlink_packet_route::link::InfoData;
use netlink_packet_route::link::InfoKind;
use netlink_packet_route::link::InfoVeth;
use netlink_packet_route::link::LinkAttribute;
use netlink_packet_route::link::LinkMessage;
use netlink_packet_route::link::State;
use netlink_packet_route::neighbour::NeighbourAddress;
use netlink_packet_route::neighbour::NeighbourAttribute;
use netlink_packet_route::neighbour::NeighbourFlags;
use netlink_packet_route::neighbour::NeighbourMessage;
use netlink_packet_route::route::RouteAddress;
use netlink_packet_route::route::RouteAttribute;
use netlink_packet_route::route::RouteHeader;
use netlink_packet_route::AddressFamily;
use nix::errno::Errno;
use rtnetlink::Handle;
use rtnetlink::LinkBridge;
use rtnetlink::LinkBridgePort;
use rtnetlink::LinkMessageBuilder;
use rtnetlink::LinkUnspec;
use rtnetlink::LinkVeth;
use rtnetlink::RouteMessageBuilder;

use crate::error::Error;
use crate::error::Result;
use crate::netns;
use swarm::exec::mac_for;

/// What a VXLAN device sends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanConfig {
    /// The VXLAN ID.
    pub vni: u32,
    /// The UDP port (the cluster's data-path port).
    pub port: u16,
    /// The source address (the node's data-path address), when known.
    pub local: Option<Ipv4Addr>,
}

/// A netlink connection whose socket lives in one network namespace.
///
/// The socket stays in the namespace it was opened in whatever thread later
/// polls it; dropping the value closes it (a socket also pins its
/// namespace, so none may outlive the namespace's removal).
pub struct Netlink {
    handle: Handle,
}

/// How long [`up_pair`] waits for a veth pair to come up.
const PAIR_UP_WAIT: Duration = Duration::from_secs(2);

/// Sets the task end of a veth pair up (its peer, on a bridge, already is)
/// and waits, bounded, until the kernel reports both ends and the bridge
/// operationally up.
///
/// Carrier changes are applied by a kernel work queue, which also attaches
/// the links' queueing disciplines and moves the bridge port to forwarding;
/// until it has run, packets on the pair are dropped, and a task started at
/// once would lose its first ARP request and wait a second for the retry.
/// A pair still down after the wait is reported, not failed: it will come
/// up.
pub async fn up_pair(
    inner: &Netlink,
    inner_index: u32,
    outer: &Netlink,
    outer_index: u32,
    bridge_index: u32,
) -> Result<()> {
    inner.up(inner_index).await?;
    // The bridge's own carrier follows its first port's, through the same
    // queue: until then it drops what it sends (the replies).
    let up = inner.wait_up(inner_index, PAIR_UP_WAIT).await?
        && outer.wait_up(outer_index, PAIR_UP_WAIT).await?
        && outer.wait_up(bridge_index, PAIR_UP_WAIT).await?;
    if !up {
        tracing::warn!(
            inner_index,
            outer_index,
            "veth pair not operationally up yet"
        );
    }
    Ok(())
}

/// The errno of a netlink failure, if the kernel gave one.
fn errno(e: &rtnetlink::Error) -> Option<Errno> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(Errno::from_raw(-m.raw_code())),
        _ => None,
    }
}

/// Treats `ok` errnos as success.
fn tolerate(r: Result<(), rtnetlink::Error>, ok: &[Errno]) -> Result<(), rtnetlink::Error> {
    match r {
        Err(e) if errno(&e).is_some_and(|n| ok.contains(&n)) => Ok(()),
        r => r,
    }
}

impl Netlink {
    /// A connection in the calling thread's namespace (the driver's own).
    pub fn here() -> Result<Self> {
        let handle = crate::netlink_io::connect().map_err(Error::io("open netlink socket"))?;
        Ok(Netlink { handle })
    }

    /// A connection inside the namespace bound at `path`: the socket is
    /// opened on a thread that entered it.
    pub async fn in_netns(path: &Path) -> Result<Self> {
        netns::run_in(path, move || {
            let handle = crate::netlink_io::connect().map_err(Error::io("open netlink socket"))?;
            Ok(Netlink { handle })
        })
        .await
    }

    /// The link called `name`, if there is one.
    async fn link(&self, name: &str) -> Result<Option<LinkMessage>> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(found) => Ok(found),
            Err(e) if errno(&e) == Some(Errno::ENODEV) => Ok(None),
            Err(e) => Err(Error::netlink(format!("look up link {name}"))(e)),
        }
    }

    /// The index of the link called `name`, if there is one.
    pub async fn index(&self, name: &str) -> Result<Option<u32>> {
        Ok(self.link(name).await?.map(|m| m.header.index))
    }

    /// The MAC address of the link called `name`, if there is one.
    pub async fn mac(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.link(name).await?.map(|m| {
            m.attributes
                .iter()
                .find_map(|a| match a {
                    LinkAttribute::Address(mac) => Some(mac.clone()),
                    _ => None,
                })
                .unwrap_or_default()
        }))
    }

    /// The index of `name`, which must exist.
    pub async fn must_index(&self, name: &str) -> Result<u32> {
        self.index(name)
            .await?
            .ok_or_else(|| Error::MissingLink(name.to_string()))
    }

    /// Creates the bridge `name` unless it exists; either way it ends up
    /// with `mtu`, up. The MAC is fixed at creation so it does not follow
    /// the ports as they come and go (tasks' ARP entries for the gateway
    /// stay valid).
    pub async fn ensure_bridge(&self, name: &str, mtu: u32, mac: [u8; 6]) -> Result<u32> {
        if self.index(name).await?.is_none() {
            let msg = LinkBridge::new(name).mtu(mtu).address(mac.to_vec()).build();
            let added = self.handle.link().add(msg).execute().await;
            tolerate(added, &[Errno::EEXIST])
                .map_err(Error::netlink(format!("create bridge {name}")))?;
        }
        let index = self.must_index(name).await?;
        self.change(
            LinkUnspec::new_with_index(index).mtu(mtu).up(),
            format!("set {name} up"),
        )
        .await?;
        Ok(index)
    }

    /// Adds an address unless the link has it.
    pub async fn ensure_address(&self, index: u32, addr: Ipv4Net) -> Result<()> {
        let added = self
            .handle
            .address()
            .add(index, IpAddr::V4(addr.addr()), addr.prefix_len())
            .execute()
            .await;
        tolerate(added, &[Errno::EEXIST]).map_err(Error::netlink(format!("add address {addr}")))
    }

    /// Sets a link up.
    pub async fn up(&self, index: u32) -> Result<()> {
        self.change(
            LinkUnspec::new_with_index(index).up(),
            format!("set link {index} up"),
        )
        .await
    }

    /// Waits, for at most `limit`, until the kernel reports link `index`
    /// operationally up. Returns whether it came up.
    pub async fn wait_up(&self, index: u32, limit: Duration) -> Result<bool> {
        let deadline = Instant::now() + limit;
        loop {
            let link = self
                .handle
                .link()
                .get()
                .match_index(index)
                .execute()
                .try_next()
                .await
                .map_err(Error::netlink(format!("look up link {index}")))?;
            let up = link.is_some_and(|m| {
                m.attributes
                    .iter()
                    .any(|a| matches!(a, LinkAttribute::OperState(State::Up)))
            });
            if up {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Plugs a link into a bridge and sets it up; `isolated` ports cannot
    /// talk to each other, only to the bridge itself.
    pub async fn enslave(&self, index: u32, bridge: u32, isolated: bool) -> Result<()> {
        self.change(
            LinkUnspec::new_with_index(index).controller(bridge).up(),
            format!("plug link {index} into bridge {bridge}"),
        )
        .await?;
        if isolated {
            let port = LinkBridgePort::new(index).isolated(true).build();
            self.handle
                .link()
                .set_port(port)
                .execute()
                .await
                .map_err(Error::netlink(format!("isolate bridge port {index}")))?;
        }
        Ok(())
    }

    /// Creates a veth pair in this namespace: `name` (with `mac`) stays
    /// here, `peer` is created directly in the namespace `peer_ns`, so no
    /// transient name ever shows up anywhere else.
    pub async fn add_veth(
        &self,
        name: &str,
        mac: [u8; 6],
        mtu: u32,
        peer: &str,
        peer_ns: &File,
    ) -> Result<()> {
        let peer_msg = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer)
            .mtu(mtu)
            .setns_by_fd(peer_ns.as_raw_fd())
            .build();
        let msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(name)
            .mtu(mtu)
            .address(mac.to_vec())
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
            .build();
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(Error::netlink(format!("create veth {name}/{peer}")))
    }

    /// Adds the default route via `gateway` on link `index` unless present.
    pub async fn ensure_default_route(&self, gateway: Ipv4Addr, index: u32) -> Result<()> {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gateway)
            .output_interface(index)
            .build();
        let added = self.handle.route().add(route).execute().await;
        tolerate(added, &[Errno::EEXIST])
            .map_err(Error::netlink(format!("add default route via {gateway}")))
    }

    /// Deletes the link `name` if it exists.
    pub async fn delete_link(&self, name: &str) -> Result<()> {
        let Some(index) = self.index(name).await? else {
            return Ok(());
        };
        let deleted = self.handle.link().del(index).execute().await;
        tolerate(deleted, &[Errno::ENODEV]).map_err(Error::netlink(format!("delete link {name}")))
    }

    /// Deletes every link but loopback. Deleting a veth end deletes its
    /// peer at once, whereas a namespace's links die only when the kernel
    /// gets round to destroying the namespace, some time after its last
    /// reference is gone.
    pub async fn delete_all_links(&self) -> Result<()> {
        let names: Vec<String> = self
            .handle
            .link()
            .get()
            .execute()
            .map_ok(|m| {
                m.attributes.into_iter().find_map(|a| match a {
                    LinkAttribute::IfName(n) => Some(n),
                    _ => None,
                })
            })
            .try_collect::<Vec<_>>()
            .await
            .map_err(Error::netlink("list links"))?
            .into_iter()
            .flatten()
            .filter(|n| n != "lo")
            .collect();
        for name in names {
            self.delete_link(&name).await?;
        }
        Ok(())
    }

    /// Creates VXLAN device `name` for `vni` on UDP `port` (source `local`
    /// when given) directly inside the namespace `target_ns`: the device
    /// lives there while its UDP socket stays in this namespace, the
    /// underlay. Learning is off and ARP is answered from the static
    /// neighbour entries ([`Netlink::set_peer`]) as libnetwork does.
    pub async fn add_vxlan(
        &self,
        name: &str,
        vxlan: &VxlanConfig,
        mtu: u32,
        target_ns: &File,
    ) -> Result<()> {
        let mut msg = rtnetlink::LinkVxlan::new(name, vxlan.vni)
            .port(vxlan.port)
            .learning(false)
            .proxy(true)
            .mtu(mtu)
            .setns_by_fd(target_ns.as_raw_fd());
        if let Some(local) = vxlan.local {
            msg = msg.local(local);
        }
        self.handle
            .link()
            .add(msg.build())
            .execute()
            .await
            .map_err(Error::netlink(format!(
                "create vxlan {name} (VNI {})",
                vxlan.vni
            )))
    }

    /// Points `address` on VXLAN device `index` at the node `node`: a
    /// forwarding entry for its MAC and a permanent neighbour entry (what
    /// the device answers ARP with). Replaces what was there.
    pub async fn set_peer(&self, index: u32, address: Ipv4Addr, node: Ipv4Addr) -> Result<()> {
        let mac = mac_for(address);
        let mut fdb = self
            .handle
            .neighbours()
            .add_bridge(index, &mac)
            .flags(NeighbourFlags::Own)
            .replace();
        fdb.message_mut()
            .attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
                node,
            )));
        fdb.execute()
            .await
            .map_err(Error::netlink(format!("add fdb entry {address} -> {node}")))?;
        self.handle
            .neighbours()
            .add(index, IpAddr::V4(address))
            .link_layer_address(&mac)
            .replace()
            .execute()
            .await
            .map_err(Error::netlink(format!("add neighbour {address}")))
    }

    /// Removes what [`Netlink::set_peer`] added for `address`; entries
    /// already gone are fine.
    pub async fn unset_peer(&self, index: u32, address: Ipv4Addr) -> Result<()> {
        let mac = mac_for(address);
        let mut fdb = NeighbourMessage::default();
        fdb.header.family = AddressFamily::Bridge;
        fdb.header.ifindex = index;
        fdb.header.flags = NeighbourFlags::Own;
        fdb.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        let gone = self.handle.neighbours().del(fdb).execute().await;
        tolerate(gone, &[Errno::ENOENT, Errno::ENODEV])
            .map_err(Error::netlink(format!("delete fdb entry {address}")))?;
        let mut neigh = NeighbourMessage::default();
        neigh.header.family = AddressFamily::Inet;
        neigh.header.ifindex = index;
        neigh
            .attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
                address,
            )));
        let gone = self.handle.neighbours().del(neigh).execute().await;
        tolerate(gone, &[Errno::ENOENT, Errno::ENODEV])
            .map_err(Error::netlink(format!("delete neighbour {address}")))
    }

    /// Sets a link's MAC address.
    pub async fn set_mac(&self, index: u32, mac: [u8; 6]) -> Result<()> {
        self.change(
            LinkUnspec::new_with_index(index).address(mac.to_vec()),
            format!("set the MAC of link {index}"),
        )
        .await
    }

    /// Removes an address from a link; one already gone is fine.
    pub async fn remove_address(&self, index: u32, addr: Ipv4Net) -> Result<()> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.index = index;
        msg.header.prefix_len = addr.prefix_len();
        msg.attributes
            .push(AddressAttribute::Local(IpAddr::V4(addr.addr())));
        msg.attributes
            .push(AddressAttribute::Address(IpAddr::V4(addr.addr())));
        let gone = self.handle.address().del(msg).execute().await;
        tolerate(gone, &[Errno::EADDRNOTAVAIL, Errno::ENODEV])
            .map_err(Error::netlink(format!("remove address {addr}")))
    }

    /// The destinations of the main table's IPv4 routes, the default route
    /// aside.
    pub async fn ipv4_routes(&self) -> Result<Vec<Ipv4Net>> {
        let query = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let mut routes = self.handle.route().get(query).execute();
        let mut out = Vec::new();
        while let Some(r) = routes
            .try_next()
            .await
            .map_err(Error::netlink("list IPv4 routes"))?
        {
            let table = r
                .attributes
                .iter()
                .find_map(|a| match a {
                    RouteAttribute::Table(t) => Some(*t),
                    _ => None,
                })
                .unwrap_or(u32::from(r.header.table));
            let len = r.header.destination_prefix_length;
            if table != u32::from(RouteHeader::RT_TABLE_MAIN) || len == 0 {
                continue;
            }
            let dst = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Destination(RouteAddress::Inet(ip)) => Some(*ip),
                _ => None,
            });
            if let Some(net) = dst.and_then(|ip| Ipv4Net::new(ip, len).ok()) {
                out.push(net);
            }
        }
        Ok(out)
    }

    async fn change(&self, msg: LinkMessageBuilder<LinkUnspec>, what: String) -> Result<()> {
        self.handle
            .link()
            .change(msg.build())
            .execute()
            .await
            .map_err(Error::netlink(what))
    }
}
