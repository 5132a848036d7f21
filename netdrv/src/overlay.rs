//! Overlay networks across nodes: one VXLAN device per network in the
//! network's sandbox, plugged into its bridge, with a static forwarding and
//! neighbour entry for every address the network has on another node.
//!
//! The control plane already knows every task's node and address, so the
//! dispatcher sends each node the peers of every network (see
//! [`swarm::exec::NetworkPeers`]) and nothing is learned from the wire:
//! learning is off and the device answers ARP from its neighbour table
//! (libnetwork does the same, with the peers from its gossip instead).
//!
//! A network gets its device when its sandbox exists here and it has a
//! peer elsewhere: a network used on one node only has none, which also
//! keeps two shoalds in one network namespace (the single-node tests) from
//! claiming the same VNI. The device dies with the sandbox.
//!
//! What was programmed is kept in memory; a restarted driver makes each
//! network's device anew on its first sync (the device's own tables cannot
//! be trusted to match records it never saw).

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::fs::File;
use std::path::Path;

use swarm::exec::LocalNode;
use swarm::exec::NetworkPeers;
use swarm::exec::Peer;

use nftables::helper;
use nftables::schema::Nftables;

use crate::error::Error;
use crate::error::Result;
use crate::netlink::Netlink;
use crate::netlink::VxlanConfig;
use crate::netns;
use crate::state::NetworkRecord;
use crate::tunnel;

/// The VXLAN device's name for a network: `vx-`, the VNI in hex and the
/// start of the network's ID, as libnetwork names them (15 bytes at most).
pub fn vxlan_name(vni: u32, network_id: &str) -> String {
    let id: String = network_id.chars().take(5).collect();
    format!("vx-{vni:06x}-{id}")
}

/// One network's device as programmed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Programmed {
    config: VxlanConfig,
    /// The tunnel's fwmark, for an encrypted network: its sandbox marks
    /// the frames leaving by the device (see [`tunnel::sandbox_document`]).
    mark: Option<u32>,
    peers: BTreeSet<Peer>,
}

/// The VXLAN side of every overlay network on this node.
#[derive(Debug, Default)]
pub(crate) struct Overlay {
    inner: tokio::sync::Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The last peers and local facts the records gave.
    peers: BTreeMap<String, NetworkPeers>,
    local: LocalNode,
    /// The VNIs the node's tunnel seals (see `encryption`): an encrypted
    /// network gets no peer before it is sealed.
    sealed: BTreeSet<u32>,
    /// What each network's device holds now.
    programmed: BTreeMap<String, Programmed>,
}

impl Overlay {
    /// Remembers the peers and local facts of new records, and the VNIs
    /// sealed; the next [`Overlay::sync`] applies them.
    pub async fn set(&self, peers: &[NetworkPeers], local: &LocalNode, sealed: BTreeSet<u32>) {
        let mut inner = self.inner.lock().await;
        inner.peers = peers
            .iter()
            .map(|p| (p.network_id.clone(), p.clone()))
            .collect();
        inner.local = local.clone();
        inner.sealed = sealed;
    }

