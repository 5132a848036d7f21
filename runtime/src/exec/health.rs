//! Health checks of a task's container, as dockerd runs them: a probe
//! process exec'd in the container every interval, `starting` until the
//! first success, `unhealthy` after `retries` failures in a row (failures
//! during the start period do not count). The state is written to
//! `health.json` in the container's directory for the container API.

use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde::Serialize;
use swarm::model::api;
use swarm::model::Task;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::ids;
use crate::containers::NewExec;
use crate::Containerd;

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: u32 = 3;
/// Probe output kept per result, as dockerd keeps it.
const MAX_OUTPUT: usize = 4096;
/// Results kept in the log.
const MAX_LOG: usize = 5;

/// A resolved health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The probe's arguments.
    pub args: Vec<String>,
    /// Time between probes.
    pub interval: Duration,
    /// Longest a probe may run.
    pub timeout: Duration,
    /// Consecutive failures that make the container unhealthy.
    pub retries: u32,
    /// Time after start when failures do not count.
    pub start_period: Duration,
}

fn dur(ns: Option<i64>, default: Duration) -> Duration {
    match ns {
        Some(n) if n > 0 => Duration::from_nanos(n as u64),
        _ => default,
    }
}

fn from_parts(
    test: Vec<String>,
    interval: Option<i64>,
    timeout: Option<i64>,
    retries: Option<i64>,
    start_period: Option<i64>,
) -> Option<Check> {
    let args = match test.first().map(String::as_str) {
        Some("CMD") => test[1..].to_vec(),
        Some("CMD-SHELL") => vec!["/bin/sh".into(), "-c".into(), test[1..].join(" ")],
        _ => return None,
    };
    if args.is_empty() {
        return None;
    }
    Some(Check {
        args,
        interval: dur(interval, DEFAULT_INTERVAL),
        timeout: dur(timeout, DEFAULT_TIMEOUT),
        retries: retries
            .filter(|r| *r > 0)
            .map(|r| r as u32)
            .unwrap_or(DEFAULT_RETRIES),
        start_period: dur(start_period, Duration::ZERO),
    })
}

/// The task's health check: the spec's (fields it leaves unset come from
/// the image's), or the image's; none for `NONE`/`--no-healthcheck`.
pub fn resolve(task: &Task, image_config: &serde_json::Value) -> Option<Check> {
    let spec: Option<api::HealthConfig> = task
        .api
        .spec
        .as_ref()
        .and_then(|s| s.container_spec.as_ref())
        .and_then(|c| c.health_check.clone());
    let image: Option<api::HealthConfig> = image_config
        .pointer("/config/Healthcheck")
        .and_then(|h| serde_json::from_value(h.clone()).ok());
    let s = spec.unwrap_or_default();
    let i = image.unwrap_or_default();
    let test = s
        .test
        .clone()
        .filter(|t| !t.is_empty())
        .or(i.test.clone())?;
    from_parts(
        test,
        s.interval.or(i.interval),
        s.timeout.or(i.timeout),
        s.retries.or(i.retries),
        s.start_period.or(i.start_period),
    )
}

/// Health as `docker inspect` shows it (`State.Health`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    /// Failed probes in a row.
    pub failing_streak: u32,
    /// The last few probe results.
    pub log: Vec<ProbeResult>,
}

/// One probe result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProbeResult {
    /// When the probe started.
    pub start: String,
    /// When it ended.
    pub end: String,
    /// Its exit code (-1 when it could not run or timed out).
    pub exit_code: i64,
    /// What it printed.
    pub output: String,
}

/// Where a container's health is recorded.
pub fn health_path(container_dir: &Path) -> PathBuf {
    container_dir.join("health.json")
}

/// Runs the probes of one container until dropped.
#[derive(Debug)]
pub struct Monitor {
    status: watch::Receiver<String>,
    handle: JoinHandle<()>,
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

impl Monitor {
    /// Starts probing container `id` (whose directory is `dir`).
    pub fn start(ctd: Containerd, id: String, dir: PathBuf, check: Check) -> Monitor {
        let (tx, status) = watch::channel("starting".to_string());
        let handle = tokio::spawn(run(ctd, id, dir, check, tx));
        Monitor { status, handle }
    }

    /// Waits for the first verdict: `true` for healthy, `false` for unhealthy.
    pub async fn settled(&mut self) -> bool {
        loop {
            match self.status.borrow_and_update().as_str() {
                "healthy" => return true,
                "unhealthy" => return false,
                _ => {}
            }
            if self.status.changed().await.is_err() {
                return false;
            }
        }
    }

