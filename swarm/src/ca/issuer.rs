//! Signs node certificates with the root CA key.
//!
//! The issuer writes every name itself: the subject (CN = node ID, OU = role,
//! O = cluster ID) and the DNS SANs (the role's OU and the node ID, and for
//! a manager also `swarm-ca`, the name swarmkit dials the CA with). Clients
//! dial managers under the server name `swarm-manager`, so only a manager
//! certificate can serve; a worker certificate names `swarm-worker` and is
//! refused by any client that dials a manager. Nothing in the CSR is copied
//! but its public key, and only once its signature proves the requester holds
//! the matching private key.

use std::time::Duration;

use rcgen::Certificate;
use rcgen::CertificateParams;
use rcgen::CertificateSigningRequestParams;
use rcgen::DistinguishedName;
use rcgen::DnType;
use rcgen::ExtendedKeyUsagePurpose;
use rcgen::IsCa;
use rcgen::KeyPair;
use rcgen::KeyUsagePurpose;
use rcgen::SanType;
use rcgen::SerialNumber;
use ring::rand::SecureRandom;
use ring::rand::SystemRandom;
use rustls::pki_types::pem::PemObject;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::identity::Role;
use super::tls::CA_SERVER_NAME;
use crate::error::Error;
use crate::error::Result;

/// How far a new certificate's validity starts in the past. Nodes' clocks
/// differ; a certificate that is "not yet valid" on a peer whose clock is a
/// little behind would fail every handshake, so swarmkit backdates by an hour
/// and so does this issuer. The renewer reads the issuer's clock back from
/// it.
pub(crate) const BACKDATE: time::Duration = time::Duration::hours(1);

/// The root CA, ready to sign node certificates.
pub struct Issuer {
    /// The root rebuilt from its PEM: rcgen signs with the subject and key
    /// identifier it carries, so issued certificates name the real root.
    ca_cert: Certificate,
    ca_key: KeyPair,
    /// No certificate outlives the root that signs it.
    ca_not_after: OffsetDateTime,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("ca_not_after", &self.ca_not_after)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// An issuer for the root CA certificate and key (both PEM).
    ///
    /// Call it on a manager that holds the CA key (from the store). Fails with
    /// an internal error when either does not parse or the key is not the
    /// certificate's.
    pub fn new(root_cert_pem: &str, root_key_pem: &str) -> Result<Issuer> {
        let ca_key = KeyPair::from_pem(root_key_pem)
            .map_err(|e| Error::internal(format!("root CA key: {e}")))?;
        let params = CertificateParams::from_ca_cert_pem(root_cert_pem)
            .map_err(|e| Error::internal(format!("root CA certificate: {e}")))?;
        let ca_not_after = params.not_after;
        let der = rustls::pki_types::CertificateDer::from_pem_slice(root_cert_pem.as_bytes())
            .map_err(|e| Error::internal(format!("root CA certificate: {e}")))?;
        let (_, parsed) = X509Certificate::from_der(der.as_ref())
            .map_err(|e| Error::internal(format!("root CA certificate: {e}")))?;
        if parsed.public_key().raw != ca_key.public_key_der().as_slice() {
            return Err(Error::internal(
                "root CA key does not match the root CA certificate",
            ));
        }
        // Re-signing the parsed parameters with the same key yields a
        // certificate with the root's subject and key: all rcgen needs to
        // name the issuer and fill the authority key identifier.
        let ca_cert = params
            .self_signed(&ca_key)
            .map_err(|e| Error::internal(format!("root CA certificate: {e}")))?;
        Ok(Issuer {
            ca_cert,
            ca_key,
            ca_not_after,
        })
    }

    /// The root `root_cert_pem` (with its key `root_key_pem`) cross-signed
    /// by this issuer: a CA certificate with the new root's subject and key,
    /// issued by the current root. Served after a node certificate the new
    /// root signed, it lets a node that still trusts only the current root
    /// verify that certificate during a root rotation (swarmkit does the
    /// same).
    pub fn cross_sign(&self, root_cert_pem: &str, root_key_pem: &str) -> Result<String> {
        let key = KeyPair::from_pem(root_key_pem)
            .map_err(|e| Error::internal(format!("new root CA key: {e}")))?;
        let mut params = CertificateParams::from_ca_cert_pem(root_cert_pem)
            .map_err(|e| Error::internal(format!("new root CA certificate: {e}")))?;
        params.not_after = params.not_after.min(self.ca_not_after);
        let cert = params
            .signed_by(&key, &self.ca_cert, &self.ca_key)
            .map_err(|e| Error::internal(format!("cross-signing the new root: {e}")))?;
        Ok(cert.pem())
    }

