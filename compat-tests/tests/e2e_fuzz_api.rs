//! End-to-end: a schema-driven fuzz run of the swarm routes.
//!
//! Requests are made from `compat-tests/openapi/swarm.yaml`, the project's
//! own OpenAPI description of the swarm routes: for each operation in turn,
//! a valid request or one with a mutated path ID, query string or body
//! (wrong JSON types, missing and extra members, keys in another case,
//! nulls, numbers past 64 bits, long and odd strings, invalid UTF-8, deep
//! nesting, cut and duplicated bodies, bad IDs, bad and repeated query
//! values, bad filters). They go to a live shoald that manages a one-node
//! swarm, one at a time on one kept-alive connection.
//!
//! What must hold: no answer at 500 or above except those in
//! `fuzz_api/allow.rs` (where dockerd answers the same), every error a
//! JSON body with a `message`, `/_ping` answered after every batch, and no
//! `panicked` in the daemon's log.
//!
//! `SHOAL_FUZZ_CASES` (default 3,000) sets the number of cases,
//! `SHOAL_FUZZ_SEED` the seed, and `SHOAL_FUZZ_VERBOSE=1` prints every case
//! with its answer; a failure prints the case number and a `curl` command
//! that sends the same request again.
//!
//! `SHOAL_FUZZ_SOCKET=PATH` sends the same run to another engine that
//! manages a swarm already (Debian's dockerd: `compat-tests/bench/
//! fuzz-reference.sh`): no shoald is started, and every distinct 5xx is
//! listed instead of failing the run.

mod common;
mod fuzz_api;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use std::time::Instant;

use common::Daemon;
use compat_tests::cluster::api::ApiClient;
use fuzz_api::allow::allowed;
use fuzz_api::case;
use fuzz_api::case::Case;
use fuzz_api::case::Obj;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use serde_json::Value;

/// Cases per batch: live objects are read again and `/_ping` checked after each.
const BATCH: usize = 100;
/// Longest wait for one answer; nothing here should take a second.
const LIMIT: Duration = Duration::from_secs(30);
/// Failures shown in full; the rest are counted.
const SHOWN: usize = 25;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A GET that must answer 200 with JSON.
fn get_json(c: &mut ApiClient, path: &str) -> Value {
    let r = c
        .request("GET", path, None, LIMIT)
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(r.status, 200, "GET {path}: {}", r.body);
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("GET {path}: {e}: {}", r.body))
}

/// A POST that must be accepted.
fn create(c: &mut ApiClient, path: &str, body: Value) {
    let r = c
        .request("POST", path, Some(&body.to_string()), LIMIT)
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    assert!(
        r.status < 300,
        "POST {path} {body}: {} {}",
        r.status,
        r.body
    );
}

fn text(v: &Value, ptr: &str) -> String {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// Live objects of every kind the path IDs name, keyed as the paths are.
fn live_objects(c: &mut ApiClient) -> BTreeMap<String, Vec<Obj>> {
    let mut out = BTreeMap::new();
    let kinds = [
        ("services", "/ID", "/Spec/Name"),
        ("nodes", "/ID", "/Description/Hostname"),
        ("tasks", "/ID", "/Name"),
        ("secrets", "/ID", "/Spec/Name"),
        ("configs", "/ID", "/Spec/Name"),
        ("networks", "/Id", "/Name"),
    ];
    for (kind, id, name) in kinds {
        let list = get_json(c, &format!("/{kind}"));
        let objs = list
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| Obj {
                id: text(o, id),
                name: text(o, name),
            })
            .filter(|o| !o.id.is_empty())
            .collect();
        out.insert(kind.to_string(), objs);
    }
    out
}

