//! The recording proxy: a Unix-socket HTTP/1.1 man in the middle.
//!
//! Why this shape: every client connection gets its own upstream connection,
//! opened when the client connects and closed when it goes. The Docker CLI
//! keeps one keep-alive connection per process and puts all its requests on
//! it, and a daemon may tie state to a connection (hijacked streams), so a
//! one-to-one mapping is the only one that never changes what the daemon
//! sees. hyper parses both sides; requests are forwarded one at a time in the
//! order they arrive (HTTP/1.1 has no concurrency inside a connection).
//!
//! Request bodies are read whole before forwarding (Docker clients send
//! small, complete bodies; `docker load` sends a tar of a few MiB). Response
//! bodies are passed on frame by frame as they arrive, so `logs --follow`
//! and progress streams reach the client at once; a copy of the first
//! `cap` bytes is kept for the cassette. The exchange is written when the
//! body ends or the client drops it.
//!
//! A `101 Switching Protocols` answer (exec/attach with `Upgrade: tcp`) is
//! passed to the client, then both upgraded connections are spliced byte for
//! byte until either side closes. The exchange is marked `hijacked`.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Context;
use std::task::Poll;
use std::time::Instant;

use bytes::Bytes;
use http::HeaderMap;
use http::Request;
use http::Response;
use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;
use http_body_util::Full;
use hyper::body::Body;
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Map;
use serde_json::Value;
use tokio::net::UnixListener;
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio::sync::Mutex;

use super::format::encode_body;
use super::format::Exchange;
use super::format::RecordedRequest;
use super::format::RecordedResponse;
use super::format::REQUEST_HEADERS;
use super::format::RESPONSE_HEADERS;

/// Default number of response (and request) body bytes kept per exchange.
pub const DEFAULT_CAP: usize = 64 * 1024;

type ProxyBody = BoxBody<Bytes, hyper::Error>;
type Upstream = Arc<Mutex<hyper::client::conn::http1::SendRequest<Full<Bytes>>>>;

/// What every connection handler shares.
#[derive(Clone)]
pub struct Shared {
    upstream: PathBuf,
    sink: mpsc::UnboundedSender<Exchange>,
    cap: usize,
    seq: Arc<AtomicU64>,
    conns: Arc<AtomicU64>,
    started: Instant,
}

impl Shared {
    /// Creates the shared state; exchanges go to `sink` as they complete.
    pub fn new(upstream: PathBuf, sink: mpsc::UnboundedSender<Exchange>, cap: usize) -> Self {
        Shared {
            upstream,
            sink,
            cap,
            seq: Arc::new(AtomicU64::new(0)),
            conns: Arc::new(AtomicU64::new(0)),
            started: Instant::now(),
        }
    }
}

/// Accepts client connections on `listener` forever, proxying each to the
/// upstream socket. Returns only on an accept error.
pub async fn serve(listener: UnixListener, shared: Shared) -> anyhow::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = handle_connection(stream, shared).await {
                eprintln!("shoal-record: connection: {e}");
            }
        });
    }
}

async fn handle_connection(client: UnixStream, shared: Shared) -> anyhow::Result<()> {
    let conn_no = shared.conns.fetch_add(1, Ordering::SeqCst) + 1;
    let upstream_io = UnixStream::connect(&shared.upstream).await?;
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .preserve_header_case(true)
        .handshake(TokioIo::new(upstream_io))
        .await?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let upstream: Upstream = Arc::new(Mutex::new(sender));
    let service = service_fn(move |req| {
        let shared = shared.clone();
        let upstream = upstream.clone();
        async move { Ok::<_, hyper::Error>(forward(req, shared, upstream, conn_no).await) }
    });
    hyper::server::conn::http1::Builder::new()
        .preserve_header_case(true)
        .keep_alive(true)
        .serve_connection(TokioIo::new(client), service)
        .with_upgrades()
        .await?;
    Ok(())
}

