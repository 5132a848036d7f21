//! TLS of TCP listeners from dockerd's flags: the server's certificate and
//! key, and with `--tlsverify` the CA client certificates must chain to.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::PrivateKeyDer;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls::ServerConfig;

use crate::config::TlsConfig;

/// The listeners' TLS configuration, or `None` when TLS is off.
pub fn server_config(cfg: &TlsConfig) -> anyhow::Result<Option<Arc<ServerConfig>>> {
    if !cfg.enabled {
        return Ok(None);
    }
    let provider = Arc::new(ring::default_provider());
    let (chain, key) = key_pair(&cfg.cert, &cfg.key)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS versions")?;
    let builder = if cfg.verify {
        let mut roots = RootCertStore::empty();
        for ca in read_certs(&cfg.ca)
            .with_context(|| format!("could not read CA certificate {:?}", cfg.ca))?
        {
            roots.add(ca).with_context(|| {
                format!("failed to append certificates from PEM file: {:?}", cfg.ca)
            })?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .with_context(|| {
                format!("failed to append certificates from PEM file: {:?}", cfg.ca)
            })?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder.with_single_cert(chain, key).with_context(|| {
        format!(
            "Could not load X509 key pair (cert: {:?}, key: {:?})",
            cfg.cert, cfg.key
        )
    })?;
    Ok(Some(Arc::new(config)))
}

fn key_pair(
    cert: &Path,
    key: &Path,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let context = || format!("Could not load X509 key pair (cert: {cert:?}, key: {key:?})");
    let chain = read_certs(cert).with_context(context)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(context)?;
    Ok((chain, key))
}

/// The certificates of a PEM file; none is an error.
fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in {}", path.display());
    Ok(certs)
}
