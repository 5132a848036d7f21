//! The raft log's writer: one OS thread owns every write to the log
//! database and commits all that queued up meanwhile in one durable redb
//! transaction (group commit).
//!
//! Why: openraft calls the log store from its main loop. With one fsync per
//! call, inline, a manager on a slow disk made every raft step wait for its
//! own fsync in line, heartbeats included, and a slow leader stalled writes
//! for seconds and lost its leadership only after many more. Now a call
//! only queues its write. The thread takes everything queued, applies it in
//! queue order in one transaction, commits once (one fsync), and then
//! reports each write of the group done. What raft needs durable before it
//! goes on waits for that report (a vote; an append's `LogFlushed`); the
//! rest (the committed index, truncate, purge) does not wait, and is
//! ordered by the queue before every later write.
//!
//! Until its commit a queued write stays in [`Shared::pending`]: readers
//! replay the pending writes over what the disk holds, so openraft reads
//! entries it appended before they are flushed (a leader replicates them
//! while its own fsync runs).
//!
//! After a failed commit nothing more is written: each later write fails
//! with the same error, so the disk never holds a later write without an
//! earlier one, and raft, for which a log I/O error is fatal, stops.

use std::collections::VecDeque;
use std::io;
use std::sync::mpsc;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::MutexGuard;
use std::sync::PoisonError;
use std::thread::JoinHandle;

use openraft::LogId;
use openraft::Vote;
use redb::Database;
use serde::Serialize;

use super::encryption::Sealer;
use super::log_store::COMMITTED;
use super::log_store::LOG;
use super::log_store::META;
use super::log_store::PURGED;
use super::log_store::VOTE;
use super::Entry;
use super::NodeId;

/// Writes applied in one commit at most, so a long queue does not make one
/// huge transaction.
const MAX_GROUP: usize = 256;

/// One write to the log database, as queued.
#[derive(Debug, Clone)]
pub(crate) enum Write {
    /// Entries stored under their indexes.
    Append(Arc<[Entry]>),
    /// The vote.
    Vote(Vote<NodeId>),
    /// The committed log ID.
    Committed(Option<LogId<NodeId>>),
    /// Removes the entries from this index on.
    Truncate(u64),
    /// Records the purged log ID, then removes the entries up to it.
    Purge(LogId<NodeId>),
    /// Removes every entry; the log starts after `last`, committed up to
    /// it, with `vote` (`swarm init --force-new-cluster`).
    Reset {
        /// The last log ID the snapshot holds.
        last: LogId<NodeId>,
        /// The vote the new cluster starts with.
        vote: Vote<NodeId>,
    },
}

impl Write {
    /// Whether readers of entries must see this write before it is durable.
    fn changes_entries(&self) -> bool {
        !matches!(self, Write::Vote(_) | Write::Committed(_))
    }
}

/// Told once its write is durable, or why it is not.
pub(crate) type Done = Box<dyn FnOnce(Result<(), io::Error>) + Send>;

/// The log's pointers as the queue leaves them: what raft reads back.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tip {
    /// The last entry's log ID, or the purged one when no entry is left.
    pub(crate) last: Option<LogId<NodeId>>,
    /// The last purged log ID.
    pub(crate) purged: Option<LogId<NodeId>>,
    /// The last vote saved.
    pub(crate) vote: Option<Vote<NodeId>>,
    /// The last committed log ID saved.
    pub(crate) committed: Option<LogId<NodeId>>,
}

/// What the store's callers and the writer thread share, under one lock.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Queued writes that change entries and are not yet durable, in queue
    /// order, each with its sequence number.
    pub(crate) pending: VecDeque<(u64, Write)>,
    /// The pointers with every queued write applied.
    pub(crate) tip: Tip,
    /// The next write's sequence number.
    next_seq: u64,
    /// Why the writer stopped writing, once a commit failed.
    failed: Option<String>,
}

struct Queued {
    seq: u64,
    write: Write,
    done: Option<Done>,
}

