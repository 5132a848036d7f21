//! A node's private key and the certificate signing request it sends the CA.

use rcgen::CertificateParams;
use rcgen::DistinguishedName;
use rcgen::KeyPair;

use crate::error::Error;
use crate::error::Result;

/// A fresh node key and a CSR for it.
#[derive(Clone)]
pub struct NodeKey {
    /// The private key, PKCS#8 PEM. Never leaves the node.
    pub key_pem: String,
    /// The PKCS#10 request, PEM: what the node sends the CA.
    pub csr_pem: String,
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of logs.
        f.debug_struct("NodeKey")
            .field("csr_pem", &self.csr_pem)
            .finish_non_exhaustive()
    }
}

/// Makes a new ECDSA P-256 key and a CSR signed with it.
///
/// Call it whenever a node needs a certificate (first join, renewal, role
/// change); each call makes a new key. The CSR carries an empty subject and
/// no extensions: the CA writes every name itself, so nothing a node asks
/// for can widen what it gets.
pub fn new_key_and_csr() -> Result<NodeKey> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| Error::internal(format!("node key: {e}")))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    let csr = params
        .serialize_request(&key)
        .map_err(|e| Error::internal(format!("certificate signing request: {e}")))?;
    let csr_pem = csr
        .pem()
        .map_err(|e| Error::internal(format!("certificate signing request: {e}")))?;
    Ok(NodeKey {
        key_pem: key.serialize_pem(),
        csr_pem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_and_csr_are_pem_and_fresh() {
        let a = new_key_and_csr().unwrap();
        assert!(a.key_pem.contains("-----BEGIN PRIVATE KEY-----"));
        assert!(a.csr_pem.contains("-----BEGIN CERTIFICATE REQUEST-----"));
        rcgen::CertificateSigningRequestParams::from_pem(&a.csr_pem).unwrap();
        let b = new_key_and_csr().unwrap();
        assert_ne!(a.key_pem, b.key_pem);
        assert!(!format!("{a:?}").contains("PRIVATE KEY"));
    }
}
