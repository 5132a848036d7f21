//! Mutual TLS between nodes (rustls with the ring provider).
//!
//! A node's TLS identity changes while it runs: certificates are renewed, a
//! promotion or demotion brings a certificate with a new role, and a root CA
//! rotation adds and later removes trusted roots. Connections are long-lived
//! gRPC channels, and their configs are handed to the transport once, so the
//! configs here never hold a certificate, key or root themselves. They hold
//! the [`TlsState`] and read its current value on every handshake: a
//! certificate resolver supplies this node's chain and key, and the peer
//! verifiers delegate to webpki verifiers that [`TlsState::update`] rebuilds
//! with the new roots. Connections already open keep the identity they
//! shook hands with; only new handshakes see an update.
//!
//! Session resumption is off on both sides: a resumed session would carry the
//! peer certificate of its first handshake, so a demoted node or one whose
//! root was rotated away could go on as it was. Every connection does a full
//! handshake against the current state.
//!
//! Authorization is not decided here. The server asks every client for a
//! certificate but also lets one without any through (a joining node has
//! none yet and calls the CA with its join token); the RPC layer reads
//! [`peer_identity`] and decides per call. What this layer guarantees is that
//! a certificate that was presented chains to a current root, is within its
//! validity and carries the needed key usage.

mod dynamic;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::RwLock;

use rustls::client::Resumption;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::PrivateKeyDer;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::NoServerSessionStorage;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::ClientConfig;
use rustls::RootCertStore;
use rustls::ServerConfig;

use self::dynamic::AnyServerCert;
use self::dynamic::CurrentClientVerifier;
use self::dynamic::CurrentIdentity;
use self::dynamic::CurrentServerVerifier;
use super::identity::parse_cert_der;
use super::identity::NodeIdentity;
use crate::error::Error;
use crate::error::Result;

/// The server name clients dial managers with. Only manager certificates
/// carry it (as a DNS SAN), so only a manager can serve under it.
pub const MANAGER_SERVER_NAME: &str = "swarm-manager";

/// The server name swarmkit dials the CA service with. Manager certificates
/// carry it too (as swarmkit's do), so a CA client may use either name.
pub const CA_SERVER_NAME: &str = "swarm-ca";

/// The ALPN protocol on every node-to-node connection: gRPC runs on HTTP/2.
const ALPN_H2: &[u8] = b"h2";

/// A node's TLS material, all PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeCerts {
    /// This node's certificate, leaf first (intermediates may follow).
    pub cert_pem: String,
    /// This node's private key (PKCS#8 or SEC1).
    pub key_pem: String,
    /// The trusted root certificates, concatenated: during a CA rotation a
    /// node trusts the old and the new root at once.
    pub root_pem: String,
}

impl std::fmt::Debug for NodeCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of logs.
        f.debug_struct("NodeCerts")
            .field("cert_pem", &self.cert_pem)
            .field("root_pem", &self.root_pem)
            .finish_non_exhaustive()
    }
}

/// One parsed, consistent value of a node's TLS identity.
struct Current {
    certs: NodeCerts,
    identity: NodeIdentity,
    key: Arc<CertifiedKey>,
    client_verifier: Arc<dyn ClientCertVerifier>,
    server_verifier: Arc<WebPkiServerVerifier>,
}

impl Current {
    fn build(certs: NodeCerts, provider: &Arc<CryptoProvider>) -> Result<Current> {
        let chain = pem_certs(&certs.cert_pem, "node certificate")?;
        let identity = parse_cert_der(chain[0].as_ref())?;
        let key = PrivateKeyDer::from_pem_slice(certs.key_pem.as_bytes())
            .map_err(|e| Error::internal(format!("node key: {e}")))?;
        let key = CertifiedKey::from_der(chain, key, provider)
            .map_err(|e| Error::internal(format!("node certificate and key: {e}")))?;
        let roots = root_store(&certs.root_pem)?;
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| Error::internal(format!("client certificate verifier: {e}")))?;
        let server_verifier = server_verifier(roots, provider)?;
        Ok(Current {
            certs,
            identity,
            key: Arc::new(key),
            client_verifier,
            server_verifier,
        })
    }
}

/// This node's current TLS identity: its certificate and key and the roots
/// it trusts, swappable while connections live.
pub struct TlsState {
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<Current>>,
}

impl std::fmt::Debug for TlsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsState")
            .field("identity", &self.identity())
            .finish_non_exhaustive()
    }
}

impl TlsState {
    /// A state holding `certs`.
    ///
    /// Fails (internal error) when the certificate, key or roots do not
    /// parse, the key is not the certificate's, the certificate names no
    /// node identity, or there is no root. It does not check that the
    /// certificate chains to the roots or is still valid: a node restarting
    /// with an expired certificate must still load it to report why its
    /// handshakes fail.
    pub fn new(certs: NodeCerts) -> Result<Arc<TlsState>> {
        let provider = provider();
        let current = Current::build(certs, &provider)?;
        Ok(Arc::new(TlsState {
            provider,
            current: RwLock::new(Arc::new(current)),
        }))
    }

