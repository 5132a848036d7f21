//! Restart policy: whether and when an ended task is replaced.

use std::time::Duration;

use crate::model::api;
use crate::model::api::TaskState;
use crate::model::Task;

/// The decision for one ended task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Replace it now.
    Now,
    /// Replace it after this long.
    After(Duration),
    /// Leave it.
    Never,
}

const DEFAULT_DELAY: Duration = Duration::from_secs(5);

fn parse_time(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// Decides for `ended` given the policy and how many tasks of the same slot
/// (or node) already ended within the policy window.
pub fn decide(
    policy: Option<&api::TaskSpecRestartPolicy>,
    ended: &Task,
    history: &[&Task],
    now: time::OffsetDateTime,
) -> Restart {
    let p = policy.cloned().unwrap_or_default();
    let cond = p
        .condition
        .unwrap_or(api::TaskSpecRestartPolicyConditionEnum::ANY);
    let state = ended.state();
    let wants = match cond {
        api::TaskSpecRestartPolicyConditionEnum::NONE => false,
        api::TaskSpecRestartPolicyConditionEnum::ON_FAILURE => state != TaskState::COMPLETE,
        _ => true,
    };
    if !wants {
        return Restart::Never;
    }
    if let Some(max) = p.max_attempts.filter(|m| *m > 0) {
        let window = p
            .window
            .filter(|w| *w > 0)
            .map(|w| Duration::from_nanos(w as u64));
        let attempts = history
            .iter()
            .filter(|t| t.state() > TaskState::RUNNING)
            .filter(|t| {
                match (
                    window,
                    t.api
                        .status
                        .as_ref()
                        .and_then(|s| s.timestamp.as_deref())
                        .and_then(parse_time),
                ) {
                    (Some(w), Some(ts)) => (now - ts) <= w,
                    _ => true,
                }
            })
            .count() as i64;
        // The first run is not a restart.
        if attempts > max {
            return Restart::Never;
        }
    }
    let delay = p
        .delay
        .map(|d| Duration::from_nanos(d.max(0) as u64))
        .unwrap_or(DEFAULT_DELAY);
    let ended_at = ended
        .api
        .status
        .as_ref()
        .and_then(|s| s.timestamp.as_deref())
        .and_then(parse_time);
    match ended_at {
        Some(ts) => {
            let elapsed = now - ts;
            let elapsed = Duration::try_from(elapsed).unwrap_or(Duration::ZERO);
            if elapsed >= delay {
                Restart::Now
            } else {
                Restart::After(delay - elapsed)
            }
        }
        None => Restart::Now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(state: TaskState, at: &str) -> Task {
        let mut t = Task::default();
        t.api.status = Some(api::TaskStatus {
            state: Some(state),
            timestamp: Some(at.into()),
            ..Default::default()
        });
        t
    }

    #[test]
    fn conditions_delay_and_attempts() {
        let now = time::macros::datetime!(2026-01-01 00:00:10 UTC);
        let failed = ended(TaskState::FAILED, "2026-01-01T00:00:00Z");
        let done = ended(TaskState::COMPLETE, "2026-01-01T00:00:08Z");
        let any = api::TaskSpecRestartPolicy {
            condition: Some(api::TaskSpecRestartPolicyConditionEnum::ANY),
            ..Default::default()
        };
        assert_eq!(decide(Some(&any), &failed, &[], now), Restart::Now);
        assert_eq!(
            decide(Some(&any), &done, &[], now),
            Restart::After(Duration::from_secs(3))
        );
        let onf = api::TaskSpecRestartPolicy {
            condition: Some(api::TaskSpecRestartPolicyConditionEnum::ON_FAILURE),
            ..Default::default()
        };
        assert_eq!(decide(Some(&onf), &done, &[], now), Restart::Never);
        let none = api::TaskSpecRestartPolicy {
            condition: Some(api::TaskSpecRestartPolicyConditionEnum::NONE),
            ..Default::default()
        };
        assert_eq!(decide(Some(&none), &failed, &[], now), Restart::Never);
        let max1 = api::TaskSpecRestartPolicy {
            max_attempts: Some(1),
            ..Default::default()
        };
        assert_eq!(decide(Some(&max1), &failed, &[&failed], now), Restart::Now);
        assert_eq!(
            decide(Some(&max1), &failed, &[&failed, &failed], now),
            Restart::Never
        );
    }
}