    /// Makes the devices of `networks` (those with a sandbox here, found by
    /// `sandbox_of`) match the remembered peers, and forgets networks that
    /// are gone. Every network is tried; the first failure is returned.
    pub async fn sync(
        &self,
        host: &Netlink,
        networks: &BTreeMap<String, NetworkRecord>,
        sandbox_of: impl Fn(&str) -> std::path::PathBuf,
    ) -> Result<()> {
        let mut inner = self.inner.lock().await;
        inner.programmed.retain(|id, _| networks.contains_key(id));
        let mut first = None;
        for (id, net) in networks {
            let want = wanted(&inner, id, net);
            let have = inner.programmed.get(id).cloned();
            // A sandbox made anew is forgotten first (see `forget`), so an
            // unchanged record means an unchanged device.
            if want == have {
                continue;
            }
            let sandbox = sandbox_of(id);
            match program(host, &sandbox, net, have.as_ref(), want.as_ref()).await {
                Ok(()) => match want {
                    Some(w) => {
                        inner.programmed.insert(id.clone(), w);
                    }
                    None => {
                        inner.programmed.remove(id);
                    }
                },
                Err(e) => {
                    tracing::warn!(network = %id, error = %e, "overlay peers not programmed");
                    // Made again from scratch next time.
                    inner.programmed.remove(id);
                    first.get_or_insert(e);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Forgets what was programmed for `network_id`: its sandbox is being
    /// made anew, without a device, so the next sync makes one.
    pub async fn forget(&self, network_id: &str) {
        self.inner.lock().await.programmed.remove(network_id);
    }

    /// The peers programmed for `network_id` (for tests and inspection).
    pub async fn programmed(&self, network_id: &str) -> Vec<Peer> {
        let inner = self.inner.lock().await;
        inner
            .programmed
            .get(network_id)
            .map(|p| p.peers.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// What `net`'s device should hold: `None` without a VNI or a peer.
fn wanted(inner: &Inner, id: &str, net: &NetworkRecord) -> Option<Programmed> {
    let p = inner.peers.get(id)?;
    let vni = if p.vni > 0 { p.vni } else { net.vni };
    if vni == 0 || p.peers.is_empty() || (p.encrypted && !inner.sealed.contains(&vni)) {
        return None;
    }
    Some(Programmed {
        config: VxlanConfig {
            vni,
            port: inner.local.data_port,
            local: inner.local.data_addr,
        },
        mark: p.encrypted.then_some(tunnel::DEFAULT_FWMARK),
        peers: p.peers.iter().copied().collect(),
    })
}

/// Moves `net`'s device from `have` to `want`: made anew when its
/// configuration changed or it is missing, removed when no longer wanted,
/// otherwise only the peers that differ change.
async fn program(
    host: &Netlink,
    sandbox: &Path,
    net: &NetworkRecord,
    have: Option<&Programmed>,
    want: Option<&Programmed>,
) -> Result<()> {
    let sbox = Netlink::in_netns(sandbox).await?;
    let Some(want) = want else {
        if let Some(h) = have {
            sbox.delete_link(&vxlan_name(h.config.vni, &net.id)).await?;
            if h.mark.is_some() {
                apply_in(sandbox, tunnel::sandbox_delete_document()).await?;
            }
        }
        return Ok(());
    };
    let name = vxlan_name(want.config.vni, &net.id);
    let existing = sbox.index(&name).await?;
    let (index, old) = match (have, existing) {
        (Some(h), Some(index)) if h.config == want.config && h.mark == want.mark => {
            (index, h.peers.clone())
        }
        _ => {
            if let Some(h) = have {
                sbox.delete_link(&vxlan_name(h.config.vni, &net.id)).await?;
            }
            sbox.delete_link(&name).await?;
            let ns =
                File::open(sandbox).map_err(Error::io(format!("open {}", sandbox.display())))?;
            host.add_vxlan(&name, &want.config, net.mtu, &ns).await?;
            let index = sbox.must_index(&name).await?;
            let bridge = sbox.must_index(&net.bridge).await?;
            // Marked before any peer exists, so no frame leaves unmarked.
            match want.mark {
                Some(mark) => apply_in(sandbox, tunnel::sandbox_document(&name, mark)).await?,
                None => apply_in(sandbox, tunnel::sandbox_delete_document()).await?,
            }
            sbox.enslave(index, bridge, false).await?;
            (index, BTreeSet::new())
        }
    };
    // Addresses that moved to another node are rewritten in place.
    let gone: BTreeSet<_> = old
        .iter()
        .filter(|p| !want.peers.iter().any(|w| w.address == p.address))
        .map(|p| p.address)
        .collect();
    for address in gone {
        sbox.unset_peer(index, address).await?;
    }
    for p in want.peers.difference(&old) {
        sbox.set_peer(index, p.address, p.node).await?;
    }
    Ok(())
}

/// Applies `doc` inside the sandbox (`nft` is forked from a thread in it).
async fn apply_in(sandbox: &Path, doc: Nftables<'static>) -> Result<()> {
    netns::run_in(sandbox, move || Ok(helper::apply_ruleset(&doc)?)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_fit_the_kernel_limit_and_name_the_network() {
        let n = vxlan_name(4097, "k3x9v0d2lq8w7t1abcdef");
        assert_eq!(n, "vx-001001-k3x9v");
        assert!(n.len() <= 15);
        assert_eq!(vxlan_name(0xff_ffff, "ab"), "vx-ffffff-ab");
    }

    fn net(vni: u32) -> NetworkRecord {
        NetworkRecord {
            id: "n1".into(),
            subnet: "10.0.1.0/24".parse().unwrap(),
            gateway: "10.0.1.1".parse().unwrap(),
            mtu: 1450,
            bridge: "shoal-n1".into(),
            vni,
        }
    }

    fn peer(a: &str, n: &str) -> Peer {
        Peer {
            address: a.parse().unwrap(),
            node: n.parse().unwrap(),
        }
    }

    #[test]
    fn a_network_gets_a_device_only_with_a_vni_and_a_peer() {
        let mut inner = Inner {
            local: LocalNode {
                data_addr: Some("192.168.5.1".parse().unwrap()),
                data_port: 4789,
                ..LocalNode::default()
            },
            ..Inner::default()
        };
        assert_eq!(wanted(&inner, "n1", &net(4097)), None);
        inner.peers.insert(
            "n1".into(),
            NetworkPeers {
                network_id: "n1".into(),
                vni: 4097,
                peers: vec![],
                encrypted: false,
            },
        );
        assert_eq!(wanted(&inner, "n1", &net(4097)), None);
        inner.peers.get_mut("n1").unwrap().peers = vec![peer("10.0.1.7", "192.168.5.2")];
        let w = wanted(&inner, "n1", &net(4097)).unwrap();
        assert_eq!(w.config.vni, 4097);
        assert_eq!(w.config.port, 4789);
        assert_eq!(w.config.local, Some("192.168.5.1".parse().unwrap()));
        assert_eq!(w.peers.len(), 1);
        // The records' VNI wins; the network's is the fallback.
        inner.peers.get_mut("n1").unwrap().vni = 0;
        assert_eq!(wanted(&inner, "n1", &net(0)), None);
        assert_eq!(wanted(&inner, "n1", &net(4100)).unwrap().config.vni, 4100);
        // An encrypted network waits for its seal.
        let p = inner.peers.get_mut("n1").unwrap();
        p.vni = 4097;
        p.encrypted = true;
        assert_eq!(wanted(&inner, "n1", &net(4097)), None);
        inner.sealed.insert(4097);
        assert!(wanted(&inner, "n1", &net(4097)).is_some());
    }
}
