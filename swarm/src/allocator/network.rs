//! Network allocation: a subnet and gateway (the user's or one carved from the
//! cluster's default address pool) and a VXLAN ID, as swarmkit's network
//! allocator gives every overlay network; plus the default `ingress` network.

use std::collections::BTreeSet;
use std::collections::HashMap;

use super::ipam;
use super::ipam::Subnet;
use crate::error::Error;
use crate::error::ErrorKind;
use crate::error::Result;
use crate::model::api;
use crate::model::new_id;
use crate::model::Cluster;
use crate::model::Network;

/// The driver option that carries a network's VXLAN IDs.
pub const VXLAN_KEY: &str = "com.docker.network.driver.overlay.vxlanid_list";
/// The first VXLAN ID (swarmkit's 4096; the ingress network gets it first).
pub const VXLAN_BASE: u32 = 4096;
/// The name of the routing-mesh network.
pub const INGRESS_NAME: &str = "ingress";
/// swarmkit's default address pool for overlay subnets.
pub const DEFAULT_POOL: &str = "10.0.0.0/8";
const DEFAULT_SUBNET_SIZE: u8 = 24;

/// Whether the network has its subnet and VXLAN ID.
pub fn is_allocated(n: &Network) -> bool {
    n.api
        .options
        .as_ref()
        .is_some_and(|o| o.contains_key(VXLAN_KEY))
}

/// Whether this is the routing-mesh network.
pub fn is_ingress(n: &Network) -> bool {
    n.api.ingress == Some(true) || n.spec.ingress == Some(true)
}

/// The allocated subnet (first IPAM config) of a network.
pub fn subnet_of(n: &Network) -> Option<Subnet> {
    let cfg = n.api.ipam.as_ref()?.config.as_ref()?.first()?;
    ipam::parse_cidr(cfg.subnet.as_deref()?)
        .ok()
        .map(|(_, s)| s)
}

/// The overlay MTU dockerd uses unless the network sets one.
const DEFAULT_MTU: u32 = 1450;

/// The MTU of an encrypted overlay that sets none. Its frames are sealed
/// in user space (netdrv's `tunnel`), where the cost is per frame, not per
/// byte: a 64 KB frame costs about what a 1.4 KB one does. So the overlay
/// takes the largest MTU whose VXLAN datagram (50 bytes more), sealed (64
/// bytes more), still fits one IPv4 datagram, less a margin; the underlay
/// fragments the sealed datagram. A network on an underlay that drops
/// fragments sets `com.docker.network.driver.mtu` to 1386 (1450 less the
/// seal's 64 bytes) instead.
pub const ENCRYPTED_MTU: u32 = 65_000;

/// What a node needs of `n` to plumb tasks into it.
pub fn node_spec(n: &Network) -> crate::exec::NetworkSpec {
    let cfg = n
        .api
        .ipam
        .as_ref()
        .and_then(|i| i.config.as_ref())
        .and_then(|c| c.first().cloned())
        .unwrap_or_default();
    let mtu = n
        .spec
        .options
        .as_ref()
        .and_then(|o| o.get("com.docker.network.driver.mtu"))
        .and_then(|m| m.parse().ok())
        .unwrap_or(if is_encrypted(n) {
            ENCRYPTED_MTU
        } else {
            DEFAULT_MTU
        });
    crate::exec::NetworkSpec {
        id: n.api.id.clone().unwrap_or_default(),
        name: n.api.name.clone().unwrap_or_default(),
        subnet: cfg.subnet.unwrap_or_default(),
        gateway: cfg.gateway.unwrap_or_default(),
        mtu,
        ingress: is_ingress(n),
        internal: n.api.internal.unwrap_or(false),
        vni: vxlan_of(n).unwrap_or(0),
        encrypted: is_encrypted(n),
    }
}

/// Whether the network was created with `--opt encrypted` (any value, as
/// libnetwork checks only the key's presence).
pub fn is_encrypted(n: &Network) -> bool {
    let has = |o: Option<&std::collections::HashMap<String, String>>| {
        o.is_some_and(|o| o.contains_key("encrypted"))
    };
    has(n.spec.options.as_ref()) || has(n.api.options.as_ref())
}

