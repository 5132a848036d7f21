//! Figures from a cgroup v2 directory, named as dockerd reports them from
//! containerd's v2 metrics (the CLI subtracts `inactive_file` from the
//! usage, as it subtracts v1's `total_inactive_file`).

use std::path::Path;

use super::key_values;
use super::number;
use super::BlkioEntry;
use super::BlkioStats;
use super::CpuStats;
use super::MemoryStats;

/// The `memory.stat` entries dockerd passes on for v2.
const MEMORY_KEYS: &[&str] = &[
    "anon",
    "file",
    "kernel_stack",
    "slab",
    "sock",
    "shmem",
    "file_mapped",
    "file_dirty",
    "file_writeback",
    "anon_thp",
    "inactive_anon",
    "active_anon",
    "inactive_file",
    "active_file",
    "unevictable",
    "slab_reclaimable",
    "slab_unreclaimable",
    "pgfault",
    "pgmajfault",
    "workingset_refault",
    "workingset_activate",
    "workingset_nodereclaim",
    "pgrefill",
    "pgscan",
    "pgsteal",
    "pgactivate",
    "pgdeactivate",
    "pglazyfree",
    "pglazyfreed",
    "thp_fault_alloc",
    "thp_collapse_alloc",
];

/// CPU figures from `cpu.stat` (microseconds there, nanoseconds here).
pub fn cpu(stat: &str) -> CpuStats {
    let s = key_values(stat);
    let get = |k: &str| s.get(k).copied().unwrap_or(0);
    CpuStats {
        total: get("usage_usec") * 1000,
        kernel: get("system_usec") * 1000,
        user: get("user_usec") * 1000,
        periods: get("nr_periods"),
        throttled_periods: get("nr_throttled"),
        throttled_time: get("throttled_usec") * 1000,
        ..Default::default()
    }
}

/// Memory figures from `memory.current`, `memory.max`, `memory.stat` and
/// `memory.events` (its `oom` count stands in for v1's failcnt).
pub fn memory(current: &str, max: &str, stat: &str, events: &str) -> MemoryStats {
    let all = key_values(stat);
    MemoryStats {
        usage: number(current),
        max_usage: 0,
        failcnt: key_values(events).get("oom").copied().unwrap_or(0),
        limit: number(max),
        stats: MEMORY_KEYS
            .iter()
            .map(|k| (k.to_string(), all.get(*k).copied().unwrap_or(0)))
            .collect(),
    }
}

/// `io.stat` as dockerd reports it: a `read` and a `write` byte count per
/// device.
pub fn io(stat: &str) -> BlkioStats {
    let mut service_bytes = Vec::new();
    for line in stat.lines() {
        let mut f = line.split_whitespace();
        let Some((major, minor)) = f.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
            continue;
        };
        let (mut read, mut write) = (0, 0);
        for kv in f {
            match kv.split_once('=') {
                Some(("rbytes", v)) => read = number(v),
                Some(("wbytes", v)) => write = number(v),
                _ => {}
            }
        }
        for (op, value) in [("read", read), ("write", write)] {
            service_bytes.push(BlkioEntry {
                major,
                minor,
                op: op.into(),
                value,
            });
        }
    }
    BlkioStats {
        service_bytes,
        serviced: Vec::new(),
        v1: false,
    }
}

/// Everything, reading each file through `read(dir, name)`.
pub fn read_all(
    dir: &Path,
    read: impl Fn(&Path, &str) -> String,
) -> (CpuStats, MemoryStats, BlkioStats, (u64, u64)) {
    let f = |name: &str| read(dir, name);
    (
        cpu(&f("cpu.stat")),
        memory(
            &f("memory.current"),
            &f("memory.max"),
            &f("memory.stat"),
            &f("memory.events"),
        ),
        io(&f("io.stat")),
        (number(&f("pids.current")), number(&f("pids.max"))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_microseconds_become_nanoseconds() {
        let c = cpu("usage_usec 2500\nuser_usec 2000\nsystem_usec 500\nnr_periods 3\nnr_throttled 1\nthrottled_usec 7\n");
        assert_eq!((c.total, c.user, c.kernel), (2_500_000, 2_000_000, 500_000));
        assert_eq!(
            (c.periods, c.throttled_periods, c.throttled_time),
            (3, 1, 7000)
        );
        assert!(c.percpu.is_empty());
    }

    #[test]
    fn memory_with_and_without_a_limit() {
        let m = memory(
            "10485760\n",
            "67108864\n",
            "anon 6000000\nfile 4000000\ninactive_file 3000000\nzswap 1\n",
            "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\n",
        );
        assert_eq!((m.usage, m.limit, m.failcnt), (10_485_760, 67_108_864, 2));
        assert_eq!(m.stats["inactive_file"], 3_000_000);
        assert_eq!(m.stats["file"], 4_000_000);
        assert_eq!(m.stats["pgfault"], 0);
        assert!(!m.stats.contains_key("zswap"));
        assert_eq!(memory("1\n", "max\n", "", "").limit, 0);
    }

    #[test]
    fn io_stat_gives_read_and_write_per_device() {
        let b = io("8:0 rbytes=4096 wbytes=1024 rios=1 wios=2 dbytes=0 dios=0\n253:1 rbytes=0 wbytes=0 rios=0 wios=0 dbytes=0 dios=0\n");
        assert_eq!(b.service_bytes.len(), 4);
        assert_eq!(b.service_bytes[0].op, "read");
        assert_eq!(b.service_bytes[0].value, 4096);
        assert_eq!(b.service_bytes[1].op, "write");
        assert_eq!(b.service_bytes[1].value, 1024);
        assert_eq!(
            (b.service_bytes[2].major, b.service_bytes[2].minor),
            (253, 1)
        );
    }
}
