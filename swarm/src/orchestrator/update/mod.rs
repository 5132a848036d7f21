//! Rolling updates and rollbacks: how fast out-of-date slots are replaced,
//! how replacements are watched for failure, and when an update is over.
//!
//! swarmkit runs one updater goroutine per update that blocks on channels
//! and timers. Here the same rules are a pure decision taken on every
//! reconcile pass of the service, over the store's view of its tasks, the
//! pass's clock and a small [`Run`] that remembers what the store cannot
//! say: which tasks this update created, when each was first seen running,
//! and which failures were already counted. The orchestrator driver owns the
//! runs (one per service) and drops them with the update, so a new leader
//! starts a fresh run, as a new swarmkit leader starts a fresh updater.
//!
//! The rules, as swarmkit's updater applies them:
//! - **Parallelism** workers replace slots; a worker is busy from creating a
//!   replacement until that task is at or past running, then for **Delay**.
//!   Parallelism 0 replaces every slot at once.
//! - **Order** stop-first shuts the old task down and lets the new one start
//!   only once the old one has stopped (its node is gone, or a minute went
//!   by); start-first starts the new one and shuts the old one down once the
//!   new one runs.
//! - A task this update created that ends (any state past running) before
//!   it has run for **Monitor** is a failure. When failures divided by the
//!   slots the update had to replace exceed **MaxFailureRatio**, the
//!   **FailureAction** applies: `pause` stops the update, `rollback` puts
//!   the previous spec back (a rollback that fails pauses instead),
//!   `continue` carries on.
//! - The update completes once no slot is out of date, every replacement
//!   has settled and one more monitoring period (Delay + 1s when Delay is
//!   the longer) has passed without a failure.
//! - A paused update does nothing until the service is updated again.
//!
//! While the service rolls back (`rollback_started`) the rollback config
//! applies instead of the update config.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::time::Duration;

use super::is_job;
use super::is_wanted;
use super::Action;
use crate::model::api;
use crate::model::api::ServiceUpdateStatusStateEnum as U;
use crate::model::api::TaskState;
use crate::model::Service;
use crate::model::Task;

/// swarmkit's default monitoring period.
const DEFAULT_MONITOR: Duration = Duration::from_secs(5);

/// What to do when too many replacements fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureAction {
    /// Stop the update (`paused`, or `rollback_paused` while rolling back).
    Pause,
    /// Ignore failures.
    Continue,
    /// Roll back to the previous spec (pauses when already rolling back).
    Rollback,
}

/// Whether a replacement starts before or after its predecessor stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Shut the old task down, then start the new one.
    StopFirst,
    /// Start the new task, then shut the old one down once it runs.
    StartFirst,
}

/// The update (or rollback) config in force, with swarmkit's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// Slots replaced at a time; 0 means all at once.
    pub parallelism: usize,
    /// Wait after each replacement settles before the worker takes another.
    pub delay: Duration,
    /// How long a new task must run before its ending is no longer a failure.
    pub monitor: Duration,
    /// What too many failures do.
    pub failure_action: FailureAction,
    /// Failures per slot to update that are tolerated.
    pub max_failure_ratio: f32,
    /// Replacement order.
    pub order: Order,
}

impl Default for Config {
    /// swarmkit's defaults for both the update and the rollback config.
    fn default() -> Config {
        Config {
            parallelism: 1,
            delay: Duration::ZERO,
            monitor: DEFAULT_MONITOR,
            failure_action: FailureAction::Pause,
            max_failure_ratio: 0.0,
            order: Order::StopFirst,
        }
    }
}

fn nanos(n: Option<i64>) -> Duration {
    Duration::from_nanos(n.unwrap_or(0).max(0) as u64)
}

/// dockerd sends no monitor for 0, and swarmkit then uses its default.
fn monitor(n: Option<i64>) -> Duration {
    match nanos(n) {
        Duration::ZERO => DEFAULT_MONITOR,
        d => d,
    }
}

