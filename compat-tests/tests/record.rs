//! Runs `shoal-record` between a small in-test hyper server and a hyper
//! client on temp Unix sockets, and checks that the client sees exactly what
//! the server sent (keep-alive, streamed bodies, a hung-up follow stream, an
//! upgraded connection) and that the cassette describes it.

use std::convert::Infallible;
use std::future::Future;
use std::path::Path;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Child;
use std::process::Command;
use std::task::Context;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use compat_tests::record::format::parse_lines;
use compat_tests::record::format::Exchange;
use http::Request;
use http::Response;
use http::StatusCode;
use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;
use http_body_util::Full;
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;
use tokio::net::UnixStream;

type TestBody = BoxBody<Bytes, Infallible>;

fn full(s: impl Into<Bytes>) -> TestBody {
    Full::new(s.into()).boxed()
}

async fn upstream_handler(mut req: Request<Incoming>) -> Result<Response<TestBody>, Infallible> {
    let path = req.uri().path().to_string();
    let resp = match (req.method().as_str(), path.as_str()) {
        ("HEAD", "/_ping") => Response::builder()
            .header("Api-Version", "1.41")
            .header("Ostype", "linux")
            .header("Content-Length", "0")
            .body(full(""))
            .unwrap(),
        ("GET", "/v1.41/version") => Response::builder()
            .header("Api-Version", "1.41")
            .header("Content-Type", "application/json")
            .body(full(r#"{"Version":"test","ApiVersion":"1.41"}"#))
            .unwrap(),
        ("POST", "/v1.41/secrets/create") => {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let reply =
                serde_json::json!({ "ID": format!("id-of-{}", v["Name"].as_str().unwrap()) });
            Response::builder()
                .status(201)
                .header("Content-Type", "application/json")
                .body(full(reply.to_string()))
                .unwrap()
        }
        ("GET", "/v1.41/logs") => Response::builder().body(Ticker::new().boxed()).unwrap(),
        ("POST", "/v1.41/exec/x/start") => {
            let on_upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let upgraded = on_upgrade.await.unwrap();
                let mut io = TokioIo::new(upgraded);
                let mut buf = [0u8; 5];
                io.read_exact(&mut buf).await.unwrap();
                io.write_all(b"echo:").await.unwrap();
                io.write_all(&buf).await.unwrap();
                io.shutdown().await.unwrap();
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("Content-Type", "application/vnd.docker.raw-stream")
                .header("Connection", "Upgrade")
                .header("Upgrade", "tcp")
                .body(full(""))
                .unwrap()
        }
        _ => Response::builder()
            .status(404)
            .header("Content-Type", "application/json")
            .body(full(r#"{"message":"page not found"}"#))
            .unwrap(),
    };
    Ok(resp)
}

/// An endless multiplexed log stream: one frame every 20 ms.
struct Ticker {
    n: u32,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Ticker {
    fn new() -> Self {
        Ticker {
            n: 0,
            sleep: Box::pin(tokio::time::sleep(Duration::from_millis(20))),
        }
    }
}

impl hyper::body::Body for Ticker {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.n += 1;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(20);
        self.sleep.as_mut().reset(deadline);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(log_frame(self.n))))))
    }
}

fn log_frame(n: u32) -> Vec<u8> {
    let line = format!("line {n}\n");
    let mut frame = vec![1u8, 0, 0, 0];
    frame.extend_from_slice(&(line.len() as u32).to_be_bytes());
    frame.extend_from_slice(line.as_bytes());
    frame
}

async fn start_upstream(path: &Path) {
    let listener = UnixListener::bind(path).unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(upstream_handler))
                    .with_upgrades()
                    .await;
            });
        }
    });
}

struct Recorder {
    child: Child,
    out: PathBuf,
}

impl Recorder {
    fn start(dir: &Path, upstream: &Path) -> (Self, PathBuf) {
        let listen = dir.join("proxy.sock");
        let out = dir.join("traffic.jsonl");
        let child = Command::new(env!("CARGO_BIN_EXE_shoal-record"))
            .arg("--listen")
            .arg(&listen)
            .arg("--upstream")
            .arg(upstream)
            .arg("--out")
            .arg(&out)
            .arg("--cap")
            .arg("100")
            .spawn()
            .unwrap();
        (Recorder { child, out }, listen)
    }