/// The writer thread and its queue. Dropping it lets the thread finish
/// what is queued and waits for it.
pub(crate) struct LogWriter {
    shared: Arc<Mutex<Shared>>,
    tx: Option<mpsc::Sender<Queued>>,
    thread: Option<JoinHandle<()>>,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // The lock guards plain data that every holder leaves consistent.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LogWriter {
    /// Starts the thread that writes to `db`, sealing with `sealer`, from a
    /// log whose pointers are `tip`.
    pub(crate) fn start(
        db: Arc<Database>,
        sealer: Arc<Sealer>,
        tip: Tip,
        #[cfg(test)] gate: Option<Arc<Gate>>,
    ) -> io::Result<LogWriter> {
        let shared = Arc::new(Mutex::new(Shared {
            tip,
            ..Shared::default()
        }));
        let (tx, rx) = mpsc::channel();
        let run = Run {
            db,
            sealer,
            shared: shared.clone(),
            #[cfg(test)]
            gate,
        };
        let thread = std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || run.serve(&rx))?;
        Ok(LogWriter {
            shared,
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues `write` after every write queued before it, and applies
    /// `update` to the pointers readers see, both at once. `done` is told
    /// when the write is durable. After a failed commit the write is
    /// refused: `done` is told why and so is the caller.
    pub(crate) fn submit(
        &self,
        write: Write,
        done: Option<Done>,
        update: impl FnOnce(&mut Tip),
    ) -> Result<(), String> {
        let mut s = lock(&self.shared);
        let refused = match (&s.failed, &self.tx) {
            (Some(why), _) => Some(why.clone()),
            (None, None) => Some("the log writer has stopped".to_string()),
            (None, Some(_)) => None,
        };
        if let Some(why) = refused {
            drop(s);
            if let Some(done) = done {
                done(Err(io::Error::other(why.clone())));
            }
            return Err(why);
        }
        let seq = s.next_seq;
        s.next_seq += 1;
        if write.changes_entries() {
            s.pending.push_back((seq, write.clone()));
        }
        update(&mut s.tip);
        let queued = Queued { seq, write, done };
        // Sent under the lock, so the queue's order is the sequence order.
        if let Some(Err(mpsc::SendError(q))) = self.tx.as_ref().map(|tx| tx.send(queued)) {
            let why = "the log writer has stopped".to_string();
            s.failed = Some(why.clone());
            drop(s);
            if let Some(done) = q.done {
                done(Err(io::Error::other(why.clone())));
            }
            return Err(why);
        }
        Ok(())
    }

    /// The pointers with every queued write applied.
    pub(crate) fn tip(&self) -> Tip {
        lock(&self.shared).tip.clone()
    }

    /// The writes that change entries and are not yet durable, in order.
    /// A reader takes these *before* it opens its read transaction: a write
    /// leaves this list only after its commit, so each is either here or
    /// in that transaction (or both: replaying a durable write again over
    /// the disk changes nothing).
    pub(crate) fn pending(&self) -> Vec<Write> {
        lock(&self.shared)
            .pending
            .iter()
            .map(|(_, w)| w.clone())
            .collect()
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        // The thread ends once the queue is empty and closed.
        self.tx = None;
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the raft log writer thread panicked");
            }
        }
    }
}

/// The writer thread's own state.
struct Run {
    db: Arc<Database>,
    sealer: Arc<Sealer>,
    shared: Arc<Mutex<Shared>>,
    #[cfg(test)]
    gate: Option<Arc<Gate>>,
}

impl Run {
    /// Commits groups of queued writes until the queue closes.
    fn serve(&self, rx: &mpsc::Receiver<Queued>) {
        while let Ok(first) = rx.recv() {
            let mut group = vec![first];
            group.extend(rx.try_iter().take(MAX_GROUP - 1));
            let failed = lock(&self.shared).failed.clone();
            let res = match failed {
                Some(why) => Err(why),
                None => self.commit(&group),
            };
            {
                let mut s = lock(&self.shared);
                match &res {
                    Ok(()) => {
                        let upto = group.last().map_or(0, |q| q.seq);
                        while s.pending.front().is_some_and(|(seq, _)| *seq <= upto) {
                            s.pending.pop_front();
                        }
                    }
                    Err(why) => {
                        tracing::error!("raft log commit failed: {why}");
                        s.failed = Some(why.clone());
                    }
                }
            }
            for q in group {
                if let Some(done) = q.done {
                    done(res.clone().map_err(io::Error::other));
                }
            }
        }
    }

    /// Applies `group` in order in one write transaction and commits it
    /// durably.
    fn commit(&self, group: &[Queued]) -> Result<(), String> {
        let w = self.db.begin_write().map_err(|e| e.to_string())?;
        for q in group {
            self.apply(&w, &q.write)?;
        }
        #[cfg(test)]
        if let Some(gate) = &self.gate {
            gate.pass(group.len())?;
        }
        w.commit().map_err(|e| e.to_string())
    }

