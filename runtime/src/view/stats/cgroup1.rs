//! Figures from cgroup v1 controllers, named as dockerd reports them from
//! containerd's v1 metrics.

use std::collections::BTreeMap;
use std::path::Path;
use std::path::PathBuf;

use super::key_values;
use super::number;
use super::BlkioEntry;
use super::BlkioStats;
use super::CpuStats;
use super::MemoryStats;

/// The `memory.stat` entries dockerd passes on for v1.
const MEMORY_KEYS: &[&str] = &[
    "cache",
    "rss",
    "rss_huge",
    "mapped_file",
    "dirty",
    "writeback",
    "pgpgin",
    "pgpgout",
    "pgfault",
    "pgmajfault",
    "inactive_anon",
    "active_anon",
    "inactive_file",
    "active_file",
    "unevictable",
    "hierarchical_memory_limit",
    "hierarchical_memsw_limit",
    "total_cache",
    "total_rss",
    "total_rss_huge",
    "total_mapped_file",
    "total_dirty",
    "total_writeback",
    "total_pgpgin",
    "total_pgpgout",
    "total_pgfault",
    "total_pgmajfault",
    "total_inactive_anon",
    "total_active_anon",
    "total_inactive_file",
    "total_active_file",
    "total_unevictable",
];

/// `cpuacct.stat` counts in USER_HZ ticks (100 a second on Linux).
const NANOS_PER_TICK: u64 = 10_000_000;

/// CPU figures from `cpuacct.usage`, `cpuacct.usage_percpu`,
/// `cpuacct.stat` and `cpu.stat`.
pub fn cpu(usage: &str, percpu: &str, acct_stat: &str, cpu_stat: &str) -> CpuStats {
    let acct = key_values(acct_stat);
    let throttle = key_values(cpu_stat);
    let get = |m: &BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    CpuStats {
        total: number(usage),
        percpu: percpu
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect(),
        kernel: get(&acct, "system") * NANOS_PER_TICK,
        user: get(&acct, "user") * NANOS_PER_TICK,
        periods: get(&throttle, "nr_periods"),
        throttled_periods: get(&throttle, "nr_throttled"),
        throttled_time: get(&throttle, "throttled_time"),
        ..Default::default()
    }
}

/// Memory figures from `memory.usage_in_bytes`, `memory.max_usage_in_bytes`,
/// `memory.failcnt`, `memory.limit_in_bytes` and `memory.stat`.
pub fn memory(usage: &str, max_usage: &str, failcnt: &str, limit: &str, stat: &str) -> MemoryStats {
    let all = key_values(stat);
    MemoryStats {
        usage: number(usage),
        max_usage: number(max_usage),
        failcnt: number(failcnt),
        limit: number(limit),
        stats: MEMORY_KEYS
            .iter()
            .map(|k| (k.to_string(), all.get(*k).copied().unwrap_or(0)))
            .collect(),
    }
}

/// Entries of a blkio counter file (`MAJ:MIN Op value` lines; the closing
/// `Total N` line is not a device's).
pub fn blkio_entries(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let dev = f.next()?;
            let op = f.next()?;
            let value = f.next()?.parse().ok()?;
            let (major, minor) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                op: op.to_string(),
                value,
            })
        })
        .collect()
}

/// Everything, reading each file through `read(dir, name)`.
pub fn read_all(
    dirs: &BTreeMap<String, PathBuf>,
    read: impl Fn(&Path, &str) -> String,
) -> (CpuStats, MemoryStats, BlkioStats, (u64, u64)) {
    let in_dir = |controller: &str, file: &str| {
        dirs.get(controller)
            .map(|d| read(d, file))
            .unwrap_or_default()
    };
    let cpu = cpu(
        &in_dir("cpuacct", "cpuacct.usage"),
        &in_dir("cpuacct", "cpuacct.usage_percpu"),
        &in_dir("cpuacct", "cpuacct.stat"),
        &in_dir("cpu", "cpu.stat"),
    );
    let memory = memory(
        &in_dir("memory", "memory.usage_in_bytes"),
        &in_dir("memory", "memory.max_usage_in_bytes"),
        &in_dir("memory", "memory.failcnt"),
        &in_dir("memory", "memory.limit_in_bytes"),
        &in_dir("memory", "memory.stat"),
    );
    // The CFQ scheduler's recursive counters when the kernel has them,
    // else the throttle layer's, as containerd falls back.
    let cfq = !in_dir("blkio", "blkio.io_serviced_recursive").is_empty();
    let (bytes, ops) = if cfq {
        (
            "blkio.io_service_bytes_recursive",
            "blkio.io_serviced_recursive",
        )
    } else {
        (
            "blkio.throttle.io_service_bytes",
            "blkio.throttle.io_serviced",
        )
    };
    let blkio = BlkioStats {
        service_bytes: blkio_entries(&in_dir("blkio", bytes)),
        serviced: blkio_entries(&in_dir("blkio", ops)),
        v1: true,
    };
    let pids = (
        number(&in_dir("pids", "pids.current")),
        number(&in_dir("pids", "pids.max")),
    );
    (cpu, memory, blkio, pids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_times_in_nanoseconds() {
        let c = cpu(
            "123456789\n",
            "100 200 \n",
            "user 150\nsystem 20\n",
            "nr_periods 5\nnr_throttled 2\nthrottled_time 999\n",
        );
        assert_eq!(c.total, 123_456_789);
        assert_eq!(c.percpu, [100, 200]);
        assert_eq!(c.user, 1_500_000_000);
        assert_eq!(c.kernel, 200_000_000);
        assert_eq!(
            (c.periods, c.throttled_periods, c.throttled_time),
            (5, 2, 999)
        );
    }

    #[test]
    fn memory_keeps_dockerds_entries() {
        let m = memory(
            "8192000\n",
            "9000000\n",
            "0\n",
            "67108864\n",
            "cache 4096\nrss 8000\nshmem 0\ntotal_inactive_file 4096\n",
        );
        assert_eq!(
            (m.usage, m.max_usage, m.limit),
            (8_192_000, 9_000_000, 67_108_864)
        );
        assert_eq!(m.stats["total_inactive_file"], 4096);
        assert_eq!(m.stats["rss"], 8000);
        assert_eq!(m.stats["dirty"], 0);
        assert!(!m.stats.contains_key("shmem"), "not a key dockerd reports");
    }

    #[test]
    fn blkio_lines_skip_the_total() {
        let e = blkio_entries("8:0 Read 4096\n8:0 Write 512\n8:0 Total 4608\nTotal 4608\n");
        assert_eq!(e.len(), 3);
        assert_eq!(
            e[0],
            BlkioEntry {
                major: 8,
                minor: 0,
                op: "Read".into(),
                value: 4096
            }
        );
    }

    #[test]
    fn missing_controllers_read_as_zero() {
        let (c, m, b, p) = read_all(&BTreeMap::new(), |_, _| String::new());
        assert_eq!(c.total, 0);
        assert_eq!(m.usage, 0);
        assert!(b.service_bytes.is_empty());
        assert_eq!(p, (0, 0));
    }
}