impl Config {
    /// The config governing `s`'s update now: the rollback config while it
    /// rolls back, else the update config. A config that is absent takes
    /// swarmkit's defaults; fields absent from a given config are Go's zero
    /// values as dockerd reads them (parallelism 0 is unlimited), except the
    /// monitor, which dockerd treats as unset when zero.
    pub fn of(s: &Service) -> Config {
        let spec = s.spec();
        if rolling_back(s) {
            let Some(c) = spec.rollback_config.as_ref() else {
                return Config::default();
            };
            use api::ServiceSpecRollbackConfigFailureActionEnum as F;
            use api::ServiceSpecRollbackConfigOrderEnum as O;
            return Config {
                parallelism: c.parallelism.unwrap_or(0).max(0) as usize,
                delay: nanos(c.delay),
                monitor: monitor(c.monitor),
                failure_action: match c.failure_action {
                    Some(F::CONTINUE) => FailureAction::Continue,
                    _ => FailureAction::Pause,
                },
                max_failure_ratio: c.max_failure_ratio.unwrap_or(0.0) as f32,
                order: match c.order {
                    Some(O::START_FIRST) => Order::StartFirst,
                    _ => Order::StopFirst,
                },
            };
        }
        let Some(c) = spec.update_config.as_ref() else {
            return Config::default();
        };
        use api::ServiceSpecUpdateConfigFailureActionEnum as F;
        use api::ServiceSpecUpdateConfigOrderEnum as O;
        Config {
            parallelism: c.parallelism.unwrap_or(0).max(0) as usize,
            delay: nanos(c.delay),
            monitor: monitor(c.monitor),
            failure_action: match c.failure_action {
                Some(F::CONTINUE) => FailureAction::Continue,
                Some(F::ROLLBACK) => FailureAction::Rollback,
                _ => FailureAction::Pause,
            },
            max_failure_ratio: c.max_failure_ratio.unwrap_or(0.0) as f32,
            order: match c.order {
                Some(O::START_FIRST) => Order::StartFirst,
                _ => Order::StopFirst,
            },
        }
    }

    /// Jobs are not rolled out: every out-of-date task goes at once and
    /// nothing is monitored.
    fn job() -> Config {
        Config {
            parallelism: 0,
            monitor: Duration::ZERO,
            failure_action: FailureAction::Continue,
            ..Config::default()
        }
    }

    /// The final monitoring period: swarmkit watches for longer than the
    /// delay so a worker's last delay cannot outlast it.
    fn final_monitoring(&self) -> Duration {
        if self.delay >= self.monitor && self.delay > Duration::ZERO {
            self.delay + Duration::from_secs(1)
        } else {
            self.monitor
        }
    }
}

fn state(s: &Service) -> Option<U> {
    s.api.update_status.as_ref().and_then(|u| u.state)
}

fn rolling_back(s: &Service) -> bool {
    state(s) == Some(U::ROLLBACK_STARTED)
}

/// What the updater remembers of one service's update between passes.
///
/// Owned by the orchestrator driver, one per service; reset whenever the
/// service's spec changes or its update is not in progress.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Run {
    /// The service's spec version this run rolls out.
    spec_version: Option<u64>,
    /// Slots out of date when the run began: the failure ratio's divisor.
    dirty_at_start: usize,
    /// Tasks this run created, with when each was first seen at or past
    /// running.
    created: BTreeMap<String, Option<time::OffsetDateTime>>,
    /// Created tasks already counted as failures.
    failed: BTreeSet<String>,
    /// Set once the failure action stopped this run.
    stopped: bool,
}

impl Run {
    /// Records a replacement task created by this run (counted against
    /// parallelism and watched for failure).
    pub fn track(&mut self, task_id: &str) {
        self.created.insert(task_id.to_string(), None);
    }

    /// Follows a tracked task to a new ID (tests give tasks readable IDs).
    #[cfg(test)]
    pub(crate) fn rename(&mut self, from: &str, to: &str) {
        if let Some(v) = self.created.remove(from) {
            self.created.insert(to.to_string(), v);
        }
    }

    /// Whether the run holds no memory worth keeping.
    pub fn is_idle(&self) -> bool {
        self.spec_version.is_none()
    }
}

