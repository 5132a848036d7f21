//! Host-wide figures from `/proc`: the host's CPU time and CPU count
//! (`/proc/stat`), its memory (`/proc/meminfo`), and a network namespace's
//! interface counters (`/proc/<pid>/net/dev`).

use std::collections::BTreeMap;

use super::NetStats;

/// `/proc/stat` counts in USER_HZ ticks (100 a second on Linux).
const NANOS_PER_TICK: u64 = 10_000_000;

/// The host's CPU time since boot in nanoseconds (the first seven fields
/// of the `cpu` line, as dockerd sums them) and the number of CPUs
/// (`cpuN` lines).
pub fn system_cpu(stat: &str) -> (u64, u32) {
    let mut total = 0;
    let mut cpus = 0;
    for line in stat.lines().take_while(|l| l.starts_with("cpu")) {
        let mut f = line.split_whitespace();
        let name = f.next().unwrap_or("");
        if name == "cpu" {
            let ticks: u64 = f.take(7).filter_map(|v| v.parse::<u64>().ok()).sum();
            total = ticks * NANOS_PER_TICK;
        } else if name[3..].chars().all(|c| c.is_ascii_digit()) {
            cpus += 1;
        }
    }
    (total, cpus)
}

/// The host's memory in bytes (`MemTotal`), 0 when unknown.
pub fn mem_total(meminfo: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Interface counters from a `net/dev` table, loopback left out.
pub fn net_dev(text: &str) -> BTreeMap<String, NetStats> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let name = name.trim();
            if name == "lo" {
                return None;
            }
            let v: Vec<u64> = rest
                .split_whitespace()
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            if v.len() < 12 {
                return None;
            }
            Some((
                name.to_string(),
                NetStats {
                    rx_bytes: v[0],
                    rx_packets: v[1],
                    rx_errors: v[2],
                    rx_dropped: v[3],
                    tx_bytes: v[8],
                    tx_packets: v[9],
                    tx_errors: v[10],
                    tx_dropped: v[11],
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_cpu_sums_seven_fields_and_counts_cpus() {
        let stat = "cpu  10 1 5 100 2 0 1 7 0 0\ncpu0 5 0 2 50 1 0 0 0 0 0\ncpu1 5 1 3 50 1 0 1 0 0 0\nintr 1 2\n";
        assert_eq!(system_cpu(stat), (119 * NANOS_PER_TICK, 2));
    }

    #[test]
    fn meminfo_total_in_bytes() {
        assert_eq!(
            mem_total("MemTotal:        2000 kB\nMemFree: 1 kB\n"),
            2_048_000
        );
        assert_eq!(mem_total(""), 0);
    }

    #[test]
    fn net_dev_per_interface_without_loopback() {
        let text = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:   10431     104    0    0    0     0          0         0    10431     104    0    0    0     0       0          0
  eth0: 1500 10 1 2 0 0 0 0 900 8 3 4 0 0 0 0
";
        let n = net_dev(text);
        assert_eq!(n.len(), 1);
        let e = &n["eth0"];
        assert_eq!(
            (e.rx_bytes, e.rx_packets, e.rx_errors, e.rx_dropped),
            (1500, 10, 1, 2)
        );
        assert_eq!(
            (e.tx_bytes, e.tx_packets, e.tx_errors, e.tx_dropped),
            (900, 8, 3, 4)
        );
    }
}
