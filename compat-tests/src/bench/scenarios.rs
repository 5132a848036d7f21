//! The scenarios, each on the lab the repetition built. Every wait is
//! bounded; a scenario that fails returns why, and the repetition records
//! it and skips what needed it.

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use anyhow::Context;

use super::Figures;
use super::Options;
use crate::cluster::api::ApiClient;
use crate::cluster::image::TEST_IMAGE;
use crate::cluster::procs::try_wait_for;
use crate::cluster::Engine;
use crate::cluster::Lab;
use crate::cluster::Node;

/// How many nodes a repetition's lab has: 3 managers and 2 workers.
const NODES: usize = 5;

/// The lab of one repetition and where its figures go.
struct Rep<'a> {
    engine: Engine,
    rep: u32,
    nodes: Vec<Arc<Node>>,
    figs: &'a mut Figures,
}

impl Rep<'_> {
    fn node(&self, n: usize) -> Arc<Node> {
        self.nodes[n - 1].clone()
    }

    fn add(&mut self, figure: &str, value: f64) {
        eprintln!("   {figure} = {value:.3}");
        self.figs.add(figure, self.engine, value);
    }

    /// Runs one scenario; on failure records why and returns false.
    fn step(&mut self, name: &str, f: impl FnOnce(&mut Self) -> anyhow::Result<()>) -> bool {
        eprintln!("-- {} rep {}: {name}", self.engine, self.rep);
        match f(self) {
            Ok(()) => true,
            Err(e) => {
                let why = format!("{e:#}");
                eprintln!("   FAILED: {why}");
                self.figs.fail(self.engine, self.rep, name, why);
                false
            }
        }
    }

    fn skip(&mut self, names: &[&str], because: &str) {
        for n in names {
            self.figs
                .fail(self.engine, self.rep, n, format!("skipped: {because}"));
        }
    }
}

/// One repetition: a fresh lab of [`NODES`] nodes and every scenario in
/// order.
pub fn repetition(engine: Engine, rep: u32, opts: &Options, figs: &mut Figures) {
    let lab = match start_lab(engine) {
        Ok(lab) => lab,
        Err(e) => {
            figs.fail(engine, rep, "lab", format!("{e:#}"));
            return;
        }
    };
    let mut r = Rep {
        engine,
        rep,
        nodes: lab.nodes(),
        figs,
    };
    if !r.step("a1 init + 2 managers join", join_managers) {
        r.skip(&["d", "e", "a2", "f", "c", "b"], "needs the managers of a1");
        return;
    }
    r.step("d replicated writes", |r| durable_writes(r, opts.writes));
    r.step("e 30 replicas", replicas_30);
    if !r.step("a2 2 workers join", join_workers) {
        r.skip(&["f", "c"], "needs the workers of a2");
    } else {
        r.step("f idle memory", idle_memory);
        if opts.tasks > 0 {
            r.step("g many replicas", |r| many_replicas(r, opts.tasks));
        }
        r.step("c dead worker", dead_worker);
    }
    r.step("b leader failover", leader_failover);
    drop(lab);
}

fn start_lab(engine: Engine) -> anyhow::Result<Lab> {
    let lab = Lab::new(engine)?;
    for _ in 0..NODES {
        let n = lab.add_node()?;
        n.load_test_image()
            .with_context(|| format!("load the test image on node{}", n.n()))?;
    }
    Ok(lab)
}

fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}

/// Polls `f` (every 100 ms) for at most `limit`, or fails naming `what`.
fn poll<T>(limit: Duration, what: &str, f: impl FnMut() -> Option<T>) -> anyhow::Result<T> {
    try_wait_for(limit, f).with_context(|| format!("{what}: not within {limit:?}"))
}

/// `docker swarm join` of `node` with `token` to node1, timed.
fn join(r: &Rep<'_>, n: usize, token: &str) -> anyhow::Result<f64> {
    let node = r.node(n);
    let leader = format!("{}:2377", r.node(1).addr());
    let t = Instant::now();
    let run = node.docker_within(
        Duration::from_secs(90),
        &[
            "swarm",
            "join",
            "--advertise-addr",
            &node.addr(),
            "--token",
            token,
            &leader,
        ],
        None,
    );
    let took = secs(t);
    run.into_result(&format!("node{n}: docker swarm join"))?;
    Ok(took)
}

fn join_managers(r: &mut Rep<'_>) -> anyhow::Result<()> {
    let n1 = r.node(1);
    n1.try_ok(&["swarm", "init", "--advertise-addr", &n1.addr()])?;
    let token = n1.try_ok(&["swarm", "join-token", "-q", "manager"])?;
    let mut total = 0.0;
    for n in [2, 3] {
        let t = join(r, n, token.trim())?;
        r.add("a. manager join, each (s)", t);
        total += t;
    }
    r.add("a. two managers join (s)", total);
    Ok(())
}

