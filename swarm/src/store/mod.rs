//! The store: typed tables of every cluster object, transactions, and a watch
//! stream of committed changes.
//!
//! Writes go through [`Store::update`]: under one async mutex the closure runs
//! against the applied state plus an overlay of its own changes, the resulting
//! [`StoreAction`]s are handed to the [`Proposer`] (raft), and the call returns
//! only after they are committed and applied. Readers use [`Store::view`] on the
//! applied state and never block writers for long.

mod action;
pub mod check;
mod local;
mod proposer;
mod snapshot;
pub mod tables;
mod tx;
mod watch;

use std::sync::Arc;
use std::sync::RwLock;

pub use action::apply_actions;
pub use action::StoreAction;
pub use local::LocalProposer;
pub use proposer::Proposed;
pub use proposer::Proposer;
pub use snapshot::StoreSnapshot;
pub use tables::Tables;
use tokio::sync::broadcast;
pub use tx::ReadTx;
pub use tx::Tx;
pub use watch::Commit;
pub use watch::Event;
pub use watch::EventAction;
pub use watch::Watched;

use crate::error::Result;

/// The applied state shared by the store (reads) and the state machine (writes).
#[derive(Debug)]
pub struct SharedState {
    tables: RwLock<Tables>,
    events: broadcast::Sender<Arc<Commit>>,
    applied: tokio::sync::watch::Sender<u64>,
}

impl SharedState {
    /// An empty state with a watch channel of `capacity` commits.
    pub fn new(capacity: usize) -> Arc<Self> {
        let (events, _) = broadcast::channel(capacity);
        Arc::new(SharedState {
            tables: RwLock::new(Tables::default()),
            events,
            applied: tokio::sync::watch::Sender::new(0),
        })
    }

    /// Applies one committed proposal at raft `index` and publishes its events.
    /// Called only by the state machine (or the local proposer), in log order.
    pub fn apply(&self, index: u64, actions: &[StoreAction]) {
        let events = {
            let mut t = self.tables.write().unwrap_or_else(|e| e.into_inner());
            let events = apply_actions(&mut t, index, actions);
            t.last_index = index;
            events
        };
        // No subscribers is fine: nobody is watching yet.
        let _ = self.events.send(Arc::new(Commit { index, events }));
        self.applied.send_replace(index);
    }

    /// Records that the entry at `index` was applied though it holds
    /// nothing for the store (a term's blank entry, a membership change):
    /// whoever waits for it goes on. The tables' own index stays at the
    /// last entry that changed them.
    pub fn applied_without_change(&self, index: u64) {
        self.applied.send_if_modified(|i| {
            let later = index > *i;
            if later {
                *i = index;
            }
            later
        });
    }

    /// Replaces the whole state (snapshot install or restart).
    pub fn restore(&self, tables: Tables) {
        let index = tables.last_index;
        *self.tables.write().unwrap_or_else(|e| e.into_inner()) = tables;
        let _ = self.events.send(Arc::new(Commit {
            index,
            events: vec![Event::resync()],
        }));
        self.applied.send_replace(index);
    }

    /// The index of the last applied entry.
    pub fn applied_index(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Waits until the entry at `index` is applied here; false after `timeout`.
    pub async fn wait_applied(&self, index: u64, timeout: std::time::Duration) -> bool {
        let mut rx = self.applied.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|i| *i >= index))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Reads the tables.
    pub fn read<R>(&self, f: impl FnOnce(&Tables) -> R) -> R {
        let t = self.tables.read().unwrap_or_else(|e| e.into_inner());
        f(&t)
    }
}

