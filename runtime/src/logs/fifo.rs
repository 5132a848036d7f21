//! Copying a task's stdout/stderr FIFOs into its json-file log.
//!
//! The FIFOs are opened read-write so that reads never see end-of-file
//! while the shim has not connected yet or between shoald restarts; the
//! copier therefore stops when told the process exited, after the pipes
//! have been quiet for a moment.
//!
//! A copier may also hand every chunk it reads to a tap, as it reads it:
//! that is what `docker attach` on a standalone container streams.

use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::broadcast;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::json::now;
use super::json::LogLine;
use super::json::Rotation;
use super::json::Writer;

/// How long the pipes must be quiet after exit before the copier stops.
const QUIET: Duration = Duration::from_millis(100);
/// The longest the copier drains after exit.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// A running copy from a container's FIFOs to its log.
#[derive(Debug)]
pub struct Copier {
    exited: CancellationToken,
    handle: JoinHandle<()>,
}

/// A piece of a container's output as its process wrote it.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// Whether it came from stderr (else stdout).
    pub stderr: bool,
    /// The bytes.
    pub data: Bytes,
}

/// Where a copier hands each [`Chunk`] it reads.
pub type Tap = broadcast::Sender<Chunk>;

/// The FIFO paths of a container's init process in `dir`.
pub fn fifo_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("init-stdout"), dir.join("init-stderr"))
}

fn mkfifo(path: &Path) -> std::io::Result<()> {
    match nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => Ok(()),
        Err(e) => Err(std::io::Error::from(e)),
    }
}

impl Copier {
    /// Creates (if needed) and opens the FIFOs in `dir` and starts copying
    /// into `log`. Returns the FIFO paths for the shim.
    pub fn start(
        dir: &Path,
        log: PathBuf,
        rotation: Rotation,
    ) -> std::io::Result<(Copier, PathBuf, PathBuf)> {
        Self::start_tapped(dir, log, rotation, None)
    }

    /// As [`Copier::start`], also handing every chunk read to `tap`.
    pub fn start_tapped(
        dir: &Path,
        log: PathBuf,
        rotation: Rotation,
        tap: Option<Tap>,
    ) -> std::io::Result<(Copier, PathBuf, PathBuf)> {
        let (out_path, err_path) = fifo_paths(dir);
        mkfifo(&out_path)?;
        mkfifo(&err_path)?;
        let open = |p: &Path| pipe::OpenOptions::new().read_write(true).open_receiver(p);
        let out = open(&out_path)?;
        let err = open(&err_path)?;
        let mut writer = Writer::open(log, rotation)?;
        let exited = CancellationToken::new();
        let (tx, mut rx) = mpsc::channel::<LogLine>(256);
        let handle = tokio::spawn({
            let exited = exited.clone();
            async move {
                let a = tokio::spawn(copy(out, "stdout", tx.clone(), tap.clone(), exited.clone()));
                let b = tokio::spawn(copy(err, "stderr", tx, tap, exited));
                let write = tokio::task::spawn_blocking(move || {
                    while let Some(line) = rx.blocking_recv() {
                        if let Err(e) = writer.write(&line) {
                            tracing::warn!(error = %e, "write container log");
                        }
                    }
                });
                let _ = a.await;
                let _ = b.await;
                let _ = write.await;
            }
        });
        Ok((Copier { exited, handle }, out_path, err_path))
    }

    /// Tells the copier the process exited and waits until it has drained.
    pub async fn finish(self) {
        self.exited.cancel();
        let _ = self.handle.await;
    }
}

async fn copy(
    mut rx: pipe::Receiver,
    stream: &'static str,
    out: mpsc::Sender<LogLine>,
    tap: Option<Tap>,
    exited: CancellationToken,
) {
    let mut buf = vec![0u8; 32 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    loop {
        let read = if let Some(deadline) = drain_deadline {
            let quiet = tokio::time::Instant::now() + QUIET;
            tokio::select! {
                r = rx.read(&mut buf) => r,
                _ = tokio::time::sleep_until(quiet.min(deadline)) => break,
            }
        } else {
            tokio::select! {
                r = rx.read(&mut buf) => r,
                _ = exited.cancelled() => {
                    drain_deadline = Some(tokio::time::Instant::now() + DRAIN_LIMIT);
                    continue;
                }
            }
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(tap) = &tap {
                    // No subscriber is not an error: nobody is attached.
                    let _ = tap.send(Chunk {
                        stderr: stream == "stderr",
                        data: Bytes::copy_from_slice(&buf[..n]),
                    });
                }
                pending.extend_from_slice(&buf[..n]);
                while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=pos).collect();
                    send(&out, stream, &line).await;
                }
                // Very long lines are split like dockerd does (16 KiB pieces).
                while pending.len() >= 16 * 1024 {
                    let piece: Vec<u8> = pending.drain(..16 * 1024).collect();
                    send(&out, stream, &piece).await;
                }
            }
        }
    }
    if !pending.is_empty() {
        send(&out, stream, &pending).await;
    }
}

async fn send(out: &mpsc::Sender<LogLine>, stream: &'static str, bytes: &[u8]) {
    let _ = out
        .send(LogLine {
            log: String::from_utf8_lossy(bytes).into_owned(),
            stream: stream.to_string(),
            time: now(),
        })
        .await;
}
