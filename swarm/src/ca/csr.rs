//! STUB (replaced by the PKI branch).
/// Key.
pub struct NodeKey {
    /// Key.
    pub key_pem: String,
    /// CSR.
    pub csr_pem: String,
}
/// New.
pub fn new_key_and_csr() -> crate::Result<NodeKey> {
    Err(crate::Error::internal("stub"))
}