    /// Reads the cassette, waiting (bounded) until it holds `n` lines.
    async fn exchanges(&self, n: usize) -> Vec<Exchange> {
        for _ in 0..100 {
            let text = std::fs::read_to_string(&self.out).unwrap_or_default();
            let mut all = parse_lines(&text).unwrap();
            if all.len() >= n {
                all.sort_by_key(|e| e.seq);
                return all;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("cassette never reached {n} lines");
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_for(path: &Path) {
    for _ in 0..100 {
        // The file appears at bind, before the socket listens: a connect
        // is what says it is ready.
        if UnixStream::connect(path).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{} never appeared", path.display());
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(path: &Path) -> Sender {
    let stream = UnixStream::connect(path).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    sender
}

fn request(method: &str, path: &str, body: &str) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("Host", "api.moby.localhost");
    if !body.is_empty() {
        b = b
            .header("Content-Type", "application/json")
            .header("X-Registry-Auth", "c2VjcmV0");
    }
    b.body(Full::new(Bytes::from(body.to_string()))).unwrap()
}

#[tokio::test]
async fn proxies_and_records_keepalive_stream_and_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = dir.path().join("daemon.sock");
    start_upstream(&upstream).await;
    let (recorder, listen) = Recorder::start(dir.path(), &upstream);
    wait_for(&listen).await;

    // Several requests on one keep-alive connection.
    let mut c = connect(&listen).await;
    let r = c.send_request(request("HEAD", "/_ping", "")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["Api-Version"], "1.41");
    let r = c
        .send_request(request("GET", "/v1.41/version", ""))
        .await
        .unwrap();
    let body = r.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], br#"{"Version":"test","ApiVersion":"1.41"}"#);
    c.ready().await.unwrap();
    let r = c
        .send_request(request(
            "POST",
            "/v1.41/secrets/create",
            r#"{"Name":"s1","Data":"YQ=="}"#,
        ))
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body = r.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], br#"{"ID":"id-of-s1"}"#);
    c.ready().await.unwrap();
    let r = c.send_request(request("GET", "/nosuch", "")).await.unwrap();
    assert_eq!(r.status(), 404);
    let _ = r.into_body().collect().await.unwrap();

    // A follow stream: read a few frames as they arrive, then hang up.
    c.ready().await.unwrap();
    let r = c
        .send_request(request("GET", "/v1.41/logs?follow=1", ""))
        .await
        .unwrap();
    let mut body = r.into_body();
    let mut got = Vec::new();
    while got.len() < 3 * log_frame(1).len() {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        got.extend_from_slice(frame.data_ref().unwrap());
    }
    assert_eq!(&got[..log_frame(1).len()], &log_frame(1)[..]);
    drop(body);
    drop(c);

    // An upgraded (hijacked) connection on a second client connection.
    let mut c2 = connect(&listen).await;
    let req = Request::builder()
        .method("POST")
        .uri("/v1.41/exec/x/start")
        .header("Connection", "Upgrade")
        .header("Upgrade", "tcp")
        .header("Content-Type", "application/json")
        .body(Full::new(Bytes::from_static(br#"{"Detach":false}"#)))
        .unwrap();
    let resp = c2.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    let upgraded = hyper::upgrade::on(resp).await.unwrap();
    let mut io = TokioIo::new(upgraded);
    io.write_all(b"hello").await.unwrap();
    let mut echoed = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), io.read_to_end(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(echoed, b"echo:hello");

    let all = recorder.exchanges(6).await;
    let seqs: Vec<u64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
    assert!(all[..5].iter().all(|e| e.conn == all[0].conn));
    assert_ne!(all[5].conn, all[0].conn);

    assert_eq!(all[0].request.method, "HEAD");
    assert_eq!(all[0].response.headers["Api-Version"], "1.41");
    assert_eq!(all[0].response.body_kind, "empty");
    assert_eq!(all[1].response.body["Version"], "test");
    assert!(!all[1].response.streamed);
    let create = &all[2];
    assert_eq!(create.request.body["Name"], "s1");
    assert_eq!(create.request.headers["X-Registry-Auth"], "present");
    assert_eq!(create.request.headers["Content-Type"], "application/json");
    assert_eq!(create.response.status, 201);
    assert_eq!(create.response.body["ID"], "id-of-s1");
    assert_eq!(all[3].response.status, 404);
    assert_eq!(all[3].response.body["message"], "page not found");

    let logs = &all[4];
    assert!(logs.response.streamed);
    assert!(!logs.response.complete);
    assert_eq!(logs.response.body_kind, "frames");
    assert_eq!(logs.response.body[0]["data"], "line 1\n");
    assert!(logs.response.body_len >= 3 * log_frame(1).len() as u64);

    let exec = &all[5];
    assert!(exec.hijacked);
    assert_eq!(exec.response.status, 101);
    assert_eq!(exec.request.headers["Upgrade"], "tcp");
    assert_eq!(exec.response.headers["Upgrade"], "tcp");
}

#[tokio::test]
async fn caps_long_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = dir.path().join("daemon.sock");
    start_upstream(&upstream).await;
    let (recorder, listen) = Recorder::start(dir.path(), &upstream);
    wait_for(&listen).await;
    let mut c = connect(&listen).await;
    let r = c
        .send_request(request("GET", "/v1.41/logs", ""))
        .await
        .unwrap();
    let mut body = r.into_body();
    let mut n = 0;
    while n < 200 {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        n += frame.data_ref().map_or(0, |d| d.len());
    }
    drop(body);
    drop(c);
    let all = recorder.exchanges(1).await;
    assert!(all[0].response.truncated);
    assert!(all[0].response.body_len >= 200);
}