/// How long an update is run again after its writes went stale. Bounded
/// by time, not by a count: under a stream of writes on the leader a
/// non-leader's call can go stale many times in a row (the load run saw 16
/// in a row for 1 create in 20).
const STALE_LIMIT: std::time::Duration = std::time::Duration::from_secs(20);
/// Stale tries after which each further one first waits a random while
/// (up to the try's number in milliseconds, at most 100), so calls that
/// keep colliding fall out of step.
const STALE_EAGER: u32 = 3;
/// The most changes [`Store::update_batched`] puts in one raft entry
/// (swarmkit's `MaxChangesPerTransaction`).
pub const MAX_CHANGES_PER_ENTRY: usize = 200;
/// How long an update waits to catch up with the leader before running again.
const CATCH_UP: std::time::Duration = std::time::Duration::from_secs(5);

/// The typed object store of one manager.
pub struct Store {
    state: Arc<SharedState>,
    write: tokio::sync::Mutex<()>,
    proposer: Arc<dyn Proposer>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// A store over `state` whose writes go through `proposer`.
    pub fn new(state: Arc<SharedState>, proposer: Arc<dyn Proposer>) -> Arc<Self> {
        Arc::new(Store {
            state,
            write: tokio::sync::Mutex::new(()),
            proposer,
        })
    }

    /// An in-memory store that applies writes at once (tests, benchmarks).
    pub fn in_memory() -> Arc<Self> {
        let state = SharedState::new(1024);
        let proposer = Arc::new(LocalProposer::new(state.clone()));
        Store::new(state, proposer)
    }

    /// The shared applied state.
    pub fn state(&self) -> &Arc<SharedState> {
        &self.state
    }

