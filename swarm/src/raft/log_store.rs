//! The raft log, vote and committed index on disk (redb), every value sealed.
//!
//! Every write goes through the log's writer thread ([`super::log_writer`]),
//! which commits what queued up meanwhile in one durable transaction.
//! `append` returns once its entries are queued and readable and reports
//! `LogFlushed` only after their commit is on disk; `save_vote` returns only
//! once the vote is on disk. Reads replay the writes not yet durable over
//! what the disk holds.

use std::collections::BTreeMap;
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

use super::encryption::Sealer;
use super::log_writer::Done;
#[cfg(test)]
use super::log_writer::Gate;
use super::log_writer::LogWriter;
use super::log_writer::Tip;
use super::log_writer::Write;
use super::Entry;
use super::NodeId;
use super::TypeConfig;

pub(super) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(super) const VOTE: &str = "vote";
pub(super) const COMMITTED: &str = "committed";
pub(super) const PURGED: &str = "last_purged";

type SErr = StorageError<NodeId>;

/// The on-disk log store of one manager. Clones share one database and one
/// writer thread; the thread ends, after finishing what is queued, when
/// the last clone is dropped (the drop waits for it).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    sealer: Arc<Sealer>,
    writer: Arc<LogWriter>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogStore")
    }
}

fn io<E: std::error::Error + Send + Sync + 'static>(e: E) -> SErr {
    StorageError::from(openraft::StorageIOError::write_logs(&e))
}

fn write_err(why: String) -> SErr {
    io(std::io::Error::other(why))
}

fn read_err<E: std::error::Error + 'static>(e: &E) -> SErr {
    StorageError::from(openraft::StorageIOError::read_logs(e))
}

/// Reads sealed values of a log database; no writes.
struct Disk<'a> {
    db: &'a Database,
    sealer: &'a Sealer,
}

impl Disk<'_> {
    fn unseal<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, SErr> {
        let plain = self.sealer.open(bytes).map_err(|e| read_err(&e))?;
        serde_json::from_slice(&plain).map_err(|e| read_err(&e))
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

    /// The pointers as the disk holds them.
    fn tip(&self) -> Result<Tip, SErr> {
        let purged: Option<LogId<NodeId>> = self.get_meta(PURGED)?;
        let r = self.db.begin_read().map_err(io)?;
        let t = r.open_table(LOG).map_err(io)?;
        let last = match t.last().map_err(io)? {
            Some((_, v)) => Some(self.unseal::<Entry>(v.value())?.log_id),
            None => None,
        };
        Ok(Tip {
            last: later(last, purged),
            purged,
            vote: self.get_meta(VOTE)?,
            committed: self.get_meta::<Option<LogId<NodeId>>>(COMMITTED)?.flatten(),
        })
    }
}

/// `done`, told from a blocking task of the caller's runtime when that
/// runtime is a current-thread one.
///
/// Why: a paused test clock (tokio's test-util, current-thread runtimes
/// only) jumps to the next timer whenever the runtime has nothing to run,
/// and a write on the writer thread is invisible to it: raft's timeouts
/// would fire while a commit of a few milliseconds runs, as if it took
/// seconds. A blocking task that waits for the write holds that clock. On
/// the daemon's multi-thread runtime nothing changes.
fn clock_held(done: Done) -> Done {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) if rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread => {
            let (tx, rx) = std::sync::mpsc::channel::<Result<(), std::io::Error>>();
            rt.spawn_blocking(move || {
                if let Ok(r) = rx.recv() {
                    done(r);
                }
            });
            Box::new(move |r| {
                let _ = tx.send(r);
            })
        }
        _ => done,
    }
}

/// The later of two log IDs (by index).
fn later(a: Option<LogId<NodeId>>, b: Option<LogId<NodeId>>) -> Option<LogId<NodeId>> {
    a.into_iter().chain(b).max_by_key(|l| l.index)
}

impl LogStore {
    /// Opens (or creates) the log database at `path` and starts its writer.
    pub fn open(path: &Path, sealer: Arc<Sealer>) -> Result<Self, SErr> {
        let db = open_db(path).map_err(io)?;
        Self::start(db, sealer)
    }

    fn start(db: Database, sealer: Arc<Sealer>) -> Result<Self, SErr> {
        Self::start_gated(
            db,
            sealer,
            #[cfg(test)]
            None,
        )
    }

    fn start_gated(
        db: Database,
        sealer: Arc<Sealer>,
        #[cfg(test)] gate: Option<Arc<Gate>>,
    ) -> Result<Self, SErr> {
        let db = Arc::new(db);
        let tip = Disk {
            db: &db,
            sealer: &sealer,
        }
        .tip()?;
        let writer = LogWriter::start(
            db.clone(),
            sealer.clone(),
            tip,
            #[cfg(test)]
            gate,
        )
        .map_err(io)?;
        Ok(LogStore {
            db,
            sealer,
            writer: Arc::new(writer),
        })
    }

