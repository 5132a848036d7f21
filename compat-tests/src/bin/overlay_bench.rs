//! `shoal-overlay-bench`: traffic over overlay networks across nodes, on a
//! 3-node lab (1 manager, 2 workers) of shoald and of Debian's dockerd.
//!
//! One command from the repository root (installs what is missing, builds,
//! runs as root):
//!
//! ```text
//! bash compat-tests/bench/overlay-bench.sh [--engine shoald|dockerd|both] [--reps N]
//! ```
//!
//! Per engine, one lab; every repetition measures, from a client task on
//! node3 to a server service pinned to node2 (both on the overlay):
//! - sequential short connections (`wget` of a 3-byte file in a loop) and
//!   bulk transfers (`wget` of a file made with `dd`, repeated for at least
//!   2 s), each direct to the server task's address, through the VIP, by
//!   service name and through the routing mesh (the client leaves through
//!   its gateway bridge to node1's LAN address, a node without a task of
//!   the service);
//! - the same direct and VIP over an `--opt encrypted` network;
//! - `docker service scale` 1 -> 10 until `tasks.NAME` lists 10 addresses
//!   and the VIP has answered from 10 replicas, on every node.
//!
//! Loops are timed inside the client container (`/proc/uptime`, 10 ms
//! resolution; every timed loop lasts seconds), so the CLI's own cost is
//! left out. dockerd here has no IPVS: only direct and `dnsrr` by name run
//! on it; its encrypted overlays carry nothing on this kernel (no ESP).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::BufRead;
use std::io::BufReader;
use std::io::Read;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use compat_tests::bench::report::median;
use compat_tests::cluster::cli::docker_bin;
use compat_tests::cluster::image::TEST_IMAGE;
use compat_tests::cluster::procs::try_wait_for;
use compat_tests::cluster::swarm;
use compat_tests::cluster::Engine;
use compat_tests::cluster::Lab;
use compat_tests::cluster::Node;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "shoal-overlay-bench",
    about = "overlay traffic across nodes, shoald and dockerd side by side"
)]
struct Args {
    /// shoald, dockerd or both.
    #[arg(long, default_value = "both")]
    engine: String,
    /// Repetitions per engine (all on one 3-node lab per engine).
    #[arg(long, default_value_t = 3)]
    reps: u32,
    /// Sequential connections per connections/s sample.
    #[arg(long, default_value_t = 500)]
    conns: u32,
    /// Size of the bulk transfer, in MiB.
    #[arg(long, default_value_t = 200)]
    mib: u32,
}

// The figures, in the order the table lists them. A dockerd cell that
// cannot be measured on this kernel says why instead.
const C_DIRECT: &str = "1a. plain overlay, conns/s: direct to the task address";
const C_VIP: &str = "1a. plain overlay, conns/s: VIP address";
const C_NAME: &str = "1a. plain overlay, conns/s: service name (shoald: VIP; dockerd: dnsrr)";
const C_MESH: &str = "1a. plain overlay, conns/s: routing mesh, task -> node1:8080";
const RC_VIP: &str = "1a. ratio VIP / direct (conns/s)";
const RC_NAME: &str = "1a. ratio service name / direct (conns/s)";
const RC_MESH: &str = "1a. ratio mesh / direct (conns/s)";
const B_DIRECT: &str = "1b. plain overlay, MiB/s: direct to the task address";
const B_VIP: &str = "1b. plain overlay, MiB/s: VIP address";
const B_NAME: &str = "1b. plain overlay, MiB/s: service name (shoald: VIP; dockerd: dnsrr)";
const B_MESH: &str = "1b. plain overlay, MiB/s: routing mesh, task -> node1:8080";
const RB_VIP: &str = "1b. ratio VIP / direct (MiB/s)";
const RB_MESH: &str = "1b. ratio mesh / direct (MiB/s)";
const EC_DIRECT: &str = "2. encrypted overlay, conns/s: direct";
const EC_VIP: &str = "2. encrypted overlay, conns/s: VIP address";
const EB_DIRECT: &str = "2. encrypted overlay, MiB/s: direct";
const EB_VIP: &str = "2. encrypted overlay, MiB/s: VIP address";
const REC_DIRECT: &str = "2. ratio encrypted / plain, conns/s direct";
const REC_VIP: &str = "2. ratio encrypted / plain, conns/s VIP";
const REB_DIRECT: &str = "2. ratio encrypted / plain, MiB/s direct";
const REB_VIP: &str = "2. ratio encrypted / plain, MiB/s VIP";
const S_DNS: &str = "3. scale 1 -> 10: every node's tasks.NAME lists 10 (s)";
const S_VIP: &str = "3. scale 1 -> 10: the VIP answered from all 10 on every node (s)";

