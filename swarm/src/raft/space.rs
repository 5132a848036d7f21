//! Refusing store writes while the raft directory's filesystem is nearly
//! full.
//!
//! A log append that fails is fatal to openraft (its core stops, and this
//! manager serves no write again until a restart), and redb refuses every
//! later operation on a database that saw an I/O error. So a write is
//! refused *before* it reaches raft when the free space falls below a
//! reserve: the reserve covers raft's own writes (votes, the committed
//! index, a leader's first entry) and the next snapshot, which needs room
//! for a second copy of the current one until its rename.

use std::path::Path;
use std::path::PathBuf;

use crate::error::Error;
use crate::error::Result;

/// Free space always kept for raft's own writes (bytes).
pub const RESERVE: u64 = 16 << 20;

/// Checks the free space of one raft directory before each write.
#[derive(Debug, Clone)]
pub struct SpaceGuard {
    dir: PathBuf,
    reserve: u64,
}

impl SpaceGuard {
    /// A guard for the raft data in `dir` keeping [`RESERVE`] free.
    pub fn new(dir: &Path) -> Self {
        SpaceGuard {
            dir: dir.to_path_buf(),
            reserve: RESERVE,
        }
    }

    /// The bytes a write needs to leave free: the reserve and room for the
    /// next snapshot.
    fn needed(&self) -> u64 {
        let snapshot = std::fs::metadata(self.dir.join("snapshot.bin")).map_or(0, |m| m.len());
        self.reserve + 2 * snapshot
    }

    /// Fails with a "no space left on device" error when the filesystem
    /// holding the raft data has less free space than a write needs. A
    /// filesystem that cannot be queried does not stop writes (the log
    /// store reports real failures itself).
    pub fn check(&self) -> Result<()> {
        let Ok(st) = nix::sys::statvfs::statvfs(&self.dir) else {
            return Ok(());
        };
        let free = st.blocks_available().saturating_mul(st.fragment_size());
        let needed = self.needed();
        if free >= needed {
            return Ok(());
        }
        Err(Error::internal(format!(
            "no space left on device: the swarm's raft store at {} has {} free and keeps {} \
             in reserve; nothing was written. Free space on that filesystem and try again",
            self.dir.display(),
            mib(free),
            mib(needed),
        )))
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_below_the_reserve_and_counts_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let st = nix::sys::statvfs::statvfs(dir.path()).unwrap();
        let free = st.blocks_available() * st.fragment_size();
        // A reserve just under the free space passes; the same reserve with
        // a snapshot to copy does not.
        let mut g = SpaceGuard::new(dir.path());
        g.reserve = free.saturating_sub(64 << 20);
        g.check().unwrap();
        std::fs::File::create(dir.path().join("snapshot.bin"))
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        let err = g.check().unwrap_err();
        assert!(
            err.message().starts_with("no space left on device")
                && err.message().contains("nothing was written"),
            "{err}"
        );
        g.reserve = free + 1;
        assert!(g.check().is_err());
    }
}
