//! One transition of a task's observed state (swarmkit `exec.Do`).
//!
//! `decide` is pure: from the task's desired and observed state it names the
//! next operation; `step` performs that operation on a controller and returns
//! the new status. The agent calls `step` until the state is terminal or the
//! task is waiting on its process.

use super::Controller;
use super::ExecError;
use crate::model::api::TaskState;
use crate::model::api::TaskStatus;
use crate::model::Task;

/// What to do next for a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Acknowledge the assignment.
    Accept,
    /// Prepare (pull, create).
    Prepare,
    /// Mark prepared.
    Ready,
    /// Start the process.
    Start,
    /// Mark started.
    Running,
    /// Wait for the process to exit.
    Wait,
    /// Stop the process: the task is no longer wanted.
    Shutdown,
    /// Nothing more: the state is terminal.
    Done,
}

fn is_terminal(s: TaskState) -> bool {
    s > TaskState::RUNNING
}

/// The next operation for a task, from desired and observed state only.
pub fn decide(desired: TaskState, observed: TaskState) -> Op {
    if is_terminal(observed) {
        return Op::Done;
    }
    if desired > TaskState::RUNNING && desired != TaskState::COMPLETE {
        return Op::Shutdown;
    }
    match observed {
        TaskState::NEW | TaskState::ALLOCATED | TaskState::PENDING | TaskState::ASSIGNED => {
            Op::Accept
        }
        TaskState::ACCEPTED => Op::Prepare,
        TaskState::PREPARING => Op::Ready,
        // A stop-first update creates the new task with desired `ready`: it
        // is prepared but starts only once the old one has stopped.
        TaskState::READY if desired < TaskState::RUNNING => Op::Done,
        TaskState::READY => Op::Start,
        TaskState::STARTING => Op::Running,
        TaskState::RUNNING => Op::Wait,
        _ => Op::Done,
    }
}

fn status(state: TaskState, message: &str, err: Option<String>) -> TaskStatus {
    TaskStatus {
        timestamp: Some(crate::model::now()),
        state: Some(state),
        message: Some(message.to_string()),
        err,
        ..Default::default()
    }
}

/// The result of one [`step`].
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The task moved to this status.
    Status(TaskStatus),
    /// A temporary failure: try the same step again later (swarmkit retries
    /// these with backoff instead of failing the task).
    Retry(String),
    /// Nothing more to do (terminal state).
    Done,
}

/// Performs one transition on `ctl`.
pub async fn step(task: &Task, ctl: &mut dyn Controller) -> Outcome {
    let observed = task.state();
    let fail = |e: ExecError, before_start: bool| {
        let state = if before_start && !e.is_temporary() {
            TaskState::REJECTED
        } else {
            TaskState::FAILED
        };
        status(state, "failed", Some(e.to_string()))
    };
    let temporary = |e: &Result<(), ExecError>| match e {
        Err(e) if e.is_temporary() => Some(Outcome::Retry(e.to_string())),
        _ => None,
    };
    let mut s = match decide(task.desired_state(), observed) {
        Op::Done => return Outcome::Done,
        Op::Accept => status(TaskState::ACCEPTED, "accepted", None),
        Op::Prepare => {
            let r = ctl.prepare().await;
            if let Some(retry) = temporary(&r) {
                return retry;
            }
            match r {
                Ok(()) => status(TaskState::PREPARING, "preparing", None),
                Err(e) => fail(e, true),
            }
        }
        Op::Ready => status(TaskState::READY, "prepared", None),
        Op::Start => {
            let r = ctl.start().await;
            if let Some(retry) = temporary(&r) {
                return retry;
            }
            match r {
                Ok(()) => status(TaskState::STARTING, "starting", None),
                Err(e) => fail(e, false),
            }
        }
        Op::Running => {
            let r = ctl.healthy().await;
            if let Some(retry) = temporary(&r) {
                return retry;
            }
            match r {
                Ok(()) => status(TaskState::RUNNING, "started", None),
                Err(e) => fail(e, false),
            }
        }
        Op::Wait => match ctl.wait().await {
            Ok(x) if x.code == 0 => status(TaskState::COMPLETE, "finished", None),
            Ok(x) => status(
                TaskState::FAILED,
                "started",
                Some(format!("task: non-zero exit ({})", x.code)),
            ),
            Err(e) if e.is_temporary() => return Outcome::Retry(e.to_string()),
            Err(e) => fail(e, false),
        },
        Op::Shutdown => {
            let r = ctl.shutdown().await;
            if let Some(retry) = temporary(&r) {
                return retry;
            }
            status(TaskState::SHUTDOWN, "shutdown", None)
        }
    };
    s.container_status = ctl.container_status();
    Outcome::Status(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::fake::FakeController;

    #[test]
    fn decisions_follow_swarmkit_order() {
        use TaskState::*;
        assert_eq!(decide(RUNNING, ASSIGNED), Op::Accept);
        assert_eq!(decide(RUNNING, ACCEPTED), Op::Prepare);
        assert_eq!(decide(RUNNING, PREPARING), Op::Ready);
        assert_eq!(decide(RUNNING, READY), Op::Start);
        assert_eq!(decide(READY, READY), Op::Done, "held until desired running");
        assert_eq!(decide(READY, ACCEPTED), Op::Prepare);
        assert_eq!(decide(RUNNING, STARTING), Op::Running);
        assert_eq!(decide(RUNNING, RUNNING), Op::Wait);
        assert_eq!(decide(SHUTDOWN, RUNNING), Op::Shutdown);
        assert_eq!(decide(COMPLETE, RUNNING), Op::Wait);
        assert_eq!(decide(RUNNING, FAILED), Op::Done);
    }

    async fn run_to_end(mut task: Task, ctl: &mut FakeController) -> Vec<TaskState> {
        let mut seen = Vec::new();
        for _ in 0..20 {
            match step(&task, ctl).await {
                Outcome::Status(s) => {
                    seen.push(s.state.unwrap());
                    task.api.status = Some(s);
                }
                _ => break,
            }
        }
        seen
    }

    fn assigned() -> Task {
        let mut t = Task::default();
        t.api.desired_state = Some(TaskState::RUNNING);
        t.api.status = Some(status(TaskState::ASSIGNED, "assigned", None));
        t
    }

    #[tokio::test]
    async fn a_task_that_exits_zero_completes() {
        let mut c = FakeController::exits(0);
        use TaskState::*;
        assert_eq!(
            run_to_end(assigned(), &mut c).await,
            vec![ACCEPTED, PREPARING, READY, STARTING, RUNNING, COMPLETE]
        );
    }

    #[tokio::test]
    async fn non_zero_exit_fails_with_dockerd_text() {
        let mut c = FakeController::exits(3);
        let mut t = assigned();
        t.api.status = Some(status(TaskState::RUNNING, "started", None));
        let Outcome::Status(s) = step(&t, &mut c).await else {
            panic!("no status")
        };
        assert_eq!(s.state, Some(TaskState::FAILED));
        assert_eq!(s.err.as_deref(), Some("task: non-zero exit (3)"));
    }

    #[tokio::test]
    async fn fatal_prepare_rejects() {
        let mut c = FakeController::failing_prepare("No such image: nope:latest");
        let states = run_to_end(assigned(), &mut c).await;
        assert_eq!(states, vec![TaskState::ACCEPTED, TaskState::REJECTED]);
    }
}