/// How a service's slots (or a global service's nodes) stand this pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Slots {
    /// Slots whose wanted tasks are all of an older spec.
    pub dirty: usize,
    /// Slots in the middle of a replacement: a new task waits for its
    /// predecessor to stop (stop-first) or runs beside it (start-first).
    pub pending: usize,
}

/// The updater's decision for one pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Whether out-of-date slots are the updater's: while an update is
    /// paused or stopped they are not, and ended ones follow the restart
    /// policy instead.
    pub active: bool,
    /// How many out-of-date slots to replace in this pass.
    pub budget: usize,
    /// How replacements are made.
    pub order: Order,
    /// Status changes: start, pause, or an automatic rollback.
    pub actions: Vec<Action>,
    /// Look again after this long (a worker's delay ends).
    pub wake: Option<Duration>,
}

impl Decision {
    fn idle(order: Order) -> Decision {
        Decision {
            active: false,
            budget: 0,
            order,
            actions: Vec::new(),
            wake: None,
        }
    }
}

fn status(s: &Service, state: U, msg: String, completed_at: Option<String>) -> Action {
    let started_at = s
        .api
        .update_status
        .as_ref()
        .and_then(|u| u.started_at.clone());
    Action::UpdateStatus(
        s.api.id.clone().unwrap_or_default(),
        api::ServiceUpdateStatus {
            state: Some(state),
            started_at,
            completed_at,
            message: Some(msg),
        },
    )
}

fn since(now: time::OffsetDateTime, at: time::OffsetDateTime) -> Duration {
    Duration::try_from(now - at).unwrap_or(Duration::ZERO)
}

/// Decides, before any replacement of this pass, whether and how many
/// out-of-date slots of `s` may be replaced, and applies the failure action
/// when this update's replacements failed too often. `tasks` are all of the
/// service's tasks; `slots` counts its slots as they stand.
pub fn decide(
    s: &Service,
    tasks: &[&Task],
    slots: Slots,
    run: &mut Run,
    now: time::OffsetDateTime,
    now_str: &str,
) -> Decision {
    let cfg = if is_job(s) {
        Config::job()
    } else {
        Config::of(s)
    };
    let mut d = Decision::idle(cfg.order);
    let st = state(s);
    if matches!(st, Some(U::PAUSED) | Some(U::ROLLBACK_PAUSED)) {
        *run = Run::default();
        return d;
    }
    let in_progress = matches!(st, Some(U::UPDATING) | Some(U::ROLLBACK_STARTED));
    if !in_progress && slots.dirty == 0 && slots.pending == 0 {
        *run = Run::default();
        return d;
    }
    if run.spec_version != Some(s.spec_version) {
        *run = Run {
            spec_version: Some(s.spec_version),
            dirty_at_start: slots.dirty + slots.pending,
            ..Run::default()
        };
    }
    if run.stopped {
        return d;
    }
    // Jobs start a new iteration instead; they have no update status.
    if st.is_none() && slots.dirty > 0 && !is_job(s) {
        d.actions.push(Action::UpdateStatus(
            s.api.id.clone().unwrap_or_default(),
            api::ServiceUpdateStatus {
                state: Some(U::UPDATING),
                started_at: Some(now_str.to_string()),
                completed_at: None,
                message: Some("update in progress".into()),
            },
        ));
    }
    if let Some(failed) = observe(&cfg, tasks, run, now) {
        run.stopped = true;
        d.actions.push(failure_action(s, &cfg, &failed));
        return d;
    }
    d.active = true;
    let (budget, wake) = budget(&cfg, tasks, run, now);
    d.budget = budget.min(slots.dirty);
    if d.budget < slots.dirty {
        d.wake = wake;
    }
    d
}

