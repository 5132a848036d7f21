//! The root CA: a self-signed ECDSA P-256 certificate made with rcgen (ring).

use rcgen::BasicConstraints;
use rcgen::CertificateParams;
use rcgen::DistinguishedName;
use rcgen::DnType;
use rcgen::IsCa;
use rcgen::KeyPair;
use rcgen::KeyUsagePurpose;

use crate::error::Error;
use crate::error::Result;

/// A freshly made root CA.
#[derive(Debug, Clone)]
pub struct RootCa {
    /// Certificate, PEM.
    pub cert_pem: String,
    /// Private key, PEM (kept only in the encrypted store).
    pub key_pem: String,
    /// Certificate, DER (what the token digest covers).
    pub cert_der: Vec<u8>,
}

/// Makes a new root CA valid for `years` years, named like swarmkit's (`swarm-ca`).
pub fn generate(years: i64) -> Result<RootCa> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| Error::internal(format!("CA key: {e}")))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "swarm-ca");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(365 * years);
    let cert = params
        .self_signed(&key)
        .map_err(|e| Error::internal(format!("CA certificate: {e}")))?;
    Ok(RootCa {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert_der: cert.der().to_vec(),
    })
}

/// The issuer subject and public key of a CA certificate, base64 like dockerd's TLSInfo.
pub fn tls_info(ca: &RootCa) -> (String, String) {
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine;
    // The raw subject for CN=swarm-ca and the public key are what dockerd shows;
    // rcgen does not expose them parsed, so the digest-stable DER parts are used.
    let key = KeyPair::from_pem(&ca.key_pem)
        .map(|k| B64.encode(k.public_key_der()))
        .unwrap_or_default();
    let subject = B64.encode(subject_der("swarm-ca"));
    (subject, key)
}

/// [`tls_info`] for a root certificate given as PEM (the first certificate
/// of the bundle): its subject and public key as the certificate has them.
pub fn tls_info_pem(cert_pem: &str) -> (String, String) {
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine;
    let der = crate::controlapi::cluster::pem_to_der(cert_pem);
    match x509_parser::parse_x509_certificate(&der) {
        Ok((_, cert)) => (
            B64.encode(cert.tbs_certificate.subject.as_raw()),
            B64.encode(cert.tbs_certificate.subject_pki.raw),
        ),
        Err(_) => (B64.encode(subject_der("swarm-ca")), String::new()),
    }
}

/// DER of a Name holding one CommonName.
fn subject_der(cn: &str) -> Vec<u8> {
    // SEQUENCE { SET { SEQUENCE { OID 2.5.4.3, UTF8String cn } } }
    let mut atv = vec![0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, cn.len() as u8];
    atv.extend_from_slice(cn.as_bytes());
    let mut seq = vec![0x30, atv.len() as u8];
    seq.extend(atv);
    let mut set = vec![0x31, seq.len() as u8];
    set.extend(seq);
    let mut name = vec![0x30, set.len() as u8];
    name.extend(set);
    name
}

#[cfg(test)]
mod tests {
    #[test]
    fn generates_pem() {
        let ca = super::generate(20).unwrap();
        assert!(ca.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(ca.key_pem.contains("PRIVATE KEY"));
        let (subject, key) = super::tls_info(&ca);
        assert!(!subject.is_empty() && !key.is_empty());
    }
}
