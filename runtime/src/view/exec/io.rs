//! The exec's stdio: the FIFOs the shim opens, the pieces of them the
//! HTTP edge copies, and the wait for the exit once the output has ended.

use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::sync::oneshot;

use super::Exec;
use crate::Containerd;

/// Once the output has ended: how long to wait for the exit status of a
/// process that is gone (or a zombie)...
const EXIT_WAIT: Duration = Duration::from_secs(30);
/// ...and of one that still runs, having closed its output itself.
const LINGER_WAIT: Duration = Duration::from_secs(1);

/// A started process's stdio, for the HTTP edge to copy. Dropping it tells
/// the exit watcher the output has been read, so the process can be
/// deleted from containerd once it has exited.
#[derive(Debug)]
pub struct Session {
    /// The process's input, when it was asked for.
    pub stdin: Option<StdinPipe>,
    /// Its stdout (with a terminal: everything).
    pub stdout: Option<pipe::Receiver>,
    /// Its stderr (none with a terminal).
    pub stderr: Option<pipe::Receiver>,
    pub(super) exec: Arc<Exec>,
    pub(super) _output_read: oneshot::Sender<()>,
}

impl Session {
    /// Whether the client asked for stdout and for stderr (the pipes are
    /// read either way, so the process never blocks on them).
    pub fn attached(&self) -> (bool, bool) {
        (self.exec.cfg.attach_stdout, self.exec.cfg.attach_stderr)
    }

    /// The exit code, once the output has ended: waits up to
    /// [`EXIT_WAIT`] for a process that is gone or ending, and only
    /// [`LINGER_WAIT`] for one that still runs with its output closed.
    /// `None` when it did not exit in that time.
    pub async fn wait_exit(&self) -> Option<i64> {
        let mut exited = self.exec.exited.subscribe();
        let pid = self.exec.pid();
        let begun = Instant::now();
        loop {
            if let Some(code) = *exited.borrow_and_update() {
                return Some(code);
            }
            let limit = if still_running(pid) {
                LINGER_WAIT
            } else {
                EXIT_WAIT
            };
            let left = limit.checked_sub(begun.elapsed())?;
            let step = left.min(Duration::from_millis(100));
            let _ = tokio::time::timeout(step, exited.changed()).await;
        }
    }
}

/// The write end of a process's stdin FIFO.
#[derive(Debug)]
pub struct StdinPipe {
    pub(super) sender: Option<pipe::Sender>,
    pub(super) ctd: Containerd,
    pub(super) container_id: String,
    pub(super) exec_id: String,
}

impl StdinPipe {
    /// Writes all of `buf` to the process's input.
    pub async fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self.sender.as_mut() {
            Some(s) => s.write_all(buf).await,
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        }
    }

    /// Ends the process's input (it reads end-of-file).
    pub async fn close(mut self) {
        self.sender = None;
        let _ = self
            .ctd
            .exec_close_stdin(&self.container_id, &self.exec_id)
            .await;
    }
}

impl Drop for StdinPipe {
    fn drop(&mut self) {
        if self.sender.take().is_none() {
            return;
        }
        // Dropped without close (the client went away): end the input all
        // the same, as dockerd does when the attach ends.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let ctd = self.ctd.clone();
            let (c, e) = (self.container_id.clone(), self.exec_id.clone());
            rt.spawn(async move {
                let _ = ctd.exec_close_stdin(&c, &e).await;
            });
        }
    }
}

/// Whether `pid` is a live process that has not exited yet.
pub(super) fn still_running(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "PID (comm) S ...": the state follows the last parenthesis.
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].trim_start().chars().next());
    !matches!(state, None | Some('Z') | Some('X'))
}

/// The FIFOs of one attached exec.
#[derive(Debug, Default)]
pub(super) struct Fifos {
    /// stdin, stdout, stderr paths ("" for none).
    pub(super) paths: [Option<PathBuf>; 3],
    pub(super) stdin: Option<pipe::Sender>,
    pub(super) stdout: Option<pipe::Receiver>,
    pub(super) stderr: Option<pipe::Receiver>,
    pub(super) keepers: Vec<pipe::Sender>,
}

fn mkfifo(path: &Path) -> std::io::Result<()> {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(std::io::Error::from)
}

impl Fifos {
    /// Makes and opens the FIFOs under `dir`: stdout always, stderr
    /// without a terminal, stdin when asked for.
    pub(super) fn open(dir: &Path, id: &str, tty: bool, stdin: bool) -> std::io::Result<Fifos> {
        std::fs::create_dir_all(dir)?;
        let mut f = Fifos::default();
        let path = |name: &str| dir.join(format!("exec-{id}-{name}"));
        let out = |f: &mut Fifos, i: usize, p: PathBuf| -> std::io::Result<pipe::Receiver> {
            mkfifo(&p)?;
            f.paths[i] = Some(p.clone());
            let rx = pipe::OpenOptions::new().open_receiver(&p)?;
            f.keepers.push(pipe::OpenOptions::new().open_sender(&p)?);
            Ok(rx)
        };
        // On an error, dropping `f` unlinks what was made.
        f.stdout = Some(out(&mut f, 1, path("stdout"))?);
        if !tty {
            f.stderr = Some(out(&mut f, 2, path("stderr"))?);
        }
        if stdin {
            let p = path("stdin");
            mkfifo(&p)?;
            f.paths[0] = Some(p.clone());
            f.stdin = Some(pipe::OpenOptions::new().read_write(true).open_sender(&p)?);
        }
        Ok(f)
    }

    pub(super) fn name(&self, i: usize) -> String {
        self.paths[i]
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }

    pub(super) fn unlink(&mut self) {
        for p in self.paths.iter_mut().filter_map(Option::take) {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Drop for Fifos {
    fn drop(&mut self) {
        self.unlink();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_pids_do_not_linger() {
        assert!(!still_running(0));
        assert!(still_running(std::process::id()));
        assert!(!still_running(u32::MAX));
    }
}
