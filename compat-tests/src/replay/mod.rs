//! The replayer: sends a scenario's recorded requests to a daemon, in order,
//! and compares what comes back with the recording.
//!
//! - [`cassette`] loads scenarios and their rules;
//! - [`capture`] rebinds IDs, tokens and versions made by earlier responses;
//! - [`matcher`] compares one response with its recording;
//! - [`report`] keys differences, applies `KNOWN_DIFFERENCES.md` and prints.
//!
//! Requests keep their recorded connection grouping (one client connection
//! per recorded `conn`, kept alive) and, unless pacing is off, their
//! recorded timing, so that polling loops see the daemon at the same stage
//! of its work as the recording did.

pub mod capture;
pub mod cassette;
pub mod matcher;
pub mod report;

use std::collections::HashMap;
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::UnixStream;

use self::capture::Bindings;
use self::cassette::Scenario;
use self::matcher::Actual;
use self::matcher::EnumSets;
use self::report::ExchangeResult;
use crate::record::format::decode_body;
use crate::record::format::encode_body;
use crate::record::format::expand_repeats;
use crate::record::format::Exchange;
use crate::record::format::RESPONSE_HEADERS;

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// How to replay.
#[derive(Debug, Clone)]
pub struct Options {
    /// Daemon socket.
    pub socket: PathBuf,
    /// Keep the recorded time between requests.
    pub pace: bool,
    /// Docker-archive of the test image for the `load-test-image` setup
    /// step and for recorded `docker load` requests.
    pub image_tar: Option<PathBuf>,
    /// Bound on one request plus its response body.
    pub request_timeout: Duration,
}

impl Options {
    /// Options with pacing on and a 60 s request bound.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Options {
            socket: socket.into(),
            pace: true,
            image_tar: None,
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// Replays one scenario against a daemon that is in the scenario's starting
/// state (fresh, not in a swarm). Returns one result per recorded exchange.
pub async fn replay_scenario(scenario: &Scenario, opts: &Options) -> Vec<ExchangeResult> {
    if scenario.meta.setup.iter().any(|s| s == "load-test-image") {
        if let Err(e) = load_image(opts).await {
            eprintln!(
                "shoal-replay: {}: loading the test image failed: {e}",
                scenario.name
            );
        }
    }
    let enums = EnumSets::from_exchanges(&scenario.exchanges);
    let mut run = Run {
        opts,
        conns: HashMap::new(),
        bindings: Bindings::default(),
    };
    let start = Instant::now();
    let base = scenario.exchanges.first().map_or(0, |e| e.at_ms);
    let mut results = Vec::new();
    for ex in &scenario.exchanges {
        if opts.pace {
            let due = start + Duration::from_millis(ex.at_ms.saturating_sub(base));
            tokio::time::sleep_until(due.into()).await;
        }
        let path = run.bindings.rewrite_path(&ex.request.path);
        let request = format!("{} {}", ex.request.method, path);
        let mut result = ExchangeResult {
            scenario: scenario.name.clone(),
            seq: ex.seq,
            request,
            diffs: Vec::new(),
            error: None,
        };
        match run.exchange(ex, &path).await {
            Ok(actual) => {
                match (ex.response.body_kind.as_str(), actual.body_kind.as_str()) {
                    ("json", "json") => {
                        run.bindings
                            .learn(&ex.request.path, &ex.response.body, &actual.body)
                    }
                    ("frames", "frames") => {
                        run.bindings.learn_frames(&ex.response.body, &actual.body)
                    }
                    _ => {}
                }
                let rule = scenario.rules.for_exchange(ex);
                result.diffs = matcher::compare(ex, &actual, &rule, &enums);
            }
            Err(e) => result.error = Some(format!("{e:#}")),
        }
        results.push(result);
    }
    results
}

struct Run<'a> {
    opts: &'a Options,
    conns: HashMap<u64, Sender>,
    bindings: Bindings,
}

impl Run<'_> {
    async fn exchange(&mut self, ex: &Exchange, path: &str) -> anyhow::Result<Actual> {
        let body = self.request_body(ex)?;
        let req = build_request(ex, path, body.clone())?;
        let limit = self.opts.request_timeout;
        let sender = self.sender(ex.conn).await?;
        let resp = match tokio::time::timeout(limit, sender.send_request(req)).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) | Err(_) => {
                // The daemon may have closed the connection (e.g. after an
                // error); retry once on a new one.
                self.conns.remove(&ex.conn);
                let sender = self.sender(ex.conn).await?;
                let req = build_request(ex, path, body)?;
                tokio::time::timeout(limit, sender.send_request(req)).await??
            }
        };
        if ex.hijacked {
            self.conns.remove(&ex.conn);
        }
        read_actual(resp, ex, limit).await
    }

    fn request_body(&self, ex: &Exchange) -> anyhow::Result<Bytes> {
        let r = &ex.request;
        match r.body_kind.as_str() {
            "json" => Ok(Bytes::from(serde_json::to_vec(
                &self.bindings.rewrite_json(&expand_repeats(&r.body)),
            )?)),
            "omitted" => match &self.opts.image_tar {
                Some(p) if r.path.contains("/images/load") => Ok(Bytes::from(std::fs::read(p)?)),
                _ => anyhow::bail!("request body was not recorded ({} bytes)", r.body_len),
            },
            kind => decode_body(&r.body, kind)
                .map(Bytes::from)
                .ok_or_else(|| anyhow::anyhow!("bad body kind {kind}")),
        }
    }

    async fn sender(&mut self, conn: u64) -> anyhow::Result<&mut Sender> {
        let stale = match self.conns.get_mut(&conn) {
            Some(s) => s.ready().await.is_err(),
            None => true,
        };
        if stale {
            let s = connect(&self.opts.socket).await?;
            self.conns.insert(conn, s);
        }
        self.conns
            .get_mut(&conn)
            .ok_or_else(|| anyhow::anyhow!("no connection"))
    }
}