const ROWS: &[&str] = &[
    C_DIRECT, C_VIP, C_NAME, C_MESH, RC_VIP, RC_NAME, RC_MESH, B_DIRECT, B_VIP, B_NAME, B_MESH,
    RB_VIP, RB_MESH, EC_DIRECT, EC_VIP, EB_DIRECT, EB_VIP, REC_DIRECT, REC_VIP, REB_DIRECT,
    REB_VIP, S_DNS, S_VIP,
];

/// Why dockerd's VIP and mesh rows are empty.
const NO_IPVS: &str = "n/a: no IPVS in this kernel";

/// The published port of the server's routing-mesh figure.
const MESH_PORT: u16 = 8080;

/// Replicas the scale figure goes to.
const SCALE_TO: u32 = 10;

/// Everything a run measured.
#[derive(Debug, Default)]
struct Results {
    samples: BTreeMap<(&'static str, Engine), Vec<f64>>,
    /// Cells that cannot be measured, with why.
    notes: BTreeMap<(&'static str, Engine), String>,
    /// What failed: engine, repetition (0: the lab's set-up), step, why.
    failures: Vec<(Engine, u32, String, String)>,
}

impl Results {
    fn add(&mut self, row: &'static str, e: Engine, v: f64) {
        eprintln!("   {row} = {v:.2}");
        self.samples.entry((row, e)).or_default().push(v);
    }

    fn note(&mut self, rows: &[&'static str], e: Engine, why: &str) {
        for r in rows {
            self.notes.entry((r, e)).or_insert_with(|| why.to_string());
        }
    }

    fn fail(&mut self, e: Engine, rep: u32, step: &str, why: String) {
        eprintln!("   FAILED ({e} rep {rep}, {step}): {why}");
        self.failures.push((e, rep, step.to_string(), why));
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let engines = match args.engine.as_str() {
        "both" => vec![Engine::Shoald, Engine::Dockerd],
        one => vec![one.parse::<Engine>()?],
    };
    anyhow::ensure!((1..=20).contains(&args.reps), "--reps must be 1 to 20");
    anyhow::ensure!((10..=20_000).contains(&args.conns), "--conns: 10 to 20000");
    anyhow::ensure!((1..=4096).contains(&args.mib), "--mib: 1 to 4096");
    let started = Instant::now();
    let mut res = Results::default();
    for &e in &engines {
        if let Some(why) = Lab::missing(e) {
            eprintln!("{e}: cannot run here: {why}");
            res.fail(e, 0, "lab", format!("cannot run here: {why}"));
            continue;
        }
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut local = Results::default();
            run_engine(e, &args, &mut local);
            local
        }));
        match outcome {
            Ok(local) => merge(&mut res, local),
            Err(p) => {
                let why = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panicked".into());
                res.fail(e, 0, "*", why);
            }
        }
    }
    println!("{}", render(&res, &engines, &args, started.elapsed()));
    Ok(())
}

fn merge(into: &mut Results, from: Results) {
    for (k, v) in from.samples {
        into.samples.entry(k).or_default().extend(v);
    }
    for (k, v) in from.notes {
        into.notes.entry(k).or_insert(v);
    }
    into.failures.extend(from.failures);
}

/// One engine's lab, ready to measure.
struct Bed {
    engine: Engine,
    /// Dropped last: ends every node.
    _lab: Lab,
    nodes: Vec<Arc<Node>>,
    /// The client task's container on node3 (plain overlay).
    cli: String,
    /// The server task's address on the plain overlay.
    srv_addr: String,
    /// The server's VIP on the plain overlay (shoald).
    srv_vip: Option<String>,
    /// Whether the mesh answers from the client task, or why not.
    mesh: Result<(), String>,
    /// Client container on node3, server address, server VIP on the
    /// encrypted overlay; or why it cannot be measured.
    enc: Result<(String, String, Option<String>), String>,
    /// The probe task's container on each node, for the scale figure.
    probes: Vec<String>,
    /// Bytes of the bulk file.
    bulk_bytes: u64,
}

fn run_engine(e: Engine, args: &Args, res: &mut Results) {
    eprintln!("== {e}: setting up a 3-node lab");
    let t = Instant::now();
    let bed = match setup(e, args) {
        Ok(b) => b,
        Err(err) => {
            res.fail(e, 0, "set-up", format!("{err:#}"));
            return;
        }
    };
    eprintln!("   set up in {:.1} s", t.elapsed().as_secs_f64());
    if e == Engine::Dockerd {
        res.note(
            &[
                C_VIP, C_MESH, RC_VIP, RC_MESH, B_VIP, B_MESH, RB_VIP, RB_MESH,
            ],
            e,
            NO_IPVS,
        );
        res.note(&[EC_VIP, EB_VIP, REC_VIP, REB_VIP, S_VIP], e, NO_IPVS);
    }
    if let Err(why) = &bed.mesh {
        res.note(&[C_MESH, RC_MESH, B_MESH, RB_MESH], e, why);
    }
    if let Err(why) = &bed.enc {
        let rows = [
            EC_DIRECT, EC_VIP, EB_DIRECT, EB_VIP, REC_DIRECT, REC_VIP, REB_DIRECT, REB_VIP,
        ];
        res.note(&rows, e, why);
    }
    for rep in 1..=args.reps {
        eprintln!("== {e}: repetition {rep} of {}", args.reps);
        let p = plain(&bed, args, rep, res);
        encrypted(&bed, args, rep, res, p);
        if let Err(err) = scale(&bed, res) {
            res.fail(e, rep, "3 scale 1 -> 10", format!("{err:#}"));
        }
    }
    eprintln!("== {e}: done, tearing the lab down");
}

/// `docker service create -d --quiet --name NAME ARGS... IMAGE CMD...`.
fn service(n: &Node, name: &str, args: &[&str], cmd: &[&str]) -> anyhow::Result<()> {
    let mut all = vec!["service", "create", "-d", "--quiet", "--name", name];
    all.extend_from_slice(args);
    all.push(TEST_IMAGE);
    all.extend_from_slice(cmd);
    n.try_ok(&all).map(drop)
}

/// Polls `f` for at most `secs` seconds, or fails naming `what`.
fn poll<T>(secs: u64, what: &str, f: impl FnMut() -> Option<T>) -> anyhow::Result<T> {
    try_wait_for(Duration::from_secs(secs), f)
        .with_context(|| format!("{what}: not within {secs} s"))
}

/// The running container of `svc` on `n` (exactly one expected).
fn container_on(n: &Node, svc: &str) -> anyhow::Result<String> {
    let filter = format!("label=com.docker.swarm.service.name={svc}");
    poll(
        120,
        &format!("a container of {svc} on node{}", n.n()),
        || {
            let out = n.docker(&["container", "ls", "-q", "--no-trunc", "--filter", &filter]);
            let ids: Vec<&str> = out.stdout.lines().collect();
            (out.success() && ids.len() == 1).then(|| ids[0].to_string())
        },
    )
}

/// The address of `svc`'s (single) running task on network `net`.
fn task_addr(n: &Node, svc: &str, net: &str) -> anyhow::Result<String> {
    let ids = n.try_ok(&[
        "service",
        "ps",
        "-q",
        "--filter",
        "desired-state=running",
        svc,
    ])?;
    let id = ids.lines().next().context("no task")?;
    let format = format!(
        "{{{{range .NetworksAttachments}}}}{{{{if eq .Network.Spec.Name \"{net}\"}}}}\
         {{{{range .Addresses}}}}{{{{.}}}} {{{{end}}}}{{{{end}}}}{{{{end}}}}"
    );
    let a = n.try_ok(&["inspect", "--format", &format, id])?;
    let cidr = a
        .split_whitespace()
        .next()
        .with_context(|| format!("{svc}'s task has no address on {net}"))?;
    Ok(cidr.split('/').next().unwrap_or_default().to_string())
}

/// `svc`'s VIP on network `net`, without prefix.
fn vip(n: &Node, svc: &str, net: &str) -> anyhow::Result<String> {
    let net_id = n.try_ok(&["network", "inspect", "--format", "{{.Id}}", net])?;
    let v = n.try_ok(&[
        "service",
        "inspect",
        "--format",
        "{{range .Endpoint.VirtualIPs}}{{.NetworkID}}={{.Addr}} {{end}}",
        svc,
    ])?;
    v.split_whitespace()
        .find_map(|p| p.strip_prefix(&format!("{}=", net_id.trim())))
        .and_then(|a| a.split('/').next())
        .map(str::to_string)
        .with_context(|| format!("{svc} has no VIP on {net}: {v}"))
}

/// Runs `sh -c script sh ARGS...` in container `c` on `n`, bounded by
/// busybox `timeout` inside and by the CLI's limit outside; stdout.
fn exec(n: &Node, c: &str, limit: u64, script: &str, args: &[&str]) -> anyhow::Result<String> {
    let l = limit.to_string();
    let mut all = vec!["exec", c, "timeout", &l, "sh", "-c", script, "sh"];
    all.extend_from_slice(args);
    n.docker_within(Duration::from_secs(limit + 15), &all, None)
        .into_result(&format!("node{}: exec", n.n()))
}

/// Whether `GET url` answers from container `c` on `n`.
fn answers(n: &Node, c: &str, url: &str) -> bool {
    exec(n, c, 5, "wget -qO- \"$1\" >/dev/null", &[url]).is_ok()
}

/// The server: a 3-byte `/small` and a `/big` of `mib` MiB (zeros: what
/// crosses the wire is the same to every path, sealed or not), written
/// before httpd starts, so an answer on `/small` means both are there.
fn server_cmd(mib: u32) -> Vec<String> {
    let script = format!(
        "mkdir -p /www && dd if=/dev/zero of=/www/big bs=1048576 count={mib} 2>/dev/null \
         && echo ok > /www/small && exec httpd -f -p 80 -h /www"
    );
    vec!["sh".into(), "-c".into(), script]
}

/// An idle task that answers `/etc/hostname` over HTTP (the scale figure
/// tells replicas apart by it).
const HTTPD: &[&str] = &["httpd", "-f", "-p", "80", "-h", "/"];

fn setup(e: Engine, args: &Args) -> anyhow::Result<Bed> {
    let lab = Lab::new(e)?;
    // `form` panics with the CLI's output when a step fails.
    let nodes = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| swarm::form(&lab, 1, 2)))
        .map_err(|p| {
            let why = p
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "swarm::form panicked".into());
            anyhow::anyhow!("form the swarm: {why}")
        })?;
    for n in &nodes {
        n.load_test_image()
            .with_context(|| format!("load the test image on node{}", n.n()))?;
    }
    let n1 = nodes[0].clone();
    n1.try_ok(&["network", "create", "-d", "overlay", "plain"])?;
    // dockerd has no IPVS here: a VIP-mode service would only log errors
    // on every task start, so every dockerd service is dnsrr.
    let mut mode: Vec<&str> = Vec::new();
    if e == Engine::Dockerd {
        mode.extend(["--endpoint-mode", "dnsrr"]);
    }
    let on = |net: &'static str, host: &'static str| -> Vec<&str> {
        let mut v = vec!["--network", net, "--constraint", host];
        v.extend_from_slice(&mode);
        v
    };
    let srv_cmd = server_cmd(args.mib);
    let srv_cmd: Vec<&str> = srv_cmd.iter().map(String::as_str).collect();
    let mut srv_args = on("plain", "node.hostname==node2");
    let publish = format!("published={MESH_PORT},target=80");
    if e == Engine::Shoald {
        srv_args.extend(["--publish", &publish]);
    }
    service(&n1, "srv", &srv_args, &srv_cmd)?;
    service(&n1, "cli", &on("plain", "node.hostname==node3"), HTTPD)?;
    let mut probe = vec!["--network", "plain", "--mode", "global"];
    probe.extend_from_slice(&mode);
    service(&n1, "probe", &probe, HTTPD)?;
    let mut scl = vec!["--network", "plain", "--replicas", "1"];
    scl.extend_from_slice(&mode);
    service(&n1, "scl", &scl, HTTPD)?;

    let cli = container_on(&nodes[2], "cli")?;
    let srv_addr = poll(60, "srv's task address", || {
        task_addr(&n1, "srv", "plain").ok()
    })?;
    let small = format!("http://{srv_addr}/small");
    poll(180, "the server answers the client across nodes", || {
        answers(&nodes[2], &cli, &small).then_some(())
    })?;
    let srv_vip = match e {
        Engine::Shoald => Some(vip(&n1, "srv", "plain")?),
        Engine::Dockerd => None,
    };
    let mesh = if e == Engine::Shoald {
        let url = format!("http://{}:{MESH_PORT}/small", nodes[0].addr());
        try_wait_for(Duration::from_secs(60), || {
            answers(&nodes[2], &cli, &url).then_some(())
        })
        .ok_or_else(|| format!("n/a: {url} did not answer from the client task within 60 s"))
    } else {
        Err(NO_IPVS.to_string())
    };
    let probes = nodes
        .iter()
        .map(|n| container_on(n, "probe"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let enc = encrypted_setup(e, &nodes, &mode, &srv_cmd);
    Ok(Bed {
        engine: e,
        _lab: lab,
        nodes,
        cli,
        srv_addr,
        srv_vip,
        mesh,
        enc,
        probes,
        bulk_bytes: u64::from(args.mib) * 1_048_576,
    })
}

/// The encrypted overlay's client and server, as on the plain one; on a
/// failure, why (dockerd's sealed networks carry nothing on a kernel
/// without ESP: that is expected, and said rather than failed).
fn encrypted_setup(
    e: Engine,
    nodes: &[Arc<Node>],
    mode: &[&str],
    srv_cmd: &[&str],
) -> Result<(String, String, Option<String>), String> {
    let n1 = &nodes[0];
    let go = || -> anyhow::Result<(String, String, Option<String>)> {
        n1.try_ok(&[
            "network",
            "create",
            "-d",
            "overlay",
            "--opt",
            "encrypted",
            "sealed",
        ])?;
        let mut on2 = vec![
            "--network",
            "sealed",
            "--constraint",
            "node.hostname==node2",
        ];
        on2.extend_from_slice(mode);
        let mut on3 = vec![
            "--network",
            "sealed",
            "--constraint",
            "node.hostname==node3",
        ];
        on3.extend_from_slice(mode);
        service(n1, "srv-enc", &on2, srv_cmd)?;
        service(n1, "cli-enc", &on3, HTTPD)?;
        let cli = container_on(&nodes[2], "cli-enc")?;
        let addr = poll(60, "srv-enc's task address", || {
            task_addr(n1, "srv-enc", "sealed").ok()
        })?;
        let url = format!("http://{addr}/small");
        // dockerd: the network is made and the tasks run, but nothing
        // crosses; a shorter wait says so without holding the run up.
        let limit = if e == Engine::Dockerd { 45 } else { 180 };
        poll(
            limit,
            "the encrypted server answers the client across nodes",
            || answers(&nodes[2], &cli, &url).then_some(()),
        )?;
        let v = match e {
            Engine::Shoald => Some(vip(n1, "srv-enc", "sealed")?),
            Engine::Dockerd => None,
        };
        Ok((cli, addr, v))
    };
    go().map_err(|err| {
        let why = format!("{err:#}");
        eprintln!("   encrypted overlay: {why}");
        match e {
            // Its log says why ("Failed Adding ... SA"); the table only
            // needs the kernel's reason.
            Engine::Dockerd => "not available: no ESP in this kernel".to_string(),
            Engine::Shoald => format!("failed: {}", first_line(&why)),
        }
    })
}

fn first_line(s: &str) -> String {
    let l = s.lines().next().unwrap_or_default();
    l.chars().take(160).collect()
}

/// Sequential short connections: `n` GETs of `url`, timed inside the
/// client after one warm-up GET. Prints `T START END` (uptime seconds).
const CONNS: &str = r#"u=$1; n=$2
wget -qO- "$u" >/dev/null || { echo "warm-up GET failed"; exit 3; }
read a _ </proc/uptime
i=0
while [ $i -lt $n ]; do
  wget -qO- "$u" >/dev/null || { echo "GET $i failed"; exit 2; }
  i=$((i+1))
done
read b _ </proc/uptime
echo "T $a $b""#;

/// Bulk transfers of `url` to /dev/null, timed inside the client after a
/// warm-up transfer that checks the size: repeated until 2 s have passed
/// (at most 20), so a fast path is timed over many clock ticks too.
/// Prints `T START END COUNT`.
const BULK: &str = r#"u=$1; want=$2
got=$(wget -qO- "$u" | wc -c)
[ "$got" = "$want" ] || { echo "warm-up got $got of $want bytes"; exit 3; }
read a _ </proc/uptime
s=${a%.*}${a#*.}
k=0
while :; do
  wget -qO /dev/null "$u" || { echo "transfer $k failed"; exit 2; }
  k=$((k+1))
  read b _ </proc/uptime
  [ $((${b%.*}${b#*.} - s)) -ge 200 ] || [ $k -ge 20 ] && break
done
echo "T $a $b $k""#;

/// The seconds between the two uptimes of a `T A B [COUNT]` line, and the
/// count (1 when absent).
fn elapsed(out: &str) -> anyhow::Result<(f64, f64)> {
    let line = out
        .lines()
        .find(|l| l.starts_with("T "))
        .with_context(|| format!("no timing in {out:?}"))?;
    let f: Vec<f64> = line[2..]
        .split_whitespace()
        .map(|x| x.parse::<f64>())
        .collect::<Result<_, _>>()?;
    anyhow::ensure!((2..=3).contains(&f.len()), "bad timing line {line:?}");
    let d = f[1] - f[0];
    anyhow::ensure!(d >= 0.05, "too short to time at 10 ms: {d:.2} s");
    Ok((d, f.get(2).copied().unwrap_or(1.0)))
}

/// Connections per second from `c` on node3 to `url`.
fn conns(bed: &Bed, c: &str, url: &str, n: u32) -> anyhow::Result<f64> {
    let out = exec(&bed.nodes[2], c, 180, CONNS, &[url, &n.to_string()])
        .with_context(|| format!("connections to {url}"))?;
    Ok(f64::from(n) / elapsed(&out)?.0)
}

/// MiB/s of bulk transfers from `url` to `c` on node3.
fn bulk(bed: &Bed, c: &str, url: &str) -> anyhow::Result<f64> {
    let want = bed.bulk_bytes.to_string();
    let out = exec(&bed.nodes[2], c, 300, BULK, &[url, &want])
        .with_context(|| format!("bulk transfer from {url}"))?;
    let (secs, count) = elapsed(&out)?;
    Ok(count * bed.bulk_bytes as f64 / 1_048_576.0 / secs)
}

/// Records `row` = `f()` and returns it; a failure is recorded and `None`.
fn measure(
    bed: &Bed,
    res: &mut Results,
    rep: u32,
    row: &'static str,
    f: impl FnOnce() -> anyhow::Result<f64>,
) -> Option<f64> {
    match f() {
        Ok(v) => {
            res.add(row, bed.engine, v);
            Some(v)
        }
        Err(err) => {
            res.fail(bed.engine, rep, row, format!("{err:#}"));
            None
        }
    }
}

fn ratio(bed: &Bed, res: &mut Results, row: &'static str, a: Option<f64>, b: Option<f64>) {
    if let (Some(a), Some(b)) = (a, b) {
        if b > 0.0 {
            res.add(row, bed.engine, a / b);
        }
    }
}

/// The plain overlay's direct and VIP figures of one repetition (conns/s
/// direct, VIP; MiB/s direct, VIP), for figure 2's ratios.
type PlainRef = [Option<f64>; 4];

/// Figure 1; returns what figure 2 compares with.
fn plain(bed: &Bed, args: &Args, rep: u32, res: &mut Results) -> PlainRef {
    let n = args.conns;
    let cli = bed.cli.as_str();
    let direct = format!("http://{}", bed.srv_addr);
    let vip = bed.srv_vip.as_ref().map(|v| format!("http://{v}"));
    let mesh = format!("http://{}:{MESH_PORT}", bed.nodes[0].addr());
    let small = |base: &str| format!("{base}/small");
    let big = |base: &str| format!("{base}/big");

    let cd = measure(bed, res, rep, C_DIRECT, || {
        conns(bed, cli, &small(&direct), n)
    });
    let cv = match &vip {
        Some(v) => measure(bed, res, rep, C_VIP, || conns(bed, cli, &small(v), n)),
        None => None,
    };
    let cn = measure(bed, res, rep, C_NAME, || {
        conns(bed, cli, "http://srv/small", n)
    });
    let cm = match bed.mesh {
        Ok(()) => measure(bed, res, rep, C_MESH, || conns(bed, cli, &small(&mesh), n)),
        Err(_) => None,
    };
    ratio(bed, res, RC_VIP, cv, cd);
    ratio(bed, res, RC_NAME, cn, cd);
    ratio(bed, res, RC_MESH, cm, cd);

    let bd = measure(bed, res, rep, B_DIRECT, || bulk(bed, cli, &big(&direct)));
    let bv = match &vip {
        Some(v) => measure(bed, res, rep, B_VIP, || bulk(bed, cli, &big(v))),
        None => None,
    };
    // By name: shoald's VIP again (one lookup per transfer), but it is the
    // by-name figure dockerd (dnsrr) can be compared on.
    measure(bed, res, rep, B_NAME, || bulk(bed, cli, "http://srv/big"));
    let bm = match bed.mesh {
        Ok(()) => measure(bed, res, rep, B_MESH, || bulk(bed, cli, &big(&mesh))),
        Err(_) => None,
    };
    ratio(bed, res, RB_VIP, bv, bd);
    ratio(bed, res, RB_MESH, bm, bd);
    [cd, cv, bd, bv]
}

/// Figure 2: direct and VIP over the encrypted overlay.
fn encrypted(bed: &Bed, args: &Args, rep: u32, res: &mut Results, plain: PlainRef) {
    let Ok((cli, addr, vip)) = &bed.enc else {
        return;
    };
    let [pcd, pcv, pbd, pbv] = plain;
    let n = args.conns;
    let direct = format!("http://{addr}");
    let cd = measure(bed, res, rep, EC_DIRECT, || {
        conns(bed, cli, &format!("{direct}/small"), n)
    });
    let cv = match vip {
        Some(v) => measure(bed, res, rep, EC_VIP, || {
            conns(bed, cli, &format!("http://{v}/small"), n)
        }),
        None => None,
    };
    let bd = measure(bed, res, rep, EB_DIRECT, || {
        bulk(bed, cli, &format!("{direct}/big"))
    });
    let bv = match vip {
        Some(v) => measure(bed, res, rep, EB_VIP, || {
            bulk(bed, cli, &format!("http://{v}/big"))
        }),
        None => None,
    };
    ratio(bed, res, REC_DIRECT, cd, pcd);
    ratio(bed, res, REC_VIP, cv, pcv);
    ratio(bed, res, REB_DIRECT, bd, pbd);
    ratio(bed, res, REB_VIP, bv, pbv);
}

/// Waits until `nslookup NAME` lists at least `$2` addresses (the DNS
/// server's own line left out); prints `ready` first and `DONE UPTIME`.
const DNS_WAIT: &str = r#"name=$1; want=$2
echo ready
while :; do
  n=$(nslookup "$name" 2>/dev/null | grep '^Address' | grep -vc ':53$')
  if [ "${n:-0}" -ge "$want" ]; then read t _ </proc/uptime; echo "DONE $t"; exit 0; fi
  sleep 0.05
done"#;

/// GETs `$1` (each bounded: 2 s) until `$2` distinct hostnames answered;
/// prints `ready` first and `DONE UPTIME`.
const VIP_WAIT: &str = r#"u=$1; want=$2; seen=" "; c=0
echo ready
while :; do
  h=$(timeout 2 wget -qO- "$u" 2>/dev/null)
  if [ -n "$h" ]; then
    case "$seen" in *" $h "*) ;; *) seen="$seen$h "; c=$((c+1)) ;; esac
  fi
  if [ "$c" -ge "$want" ]; then read t _ </proc/uptime; echo "DONE $t"; exit 0; fi
  sleep 0.02
done"#;

/// A waiter running in a probe container: the CLI child and its stdout.
struct Waiter {
    what: String,
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

/// Starts `script` in container `c` on `n` (bounded by `limit` inside and
/// out) and returns once it printed `ready`.
fn start_waiter(
    n: &Node,
    c: &str,
    limit: u64,
    script: &str,
    args: &[&str],
    what: String,
) -> anyhow::Result<Waiter> {
    let mut child = Command::new("timeout")
        .args(["-k", "5", &(limit + 20).to_string()])
        .arg(docker_bin())
        .args([
            "exec",
            c,
            "timeout",
            &limit.to_string(),
            "sh",
            "-c",
            script,
            "sh",
        ])
        .args(args)
        .env("DOCKER_HOST", n.docker_host())
        .env("DOCKER_CONFIG", n.dir().join("cli-config"))
        .env_remove("DOCKER_CONTEXT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("run docker exec")?;
    let mut out = BufReader::new(child.stdout.take().context("stdout")?);
    let mut line = String::new();
    out.read_line(&mut line)?;
    if line.trim() != "ready" {
        let _ = child.kill();
        let _ = child.wait();
        anyhow::bail!("{what}: the waiter did not start: {line:?}");
    }
    Ok(Waiter { what, child, out })
}

impl Waiter {
    /// The uptime at which the waiter saw its condition.
    fn done(mut self) -> anyhow::Result<f64> {
        let mut rest = String::new();
        self.out.read_to_string(&mut rest)?;
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let status = self.child.wait()?;
        let t = rest
            .lines()
            .find_map(|l| l.strip_prefix("DONE "))
            .and_then(|t| t.trim().parse::<f64>().ok());
        t.with_context(|| {
            format!(
                "{}: not seen ({status}): {} {}",
                self.what,
                rest.trim(),
                first_line(err.trim())
            )
        })
    }
}

/// The host's uptime: the same clock `/proc/uptime` shows in containers.
fn uptime() -> anyhow::Result<f64> {
    let s = std::fs::read_to_string("/proc/uptime")?;
    Ok(s.split_whitespace().next().context("empty")?.parse()?)
}

/// The addresses `nslookup tasks.scl` lists in probe `i`.
fn dns_count(bed: &Bed, i: usize) -> Option<usize> {
    let out = exec(
        &bed.nodes[i],
        &bed.probes[i],
        10,
        "nslookup tasks.scl 2>/dev/null | grep '^Address' | grep -vc ':53$'",
        &[],
    );
    // grep -c exits 1 when it counts nothing: that is a count too.
    match out {
        Ok(s) => s.trim().parse().ok(),
        Err(e) => e.to_string().contains("exited 1").then_some(0),
    }
}

/// Figure 3: scale 1 -> 10, then back to 1 for the next repetition.
fn scale(bed: &Bed, res: &mut Results) -> anyhow::Result<()> {
    let n1 = &bed.nodes[0];
    // From the state the figure starts at: one replica, known everywhere.
    n1.try_ok(&["service", "scale", "-d", "scl=1"])?;
    poll(120, "scl at 1 replica on every node's DNS", || {
        let one = swarm::running_on(n1, "scl")?.len() == 1;
        (one && (0..3).all(|i| dns_count(bed, i) == Some(1))).then_some(())
    })?;
    let want = SCALE_TO.to_string();
    let limit = 150;
    let mut waiters = Vec::new();
    for (i, n) in bed.nodes.iter().enumerate() {
        let c = &bed.probes[i];
        waiters.push((
            S_DNS,
            start_waiter(
                n,
                c,
                limit,
                DNS_WAIT,
                &["tasks.scl", &want],
                format!("tasks.scl on node{}", n.n()),
            )?,
        ));
        if bed.engine == Engine::Shoald {
            waiters.push((
                S_VIP,
                start_waiter(
                    n,
                    c,
                    limit,
                    VIP_WAIT,
                    &["http://scl/etc/hostname", &want],
                    format!("the VIP on node{}", n.n()),
                )?,
            ));
        }
    }
    let t0 = uptime()?;
    n1.try_ok(&["service", "scale", "-d", &format!("scl={SCALE_TO}")])?;
    let mut worst: BTreeMap<&'static str, f64> = BTreeMap::new();
    let mut errors = Vec::new();
    for (row, w) in waiters {
        match w.done() {
            Ok(t) => {
                let e = worst.entry(row).or_insert(0.0);
                *e = e.max(t - t0);
            }
            Err(err) => errors.push(format!("{err:#}")),
        }
    }
    anyhow::ensure!(errors.is_empty(), "{}", errors.join("; "));
    for (row, v) in worst {
        res.add(row, bed.engine, v);
    }
    Ok(())
}

fn cell(v: Option<&Vec<f64>>, note: Option<&String>) -> String {
    match (v, note) {
        (Some(v), _) if !v.is_empty() => format!("{:.2} (n={})", median(v), v.len()),
        (_, Some(n)) => n.clone(),
        _ => "-".into(),
    }
}

/// The report: a Markdown table of medians, raw samples, what failed.
fn render(res: &Results, engines: &[Engine], args: &Args, took: Duration) -> String {
    let mut out = String::new();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(
        out,
        "\nOverlay across nodes: 3-node lab (1 manager, 2 workers), {} rep(s) per engine, \
         {} connections per conns/s sample, {} MiB per transfer; taken on a shared \
         {cores}-core machine (other work may have run at the same time); run took {:.0} s.\n\
         Mesh pair: the client task on node3 to node1:{MESH_PORT} (no task of the \
         service there; out through node3's gateway bridge) vs. the same client to the \
         server task's overlay address.\n",
        args.reps,
        args.conns,
        args.mib,
        took.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "| figure (median) | shoald | dockerd | shoald/dockerd |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- |");
    for &row in ROWS {
        let s = res.samples.get(&(row, Engine::Shoald));
        let d = res.samples.get(&(row, Engine::Dockerd));
        let ratio = match (s, d) {
            (Some(s), Some(d)) if !s.is_empty() && !d.is_empty() && median(d) != 0.0 => {
                format!("{:.2}", median(s) / median(d))
            }
            _ => "-".into(),
        };
        let _ = writeln!(
            out,
            "| {row} | {} | {} | {ratio} |",
            cell(s, res.notes.get(&(row, Engine::Shoald))),
            cell(d, res.notes.get(&(row, Engine::Dockerd)))
        );
    }
    let _ = writeln!(out, "\nRaw samples:");
    for &row in ROWS {
        for &e in engines {
            if let Some(v) = res.samples.get(&(row, e)) {
                let list: Vec<String> = v.iter().map(|x| format!("{x:.2}")).collect();
                let _ = writeln!(out, "- {e}: {row}: {}", list.join(", "));
            }
        }
    }
    if !res.failures.is_empty() {
        let _ = writeln!(out, "\nFailed:");
        for (e, rep, step, why) in &res.failures {
            let _ = writeln!(out, "- {e} rep {rep} {step}: {}", why.replace('\n', " / "));
        }
    }
    out
}