/// Puts back one object of each kind when the run has removed them all,
/// so path IDs keep reaching live objects.
fn keep_fixtures(c: &mut ApiClient, live: &BTreeMap<String, Vec<Obj>>, batch: usize) {
    let few = |k: &str, n: usize| live.get(k).is_none_or(|v| v.len() < n);
    if few("tasks", 1) || few("services", 2) {
        create(
            c,
            "/services/create",
            json!({
                "Name": format!("fxsvc{batch}"),
                "TaskTemplate": {
                    "ContainerSpec": {"Image": "busybox:latest", "Args": ["sleep", "1000"]},
                    "Placement": {"Constraints": ["node.labels.fuzz==none"]},
                },
                "Mode": {"Replicated": {"Replicas": 1}},
            }),
        );
    }
    for kind in ["secrets", "configs"] {
        if few(kind, 2) {
            let path = format!("/{kind}/create");
            create(
                c,
                &path,
                json!({"Name": format!("fx{kind}{batch}"), "Data": "eA=="}),
            );
        }
    }
    let custom = live
        .get("networks")
        .into_iter()
        .flatten()
        .any(|n| n.name.starts_with("fx") || n.name.starts_with("fz"));
    if !custom {
        create(
            c,
            "/networks/create",
            json!({"Name": format!("fxnet{batch}"), "Driver": "overlay", "Attachable": true}),
        );
    }
}

/// Where long bodies of failed cases are kept for sending again.
fn scratch() -> &'static Path {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
}

/// What the run saw, for the report.
#[derive(Default)]
struct Tally {
    per_op: BTreeMap<String, BTreeMap<u16, usize>>,
    statuses: BTreeMap<u16, usize>,
    allowed: BTreeMap<&'static str, usize>,
    /// Distinct 5xx answers (operation, status, message) and how often.
    server_errors: BTreeMap<(String, u16, String), usize>,
    /// A case of each distinct 5xx, to send again.
    server_error_cases: BTreeMap<(String, u16, String), String>,
    failures: Vec<String>,
}

impl Tally {
    fn fail(&mut self, case: &Case, socket: &str, why: String) {
        if self.failures.len() < SHOWN {
            self.failures.push(format!(
                "case {} {} ({}): {why}\n  what: {}\n  again: {}",
                case.n,
                case.op,
                case.method,
                if case.what.is_empty() {
                    "a valid request".to_string()
                } else {
                    case.what.join("; ")
                },
                case.curl(socket, scratch())
            ));
        } else {
            self.failures.push(format!("case {}: {why}", case.n));
        }
    }

    fn print(&self, cases: usize, seed: u64, took: Duration) {
        println!(
            "fuzz run: {cases} cases, seed {seed}, {:.1} s",
            took.as_secs_f64()
        );
        println!("{:<16} {:>6}  statuses", "operation", "cases");
        for (op, hist) in &self.per_op {
            let n: usize = hist.values().sum();
            let shown: Vec<String> = hist.iter().map(|(s, c)| format!("{s}×{c}")).collect();
            println!("{op:<16} {n:>6}  {}", shown.join(" "));
        }
        let all: Vec<String> = self
            .statuses
            .iter()
            .map(|(s, c)| format!("{s}×{c}"))
            .collect();
        println!("all statuses: {}", all.join(" "));
        for (why, n) in &self.allowed {
            println!("accepted 5xx: {n} × {why}");
        }
        for ((op, status, message), n) in &self.server_errors {
            println!("5xx: {n} × {op} {status} {message:?}");
            if let Some(again) =
                self.server_error_cases
                    .get(&(op.clone(), *status, message.clone()))
            {
                println!("  e.g. {again}");
            }
        }
    }
}

/// Judges one answer.
fn judge(t: &mut Tally, case: &Case, socket: &str, reference: bool, status: u16, body: &str) {
    *t.statuses.entry(status).or_default() += 1;
    *t.per_op
        .entry(case.op.clone())
        .or_default()
        .entry(status)
        .or_default() += 1;
    if status < 400 {
        return;
    }
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string));
    let Some(message) = message else {
        let shown = &body[..body.len().min(300)];
        t.fail(
            case,
            socket,
            format!("{status} without a JSON message: {shown:?}"),
        );
        return;
    };
    if status >= 500 {
        let key = (case.op.clone(), status, message.clone());
        *t.server_errors.entry(key.clone()).or_default() += 1;
        t.server_error_cases
            .entry(key)
            .or_insert_with(|| format!("case {}: {}", case.n, case.curl(socket, scratch())));
        if reference {
            return;
        }
        match allowed(&case.op, status, &message) {
            Some(why) => *t.allowed.entry(why).or_default() += 1,
            None => t.fail(case, socket, format!("{status} {message:?}")),
        }
    }
}

