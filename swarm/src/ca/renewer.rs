//! Certificate renewal (swarmkit's `ca/renewer.go`): every node renews its
//! certificate at a random point between half and four fifths of its
//! lifetime (`--cert-expiry`), with the role its spec asks for, from any
//! manager, while its connections go on (the TLS state swaps in place).
//!
//! The due time is a wall-clock time while the renewer sleeps on the
//! monotonic clock, so it wakes at least every [`RECHECK`] to read the wall
//! clock again: a clock that jumped past the due time is noticed within that
//! much. A node whose clock runs ahead of the CA's gets certificates that are
//! already due by its own clock the moment they arrive; renewing them at
//! once would never end, so such a certificate is left alone for
//! [`AHEAD_BACKOFF`] (see [`ahead_of_ca`]).

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::issuer::BACKDATE;
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
const RECHECK: Duration = Duration::from_secs(10);
/// How long a certificate that came back already due (this node's clock is
/// ahead of the CA's) is kept before the next renewal on time: one renewal
/// per this much instead of one after another.
const AHEAD_BACKOFF: Duration = Duration::from_secs(300);

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

/// How long to sleep at wall-clock time `now` before looking again at a
/// certificate due at `at`: until then, but never longer than [`RECHECK`];
/// [`FIRST_RETRY`] when its validity could not be read (`None`). Pure.
pub fn wait_until_due(now: OffsetDateTime, at: Option<OffsetDateTime>) -> Duration {
    match at {
        None => FIRST_RETRY,
        Some(at) => {
            let left = (at - now).as_seconds_f64().max(0.0);
            Duration::from_secs_f64(left).min(RECHECK)
        }
    }
}