/// Notes when this run's tasks reach running and counts the failures among
/// them; returns the task whose failure crossed the ratio, if one did.
fn observe(
    cfg: &Config,
    tasks: &[&Task],
    run: &mut Run,
    now: time::OffsetDateTime,
) -> Option<String> {
    let mut tripped = None;
    for t in tasks {
        let id = t.api.id.as_deref().unwrap_or("");
        let Some(seen) = run.created.get_mut(id) else {
            continue;
        };
        if t.state() < TaskState::RUNNING {
            continue;
        }
        let running_since = *seen.get_or_insert(now);
        if t.state() == TaskState::RUNNING
            || cfg.failure_action == FailureAction::Continue
            || run.failed.contains(id)
            || since(now, running_since) > cfg.monitor
        {
            continue;
        }
        run.failed.insert(id.to_string());
        let of = run.dirty_at_start.max(run.created.len()).max(1);
        if tripped.is_none() && run.failed.len() as f32 / of as f32 > cfg.max_failure_ratio {
            tripped = Some(id.to_string());
        }
    }
    tripped
}

fn failure_action(s: &Service, cfg: &Config, task: &str) -> Action {
    let paused = if rolling_back(s) {
        U::ROLLBACK_PAUSED
    } else {
        U::PAUSED
    };
    match cfg.failure_action {
        FailureAction::Rollback if rolling_back(s) => status(
            s,
            U::ROLLBACK_PAUSED,
            format!("rollback paused due to failure or early termination of task {task}"),
            None,
        ),
        FailureAction::Rollback => Action::Rollback(
            s.api.id.clone().unwrap_or_default(),
            format!("update rolled back due to failure or early termination of task {task}"),
        ),
        _ => status(
            s,
            paused,
            format!("update paused due to failure or early termination of task {task}"),
            None,
        ),
    }
}

/// Free workers now, and when the next busy one frees up.
fn budget(
    cfg: &Config,
    tasks: &[&Task],
    run: &Run,
    now: time::OffsetDateTime,
) -> (usize, Option<Duration>) {
    if cfg.parallelism == 0 {
        return (usize::MAX, None);
    }
    let mut busy = 0;
    let mut wake: Option<Duration> = None;
    for t in tasks {
        let Some(seen) = run.created.get(t.api.id.as_deref().unwrap_or("")) else {
            continue;
        };
        match seen {
            None if is_wanted(t) => busy += 1,
            None => {}
            Some(at) => {
                let free_at = *at + cfg.delay;
                if free_at > now {
                    busy += 1;
                    let left = since(free_at, now);
                    wake = Some(wake.map_or(left, |w| w.min(left)));
                }
            }
        }
    }
    (cfg.parallelism.saturating_sub(busy), wake)
}

/// After this pass's replacements: the status that ends the update once
/// nothing is out of date or in the middle of a replacement, every task the
/// run created has settled, and the final monitoring period has passed;
/// otherwise when to look again.
pub fn complete(
    s: &Service,
    tasks: &[&Task],
    slots: Slots,
    run: &Run,
    now: time::OffsetDateTime,
    now_str: &str,
) -> (Option<Action>, Option<Duration>) {
    let (state, msg) = match state(s) {
        Some(U::UPDATING) => (U::COMPLETED, "update completed"),
        Some(U::ROLLBACK_STARTED) => (U::ROLLBACK_COMPLETED, "rollback completed"),
        _ => return (None, None),
    };
    if run.stopped || slots.dirty > 0 || slots.pending > 0 {
        return (None, None);
    }
    let cfg = if is_job(s) {
        Config::job()
    } else {
        Config::of(s)
    };
    let unsettled = tasks
        .iter()
        .any(|t| is_wanted(t) && run.created.get(t.api.id.as_deref().unwrap_or("")) == Some(&None));
    if unsettled {
        return (None, None);
    }
    let last = run.created.values().flatten().max();
    let done = status(s, state, msg.into(), Some(now_str.to_string()));
    let Some(last) = last else {
        // Nothing was replaced by this run: swarmkit ends such an update at once.
        return (Some(done), None);
    };
    let end = *last + cfg.delay + cfg.final_monitoring();
    if now >= end {
        (Some(done), None)
    } else {
        (None, Some(since(end, now)))
    }
}

#[cfg(test)]
mod tests;
