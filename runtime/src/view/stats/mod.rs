//! `docker stats` and `docker top` figures of a running container, read
//! straight from the kernel: its cgroup (v1 controllers or the v2 unified
//! hierarchy, whichever the node runs; the init process's
//! `/proc/<pid>/cgroup` says where), the host's `/proc/stat` and
//! `/proc/meminfo`, and `/proc/<pid>/net/dev`, which shows the interfaces
//! of the process's own network namespace, so the task's namespace needs
//! no entering.
//!
//! The figures are dockerd's: what it takes from containerd's cgroup
//! metrics (v1 and v2 differ, and the CLI knows how to read each), and
//! nothing more. Parsers are pure functions over file contents
//! ([`cgroup1`], [`cgroup2`], [`proc`]); this module only reads files.

pub mod cgroup1;
pub mod cgroup2;
pub mod proc;

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::path::PathBuf;

use time::OffsetDateTime;

/// CPU time of a container and of the host, in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuStats {
    /// All CPU time the container used.
    pub total: u64,
    /// Per CPU (cgroup v1 only; v2 has none).
    pub percpu: Vec<u64>,
    /// In kernel mode.
    pub kernel: u64,
    /// In user mode.
    pub user: u64,
    /// The host's CPU time since boot (`/proc/stat`), 0 when unknown.
    pub system: u64,
    /// The host's online CPUs.
    pub online_cpus: u32,
    /// CFS periods run.
    pub periods: u64,
    /// CFS periods throttled.
    pub throttled_periods: u64,
    /// Time throttled.
    pub throttled_time: u64,
}

/// Memory use and limit, in bytes, with the cgroup's `memory.stat`
/// entries dockerd passes on (their names differ between v1 and v2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Current use, page cache included.
    pub usage: u64,
    /// Highest use seen (v1 only).
    pub max_usage: u64,
    /// Times the limit was hit (v1) or OOM kills (v2).
    pub failcnt: u64,
    /// The limit: the host's memory when the container has none.
    pub limit: u64,
    /// `memory.stat` entries.
    pub stats: BTreeMap<String, u64>,
}

/// One block device counter (`blkio_stats.*` entries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlkioEntry {
    /// Device major number.
    pub major: u64,
    /// Device minor number.
    pub minor: u64,
    /// The operation (`read`/`write` on v2; v1's `Read`, `Write`, `Sync`, ...).
    pub op: String,
    /// The count.
    pub value: u64,
}

/// Block I/O counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlkioStats {
    /// Bytes moved, per device and operation.
    pub service_bytes: Vec<BlkioEntry>,
    /// Operations done, per device and operation (v1 only).
    pub serviced: Vec<BlkioEntry>,
    /// Read from cgroup v1, whose counters dockerd always lists (empty
    /// lists, where v2's missing ones are null).
    pub v1: bool,
}

/// One network interface's counters (`networks.<name>`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Received packets dropped.
    pub rx_dropped: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Send errors.
    pub tx_errors: u64,
    /// Sent packets dropped.
    pub tx_dropped: u64,
}

/// One reading of a container's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// When it was read.
    pub read: OffsetDateTime,
    /// CPU.
    pub cpu: CpuStats,
    /// Memory.
    pub memory: MemoryStats,
    /// Block I/O.
    pub blkio: BlkioStats,
    /// Tasks in the cgroup.
    pub pids_current: u64,
    /// Their limit (0: none).
    pub pids_limit: u64,
    /// Network interfaces of the container's namespace, loopback left out
    /// (dockerd reports its endpoints' interfaces only).
    pub networks: BTreeMap<String, NetStats>,
}

/// Where a process's cgroup lives, by hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupDirs {
    /// cgroup v1: one directory per controller.
    V1(BTreeMap<String, PathBuf>),
    /// cgroup v2: the one unified directory.
    V2(PathBuf),
}

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

