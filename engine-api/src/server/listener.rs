//! Listeners: `unix://PATH` (mode 0660, group `docker`, like dockerd's
//! socket) and `tcp://HOST[:PORT]`, with TLS from dockerd's flags.

use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use hyper_util::rt::TokioExecutor;
use hyper_util::rt::TokioIo;
use hyper_util::rt::TokioTimer;
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use nix::sys::socket::recv;
use nix::sys::socket::MsgFlags;
use rustls::ServerConfig;
use tokio::io::Interest;
use tokio::net::TcpListener;
use tokio::net::UnixListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::DEFAULT_GROUP;

/// dockerd's TCP ports: plain and TLS.
const PLAIN_PORT: u16 = 2375;
const TLS_PORT: u16 = 2376;
/// How long a stopping daemon lets in-flight responses finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// A TLS handshake that takes longer is dropped, so a client that stalls
/// holds no more than a task for this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to send a request head (dockerd's
/// ReadHeaderTimeout); `SHOAL_HEADER_READ_TIMEOUT_SECS` shortens it for
/// tests.
fn header_read_timeout() -> Duration {
    std::env::var("SHOAL_HEADER_READ_TIMEOUT_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(300), Duration::from_secs)
}

/// A freshly accepted stream socket.
trait Accepted: AsRawFd {
    /// Waits for read readiness (which may be spurious).
    fn readable(&self) -> impl std::future::Future<Output = std::io::Result<()>> + Send;
    /// Runs `f` and clears read readiness if it would block.
    fn try_read_io(&self, f: impl FnOnce() -> std::io::Result<usize>) -> std::io::Result<usize>;
}

impl Accepted for tokio::net::UnixStream {
    fn readable(&self) -> impl std::future::Future<Output = std::io::Result<()>> + Send {
        tokio::net::UnixStream::readable(self)
    }
    fn try_read_io(&self, f: impl FnOnce() -> std::io::Result<usize>) -> std::io::Result<usize> {
        self.try_io(Interest::READABLE, f)
    }
}

impl Accepted for tokio::net::TcpStream {
    fn readable(&self) -> impl std::future::Future<Output = std::io::Result<()>> + Send {
        tokio::net::TcpStream::readable(self)
    }
    fn try_read_io(&self, f: impl FnOnce() -> std::io::Result<usize>) -> std::io::Result<usize> {
        self.try_io(Interest::READABLE, f)
    }
}

/// Whether the client sent a byte (or hung up) within the head timeout:
/// a connection that never says a word is dropped like a slow head (see
/// `serve_conn`), as Go's ReadHeaderTimeout drops it in dockerd. The byte
/// is peeked, not taken.
async fn said_something<S: Accepted + Sync>(s: &S) -> bool {
    let fd = s.as_raw_fd();
    let first = async {
        loop {
            if s.readable().await.is_err() {
                return;
            }
            let peeked = s.try_read_io(|| {
                let mut b = [0u8; 1];
                recv(fd, &mut b, MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT)
                    .map_err(std::io::Error::from)
            });
            match peeked {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                _ => return,
            }
        }
    };
    tokio::time::timeout(header_read_timeout(), first)
        .await
        .is_ok()
}

/// A parsed `-H` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A Unix socket path.
    Unix(String),
    /// A TCP address, as given (the port may be missing).
    Tcp(String),
}

impl Host {
    /// Parses `unix:///path`, `tcp://host[:port]` or a bare path.
    pub fn parse(s: &str) -> anyhow::Result<Host> {
        if let Some(p) = s.strip_prefix("unix://") {
            return Ok(Host::Unix(p.to_string()));
        }
        if let Some(a) = s.strip_prefix("tcp://") {
            return Ok(Host::Tcp(a.trim_end_matches('/').to_string()));
        }
        if s.starts_with('/') {
            return Ok(Host::Unix(s.to_string()));
        }
        anyhow::bail!("invalid host {s}: use unix:///path or tcp://host:port")
    }
}

/// What every listener shares.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// The Unix sockets' group.
    pub group: String,
    /// TLS of TCP listeners, if on.
    pub tls: Option<Arc<ServerConfig>>,
    /// Whether TCP clients must present a certificate of the CA.
    pub verify: bool,
    /// Plain TCP was asked for explicitly (`--tls=false`).
    pub tls_explicitly_off: bool,
}

