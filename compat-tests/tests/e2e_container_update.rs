//! End-to-end: `docker update` of a standalone container's limits
//! (`--memory`, `--memory-swap`, `--cpus`, `--cpu-shares`,
//! `--cpu-period/--cpu-quota`, `--pids-limit`, `--cpuset-cpus`), driven by
//! the stock CLI against shoald on a private containerd: dockerd's refusals
//! with its texts, the new limits in the running container's cgroup at once
//! and in `docker inspect`, kept across a restart of the container and of
//! shoald; a created container gets them at its start.
//!
//! Skips (with the reason) when not root or when containerd is missing,
//! unless SHOAL_REQUIRE_CONTAINERD is set.

mod common;

use common::node_with_test_image as node;
use common::Daemon;

const IMAGE: &str = "shoal-test/busybox:latest";

/// The limits a container's cgroup holds, read inside it, in cgroup v1
/// terms whatever the host runs (v2's `memory.swap.max` is swap beyond
/// memory: added back).
#[derive(Debug, PartialEq, Eq)]
struct Limits {
    memory: String,
    memory_and_swap: String,
    cpu_quota: String,
    cpu_period: String,
    pids: String,
    cpuset: String,
}

fn v2() -> bool {
    std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

fn cat(d: &Daemon, c: &str, file: &str) -> String {
    d.ok(&["exec", c, "cat", file]).trim().to_string()
}

fn limits(d: &Daemon, c: &str) -> Limits {
    if v2() {
        let memory = cat(d, c, "/sys/fs/cgroup/memory.max");
        let swap = cat(d, c, "/sys/fs/cgroup/memory.swap.max");
        let memory_and_swap = match (memory.parse::<u64>(), swap.parse::<u64>()) {
            (Ok(m), Ok(s)) => (m + s).to_string(),
            _ => "max".into(),
        };
        let cpu = cat(d, c, "/sys/fs/cgroup/cpu.max");
        let (quota, period) = cpu.split_once(' ').unwrap_or((&cpu, ""));
        Limits {
            memory,
            memory_and_swap,
            cpu_quota: if quota == "max" {
                "-1".into()
            } else {
                quota.into()
            },
            cpu_period: period.into(),
            pids: cat(d, c, "/sys/fs/cgroup/pids.max"),
            cpuset: cat(d, c, "/sys/fs/cgroup/cpuset.cpus"),
        }
    } else {
        Limits {
            memory: cat(d, c, "/sys/fs/cgroup/memory/memory.limit_in_bytes"),
            memory_and_swap: cat(d, c, "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"),
            cpu_quota: cat(d, c, "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
            cpu_period: cat(d, c, "/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
            pids: cat(d, c, "/sys/fs/cgroup/pids/pids.max"),
            cpuset: cat(d, c, "/sys/fs/cgroup/cpuset/cpuset.cpus"),
        }
    }
}

fn host_config(d: &Daemon, c: &str) -> serde_json::Value {
    let out = d.ok(&["inspect", "--format", "{{json .HostConfig}}", c]);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"))
}

/// The limits fields of `docker inspect`'s `HostConfig`.
fn shown(d: &Daemon, c: &str) -> Vec<(String, serde_json::Value)> {
    let hc = host_config(d, c);
    [
        "Memory",
        "MemorySwap",
        "NanoCpus",
        "CpuShares",
        "CpuPeriod",
        "CpuQuota",
        "CpusetCpus",
        "PidsLimit",
    ]
    .iter()
    .map(|k| (k.to_string(), hc[k].clone()))
    .collect::<std::collections::BTreeMap<_, _>>()
    .into_iter()
    .collect()
}

fn fields(v: serde_json::Value) -> Vec<(String, serde_json::Value)> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[test]
fn update_changes_limits_live_and_keeps_them() {
    let Some((_ctrd, mut d)) = node() else {
        return;
    };
    let id = d.ok(&["run", "-d", "--name", "u1", IMAGE, "sleep", "600"]);
    let id = id.trim().to_string();

    // dockerd's refusals, nothing changed.
    let refused = |args: &[&str], want: &str| {
        let mut all = vec!["update"];
        all.extend_from_slice(args);
        all.push("u1");
        let err = d.fail(&all);
        assert!(err.contains(want), "{args:?}: {err}");
    };
    refused(&["--memory", "1m"], "Minimum memory limit allowed is 6MB");
    refused(
        &["--memory", "64m", "--memory-swap", "32m"],
        "Minimum memoryswap limit should be larger than memory limit, see usage",
    );
    refused(
        &["--memory", "64m"],
        &format!("Cannot update container {id}: Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time"),
    );
    refused(
        &["--cpus", "0.5", "--cpu-quota", "50000"],
        "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
    );
    refused(
        &["--cpu-period", "500"],
        "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
    );
    refused(
        &["--cpu-quota", "500"],
        "CPU cfs quota can not be less than 1ms (i.e. 1000)",
    );
    refused(
        &["--cpuset-cpus", "x"],
        "Invalid value x for cpuset cpus: invalid format: x",
    );
    refused(&["--cpus", "100000"], "Range of CPUs is from 0.01 to ");
    let untouched = fields(serde_json::json!({
        "Memory": 0, "MemorySwap": 0, "NanoCpus": 0, "CpuShares": 0, "CpuPeriod": 0,
        "CpuQuota": 0, "CpusetCpus": "", "PidsLimit": null,
    }));
    assert_eq!(shown(&d, "u1"), untouched);

    d.ok(&[
        "update",
        "--memory",
        "64m",
        "--memory-swap",
        "128m",
        "--cpus",
        "0.5",
        "--cpu-shares",
        "512",
        "--pids-limit",
        "50",
        "--cpuset-cpus",
        "0",
        "u1",
    ]);
    let want_shown = fields(serde_json::json!({
        "Memory": 64 << 20, "MemorySwap": 128 << 20, "NanoCpus": 500_000_000, "CpuShares": 512,
        "CpuPeriod": 0, "CpuQuota": 0, "CpusetCpus": "0", "PidsLimit": 50,
    }));
    let want = Limits {
        memory: (64u64 << 20).to_string(),
        memory_and_swap: (128u64 << 20).to_string(),
        cpu_quota: "50000".into(),
        cpu_period: "100000".into(),
        pids: "50".into(),
        cpuset: "0".into(),
    };
    assert_eq!(shown(&d, "u1"), want_shown);
    assert_eq!(limits(&d, "u1"), want, "at once, in the running container");
    if !v2() {
        assert_eq!(cat(&d, "u1", "/sys/fs/cgroup/cpu/cpu.shares"), "512");
    }
    // --cpus set: the period and quota may not be.
    refused(
        &["--cpu-period", "100000"],
        &format!("Cannot update container {id}: Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set"),
    );

    // Kept across a restart of the container, and of shoald (the running
    // container is adopted; a start after that builds them from the
    // record).
    d.ok(&["restart", "-t", "0", "u1"]);
    assert_eq!(limits(&d, "u1"), want, "after docker restart");
    d.restart();
    assert_eq!(shown(&d, "u1"), want_shown, "after shoald restarts");
    d.ok(&["restart", "-t", "0", "u1"]);
    assert_eq!(limits(&d, "u1"), want, "restarted under the new shoald");

    // A lower memory limit alone fits under the swap limit; -1 lifts the
    // pids limit (shown as 0, as dockerd shows it).
    d.ok(&["update", "--memory", "32m", "--pids-limit", "-1", "u1"]);
    let l = limits(&d, "u1");
    assert_eq!(l.memory, (32u64 << 20).to_string());
    assert_eq!(l.pids, "max");
    assert_eq!(host_config(&d, "u1")["PidsLimit"], 0);

    // A memory reservation: the soft limit, checked as dockerd checks it.
    for (args, want) in [
        (
            &["--memory-reservation", "1m"][..],
            "Minimum memory reservation allowed is 6MB",
        ),
        (
            &["--memory", "16m", "--memory-reservation", "24m"][..],
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        ),
    ] {
        let mut all = vec!["update"];
        all.extend_from_slice(args);
        all.push("u1");
        let err = d.fail(&all);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    d.ok(&["update", "--memory-reservation", "24m", "u1"]);
    assert_eq!(host_config(&d, "u1")["MemoryReservation"], 24 << 20);
    let soft = if v2() {
        cat(&d, "u1", "/sys/fs/cgroup/memory.low")
    } else {
        cat(&d, "u1", "/sys/fs/cgroup/memory/memory.soft_limit_in_bytes")
    };
    assert_eq!(soft, (24u64 << 20).to_string());

    // A created container takes its limits at its start.
    d.ok(&["create", "--name", "u2", IMAGE, "sleep", "600"]);
    d.ok(&[
        "update",
        "--memory",
        "32m",
        "--memory-swap",
        "64m",
        "--cpu-period",
        "50000",
        "--cpu-quota",
        "25000",
        "--pids-limit",
        "20",
        "u2",
    ]);
    d.ok(&["start", "u2"]);
    let l = limits(&d, "u2");
    assert_eq!(
        (
            l.memory.as_str(),
            l.cpu_quota.as_str(),
            l.cpu_period.as_str(),
            l.pids.as_str()
        ),
        ((32u64 << 20).to_string().as_str(), "25000", "50000", "20")
    );
    // A memory limit at create gets as much swap again, as under dockerd.
    d.ok(&[
        "run", "-d", "--name", "u3", "--memory", "64m", IMAGE, "sleep", "600",
    ]);
    assert_eq!(host_config(&d, "u3")["MemorySwap"], 128 << 20);
    d.ok(&["update", "--memory", "100m", "u3"]);
    assert_eq!(limits(&d, "u3").memory, (100u64 << 20).to_string());
    // The restart policy still updates alone.
    d.ok(&["update", "--restart", "on-failure:3", "u3"]);
    let hc = host_config(&d, "u3");
    assert_eq!(hc["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(hc["RestartPolicy"]["MaximumRetryCount"], 3);
    assert_eq!(hc["Memory"], 100 << 20);
    d.ok(&["rm", "-f", "u1", "u2", "u3"]);
}
