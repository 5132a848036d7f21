//! STUB (replaced by the PKI branch).
use std::path::Path;

use super::tls::NodeCerts;
/// Store.
pub struct CertStore;
/// Loaded.
pub enum LoadedCerts {
    /// Missing.
    Missing,
    /// Ready.
    Ready(NodeCerts),
    /// Locked.
    Locked,
}
impl CertStore {
    /// New.
    pub fn new(_d: &Path) -> CertStore {
        CertStore
    }
    /// Save.
    pub fn save(&self, _c: &NodeCerts, _k: Option<&str>) -> crate::Result<()> {
        Err(crate::Error::internal("stub"))
    }
    /// Load.
    pub fn load(&self) -> crate::Result<LoadedCerts> {
        Err(crate::Error::internal("stub"))
    }
    /// Unlock.
    pub fn unlock(&self, _k: &str) -> crate::Result<NodeCerts> {
        Err(crate::Error::internal("stub"))
    }
}