async fn connect(socket: &Path) -> anyhow::Result<Sender> {
    let stream = UnixStream::connect(socket).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok(sender)
}

fn build_request(
    ex: &Exchange,
    path: &str,
    body: Bytes,
) -> anyhow::Result<http::Request<Full<Bytes>>> {
    let mut b = http::Request::builder()
        .method(ex.request.method.as_str())
        .uri(path)
        .header("Host", "api.moby.localhost")
        .header("User-Agent", "Docker-Client/28.2.2 (linux)");
    for (name, value) in &ex.request.headers {
        let value = if name.eq_ignore_ascii_case("X-Registry-Auth") {
            "e30="
        } else {
            value.as_str().unwrap_or("")
        };
        b = b.header(name.as_str(), value);
    }
    Ok(b.body(Full::new(body))?)
}

async fn read_actual(
    resp: http::Response<hyper::body::Incoming>,
    ex: &Exchange,
    limit: Duration,
) -> anyhow::Result<Actual> {
    let status = resp.status().as_u16();
    let mut headers = serde_json::Map::new();
    for name in RESPONSE_HEADERS {
        if let Some(v) = resp.headers().get(*name) {
            headers.insert(
                (*name).to_string(),
                Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
            );
        }
    }
    let ct = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = if ex.hijacked {
        Vec::new()
    } else if ex.response.complete {
        tokio::time::timeout(limit, resp.into_body().collect())
            .await??
            .to_bytes()
            .to_vec()
    } else {
        read_some(
            resp.into_body(),
            ex.response.body_len as usize,
            Duration::from_secs(3),
        )
        .await
    };
    // dockerd >= 23 labels a multiplexed log stream `raw-stream` for API
    // versions before 1.42 (20.10 sends no type at all); where the recording
    // holds frames, let the bytes decide so that both sides compare (and
    // bind IDs) frame by frame.
    let ct = ct.filter(|c| !(c.contains("raw-stream") && ex.response.body_kind == "frames"));
    let enc = encode_body(&bytes, ct.as_deref(), false);
    Ok(Actual {
        status,
        headers,
        body: enc.value,
        body_kind: enc.kind.to_string(),
    })
}

/// Reads a stream that the recorded client hung up on: up to `want` bytes
/// or until `limit` passes.
async fn read_some(mut body: hyper::body::Incoming, want: usize, limit: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    while out.len() < want.max(1) {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    out.extend_from_slice(d);
                }
            }
            _ => break,
        }
    }
    out
}

async fn load_image(opts: &Options) -> anyhow::Result<()> {
    let Some(tar) = &opts.image_tar else {
        anyhow::bail!("no --image-tar given")
    };
    let body = Bytes::from(std::fs::read(tar)?);
    let mut sender = connect(&opts.socket).await?;
    let req = http::Request::builder()
        .method("POST")
        .uri("/images/load?quiet=1")
        .header("Host", "api.moby.localhost")
        .header("Content-Type", "application/x-tar")
        .body(Full::new(body))?;
    let resp = tokio::time::timeout(opts.request_timeout, sender.send_request(req)).await??;
    let status = resp.status();
    let text = tokio::time::timeout(opts.request_timeout, resp.into_body().collect())
        .await??
        .to_bytes();
    if !status.is_success() {
        anyhow::bail!("{status}: {}", String::from_utf8_lossy(&text));
    }
    Ok(())
}

/// Builds the test image with `compat-tests/scripts/make-test-image.sh`
/// (found from the scenarios folder, `api-fixtures/scenarios`) into `out`.
pub fn build_test_image(scenarios: &Path, out: &Path) -> anyhow::Result<()> {
    let root = scenarios.canonicalize()?;
    let script = root
        .ancestors()
        .map(|a| a.join("compat-tests/scripts/make-test-image.sh"))
        .find(|p| p.exists())
        .ok_or_else(|| anyhow::anyhow!("make-test-image.sh not found above {}", root.display()))?;
    let status = std::process::Command::new("bash")
        .arg(&script)
        .arg(out)
        .stdout(std::process::Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "{} failed", script.display());
    Ok(())
}
