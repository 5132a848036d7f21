//! A stream of acknowledged writes through one manager, for fault tests: a
//! thread creates secrets one after another and records each one the
//! cluster acknowledged, so a test can check that none of them is lost.

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;
use std::time::Instant;

use super::Node;

/// At most this many writes per stream (bounds the thread).
const MAX_WRITES: usize = 600;

/// One acknowledged write.
#[derive(Debug, Clone)]
pub struct Ack {
    /// The secret's name.
    pub name: String,
    /// When the CLI returned success.
    pub at: Instant,
    /// How long the `secret create` took, CLI start to exit.
    pub took: Duration,
}

/// A writer thread creating secrets `PREFIX0`, `PREFIX1`, ... through one
/// node until stopped (or [`MAX_WRITES`] attempts).
#[derive(Debug)]
pub struct Writes {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Ack>>>,
    failed: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl Writes {
    /// Starts writing through `n`.
    pub fn start(n: Arc<Node>, prefix: &str) -> Writes {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let failed = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, acked, failed) = (stop.clone(), acked.clone(), failed.clone());
            let prefix = prefix.to_string();
            std::thread::spawn(move || {
                for i in 0..MAX_WRITES {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let name = format!("{prefix}{i}");
                    let started = Instant::now();
                    let r = n.docker_within(
                        Duration::from_secs(30),
                        &["secret", "create", &name, "-"],
                        Some(b"payload"),
                    );
                    if r.success() {
                        let at = Instant::now();
                        let took = at - started;
                        lock(&acked).push(Ack { name, at, took });
                    } else {
                        lock(&failed).push(r.stderr.trim().to_string());
                        // A failed call (no leader yet) is retried under a
                        // new name, not hammered.
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            })
        };
        Writes {
            stop,
            acked,
            failed,
            thread: Some(thread),
        }
    }

    /// The writes acknowledged so far.
    pub fn acked(&self) -> Vec<Ack> {
        lock(&self.acked).clone()
    }

    /// How many writes were acknowledged after `t`.
    pub fn acked_after(&self, t: Instant) -> usize {
        lock(&self.acked).iter().filter(|a| a.at > t).count()
    }

    /// The errors of the writes that failed so far.
    pub fn failed(&self) -> Vec<String> {
        lock(&self.failed).clone()
    }

    /// Stops the thread and returns every acknowledged write.
    pub fn stop(mut self) -> Vec<Ack> {
        self.halt();
        self.acked()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Writes {
    fn drop(&mut self) {
        self.halt();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The secret names `n` lists; `None` when the call fails.
pub fn secrets_on(n: &Node) -> Option<Vec<String>> {
    let r = n.docker(&["secret", "ls", "--format", "{{.Name}}"]);
    r.success()
        .then(|| r.stdout.lines().map(str::to_string).collect())
}

/// The acknowledged writes `n` does not list; `None` when the call fails.
pub fn missing_on(n: &Node, acked: &[Ack]) -> Option<Vec<String>> {
    let have = secrets_on(n)?;
    Some(
        acked
            .iter()
            .filter(|a| !have.contains(&a.name))
            .map(|a| a.name.clone())
            .collect(),
    )
}

/// The 50th, 90th and 99th percentiles and the maximum of the writes'
/// latencies (zero when there is none).
pub fn percentiles(acked: &[Ack]) -> [Duration; 4] {
    let mut t: Vec<Duration> = acked.iter().map(|a| a.took).collect();
    t.sort();
    let at = |q: f64| {
        if t.is_empty() {
            return Duration::ZERO;
        }
        let i = ((t.len() - 1) as f64 * q).round() as usize;
        t[i]
    };
    [at(0.5), at(0.9), at(0.99), at(1.0)]
}