/// How far this node's clock is ahead of the clock of the CA that signed a
/// certificate valid from `not_before`, due at `due`, asked for at `asked`
/// and received at `now` (both read on this node's clock); `None` when the
/// clocks agree closely enough for the certificate not to be due yet. Pure.
///
/// A certificate is due at the earliest half-way through its life, and the
/// issuer backdates by [`BACKDATE`] while the shortest expiry is as long, so
/// by the issuer's clock it is never due before it was signed. One that was
/// due before this node even asked for it was signed by a clock behind this
/// one. The issuer's clock read `not_before + BACKDATE` when it signed; the
/// figure is this node's clock minus that, and never less than the margin
/// the due time was missed by.
pub fn ahead_of_ca(
    asked: OffsetDateTime,
    now: OffsetDateTime,
    not_before: OffsetDateTime,
    due: OffsetDateTime,
) -> Option<Duration> {
    if due >= asked {
        return None;
    }
    let by = (now - (not_before + BACKDATE)).max(asked - due);
    Some(Duration::from_secs_f64(by.as_seconds_f64().max(0.0)))
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

/// The certificate the renewer is waiting on: when it is due (picked once
/// per certificate, at random within its window) and whether it is being
/// kept past that because it arrived already due. Its methods take the
/// wall-clock and monotonic times from the caller.
#[derive(Default)]
struct Pace {
    /// The certificate's PEM and its due time.
    due: Option<(String, OffsetDateTime)>,
    /// No renewal on time before this (monotonic: no clock jump moves it).
    hold: Option<Instant>,
    /// Whether the clock being ahead was reported since the last
    /// certificate that arrived in time.
    warned: bool,
}

impl Pace {
    /// When `pem` became valid and when it is due (picked the first time it
    /// is asked about); `None` when its validity cannot be read.
    fn due_of(&mut self, pem: &str) -> Option<(OffsetDateTime, OffsetDateTime)> {
        let (from, to) = validity(pem)?;
        let at = match &self.due {
            Some((p, at)) if p == pem => *at,
            _ => renew_at(from, to, rand::thread_rng().gen_range(0.5..0.8)),
        };
        self.due = Some((pem.to_string(), at));
        Some((from, at))
    }

    /// How long to sleep at `now` (`mono` on the monotonic clock) before
    /// looking again: until the hold ends, else until the due time (at most
    /// [`RECHECK`]).
    fn wait(&mut self, pem: &str, now: OffsetDateTime, mono: Instant) -> Duration {
        match self.hold.filter(|h| *h > mono) {
            Some(h) => h - mono,
            None => wait_until_due(now, self.due_of(pem).map(|d| d.1)),
        }
    }

    /// Whether `pem` is to be renewed at `now` (`mono`): the hold is out
    /// and it is due.
    fn renew_now(&mut self, pem: &str, now: OffsetDateTime, mono: Instant) -> bool {
        if self.hold.is_some_and(|h| mono < h) {
            return false;
        }
        self.hold = None;
        self.due_of(pem).is_none_or(|(_, at)| now >= at)
    }

    /// Takes note of `pem`, asked for at `asked` and received at `now`
    /// (`mono`): when it is already due, holds it for [`AHEAD_BACKOFF`],
    /// else ends any hold.
    /// Returns the lead to warn about the first time it is so since the
    /// last certificate that arrived in time.
    fn renewed(
        &mut self,
        pem: &str,
        asked: OffsetDateTime,
        now: OffsetDateTime,
        mono: Instant,
    ) -> Option<Duration> {
        let ahead = self
            .due_of(pem)
            .and_then(|(from, at)| ahead_of_ca(asked, now, from, at));
        let Some(by) = ahead else {
            // In time (a rotation may renew during a hold): nothing to keep.
            self.hold = None;
            self.warned = false;
            return None;
        };
        self.hold = Some(mono + AHEAD_BACKOFF);
        (!std::mem::replace(&mut self.warned, true)).then_some(by)
    }
}

/// Logs that this node's clock is `by` ahead of the CA's.
fn warn_ahead(by: Duration) {
    let s = by.as_secs();
    tracing::warn!(
        ahead_s = s,
        "this node's clock is ahead of the CA's by about {}m{:02}s: the certificate it just \
         received is already due by this clock; it is renewed again every {} minutes until \
         the clocks agree",
        s / 60,
        s % 60,
        AHEAD_BACKOFF.as_secs() / 60
    );
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
    let mut pace = Pace::default();
    loop {
        let stale = desired
            .as_mut()
            .is_some_and(|d| *d.borrow_and_update() != issued);
        if !stale {
            let wait = pace.wait(
                &tls.certs().cert_pem,
                OffsetDateTime::now_utc(),
                Instant::now(),
            );
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
            if !pace.renew_now(
                &tls.certs().cert_pem,
                OffsetDateTime::now_utc(),
                Instant::now(),
            ) {
                continue;
            }
        }
        let asked = OffsetDateTime::now_utc();
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
                    let now = OffsetDateTime::now_utc();
                    if let Some(by) = pace.renewed(&certs.cert_pem, asked, now, Instant::now()) {
                        warn_ahead(by);
                    }
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
    use time::macros::datetime;

    use super::*;

    const MIN: time::Duration = time::Duration::minutes(1);

    #[test]
    fn renewal_falls_between_half_and_four_fifths_of_the_lifetime() {
        let from = datetime!(2026-01-01 00:00 UTC);
        let to = from + time::Duration::hours(100);
        assert_eq!(renew_at(from, to, 0.5), from + time::Duration::hours(50));
        assert_eq!(renew_at(from, to, 0.8), from + time::Duration::hours(80));
        assert_eq!(renew_at(from, to, 0.1), from + time::Duration::hours(50));
        assert_eq!(renew_at(from, to, 0.99), from + time::Duration::hours(80));
    }

    #[test]
    fn the_wall_clock_is_read_again_at_least_every_ten_seconds() {
        let now = datetime!(2026-01-01 12:00 UTC);
        let s = Duration::from_secs;
        // Far off: wake after RECHECK and look again.
        assert_eq!(wait_until_due(now, Some(now + 30 * MIN)), s(10));
        assert_eq!(RECHECK, s(10));
        // Close: sleep exactly until then.
        assert_eq!(
            wait_until_due(now, Some(now + time::Duration::seconds(3))),
            s(3)
        );
        // The clock jumped past it: at once.
        assert_eq!(wait_until_due(now + 50 * MIN, Some(now + MIN)), s(0));
        assert_eq!(wait_until_due(now, Some(now)), s(0));
        // A certificate whose validity cannot be read is renewed soon.
        assert_eq!(wait_until_due(now, None), FIRST_RETRY);
    }

    /// A certificate as the issuer makes it, signed when the CA's clock
    /// read `ca_now`, with `expiry`: its not-before and its due time at
    /// `fraction`.
    fn issued(
        ca_now: OffsetDateTime,
        expiry: time::Duration,
        fraction: f64,
    ) -> (OffsetDateTime, OffsetDateTime) {
        let from = ca_now - BACKDATE;
        (from, renew_at(from, ca_now + expiry, fraction))
    }

    #[test]
    fn a_certificate_from_a_ca_whose_clock_agrees_is_never_already_due() {
        let ca_now = datetime!(2026-01-01 12:00 UTC);
        // The shortest expiry and the earliest due time: due the moment it
        // is signed, but not before it was asked for.
        for fraction in [0.5, 0.65, 0.8] {
            for expiry in [time::Duration::hours(1), time::Duration::days(90)] {
                let (from, due) = issued(ca_now, expiry, fraction);
                let asked = ca_now - time::Duration::milliseconds(20);
                let now = ca_now + time::Duration::milliseconds(20);
                assert_eq!(
                    ahead_of_ca(asked, now, from, due),
                    None,
                    "{fraction} {expiry}"
                );
            }
        }
    }

    #[test]
    fn a_clock_fifty_minutes_ahead_of_the_ca_is_noticed_and_measured() {
        let ca_now = datetime!(2026-01-01 12:00 UTC);
        let ours = ca_now + 50 * MIN;
        // With a one-hour expiry every due time falls within 36 minutes of
        // signing, so by a clock 50 minutes ahead each one is already due.
        for fraction in [0.5, 0.65, 0.8] {
            let (from, due) = issued(ca_now, time::Duration::hours(1), fraction);
            let asked = ours - time::Duration::milliseconds(20);
            let by = ahead_of_ca(asked, ours, from, due).expect("ahead");
            assert_eq!(by, Duration::from_secs(50 * 60), "{fraction}");
        }
    }

    #[test]
    fn a_small_lead_shows_only_when_it_passes_the_due_time() {
        let ca_now = datetime!(2026-01-01 12:00 UTC);
        let ours = ca_now + 5 * MIN;
        // Due 12 minutes after signing: still ahead of a clock 5 minutes
        // ahead, so nothing to hold.
        let (from, due) = issued(ca_now, time::Duration::hours(1), 0.6);
        assert_eq!(due, ca_now + 12 * MIN);
        assert_eq!(ahead_of_ca(ours, ours, from, due), None);
        // Due at signing: 5 minutes late by this clock.
        let (from, due) = issued(ca_now, time::Duration::hours(1), 0.5);
        let by = ahead_of_ca(ours, ours, from, due).expect("ahead");
        assert_eq!(by, Duration::from_secs(300));
    }

    #[test]
    fn the_lead_is_never_reported_below_the_margin_the_due_time_was_missed_by() {
        // An issuer that backdates less than this one does: its not-before
        // tells nothing, the missed due time still does.
        let asked = datetime!(2026-01-01 12:00 UTC);
        let from = asked - 10 * MIN;
        let due = asked - 7 * MIN;
        let by = ahead_of_ca(asked, asked, from, due).expect("ahead");
        assert_eq!(by, Duration::from_secs(7 * 60));
    }

    /// A node certificate signed when the CA's clock read `ca_now`, for an
    /// hour, as the issuer makes it.
    fn hour_cert(ca_now: OffsetDateTime) -> String {
        use crate::ca::identity::Role;
        let ca = crate::ca::root::generate(1).unwrap();
        let issuer = crate::ca::issuer::Issuer::new(&ca.cert_pem, &ca.key_pem).unwrap();
        let key = crate::ca::csr::new_key_and_csr().unwrap();
        let expiry = time::Duration::hours(1);
        issuer
            .issue_between(
                &key.csr_pem,
                "n1",
                Role::Worker,
                "c1",
                ca_now - BACKDATE,
                ca_now + expiry,
            )
            .unwrap()
    }

    #[test]
    fn a_certificate_that_arrives_due_is_held_five_minutes_and_reported_once() {
        let ca_now = datetime!(2026-01-01 12:00 UTC);
        let ours = ca_now + 50 * MIN;
        let mono = Instant::now();
        let mut pace = Pace::default();
        let first = hour_cert(ca_now);
        let by = pace.renewed(&first, ours, ours, mono);
        assert_eq!(by, Some(Duration::from_secs(50 * 60)));
        // Held: no renewal before five minutes on the monotonic clock,
        // whatever the wall clock says.
        let s = Duration::from_secs;
        assert_eq!(pace.wait(&first, ours, mono + s(1)), s(299));
        assert!(!pace.renew_now(&first, ours + 40 * MIN, mono + s(299)));
        assert!(pace.renew_now(&first, ours, mono + s(300)));
        // Still ahead at the next one: held again, not reported again.
        let second = hour_cert(ca_now + 5 * MIN);
        let later = mono + s(301);
        assert_eq!(
            pace.renewed(&second, ours + 5 * MIN, ours + 5 * MIN, later),
            None
        );
        assert_eq!(pace.wait(&second, ours, later), AHEAD_BACKOFF);
        // The clocks agree again: no hold, and a later lead is reported.
        let third = hour_cert(ca_now + 10 * MIN);
        let now = ca_now + 10 * MIN;
        let back = mono + s(700);
        assert_eq!(pace.renewed(&third, now, now, back), None);
        assert_eq!(pace.hold, None);
        assert!(!pace.renew_now(&third, now - time::Duration::seconds(1), back));
        let fourth = hour_cert(ca_now + 20 * MIN);
        assert!(pace
            .renewed(&fourth, ours + 20 * MIN, ours + 20 * MIN, back)
            .is_some());
    }

    #[test]
    fn a_jump_past_the_due_time_is_renewed_at_the_next_look() {
        let ca_now = datetime!(2026-01-01 12:00 UTC);
        let mono = Instant::now();
        let mut pace = Pace::default();
        let cert = hour_cert(ca_now);
        assert_eq!(pace.renewed(&cert, ca_now, ca_now, mono), None);
        // Not due yet: look again within ten seconds.
        let wait = pace.wait(&cert, ca_now - time::Duration::seconds(1), mono);
        assert!(wait <= RECHECK && wait > Duration::ZERO, "{wait:?}");
        assert!(!pace.renew_now(&cert, ca_now - time::Duration::seconds(1), mono));
        // The clock jumped 50 minutes: due at the next look.
        let jumped = ca_now + 50 * MIN;
        assert_eq!(pace.wait(&cert, jumped, mono + RECHECK), Duration::ZERO);
        assert!(pace.renew_now(&cert, jumped, mono + RECHECK));
    }
}
