//! The cgroup limits of a standalone container (`--memory`,
//! `--memory-swap`, `--memory-reservation`, `--cpus`, `--cpu-shares`, `--cpu-quota`,
//! `--cpu-period`, `--cpuset-cpus`, `--pids-limit`), as dockerd checks
//! them, merges a `docker update` into them and hands them to runc.
//!
//! Pure: the caller brings the host's CPUs; the record's `HostConfig` is
//! where the limits live, so every start builds them into the spec and a
//! running container gets them through containerd's task update.

use oci_spec::runtime::LinuxCpu;
use oci_spec::runtime::LinuxMemory;
use oci_spec::runtime::LinuxPids;
use oci_spec::runtime::LinuxResources;
use swarm::model::api;

/// dockerd's smallest memory limit (6 MiB).
const MIN_MEMORY: i64 = 6 * 1024 * 1024;
/// The CFS period `--cpus` is spread over (100 ms), as dockerd uses.
const NANO_CPU_PERIOD: i64 = 100_000;

/// Why a change of limits is refused, with dockerd's texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The values are wrong on their own (400).
    Invalid(String),
    /// They conflict with what the container has (dockerd's "Cannot
    /// update container ID: ..." prefix is the caller's).
    Conflict(String),
}

/// The host's CPUs as dockerd checks requests against them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCpus {
    /// How many CPUs the daemon may use.
    pub count: usize,
    /// The CPUs a cpuset may name (`0-1`).
    pub online: String,
}

impl HostCpus {
    /// What this machine has: the CPUs the daemon may use, and the cpuset
    /// of the cgroup root (v1, then v2), else the online CPUs.
    pub fn probe() -> HostCpus {
        let count = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let online = [
            "/sys/fs/cgroup/cpuset/cpuset.cpus",
            "/sys/fs/cgroup/cpuset.cpus.effective",
            "/sys/devices/system/cpu/online",
        ]
        .iter()
        .find_map(|p| {
            std::fs::read_to_string(p)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| format!("0-{}", count.saturating_sub(1)));
        HostCpus { count, online }
    }
}

/// The CPUs a cpuset list names (`0-2,5`), or `None` when it does not
/// parse.
fn parse_cpuset(list: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in list.split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (lo.parse::<u32>().ok()?, hi.parse::<u32>().ok()?),
            None => {
                let n = part.parse::<u32>().ok()?;
                (n, n)
            }
        };
        if lo > hi || hi - lo > 4096 {
            return None;
        }
        out.extend(lo..=hi);
    }
    Some(out)
}

/// dockerd's checks of the limits a request asks for, each on its own.
pub fn check(u: &api::ContainerUpdateBody, cpus: &HostCpus) -> Result<(), Refused> {
    let invalid = |m: &str| Err(Refused::Invalid(m.to_string()));
    let memory = u.memory.unwrap_or(0);
    let swap = u.memory_swap.unwrap_or(0);
    if memory != 0 && memory < MIN_MEMORY {
        return invalid("Minimum memory limit allowed is 6MB");
    }
    if memory > 0 && swap > 0 && swap < memory {
        return invalid("Minimum memoryswap limit should be larger than memory limit, see usage");
    }
    let reservation = u.memory_reservation.unwrap_or(0);
    if reservation > 0 && reservation < MIN_MEMORY {
        return invalid("Minimum memory reservation allowed is 6MB");
    }
    if memory > 0 && reservation > 0 && memory < reservation {
        return invalid(
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        );
    }
    let nano = u.nano_cpus.unwrap_or(0);
    let period = u.cpu_period.unwrap_or(0);
    let quota = u.cpu_quota.unwrap_or(0);
    if nano > 0 && period > 0 {
        return invalid("Conflicting options: Nano CPUs and CPU Period cannot both be set");
    }
    if nano > 0 && quota > 0 {
        return invalid("Conflicting options: Nano CPUs and CPU Quota cannot both be set");
    }
    let max_nano = cpus.count as i64 * 1_000_000_000;
    if nano < 0 || nano > max_nano {
        return Err(Refused::Invalid(format!(
            "Range of CPUs is from 0.01 to {n}.00, as there are only {n} CPUs available",
            n = cpus.count
        )));
    }
    if period != 0 && !(1000..=1_000_000).contains(&period) {
        return invalid(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        );
    }
    if quota > 0 && quota < 1000 {
        return invalid("CPU cfs quota can not be less than 1ms (i.e. 1000)");
    }
    if let Some(set) = u.cpuset_cpus.as_deref().filter(|s| !s.is_empty()) {
        let Some(want) = parse_cpuset(set) else {
            return Err(Refused::Invalid(format!(
                "Invalid value {set} for cpuset cpus: invalid format: {set}"
            )));
        };
        let have = parse_cpuset(&cpus.online).unwrap_or_default();
        if want.iter().any(|c| !have.contains(c)) {
            return Err(Refused::Invalid(format!(
                "Requested CPUs are not available - requested {set}, available: {}",
                cpus.online
            )));
        }
    }
    Ok(())
}

