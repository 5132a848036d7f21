//! **Pure**: the addresses of a new node-local network, from what the
//! request asks for or from dockerd's default local pools, checked against
//! what the node already uses.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use swarm::model::api;

use super::error::Error;
use super::error::Result;

/// A new network's addresses.
#[derive(Debug, Clone, PartialEq)]
pub struct Addressing {
    /// The subnet.
    pub subnet: Ipv4Net,
    /// The bridge's address.
    pub gateway: Ipv4Addr,
    /// Where containers' addresses come from, when narrower than the
    /// subnet.
    pub ip_range: Option<Ipv4Net>,
    /// Whether the subnet was asked for (only then may containers ask for
    /// their address, as under dockerd).
    pub user_subnet: bool,
    /// `IPAM.Config` as dockerd shows it: the request's as given, or the
    /// chosen subnet and gateway.
    pub shown: Vec<api::IpamConfig>,
}

/// dockerd's default local address pools, in order: 172.17.0.0/16 to
/// 172.31.0.0/16, then 192.168.0.0/20 to 192.168.240.0/20.
pub fn default_pools() -> impl Iterator<Item = Ipv4Net> {
    let b =
        (17u8..=31).filter_map(|second| Ipv4Net::new(Ipv4Addr::new(172, second, 0, 0), 16).ok());
    let c = (0u8..16).filter_map(|i| Ipv4Net::new(Ipv4Addr::new(192, 168, i * 16, 0), 20).ok());
    b.chain(c)
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first default pool that overlaps none of `taken`.
pub fn choose_pool(taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    default_pools().find(|p| !taken.iter().any(|t| overlaps(p, t)))
}

/// What the node uses, for a new network's addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InUse {
    /// Other node-local networks' subnets and the gateway bridge's: a
    /// subnet asked for must overlap none (dockerd's local address space).
    pub networks: Vec<Ipv4Net>,
    /// The node's routes and the swarm's overlay subnets: a default pool
    /// must overlap none of these either.
    pub elsewhere: Vec<Ipv4Net>,
}

