//! Slows down join-token guessing: a remote address that keeps presenting
//! wrong tokens waits longer and longer for each answer, and may have only
//! a few such answers pending at once, so guesses from one address come
//! at most a few per delay. A token is 128 bits of randomness, so guessing
//! was hopeless already; this keeps it from costing the managers anything
//! either. swarmkit answers every guess at once.
//!
//! The state is in memory, per manager, bounded; time is passed in, so the
//! tests need no clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;
use std::time::Instant;

/// Wrong tokens forgiven before any delay (typos, a stale script).
const FREE_FAILURES: u32 = 3;
/// The first delay, doubled with each further failure...
const FIRST_DELAY: Duration = Duration::from_millis(250);
/// ...up to this.
const MAX_DELAY: Duration = Duration::from_secs(10);
/// Failures are forgotten this long after the last one.
const FORGET_AFTER: Duration = Duration::from_secs(600);
/// Delayed answers one address may have pending; beyond, attempts are
/// refused before their token is looked at.
const MAX_PENDING: u32 = 4;
/// Addresses remembered at most (a flood of addresses evicts the stalest).
const MAX_ADDRESSES: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
    pending: u32,
}

/// What happened to one address's wrong tokens.
#[derive(Debug, Default)]
pub struct JoinThrottle {
    by_addr: HashMap<IpAddr, Record>,
}

/// Whether an attempt may have its token checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Check the token.
    Check,
    /// Too many delayed answers pending for this address: refuse unchecked.
    Busy,
}

impl JoinThrottle {
    /// Whether an attempt from `addr` at `now` is checked at all.
    pub fn admit(&mut self, addr: IpAddr, now: Instant) -> Admission {
        self.forget_stale(addr, now);
        match self.by_addr.get(&addr) {
            Some(r) if r.pending >= MAX_PENDING => Admission::Busy,
            _ => Admission::Check,
        }
    }

    /// Records a wrong token from `addr` at `now`; returns how long to wait
    /// before answering, then call [`JoinThrottle::answered`].
    pub fn failed(&mut self, addr: IpAddr, now: Instant) -> Duration {
        self.forget_stale(addr, now);
        if !self.by_addr.contains_key(&addr) && self.by_addr.len() >= MAX_ADDRESSES {
            self.evict(now);
        }
        let r = self.by_addr.entry(addr).or_insert(Record {
            failures: 0,
            last: now,
            pending: 0,
        });
        r.failures = r.failures.saturating_add(1);
        r.last = now;
        let delay = delay_for(r.failures);
        if !delay.is_zero() {
            r.pending += 1;
        }
        delay
    }

    /// A delayed answer to `addr` went out.
    pub fn answered(&mut self, addr: IpAddr) {
        if let Some(r) = self.by_addr.get_mut(&addr) {
            r.pending = r.pending.saturating_sub(1);
        }
    }

    /// A valid token from `addr`: its past failures are forgiven.
    pub fn succeeded(&mut self, addr: IpAddr) {
        if let Some(r) = self.by_addr.get_mut(&addr) {
            r.failures = 0;
        }
    }

    fn forget_stale(&mut self, addr: IpAddr, now: Instant) {
        if let Some(r) = self.by_addr.get(&addr) {
            if r.pending == 0 && now.duration_since(r.last) >= FORGET_AFTER {
                self.by_addr.remove(&addr);
            }
        }
    }

    /// Drops what is stale, or else the stalest address without pending
    /// answers.
    fn evict(&mut self, now: Instant) {
        self.by_addr
            .retain(|_, r| r.pending > 0 || now.duration_since(r.last) < FORGET_AFTER);
        if self.by_addr.len() < MAX_ADDRESSES {
            return;
        }
        let stalest = self
            .by_addr
            .iter()
            .filter(|(_, r)| r.pending == 0)
            .min_by_key(|(_, r)| r.last)
            .map(|(a, _)| *a);
        if let Some(a) = stalest {
            self.by_addr.remove(&a);
        }
    }
}

/// The wait after the `failures`-th wrong token in a row.
fn delay_for(failures: u32) -> Duration {
    if failures <= FREE_FAILURES {
        return Duration::ZERO;
    }
    let doublings = (failures - FREE_FAILURES - 1).min(16);
    FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn a_few_typos_are_free_then_each_guess_waits_longer_up_to_a_cap() {
        let mut t = JoinThrottle::default();
        let now = Instant::now();
        let delays: Vec<Duration> = (0..10)
            .map(|_| {
                let d = t.failed(ip(1), now);
                t.answered(ip(1));
                d
            })
            .collect();
        let ms: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [0, 0, 0, 250, 500, 1000, 2000, 4000, 8000, 10000]);
        // Another address is not slowed by the first one's guesses.
        assert_eq!(t.failed(ip(2), now), Duration::ZERO);
    }

    #[test]
    fn a_valid_token_or_ten_quiet_minutes_forgive() {
        let mut t = JoinThrottle::default();
        let now = Instant::now();
        for _ in 0..5 {
            t.failed(ip(1), now);
            t.answered(ip(1));
        }
        t.succeeded(ip(1));
        assert_eq!(t.failed(ip(1), now), Duration::ZERO);
        for _ in 0..5 {
            t.failed(ip(1), now);
            t.answered(ip(1));
        }
        let later = now + FORGET_AFTER;
        assert_eq!(t.admit(ip(1), later), Admission::Check);
        assert_eq!(t.failed(ip(1), later), Duration::ZERO);
    }

    #[test]
    fn parallel_guesses_beyond_the_pending_cap_are_refused_unchecked() {
        let mut t = JoinThrottle::default();
        let now = Instant::now();
        for _ in 0..FREE_FAILURES {
            t.failed(ip(1), now);
        }
        // Four delayed answers pending, none answered yet.
        for _ in 0..MAX_PENDING {
            assert_eq!(t.admit(ip(1), now), Admission::Check);
            assert!(!t.failed(ip(1), now).is_zero());
        }
        assert_eq!(t.admit(ip(1), now), Admission::Busy);
        // Even much later, while they are pending.
        assert_eq!(t.admit(ip(1), now + FORGET_AFTER * 2), Admission::Busy);
        t.answered(ip(1));
        assert_eq!(t.admit(ip(1), now), Admission::Check);
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_addresses() {
        let mut t = JoinThrottle::default();
        let now = Instant::now();
        for i in 0..(MAX_ADDRESSES as u32 + 100) {
            let a = IpAddr::from(i.to_be_bytes());
            t.failed(a, now + Duration::from_millis(u64::from(i)));
        }
        assert!(t.by_addr.len() <= MAX_ADDRESSES);
    }
}
