//! Scenario g: many replicas of one service over every node of the lab
//! until all run, with each task's timeline, so the next bottleneck of a
//! large convergence is visible (the density issue's cluster figure).
//!
//! The service is created through one manager's socket with a plain HTTP
//! client and its tasks are listed every [`POLL`] through the same socket,
//! as `docker service ps` asks for them; the first listing in which a task
//! shows a state is that state's time. Engines and containerds are read for
//! CPU before and after.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use anyhow::Context;

use crate::cluster::api::ApiClient;
use crate::cluster::image::TEST_IMAGE;
use crate::cluster::procs;
use crate::cluster::Node;

/// Time between two task listings.
const POLL: Duration = Duration::from_millis(250);

/// The task states timed, in the order a task goes through them: listed
/// (the task exists), on a node, container created (`ready`), started.
pub const STATES: [&str; 5] = ["listed", "assigned", "ready", "starting", "running"];

/// What one run measured.
#[derive(Debug, Default)]
pub struct Spread {
    /// Seconds from the create call until every replica ran.
    pub all_running: f64,
    /// Per state of [`STATES`]: (p50, p90) over the tasks, in seconds
    /// from the create call.
    pub timeline: Vec<(&'static str, (f64, f64))>,
    /// Running replicas per node hostname at the end.
    pub per_node: BTreeMap<String, usize>,
    /// CPU seconds the engines used, summed over nodes, during the run.
    pub engine_cpu: f64,
    /// CPU seconds the containerds used, summed over nodes.
    pub containerd_cpu: f64,
}

/// Creates `name` with `replicas` replicas of the test image through
/// `via`, waits (at most `limit`) until all run, and returns the figures.
/// The service is left for the caller to remove.
pub fn run(
    via: &Node,
    nodes: &[Arc<Node>],
    name: &str,
    replicas: u32,
    limit: Duration,
) -> anyhow::Result<Spread> {
    let mut api = ApiClient::new(&via.socket())?;
    let cpu = |pid: Option<u32>| pid.and_then(procs::cpu_ticks).unwrap_or(0);
    let engines0: u64 = nodes.iter().map(|n| cpu(n.pid_of_engine())).sum();
    let ctrd0: u64 = nodes.iter().map(|n| cpu(n.pid_of_containerd())).sum();
    let spec = serde_json::json!({
        "Name": name,
        "TaskTemplate": {
            "ContainerSpec": {"Image": TEST_IMAGE, "Args": ["httpd", "-f", "-p", "80"]},
            "RestartPolicy": {"Condition": "any", "Delay": 1_000_000_000u64},
        },
        "Mode": {"Replicated": {"Replicas": replicas}},
    });
    let t0 = Instant::now();
    let created = api.request(
        "POST",
        "/services/create",
        Some(&spec.to_string()),
        Duration::from_secs(30),
    )?;
    anyhow::ensure!(
        created.status == 201,
        "create answered {}: {}",
        created.status,
        created.body
    );
    // {"service":{"NAME":true}}, as the CLI encodes it.
    let filter = format!("%7B%22service%22%3A%7B%22{name}%22%3Atrue%7D%7D");
    let mut first: HashMap<String, BTreeMap<&'static str, f64>> = HashMap::new();
    let mut per_node = BTreeMap::new();
    loop {
        let at = t0.elapsed().as_secs_f64();
        let reply = api.request(
            "GET",
            &format!("/tasks?filters={filter}"),
            None,
            Duration::from_secs(30),
        )?;
        anyhow::ensure!(
            reply.status == 200,
            "tasks answered {} at {at:.1} s: {}",
            reply.status,
            reply.body.trim()
        );
        let tasks: Vec<serde_json::Value> =
            serde_json::from_str(&reply.body).context("decode the task list")?;
        let mut running = 0usize;
        per_node.clear();
        for t in &tasks {
            if t["DesiredState"] != "running" {
                continue;
            }
            let id = t["ID"].as_str().unwrap_or_default().to_string();
            let state = t["Status"]["State"].as_str().unwrap_or_default();
            let seen = first.entry(id).or_default();
            seen.entry("listed").or_insert(at);
            // A state first shown late still means every earlier one passed.
            let rank = rank(state);
            for s in &STATES[1..] {
                if rank >= self::rank(s) {
                    seen.entry(s).or_insert(at);
                }
            }
            if state == "running" {
                running += 1;
                let node = t["NodeID"].as_str().unwrap_or_default().to_string();
                *per_node.entry(node).or_insert(0) += 1;
            }
        }
        if running == replicas as usize {
            break;
        }
        anyhow::ensure!(
            t0.elapsed() < limit,
            "{running} of {replicas} running after {limit:?}"
        );
        std::thread::sleep(POLL);
    }
    let all_running = t0.elapsed().as_secs_f64();
    let engines1: u64 = nodes.iter().map(|n| cpu(n.pid_of_engine())).sum();
    let ctrd1: u64 = nodes.iter().map(|n| cpu(n.pid_of_containerd())).sum();
    let tick = procs::USER_HZ as f64;
    let mut timeline = Vec::new();
    for s in STATES {
        let mut v: Vec<f64> = first.values().filter_map(|m| m.get(s).copied()).collect();
        v.sort_by(f64::total_cmp);
        timeline.push((
            s,
            (
                super::scenarios::percentile(&v, 50.0),
                super::scenarios::percentile(&v, 90.0),
            ),
        ));
    }
    let hostnames = node_names(&mut api)?;
    let per_node = per_node
        .into_iter()
        .map(|(id, c)| (hostnames.get(&id).cloned().unwrap_or(id), c))
        .collect();
    Ok(Spread {
        all_running,
        timeline,
        per_node,
        engine_cpu: engines1.saturating_sub(engines0) as f64 / tick,
        containerd_cpu: ctrd1.saturating_sub(ctrd0) as f64 / tick,
    })
}

/// Where `state` comes in a task's life (swarmkit's order); unknown and
/// ended states come first, so they mark nothing.
fn rank(state: &str) -> usize {
    const ORDER: [&str; 8] = [
        "new",
        "pending",
        "assigned",
        "accepted",
        "preparing",
        "ready",
        "starting",
        "running",
    ];
    ORDER.iter().position(|s| *s == state).map_or(0, |i| i + 1)
}

/// Node ID -> hostname, from `GET /nodes`.
fn node_names(api: &mut ApiClient) -> anyhow::Result<HashMap<String, String>> {
    let reply = api.request("GET", "/nodes", None, Duration::from_secs(30))?;
    let nodes: Vec<serde_json::Value> = serde_json::from_str(&reply.body)?;
    Ok(nodes
        .iter()
        .map(|n| {
            (
                n["ID"].as_str().unwrap_or_default().to_string(),
                n["Description"]["Hostname"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect())
}
