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
    // Networks changed (`docker network connect`) but not applied yet: a
    // failed move is tried again while the task waits.
    let mut networks_pending = false;
    loop {
        if networks_pending {
            match ctl.update_networks(&task).await {
                Ok(()) => networks_pending = false,
                Err(e) => tracing::warn!(task = %id, error = %e, "changing the task's networks"),
            }
        }
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
                _ = tokio::time::sleep(RETRY_MAX), if networks_pending => {
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
                    networks_pending = true;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::fake::FakeController;
    use crate::model::api;
    use crate::model::NetworkAttachment;

    /// A running task is told about networks connected to it (and only
    /// when they change), without being stopped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn changed_networks_reach_the_running_task() {
        let fake = FakeController::runs();
        let calls = fake.calls.clone();
        let mut task = Task::default();
        task.api.id = Some("t1".into());
        task.api.desired_state = Some(api::TaskState::RUNNING);
        task.api.status = Some(api::TaskStatus {
            state: Some(api::TaskState::RUNNING),
            ..Default::default()
        });
        let (tx, rx) = watch::channel(Some(task.clone()));
        let (reports, _seen) = mpsc::channel(16);
        let cancel = CancellationToken::new();
        let running = tokio::spawn(manage(
            task.clone(),
            Box::new(fake),
            rx,
            reports,
            cancel.clone(),
        ));
        let count = |name: &str| calls.lock().unwrap().iter().filter(|c| **c == name).count();
        let until = |f: &dyn Fn() -> bool| {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !f() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{:?}",
                    calls.lock().unwrap()
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        tokio::task::yield_now().await;
        until(&|| count("wait") == 1);

        // The same task again: nothing to move.
        tx.send(Some(task.clone())).unwrap();
        let mut connected = task.clone();
        connected.networks.push(NetworkAttachment {
            network_id: "shared".into(),
            addresses: vec!["10.0.9.3/24".into()],
            aliases: vec![],
        });
        tx.send(Some(connected)).unwrap();
        until(&|| count("update_networks") == 1);
        until(&|| count("wait") >= 2);
        assert_eq!(count("shutdown"), 0);
        assert_eq!(count("update_networks"), 1);
        cancel.cancel();
        running.await.unwrap();
    }
}