    /// Signs `csr_pem` into a node certificate (PEM) for `node_id` with
    /// `role` in cluster `cluster_id`, valid from an hour ago (clock skew)
    /// for `expiry` from now, but never past the root's own expiry.
    ///
    /// Refuses (InvalidArgument) a CSR that does not parse or whose signature
    /// does not verify, and empty IDs. Call it only after the caller has
    /// decided the node may have this role (a join token, or its current
    /// certificate on renewal).
    pub fn issue(
        &self,
        csr_pem: &str,
        node_id: &str,
        role: Role,
        cluster_id: &str,
        expiry: Duration,
    ) -> Result<String> {
        let now = OffsetDateTime::now_utc();
        let expiry = time::Duration::try_from(expiry)
            .map_err(|_| Error::invalid("certificate expiry is out of range"))?;
        let not_after = now
            .checked_add(expiry)
            .ok_or_else(|| Error::invalid("certificate expiry is out of range"))?;
        self.issue_between(
            csr_pem,
            node_id,
            role,
            cluster_id,
            now - BACKDATE,
            not_after,
        )
    }

    /// [`Issuer::issue`] with an explicit validity period (tests make expired
    /// and not-yet-valid certificates with it). `not_after` is still capped
    /// at the root's expiry.
    pub(crate) fn issue_between(
        &self,
        csr_pem: &str,
        node_id: &str,
        role: Role,
        cluster_id: &str,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<String> {
        if node_id.is_empty() || cluster_id.is_empty() {
            return Err(Error::invalid(
                "a node certificate needs a node ID and a cluster ID",
            ));
        }
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(csr_error)?;
        let params = node_params(
            node_id,
            role,
            cluster_id,
            not_before,
            not_after.min(self.ca_not_after),
        )?;
        let cert = params
            .signed_by(&csr.public_key, &self.ca_cert, &self.ca_key)
            .map_err(|e| Error::internal(format!("signing node certificate: {e}")))?;
        Ok(cert.pem())
    }
}

/// The parameters of a node certificate, built from nothing the requester
/// chose.
fn node_params(
    node_id: &str,
    role: Role,
    cluster_id: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    // O, OU, CN: the order Go writes a subject in, so subjects read like
    // swarmkit's.
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, cluster_id);
    dn.push(DnType::OrganizationalUnitName, role.ou());
    dn.push(DnType::CommonName, node_id);
    params.distinguished_name = dn;
    let mut sans = vec![dns_san(role.ou())?, dns_san(node_id)?];
    // Managers also serve the CA under swarmkit's CA server name.
    if role == Role::Manager {
        sans.push(dns_san(CA_SERVER_NAME)?);
    }
    params.subject_alt_names = sans;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial());
    params.not_before = not_before;
    params.not_after = not_after;
    Ok(params)
}

fn dns_san(name: &str) -> Result<SanType> {
    let ia5 = name
        .try_into()
        .map_err(|_| Error::invalid(format!("{name:?} is not a valid certificate name")))?;
    Ok(SanType::DnsName(ia5))
}

/// A random positive 20-byte serial (RFC 5280's maximum). rcgen's default
/// serial is a hash of the public key, which would repeat if a node renewed
/// with the same key.
fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 20];
    SystemRandom::new()
        .fill(&mut bytes)
        .unwrap_or_else(|_| unreachable!("the system RNG does not fail"));
    // A clear top bit keeps the DER INTEGER positive in 20 bytes.
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