    /// [`LogStore::open`] with a test gate before each commit.
    #[cfg(test)]
    pub(crate) fn open_gated(path: &Path, sealer: Arc<Sealer>, gate: Arc<Gate>) -> Self {
        let db = open_db(path).expect("open the log database");
        Self::start_gated(db, sealer, Some(gate)).expect("start the log writer")
    }

    fn disk(&self) -> Disk<'_> {
        Disk {
            db: &self.db,
            sealer: &self.sealer,
        }
    }

    /// [`LogStore::open`], waiting (bounded) while a raft that just stopped
    /// still holds the database: its last readers end a moment after it.
    /// Any other failure returns at once.
    pub fn open_waiting(path: &Path, sealer: Arc<Sealer>) -> Result<Self, SErr> {
        let db = open_db_waiting(path).map_err(io)?;
        Self::start(db, sealer)
    }

    /// Opens the log at `path` as [`LogStore::open_waiting`] does and
    /// checks all of it first ([`verify`]). Returns the log and its purged
    /// log ID, or what is wrong.
    pub(crate) fn open_verified(
        path: &Path,
        sealer: Arc<Sealer>,
    ) -> Result<(Self, Option<LogId<NodeId>>), String> {
        let db = open_db_waiting(path)
            .map_err(|e| format!("it does not open as a log database ({e})"))?;
        let purged = verify(&Disk {
            db: &db,
            sealer: &sealer,
        })?;
        let log = Self::start(db, sealer).map_err(|e| format!("it does not open ({e})"))?;
        Ok((log, purged))
    }

    /// Drops every entry and starts the log after `last` (everything up to
    /// it is in a snapshot), with `vote` (`swarm init --force-new-cluster`).
    /// One commit, so a crash leaves the old log or the new one. Returns
    /// once it is durable.
    pub(crate) fn reset_after(&self, last: LogId<NodeId>, vote: &Vote<NodeId>) -> Result<(), SErr> {
        let vote = *vote;
        self.submit_and_wait(Write::Reset { last, vote }, |t| {
            *t = Tip {
                last: Some(last),
                purged: Some(last),
                vote: Some(vote),
                committed: Some(last),
            }
        })
    }

    /// Seals and writes `entries` in one durable commit, whatever their
    /// indexes (tests use it to make logs of any shape). Returns once it is
    /// durable.
    #[cfg(test)]
    pub(crate) fn write_entries(
        &self,
        entries: impl IntoIterator<Item = Entry>,
    ) -> Result<(), SErr> {
        let entries: Arc<[Entry]> = entries.into_iter().collect();
        let last = entries.last().map(|e| e.log_id);
        self.submit_and_wait(Write::Append(entries), |t| t.last = later(t.last, last))
    }

    /// Queues `write` and blocks this thread until it is durable. Only for
    /// callers outside raft's loop (start-up, recovery, tests): the writer
    /// thread needs nothing from the caller's runtime to finish.
    fn submit_and_wait(&self, write: Write, update: impl FnOnce(&mut Tip)) -> Result<(), SErr> {
        let (tx, rx) = std::sync::mpsc::channel();
        let done: Done = Box::new(move |r| {
            let _ = tx.send(r);
        });
        self.writer
            .submit(write, Some(done), update)
            .map_err(write_err)?;
        rx.recv()
            .map_err(|_| write_err("the log writer has stopped".into()))?
            .map_err(io)
    }

    /// Queues `entries` and calls `done` once they are durable (or with
    /// why not). They are readable when this returns.
    pub(crate) fn append_then(&self, entries: Vec<Entry>, done: Done) -> Result<(), SErr> {
        let last = entries.last().map(|e| e.log_id);
        self.writer
            .submit(Write::Append(entries.into()), Some(clock_held(done)), |t| {
                if last.is_some() {
                    t.last = last;
                }
            })
            .map_err(write_err)
    }

    /// Number of entries on disk (queued writes not counted).
    pub fn len(&self) -> Result<u64, SErr> {
        let r = self.db.begin_read().map_err(io)?;
        let t = r.open_table(LOG).map_err(io)?;
        t.len().map_err(io)
    }

    /// Whether the log holds no entries on disk.
    pub fn is_empty(&self) -> Result<bool, SErr> {
        Ok(self.len()? == 0)
    }

    /// The entries in `range`: the disk's with the writes not yet durable
    /// replayed over them.
    fn entries<RB: RangeBounds<u64>>(&self, range: RB) -> Result<Vec<Entry>, SErr> {
        // Taken before the read transaction opens (see `LogWriter::pending`).
        let pending = self.writer.pending();
        let r = self.db.begin_read().map_err(io)?;
        let t = r.open_table(LOG).map_err(io)?;
        let disk = self.disk();
        let mut out = BTreeMap::new();
        let bounds = (range.start_bound().cloned(), range.end_bound().cloned());
        for item in t.range::<u64>(bounds).map_err(io)? {
            let (k, v) = item.map_err(io)?;
            out.insert(k.value(), disk.unseal::<Entry>(v.value())?);
        }
        for w in pending {
            match w {
                Write::Append(es) => out.extend(
                    es.iter()
                        .filter(|e| range.contains(&e.log_id.index))
                        .map(|e| (e.log_id.index, e.clone())),
                ),
                Write::Truncate(from) => drop(out.split_off(&from)),
                Write::Purge(upto) => out = out.split_off(&(upto.index + 1)),
                Write::Reset { .. } => out.clear(),
                Write::Vote(_) | Write::Committed(_) => {}
            }
        }
        Ok(out.into_values().collect())
    }
}

