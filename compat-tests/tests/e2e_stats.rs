//! End-to-end: `docker stats` and `docker top` on a task container, against
//! shoald on a private containerd, driven by the stock CLI (and the API
//! through curl where the CLI hides a field).
//!
//! What a user checks: `docker stats --no-stream` shows the task's memory
//! against the `--limit-memory` it was given, its PIDs and network I/O;
//! the API's readings carry the previous one as dockerd's do; `docker top`
//! lists the task's process, and refuses a stopped container with
//! dockerd's text.
//!
//! Skips (with the reason) when not root or when containerd is missing,
//! unless SHOAL_REQUIRE_CONTAINERD is set.

mod common;

use std::io::BufRead;
use std::io::BufReader;
use std::process::Command;
use std::process::Stdio;

use common::wait_for;
use common::Daemon;
use serde_json::Value;

const IMAGE: &str = "shoal-test/busybox:latest";

/// A service of one task running busybox httpd with a 64 MiB limit on an
/// overlay network (so the task's namespace has an `eth0`); returns its
/// container's full ID once running.
fn httpd_task(d: &Daemon) -> String {
    d.ok(&["network", "create", "-d", "overlay", "statsnet"]);
    d.ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "st",
        "--network",
        "statsnet",
        "--limit-memory",
        "64M",
        "--stop-grace-period",
        "1s",
        IMAGE,
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    let filter = "label=com.docker.swarm.service.name=st";
    wait_for(60, "a running container of st", || {
        let ids: Vec<String> = d
            .ok(&["container", "ls", "-q", "--no-trunc", "--filter", filter])
            .lines()
            .map(str::to_string)
            .collect();
        (ids.len() == 1).then(|| ids[0].clone())
    })
}

fn stats_json(d: &Daemon, id: &str, query: &str) -> Value {
    let (status, body) = d.curl(
        "GET",
        &format!("/v1.45/containers/{id}/stats?{query}"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// "1.5MiB" as bytes, for comparing the CLI's figures.
fn bytes(text: &str) -> f64 {
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: f64 = n.parse().unwrap_or(-1.0);
    let k = match unit {
        "B" => 1.0,
        "KiB" | "kB" => 1024.0,
        "MiB" | "MB" => 1024.0 * 1024.0,
        "GiB" | "GB" => 1024.0 * 1024.0 * 1024.0,
        _ => panic!("unit of {text:?}"),
    };
    n * k
}

#[test]
fn stats_and_top_of_a_task_container() {
    let Some((_ctrd, d)) = common::swarm_with_test_image() else {
        return;
    };
    let id = httpd_task(&d);

    // The CLI's table: memory against the service's limit, the task's
    // process counted, network I/O from its namespace.
    let out = d.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}}|{{.MemUsage}}|{{.PIDs}}|{{.CPUPerc}}|{{.NetIO}}|{{.BlockIO}}",
        &id,
    ]);
    let f: Vec<&str> = out.trim().split('|').collect();
    assert_eq!(f.len(), 6, "{out}");
    assert!(f[0].starts_with("st.1."), "{out}");
    let (used, limit) = f[1].split_once(" / ").unwrap();
    assert!(bytes(used) > 0.0, "memory use shown as {used}");
    assert_eq!(limit.trim(), "64MiB", "{out}");
    assert!(f[2].parse::<u32>().unwrap() >= 1, "{out}");
    assert!(f[3].ends_with('%'), "{out}");
    assert!(f[4].contains(" / "), "{out}");

    // The API: dockerd's fields, the previous reading as precpu/preread.
    let s = stats_json(&d, &id, "stream=false");
    assert_eq!(s["id"], id.as_str());
    assert_eq!(s["memory_stats"]["limit"], 64 * 1024 * 1024);
    assert!(s["memory_stats"]["usage"].as_u64().unwrap() > 0, "{s}");
    let mstats = &s["memory_stats"]["stats"];
    assert!(
        mstats.get("total_inactive_file").is_some() || mstats.get("inactive_file").is_some(),
        "the page cache the CLI subtracts: {mstats}"
    );
    assert!(s["cpu_stats"]["online_cpus"].as_u64().unwrap() >= 1);
    assert!(s["cpu_stats"]["cpu_usage"]["total_usage"].as_u64().unwrap() > 0);
    assert!(
        s["precpu_stats"]["system_cpu_usage"].as_u64().unwrap() > 0,
        "{s}"
    );
    assert_ne!(s["preread"], "0001-01-01T00:00:00Z");
    assert!(s["pids_stats"]["current"].as_u64().unwrap() >= 1);
    assert!(s["networks"]["eth0"]["tx_packets"].is_u64(), "{s}");
    assert!(s["networks"].get("lo").is_none());
    assert!(s["blkio_stats"]
        .as_object()
        .unwrap()
        .contains_key("io_service_bytes_recursive"));
    let one = stats_json(&d, &id, "stream=false&one-shot=true");
    assert_eq!(one["preread"], "0001-01-01T00:00:00Z");
    assert!(one["memory_stats"]["usage"].as_u64().unwrap() > 0);

    // Streaming: each object carries the one before.
    let [first, second] = stream_two(&d, &id);
    assert_eq!(first["preread"], "0001-01-01T00:00:00Z");
    assert_eq!(second["preread"], first["read"]);
    assert_eq!(
        second["precpu_stats"]["cpu_usage"],
        first["cpu_stats"]["cpu_usage"]
    );

    // docker top: the host's ps table over the task's processes.
    let top = d.ok(&["top", &id]);
    let mut rows = top.lines();
    let header = rows.next().unwrap();
    assert!(header.contains("PID") && header.contains("CMD"), "{top}");
    let procs: Vec<&str> = rows.collect();
    assert_eq!(procs.len(), 1, "{top}");
    assert!(procs[0].contains("httpd -f -p 80"), "{top}");
    let top = d.ok(&["top", &id, "-o", "pid,comm"]);
    assert_eq!(
        top.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .collect::<Vec<_>>()[1..]
            .iter()
            .map(|r| r[1])
            .collect::<Vec<_>>(),
        ["httpd"],
        "{top}"
    );

    // A stopped container: top refuses, stats reads zeros.
    d.ok(&["kill", &id]);
    wait_for(30, "the killed container to stop", || {
        let st = d.ok(&["container", "inspect", "--format", "{{.State.Status}}", &id]);
        (st.trim() == "exited").then_some(())
    });
    let err = d.fail(&["top", &id]);
    assert!(
        err.contains(&format!("Container {id} is not running")),
        "{err}"
    );
    let zero = stats_json(&d, &id, "stream=false");
    assert_eq!(zero["read"], "0001-01-01T00:00:00Z");
    assert_eq!(zero["memory_stats"], serde_json::json!({}));
    // A stream of a stopped container goes on, with zeros.
    for frame in stream_two(&d, &id) {
        assert_eq!(frame["read"], "0001-01-01T00:00:00Z");
    }
}

/// The first two objects of a stats stream (the connection is then
/// closed; curl bounds the whole call).
fn stream_two(d: &Daemon, id: &str) -> [Value; 2] {
    let mut curl = Command::new("curl")
        .args(["-sN", "--max-time", "30", "--unix-socket"])
        .arg(d.socket())
        .arg(format!("http://localhost/v1.45/containers/{id}/stats"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(curl.stdout.take().unwrap()).lines();
    let mut next = || -> Value {
        let line = lines.next().expect("a stats object").unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    };
    let frames = [next(), next()];
    let _ = curl.kill();
    let _ = curl.wait();
    frames
}
