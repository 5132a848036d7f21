//! Certificate renewal (swarmkit's `ca/renewer.go`): every node renews its
//! certificate at a random point between half and four fifths of its
//! lifetime (`--cert-expiry`), with the role its spec asks for, from any
//! manager, while its connections go on (the TLS state swaps in place).

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::server::IssueRequest;
use super::tls::NodeCerts;
use super::tls::TlsState;
use crate::error::Error;
use crate::error::Result;
use crate::transport::proto::ca::node_ca_client::NodeCaClient;
use crate::transport::status::from_status;

/// How long one certificate request may take.
const RENEW_TIMEOUT: Duration = Duration::from_secs(10);
/// The first wait after a failed renewal; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(5);
/// The longest wait between failed renewals.
const MAX_RETRY: Duration = Duration::from_secs(300);
/// The longest the renewer sleeps before it reads the wall clock again, so
/// a clock that jumped past the due time is noticed within this much.
const RECHECK: Duration = Duration::from_secs(60);

/// When to renew a certificate valid from `not_before` to `not_after`: at
/// `fraction` (0.5 to 0.8) of its lifetime. Pure.
pub fn renew_at(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    fraction: f64,
) -> OffsetDateTime {
    let life = (not_after - not_before).as_seconds_f64().max(0.0);
    not_before + time::Duration::seconds_f64(life * fraction.clamp(0.5, 0.8))
}

/// The validity of the first certificate in `pem`.
fn validity(pem: &str) -> Option<(OffsetDateTime, OffsetDateTime)> {
    let der = CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()?
        .ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let v = cert.validity();
    Some((v.not_before.to_datetime(), v.not_after.to_datetime()))
}

/// Asks the managers at `addrs` (in order) for a new certificate with the
/// role this node's spec asks for, authenticating with the current one.
/// Returns it with the CA generation it belongs to.
pub async fn renew(tls: &Arc<TlsState>, addrs: &[String]) -> Result<(NodeCerts, u64)> {
    let key = super::csr::new_key_and_csr()?;
    let mut last = Error::no_leader();
    for addr in addrs {
        let ch = crate::transport::client::channel(addr, tls.client_config())?;
        let mut c = NodeCaClient::new(ch);
        let req = IssueRequest {
            csr_pem: key.csr_pem.clone(),
            ..Default::default()
        };
        match tokio::time::timeout(RENEW_TIMEOUT, c.issue_node_certificate(req)).await {
            Err(_) => last = Error::no_leader(),
            Ok(Err(s)) => last = from_status(&s),
            Ok(Ok(r)) => {
                let r = r.into_inner();
                let certs = NodeCerts {
                    cert_pem: r.cert_pem,
                    key_pem: key.key_pem.clone(),
                    root_pem: r.root_pem,
                };
                return Ok((certs, r.ca_generation));
            }
        }
    }
    Err(last)
}

/// Renews `tls`'s certificate (of CA generation `issued`) when it is due,
/// or at once when the cluster's generation (`desired`) moves away from it
/// (a root rotation), through the managers `managers()` names; hands each
/// new one and its generation to `save` (the key store), until `cancel`.
pub async fn run(
    tls: Arc<TlsState>,
    mut issued: u64,
    desired: tokio::sync::watch::Receiver<u64>,
    managers: impl Fn() -> Vec<String> + Send,
    save: impl Fn(&NodeCerts, u64) -> Result<()> + Send,
    cancel: CancellationToken,
) {
    let mut retry = FIRST_RETRY;
    // `None` once no more news of the cluster can come: renew on time only.
    let mut desired = Some(desired);
    // When the current certificate is due, picked once per certificate.
    let mut due: Option<(String, OffsetDateTime)> = None;
    loop {
        let stale = desired
            .as_mut()
            .is_some_and(|d| *d.borrow_and_update() != issued);
        if !stale {
            let pem = tls.certs().cert_pem.clone();
            let at = match &due {
                Some((p, at)) if *p == pem => Some(*at),
                _ => validity(&pem)
                    .map(|(from, to)| renew_at(from, to, rand::thread_rng().gen_range(0.5..0.8))),
            };
            due = at.map(|a| (pem, a));
            // The sleep runs on the monotonic clock: waking at least every
            // RECHECK notices a wall clock that jumped past the due time.
            let wait = match at {
                Some(at) => {
                    let left = (at - OffsetDateTime::now_utc()).as_seconds_f64().max(0.0);
                    Duration::from_secs_f64(left).min(RECHECK)
                }
                None => FIRST_RETRY,
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                r = async {
                    match desired.as_mut() {
                        Some(d) => d.changed().await,
                        None => std::future::pending().await,
                    }
                } => {
                    if r.is_err() {
                        desired = None;
                    }
                    continue;
                }
                _ = tokio::time::sleep(wait) => {}
            }
            if at.is_some_and(|at| OffsetDateTime::now_utc() < at) {
                continue;
            }
        }
        match renew(&tls, &managers()).await {
            Ok((certs, generation)) => {
                if let Err(e) = tls
                    .update(certs.clone())
                    .and_then(|()| save(&certs, generation))
                {
                    tracing::error!(error = %e, "installing the renewed certificate failed");
                } else {
                    tracing::info!(generation, "node certificate renewed");
                    issued = generation;
                    retry = FIRST_RETRY;
                    continue;
                }
            }
            Err(e) => tracing::warn!(error = %e, "renewing the node certificate failed"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(retry) => {}
        }
        retry = (retry * 2).min(MAX_RETRY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_falls_between_half_and_four_fifths_of_the_lifetime() {
        let from = time::macros::datetime!(2026-01-01 00:00 UTC);
        let to = from + time::Duration::hours(100);
        assert_eq!(renew_at(from, to, 0.5), from + time::Duration::hours(50));
        assert_eq!(renew_at(from, to, 0.8), from + time::Duration::hours(80));
        assert_eq!(renew_at(from, to, 0.1), from + time::Duration::hours(50));
        assert_eq!(renew_at(from, to, 0.99), from + time::Duration::hours(80));
    }
}
