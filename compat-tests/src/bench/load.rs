//! The load run behind `shoal-load-bench`: many services on a 3-manager lab
//! while clients poll and follow logs as the CLI does, every loop bounded.
//!
//! Steps, on one fresh lab per engine:
//! 1. `swarm init` on node1, node2 and node3 join as managers; the test
//!    image on each.
//! 2. A few talker services (one task each, a line a second) and log
//!    followers: `docker service logs -f` of the stock CLI, spread over
//!    the managers.
//! 3. Pollers, each a client of one manager doing what `docker service ps`
//!    does (the service, its tasks, the nodes) once a second.
//! 4. Creators make the services through the managers, each with its
//!    replicas kept pending by a constraint no node meets (the store, the
//!    orchestrator, the scheduler and the API carry them; no container
//!    runs, so the machine's 2 cores measure the control plane), then
//!    update a tenth of them.
//! 5. The clients go on for a while over the loaded cluster.
//! 6. Checks: every manager lists every service and task (nothing
//!    dropped), every follower saw a line in the last seconds (no hang),
//!    and the figures: request latency percentiles, errors, each
//!    manager's peak RSS and CPU time.

use std::io::BufRead;
use std::io::BufReader;
use std::process::Child;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;
use std::time::Instant;

use anyhow::Context;
use serde_json::json;
use serde_json::Value;

use crate::cluster::api::ApiClient;
use crate::cluster::image::TEST_IMAGE;
use crate::cluster::procs;
use crate::cluster::swarm;
use crate::cluster::Engine;
use crate::cluster::Lab;
use crate::cluster::Node;

/// What to load the cluster with.
#[derive(Debug, Clone)]
pub struct Options {
    /// Pending services to create.
    pub services: usize,
    /// Replicas of each.
    pub replicas: usize,
    /// Concurrent `service ps` pollers.
    pub pollers: usize,
    /// Concurrent `service logs -f` followers.
    pub followers: usize,
    /// Concurrent creators.
    pub creators: usize,
    /// How long the pollers and followers go on once everything is listed.
    pub hold: Duration,
}

/// What one engine's run measured.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Named figures in the order measured.
    pub figures: Vec<(String, f64)>,
    /// Checks that failed (empty: everything held).
    pub failures: Vec<String>,
}

impl Outcome {
    fn add(&mut self, name: &str, v: f64) {
        eprintln!("   {name} = {v:.3}");
        self.figures.push((name.to_string(), v));
    }
}

/// Talker services whose logs the followers follow.
const TALKERS: usize = 5;
/// How long any one request may take before it counts as dropped.
const REQUEST_LIMIT: Duration = Duration::from_secs(30);
/// The whole run's bound.
const RUN_LIMIT: Duration = Duration::from_secs(3600);

