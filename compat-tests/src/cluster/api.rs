//! A blocking Engine API client over a node's Unix socket, for measuring
//! the engine without the CLI's own start-up cost: one kept-alive HTTP/1.1
//! connection, requests one at a time, each bounded in time.

use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

/// The API version prefix of every request (the lowest both engines speak:
/// Debian's dockerd 20.10 answers 1.41).
pub const API_PREFIX: &str = "/v1.41";

/// One answer: status and body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body as text.
    pub body: String,
}

/// A client of one engine socket. Not shared between threads: each
/// thread makes its own.
pub struct ApiClient {
    socket: PathBuf,
    rt: tokio::runtime::Runtime,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("socket", &self.socket)
            .finish()
    }
}

impl ApiClient {
    /// A client of the engine at `socket` (connects on first use).
    pub fn new(socket: &Path) -> anyhow::Result<ApiClient> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(ApiClient {
            socket: socket.to_path_buf(),
            rt,
            sender: None,
        })
    }

    /// Sends `method path` (under [`API_PREFIX`]) with an optional JSON
    /// body; fails when no answer came within `limit`. A failed request
    /// drops the connection, so the next one starts afresh.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        json: Option<&str>,
        limit: Duration,
    ) -> anyhow::Result<Reply> {
        let req = build(method, path, json)?;
        self.send_bounded(req, limit)
    }

    /// Sends a request given byte for byte: `uri` as it goes on the wire
    /// (its own version prefix, if any), extra headers, and a body that
    /// need not be UTF-8 or JSON. For callers that test input handling.
    pub fn request_raw(
        &mut self,
        method: &str,
        uri: &str,
        headers: &[(&str, &[u8])],
        body: Option<&[u8]>,
        limit: Duration,
    ) -> anyhow::Result<Reply> {
        let mut b = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("Host", "api.moby.localhost");
        if body.is_some() {
            b = b.header("Content-Type", "application/json");
        }
        for (name, value) in headers {
            b = b.header(*name, http::HeaderValue::from_bytes(value)?);
        }
        let req = b.body(Full::new(Bytes::copy_from_slice(body.unwrap_or(b""))))?;
        self.send_bounded(req, limit)
    }

    fn send_bounded(
        &mut self,
        req: http::Request<Full<Bytes>>,
        limit: Duration,
    ) -> anyhow::Result<Reply> {
        let socket = self.socket.clone();
        let mut sender = self.sender.take();
        let (reply, sender) = self.rt.block_on(async move {
            let fut = async {
                let s = match sender.take() {
                    Some(s) if !s.is_closed() => s,
                    _ => connect(&socket).await?,
                };
                send(s, req).await
            };
            match tokio::time::timeout(limit, fut).await {
                Ok(Ok((reply, s))) => (Ok(reply), Some(s)),
                Ok(Err(e)) => (Err(e), None),
                Err(_) => (Err(anyhow::anyhow!("no answer within {limit:?}")), None),
            }
        });
        self.sender = sender;
        reply
    }
}

/// Sends one request on a connection of its own (for callers that keep
/// several in flight), bounded by `limit`.
pub async fn request_once(
    socket: &Path,
    method: &str,
    path: &str,
    json: Option<&str>,
    limit: Duration,
) -> anyhow::Result<Reply> {
    let req = build(method, path, json)?;
    let fut = async {
        let s = connect(socket).await?;
        send(s, req).await.map(|(reply, _)| reply)
    };
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {limit:?}"))?
}

fn build(
    method: &str,
    path: &str,
    json: Option<&str>,
) -> anyhow::Result<http::Request<Full<Bytes>>> {
    let mut b = http::Request::builder()
        .method(method)
        .uri(format!("{API_PREFIX}{path}"))
        .header("Host", "api.moby.localhost");
    if json.is_some() {
        b = b.header("Content-Type", "application/json");
    }
    let body = Bytes::from(json.unwrap_or("").to_string());
    Ok(b.body(Full::new(body))?)
}

async fn connect(socket: &Path) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = UnixStream::connect(socket)
        .await
        .with_context(|| format!("connect {}", socket.display()))?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn send(
    mut s: SendRequest<Full<Bytes>>,
    req: http::Request<Full<Bytes>>,
) -> anyhow::Result<(Reply, SendRequest<Full<Bytes>>)> {
    s.ready().await?;
    let resp = s.send_request(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((
        Reply {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        },
        s,
    ))
}