#[test]
fn swarm_routes_answer_any_input_without_a_5xx_or_a_crash() {
    let cases = env_number("SHOAL_FUZZ_CASES", 3_000) as usize;
    let seed = env_number("SHOAL_FUZZ_SEED", 0x5ee_d14);
    // Every case and its answer, for tuning the generator.
    let verbose = std::env::var_os("SHOAL_FUZZ_VERBOSE").is_some();
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/swarm.yaml");
    let ops = fuzz_api::shape::load(&spec);
    assert!(
        ops.len() >= 30,
        "{} has {} operations",
        spec.display(),
        ops.len()
    );

    // Another engine's socket, or a shoald of the run's own.
    let reference = std::env::var_os("SHOAL_FUZZ_SOCKET").map(std::path::PathBuf::from);
    let d = reference.is_none().then(Daemon::with_swarm);
    let socket_path = reference
        .clone()
        .or_else(|| d.as_ref().map(Daemon::socket))
        .expect("a socket");
    let reference = reference.is_some();
    let socket = socket_path.display().to_string();
    let log = || d.as_ref().map(Daemon::log).unwrap_or_default();
    let mut c = ApiClient::new(&socket_path).expect("client");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut t = Tally::default();
    let started = Instant::now();
    let mut n = 0;
    for batch in 0..cases.div_ceil(BATCH) {
        let live = live_objects(&mut c);
        keep_fixtures(&mut c, &live, batch);
        let mut live = live_objects(&mut c);
        for _ in 0..BATCH.min(cases - n) {
            let by_kind = |k: &str| live.get(k).cloned().unwrap_or_default();
            let op = &ops[n % ops.len()];
            let case = {
                let mut current = |kind: &str, id: &str| {
                    let path = if kind == "swarm" {
                        "/swarm".to_string()
                    } else {
                        format!("/{kind}/{id}")
                    };
                    let r = c.request("GET", &path, None, LIMIT).ok()?;
                    serde_json::from_str(&r.body).ok()
                };
                case::make(&mut rng, n, op, &by_kind, &mut current)
            };
            let headers: Vec<(&str, &[u8])> = case
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_slice()))
                .collect();
            let mut send = || {
                c.request_raw(
                    &case.method,
                    &case.uri,
                    &headers,
                    case.body.as_deref(),
                    LIMIT,
                )
            };
            // Go's server closes a kept-alive connection after answering a
            // request whose body it did not read; the client learns it only
            // when the next request finds the connection gone, unanswered.
            // One more try on a new connection tells that from a crash.
            match send().or_else(|_| send()) {
                Ok(r) => {
                    if verbose {
                        let shown = &r.body[..r.body.len().min(200)];
                        println!(
                            "{} {} [{}] -> {} {shown}",
                            case.n,
                            case.op,
                            case.what.join("; "),
                            r.status
                        );
                    }
                    judge(&mut t, &case, &socket, reference, r.status, &r.body);
                    // Objects came or went: path IDs should name what is there now.
                    if case.method != "GET" && (200..300).contains(&r.status) {
                        live = live_objects(&mut c);
                    }
                }
                Err(e) => t.fail(&case, &socket, format!("no answer: {e:#}")),
            }
            n += 1;
        }
        let ping = c.request("GET", "/_ping", None, Duration::from_secs(10));
        if !matches!(&ping, Ok(r) if r.status == 200) {
            t.print(n, seed, started.elapsed());
            panic!(
                "shoald stopped answering /_ping after case {n}: {ping:?}\nfailures:\n{}\nlog tail:\n{}",
                t.failures.join("\n"),
                tail(&log())
            );
        }
    }
    t.print(n, seed, started.elapsed());

    let log = log();
    assert!(
        !log.contains("panicked"),
        "the daemon's log holds a panic:\n{}",
        tail(&log)
    );
    assert!(
        t.failures.is_empty(),
        "{} of {n} cases failed (seed {seed}):\n{}",
        t.failures.len(),
        t.failures.join("\n")
    );
    // The run must reach the handlers, not only the decoders.
    let ok: usize = t
        .statuses
        .iter()
        .filter(|(s, _)| (200..300).contains(*s))
        .map(|(_, c)| c)
        .sum();
    assert!(ok * 10 >= n, "only {ok} of {n} cases were accepted");
}

fn tail(log: &str) -> &str {
    let start = log.len().saturating_sub(4_000);
    let start = (start..log.len())
        .find(|&i| log.is_char_boundary(i))
        .unwrap_or(log.len());
    &log[start..]
}