/// The limits a create request's `hc` asks for, as an update would ask
/// for them (for [`check`]).
pub fn asked(hc: &api::HostConfig) -> api::ContainerUpdateBody {
    api::ContainerUpdateBody {
        memory: hc.memory,
        memory_swap: hc.memory_swap,
        memory_reservation: hc.memory_reservation,
        nano_cpus: hc.nano_cpus,
        cpu_shares: hc.cpu_shares,
        cpu_period: hc.cpu_period,
        cpu_quota: hc.cpu_quota,
        cpuset_cpus: hc.cpuset_cpus.clone(),
        pids_limit: hc.pids_limit,
        ..Default::default()
    }
}

/// `hc` with update `u` merged in as dockerd merges it: a zero leaves a
/// limit as it is, `--pids-limit -1` lifts the limit; `--cpus` and
/// `--cpu-period/--cpu-quota` exclude each other across updates, and a
/// memory limit above the swap limit needs the swap limit with it.
pub fn merge(
    hc: &api::HostConfig,
    u: &api::ContainerUpdateBody,
) -> Result<api::HostConfig, Refused> {
    let conflict = |m: &str| Err(Refused::Conflict(format!("Conflicting options: {m}")));
    let set = |v: Option<i64>| v.filter(|v| *v != 0);
    let has = |v: Option<i64>| v.unwrap_or(0) > 0;
    if has(u.nano_cpus) && has(hc.cpu_period) {
        return conflict("Nano CPUs cannot be updated as CPU Period has already been set");
    }
    if has(u.nano_cpus) && has(hc.cpu_quota) {
        return conflict("Nano CPUs cannot be updated as CPU Quota has already been set");
    }
    if has(u.cpu_period) && has(hc.nano_cpus) {
        return conflict("CPU Period cannot be updated as NanoCPUs has already been set");
    }
    if has(u.cpu_quota) && has(hc.nano_cpus) {
        return conflict("CPU Quota cannot be updated as NanoCPUs has already been set");
    }
    let mut out = hc.clone();
    if let Some(m) = set(u.memory) {
        if m > hc.memory_swap.unwrap_or(0) && set(u.memory_swap).is_none() {
            return Err(Refused::Conflict(
                "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time"
                    .into(),
            ));
        }
        out.memory = Some(m);
    }
    if let Some(s) = set(u.memory_swap) {
        out.memory_swap = Some(s);
    }
    if let Some(r) = set(u.memory_reservation) {
        out.memory_reservation = Some(r);
    }
    if let Some(n) = set(u.nano_cpus) {
        out.nano_cpus = Some(n);
    }
    if let Some(s) = set(u.cpu_shares) {
        out.cpu_shares = Some(s);
    }
    if let Some(p) = set(u.cpu_period) {
        out.cpu_period = Some(p);
    }
    if let Some(q) = set(u.cpu_quota) {
        out.cpu_quota = Some(q);
    }
    if let Some(c) = u.cpuset_cpus.clone().filter(|c| !c.is_empty()) {
        out.cpuset_cpus = Some(c);
    }
    match u.pids_limit {
        Some(p) if p > 0 => out.pids_limit = Some(p),
        Some(p) if p < 0 => out.pids_limit = Some(0),
        _ => {}
    }
    Ok(out)
}

/// What dockerd records at create: a memory limit without a swap limit
/// gets as much swap again; a pids limit of 0 or less is none.
pub fn at_create(hc: &mut api::HostConfig) {
    if hc.pids_limit.is_some_and(|p| p <= 0) {
        hc.pids_limit = None;
    }
    let memory = hc.memory.unwrap_or(0);
    if memory > 0 && hc.memory_swap.unwrap_or(0) == 0 {
        hc.memory_swap = Some(memory * 2);
    }
}

/// The limits of `hc` as runc applies them (what a spec carries and what
/// a task update sends); an unset limit is left out, `pids` -1 lifts one.
pub fn linux(hc: &api::HostConfig) -> LinuxResources {
    let mut res = LinuxResources::default();
    let memory = hc.memory.unwrap_or(0);
    let reservation = hc.memory_reservation.unwrap_or(0);
    if memory > 0 || reservation > 0 {
        let mut m = LinuxMemory::default();
        if memory > 0 {
            m.set_limit(Some(memory));
            let swap = hc.memory_swap.unwrap_or(0);
            if swap != 0 {
                m.set_swap(Some(swap));
            }
        }
        if reservation > 0 {
            m.set_reservation(Some(reservation));
        }
        res.set_memory(Some(m));
    }
    let mut cpu = LinuxCpu::default();
    let mut any_cpu = false;
    let nano = hc.nano_cpus.unwrap_or(0);
    if nano > 0 {
        cpu.set_period(Some(NANO_CPU_PERIOD as u64));
        cpu.set_quota(Some(nano * NANO_CPU_PERIOD / 1_000_000_000));
        any_cpu = true;
    }
    if let Some(p) = hc.cpu_period.filter(|p| *p > 0) {
        cpu.set_period(Some(p as u64));
        any_cpu = true;
    }
    if let Some(q) = hc.cpu_quota.filter(|q| *q != 0) {
        cpu.set_quota(Some(q));
        any_cpu = true;
    }
    if let Some(s) = hc.cpu_shares.filter(|s| *s > 0) {
        cpu.set_shares(Some(s as u64));
        any_cpu = true;
    }
    if let Some(c) = hc.cpuset_cpus.clone().filter(|c| !c.is_empty()) {
        cpu.set_cpus(Some(c));
        any_cpu = true;
    }
    if any_cpu {
        res.set_cpu(Some(cpu));
    }
    match hc.pids_limit {
        Some(p) if p > 0 => {
            let mut pids = LinuxPids::default();
            pids.set_limit(p);
            res.set_pids(Some(pids));
        }
        Some(_) => {
            let mut pids = LinuxPids::default();
            pids.set_limit(-1);
            res.set_pids(Some(pids));
        }
        None => {}
    }
    res
}