/// The allocated gateway of a network.
pub fn gateway_of(n: &Network) -> Option<u32> {
    let cfg = n.api.ipam.as_ref()?.config.as_ref()?.first()?;
    ipam::parse_ip(cfg.gateway.as_deref()?)
}

fn vxlan_of(n: &Network) -> Option<u32> {
    n.api.options.as_ref()?.get(VXLAN_KEY)?.parse().ok()
}

/// The cluster's default address pools and subnet size (10.0.0.0/8 and /24
/// when not set at `swarm init`).
pub fn pools(cluster: Option<&Cluster>) -> (Vec<Subnet>, u8) {
    let raw: Vec<String> = cluster
        .and_then(|c| c.api.default_addr_pool.clone())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| vec![DEFAULT_POOL.to_string()]);
    let pools = raw
        .iter()
        .filter_map(|p| ipam::parse_cidr(p).ok().map(|(_, s)| s))
        .collect();
    let size = cluster
        .and_then(|c| c.api.subnet_size)
        .filter(|s| (1..=32).contains(s))
        .map(|s| s as u8)
        .unwrap_or(DEFAULT_SUBNET_SIZE);
    (pools, size)
}

/// The pool-overlap failure (libnetwork's text).
fn overlap_error() -> Error {
    Error::new(
        ErrorKind::Unknown,
        "invalid pool request: Pool overlaps with other one on this address space",
    )
}

/// Gives `n` its subnet, gateway and VXLAN ID, avoiding those of `others`.
/// Deterministic: the lowest free subnet and VXLAN ID are chosen.
pub fn allocate_network(
    others: &[Network],
    cluster: Option<&Cluster>,
    n: &mut Network,
) -> Result<()> {
    let used: Vec<Subnet> = others
        .iter()
        .filter(|o| o.api.id != n.api.id)
        .filter_map(subnet_of)
        .collect();
    let requested = n
        .spec
        .ipam
        .as_ref()
        .and_then(|i| i.config.clone())
        .unwrap_or_default();
    let mut configs = Vec::new();
    if requested
        .iter()
        .all(|c| c.subnet.as_deref().unwrap_or("").is_empty())
    {
        let (pools, size) = pools(cluster);
        let subnet = ipam::next_subnet(&pools, size, &used).ok_or_else(|| {
            Error::new(
                ErrorKind::Unknown,
                "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network",
            )
        })?;
        configs.push(config_for(subnet, None));
    } else {
        for c in &requested {
            let (_, subnet) = ipam::parse_cidr(c.subnet.as_deref().unwrap_or(""))
                .map_err(|e| Error::new(ErrorKind::Unknown, e))?;
            if used.iter().any(|u| u.overlaps(&subnet)) {
                return Err(overlap_error());
            }
            let mut cfg = config_for(subnet, c.gateway.as_deref());
            cfg.ip_range = c.ip_range.clone().filter(|r| !r.is_empty());
            cfg.auxiliary_addresses = c.auxiliary_addresses.clone().filter(|a| !a.is_empty());
            configs.push(cfg);
        }
    }
    let taken: BTreeSet<u32> = others
        .iter()
        .filter(|o| o.api.id != n.api.id)
        .filter_map(vxlan_of)
        .collect();
    let vxlan = (VXLAN_BASE..)
        .find(|v| !taken.contains(v))
        .unwrap_or(VXLAN_BASE);
    let mut options: HashMap<String, String> = n.spec.options.clone().unwrap_or_default();
    options.insert(VXLAN_KEY.to_string(), vxlan.to_string());
    n.api.options = Some(options);
    n.api.ipam = Some(api::Ipam {
        driver: Some(
            n.spec
                .ipam
                .as_ref()
                .and_then(|i| i.driver.clone())
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| "default".to_string()),
        ),
        config: Some(configs),
        options: n
            .spec
            .ipam
            .as_ref()
            .and_then(|i| i.options.clone())
            .filter(|o| !o.is_empty()),
    });
    Ok(())
}

