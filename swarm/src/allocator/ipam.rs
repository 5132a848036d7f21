//! Pure IPv4 address management: CIDR parsing with Go's error texts, carving
//! subnets for new networks out of the cluster's default address pools, and
//! handing out host addresses inside a subnet.
//!
//! Nothing here keeps state: callers pass in what is already used (derived
//! from the store) and get the lowest free choice back, so every manager
//! computes the same answer from the same store.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

/// An IPv4 subnet: a network address (host bits zero) and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subnet {
    /// The network address as a number.
    pub base: u32,
    /// The prefix length, 0..=32.
    pub prefix: u8,
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

/// Parses `a.b.c.d/n` as Go's `net.ParseCIDR` does; the error text is Go's
/// (`invalid CIDR address: <input>`). Host bits are cleared.
pub fn parse_cidr(raw: &str) -> Result<(Ipv4Addr, Subnet), String> {
    let bad = || format!("invalid CIDR address: {raw}");
    let (ip, len) = raw.split_once('/').ok_or_else(bad)?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
    let all_digits = !len.is_empty() && len.len() <= 2 && len.bytes().all(|b| b.is_ascii_digit());
    let prefix: u8 = if all_digits {
        len.parse().map_err(|_| bad())?
    } else {
        return Err(bad());
    };
    if prefix > 32 {
        return Err(bad());
    }
    let base = u32::from(ip) & mask(prefix);
    Ok((ip, Subnet { base, prefix }))
}

impl Subnet {
    /// Number of addresses in the subnet.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// The last address (broadcast).
    pub fn last(&self) -> u32 {
        self.base | !mask(self.prefix)
    }

    /// Whether `ip` lies inside.
    pub fn contains(&self, ip: u32) -> bool {
        ip & mask(self.prefix) == self.base
    }

    /// Whether the two subnets share any address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.contains(other.base) || other.contains(self.base)
    }

    /// The first host address (`.1`), the default gateway.
    pub fn first_host(&self) -> u32 {
        self.base.wrapping_add(1)
    }

    /// `ip/prefix` text for an address of this subnet.
    pub fn with_prefix(&self, ip: u32) -> String {
        format!("{}/{}", Ipv4Addr::from(ip), self.prefix)
    }
}

/// The lowest subnet of length `size` inside one of `pools` (in order) that
/// overlaps none of `used`.
pub fn next_subnet(pools: &[Subnet], size: u8, used: &[Subnet]) -> Option<Subnet> {
    for pool in pools {
        if size < pool.prefix || size > 32 {
            continue;
        }
        let step = 1u64 << (32 - u32::from(size));
        let mut base = u64::from(pool.base);
        let end = u64::from(pool.base) + pool.size();
        while base < end {
            let candidate = Subnet {
                base: base as u32,
                prefix: size,
            };
            match used.iter().find(|u| u.overlaps(&candidate)) {
                None => return Some(candidate),
                // Skip past the blocking subnet (it may be larger than a step).
                Some(u) => {
                    let skip_to = u64::from(u.last()) + 1;
                    base = (base + step).max(skip_to.div_ceil(step) * step);
                }
            }
        }
    }
    None
}

/// The lowest host address of `subnet` not in `used`; the network and
/// broadcast addresses are never handed out (except in /31 and /32).
pub fn next_addr(subnet: &Subnet, used: &BTreeSet<u32>) -> Option<u32> {
    let (lo, hi) = if subnet.prefix >= 31 {
        (subnet.base, subnet.last())
    } else {
        (subnet.base + 1, subnet.last() - 1)
    };
    (lo..=hi).find(|ip| !used.contains(ip))
}

/// Parses a plain IPv4 address into its number.
pub fn parse_ip(raw: &str) -> Option<u32> {
    raw.parse::<Ipv4Addr>().ok().map(u32::from)
}

/// Parses `ip/prefix` (an allocated address) into the address number.
pub fn addr_of(cidr: &str) -> Option<u32> {
    parse_ip(cidr.split('/').next().unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(raw: &str) -> Subnet {
        parse_cidr(raw).unwrap().1
    }

    #[test]
    fn parse_matches_go() {
        assert_eq!(s("10.0.1.7/24").to_string(), "10.0.1.0/24");
        assert_eq!(
            parse_cidr("10.0.0.0/33").unwrap_err(),
            "invalid CIDR address: 10.0.0.0/33"
        );
        for bad in ["10.0.0.0", "10.0.0/8", "x/8", "10.0.0.0/-1", "10.0.0.0/"] {
            assert!(parse_cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn subnets_are_carved_in_order_and_skip_used() {
        let pool = [s("10.0.0.0/8")];
        assert_eq!(
            next_subnet(&pool, 24, &[]).unwrap().to_string(),
            "10.0.0.0/24"
        );
        let used = [s("10.0.0.0/24"), s("10.0.1.0/24")];
        assert_eq!(
            next_subnet(&pool, 24, &used).unwrap().to_string(),
            "10.0.2.0/24"
        );
        // A user-chosen larger subnet blocks everything it covers.
        let used = [s("10.0.0.0/16")];
        assert_eq!(
            next_subnet(&pool, 24, &used).unwrap().to_string(),
            "10.1.0.0/24"
        );
        let tiny = [s("192.168.0.0/24")];
        assert!(next_subnet(&tiny, 24, &[s("192.168.0.0/25")]).is_none());
        assert!(next_subnet(&tiny, 16, &[]).is_none());
    }

    #[test]
    fn addresses_skip_network_gateway_and_broadcast() {
        let net = s("10.0.1.0/30");
        let mut used = BTreeSet::new();
        used.insert(net.first_host());
        let a = next_addr(&net, &used).unwrap();
        assert_eq!(net.with_prefix(a), "10.0.1.2/30");
        used.insert(a);
        assert!(next_addr(&net, &used).is_none());
        assert_eq!(addr_of("10.0.1.2/30"), Some(a));
    }
}
