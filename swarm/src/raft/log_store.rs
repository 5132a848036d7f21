//! The raft log, vote and committed index on disk (redb), every value sealed.
//!
//! redb commits are durable (fsync) before they return, so `append` reports
//! `LogFlushed` only once the entries are on disk.

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::Arc;

use openraft::storage::LogFlushed;
use openraft::storage::RaftLogStorage;
use openraft::LogId;
use openraft::LogState;
use openraft::RaftLogReader;
use openraft::StorageError;
use openraft::Vote;
use redb::Database;
use redb::ReadableTable;
use redb::ReadableTableMetadata;
use redb::TableDefinition;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::encryption::Sealer;
use super::Entry;
use super::NodeId;
use super::TypeConfig;

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const PURGED: &str = "last_purged";

type SErr = StorageError<NodeId>;

/// The on-disk log store of one manager.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    sealer: Arc<Sealer>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogStore")
    }
}

fn io<E: std::error::Error + Send + Sync + 'static>(e: E) -> SErr {
    StorageError::from(openraft::StorageIOError::write_logs(&e))
}

impl LogStore {
    /// Opens (or creates) the log database at `path`.
    pub fn open(path: &Path, sealer: Arc<Sealer>) -> Result<Self, SErr> {
        let db = open_db(path).map_err(io)?;
        Ok(LogStore {
            db: Arc::new(db),
            sealer,
        })
    }

    fn seal<T: Serialize>(&self, v: &T) -> Result<Vec<u8>, SErr> {
        let plain = serde_json::to_vec(v).map_err(io)?;
        Ok(self.sealer.seal(&plain))
    }

    fn unseal<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, SErr> {
        let plain = self
            .sealer
            .open(bytes)
            .map_err(|e| StorageError::from(openraft::StorageIOError::read_logs(&e)))?;
        serde_json::from_slice(&plain)
            .map_err(|e| StorageError::from(openraft::StorageIOError::read_logs(&e)))
    }

    fn get_meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SErr> {
        let r = self.db.begin_read().map_err(io)?;
        let t = r.open_table(META).map_err(io)?;
        let v = t.get(key).map_err(io)?;
        match v {
            Some(v) => Ok(Some(self.unseal(v.value())?)),
            None => Ok(None),
        }
    }

    fn put_meta<T: Serialize>(&self, key: &str, v: &T) -> Result<(), SErr> {
        let bytes = self.seal(v)?;
        let w = self.db.begin_write().map_err(io)?;
        {
            let mut t = w.open_table(META).map_err(io)?;
            t.insert(key, bytes.as_slice()).map_err(io)?;
        }
        w.commit().map_err(io)
    }

    /// [`LogStore::open`], waiting (bounded) while a raft that just stopped
    /// still holds the database: its last readers end a moment after it.
    /// Any other failure returns at once.
    pub fn open_waiting(path: &Path, sealer: Arc<Sealer>) -> Result<Self, SErr> {
        Self::open_waiting_db(path, sealer).map_err(io)
    }