fn config_for(subnet: Subnet, gateway: Option<&str>) -> api::IpamConfig {
    let gw = gateway
        .filter(|g| !g.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| std::net::Ipv4Addr::from(subnet.first_host()).to_string());
    api::IpamConfig {
        subnet: Some(subnet.to_string()),
        gateway: Some(gw),
        ..Default::default()
    }
}

/// A new, unallocated network object for a create request (what swarmkit
/// stores before allocation). The caller validates the request first.
pub fn new_network(spec: api::NetworkCreateRequest) -> Network {
    let labels = spec.labels.clone().filter(|l| !l.is_empty());
    Network {
        api: api::Network {
            name: Some(spec.name.clone()),
            id: Some(new_id()),
            scope: Some("swarm".into()),
            driver: Some(spec.driver.clone().unwrap_or_else(|| "overlay".into())),
            enable_ipv4: Some(true),
            enable_ipv6: Some(spec.enable_ipv6.unwrap_or(false)),
            internal: Some(spec.internal.unwrap_or(false)),
            attachable: Some(spec.attachable.unwrap_or(false)),
            ingress: Some(spec.ingress.unwrap_or(false)),
            config_only: Some(false),
            config_from: Some(api::ConfigReference {
                network: Some(String::new()),
            }),
            labels,
            ..Default::default()
        },
        spec,
        ..Default::default()
    }
}

/// The default routing-mesh network swarmkit creates with a new cluster.
/// Its spec names no driver (the overlay is the default) and an IPAM of no
/// driver, as swarmkit's does, so clients see the same spec.
pub fn ingress_network() -> Network {
    new_network(api::NetworkCreateRequest {
        name: INGRESS_NAME.to_string(),
        ingress: Some(true),
        ipam: Some(api::Ipam::default()),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingress_then_user_networks_get_consecutive_subnets() {
        let mut ingress = ingress_network();
        allocate_network(&[], None, &mut ingress).unwrap();
        assert_eq!(subnet_of(&ingress).unwrap().to_string(), "10.0.0.0/24");
        assert_eq!(
            gateway_of(&ingress)
                .map(std::net::Ipv4Addr::from)
                .unwrap()
                .to_string(),
            "10.0.0.1"
        );
        assert_eq!(vxlan_of(&ingress), Some(4096));
        let mut n1 = new_network(api::NetworkCreateRequest {
            name: "n1".into(),
            ..Default::default()
        });
        allocate_network(std::slice::from_ref(&ingress), None, &mut n1).unwrap();
        assert_eq!(subnet_of(&n1).unwrap().to_string(), "10.0.1.0/24");
        assert_eq!(vxlan_of(&n1), Some(4097));
        assert!(is_allocated(&n1) && !is_ingress(&n1) && is_ingress(&ingress));
    }

    #[test]
    fn user_subnet_and_gateway_are_kept_and_overlaps_refused() {
        let req = |name: &str, subnet: &str, gw: Option<&str>| {
            new_network(api::NetworkCreateRequest {
                name: name.into(),
                ipam: Some(api::Ipam {
                    config: Some(vec![api::IpamConfig {
                        subnet: Some(subnet.into()),
                        gateway: gw.map(str::to_string),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                ..Default::default()
            })
        };
        let mut a = req("a", "192.168.50.0/24", Some("192.168.50.254"));
        allocate_network(&[], None, &mut a).unwrap();
        let cfg = &a.api.ipam.as_ref().unwrap().config.as_ref().unwrap()[0];
        assert_eq!(cfg.gateway.as_deref(), Some("192.168.50.254"));
        let mut b = req("b", "192.168.50.128/25", None);
        let e = allocate_network(std::slice::from_ref(&a), None, &mut b).unwrap_err();
        assert!(e.message().contains("Pool overlaps"), "{e}");
    }
}