    /// Runs `f` over a consistent read view of the applied state.
    pub fn view<R>(&self, f: impl FnOnce(&ReadTx<'_>) -> R) -> R {
        self.state.read(|t| f(&ReadTx::new(t)))
    }

    /// Waits until this node has applied every write acknowledged anywhere
    /// before the call. A manager that does not lead serves reads from its
    /// own copy, which may not yet hold a write just acknowledged through
    /// another manager (dockerd sends every read to the leader instead).
    /// False when it could not (no leader, or not caught up in time).
    pub async fn catch_up(&self) -> bool {
        match self.proposer.read_index().await {
            Ok(None) => true,
            Ok(Some(index)) => self.state.wait_applied(index, CATCH_UP).await,
            Err(_) => false,
        }
    }

    /// Runs the read `f`; when it finds nothing, once more after
    /// [`Self::catch_up`], so an object created through another manager
    /// just before is found here too. Reads that find their object pay
    /// nothing.
    pub async fn read_fresh<R>(&self, f: impl Fn(&Store) -> Result<R>) -> Result<R> {
        match f(self) {
            Err(e) if e.kind() == crate::ErrorKind::NotFound => {
                if !self.catch_up().await {
                    return Err(e);
                }
                f(self)
            }
            r => r,
        }
    }

    /// The read index another manager asked this one for
    /// (`Cluster.ReadIndex`): fails unless this node leads.
    pub async fn read_index_here(&self) -> Result<u64> {
        self.proposer.read_index_here().await
    }

    /// Runs `f` in a write transaction and commits its changes.
    ///
    /// Transactions are serialized. When this returns `Ok`, every change is
    /// committed, durable (per the proposer) and applied, so a following
    /// `view` sees it. If `f` fails nothing is written.
    ///
    /// On a manager that does not lead, the leader commits the changes only
    /// if what they write is unchanged there; otherwise this node catches
    /// up and runs `f` again (so `f` may run more than once).
    pub async fn update<R>(&self, f: impl FnMut(&mut Tx<'_>) -> Result<R>) -> Result<R> {
        self.commit(f, usize::MAX).await
    }

    /// [`Self::update`] for the reconcilers (orchestrator, scheduler, task
    /// status), whose changes each stand alone: a transaction of more than
    /// [`MAX_CHANGES_PER_ENTRY`] changes is committed as several raft
    /// entries of at most that many, in order (swarmkit's `store.Batch`).
    /// One entry of a thousand tasks is megabytes, and an AppendEntries
    /// must reach a follower within a heartbeat interval: on a loaded
    /// machine such an entry never did, and the cluster lost its leader for
    /// good. Readers may see the first entries before the last; a change
    /// that went stale after some entries committed runs `f` again, which
    /// finds those already done.
    pub async fn update_batched<R>(&self, f: impl FnMut(&mut Tx<'_>) -> Result<R>) -> Result<R> {
        self.commit(f, MAX_CHANGES_PER_ENTRY).await
    }

    async fn commit<R>(
        &self,
        mut f: impl FnMut(&mut Tx<'_>) -> Result<R>,
        per_entry: usize,
    ) -> Result<R> {
        let _guard = self.write.lock().await;
        let deadline = tokio::time::Instant::now() + STALE_LIMIT;
        let mut tries = 0u32;
        let mut caught_up = false;
        while tries == 0 || tokio::time::Instant::now() < deadline {
            tries += 1;
            if tries > STALE_EAGER {
                let ms =
                    rand::Rng::gen_range(&mut rand::thread_rng(), 0..=u64::from(tries).min(100));
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            }
            let (result, actions, base) = self.state.read(|t| {
                let mut tx = Tx::new(t);
                let r = f(&mut tx);
                (r, tx.into_actions(), t.last_index)
            });
            let r = match result {
                // What this call names may have been created through another
                // manager a moment ago: look again once caught up.
                Err(e) if e.kind() == crate::ErrorKind::NotFound && !caught_up => {
                    caught_up = true;
                    if self.catch_up().await {
                        continue;
                    }
                    return Err(e);
                }
                r => r?,
            };
            if actions.is_empty() {
                return Ok(r);
            }
            match self.propose_in_entries(base, actions, per_entry).await? {
                Proposed::Committed(_) => return Ok(r),
                Proposed::Stale(index) => {
                    self.state.wait_applied(index, CATCH_UP).await;
                }
            }
        }
        Err(crate::Error::new(
            crate::ErrorKind::Unavailable,
            "rpc error: code = Unavailable desc = the store kept changing under this update; try again",
        ))
    }

    /// Proposes `actions` as entries of at most `per_entry` actions each,
    /// in order; stops at the first that is stale.
    async fn propose_in_entries(
        &self,
        base: u64,
        mut actions: Vec<StoreAction>,
        per_entry: usize,
    ) -> Result<Proposed> {
        if actions.len() <= per_entry {
            return self.proposer.propose(base, actions).await;
        }
        let mut last = Proposed::Committed(base);
        while !actions.is_empty() {
            let rest = actions.split_off(per_entry.min(actions.len()));
            last = self.proposer.propose(base, actions).await?;
            if matches!(last, Proposed::Stale(_)) {
                break;
            }
            actions = rest;
        }
        Ok(last)
    }

    /// Commits a transaction another manager built on its state at index
    /// `base` (`Cluster.Propose`) if it still holds on this node's state;
    /// never forwards it further.
    pub async fn propose_checked(&self, base: u64, actions: Vec<StoreAction>) -> Result<Proposed> {
        let _guard = self.write.lock().await;
        let (valid, index) = self
            .state
            .read(|t| (check::still_valid(t, base, &actions), t.last_index));
        if !valid {
            return Ok(Proposed::Stale(index));
        }
        self.proposer.propose_here(index, actions).await
    }

    /// Subscribes to committed changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Commit>> {
        self.state.events.subscribe()
    }

    /// Subscribes and reads the state atomically: no commit falls between them.
    pub fn view_and_watch<R>(
        &self,
        f: impl FnOnce(&ReadTx<'_>) -> R,
    ) -> (R, broadcast::Receiver<Arc<Commit>>) {
        // Holding the read lock while subscribing means no apply can run between.
        self.state.read(|t| {
            let rx = self.state.events.subscribe();
            (f(&ReadTx::new(t)), rx)
        })
    }
}

#[cfg(test)]
mod tests;