/// Serves `app` on `host` until `cancel` fires.
pub async fn serve(
    host: Host,
    opts: ListenOptions,
    app: Router,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    // Connections end before `serve` returns (bounded), so the last chunk
    // of every response is written before the process exits.
    let conns = TaskTracker::new();
    let mut backoff = AcceptBackoff::default();
    match host {
        Host::Unix(path) => {
            let path = Path::new(&path);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("create {}", dir.display()))?;
            }
            // A socket left by a previous run is replaced, as dockerd does.
            let _ = std::fs::remove_file(path);
            let l = UnixListener::bind(path)
                .with_context(|| format!("listen on {}", path.display()))?;
            set_group(path, &opts.group)?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
            tracing::info!(socket = %path.display(), "API listening");
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    r = l.accept() => {
                        let Some((s, _)) = backoff.take(r).await? else { continue };
                        let (app, cancel) = (app.clone(), cancel.clone());
                        conns.spawn(async move {
                            // A connection that never says a word is
                            // dropped like a slow head (see serve_conn).
                            if said_something(&s).await {
                                serve_conn(TokioIo::new(s), app, cancel).await;
                            }
                        });
                    }
                }
            }
            let _ = std::fs::remove_file(path);
        }
        Host::Tcp(given) => {
            let addr = with_default_port(&given, opts.tls.is_some());
            if !opts.verify {
                warn_unauthenticated(&format!("tcp://{given}"), &addr, opts.tls_explicitly_off)
                    .await;
            }
            let l = TcpListener::bind(&addr)
                .await
                .with_context(|| format!("listen on {addr}"))?;
            tracing::info!(%addr, tls = opts.tls.is_some(), verify = opts.verify, "API listening");
            let acceptor = opts.tls.clone().map(TlsAcceptor::from);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    r = l.accept() => {
                        let Some((s, peer)) = backoff.take(r).await? else { continue };
                        let acceptor = acceptor.clone();
                        let (app, cancel) = (app.clone(), cancel.clone());
                        conns.spawn(async move {
                            if !said_something(&s).await {
                                return;
                            }
                            let Some(acceptor) = acceptor else {
                                serve_conn(TokioIo::new(s), app, cancel).await;
                                return;
                            };
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(s)).await {
                                Ok(Ok(tls)) => serve_conn(TokioIo::new(tls), app, cancel).await,
                                Ok(Err(e)) => tracing::info!(%peer, error = %e, "TLS handshake refused"),
                                Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                            }
                        });
                    }
                }
            }
        }
    }
    conns.close();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(1), conns.wait()).await;
    Ok(())
}

/// What a failed `accept` does to the listener. Running out of descriptors
/// (EMFILE, ENFILE), of buffers, or a client giving up before it was taken
/// passes: the listener waits, 5 ms doubling to 1 s as Go's net/http does,
/// and goes on, instead of ending and taking the daemon with it.
#[derive(Debug, Default)]
struct AcceptBackoff {
    delay: Duration,
}

impl AcceptBackoff {
    /// The accepted connection, `None` after a passing failure (waited
    /// out), or the error that ends the listener.
    async fn take<T>(&mut self, r: std::io::Result<T>) -> std::io::Result<Option<T>> {
        let e = match r {
            Ok(v) => {
                self.delay = Duration::ZERO;
                return Ok(Some(v));
            }
            Err(e) => e,
        };
        if !is_passing(&e) {
            return Err(e);
        }
        self.delay = (self.delay * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
        tracing::warn!(error = %e, retry_in = ?self.delay, "accepting an API connection failed");
        tokio::time::sleep(self.delay).await;
        Ok(None)
    }
}

fn is_passing(e: &std::io::Error) -> bool {
    use nix::errno::Errno;
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(
            Errno::EMFILE
                | Errno::ENFILE
                | Errno::ENOBUFS
                | Errno::ENOMEM
                | Errno::ECONNABORTED
                | Errno::ECONNRESET
                | Errno::EPROTO
                | Errno::EPERM
                | Errno::EINTR
                | Errno::EAGAIN
        )
    )
}

/// `host[:port]` with dockerd's port when none is given, and its host
/// (`localhost`) when none is.
fn with_default_port(given: &str, tls: bool) -> String {
    let port = if tls { TLS_PORT } else { PLAIN_PORT };
    let has_port = match given.rsplit_once(':') {
        // `[::1]` alone ends in `]`; `[::1]:2375` has a port.
        Some((h, p)) => {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (!h.starts_with('[') || h.ends_with(']'))
        }
        None => false,
    };
    let (host, port) = if has_port {
        let (h, p) = given.rsplit_once(':').unwrap_or((given, ""));
        (h.to_string(), p.to_string())
    } else {
        (given.trim_end_matches(':').to_string(), port.to_string())
    };
    let host = if host.is_empty() {
        "127.0.0.1".to_string()
    } else {
        host
    };
    format!("{host}:{port}")
}

