//! STUB (replaced by the PKI branch).
use std::sync::Arc;

use super::identity::NodeIdentity;

/// Server name.
pub const MANAGER_SERVER_NAME: &str = "swarm-manager";
/// Certs.
#[derive(Clone, Debug)]
pub struct NodeCerts {
    /// Cert.
    pub cert_pem: String,
    /// Key.
    pub key_pem: String,
    /// Roots.
    pub root_pem: String,
}
/// State.
pub struct TlsState;
impl TlsState {
    /// New.
    pub fn new(_c: NodeCerts) -> crate::Result<Arc<TlsState>> {
        Err(crate::Error::internal("stub"))
    }
    /// Update.
    pub fn update(&self, _c: NodeCerts) -> crate::Result<()> {
        Err(crate::Error::internal("stub"))
    }
    /// Identity.
    pub fn identity(&self) -> NodeIdentity {
        unimplemented!()
    }
    /// Certs.
    pub fn certs(&self) -> NodeCerts {
        unimplemented!()
    }
    /// Server.
    pub fn server_config(self: &Arc<Self>) -> Arc<rustls::ServerConfig> {
        unimplemented!()
    }
    /// Client.
    pub fn client_config(self: &Arc<Self>) -> Arc<rustls::ClientConfig> {
        unimplemented!()
    }
}
/// Anonymous.
pub fn anonymous_client_config(_root_pem: &str) -> crate::Result<Arc<rustls::ClientConfig>> {
    Err(crate::Error::internal("stub"))
}
/// Insecure.
pub fn insecure_client_config() -> Arc<rustls::ClientConfig> {
    unimplemented!()
}
/// Peer.
pub fn peer_identity(_chain: &[rustls::pki_types::CertificateDer<'_>]) -> Option<NodeIdentity> {
    None
}
