//! Root CA rotation (`docker swarm ca --rotate`), as swarmkit does it:
//!
//! 1. A new root is made (or given with `--ca-cert/--ca-key`) and
//!    cross-signed by the current one. The cluster's TLS info names the new
//!    root as the issuer of certificates; its trust root is still the old one.
//! 2. Every node renews at once (its certificate generation is stale): the
//!    CA signs with the new root and serves the certificate with the
//!    cross-signed root after it, so nodes that still trust only the old
//!    root accept it; it hands out both roots to trust.
//! 3. Once every node holds a certificate the new root signed, the leader
//!    ends the rotation: the new root becomes the root (and the join tokens
//!    carry its digest), and nodes renew again to trust it alone.
//!
//! Running tasks are never touched: only certificates change, in place.

use super::issuer::Issuer;
use super::root::RootCa;
use crate::error::Error;
use crate::error::Result;
use crate::model::api;
use crate::model::Cluster;
use crate::model::Node;
use crate::model::RootRotation;

/// Starts rotating `c` to `new` (a root made here or given by the user).
pub fn start(c: &mut Cluster, new_cert_pem: &str, new_key_pem: &str) -> Result<()> {
    // The new root must be a CA whose key is the one given.
    Issuer::new(new_cert_pem, new_key_pem)
        .map_err(|_| Error::invalid("the signing CA cert and key do not match"))?;
    let current = Issuer::new(&c.root_ca_cert, &c.root_ca_key)?;
    let cross_signed_pem = current.cross_sign(new_cert_pem, new_key_pem)?;
    let (subject, key) = super::root::tls_info_pem(new_cert_pem);
    let tls = c.api.tls_info.get_or_insert_with(Default::default);
    tls.cert_issuer_subject = Some(subject);
    tls.cert_issuer_public_key = Some(key);
    c.root_rotation = Some(RootRotation {
        cert_pem: new_cert_pem.to_string(),
        key_pem: new_key_pem.to_string(),
        cross_signed_pem,
    });
    c.api.root_rotation_in_progress = Some(true);
    c.ca_generation += 1;
    Ok(())
}

/// Starts rotating `c` to a root made here.
pub fn start_generated(c: &mut Cluster) -> Result<()> {
    let new = super::root::generate(20)?;
    start(c, &new.cert_pem, &new.key_pem)
}

/// What the CA signs with now, and what it hands out: (issuer certificate
/// PEM, issuer key PEM, certificate chain appended after a leaf, roots to
/// trust).
pub fn signing_material(c: &Cluster) -> (String, String, String, String) {
    match &c.root_rotation {
        Some(r) => (
            r.cert_pem.clone(),
            r.key_pem.clone(),
            r.cross_signed_pem.clone(),
            format!("{}{}", ensure_newline(&c.root_ca_cert), r.cert_pem),
        ),
        None => (
            c.root_ca_cert.clone(),
            c.root_ca_key.clone(),
            String::new(),
            c.root_ca_cert.clone(),
        ),
    }
}

fn ensure_newline(pem: &str) -> String {
    if pem.ends_with('\n') {
        pem.to_string()
    } else {
        format!("{pem}\n")
    }
}

/// Whether every node of the cluster holds a certificate the rotation's
/// new root signed (as the CA recorded when it issued them). Pure.
pub fn every_node_rotated(c: &Cluster, nodes: &[Node]) -> bool {
    let Some(want) = c.api.tls_info.as_ref() else {
        return false;
    };
    nodes.iter().all(|n| {
        n.api
            .description
            .as_ref()
            .and_then(|d| d.tls_info.as_ref())
            .is_some_and(|t| {
                t.cert_issuer_public_key == want.cert_issuer_public_key
                    && t.cert_issuer_subject == want.cert_issuer_subject
            })
    })
}

/// Ends the rotation of `c`: the new root becomes the root, the join tokens
/// carry its digest. `None` when no rotation is in progress.
pub fn finish(c: &mut Cluster) -> Option<()> {
    let r = c.root_rotation.take()?;
    c.root_ca_cert = r.cert_pem.clone();
    c.root_ca_key = r.key_pem;
    let (subject, key) = super::root::tls_info_pem(&r.cert_pem);
    c.api.tls_info = Some(api::TlsInfo {
        trust_root: Some(r.cert_pem.clone()),
        cert_issuer_subject: Some(subject),
        cert_issuer_public_key: Some(key),
    });
    c.api.root_rotation_in_progress = Some(false);
    let root = r.cert_pem.into_bytes();
    let tokens = c.api.join_tokens.get_or_insert_with(Default::default);
    tokens.worker = Some(super::tokens::generate(&root));
    tokens.manager = Some(super::tokens::generate(&root));
    c.ca_generation += 1;
    Some(())
}

/// The TLS info a node shows once it holds a certificate from `issuer_pem`
/// and trusts `trust_root`.
pub fn node_tls_info(issuer_pem: &str, trust_root: &str) -> api::TlsInfo {
    let (subject, key) = super::root::tls_info_pem(issuer_pem);
    api::TlsInfo {
        trust_root: Some(trust_root.to_string()),
        cert_issuer_subject: Some(subject),
        cert_issuer_public_key: Some(key),
    }
}

/// A root made for a rotation (exposed for tests).
pub fn new_root() -> Result<RootCa> {
    super::root::generate(20)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> Cluster {
        let root = super::super::root::generate(20).unwrap();
        let mut c = Cluster {
            root_ca_cert: root.cert_pem.clone(),
            root_ca_key: root.key_pem,
            ..Default::default()
        };
        c.api.tls_info = Some(node_tls_info(&root.cert_pem, &root.cert_pem));
        c
    }

    fn node_with(tls: api::TlsInfo) -> Node {
        let mut n = Node::default();
        n.api.description = Some(api::NodeDescription {
            tls_info: Some(tls),
            ..Default::default()
        });
        n
    }

    #[test]
    fn a_rotation_signs_with_the_new_root_and_ends_when_every_node_has_it() {
        let mut c = cluster();
        let old = c.root_ca_cert.clone();
        start_generated(&mut c).unwrap();
        assert_eq!(c.ca_generation, 1);
        let (issuer, _, chain, trust) = signing_material(&c);
        assert_ne!(issuer, old);
        assert!(chain.contains("BEGIN CERTIFICATE"));
        assert!(trust.starts_with(&old) && trust.ends_with(&issuer));
        // The cluster's trust root is still the old one until the end.
        assert_eq!(
            c.api.tls_info.as_ref().unwrap().trust_root.as_deref(),
            Some(old.as_str())
        );
        let rotated = node_with(node_tls_info(&issuer, &trust));
        let stale = node_with(node_tls_info(&old, &old));
        assert!(!every_node_rotated(&c, &[rotated.clone(), stale]));
        assert!(every_node_rotated(&c, &[rotated]));
        finish(&mut c).unwrap();
        assert_eq!(c.root_ca_cert, issuer);
        assert_eq!(c.ca_generation, 2);
        assert!(super::super::tokens::matches_ca(
            c.api
                .join_tokens
                .as_ref()
                .unwrap()
                .worker
                .as_deref()
                .unwrap(),
            issuer.as_bytes()
        ));
        let (_, _, chain, trust) = signing_material(&c);
        assert!(chain.is_empty());
        assert_eq!(trust, issuer);
    }

    #[test]
    fn a_given_root_must_match_its_key() {
        let mut c = cluster();
        let a = new_root().unwrap();
        let b = new_root().unwrap();
        assert!(start(&mut c, &a.cert_pem, &b.key_pem).is_err());
        assert!(c.root_rotation.is_none());
    }
}
