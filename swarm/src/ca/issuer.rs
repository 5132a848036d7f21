//! STUB (replaced by the PKI branch).
use super::identity::Role;
/// Issuer.
pub struct Issuer;
impl Issuer {
    /// New.
    pub fn new(_c: &str, _k: &str) -> crate::Result<Issuer> {
        Err(crate::Error::internal("stub"))
    }
    /// Issue.
    pub fn issue(
        &self,
        _csr: &str,
        _id: &str,
        _r: Role,
        _c: &str,
        _e: std::time::Duration,
    ) -> crate::Result<String> {
        Err(crate::Error::internal("stub"))
    }
}
