//! Connections to other managers: one lazily connected gRPC channel per
//! address, over TLS with this node's client config. A channel reconnects
//! by itself after a failure; HTTP/2 keepalive pings find a dead peer
//! within a few seconds even when no reset arrives.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::Channel;
use tonic::transport::Endpoint;
use tonic::transport::Uri;

use super::server::KEEPALIVE_INTERVAL;
use super::server::KEEPALIVE_TIMEOUT;

/// The name every manager certificate carries and every client dials.
pub const MANAGER_NAME: &str = "swarm-manager";
/// How long a TCP connect plus TLS handshake to a manager may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A channel to `addr` (`host:port`) that authenticates with `tls`. Nothing
/// is dialled until the first call.
pub fn channel(addr: &str, tls: Arc<rustls::ClientConfig>) -> crate::Result<Channel> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| crate::Error::invalid(format!("invalid manager address {addr}: {e}")))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    let connector = TlsConnector::from(tls);
    let connect = tower::service_fn(move |uri: Uri| {
        let connector = connector.clone();
        async move {
            let host = uri.host().unwrap_or_default().to_string();
            let port = uri.port_u16().unwrap_or(2377);
            let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port)))
                .await
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
                })??;
            let _ = tcp.set_nodelay(true);
            let name = ServerName::try_from(MANAGER_NAME)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let tls = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
                .await
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
                })??;
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    });
    Ok(endpoint.connect_with_connector_lazy(connect))
}

/// One channel per manager address, all with the same client identity.
#[derive(Clone)]
pub struct Channels {
    tls: Arc<rustls::ClientConfig>,
    cache: Arc<Mutex<HashMap<String, Channel>>>,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channels").finish_non_exhaustive()
    }
}

impl Channels {
    /// Channels that authenticate with `tls` (this node's certificate).
    pub fn new(tls: Arc<rustls::ClientConfig>) -> Self {
        Channels {
            tls,
            cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The channel to `addr`, made on first use.
    pub fn get(&self, addr: &str) -> crate::Result<Channel> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.get(addr) {
            return Ok(c.clone());
        }
        let c = channel(addr, self.tls.clone())?;
        cache.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    /// Forgets the channel to `addr` (its manager left or moved).
    pub fn forget(&self, addr: &str) {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(addr);
    }
}
