//! Acting on task containers from the Docker API: `kill`, `stop`, `rm`
//! and `wait`. The swarm agent's controller is waiting on the same
//! process, so whatever ends a container here is seen there as the task's
//! exit, and the orchestrator replaces the task as dockerd's does.

use std::time::Duration;

use super::ContainerInfo;
use super::Error;
use super::Result;
use crate::exec::NodeEnv;
use crate::Containerd;

const SIGKILL: u32 = 9;
/// How long a SIGKILLed process may take to be reaped before giving up
/// waiting (the kill itself is not undone).
const KILL_WAIT: Duration = Duration::from_secs(10);
/// How often `wait?condition=removed` looks again.
const REMOVED_POLL: Duration = Duration::from_millis(250);

/// What `POST /containers/{id}/wait` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    /// The process is not running (now or after it exits).
    NotRunning,
    /// The running process's next exit.
    NextExit,
    /// The container is removed.
    Removed,
}

impl WaitCondition {
    /// Parses the `condition` query value (empty: `not-running`).
    pub fn parse(s: &str) -> Option<WaitCondition> {
        match s {
            "" | "not-running" => Some(WaitCondition::NotRunning),
            "next-exit" => Some(WaitCondition::NextExit),
            "removed" => Some(WaitCondition::Removed),
            _ => None,
        }
    }
}

/// A signal as docker accepts it (`SIGTERM`, `TERM`, `15`); 0 and unknown
/// names are dockerd's "invalid signal".
pub fn parse_signal(s: &str) -> Result<u32> {
    match crate::exec::controller::parse_signal(s) {
        Some(n) if n > 0 && n < 65 => Ok(n),
        _ => Err(Error::InvalidSignal(s.to_string())),
    }
}

impl Containerd {
    /// Sends `signal` to the container's process; with SIGKILL, also waits
    /// (bounded) until it is gone, as `docker kill` does.
    pub async fn container_kill(&self, c: &ContainerInfo, signal: u32) -> Result<()> {
        if !c.state.status.is_running() {
            return Err(Error::NotRunning(c.id.clone()));
        }
        let actor = self.container_actor(&c.id).await;
        self.container_event("kill", &actor, &[("signal", signal.to_string())]);
        self.task_kill(&c.id, signal, false).await?;
        if signal == SIGKILL {
            let _ = tokio::time::timeout(KILL_WAIT, self.task_wait(&c.id)).await;
        }
        Ok(())
    }

    /// `docker stop`: `signal`, then SIGKILL once `timeout` has passed
    /// (`None`: wait as long as it takes). A container that is not running
    /// is [`Error::AlreadyStopped`].
    pub async fn container_stop(
        &self,
        c: &ContainerInfo,
        signal: u32,
        timeout: Option<Duration>,
    ) -> Result<()> {
        if !c.state.status.is_running() {
            return Err(Error::AlreadyStopped);
        }
        let actor = self.container_actor(&c.id).await;
        self.container_event("kill", &actor, &[("signal", signal.to_string())]);
        // A failed signal leaves the kill below to do the work, as in dockerd.
        let sent = self.task_kill(&c.id, signal, false).await.is_ok();
        let grace = if sent {
            timeout
        } else {
            Some(Duration::from_secs(2))
        };
        let exited = match grace {
            Some(g) => tokio::time::timeout(g, self.task_wait(&c.id)).await.is_ok(),
            None => self.task_wait(&c.id).await.map(|_| true).unwrap_or(false),
        };
        if !exited {
            self.container_event("kill", &actor, &[("signal", SIGKILL.to_string())]);
            self.task_kill(&c.id, SIGKILL, true).await?;
            let _ = tokio::time::timeout(KILL_WAIT, self.task_wait(&c.id)).await;
        }
        // The task's controller reports the `die` as it sees the exit.
        self.container_event("stop", &actor, &[]);
        Ok(())
    }

    /// `docker rm`: refuses a running container unless `force`, which
    /// kills it first; then deletes it with its snapshot and files, and
    /// with `volumes` (`docker rm -v`) the anonymous volumes only it used.
    /// `reference` is the name the client used, for the refusal's text.
    pub async fn container_remove(
        &self,
        env: &NodeEnv,
        c: &ContainerInfo,
        reference: &str,
        force: bool,
        volumes: bool,
    ) -> Result<()> {
        if c.state.status.is_running() && !force {
            return Err(Error::RemoveRunning(reference.to_string()));
        }
        let actor = self.container_actor(&c.id).await;
        let removed = if volumes {
            crate::exec::controller::remove_container(self, env, &c.id).await
        } else {
            crate::exec::controller::delete_container(self, env, &c.id).await
        };
        removed.map_err(|e| Error::Teardown(e.to_string()))?;
        self.container_event("destroy", &actor, &[]);
        Ok(())
    }

    /// `docker wait`: the exit code once `condition` holds. A container
    /// removed while running was killed: 137, as dockerd reports it.
    pub async fn container_wait(
        &self,
        env: &NodeEnv,
        c: &ContainerInfo,
        condition: WaitCondition,
    ) -> Result<i64> {
        let mut code = c.state.exit_code;
        let running = c.state.status.is_running();
        if running || condition == WaitCondition::NextExit {
            if !running {
                return self.wait_removed(env, &c.id, code).await;
            }
            code = match self.task_wait(&c.id).await {
                Ok(code) => code as i64,
                Err(_) => 128 + SIGKILL as i64,
            };
        }
        if condition == WaitCondition::Removed {
            return self.wait_removed(env, &c.id, code).await;
        }
        Ok(code)
    }

    async fn wait_removed(&self, env: &NodeEnv, id: &str, mut code: i64) -> Result<i64> {
        loop {
            match self.container_info(env, id).await {
                Ok(c) if c.id == id => code = c.state.exit_code,
                Ok(_) | Err(Error::NoSuchContainer(_)) => return Ok(code),
                Err(e) => return Err(e),
            }
            tokio::time::sleep(REMOVED_POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_and_conditions() {
        assert_eq!(parse_signal("SIGHUP").unwrap(), 1);
        assert_eq!(parse_signal("kill").unwrap(), 9);
        assert_eq!(
            parse_signal("0").unwrap_err().to_string(),
            "invalid signal: 0"
        );
        assert!(parse_signal("SIGNOPE").is_err());
        assert_eq!(WaitCondition::parse(""), Some(WaitCondition::NotRunning));
        assert_eq!(
            WaitCondition::parse("removed"),
            Some(WaitCondition::Removed)
        );
        assert_eq!(WaitCondition::parse("x"), None);
    }
}
