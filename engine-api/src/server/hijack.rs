//! Taking over a connection for a stream both ways (`exec` start, and
//! `attach` when it comes), as dockerd hijacks it.
//!
//! A client that sends `Upgrade: tcp` (the CLI and the SDKs do) gets
//! `HTTP/1.1 101 UPGRADED` and then owns a raw byte stream both ways on
//! the same socket. hyper hands the socket over only after a 101, so a
//! client that does not ask gets a `200` whose body is the output: hyper
//! frames that body in HTTP chunks (dockerd writes it unframed on the bare
//! socket) and no input can be read from it.
//!
//! The listener must serve connections with upgrades enabled
//! (`serve_connection_with_upgrades`), as [`super::listener`] does.

use std::future::Future;

use axum::body::Body;
use axum::body::Bytes;
use axum::extract::Request;
use axum::http::header;
use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::response::Response;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncRead;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWrite;

/// dockerd's content type for a raw (or, before API 1.42, any) stream.
pub const RAW_STREAM: &str = "application/vnd.docker.raw-stream";
/// dockerd's content type for a multiplexed stream (API 1.42 and later).
pub const MUX_STREAM: &str = "application/vnd.docker.multiplexed-stream";
/// Bytes moved per read of the `200` body.
const CHUNK: usize = 32 * 1024;

/// What the client sends once the connection is taken over.
pub type Input = Box<dyn AsyncRead + Send + Unpin>;
/// Where the stream goes to the client. Shutting it down ends the stream.
pub type Output = Box<dyn AsyncWrite + Send + Unpin>;

/// The connection of a request, to be taken over by [`Hijack::respond`].
#[derive(Debug)]
pub struct Hijack {
    upgrade: Option<OnUpgrade>,
}

impl Hijack {
    /// Takes the upgrade handle out of `req` if the client asked for an
    /// upgrade. Call before consuming the body.
    pub fn new(req: &mut Request) -> Hijack {
        let asked = req.headers().contains_key(header::UPGRADE);
        let upgrade = req.extensions_mut().remove::<OnUpgrade>();
        Hijack {
            upgrade: upgrade.filter(|_| asked),
        }
    }

    /// The response that hands the connection over, with `session`
    /// spawned to run on it: `101 UPGRADED` with `content_type` and
    /// `session(Some(input), output)` on the socket; or, without an
    /// upgrade, `200` with the raw-stream type and `session(None, output)`
    /// writing the body.
    pub fn respond<F, Fut>(self, content_type: &'static str, session: F) -> Response
    where
        F: FnOnce(Option<Input>, Output) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        match self.upgrade {
            Some(upgrade) => {
                tokio::spawn(async move {
                    match upgrade.await {
                        Ok(conn) => {
                            let (input, output) = tokio::io::split(TokioIo::new(conn));
                            session(Some(Box::new(input)), Box::new(output)).await;
                        }
                        Err(e) => tracing::debug!(error = %e, "connection upgrade failed"),
                    }
                });
                upgraded(content_type)
            }
            None => {
                let (output, body) = tokio::io::duplex(2 * CHUNK);
                tokio::spawn(session(None, Box::new(output)));
                streamed(body)
            }
        }
    }
}

/// dockerd's `101 UPGRADED` answer; the stream follows on the socket.
fn upgraded(content_type: &'static str) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    r.extensions_mut()
        .insert(hyper::ext::ReasonPhrase::from_static(b"UPGRADED"));
    r
}

/// A `200` whose body is what is written into `body`'s other end.
fn streamed(body: tokio::io::DuplexStream) -> Response {
    let chunks = futures::stream::unfold(body, |mut body| async move {
        let mut buf = vec![0u8; CHUNK];
        match body.read(&mut buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::convert::Infallible>(Bytes::from(buf)), body))
            }
        }
    });
    let mut r = Response::new(Body::from_stream(chunks));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(RAW_STREAM));
    r
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn without_an_upgrade_the_output_is_the_body() {
        let mut req = Request::new(Body::empty());
        let r = Hijack::new(&mut req).respond(MUX_STREAM, |input, mut output| async move {
            assert!(input.is_none());
            let _ = output.write_all(b"out").await;
            let _ = output.shutdown().await;
        });
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], RAW_STREAM);
        let body = axum::body::to_bytes(r.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], b"out");
    }

    #[test]
    fn the_upgrade_answer_is_dockerds() {
        let r = upgraded(MUX_STREAM);
        assert_eq!(r.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(r.headers()[header::UPGRADE], "tcp");
        assert_eq!(r.headers()[header::CONNECTION], "Upgrade");
        let reason = r.extensions().get::<hyper::ext::ReasonPhrase>().unwrap();
        assert_eq!(reason.as_bytes(), b"UPGRADED");
    }
}
