//! Whole-store serialization for raft snapshots.

use serde::Deserialize;
use serde::Serialize;

use super::Tables;

/// A serialized image of every table at one index.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreSnapshot {
    /// The tables.
    pub tables: Tables,
}

impl StoreSnapshot {
    /// Encodes the snapshot.
    pub fn encode(tables: &Tables) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(tables)
    }

    /// Decodes a snapshot and rebuilds its indexes.
    pub fn decode(bytes: &[u8]) -> serde_json::Result<Tables> {
        let mut t: Tables = serde_json::from_slice(bytes)?;
        t.reindex();
        Ok(t)
    }
}