    /// [`LogStore::open_waiting`] with redb's own error.
    pub(crate) fn open_waiting_db(path: &Path, sealer: Arc<Sealer>) -> Result<Self, redb::Error> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match open_db(path) {
                Ok(db) => {
                    return Ok(LogStore {
                        db: Arc::new(db),
                        sealer,
                    })
                }
                Err(redb::Error::DatabaseAlreadyOpen) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads back everything the log holds and checks it before raft may
    /// use it: every value authenticates (its AEAD tag), every entry sits
    /// under its own index, the entries run without a gap from just after
    /// the purged index, and they reach the committed index. Returns the
    /// purged log ID (the snapshot must cover it), or what is wrong.
    ///
    /// redb itself rolls back a commit cut short by a crash when it opens
    /// the file (that commit was never acknowledged); what this finds is
    /// damage done after a commit was durable.
    pub(crate) fn verify(&self) -> Result<Option<LogId<NodeId>>, String> {
        let meta_err = |key: &str, _: SErr| {
            format!("its {key} record is unreadable or fails its authentication check")
        };
        let purged: Option<LogId<NodeId>> =
            self.get_meta(PURGED).map_err(|e| meta_err(PURGED, e))?;
        let committed = self
            .get_meta::<Option<LogId<NodeId>>>(COMMITTED)
            .map_err(|e| meta_err(COMMITTED, e))?
            .flatten();
        self.get_meta::<Vote<NodeId>>(VOTE)
            .map_err(|e| meta_err(VOTE, e))?;
        let r = self.db.begin_read().map_err(|e| e.to_string())?;
        let t = r.open_table(LOG).map_err(|e| e.to_string())?;
        let mut next = purged.map(|p| p.index + 1);
        let mut last = purged.map(|p| p.index);
        for item in t.iter().map_err(|e| e.to_string())? {
            let (k, v) = item.map_err(|e| e.to_string())?;
            let k = k.value();
            // `purge` records the purged index before it removes the
            // entries: a crash between the two leaves some below it, which
            // raft never reads again.
            if purged.is_some_and(|p| k <= p.index) {
                continue;
            }
            let e: Entry = self
                .unseal(v.value())
                .map_err(|_| format!("entry {k} fails its authentication check"))?;
            if e.log_id.index != k {
                return Err(format!("entry {k} holds entry {}", e.log_id.index));
            }
            match next {
                Some(n) if n < k => return Err(format!("entries {n} to {} are missing", k - 1)),
                _ => {}
            }
            next = Some(k + 1);
            last = Some(k);
        }
        match committed {
            Some(c) if last.is_none_or(|l| l < c.index) => Err(format!(
                "entries up to {} were committed but it holds entries only up to {}",
                c.index,
                last.map_or_else(|| "none".to_string(), |l| l.to_string())
            )),
            _ => Ok(purged),
        }
    }

    /// Drops every entry and starts the log after `last` (everything up to
    /// it is in a snapshot), with `vote` (`swarm init --force-new-cluster`).
    /// One commit, so a crash leaves the old log or the new one.
    pub(crate) fn reset_after(&self, last: LogId<NodeId>, vote: &Vote<NodeId>) -> Result<(), SErr> {
        let (purged, committed, vote) =
            (self.seal(&last)?, self.seal(&Some(last))?, self.seal(vote)?);
        let w = self.db.begin_write().map_err(io)?;
        {
            let mut t = w.open_table(LOG).map_err(io)?;
            t.retain(|_, _| false).map_err(io)?;
            let mut m = w.open_table(META).map_err(io)?;
            m.insert(PURGED, purged.as_slice()).map_err(io)?;
            m.insert(COMMITTED, committed.as_slice()).map_err(io)?;
            m.insert(VOTE, vote.as_slice()).map_err(io)?;
        }
        w.commit().map_err(io)
    }

    /// Number of entries currently kept (for tests and metrics).
    pub fn len(&self) -> Result<u64, SErr> {
        let r = self.db.begin_read().map_err(io)?;
        let t = r.open_table(LOG).map_err(io)?;
        t.len().map_err(io)
    }

    /// Whether the log holds no entries.
    pub fn is_empty(&self) -> Result<bool, SErr> {
        Ok(self.len()? == 0)
    }

    fn remove_range(&self, range: impl RangeBounds<u64>) -> Result<(), SErr> {
        let w = self.db.begin_write().map_err(io)?;
        {
            let mut t = w.open_table(LOG).map_err(io)?;
            let keys: Vec<u64> = t
                .range(range)
                .map_err(io)?
                .map(|r| r.map(|(k, _)| k.value()))
                .collect::<Result<_, _>>()
                .map_err(io)?;
            for k in keys {
                t.remove(k).map_err(io)?;
            }
        }
        w.commit().map_err(io)
    }
}

impl LogStore {
    /// Seals and writes `entries` in one durable commit.
    pub(crate) fn write_entries(
        &self,
        entries: impl IntoIterator<Item = Entry>,
    ) -> Result<(), SErr> {
        let sealed: Vec<(u64, Vec<u8>)> = entries
            .into_iter()
            .map(|e| Ok((e.log_id.index, self.seal(&e)?)))
            .collect::<Result<_, SErr>>()?;
        let w = self.db.begin_write().map_err(io)?;
        {
            let mut t = w.open_table(LOG).map_err(io)?;
            for (i, v) in &sealed {
                t.insert(*i, v.as_slice()).map_err(io)?;
            }
        }
        w.commit().map_err(io)
    }
}

/// Opens (or creates) the redb file with both tables.
fn open_db(path: &Path) -> Result<Database, redb::Error> {
    let db = Database::create(path)?;
    let w = db.begin_write()?;
    {
        w.open_table(LOG)?;
        w.open_table(META)?;
    }
    w.commit()?;
    Ok(db)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, SErr> {
        let r = self.db.begin_read().map_err(io)?;
        let t = r.open_table(LOG).map_err(io)?;
        let mut out = Vec::new();
        for item in t.range(range).map_err(io)? {
            let (_, v) = item.map_err(io)?;
            out.push(self.unseal(v.value())?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, SErr> {
        let last_purged: Option<LogId<NodeId>> = self.get_meta(PURGED)?;
        let r = self.db.begin_read().map_err(io)?;
        let t = r.open_table(LOG).map_err(io)?;
        let last = match t.last().map_err(io)? {
            Some((_, v)) => {
                let e: Entry = self.unseal(v.value())?;
                Some(e.log_id)
            }
            None => last_purged,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), SErr> {
        self.put_meta(VOTE, vote)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, SErr> {
        self.get_meta(VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), SErr> {
        self.put_meta(COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, SErr> {
        Ok(self.get_meta::<Option<LogId<NodeId>>>(COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), SErr>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let res = self.write_entries(entries);
        let ok = res.is_ok();
        callback.log_io_completed(res.map_err(|e| std::io::Error::other(e.to_string())));
        if ok {
            Ok(())
        } else {
            Err(StorageError::from(openraft::StorageIOError::write_logs(
                &std::io::Error::other("log commit failed"),
            )))
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), SErr> {
        self.remove_range(log_id.index..)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), SErr> {
        self.put_meta(PURGED, &log_id)?;
        self.remove_range(..=log_id.index)
    }
}