fn join_workers(r: &mut Rep<'_>) -> anyhow::Result<()> {
    let token = r.node(1).try_ok(&["swarm", "join-token", "-q", "worker"])?;
    let mut total = 0.0;
    let t0 = Instant::now();
    for n in [4, 5] {
        let t = join(r, n, token.trim())?;
        r.add("a. worker join, each (s)", t);
        total += t;
    }
    r.add("a. two workers join (s)", total);
    // The figure CLUSTER-NOTES shows: the view from another manager.
    let n2 = r.node(2);
    let mut last = String::new();
    let seen = try_wait_for(Duration::from_secs(60), || {
        let out = n2.docker(&["node", "ls", "--format", "{{.Status}} {{.ManagerStatus}}"]);
        last = format!("{}{}", out.stdout, out.stderr);
        let lines: Vec<&str> = out.stdout.lines().collect();
        let ready = lines.iter().filter(|l| l.starts_with("Ready")).count();
        let leader = lines.iter().filter(|l| l.ends_with("Leader")).count();
        let reachable = lines.iter().filter(|l| l.ends_with("Reachable")).count();
        (ready == NODES && leader == 1 && reachable == 2).then_some(())
    });
    if seen.is_none() {
        anyhow::bail!(
            "node ls on node2 never showed 5 Ready, 1 Leader, 2 Reachable; last:\n{last}"
        );
    }
    r.add(
        "a. all joined -> 5 Ready/1 Leader/2 Reachable on node2 (s)",
        secs(t0),
    );
    Ok(())
}

