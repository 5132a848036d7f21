//! Start-time checks of the raft files: a damaged log or snapshot is refused
//! with a message naming the file and what to do, never loaded and never a
//! panic.
//!
//! Every value in the log and the whole snapshot file are sealed with an
//! AEAD, so a flipped or missing byte fails its tag. redb checks its own page
//! structure only while it recovers from a crash and may panic on a header
//! it cannot parse; those panics are caught here and reported like any other
//! damage.

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;
use std::sync::Once;

use openraft::LogId;

use super::encryption::Sealer;
use super::LogStore;
use super::NodeId;
use crate::error::Error;

/// The refusal for a damaged raft file: what is wrong with `file` and how
/// the operator gets the node going again.
pub(crate) fn damaged(file: &Path, what: &str) -> Error {
    let swarm_dir = file
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| Path::new("."));
    Error::internal(format!(
        "raft data file {} is damaged: {what}. shoald will not load it. Restore {} from a backup, \
         or move it away and join this node to the swarm again (a lone manager without a backup \
         starts a new swarm with `docker swarm init`)",
        file.display(),
        swarm_dir.display(),
    ))
}

/// Opens the log at `path` and checks all of it ([`LogStore::open_verified`]).
/// Returns the log and its purged log ID, or the refusal.
pub(crate) fn open_log(
    path: &Path,
    sealer: Arc<Sealer>,
) -> Result<(LogStore, Option<LogId<NodeId>>), Error> {
    // redb starts a new database in an empty file: an empty log file can
    // only be one that lost its contents.
    if std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
        return Err(damaged(path, "it is empty"));
    }
    let opened = quiet_panics(|| LogStore::open_verified(path, sealer));
    match opened {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(what)) | Err(what) => Err(damaged(path, &what)),
    }
}

thread_local! {
    /// Set while this thread runs [`quiet_panics`]: its panics are reported
    /// as errors, not printed.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

static HOOK: Once = Once::new();

/// Runs `f`, turning a panic in it into an error with the panic's message.
/// The process's panic hook stays as it is for every other panic.
fn quiet_panics<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let r = std::panic::catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    r.map_err(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        format!(
            "its structure is broken ({})",
            msg.lines().next().unwrap_or("unreadable")
        )
    })
}

#[cfg(test)]
#[path = "integrity_test.rs"]
mod tests;
