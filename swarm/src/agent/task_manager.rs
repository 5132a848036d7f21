//! One task's life on the node: repeat `exec::step` and report each status,
//! follow desired-state changes, and remove the runtime object when the task
//! is no longer assigned.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::dispatcher::StatusUpdate;
use crate::exec::step;
use crate::exec::Controller;
use crate::model::Task;

/// First and longest wait before retrying a temporarily failed step.
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Drives `task` with `ctl` until it is unassigned or `cancel` fires.
pub async fn manage(
    mut task: Task,
    mut ctl: Box<dyn Controller>,
    mut assigned: watch::Receiver<Option<Task>>,
    reports: mpsc::Sender<StatusUpdate>,
    cancel: CancellationToken,
) {
    let id = task.api.id.clone().unwrap_or_default();
    let mut backoff = RETRY_MIN;
    loop {
        // Waiting for the process (or for it to become healthy) can take
        // forever; a new desired state must be able to interrupt it.
        let waiting = matches!(
            step::decide(task.desired_state(), task.state()),
            step::Op::Wait | step::Op::Running
        );
        let next = if waiting {
            tokio::select! {
                s = step::step(&task, ctl.as_mut()) => s,
                r = assigned.changed() => {
                    if r.is_err() { break; }
                    step::Outcome::Retry(String::new())
                }
                _ = cancel.cancelled() => return,
            }
        } else {
            tokio::select! {
                s = step::step(&task, ctl.as_mut()) => s,
                _ = cancel.cancelled() => return,
            }
        };
        match next {
            step::Outcome::Status(status) => {
                backoff = RETRY_MIN;
                task.api.status = Some(status.clone());
                let _ = reports
                    .send(StatusUpdate {
                        task_id: id.clone(),
                        status,
                    })
                    .await;
            }
            step::Outcome::Retry(why) => {
                if !why.is_empty() {
                    tracing::warn!(task = %id, error = %why, "task step failed; retrying");
                    tokio::select! {
                        r = assigned.changed() => if r.is_err() { break; },
                        _ = tokio::time::sleep(backoff) => {}
                        _ = cancel.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(RETRY_MAX);
                }
            }
            step::Outcome::Done => {
                tokio::select! {
                    r = assigned.changed() => if r.is_err() { break; },
                    _ = cancel.cancelled() => return,
                }
            }
        }
        let latest = assigned.borrow_and_update().clone();
        match latest {
            Some(t) => {
                task.api.desired_state = t.api.desired_state;
                if t.networks != task.networks {
                    task.networks = t.networks;
                    if let Err(e) = ctl.update_networks(&task).await {
                        tracing::warn!(task = %id, error = %e, "changing the task's networks");
                    }
                }
            }
            None => break,
        }
    }
    // Unassigned: stop if still running, then remove.
    if step::decide(task.desired_state(), task.state()) != step::Op::Done {
        let _ = ctl.shutdown().await;
    }
    let _ = ctl.remove().await;
}