/// Sequential `POST /secrets/create` through the leader's socket.
fn durable_writes(r: &mut Rep<'_>, writes: u32) -> anyhow::Result<()> {
    let mut api = ApiClient::new(&r.node(1).socket())?;
    let limit = Duration::from_secs(10);
    let mut lat = Vec::with_capacity(writes as usize);
    let warmup = 10;
    let t0 = Instant::now();
    let mut started = t0;
    for i in 0..writes + warmup {
        if i == warmup {
            started = Instant::now();
        }
        let body = format!(r#"{{"Name":"d-{i}","Data":"eA=="}}"#);
        let t = Instant::now();
        let reply = api.request("POST", "/secrets/create", Some(&body), limit)?;
        anyhow::ensure!(
            reply.status == 201,
            "write {i}: {} {}",
            reply.status,
            reply.body.trim()
        );
        if i >= warmup {
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let total = secs(started);
    lat.sort_by(f64::total_cmp);
    r.add(
        "d. secret writes/s via leader (3 managers)",
        writes as f64 / total,
    );
    r.add("d. write latency p50 (ms)", percentile(&lat, 50.0));
    r.add("d. write latency p99 (ms)", percentile(&lat, 99.0));
    Ok(())
}

/// The `p`th percentile of sorted `v` (nearest rank).
pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// `docker service create` of an httpd service; the caller waits.
fn create_service(node: &Node, name: &str, extra: &[&str]) -> anyhow::Result<()> {
    let mut args = vec![
        "service",
        "create",
        "--detach",
        "--no-resolve-image",
        "--name",
        name,
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[TEST_IMAGE, "httpd", "-f", "-p", "80"]);
    node.try_ok(&args).map(drop)
}

/// Removes a service and waits until no node runs a container of it.
fn remove_service(r: &Rep<'_>, name: &str, nodes: &[usize]) -> anyhow::Result<()> {
    remove_service_within(r, name, nodes, Duration::from_secs(120))
}

/// [`remove_service`] with its own time limit.
fn remove_service_within(
    r: &Rep<'_>,
    name: &str,
    nodes: &[usize],
    limit: Duration,
) -> anyhow::Result<()> {
    r.node(1).try_ok(&["service", "rm", name])?;
    poll(limit, "the service's containers to go", || {
        nodes
            .iter()
            .all(|n| {
                let ps = r.node(*n).docker(&["ps", "-q"]);
                ps.success() && ps.stdout.trim().is_empty()
            })
            .then_some(())
    })
}

fn replicas_30(r: &mut Rep<'_>) -> anyhow::Result<()> {
    let n1 = r.node(1);
    let t0 = Instant::now();
    create_service(&n1, "many", &["--replicas", "30"])?;
    let mut last = String::new();
    let done = try_wait_for(Duration::from_secs(300), || {
        let ls = n1.docker(&[
            "service",
            "ls",
            "--filter",
            "name=many",
            "--format",
            "{{.Replicas}}",
        ]);
        last = ls.stdout.trim().to_string();
        (last == "30/30").then_some(())
    });
    if done.is_none() {
        anyhow::bail!("30 replicas not running within 300s (last: {last})");
    }
    let took = secs(t0);
    // The engine's count is checked against the containers the nodes run.
    let containers: usize = (1..=3)
        .map(|n| r.node(n).docker(&["ps", "-q"]).stdout.lines().count())
        .sum();
    anyhow::ensure!(
        containers == 30,
        "30/30 shown but {containers} containers run"
    );
    r.add("e. service create --replicas 30 -> 30 running (s)", took);
    remove_service(r, "many", &[1, 2, 3])
}

/// Scenario g: `tasks` replicas over every node, timed per task.
fn many_replicas(r: &mut Rep<'_>, tasks: u32) -> anyhow::Result<()> {
    let limit = Duration::from_secs(60 + u64::from(tasks));
    let got = match super::spread::run(&r.node(1), &r.nodes, "spread", tasks, limit) {
        Ok(got) => got,
        Err(e) => {
            for n in 1..=3 {
                eprintln!(
                    "   node{n}'s engine log, last lines:\n{}",
                    r.node(n).logs_tail()
                );
            }
            return Err(e);
        }
    };
    let nodes = r.nodes.len();
    r.add(
        &format!("g. {tasks} replicas over {nodes} nodes -> all running (s)"),
        got.all_running,
    );
    for (state, (p50, p90)) in &got.timeline {
        r.add(&format!("g. per task, first seen {state}: p50 (s)"), *p50);
        r.add(&format!("g. per task, first seen {state}: p90 (s)"), *p90);
    }
    r.add("g. engine CPU, all nodes (s)", got.engine_cpu);
    r.add("g. containerd CPU, all nodes (s)", got.containerd_cpu);
    eprintln!("   running per node: {:?}", got.per_node);
    let all: Vec<usize> = (1..=nodes).collect();
    remove_service_within(r, "spread", &all, limit)
}

fn idle_memory(r: &mut Rep<'_>) -> anyhow::Result<()> {
    // Idle: nothing scheduled; let the joins' work settle first.
    std::thread::sleep(Duration::from_secs(5));
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    for (n, what) in [(1, "manager (leader)"), (4, "worker")] {
        let node = r.node(n);
        let engine = node.engine_rss().context("engine RSS")?;
        let ctrd = node.containerd_rss().context("containerd RSS")?;
        r.add(&format!("f. idle {what}: engine RSS (MiB)"), mib(engine));
        r.add(
            &format!("f. idle {what}: engine + containerd RSS (MiB)"),
            mib(engine + ctrd),
        );
    }
    Ok(())
}

/// Running tasks of `service` per node hostname, as `node` sees them.
fn running_on(node: &Node, service: &str) -> Option<Vec<String>> {
    let ps = node.docker_within(
        Duration::from_secs(10),
        &[
            "service",
            "ps",
            service,
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Node}} {{.CurrentState}}",
        ],
        None,
    );
    if !ps.success() {
        return None;
    }
    Some(
        ps.stdout
            .lines()
            .filter(|l| l.split_whitespace().nth(1) == Some("Running"))
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect(),
    )
}

/// Waits until `want` tasks of `service` run, none on `dead` hosts.
fn wait_running_without(
    node: &Node,
    service: &str,
    want: usize,
    dead: &[&str],
    limit: Duration,
) -> anyhow::Result<Vec<String>> {
    let mut last = Vec::new();
    let got = try_wait_for(limit, || {
        let on = running_on(node, service)?;
        last = on.clone();
        let elsewhere = on.iter().filter(|h| !dead.contains(&h.as_str())).count();
        (elsewhere == want && on.len() == want).then_some(on)
    });
    got.with_context(|| {
        format!("{want} tasks of {service} off {dead:?} within {limit:?}; last: {last:?}")
    })
}

fn dead_worker(r: &mut Rep<'_>) -> anyhow::Result<()> {
    let n1 = r.node(1);
    let want = NODES;
    create_service(&n1, "spread", &["--replicas", &want.to_string()])?;
    let on = wait_running_without(&n1, "spread", want, &[], Duration::from_secs(120))?;
    for n in [4, 5] {
        let host = r.node(n).hostname();
        anyhow::ensure!(on.contains(&host), "no task on {host}: {on:?}");
    }
    let t = Instant::now();
    r.node(4).kill_node();
    wait_running_without(&n1, "spread", want, &["node4"], Duration::from_secs(120))?;
    r.add(
        "c. worker killed whole -> its tasks running elsewhere (s)",
        secs(t),
    );
    let t = Instant::now();
    r.node(5).link_down()?;
    let outcome = wait_running_without(
        &n1,
        "spread",
        want,
        &["node4", "node5"],
        Duration::from_secs(120),
    );
    r.node(5).link_up()?;
    outcome?;
    r.add(
        "c. worker link down -> its tasks running elsewhere (s)",
        secs(t),
    );
    let _ = n1.try_ok(&["service", "rm", "spread"]);
    Ok(())
}

/// The hostname of the leader as `node` sees it.
fn leader_of(node: &Node) -> anyhow::Result<String> {
    let ls = node.try_ok(&["node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}"])?;
    ls.lines()
        .find(|l| l.ends_with(" Leader"))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_string)
        .with_context(|| format!("no leader in:\n{ls}"))
}