fn csr_error(e: rcgen::Error) -> Error {
    match e {
        // rcgen reports a failed CSR self-signature check as a ring error.
        rcgen::Error::RingUnspecified => {
            Error::invalid("certificate signing request signature does not verify")
        }
        other => Error::invalid(format!("invalid certificate signing request: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::csr::new_key_and_csr;
    use crate::ca::identity::parse_cert_pem;
    use crate::ca::root;

    fn issuer() -> (root::RootCa, Issuer) {
        let ca = root::generate(1).unwrap();
        let issuer = Issuer::new(&ca.cert_pem, &ca.key_pem).unwrap();
        (ca, issuer)
    }

    #[test]
    fn identity_round_trips_through_issue_and_parse() {
        let (_, issuer) = issuer();
        let key = new_key_and_csr().unwrap();
        for role in [Role::Manager, Role::Worker] {
            let expiry = Duration::from_secs(90 * 24 * 3600);
            let pem = issuer
                .issue(&key.csr_pem, "node1abc", role, "cluster9", expiry)
                .unwrap();
            let id = parse_cert_pem(&pem).unwrap();
            assert_eq!(id.node_id, "node1abc");
            assert_eq!(id.role, role);
            assert_eq!(id.cluster_id, "cluster9");
            let left = id.not_after - OffsetDateTime::now_utc();
            assert!(left > time::Duration::days(89) && left <= time::Duration::days(90));
        }
    }

    #[test]
    fn certificate_is_named_and_shaped_like_swarmkits() {
        let (ca, issuer) = issuer();
        let key = new_key_and_csr().unwrap();
        let pem = issuer
            .issue(
                &key.csr_pem,
                "n1",
                Role::Worker,
                "c1",
                Duration::from_secs(3600),
            )
            .unwrap();
        let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        let (_, cert) = X509Certificate::from_der(der.as_ref()).unwrap();
        let root_der = ca.cert_der.clone();
        let (_, root) = X509Certificate::from_der(&root_der).unwrap();
        assert_eq!(cert.issuer().as_raw(), root.subject().as_raw());
        assert_eq!(cert.subject().to_string(), "O=c1, OU=swarm-worker, CN=n1");
        let sans: Vec<String> = cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(sans, ["DNSName(swarm-worker)", "DNSName(n1)"]);
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        assert!(!cert.is_ca());
        let backdate = OffsetDateTime::now_utc() - cert.validity().not_before.to_datetime();
        assert!(backdate >= time::Duration::minutes(59));
        cert.verify_signature(Some(root.public_key())).unwrap();
        // Two certificates for the same key get different serials.
        let again = issuer
            .issue(
                &key.csr_pem,
                "n1",
                Role::Worker,
                "c1",
                Duration::from_secs(3600),
            )
            .unwrap();
        assert_ne!(pem, again);

        let manager = issuer
            .issue(
                &key.csr_pem,
                "m1",
                Role::Manager,
                "c1",
                Duration::from_secs(3600),
            )
            .unwrap();
        let der = rustls::pki_types::CertificateDer::from_pem_slice(manager.as_bytes()).unwrap();
        let (_, cert) = X509Certificate::from_der(der.as_ref()).unwrap();
        let sans: Vec<String> = cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(
            sans,
            ["DNSName(swarm-manager)", "DNSName(m1)", "DNSName(swarm-ca)"]
        );
    }

    #[test]
    fn a_csr_with_a_bad_signature_is_refused() {
        let (_, issuer) = issuer();
        let key = new_key_and_csr().unwrap();
        let der =
            rustls::pki_types::CertificateSigningRequestDer::from_pem_slice(key.csr_pem.as_bytes())
                .unwrap();
        let mut bytes = der.as_ref().to_vec();
        // The signature BIT STRING is last: flipping its final byte keeps the
        // DER well-formed but breaks the signature.
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        let tampered = pem_wrap("CERTIFICATE REQUEST", &bytes);
        let err = issuer
            .issue(
                &tampered,
                "n1",
                Role::Manager,
                "c1",
                Duration::from_secs(3600),
            )
            .unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::InvalidArgument);
        assert!(err.message().contains("does not verify"), "{err}");
        let err = issuer
            .issue("garbage", "n1", Role::Manager, "c1", Duration::from_secs(1))
            .unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::InvalidArgument);
    }

    #[test]
    fn a_mismatched_root_key_is_refused() {
        let a = root::generate(1).unwrap();
        let b = root::generate(1).unwrap();
        assert!(Issuer::new(&a.cert_pem, &b.key_pem).is_err());
        assert!(Issuer::new("nope", &a.key_pem).is_err());
    }

    #[test]
    fn no_certificate_outlives_its_root() {
        let (_, issuer) = issuer();
        let key = new_key_and_csr().unwrap();
        let pem = issuer
            .issue(
                &key.csr_pem,
                "n1",
                Role::Manager,
                "c1",
                Duration::from_secs(10 * 365 * 24 * 3600),
            )
            .unwrap();
        let id = parse_cert_pem(&pem).unwrap();
        assert!(id.not_after <= issuer.ca_not_after);
    }

    fn pem_wrap(label: &str, der: &[u8]) -> String {
        use base64::Engine;
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        let mut out = format!("-----BEGIN {label}-----\n");
        for chunk in body.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).unwrap());
            out.push('\n');
        }
        out.push_str(&format!("-----END {label}-----\n"));
        out
    }
}
