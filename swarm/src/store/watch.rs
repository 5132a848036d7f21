//! Watch events: what each commit changed.

use serde::Deserialize;
use serde::Serialize;

use crate::model::Object;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventAction {
    /// The object was created.
    Create,
    /// The object was updated.
    Update,
    /// The object was removed.
    Remove,
    /// The whole state was replaced (snapshot install): watchers re-read all.
    Resync,
}

/// One change of one object.
#[derive(Debug, Clone)]
pub struct Event {
    /// What happened.
    pub action: EventAction,
    /// The new value (or the removed one); `None` only for `Resync`.
    pub object: Option<Object>,
}

impl Event {
    /// The event that tells watchers to re-read everything.
    pub fn resync() -> Self {
        Event {
            action: EventAction::Resync,
            object: None,
        }
    }
}

/// The changes of one applied log entry.
#[derive(Debug, Clone)]
pub struct Commit {
    /// The raft index of the entry.
    pub index: u64,
    /// Its changes, in order.
    pub events: Vec<Event>,
}

/// What a watcher of the store sees next: a commit, or word that it fell
/// behind the watch ring and must look at everything again.
#[derive(Debug)]
pub enum Watched {
    /// One commit, in order.
    Commit(std::sync::Arc<Commit>),
    /// Commits were missed.
    Lagged,
}

impl Watched {
    /// The next change; `None` once `cancel` fires or the store is gone.
    pub async fn next(
        rx: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<Commit>>,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Option<Watched> {
        use tokio::sync::broadcast::error::RecvError;
        tokio::select! {
            _ = cancel.cancelled() => None,
            r = rx.recv() => match r {
                Ok(c) => Some(Watched::Commit(c)),
                Err(RecvError::Lagged(_)) => Some(Watched::Lagged),
                Err(RecvError::Closed) => None,
            },
        }
    }

    /// Lets the rest of a burst arrive for `delay`, then returns every change
    /// queued meanwhile, so a control loop covers the burst with one pass
    /// and one commit (swarmkit debounces the same way). `None` once
    /// `cancel` fires.
    pub async fn burst(
        rx: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<Commit>>,
        cancel: &tokio_util::sync::CancellationToken,
        delay: std::time::Duration,
    ) -> Option<Vec<Watched>> {
        use tokio::sync::broadcast::error::TryRecvError;
        tokio::select! {
            _ = cancel.cancelled() => return None,
            _ = tokio::time::sleep(delay) => {}
        }
        let mut out = Vec::new();
        loop {
            match rx.try_recv() {
                Ok(c) => out.push(Watched::Commit(c)),
                Err(TryRecvError::Lagged(_)) => out.push(Watched::Lagged),
                Err(_) => return Some(out),
            }
        }
    }
}
