//! What a pull reports while it runs, in the steps dockerd reports (the
//! HTTP edge renders them as dockerd's JSON progress messages).

use std::time::Duration;
use std::time::Instant;

use tokio::sync::mpsc;

/// One progress report of a pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullEvent {
    /// A plain message: `Pulling from library/busybox` (with the tag as
    /// `id`), `Digest: sha256:...`, `Status: Downloaded newer image for ...`.
    Message {
        /// What the message is about (a tag), if anything.
        id: Option<String>,
        /// The text.
        text: String,
    },
    /// A layer reached a step: `Pulling fs layer`, `Waiting`,
    /// `Already exists`, `Verifying Checksum`, `Download complete`,
    /// `Pull complete`. `id` is the short (12 hex digits) layer digest.
    Layer {
        /// Short layer digest.
        id: String,
        /// The step, in dockerd's words.
        action: &'static str,
    },
    /// Bytes of a layer downloaded so far (`Downloading`).
    Download {
        /// Short layer digest.
        id: String,
        /// Bytes received.
        current: u64,
        /// The layer's size.
        total: u64,
    },
}

/// Where a pull sends its events (nowhere when nobody listens).
#[derive(Clone, Default)]
pub(crate) struct Progress(Option<mpsc::Sender<PullEvent>>);

impl Progress {
    pub fn new(tx: Option<mpsc::Sender<PullEvent>>) -> Progress {
        Progress(tx)
    }

    /// Sends an event; a listener that went away does not stop the pull.
    pub async fn send(&self, e: PullEvent) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(e).await;
        }
    }

    pub async fn message(&self, id: Option<String>, text: String) {
        self.send(PullEvent::Message { id, text }).await;
    }

    pub async fn layer(&self, id: &str, action: &'static str) {
        self.send(PullEvent::Layer {
            id: id.to_string(),
            action,
        })
        .await;
    }
}

/// Rate limit for `Downloading` reports of one layer.
pub(crate) struct Throttle {
    every: Duration,
    last: Option<Instant>,
}

impl Throttle {
    pub fn new() -> Throttle {
        Throttle {
            every: Duration::from_millis(100),
            last: None,
        }
    }

    /// True when a report is due now.
    pub fn due(&mut self) -> bool {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|l| now.duration_since(l) < self.every)
        {
            return false;
        }
        self.last = Some(now);
        true
    }
}

/// The short ID dockerd shows for a layer: 12 hex digits of its digest.
pub(crate) fn short_id(digest: &str) -> String {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    hex.chars().take(12).collect()
}