/// dockerd's warnings for a TCP listener that does not check clients, and
/// its pauses: a second always, fifteen more on an address that is not
/// loopback unless plain TCP was asked for explicitly.
async fn warn_unauthenticated(host: &str, addr: &str, explicitly_off: bool) {
    tracing::warn!(host, "Binding to IP address without --tlsverify is insecure and gives root access on this machine to everyone who has access to your network.");
    tracing::warn!(host, "Binding to an IP address, even on localhost, can also give access to scripts run in a browser. Be safe out there!");
    tokio::time::sleep(Duration::from_secs(1)).await;
    if explicitly_off || is_loopback(addr).await {
        return;
    }
    tracing::warn!(host, "Binding to an IP address without --tlsverify is deprecated. Startup is intentionally being slowed down to show this message");
    tracing::warn!(host, "Please consider generating tls certificates with client validation to prevent exposing unauthenticated root access to your network");
    tracing::warn!(
        host,
        "You can override this by explicitly specifying '--tls=false' or '--tlsverify=false'"
    );
    tracing::warn!(host, "Support for listening on TCP without authentication or explicit intent to run without authentication will be removed in the next release");
    tokio::time::sleep(Duration::from_secs(15)).await;
}

async fn is_loopback(addr: &str) -> bool {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    if host == "localhost" {
        return true;
    }
    match tokio::net::lookup_host(addr).await {
        Ok(mut found) => found.next().is_some_and(|a| a.ip().is_loopback()),
        Err(_) => false,
    }
}

/// Gives the socket to root and `group`, as dockerd does. A missing
/// `docker` group (the default) only warns, as with dockerd; a missing
/// group that was asked for fails the start.
fn set_group(path: &Path, group: &str) -> anyhow::Result<()> {
    let gid = match nix::unistd::Group::from_name(group) {
        Ok(Some(g)) => Some(g.gid.as_raw()),
        _ => group.parse::<u32>().ok(),
    };
    match gid {
        Some(gid) => std::os::unix::fs::chown(path, Some(0), Some(gid))
            .with_context(|| format!("could not change group {} to {group}", path.display())),
        None if group != DEFAULT_GROUP => anyhow::bail!("group {group} not found"),
        None => {
            tracing::warn!(
                "could not change group {} to {group}: group {group} not found",
                path.display()
            );
            Ok(())
        }
    }
}

/// Serves one connection until it ends. When shoald stops, in-flight
/// responses finish (a `docker events` follower's stream ends once the
/// bus closes) before the connection does; one that would stream on is
/// cut after [`SHUTDOWN_GRACE`].
async fn serve_conn<I>(io: I, app: Router, cancel: CancellationToken)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = TowerToHyperService::new(app);
    // HTTP/1.1 only, as Docker clients speak it: sniffing for an HTTP/2
    // preface first would wait without a deadline. A client that sends
    // its request head a byte at a time, or opens a connection and says
    // nothing, is dropped after dockerd's ReadHeaderTimeout instead of
    // holding the connection forever.
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        // A client that sends its request and closes its side (socat,
        // `nc -N`) still gets the answer, as from Go's server.
        .half_close(true)
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout());
    let conn = builder.serve_connection_with_upgrades(io, svc);
    tokio::pin!(conn);
    let ended = tokio::select! {
        r = conn.as_mut() => r,
        _ = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(SHUTDOWN_GRACE, conn.as_mut()).await {
                Ok(r) => r,
                Err(_) => return,
            }
        }
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, "connection ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn running_out_of_descriptors_waits_instead_of_ending_the_listener() {
        let mut b = AcceptBackoff::default();
        let emfile = || Err::<(), _>(std::io::Error::from_raw_os_error(nix::libc::EMFILE));
        for want in [5, 10, 20] {
            assert!(b.take(emfile()).await.unwrap().is_none());
            assert_eq!(b.delay, Duration::from_millis(want));
        }
        b.delay = Duration::from_millis(900);
        assert!(b.take(emfile()).await.unwrap().is_none());
        assert_eq!(b.delay, Duration::from_secs(1), "capped");
        assert_eq!(b.take(Ok(())).await.unwrap(), Some(()));
        assert_eq!(b.delay, Duration::ZERO);
        let ebadf = Err::<(), _>(std::io::Error::from_raw_os_error(nix::libc::EBADF));
        assert!(b.take(ebadf).await.is_err());
    }

    #[test]
    fn tcp_hosts_get_dockerds_ports() {
        assert_eq!(with_default_port("0.0.0.0", false), "0.0.0.0:2375");
        assert_eq!(with_default_port("0.0.0.0", true), "0.0.0.0:2376");
        assert_eq!(with_default_port("10.0.0.1:4000", true), "10.0.0.1:4000");
        assert_eq!(with_default_port("", false), "127.0.0.1:2375");
        assert_eq!(with_default_port(":2380", false), "127.0.0.1:2380");
        assert_eq!(with_default_port("[::1]", false), "[::1]:2375");
        assert_eq!(with_default_port("[::1]:9", false), "[::1]:9");
    }
}
