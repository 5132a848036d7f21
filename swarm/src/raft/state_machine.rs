//! The raft state machine: applies committed proposals to the store's shared
//! state and keeps sealed snapshots on disk.

use std::io::Cursor;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::storage::Snapshot;
use openraft::BasicNode;
use openraft::EntryPayload;
use openraft::LogId;
use openraft::RaftSnapshotBuilder;
use openraft::SnapshotMeta;
use openraft::StorageError;
use openraft::StoredMembership;

use super::encryption::write_durable;
use super::encryption::Sealer;
use super::Entry;
use super::NodeId;
use super::TypeConfig;
use crate::store::SharedState;
use crate::store::StoreSnapshot;

type SErr = StorageError<NodeId>;
type Meta = SnapshotMeta<NodeId, BasicNode>;

fn err<E: std::error::Error + Send + Sync + 'static>(e: E) -> SErr {
    StorageError::from(openraft::StorageIOError::write_snapshot(None, &e))
}

/// Applies entries to [`SharedState`]; one per manager.
#[derive(Debug)]
pub struct StateMachine {
    state: Arc<SharedState>,
    files: SnapshotFiles,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
}

/// Where the current snapshot lives: `snapshot.data` then `snapshot.meta`
/// (the meta file is written last, so it marks a complete snapshot).
#[derive(Debug, Clone)]
struct SnapshotFiles {
    data: PathBuf,
    meta: PathBuf,
    sealer: Arc<Sealer>,
}

impl SnapshotFiles {
    fn load(&self) -> Result<Option<(Meta, Vec<u8>)>, SErr> {
        let meta = match std::fs::read(&self.meta) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err(e)),
        };
        let meta: Meta =
            serde_json::from_slice(&self.sealer.open(&meta).map_err(err)?).map_err(err)?;
        let data = std::fs::read(&self.data).map_err(err)?;
        let data = self.sealer.open(&data).map_err(err)?;
        Ok(Some((meta, data)))
    }

    fn save(&self, meta: &Meta, data: &[u8]) -> Result<(), SErr> {
        write_durable(&self.data, &self.sealer.seal(data)).map_err(err)?;
        let m = serde_json::to_vec(meta).map_err(err)?;
        write_durable(&self.meta, &self.sealer.seal(&m)).map_err(err)
    }
}

/// Writes `data` (an encoded store) as the current snapshot of the state
/// machine in `dir`, with `meta`.
pub(crate) fn write_snapshot(
    dir: &Path,
    sealer: Arc<Sealer>,
    meta: &Meta,
    data: &[u8],
) -> Result<(), SErr> {
    let files = SnapshotFiles {
        data: dir.join("snapshot.data"),
        meta: dir.join("snapshot.meta"),
        sealer,
    };
    files.save(meta, data)
}

impl StateMachine {
    /// Opens the state machine in `dir`, restoring the last snapshot if any.
    pub fn open(dir: &Path, sealer: Arc<Sealer>, state: Arc<SharedState>) -> Result<Self, SErr> {
        let files = SnapshotFiles {
            data: dir.join("snapshot.data"),
            meta: dir.join("snapshot.meta"),
            sealer,
        };
        let mut sm = StateMachine {
            state,
            files,
            last_applied: None,
            membership: StoredMembership::default(),
        };
        if let Some((meta, data)) = sm.files.load()? {
            let tables = StoreSnapshot::decode(&data).map_err(err)?;
            sm.state.restore(tables);
            sm.last_applied = meta.last_log_id;
            sm.membership = meta.last_membership;
        }
        Ok(sm)
    }
}

/// Builds snapshots from the shared state.
#[derive(Debug)]
pub struct Builder {
    state: Arc<SharedState>,
    files: SnapshotFiles,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
}

impl RaftSnapshotBuilder<TypeConfig> for Builder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SErr> {
        let data = self
            .state
            .read(StoreSnapshot::encode)
            .map_err(|e| StorageError::from(openraft::StorageIOError::read_state_machine(&e)))?;
        let id = match self.last_applied {
            Some(l) => format!("{}-{}", l.leader_id, l.index),
            None => "empty".to_string(),
        };
        let meta = Meta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id: id,
        };
        self.files.save(&meta, &data)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Builder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), SErr> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, SErr>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut out = Vec::new();
        for e in entries {
            self.last_applied = Some(e.log_id);
            match e.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(p) => self.state.apply(e.log_id.index, &p.actions),
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(e.log_id), m);
                }
            }
            out.push(());
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // Reads happen under the state lock, so the image matches last_applied:
        // apply runs on this same task and cannot interleave.
        Builder {
            state: self.state.clone(),
            files: self.files.clone(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, SErr> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), SErr> {
        let data = snapshot.into_inner();
        let tables = StoreSnapshot::decode(&data).map_err(err)?;
        self.files.save(meta, &data)?;
        self.state.restore(tables);
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SErr> {
        Ok(self.files.load()?.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}