/// Reads back everything the log holds and checks it before raft may use
/// it: every value authenticates (its AEAD tag), every entry sits under its
/// own index, the entries run without a gap from just after the purged
/// index, and they reach the committed index. Returns the purged log ID
/// (the snapshot must cover it), or what is wrong.
///
/// redb itself rolls back a commit cut short by a crash when it opens the
/// file (that commit was never acknowledged); what this finds is damage
/// done after a commit was durable.
fn verify(disk: &Disk<'_>) -> Result<Option<LogId<NodeId>>, String> {
    let meta_err = |key: &str, _: SErr| {
        format!("its {key} record is unreadable or fails its authentication check")
    };
    let purged: Option<LogId<NodeId>> = disk.get_meta(PURGED).map_err(|e| meta_err(PURGED, e))?;
    let committed = disk
        .get_meta::<Option<LogId<NodeId>>>(COMMITTED)
        .map_err(|e| meta_err(COMMITTED, e))?
        .flatten();
    disk.get_meta::<Vote<NodeId>>(VOTE)
        .map_err(|e| meta_err(VOTE, e))?;
    let r = disk.db.begin_read().map_err(|e| e.to_string())?;
    let t = r.open_table(LOG).map_err(|e| e.to_string())?;
    let mut next = purged.map(|p| p.index + 1);
    let mut last = purged.map(|p| p.index);
    for item in t.iter().map_err(|e| e.to_string())? {
        let (k, v) = item.map_err(|e| e.to_string())?;
        let k = k.value();
        // A log written when `purge` recorded the purged index and removed
        // the entries in two commits may hold entries below that index (a
        // crash between the two); raft never reads them.
        if purged.is_some_and(|p| k <= p.index) {
            continue;
        }
        let e: Entry = disk
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

/// [`open_db`], waiting (at most 10 s) while another handle still holds
/// the file.
fn open_db_waiting(path: &Path) -> Result<Database, redb::Error> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match open_db(path) {
            Err(redb::Error::DatabaseAlreadyOpen) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            r => return r,
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, SErr> {
        self.entries(range)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, SErr> {
        let tip = self.writer.tip();
        Ok(LogState {
            last_purged_log_id: tip.purged,
            last_log_id: tip.last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), SErr> {
        // Raft's safety rests on a vote being on disk before it is used:
        // this waits for its commit.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let done: Done = Box::new(move |r| {
            let _ = tx.send(r);
        });
        let vote = *vote;
        self.writer
            .submit(Write::Vote(vote), Some(clock_held(done)), |t| {
                t.vote = Some(vote)
            })
            .map_err(write_err)?;
        rx.await
            .map_err(|_| write_err("the log writer has stopped".into()))?
            .map_err(io)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, SErr> {
        Ok(self.writer.tip().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), SErr> {
        // Not waited for: a committed index that is lost in a crash is found
        // again from the leader (and is never ahead of durable entries,
        // which the queue's order keeps before it).
        self.writer
            .submit(Write::Committed(committed), None, |t| {
                t.committed = committed
            })
            .map_err(write_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, SErr> {
        Ok(self.writer.tip().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), SErr>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        self.append_then(
            entries.into_iter().collect(),
            Box::new(move |r| callback.log_io_completed(r)),
        )
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), SErr> {
        let from = log_id.index;
        let before = match from {
            0 => None,
            _ => self.entries(from - 1..from)?.pop().map(|e| e.log_id),
        };
        self.writer
            .submit(Write::Truncate(from), None, |t| {
                t.last = later(before, t.purged)
            })
            .map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), SErr> {
        self.writer
            .submit(Write::Purge(log_id), None, |t| {
                t.purged = later(t.purged, Some(log_id));
                t.last = later(t.last, Some(log_id));
            })
            .map_err(write_err)
    }
}

#[cfg(test)]
#[path = "log_store_test.rs"]
mod tests;