/// One write of the failover stream.
#[derive(Debug, Clone)]
struct Write {
    name: String,
    sent: Instant,
    done: Instant,
    ok: bool,
}

fn leader_failover(r: &mut Rep<'_>) -> anyhow::Result<()> {
    let leader = leader_of(&r.node(1))?;
    let managers = [1usize, 2, 3];
    let lead_n = managers
        .into_iter()
        .find(|n| r.node(*n).hostname() == leader)
        .with_context(|| format!("the leader {leader} is not a manager of the lab"))?;
    let via_n = managers.into_iter().find(|n| *n != lead_n).unwrap_or(2);
    let via = r.node(via_n);
    let log: Arc<Mutex<Vec<Write>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (log, stop) = (log.clone(), stop.clone());
        let socket = via.socket();
        let tag = format!("b{}", r.rep);
        std::thread::spawn(move || write_stream(&socket, &tag, &log, &stop))
    };
    let acked = |log: &Arc<Mutex<Vec<Write>>>, after: Option<Instant>| {
        let log = log.lock().unwrap_or_else(|e| e.into_inner());
        log.iter()
            .filter(|w| w.ok && after.is_none_or(|t| w.sent >= t))
            .map(|w| w.done)
            .min()
    };
    let warm = poll(
        Duration::from_secs(30),
        "ten writes before the kill",
        || {
            let n = log
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .filter(|w| w.ok)
                .count();
            (n >= 10).then_some(())
        },
    );
    let outcome = warm.and_then(|()| {
        let t_kill = Instant::now();
        r.node(lead_n).kill_node();
        let first = poll(
            Duration::from_secs(120),
            "a write acknowledged after the kill",
            || acked(&log, Some(t_kill)),
        )?;
        Ok(first.duration_since(t_kill).as_secs_f64())
    });
    // A little more stream after the first success, then stop.
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let _ = writer.join();
    let failover = outcome?;
    r.add(
        "b. leader killed -> first write acknowledged via another manager (s)",
        failover,
    );
    let writes = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let missing = missing_writes(&via, &writes)?;
    r.add(
        "b. acknowledged writes missing afterwards (count)",
        missing as f64,
    );
    Ok(())
}

/// Starts a secret write every 100 ms through `socket` until `stop`
/// (bounded: 10 minutes), each on a connection of its own and without
/// waiting for the ones before it: a write stuck while the cluster has no
/// leader must not delay the next, or the failover time would be measured
/// in client time-outs. Records each outcome; returns when the last write
/// ended (each is bounded: 30 s).
fn write_stream(
    socket: &std::path::Path,
    tag: &str,
    log: &Arc<Mutex<Vec<Write>>>,
    stop: &AtomicBool,
) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let end = Instant::now() + Duration::from_secs(600);
        let mut i = 0u32;
        while !stop.load(Ordering::Relaxed) && Instant::now() < end {
            tick.tick().await;
            let name = format!("{tag}-{i}");
            i += 1;
            let (socket, log) = (socket.to_path_buf(), log.clone());
            tasks.spawn(async move {
                let body = format!(r#"{{"Name":"{name}","Data":"eA=="}}"#);
                let sent = Instant::now();
                let ok = crate::cluster::api::request_once(
                    &socket,
                    "POST",
                    "/secrets/create",
                    Some(&body),
                    Duration::from_secs(30),
                )
                .await
                .is_ok_and(|r| r.status == 201);
                let done = Instant::now();
                log.lock().unwrap_or_else(|e| e.into_inner()).push(Write {
                    name,
                    sent,
                    done,
                    ok,
                });
            });
            // Reap finished writes as we go, so the set stays small.
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
    });
}

/// How many acknowledged writes the cluster does not have (asked through
/// `via` once it answers again).
fn missing_writes(via: &Node, writes: &[Write]) -> anyhow::Result<usize> {
    let names = poll(
        Duration::from_secs(60),
        "the secret list after failover",
        || {
            let ls = via.docker(&["secret", "ls", "--format", "{{.Name}}"]);
            ls.success().then_some(ls.stdout)
        },
    )?;
    let have: std::collections::HashSet<&str> = names.lines().collect();
    Ok(writes
        .iter()
        .filter(|w| w.ok && !have.contains(w.name.as_str()))
        .count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