/// The addresses `ipam` asks for (one IPv4 config at most), or a free
/// default pool with its first address as the gateway.
pub fn addressing(ipam: Option<&api::Ipam>, in_use: &InUse) -> Result<Addressing> {
    let configs = ipam.and_then(|i| i.config.clone()).unwrap_or_default();
    if configs.len() > 1 {
        return Err(Error::Unsupported(
            "more than one IPAM config per network is not supported by this daemon".into(),
        ));
    }
    let Some(c) = configs.into_iter().next() else {
        let mut taken = in_use.networks.clone();
        taken.extend(in_use.elsewhere.iter().copied());
        let subnet = choose_pool(&taken).ok_or(Error::NoPool)?;
        let gateway = subnet.hosts().next().ok_or(Error::NoPool)?;
        return Ok(Addressing {
            subnet,
            gateway,
            ip_range: None,
            user_subnet: false,
            shown: vec![api::IpamConfig {
                subnet: Some(subnet.to_string()),
                gateway: Some(gateway.to_string()),
                ..Default::default()
            }],
        });
    };
    let given = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    let Some(subnet_text) = given(&c.subnet) else {
        return Err(Error::Unsupported(
            "an IPAM config without a subnet is not supported by this daemon".into(),
        ));
    };
    if subnet_text.contains(':') {
        return Err(Error::Unsupported(
            "IPv6 networks are not supported by this daemon".into(),
        ));
    }
    let subnet: Ipv4Net = subnet_text
        .parse()
        .map_err(|_| Error::InvalidSubnet(subnet_text.clone()))?;
    let subnet = subnet.trunc();
    if in_use.networks.iter().any(|t| overlaps(&subnet, t)) {
        return Err(Error::Overlap);
    }
    let gateway = match given(&c.gateway) {
        None => subnet
            .hosts()
            .next()
            .ok_or(Error::GatewayOutOfRange(subnet.to_string()))?,
        Some(g) => {
            let ip: Ipv4Addr = g.parse().map_err(|_| Error::InvalidGateway(g.clone()))?;
            if !subnet.contains(&ip) {
                return Err(Error::GatewayOutOfRange(g));
            }
            ip
        }
    };
    let ip_range = match given(&c.ip_range) {
        None => None,
        Some(r) => {
            let range: Ipv4Net = r.parse().map_err(|_| Error::InvalidRange(r.clone()))?;
            if !subnet.contains(&range.trunc()) {
                return Err(Error::InvalidRange(r));
            }
            Some(range.trunc())
        }
    };
    Ok(Addressing {
        subnet,
        gateway,
        ip_range,
        user_subnet: true,
        shown: vec![c],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn ipam(subnet: &str, gateway: &str, range: &str) -> api::Ipam {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        api::Ipam {
            config: Some(vec![api::IpamConfig {
                subnet: opt(subnet),
                gateway: opt(gateway),
                ip_range: opt(range),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn pools_are_dockerds_in_order() {
        let all: Vec<Ipv4Net> = default_pools().collect();
        assert_eq!(all.len(), 15 + 16);
        assert_eq!(all[0], net("172.17.0.0/16"));
        assert_eq!(all[14], net("172.31.0.0/16"));
        assert_eq!(all[15], net("192.168.0.0/20"));
        assert_eq!(all[30], net("192.168.240.0/20"));
    }

    #[test]
    fn the_first_pool_that_clashes_with_nothing() {
        assert_eq!(choose_pool(&[]), Some(net("172.17.0.0/16")));
        // The gateway bridge's /16, another network, a host route inside a
        // pool and one covering several: all skipped.
        let taken = [
            net("172.18.0.0/16"),
            net("172.17.0.0/16"),
            net("172.19.5.0/24"),
            net("172.20.0.0/14"),
        ];
        assert_eq!(choose_pool(&taken), Some(net("172.24.0.0/16")));
        // A route covering every 172 pool leaves the 192.168 ones.
        let taken = [net("172.16.0.0/12"), net("192.168.0.0/24")];
        assert_eq!(choose_pool(&taken), Some(net("192.168.16.0/20")));
        assert_eq!(choose_pool(&[net("128.0.0.0/1")]), None);
    }

    #[test]
    fn a_default_pool_avoids_routes_and_overlays() {
        let in_use = InUse {
            networks: vec![net("172.18.0.0/16")],
            elsewhere: vec![net("172.17.0.0/16"), net("172.19.0.0/24")],
        };
        let a = addressing(None, &in_use).unwrap();
        assert_eq!(a.subnet, net("172.20.0.0/16"));
        assert_eq!(a.gateway, Ipv4Addr::new(172, 20, 0, 1));
        assert!(!a.user_subnet);
        assert_eq!(a.shown[0].subnet.as_deref(), Some("172.20.0.0/16"));
        assert_eq!(a.shown[0].gateway.as_deref(), Some("172.20.0.1"));
        // An empty IPAM config list is no config.
        let empty = api::Ipam {
            config: Some(vec![]),
            ..Default::default()
        };
        assert_eq!(addressing(Some(&empty), &in_use).unwrap(), a);
    }

    #[test]
    fn a_subnet_asked_for_is_kept_as_given() {
        let in_use = InUse {
            networks: vec![net("172.18.0.0/16")],
            // A host route there is the user's business, as with dockerd.
            elsewhere: vec![net("10.5.0.0/16")],
        };
        let a = addressing(Some(&ipam("10.5.0.0/24", "", "")), &in_use).unwrap();
        assert_eq!(a.gateway, Ipv4Addr::new(10, 5, 0, 1));
        assert!(a.user_subnet);
        assert_eq!(a.shown[0].gateway, None);
        let a = addressing(
            Some(&ipam("10.5.0.0/24", "10.5.0.254", "10.5.0.128/25")),
            &in_use,
        )
        .unwrap();
        assert_eq!(a.gateway, Ipv4Addr::new(10, 5, 0, 254));
        assert_eq!(a.ip_range, Some(net("10.5.0.128/25")));
    }

    #[test]
    fn bad_requests_get_dockerds_texts() {
        let in_use = InUse {
            networks: vec![net("172.18.0.0/16")],
            elsewhere: vec![],
        };
        let err = |i: api::Ipam| addressing(Some(&i), &in_use).unwrap_err().to_string();
        assert_eq!(
            err(ipam("172.18.5.0/24", "", "")),
            "Pool overlaps with other one on this address space"
        );
        assert_eq!(
            err(ipam("10.1.0.300/24", "", "")),
            "Invalid subnet 10.1.0.300/24 : invalid CIDR address: 10.1.0.300/24"
        );
        assert_eq!(
            err(ipam("10.1.0.0/24", "10.2.0.1", "")),
            "failed to allocate gateway (10.2.0.1): Requested address is out of range"
        );
        assert_eq!(
            err(ipam("10.1.0.0/24", "", "10.2.0.0/25")),
            "no matching subnet for range 10.2.0.0/25"
        );
        assert!(err(ipam("fd00::/64", "", "")).contains("IPv6"));
    }
}
