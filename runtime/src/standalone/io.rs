//! A standalone container's stdio: the FIFOs of its init process, and
//! what `docker attach` (and `docker run` without `-d`) gets of them.
//!
//! The output FIFOs are read by the log copier, which hands every chunk to
//! the container's tap as well as to its json-file log; an attached client
//! subscribes to the tap, so it sees output from the moment it attached,
//! and its stream ends when the process exits and the copier has drained.
//! The stdin FIFO is opened read-write by the daemon (its open never
//! blocks for want of a reader), and an attached client's input is written
//! into it.

use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::sync::broadcast;
use tokio::sync::watch;

use super::Live;
use crate::logs::Chunk;
use crate::Containerd;

/// The exits of a container seen so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exit {
    /// How many runs have ended.
    pub count: u64,
    /// The last run's exit code.
    pub code: i64,
}

/// The stdin FIFO's path in `dir`.
pub(super) fn stdin_path(dir: &Path) -> PathBuf {
    dir.join("init-stdin")
}

/// Makes (if needed) and opens the stdin FIFO for writing.
pub(super) fn open_stdin(dir: &Path) -> std::io::Result<pipe::Sender> {
    let path = stdin_path(dir);
    match nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(e.into()),
    }
    pipe::OpenOptions::new().read_write(true).open_sender(&path)
}

/// A client attached to a container: its output as it comes, and its
/// input when it has one.
pub struct Attached {
    output: broadcast::Receiver<Chunk>,
    exits: watch::Receiver<Exit>,
    seen: u64,
    ended: bool,
    live: Arc<Live>,
    ctd: Containerd,
    id: String,
    dir: PathBuf,
    /// Whether the container has a terminal (one raw stream, no stderr).
    pub tty: bool,
    /// Whether the container reads input (`OpenStdin`).
    pub open_stdin: bool,
    /// Whether the container's input ends when this client's does
    /// (`StdinOnce`).
    pub stdin_once: bool,
}

impl std::fmt::Debug for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attached").field("id", &self.id).finish()
    }
}

impl Attached {
    pub(super) fn new(live: Arc<Live>, ctd: Containerd, id: &str, dir: PathBuf) -> Attached {
        let exits = live.exits.subscribe();
        let seen = exits.borrow().count;
        Attached {
            output: live.tap.subscribe(),
            exits,
            seen,
            ended: false,
            live,
            ctd,
            id: id.to_string(),
            dir,
            tty: false,
            open_stdin: false,
            stdin_once: false,
        }
    }

    /// The next piece of output; `None` once the run that was current (or
    /// next) when the client attached has ended and its output is drained.
    pub async fn next(&mut self) -> Option<Chunk> {
        loop {
            if self.ended {
                // The copier has drained before the exit is told: what is
                // left is already here.
                return match self.output.try_recv() {
                    Ok(c) => Some(c),
                    Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                    Err(_) => None,
                };
            }
            tokio::select! {
                biased;
                r = self.output.recv() => match r {
                    Ok(c) => return Some(c),
                    // A slow client loses what it could not take, as a
                    // dockerd attach does.
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                changed = self.exits.changed() => {
                    if changed.is_err() || self.exits.borrow().count > self.seen {
                        self.ended = true;
                    }
                }
            }
        }
    }

    /// The container's input, for the client's to be copied into.
    pub fn stdin(&self) -> Stdin {
        Stdin {
            live: self.live.clone(),
            ctd: self.ctd.clone(),
            id: self.id.clone(),
            dir: self.dir.clone(),
            once: self.stdin_once,
        }
    }
}

/// Where an attached client's input goes: the container's stdin FIFO.
pub struct Stdin {
    live: Arc<Live>,
    ctd: Containerd,
    id: String,
    dir: PathBuf,
    once: bool,
}

impl Stdin {
    /// Writes the client's input to the process; `false` when it takes no
    /// more. Input that comes before the process starts (`docker run -i`
    /// attaches first) waits in the FIFO, which is made here if need be.
    pub async fn write(&self, buf: &[u8]) -> bool {
        let mut stdin = self.live.stdin.lock().await;
        if stdin.is_none() {
            *stdin = open_stdin(&self.dir).ok();
        }
        match stdin.as_mut() {
            Some(s) => s.write_all(buf).await.is_ok(),
            None => false,
        }
    }

    /// The client's input ended: with `StdinOnce`, so does the process's
    /// (at its start, when it has not started yet).
    pub async fn end(&self) {
        if !self.once {
            return;
        }
        use std::sync::atomic::Ordering;
        let mut stdin = self.live.stdin.lock().await;
        if !self.live.running.load(Ordering::SeqCst) {
            // What was written stays in the FIFO while our end is open:
            // the start closes it once the shim holds the other end.
            self.live.stdin_ended.store(true, Ordering::SeqCst);
            return;
        }
        if stdin.take().is_some() {
            let _ = self.ctd.exec_close_stdin(&self.id, "").await;
        }
    }
}