/// Forwards one request and returns the response to give the client.
async fn forward(
    mut req: Request<Incoming>,
    shared: Shared,
    upstream: Upstream,
    conn: u64,
) -> Response<ProxyBody> {
    let seq = shared.seq.fetch_add(1, Ordering::SeqCst) + 1;
    let at_ms = shared.started.elapsed().as_millis() as u64;
    let wants_upgrade = req.headers().contains_key(http::header::UPGRADE);
    let client_upgrade = wants_upgrade.then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error_response(&format!("reading request body: {e}")),
    };
    let recorded_req = record_request(&parts, &body, shared.cap);
    let fwd = Request::from_parts(parts, Full::new(body));
    let result = {
        let mut sender = upstream.lock().await;
        match sender.ready().await {
            Ok(()) => sender.send_request(fwd).await,
            Err(e) => Err(e),
        }
    };
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => {
            let ex = Exchange {
                seq,
                conn,
                at_ms,
                request: recorded_req,
                response: empty_response(502),
                hijacked: false,
            };
            let _ = shared.sink.send(ex);
            return error_response(&format!("upstream: {e}"));
        }
    };
    let headers = pick_headers(resp.headers(), RESPONSE_HEADERS);
    let status = resp.status();
    if status == http::StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            tokio::spawn(splice(client_upgrade, upstream_upgrade));
        }
        let mut response = empty_response(status.as_u16());
        response.headers = headers;
        let ex = Exchange {
            seq,
            conn,
            at_ms,
            request: recorded_req,
            response,
            hijacked: true,
        };
        let _ = shared.sink.send(ex);
        let (parts, body) = resp.into_parts();
        return Response::from_parts(parts, body.boxed());
    }
    let streamed = !resp.headers().contains_key(http::header::CONTENT_LENGTH);
    let content_type = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let pending = Pending {
        seq,
        conn,
        at_ms,
        request: recorded_req,
        status: status.as_u16(),
        headers,
        content_type,
        streamed,
    };
    let (parts, body) = resp.into_parts();
    let tee = TeeBody {
        inner: body,
        cap: shared.cap,
        kept: Vec::new(),
        seen: 0,
        pending: Some(pending),
        sink: shared.sink.clone(),
    };
    Response::from_parts(parts, tee.boxed())
}

/// Splices two upgraded connections until either side closes.
async fn splice(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    let (client, upstream) = match tokio::join!(client, upstream) {
        (Ok(c), Ok(u)) => (c, u),
        _ => return,
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

fn record_request(parts: &http::request::Parts, body: &Bytes, cap: usize) -> RecordedRequest {
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let headers = pick_headers(&parts.headers, REQUEST_HEADERS);
    let ct = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let is_json = ct.is_some_and(|c| c.contains("json"));
    // JSON request bodies are kept whole (the scrub hook compresses the big
    // repetitive ones); other bodies (image tars) only up to the cap.
    let (value, kind) = if body.len() > cap && !is_json {
        (Value::Null, "omitted")
    } else {
        let enc = encode_body(body, ct, false);
        (enc.value, enc.kind)
    };
    RecordedRequest {
        method: parts.method.as_str().to_string(),
        path,
        headers,
        body: value,
        body_kind: kind.to_string(),
        body_len: body.len() as u64,
    }
}

/// Keeps the headers named in `names`, spelled as there. `X-Registry-Auth`
/// is reduced to `present`.
fn pick_headers(headers: &HeaderMap, names: &[&str]) -> Map<String, Value> {
    let mut out = Map::new();
    for name in names {
        if let Some(v) = headers.get(*name) {
            let value = if name.eq_ignore_ascii_case("X-Registry-Auth") {
                "present".to_string()
            } else {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            };
            out.insert((*name).to_string(), Value::String(value));
        }
    }
    out
}

fn empty_response(status: u16) -> RecordedResponse {
    RecordedResponse {
        status,
        headers: Map::new(),
        body: Value::Null,
        body_kind: "empty".into(),
        body_len: 0,
        streamed: false,
        truncated: false,
        complete: true,
    }
}

fn error_response(msg: &str) -> Response<ProxyBody> {
    let body = serde_json::json!({ "message": format!("shoal-record: {msg}") }).to_string();
    let mut resp = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = http::StatusCode::BAD_GATEWAY;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// Everything about an exchange except the response body, held until the
/// body ends.
struct Pending {
    seq: u64,
    conn: u64,
    at_ms: u64,
    request: RecordedRequest,
    status: u16,
    headers: Map<String, Value>,
    content_type: Option<String>,
    streamed: bool,
}

/// A response body that passes frames through and keeps a copy of the first
/// `cap` bytes. The exchange is emitted at the end of the body, or when the
/// body is dropped early (client hung up on a follow stream).
struct TeeBody {
    inner: Incoming,
    cap: usize,
    kept: Vec<u8>,
    seen: u64,
    pending: Option<Pending>,
    sink: mpsc::UnboundedSender<Exchange>,
}

impl TeeBody {
    fn finish(&mut self, complete: bool) {
        let Some(p) = self.pending.take() else { return };
        let truncated = self.seen > self.kept.len() as u64;
        let enc = encode_body(&self.kept, p.content_type.as_deref(), truncated);
        let response = RecordedResponse {
            status: p.status,
            headers: p.headers,
            body: enc.value,
            body_kind: enc.kind.to_string(),
            body_len: self.seen,
            streamed: p.streamed,
            truncated,
            complete,
        };
        let ex = Exchange {
            seq: p.seq,
            conn: p.conn,
            at_ms: p.at_ms,
            request: p.request,
            response,
            hijacked: false,
        };
        let _ = self.sink.send(ex);
    }
}

impl Body for TeeBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    let room = this.cap.saturating_sub(this.kept.len());
                    this.kept.extend_from_slice(&data[..room.min(data.len())]);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.finish(false);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.finish(true);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TeeBody {
    fn drop(&mut self) {
        let complete = self.inner.is_end_stream();
        self.finish(complete);
    }
}