    fn apply(&self, w: &redb::WriteTransaction, write: &Write) -> Result<(), String> {
        let err = |e: &dyn std::fmt::Display| e.to_string();
        let mut log = w.open_table(LOG).map_err(|e| err(&e))?;
        let mut meta = w.open_table(META).map_err(|e| err(&e))?;
        let mut put = |key: &str, v: &dyn SealAs| -> Result<(), String> {
            let bytes = v.sealed(&self.sealer)?;
            meta.insert(key, bytes.as_slice()).map_err(|e| err(&e))?;
            Ok(())
        };
        match write {
            Write::Append(entries) => {
                for e in entries.iter() {
                    let bytes = e.sealed(&self.sealer)?;
                    log.insert(e.log_id.index, bytes.as_slice())
                        .map_err(|e| err(&e))?;
                }
            }
            Write::Vote(v) => put(VOTE, v)?,
            Write::Committed(c) => put(COMMITTED, c)?,
            Write::Truncate(from) => log.retain_in(*from.., |_, _| false).map_err(|e| err(&e))?,
            Write::Purge(upto) => {
                put(PURGED, upto)?;
                log.retain_in(..=upto.index, |_, _| false)
                    .map_err(|e| err(&e))?;
            }
            Write::Reset { last, vote } => {
                log.retain(|_, _| false).map_err(|e| err(&e))?;
                put(PURGED, last)?;
                put(COMMITTED, &Some(*last))?;
                put(VOTE, vote)?;
            }
        }
        Ok(())
    }
}

/// A value stored sealed.
trait SealAs {
    fn sealed(&self, sealer: &Sealer) -> Result<Vec<u8>, String>;
}

impl<T: Serialize> SealAs for T {
    fn sealed(&self, sealer: &Sealer) -> Result<Vec<u8>, String> {
        let plain = serde_json::to_vec(self).map_err(|e| e.to_string())?;
        Ok(sealer.seal(&plain))
    }
}

/// Test hook: holds the writer just before it commits a group, counts the
/// groups it commits, and can fail a commit.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct Gate {
    state: Mutex<GateState>,
    changed: std::sync::Condvar,
}

#[cfg(test)]
#[derive(Debug, Default)]
struct GateState {
    held: bool,
    /// Groups let through while held.
    let_through: usize,
    /// The size of the group the writer holds at the gate, if it does.
    waiting: Option<usize>,
    /// The size of each group let through, in order.
    passed: Vec<usize>,
    fail_next: Option<String>,
}

#[cfg(test)]
impl Gate {
    fn state(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Commits wait at the gate from now on.
    pub(crate) fn hold(&self) {
        self.state().held = true;
    }

    /// Lets every waiting and later commit through.
    pub(crate) fn open(&self) {
        self.state().held = false;
        self.changed.notify_all();
    }

    /// Lets the group waiting at the gate (or the next to come) through
    /// while it stays held, and waits (at most 10 s) until it went.
    pub(crate) fn release_one(&self) {
        let mut s = self.state();
        let want = s.passed.len() + 1;
        s.let_through += 1;
        self.changed.notify_all();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while s.passed.len() < want {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(!left.is_zero(), "the writer did not pass the gate");
            s = self
                .changed
                .wait_timeout(s, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// The next commit fails with `why` (after the gate).
    pub(crate) fn fail_next(&self, why: &str) {
        self.state().fail_next = Some(why.to_string());
    }

    /// Waits (at most 10 s) until the writer holds a group at the gate;
    /// that group's size.
    pub(crate) fn writer_waiting(&self) -> usize {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut s = self.state();
        loop {
            if let Some(n) = s.waiting {
                return n;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(!left.is_zero(), "the writer never reached the gate");
            s = self
                .changed
                .wait_timeout(s, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// The size of each group committed (or failed) so far.
    pub(crate) fn groups(&self) -> Vec<usize> {
        self.state().passed.clone()
    }

    fn pass(&self, group: usize) -> Result<(), String> {
        let mut s = self.state();
        s.waiting = Some(group);
        self.changed.notify_all();
        while s.held && s.let_through == 0 {
            s = self.changed.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        if s.held {
            s.let_through -= 1;
        }
        s.waiting = None;
        s.passed.push(group);
        self.changed.notify_all();
        match s.fail_next.take() {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }
}
