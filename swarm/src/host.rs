//! Facts about this machine that a node reports: hostname, CPUs, memory,
//! and the address to advertise when none is given.

use std::net::IpAddr;

/// The kernel's hostname.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Online CPUs.
pub fn cpus() -> i64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as i64)
        .unwrap_or(1)
}

/// Total memory in bytes.
pub fn memory_bytes() -> i64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// The interface of the default IPv4 route, from /proc/net/route.
fn default_route_interface() -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/route").ok()?;
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 2 && f[1] == "00000000").then(|| f[0].to_string())
    })
}

/// The first IPv4 address of `iface`, asked of iproute2.
pub fn interface_ipv4(iface: &str) -> Option<IpAddr> {
    let out = std::process::Command::new("ip")
        .args(["-o", "-4", "addr", "show", "dev", iface])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .and_then(|ip| ip.parse().ok())
}

/// Every global-scope IPv4 address of the machine, asked of iproute2.
fn global_ipv4s() -> Vec<IpAddr> {
    let Ok(out) = std::process::Command::new("ip")
        .args(["-o", "-4", "addr", "show", "scope", "global"])
        .output()
    else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| {
            l.split_whitespace()
                .skip_while(|w| *w != "inet")
                .nth(1)?
                .split('/')
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// The address dockerd would advertise when none is given: the one of the
/// interface that holds the default route, or, on a machine without one,
/// its only global address.
pub fn default_advertise_addr() -> Option<IpAddr> {
    if let Some(ip) = default_route_interface().and_then(|i| interface_ipv4(&i)) {
        return Some(ip);
    }
    let all = global_ipv4s();
    (all.len() == 1).then(|| all[0])
}
