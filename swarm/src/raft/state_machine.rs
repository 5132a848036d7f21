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

/// Where the current snapshot lives: `snapshot.bin`, the meta and the data
/// sealed together and replaced in one rename, so a crash never pairs one
/// snapshot's meta with another's data. (`snapshot.meta` and
/// `snapshot.data`, the pair older versions wrote, are still read.)
#[derive(Debug, Clone)]
struct SnapshotFiles {
    file: PathBuf,
    old_data: PathBuf,
    old_meta: PathBuf,
    sealer: Arc<Sealer>,
}

impl SnapshotFiles {
    fn new(dir: &Path, sealer: Arc<Sealer>) -> Self {
        SnapshotFiles {
            file: dir.join("snapshot.bin"),
            old_data: dir.join("snapshot.data"),
            old_meta: dir.join("snapshot.meta"),
            sealer,
        }
    }

    /// Reads and opens one sealed file; `None` when it does not exist.
    fn read(&self, path: &Path) -> Result<Option<Vec<u8>>, Damage> {
        let damage = |what: String| Damage(path.to_path_buf(), what);
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(damage(format!("it cannot be read ({e})"))),
        };
        match self.sealer.open(&bytes) {
            Ok(plain) => Ok(Some(plain)),
            // A nonce and a tag are 28 bytes: less is a cut file.
            Err(_) if bytes.len() < 28 => Err(damage("it is truncated".into())),
            Err(_) => Err(damage(
                "it fails its authentication check (cut short, corrupted or sealed with another key)"
                    .into(),
            )),
        }
    }

    /// The current snapshot, if any: its meta and the encoded store.
    fn load(&self) -> Result<Option<(Meta, Vec<u8>)>, Damage> {
        if let Some(plain) = self.read(&self.file)? {
            let malformed = || Damage(self.file.clone(), "its layout is malformed".into());
            // u64 length of the meta, the meta, then the data.
            let (len, rest) = plain.split_at_checked(8).ok_or_else(malformed)?;
            let len = u64::from_be_bytes(len.try_into().map_err(|_| malformed())?);
            let (meta, data) = usize::try_from(len)
                .ok()
                .and_then(|l| rest.split_at_checked(l))
                .ok_or_else(malformed)?;
            let meta: Meta = serde_json::from_slice(meta).map_err(|_| malformed())?;
            return Ok(Some((meta, data.to_vec())));
        }
        let Some(meta) = self.read(&self.old_meta)? else {
            return Ok(None);
        };
        let meta: Meta = serde_json::from_slice(&meta)
            .map_err(|_| Damage(self.old_meta.clone(), "its layout is malformed".into()))?;
        let data = self
            .read(&self.old_data)?
            .ok_or_else(|| Damage(self.old_data.clone(), "it is missing".into()))?;
        Ok(Some((meta, data)))
    }

    fn save(&self, meta: &Meta, data: &[u8]) -> Result<(), SErr> {
        let m = serde_json::to_vec(meta).map_err(err)?;
        let mut plain = Vec::with_capacity(8 + m.len() + data.len());
        plain.extend_from_slice(&(m.len() as u64).to_be_bytes());
        plain.extend_from_slice(&m);
        plain.extend_from_slice(data);
        write_durable(&self.file, &self.sealer.seal(&plain)).map_err(err)?;
        let _ = std::fs::remove_file(&self.old_meta);
        let _ = std::fs::remove_file(&self.old_data);
        Ok(())
    }
}

/// A snapshot file that cannot be used, and why in words.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {what}", path = .0.display(), what = .1)]
pub struct Damage(pub PathBuf, pub String);

/// Writes `data` (an encoded store) as the current snapshot of the state
/// machine in `dir`, with `meta`.
pub(crate) fn write_snapshot(
    dir: &Path,
    sealer: Arc<Sealer>,
    meta: &Meta,
    data: &[u8],
) -> Result<(), SErr> {
    SnapshotFiles::new(dir, sealer).save(meta, data)
}

impl StateMachine {
    /// Opens the state machine in `dir`, restoring the last snapshot if any.
    /// A snapshot file that fails its authentication check or does not
    /// decode is refused: the error names the file and what is wrong.
    pub fn open(dir: &Path, sealer: Arc<Sealer>, state: Arc<SharedState>) -> Result<Self, Damage> {
        let files = SnapshotFiles::new(dir, sealer);
        let mut sm = StateMachine {
            state,
            files,
            last_applied: None,
            membership: StoredMembership::default(),
        };
        if let Some((meta, data)) = sm.files.load()? {
            let tables = StoreSnapshot::decode(&data).map_err(|e| {
                Damage(
                    sm.files.file.clone(),
                    format!("its store image does not decode ({e})"),
                )
            })?;
            sm.state.restore(tables);
            if let Some(id) = meta.last_log_id {
                sm.state.applied_without_change(id.index);
            }
            sm.last_applied = meta.last_log_id;
            sm.membership = meta.last_membership;
        }
        Ok(sm)
    }

    /// The last log ID the state holds (restored or applied).
    pub(crate) fn last_applied(&self) -> Option<LogId<NodeId>> {
        self.last_applied
    }

    /// The file the current snapshot is kept in.
    pub(crate) fn snapshot_file(&self) -> &Path {
        &self.files.file
    }
}

/// Builds snapshots from the shared state.
#[derive(Debug)]
pub struct Builder {
    /// The store as of `last_applied`, encoded when the builder was made.
    data: Result<Vec<u8>, String>,
    files: SnapshotFiles,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
}

impl RaftSnapshotBuilder<TypeConfig> for Builder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SErr> {
        let data = std::mem::replace(&mut self.data, Ok(Vec::new())).map_err(|e| {
            StorageError::from(openraft::StorageIOError::read_state_machine(
                &std::io::Error::other(e),
            ))
        })?;
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
                // A new leader waits for its term's blank entry to be
                // applied before it starts its loops: it must count.
                EntryPayload::Blank => self.state.applied_without_change(e.log_id.index),
                EntryPayload::Normal(p) => self.state.apply(e.log_id.index, &p.actions),
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(e.log_id), m);
                    self.state.applied_without_change(e.log_id.index);
                }
            }
            out.push(());
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // openraft builds the snapshot on a task of its own while this one
        // applies on: the image must be taken here, between two applies, to
        // match last_applied.
        Builder {
            data: self
                .state
                .read(StoreSnapshot::encode)
                .map_err(|e| e.to_string()),
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
        // The image may end with entries that changed nothing in it.
        if let Some(id) = meta.last_log_id {
            self.state.applied_without_change(id.index);
        }
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SErr> {
        Ok(self
            .files
            .load()
            .map_err(err)?
            .map(|(meta, data)| Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(data)),
            }))
    }
}