/// Runs the load on a fresh lab of `engine`.
pub fn run(engine: Engine, opts: &Options) -> anyhow::Result<Outcome> {
    let lab = Lab::new(engine)?;
    let nodes = swarm::form(&lab, 3, 0);
    for n in &nodes {
        n.load_test_image()
            .with_context(|| format!("load the test image on node{}", n.n()))?;
    }
    let mut out = Outcome::default();
    let stop = Arc::new(AtomicBool::new(false));

    for k in 0..TALKERS {
        let spec = json!({
            "Name": format!("talk{k}"),
            "TaskTemplate": {"ContainerSpec": {"Image": TEST_IMAGE,
                "Command": ["sh", "-c", "while true; do echo tick; sleep 1; done"]}},
            "Mode": {"Replicated": {"Replicas": 1}},
        });
        create(&mut ApiClient::new(&nodes[0].socket())?, &spec)?;
    }
    procs::try_wait_for(Duration::from_secs(120), || {
        let ls = nodes[0].docker(&["service", "ls", "--format", "{{.Replicas}}"]);
        let rows: Vec<&str> = ls.stdout.lines().collect();
        (rows.len() == TALKERS && rows.iter().all(|r| *r == "1/1")).then_some(())
    })
    .context("the talkers did not run within 120 s")?;

    let followers: Vec<Follower> = (0..opts.followers)
        .map(|i| Follower::start(&nodes[i % nodes.len()], &format!("talk{}", i % TALKERS)))
        .collect::<anyhow::Result<_>>()?;

    let names: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(
        (0..TALKERS).map(|k| format!("talk{k}")).collect(),
    ));
    let latencies = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let errors = Arc::new(AtomicUsize::new(0));
    let pollers: Vec<JoinHandle<()>> = (0..opts.pollers)
        .map(|i| {
            let socket = nodes[i % nodes.len()].socket();
            let (stop, names, lat, errs) = (
                stop.clone(),
                names.clone(),
                latencies.clone(),
                errors.clone(),
            );
            std::thread::spawn(move || poll(&socket, i, &stop, &names, &lat, &errs))
        })
        .collect();

    let cpu0: Vec<u64> = nodes.iter().map(|n| engine_cpu_ticks(n)).collect();
    let peak = Arc::new(Mutex::new(vec![0u64; nodes.len()]));
    let sampler = {
        let (nodes, peak, stop) = (nodes.clone(), peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for (i, n) in nodes.iter().enumerate() {
                    let rss = n.engine_rss().unwrap_or(0);
                    let mut p = peak.lock().unwrap();
                    p[i] = p[i].max(rss);
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };

    let t0 = Instant::now();
    let create_lat = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let creators: Vec<JoinHandle<anyhow::Result<()>>> = (0..opts.creators)
        .map(|c| {
            let socket = nodes[c % nodes.len()].socket();
            let (next, names, lat, errs) = (
                next.clone(),
                names.clone(),
                create_lat.clone(),
                errors.clone(),
            );
            let (total, replicas) = (opts.services, opts.replicas);
            std::thread::spawn(move || {
                let mut api = ApiClient::new(&socket)?;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total || t0.elapsed() > RUN_LIMIT {
                        return Ok(());
                    }
                    let name = format!("load{i}");
                    let spec = pending_spec(&name, replicas, "A=0");
                    let t = Instant::now();
                    match create(&mut api, &spec) {
                        Ok(()) => {
                            lat.lock().unwrap().push(t.elapsed());
                            names.lock().unwrap().push(name);
                        }
                        Err(e) => {
                            eprintln!("   create {name}: {e:#}");
                            errs.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for c in creators {
        c.join().expect("creator thread")?;
    }
    out.add("services created", opts.services as f64);
    out.add("creating them took (s)", t0.elapsed().as_secs_f64());

    // Updates: every tenth service gets a new environment.
    let mut api = ApiClient::new(&nodes[1].socket())?;
    let mut updated = 0;
    for i in (0..opts.services).step_by(10) {
        let name = format!("load{i}");
        let t = Instant::now();
        match update(&mut api, &name, opts.replicas) {
            Ok(()) => {
                create_lat.lock().unwrap().push(t.elapsed());
                updated += 1;
            }
            Err(e) => {
                eprintln!("   update {name}: {e:#}");
                errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    out.add("services updated", f64::from(updated));

    // Nothing dropped: every manager lists every service and task.
    let want_services = opts.services + TALKERS;
    let want_tasks = opts.services * opts.replicas + TALKERS;
    for n in &nodes {
        let mut api = ApiClient::new(&n.socket())?;
        let counted = procs::try_wait_for(Duration::from_secs(120), || {
            let s = count(&mut api, "/services")?;
            let t = count(
                &mut api,
                "/tasks?filters=%7B%22desired-state%22%3A%5B%22running%22%5D%7D",
            )?;
            (s == want_services && t >= want_tasks).then_some((s, t))
        });
        match counted {
            Some((s, t)) => eprintln!("   node{}: {s} services, {t} tasks", n.n()),
            None => out.failures.push(format!(
                "node{} does not list {want_services} services and {want_tasks} tasks within 120 s",
                n.n()
            )),
        }
    }

    // The steady state: everything created, the clients still at it.
    std::thread::sleep(opts.hold);
    stop.store(true, Ordering::Relaxed);
    for p in pollers {
        p.join().expect("poller thread");
    }
    sampler.join().expect("sampler thread");
    let elapsed = t0.elapsed().as_secs_f64();

    let mut lat = latencies.lock().unwrap().clone();
    out.add("poller requests", lat.len() as f64);
    out.add("poller p50 (ms)", ms(percentile(&mut lat, 50.0)));
    out.add("poller p99 (ms)", ms(percentile(&mut lat, 99.0)));
    out.add("poller max (ms)", ms(percentile(&mut lat, 100.0)));
    let mut cl = create_lat.lock().unwrap().clone();
    out.add("create/update p50 (ms)", ms(percentile(&mut cl, 50.0)));
    out.add("create/update p99 (ms)", ms(percentile(&mut cl, 99.0)));
    out.add(
        "requests failed or over 30 s",
        errors.load(Ordering::Relaxed) as f64,
    );
    let tick = procs::USER_HZ as f64;
    for (i, n) in nodes.iter().enumerate() {
        let cpu = engine_cpu_ticks(n).saturating_sub(cpu0[i]) as f64 / tick;
        out.add(
            &format!("node{} engine CPU (s of {elapsed:.0} s)", n.n()),
            cpu,
        );
        out.add(
            &format!("node{} engine peak RSS (MiB)", n.n()),
            peak.lock().unwrap()[i] as f64 / (1024.0 * 1024.0),
        );
    }

    // No follower hangs: each saw a line in the last 10 s.
    let mut hung = 0;
    let mut lines = 0;
    for f in followers {
        let (n, quiet) = f.finish();
        lines += n;
        if quiet > Duration::from_secs(10) {
            hung += 1;
        }
    }
    out.add("log lines followed", lines as f64);
    out.add("followers silent for over 10 s at the end", f64::from(hung));
    if hung > 0 {
        out.failures.push(format!("{hung} log followers hung"));
    }
    drop(lab);
    Ok(out)
}

fn pending_spec(name: &str, replicas: usize, env: &str) -> Value {
    json!({
        "Name": name,
        "Labels": {"bench": "load"},
        "TaskTemplate": {
            "ContainerSpec": {"Image": TEST_IMAGE, "Args": ["httpd", "-f", "-p", "80"], "Env": [env]},
            "Placement": {"Constraints": ["node.labels.load==none"]},
        },
        "Mode": {"Replicated": {"Replicas": replicas}},
    })
}

fn create(api: &mut ApiClient, spec: &Value) -> anyhow::Result<()> {
    let r = api.request(
        "POST",
        "/services/create",
        Some(&spec.to_string()),
        REQUEST_LIMIT,
    )?;
    anyhow::ensure!(r.status == 201, "{}: {}", r.status, r.body);
    Ok(())
}

fn update(api: &mut ApiClient, name: &str, replicas: usize) -> anyhow::Result<()> {
    let r = api.request("GET", &format!("/services/{name}"), None, REQUEST_LIMIT)?;
    anyhow::ensure!(r.status == 200, "{}: {}", r.status, r.body);
    let svc: Value = serde_json::from_str(&r.body)?;
    let version = svc["Version"]["Index"].as_u64().unwrap_or(0);
    let spec = pending_spec(name, replicas, "A=1");
    let r = api.request(
        "POST",
        &format!("/services/{name}/update?version={version}"),
        Some(&spec.to_string()),
        REQUEST_LIMIT,
    )?;
    anyhow::ensure!(r.status == 200, "{}: {}", r.status, r.body);
    Ok(())
}

fn count(api: &mut ApiClient, path: &str) -> Option<usize> {
    let r = api.request("GET", path, None, REQUEST_LIMIT).ok()?;
    let v: Value = serde_json::from_str(&r.body).ok()?;
    Some(v.as_array()?.len())
}

/// One poller: what `docker service ps NAME` asks, once a second, until
/// `stop`.
fn poll(
    socket: &std::path::Path,
    seed: usize,
    stop: &AtomicBool,
    names: &Mutex<Vec<String>>,
    lat: &Mutex<Vec<Duration>>,
    errs: &AtomicUsize,
) {
    let Ok(mut api) = ApiClient::new(socket) else {
        errs.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let mut round = seed;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let name = {
            let all = names.lock().unwrap();
            all[(round * 7919) % all.len()].clone()
        };
        round += 1;
        let filter = format!("%7B%22service%22%3A%7B%22{name}%22%3Atrue%7D%7D");
        for path in [
            format!("/services/{name}"),
            format!("/tasks?filters={filter}"),
            "/nodes".to_string(),
        ] {
            let t = Instant::now();
            match api.request("GET", &path, None, REQUEST_LIMIT) {
                Ok(r) if r.status == 200 => lat.lock().unwrap().push(t.elapsed()),
                other => {
                    // The first few, so a run says what failed.
                    if errs.fetch_add(1, Ordering::Relaxed) < 5 {
                        let why = match other {
                            Ok(r) => format!("{} {}", r.status, r.body.trim()),
                            Err(e) => format!("{e:#}"),
                        };
                        eprintln!("   poll GET {path}: {why}");
                    }
                }
            }
        }
        if let Some(rest) = Duration::from_secs(1).checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}

/// A `docker service logs -f` of the stock CLI, its lines counted.
struct Follower {
    child: Child,
    lines: Arc<AtomicUsize>,
    last: Arc<Mutex<Instant>>,
    reader: JoinHandle<()>,
}

impl Follower {
    fn start(node: &Node, service: &str) -> anyhow::Result<Follower> {
        let mut child = node
            .docker_spawn(
                RUN_LIMIT,
                &["service", "logs", "-f", "--tail", "0", service],
            )
            .context("start docker service logs -f")?;
        let stdout = child.stdout.take().context("follower stdout")?;
        let lines = Arc::new(AtomicUsize::new(0));
        let last = Arc::new(Mutex::new(Instant::now()));
        let reader = {
            let (lines, last) = (lines.clone(), last.clone());
            std::thread::spawn(move || {
                for l in BufReader::new(stdout).lines() {
                    if l.is_err() {
                        break;
                    }
                    lines.fetch_add(1, Ordering::Relaxed);
                    *last.lock().unwrap() = Instant::now();
                }
            })
        };
        Ok(Follower {
            child,
            lines,
            last,
            reader,
        })
    }

    /// Ends it; the lines it read and how long it had been silent.
    fn finish(self) -> (usize, Duration) {
        let quiet = self.last.lock().unwrap().elapsed();
        // SIGTERM: `timeout` passes it on to the CLI, whose end closes the
        // pipe the reader waits on (a SIGKILL would leave the CLI running).
        procs::terminate(self.child, Duration::from_secs(5));
        let _ = self.reader.join();
        (self.lines.load(Ordering::Relaxed), quiet)
    }
}

/// The engine's user + system CPU time in clock ticks.
fn engine_cpu_ticks(n: &Node) -> u64 {
    n.pid_of_engine().and_then(procs::cpu_ticks).unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `p`th percentile (nearest rank) of `v`.
fn percentile(v: &mut [Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}