    /// Replaces the certificate, key and roots at once.
    ///
    /// May be called at any time from any thread. On success every later
    /// handshake, through any config from [`TlsState::server_config`] or
    /// [`TlsState::client_config`], uses the new values; handshakes already
    /// under way and open connections are unaffected. On error (the same
    /// checks as [`TlsState::new`]) nothing changes.
    pub fn update(&self, certs: NodeCerts) -> Result<()> {
        let next = Arc::new(Current::build(certs, &self.provider)?);
        // Only an `Arc` is swapped under the lock, so no panic can poison it
        // half-way; a poisoned lock still holds a whole value.
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = next;
        Ok(())
    }

    /// The identity in this node's current certificate.
    pub fn identity(&self) -> NodeIdentity {
        self.load().identity.clone()
    }

    /// The current certificate, key and roots (to save them, or to hand the
    /// roots to a joining node).
    pub fn certs(&self) -> NodeCerts {
        self.load().certs.clone()
    }

    /// The current value; cheap (one `Arc` clone under a read lock).
    fn load(&self) -> Arc<Current> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A server config for this node (managers serve raft, the control API,
    /// the dispatcher and the CA with it).
    ///
    /// Build it once and keep it: it follows [`TlsState::update`] by itself.
    /// It presents this node's current certificate, asks every client for
    /// one, accepts a client without one, and refuses a presented client
    /// certificate that does not chain to a current root or is outside its
    /// validity. ALPN `h2`.
    pub fn server_config(self: &Arc<Self>) -> Arc<ServerConfig> {
        let verifier = Arc::new(CurrentClientVerifier::new(self.clone()));
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|_| unreachable!("ring supports the default TLS versions"))
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(CurrentIdentity::new(self.clone())));
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Arc::new(config)
    }

    /// A client config for this node: it presents the current certificate
    /// and verifies the server's chain against the current roots and the
    /// server name dialed ([`MANAGER_SERVER_NAME`] for managers).
    ///
    /// Build it once and keep it: it follows [`TlsState::update`] by itself.
    /// ALPN `h2`.
    pub fn client_config(self: &Arc<Self>) -> Arc<ClientConfig> {
        let mut config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|_| unreachable!("ring supports the default TLS versions"))
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(CurrentServerVerifier::new(self.clone())))
            .with_client_cert_resolver(Arc::new(CurrentIdentity::new(self.clone())));
        finish_client(&mut config);
        Arc::new(config)
    }
}

/// A client config that verifies the server against `root_pem` and presents
/// no certificate.
///
/// For a joining node that has checked the root against its join token and
/// now asks a manager for its first certificate. Fails (internal error) when
/// `root_pem` holds no parsable certificate. ALPN `h2`.
pub fn anonymous_client_config(root_pem: &str) -> Result<Arc<ClientConfig>> {
    let provider = provider();
    let verifier = server_verifier(root_store(root_pem)?, &provider)?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|_| unreachable!("ring supports the default TLS versions"))
        .with_webpki_verifier(verifier)
        .with_no_client_auth();
    finish_client(&mut config);
    Ok(Arc::new(config))
}

/// A client config that accepts ANY server certificate and presents none.
///
/// Only for a joining node's first contact: it fetches the root CA
/// certificate over this connection and must then check that certificate's
/// digest against its join token before trusting it or sending anything
/// secret. Nothing else may use it: a connection made with it is open to
/// any man in the middle. (The server must still prove it holds the key of
/// the certificate it shows, which costs nothing and proves nothing about
/// who it is.) ALPN `h2`.
pub fn insecure_client_config() -> Arc<ClientConfig> {
    let provider = provider();
    let verifier = Arc::new(AnyServerCert::new(provider.clone()));
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|_| unreachable!("ring supports the default TLS versions"))
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    finish_client(&mut config);
    Arc::new(config)
}

/// The identity in the first certificate of a peer chain, `None` when there
/// is no certificate or it names no node.
///
/// Call it only on a chain the TLS layer verified (the peer certificates of
/// an established connection made with these configs); it does not verify.
pub fn peer_identity(chain: &[CertificateDer<'_>]) -> Option<NodeIdentity> {
    parse_cert_der(chain.first()?.as_ref()).ok()
}

/// The ring provider, built per config: never a process-wide default, so
/// nothing else in the process can change what these configs use.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn finish_client(config: &mut ClientConfig) {
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    config.resumption = Resumption::disabled();
}

fn pem_certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::internal(format!("{what}: {e}")))?;
    if certs.is_empty() {
        return Err(Error::internal(format!("{what}: no certificate in PEM")));
    }
    Ok(certs)
}

fn root_store(root_pem: &str) -> Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    for cert in pem_certs(root_pem, "root CA certificates")? {
        roots
            .add(cert)
            .map_err(|e| Error::internal(format!("root CA certificate: {e}")))?;
    }
    Ok(Arc::new(roots))
}

fn server_verifier(
    roots: Arc<RootCertStore>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>> {
    WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| Error::internal(format!("server certificate verifier: {e}")))
}