    /// Resolves when the container becomes unhealthy.
    pub async fn unhealthy(&mut self) {
        loop {
            if self.status.borrow_and_update().as_str() == "unhealthy" {
                return;
            }
            if self.status.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

async fn run(ctd: Containerd, id: String, dir: PathBuf, check: Check, tx: watch::Sender<String>) {
    let started = tokio::time::Instant::now();
    let mut health = Health {
        status: "starting".into(),
        failing_streak: 0,
        log: Vec::new(),
    };
    let path = health_path(&dir);
    let _ = std::fs::write(&path, serde_json::to_vec(&health).unwrap_or_default());
    loop {
        tokio::time::sleep(check.interval).await;
        let result = probe(&ctd, &id, &dir, &check).await;
        let ok = result.exit_code == 0;
        health.log.push(result);
        if health.log.len() > MAX_LOG {
            health.log.remove(0);
        }
        if ok {
            health.failing_streak = 0;
            health.status = "healthy".into();
        } else if started.elapsed() >= check.start_period || health.status == "healthy" {
            health.failing_streak += 1;
            if health.failing_streak >= check.retries {
                health.status = "unhealthy".into();
            }
        }
        let _ = std::fs::write(&path, serde_json::to_vec(&health).unwrap_or_default());
        let changed = tx.send_if_modified(|s| {
            let changed = *s != health.status;
            s.clone_from(&health.status);
            changed
        });
        if changed {
            let actor = ctd.container_actor(&id).await;
            let action = format!("health_status: {}", health.status);
            ctd.container_event(&action, &actor, &[]);
        }
    }
}

/// Runs the probe once inside the container.
async fn probe(ctd: &Containerd, id: &str, dir: &Path, check: &Check) -> ProbeResult {
    let start = swarm::model::now();
    let fail = |output: String| ProbeResult {
        start: start.clone(),
        end: swarm::model::now(),
        exit_code: -1,
        output,
    };
    let process = match probe_process(ctd, id, &check.args).await {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let exec_id = format!("health-{}", ids::random_hex(8));
    let fifo = dir.join(format!("{exec_id}.out"));
    if let Err(e) = nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)) {
        return fail(format!("create probe output pipe: {e}"));
    }
    let reader = tokio::net::unix::pipe::OpenOptions::new()
        .read_write(true)
        .open_receiver(&fifo);
    let mut reader = match reader {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&fifo);
            return fail(format!("open probe output pipe: {e}"));
        }
    };
    let fifo_s = fifo.display().to_string();
    let exec = NewExec {
        exec_id: exec_id.clone(),
        process,
        stdin: String::new(),
        stdout: fifo_s.clone(),
        stderr: fifo_s,
        terminal: false,
    };
    let result = match ctd.exec_start(id, exec).await {
        Err(e) => fail(e.to_string()),
        Ok(_) => {
            let waited = tokio::time::timeout(check.timeout, ctd.exec_wait(id, &exec_id)).await;
            let code = match waited {
                Ok(Ok(code)) => code as i64,
                Ok(Err(_)) => -1,
                Err(_) => {
                    let _ = ctd.exec_kill(id, &exec_id, 9).await;
                    let _ = ctd.exec_wait(id, &exec_id).await;
                    -1
                }
            };
            let mut output = Vec::new();
            let mut buf = [0u8; 4096];
            while output.len() < MAX_OUTPUT {
                match tokio::time::timeout(Duration::from_millis(50), reader.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => output.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
            output.truncate(MAX_OUTPUT);
            let timed_out = code == -1;
            ProbeResult {
                start: start.clone(),
                end: swarm::model::now(),
                exit_code: code,
                output: if timed_out && output.is_empty() {
                    format!(
                        "Health check exceeded timeout ({}s)",
                        check.timeout.as_secs()
                    )
                } else {
                    String::from_utf8_lossy(&output).into_owned()
                },
            }
        }
    };
    let _ = ctd.exec_delete(id, &exec_id).await;
    drop(reader);
    let _ = std::fs::remove_file(&fifo);
    result
}

/// The container's own process settings with the probe's arguments.
async fn probe_process(ctd: &Containerd, id: &str, args: &[String]) -> Result<Vec<u8>, String> {
    let spec = ctd
        .container_spec(id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("container has no spec")?;
    let mut spec: serde_json::Value = serde_json::from_slice(&spec).map_err(|e| e.to_string())?;
    let process = spec
        .get_mut("process")
        .ok_or("container spec has no process")?;
    process["args"] = serde_json::json!(args);
    process["terminal"] = serde_json::json!(false);
    serde_json::to_vec(process).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(h: Option<api::HealthConfig>) -> Task {
        let mut t = Task::default();
        t.api.spec = Some(api::TaskSpec {
            container_spec: Some(api::TaskSpecContainerSpec {
                health_check: h,
                ..Default::default()
            }),
            ..Default::default()
        });
        t
    }

    #[test]
    fn spec_overrides_image_and_none_disables() {
        let image = json!({"config": {"Healthcheck": {
            "Test": ["CMD-SHELL", "wget -q localhost"], "Interval": 5_000_000_000i64, "Retries": 2
        }}});
        let c = resolve(&task(None), &image).unwrap();
        assert_eq!(c.args, vec!["/bin/sh", "-c", "wget -q localhost"]);
        assert_eq!(c.interval, Duration::from_secs(5));
        assert_eq!(c.retries, 2);
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);

        let spec = api::HealthConfig {
            test: Some(vec!["CMD".into(), "true".into()]),
            interval: Some(1_000_000_000),
            ..Default::default()
        };
        let c = resolve(&task(Some(spec)), &image).unwrap();
        assert_eq!(c.args, vec!["true"]);
        assert_eq!(c.interval, Duration::from_secs(1));
        assert_eq!(c.retries, 2, "unset fields come from the image");

        let none = api::HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        };
        assert_eq!(resolve(&task(Some(none)), &image), None);
        assert_eq!(resolve(&task(None), &json!({})), None);
    }
}