/// Puts the limits of `hc` into `spec` (the builder's device rules and
/// other settings stay).
pub fn apply(spec: &mut oci_spec::runtime::Spec, hc: &api::HostConfig) {
    let want = linux(hc);
    let Some(linux) = spec.linux_mut() else {
        return;
    };
    let mut res = linux.resources().clone().unwrap_or_default();
    if want.memory().is_some() {
        res.set_memory(*want.memory());
    }
    if want.cpu().is_some() {
        res.set_cpu(want.cpu().clone());
    }
    if want.pids().is_some() {
        res.set_pids(*want.pids());
    }
    linux.set_resources(Some(res));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpus() -> HostCpus {
        HostCpus {
            count: 2,
            online: "0-1".into(),
        }
    }

    fn refused(u: api::ContainerUpdateBody) -> String {
        match check(&u, &cpus()) {
            Err(Refused::Invalid(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn dockerd_refuses_what_it_refuses() {
        let u = api::ContainerUpdateBody::default;
        assert_eq!(
            refused(api::ContainerUpdateBody {
                memory: Some(1 << 20),
                ..u()
            }),
            "Minimum memory limit allowed is 6MB"
        );
        assert_eq!(
            refused(api::ContainerUpdateBody {
                memory: Some(64 << 20),
                memory_swap: Some(32 << 20),
                ..u()
            }),
            "Minimum memoryswap limit should be larger than memory limit, see usage"
        );
        assert_eq!(
            refused(api::ContainerUpdateBody {
                memory_reservation: Some(1 << 20),
                ..u()
            }),
            "Minimum memory reservation allowed is 6MB"
        );
        assert_eq!(
            refused(api::ContainerUpdateBody {
                memory: Some(16 << 20),
                memory_reservation: Some(24 << 20),
                ..u()
            }),
            "Minimum memory limit can not be less than memory reservation limit, see usage"
        );
        assert_eq!(
            refused(api::ContainerUpdateBody {
                nano_cpus: Some(100_000_000_000),
                ..u()
            }),
            "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"
        );
        assert_eq!(
            refused(api::ContainerUpdateBody {
                cpuset_cpus: Some("7-9".into()),
                ..u()
            }),
            "Requested CPUs are not available - requested 7-9, available: 0-1"
        );
        assert_eq!(
            refused(api::ContainerUpdateBody {
                cpuset_cpus: Some("x".into()),
                ..u()
            }),
            "Invalid value x for cpuset cpus: invalid format: x"
        );
        assert!(check(
            &api::ContainerUpdateBody {
                memory: Some(64 << 20),
                memory_swap: Some(128 << 20),
                cpuset_cpus: Some("0,1".into()),
                ..u()
            },
            &cpus()
        )
        .is_ok());
    }

    #[test]
    fn merges_as_dockerd_merges() {
        let hc = api::HostConfig {
            nano_cpus: Some(500_000_000),
            memory: Some(64 << 20),
            memory_swap: Some(128 << 20),
            ..Default::default()
        };
        let u = api::ContainerUpdateBody::default;
        assert_eq!(
            merge(
                &hc,
                &api::ContainerUpdateBody {
                    cpu_period: Some(100_000),
                    ..u()
                }
            ),
            Err(Refused::Conflict(
                "Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set"
                    .into()
            ))
        );
        assert!(matches!(
            merge(&hc, &api::ContainerUpdateBody { memory: Some(256 << 20), ..u() }),
            Err(Refused::Conflict(m)) if m.starts_with("Memory limit should be smaller")
        ));
        let out = merge(
            &hc,
            &api::ContainerUpdateBody {
                memory: Some(32 << 20),
                pids_limit: Some(-1),
                ..u()
            },
        )
        .unwrap();
        assert_eq!(out.memory, Some(32 << 20));
        assert_eq!(out.memory_swap, Some(128 << 20));
        assert_eq!(out.nano_cpus, Some(500_000_000));
        assert_eq!(out.pids_limit, Some(0));
        let r = linux(&out);
        assert_eq!(r.cpu().as_ref().unwrap().quota(), Some(50_000));
        assert_eq!(r.pids().unwrap().limit(), -1);
        assert_eq!(r.memory().as_ref().unwrap().swap(), Some(128 << 20));
    }
}
