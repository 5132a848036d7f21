//! Listeners: `unix://PATH` (mode 0660, like dockerd's socket) and `tcp://HOST:PORT`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::Context;
use axum::Router;
use hyper_util::rt::TokioExecutor;
use hyper_util::rt::TokioIo;
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

/// A parsed `-H` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A Unix socket path.
    Unix(String),
    /// A TCP address.
    Tcp(String),
}

impl Host {
    /// Parses `unix:///path`, `tcp://host:port` or a bare path.
    pub fn parse(s: &str) -> anyhow::Result<Host> {
        if let Some(p) = s.strip_prefix("unix://") {
            return Ok(Host::Unix(p.to_string()));
        }
        if let Some(a) = s.strip_prefix("tcp://") {
            return Ok(Host::Tcp(a.to_string()));
        }
        if s.starts_with('/') {
            return Ok(Host::Unix(s.to_string()));
        }
        anyhow::bail!("invalid host {s}: use unix:///path or tcp://host:port")
    }
}

/// Serves `app` on `host` until `cancel` fires.
pub async fn serve(host: Host, app: Router, cancel: CancellationToken) -> anyhow::Result<()> {
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
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
            tracing::info!(socket = %path.display(), "API listening");
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    r = l.accept() => {
                        let (s, _) = r?;
                        spawn_conn(TokioIo::new(s), app.clone(), cancel.clone());
                    }
                }
            }
            let _ = std::fs::remove_file(path);
        }
        Host::Tcp(addr) => {
            let l = TcpListener::bind(&addr)
                .await
                .with_context(|| format!("listen on {addr}"))?;
            tracing::warn!(%addr, "API listening on TCP without TLS");
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    r = l.accept() => {
                        let (s, _) = r?;
                        spawn_conn(TokioIo::new(s), app.clone(), cancel.clone());
                    }
                }
            }
        }
    }
    Ok(())
}

fn spawn_conn<I>(io: I, app: Router, cancel: CancellationToken)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let svc = TowerToHyperService::new(app);
        let builder = auto::Builder::new(TokioExecutor::new());
        let conn = builder.serve_connection_with_upgrades(io, svc);
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended");
                }
            }
            _ = cancel.cancelled() => conn.as_mut().graceful_shutdown(),
        }
    });
}
