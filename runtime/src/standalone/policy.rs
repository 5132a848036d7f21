//! Restart policies of standalone containers, as dockerd applies them:
//! whether an exited container comes back, and after how long.
//!
//! Pure: the caller brings the exit, the counts and the clock.

use std::time::Duration;

use swarm::model::api::RestartPolicy;
use swarm::model::api::RestartPolicyNameEnum;

/// The first delay before a restart; each restart in a row doubles it.
const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest delay between restarts.
const MAX_DELAY: Duration = Duration::from_secs(60);
/// A run at least this long resets the delay to [`FIRST_DELAY`].
const RESET_AFTER: Duration = Duration::from_secs(10);

/// A restart policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Never restart (`no`, or none given).
    #[default]
    No,
    /// Restart whatever the exit, unless stopped by the user.
    Always,
    /// As `Always`, and also not when the daemon starts after the user
    /// stopped it.
    UnlessStopped,
    /// Restart after a non-zero exit, at most this many times (0: no limit).
    OnFailure(u64),
}

impl Policy {
    /// The policy of a `HostConfig.RestartPolicy`, or dockerd's refusal.
    pub fn from_api(p: Option<&RestartPolicy>) -> Result<Policy, String> {
        let Some(p) = p else {
            return Ok(Policy::No);
        };
        let max = p.maximum_retry_count.unwrap_or(0);
        let name = p.name.unwrap_or(RestartPolicyNameEnum::EMPTY);
        if name == RestartPolicyNameEnum::ON_FAILURE {
            if max < 0 {
                return Err(
                    "invalid restart policy: maximum retry count cannot be negative".into(),
                );
            }
            return Ok(Policy::OnFailure(max as u64));
        }
        if max != 0 {
            return Err(
                "invalid restart policy: maximum retry count can only be used with 'on-failure'"
                    .into(),
            );
        }
        Ok(match name {
            RestartPolicyNameEnum::ALWAYS => Policy::Always,
            RestartPolicyNameEnum::UNLESS_STOPPED => Policy::UnlessStopped,
            _ => Policy::No,
        })
    }

    /// Whether this policy restarts at all (dockerd refuses it with
    /// `AutoRemove`).
    pub fn restarts(self) -> bool {
        self != Policy::No
    }

    /// Whether a container that exited with `exit_code` comes back, after
    /// `restarts` restarts so far; never once the user stopped it.
    pub fn should_restart(self, exit_code: i64, manually_stopped: bool, restarts: u64) -> bool {
        if manually_stopped {
            return false;
        }
        match self {
            Policy::No => false,
            Policy::Always | Policy::UnlessStopped => true,
            Policy::OnFailure(max) => exit_code != 0 && (max == 0 || restarts < max),
        }
    }

    /// Whether the daemon starts the container when it itself starts: an
    /// `always` container even after the user stopped it (dockerd's
    /// documented difference to `unless-stopped`), the others as after an
    /// exit.
    pub fn start_with_daemon(self, exit_code: i64, manually_stopped: bool, restarts: u64) -> bool {
        match self {
            Policy::Always => true,
            _ => self.should_restart(exit_code, manually_stopped, restarts),
        }
    }
}

/// The delay before the next restart, from the previous one and how long
/// the container ran: doubling from 100 ms to at most a minute, back to
/// 100 ms after a run of ten seconds or more.
pub fn next_delay(previous: Option<Duration>, ran: Duration) -> Duration {
    match previous {
        Some(d) if ran < RESET_AFTER => (d * 2).min(MAX_DELAY),
        _ => FIRST_DELAY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: RestartPolicyNameEnum, max: i64) -> Result<Policy, String> {
        Policy::from_api(Some(&RestartPolicy {
            name: Some(name),
            maximum_retry_count: Some(max),
        }))
    }

    #[test]
    fn parses_like_dockerd() {
        assert_eq!(Policy::from_api(None), Ok(Policy::No));
        assert_eq!(policy(RestartPolicyNameEnum::EMPTY, 0), Ok(Policy::No));
        assert_eq!(policy(RestartPolicyNameEnum::ALWAYS, 0), Ok(Policy::Always));
        assert_eq!(
            policy(RestartPolicyNameEnum::ON_FAILURE, 3),
            Ok(Policy::OnFailure(3))
        );
        assert!(policy(RestartPolicyNameEnum::ON_FAILURE, -1)
            .unwrap_err()
            .contains("cannot be negative"));
        assert!(policy(RestartPolicyNameEnum::ALWAYS, 2)
            .unwrap_err()
            .contains("only be used with 'on-failure'"));
    }

    #[test]
    fn restarts_follow_the_policy() {
        assert!(!Policy::No.should_restart(1, false, 0));
        assert!(Policy::Always.should_restart(0, false, 7));
        assert!(!Policy::Always.should_restart(0, true, 0));
        assert!(Policy::UnlessStopped.should_restart(0, false, 0));
        assert!(!Policy::OnFailure(0).should_restart(0, false, 0));
        assert!(Policy::OnFailure(0).should_restart(2, false, 100));
        assert!(Policy::OnFailure(2).should_restart(2, false, 1));
        assert!(!Policy::OnFailure(2).should_restart(2, false, 2));
    }

    #[test]
    fn the_daemon_start_brings_back_what_would_run() {
        assert!(Policy::Always.start_with_daemon(0, false, 0));
        assert!(Policy::Always.start_with_daemon(0, true, 0));
        assert!(!Policy::UnlessStopped.start_with_daemon(0, true, 0));
        assert!(!Policy::No.start_with_daemon(1, false, 0));
        assert!(Policy::OnFailure(0).start_with_daemon(1, false, 0));
    }

    #[test]
    fn delays_double_and_reset() {
        let d = next_delay(None, Duration::ZERO);
        assert_eq!(d, Duration::from_millis(100));
        let d = next_delay(Some(d), Duration::from_secs(1));
        assert_eq!(d, Duration::from_millis(200));
        assert_eq!(
            next_delay(Some(Duration::from_secs(50)), Duration::ZERO),
            Duration::from_secs(60)
        );
        assert_eq!(
            next_delay(Some(Duration::from_secs(50)), Duration::from_secs(10)),
            Duration::from_millis(100)
        );
    }
}
