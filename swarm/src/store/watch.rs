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