impl CgroupDirs {
    /// From `/proc/<pid>/cgroup`: controllers' lines mean v1 (a hybrid
    /// host's empty unified line is not used for figures), a lone `0::`
    /// line means v2.
    pub fn parse(text: &str, root: &Path) -> Option<CgroupDirs> {
        let mut v1 = BTreeMap::new();
        let mut unified = None;
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let rel = path.trim_start_matches('/');
            if controllers.is_empty() {
                unified = Some(root.join(rel));
                continue;
            }
            for c in controllers.split(',') {
                if !c.starts_with("name=") {
                    v1.insert(c.to_string(), root.join(c).join(rel));
                }
            }
        }
        if v1.is_empty() {
            unified.map(CgroupDirs::V2)
        } else {
            Some(CgroupDirs::V1(v1))
        }
    }

    /// The cgroup of running process `pid`.
    pub fn of_pid(pid: u32) -> io::Result<CgroupDirs> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
        CgroupDirs::parse(&text, Path::new(CGROUP_ROOT))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no cgroup for the process"))
    }

    /// The processes in the cgroup (host PIDs), as `cgroup.procs` lists
    /// them.
    pub fn procs(&self) -> io::Result<Vec<u32>> {
        let dir = match self {
            CgroupDirs::V2(d) => d,
            CgroupDirs::V1(m) => m
                .get("pids")
                .or_else(|| m.get("memory"))
                .or_else(|| m.values().next())
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no cgroup controller"))?,
        };
        let text = std::fs::read_to_string(dir.join("cgroup.procs"))?;
        Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }
}

/// Reads a file, "" when it is absent (a controller the kernel lacks).
fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_default()
}

/// Reads the figures of the container whose init process is `pid`.
/// Fails once the process is gone.
pub fn sample(pid: u32) -> io::Result<Sample> {
    let dirs = CgroupDirs::of_pid(pid)?;
    let read_at = OffsetDateTime::now_utc();
    let (mut cpu, mut memory, blkio, (pids_current, pids_limit)) = match &dirs {
        CgroupDirs::V1(m) => cgroup1::read_all(m, read),
        CgroupDirs::V2(d) => cgroup2::read_all(d, read),
    };
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let (system, online) = proc::system_cpu(&stat);
    cpu.system = system;
    cpu.online_cpus = online;
    let machine = proc::mem_total(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default());
    // No limit reads as a huge number: dockerd shows the host's memory.
    if machine > 0 && (memory.limit == 0 || memory.limit > machine) {
        memory.limit = machine;
    }
    let net = std::fs::read_to_string(format!("/proc/{pid}/net/dev"))?;
    Ok(Sample {
        read: read_at,
        cpu,
        memory,
        blkio,
        pids_current,
        pids_limit,
        networks: proc::net_dev(&net),
    })
}

/// Parses a number as the kernel writes it; "max" and junk are 0.
fn number(s: &str) -> u64 {
    s.trim().parse().unwrap_or(0)
}

/// `key value` lines into a map.
fn key_values(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let k = f.next()?;
            let v = f.next()?.parse().ok()?;
            Some((k.to_string(), v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_files_name_v1_controllers_or_the_v2_dir() {
        let root = Path::new("/sys/fs/cgroup");
        let hybrid = "9:name=systemd:/\n8:pids:/shoal/abc\n4:memory:/shoal/abc\n2:cpu,cpuacct:/shoal/abc\n0::/\n";
        let CgroupDirs::V1(m) = CgroupDirs::parse(hybrid, root).unwrap() else {
            panic!("hybrid hosts read v1 controllers");
        };
        assert_eq!(
            m["memory"],
            PathBuf::from("/sys/fs/cgroup/memory/shoal/abc")
        );
        assert_eq!(
            m["cpuacct"],
            PathBuf::from("/sys/fs/cgroup/cpuacct/shoal/abc")
        );
        assert!(!m.contains_key("name=systemd"));
        assert_eq!(
            CgroupDirs::parse("0::/shoal/abc\n", root),
            Some(CgroupDirs::V2(PathBuf::from("/sys/fs/cgroup/shoal/abc")))
        );
        assert_eq!(CgroupDirs::parse("", root), None);
    }

    #[test]
    fn own_process_can_be_sampled() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.cpu.online_cpus > 0);
        assert!(s.cpu.system > 0);
        assert!(s.memory.limit > 0);
        assert!(!s.networks.contains_key("lo"));
    }
}
