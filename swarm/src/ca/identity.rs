//! Who a node certificate names: node ID, role and cluster, as swarmkit puts
//! them in the subject (CN = node ID, OU = role, O = cluster ID).
//!
//! A certificate is the only proof of identity between nodes: the RPC layer
//! reads the peer's [`NodeIdentity`] from its verified TLS chain and decides
//! per call what that node may do, so the names here must be read exactly as
//! the issuer wrote them.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde::Deserialize;
use serde::Serialize;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::x509::AttributeTypeAndValue;

use crate::error::Error;
use crate::error::Result;
use crate::model::api::NodeSpecRoleEnum;

/// The role a node certificate grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A manager: serves raft, the control API, the dispatcher and the CA.
    Manager,
    /// A worker: runs tasks and talks to managers only as a client.
    Worker,
}

impl Role {
    /// The certificate OU for the role, as swarmkit writes it.
    ///
    /// May be called at any time; the strings are stable (they are part of
    /// every issued certificate and of the manager TLS server name).
    pub fn ou(self) -> &'static str {
        match self {
            Role::Manager => "swarm-manager",
            Role::Worker => "swarm-worker",
        }
    }

    /// The role a certificate OU names; `None` for any other string.
    ///
    /// The match is exact: an OU that only resembles a role grants nothing.
    pub fn from_ou(ou: &str) -> Option<Role> {
        match ou {
            "swarm-manager" => Some(Role::Manager),
            "swarm-worker" => Some(Role::Worker),
            _ => None,
        }
    }

    /// The role as the Engine API's node spec shows it.
    pub fn api(self) -> NodeSpecRoleEnum {
        match self {
            Role::Manager => NodeSpecRoleEnum::MANAGER,
            Role::Worker => NodeSpecRoleEnum::WORKER,
        }
    }
}

/// The identity a node certificate carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeIdentity {
    /// The node ID (subject CN).
    pub node_id: String,
    /// The role (subject OU).
    pub role: Role,
    /// The cluster ID (subject O).
    pub cluster_id: String,
    /// The end of the certificate's validity (renewal is due before it).
    pub not_after: time::OffsetDateTime,
}

/// Reads the identity from a DER certificate.
///
/// Only parses: it does not check the signature, the chain or the validity
/// period, so call it on a certificate that was verified already (a TLS peer
/// chain, this node's own certificate) or that is only being displayed.
/// Fails with InvalidArgument when the certificate does not parse or its
/// subject lacks one of CN, OU (a known role) or O.
pub fn parse_cert_der(der: &[u8]) -> Result<NodeIdentity> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| Error::invalid(format!("could not parse node certificate: {e}")))?;
    let subject = cert.subject();
    let node_id = single_attr(subject.iter_common_name(), "CN")?;
    let ou = single_attr(subject.iter_organizational_unit(), "OU")?;
    let role = Role::from_ou(&ou)
        .ok_or_else(|| Error::invalid(format!("node certificate has an unknown role {ou:?}")))?;
    let cluster_id = single_attr(subject.iter_organization(), "O")?;
    Ok(NodeIdentity {
        node_id,
        role,
        cluster_id,
        not_after: cert.validity().not_after.to_datetime(),
    })
}

/// Reads the identity from the first certificate of a PEM bundle (a node
/// certificate file may carry intermediates after the leaf).
///
/// The same checks, and the same absence of checks, as [`parse_cert_der`].
pub fn parse_cert_pem(pem: &str) -> Result<NodeIdentity> {
    let first = CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .ok_or_else(|| Error::invalid("no certificate in PEM data"))?
        .map_err(|e| Error::invalid(format!("could not read certificate PEM: {e}")))?;
    parse_cert_der(first.as_ref())
}

/// The one value of a subject attribute. Several values are refused rather
/// than picking one: a subject with two CNs is not one swarm's issuer made.
fn single_attr<'a, 'b: 'a>(
    mut values: impl Iterator<Item = &'a AttributeTypeAndValue<'b>>,
    what: &str,
) -> Result<String> {
    let first = values
        .next()
        .ok_or_else(|| Error::invalid(format!("node certificate subject has no {what}")))?;
    if values.next().is_some() {
        return Err(Error::invalid(format!(
            "node certificate subject has several {what}"
        )));
    }
    first
        .as_str()
        .map(str::to_owned)
        .map_err(|e| Error::invalid(format!("node certificate subject {what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_round_trip() {
        for role in [Role::Manager, Role::Worker] {
            assert_eq!(Role::from_ou(role.ou()), Some(role));
        }
        assert_eq!(Role::from_ou("swarm-Manager"), None);
        assert_eq!(Role::from_ou(""), None);
        assert_eq!(Role::Manager.api(), NodeSpecRoleEnum::MANAGER);
        assert_eq!(Role::Worker.api(), NodeSpecRoleEnum::WORKER);
        assert_eq!(
            serde_json::to_string(&Role::Manager).unwrap(),
            "\"manager\""
        );
    }

    #[test]
    fn garbage_is_refused() {
        assert!(parse_cert_der(b"not a certificate").is_err());
        assert!(parse_cert_pem("").is_err());
        assert!(
            parse_cert_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
                .is_err()
        );
    }

    #[test]
    fn a_root_ca_is_not_a_node() {
        // The root has CN only: no role, no cluster.
        let ca = crate::ca::root::generate(1).unwrap();
        let err = parse_cert_pem(&ca.cert_pem).unwrap_err();
        assert!(err.message().contains("OU"), "{err}");
    }
}
