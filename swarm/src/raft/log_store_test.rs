//! The log store on its writer thread: what a slow commit holds back and
//! what it does not, group commit, the order of queued writes, shutdown and
//! a failed commit. A test gate holds the writer just before each commit,
//! so nothing here depends on timing.

use std::io;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use openraft::storage::RaftLogStorage;
use openraft::storage::RaftLogStorageExt;
use openraft::CommittedLeaderId;
use openraft::EntryPayload;
use openraft::LogId;
use openraft::RaftLogReader;
use openraft::Vote;

use super::*;
use crate::raft::log_writer::Gate;
use crate::raft::Proposal;
use crate::raft::StateMachine;
use crate::store::SharedState;

fn sealer() -> Arc<Sealer> {
    Arc::new(Sealer::new([4u8; 32]))
}

fn log_id(term: u64, i: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(term, 7), i)
}

fn entries(term: u64, idx: impl IntoIterator<Item = u64>) -> Vec<Entry> {
    idx.into_iter()
        .map(|i| Entry {
            log_id: log_id(term, i),
            payload: EntryPayload::Normal(Proposal { actions: vec![] }),
        })
        .collect()
}

/// A completion that reports to the returned receiver.
fn notify() -> (Done, mpsc::Receiver<Result<(), io::Error>>) {
    let (tx, rx) = mpsc::channel();
    (
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
        rx,
    )
}

/// Waits (bounded) for a completion.
fn completed(rx: &mpsc::Receiver<Result<(), io::Error>>) -> Result<(), io::Error> {
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the completion came within 10 s")
}

/// Runs a blocking gate call off the runtime's workers.
async fn off<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// The log as raft reads it: entry IDs, then last purged and last log IDs.
async fn seen(log: &mut LogStore) -> (Vec<LogId<NodeId>>, LogState<TypeConfig>) {
    let ids = log
        .try_get_log_entries(..)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.log_id)
        .collect();
    (ids, log.get_log_state().await.unwrap())
}

fn ids(term_and_idx: &[(u64, u64)]) -> Vec<LogId<NodeId>> {
    term_and_idx.iter().map(|(t, i)| log_id(*t, *i)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_fsync_holds_only_what_must_be_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.redb");
    let gate = Arc::new(Gate::default());
    gate.hold();
    let mut log = LogStore::open_gated(&path, sealer(), gate.clone());

    // A vote returns only once its commit is through.
    let mut voter = log.clone();
    let vote = tokio::spawn(async move { voter.save_vote(&Vote::new(3, 7)).await });
    let g = gate.clone();
    assert_eq!(off(move || g.writer_waiting()).await, 1);
    assert!(!vote.is_finished(), "save_vote returned before its commit");

    // Appends return at once; their entries are readable; not flushed.
    let (done_a, a) = notify();
    let (done_b, b) = notify();
    log.append_then(entries(3, 1..=2), done_a).unwrap();
    log.append_then(entries(3, 3..=3), done_b).unwrap();
    let want = ids(&[(3, 1), (3, 2), (3, 3)]);
    let (got, state) = seen(&mut log).await;
    assert_eq!(got, want);
    assert_eq!(state.last_log_id, Some(log_id(3, 3)));

    // The vote's commit goes through; both appends wait behind it as one
    // group.
    let g = gate.clone();
    off(move || g.release_one()).await;
    vote.await.unwrap().unwrap();
    let g = gate.clone();
    assert_eq!(off(move || g.writer_waiting()).await, 2);
    assert!(a.try_recv().is_err() && b.try_recv().is_err());
    assert_eq!(seen(&mut log).await.0, want);

    gate.open();
    completed(&a).unwrap();
    completed(&b).unwrap();
    assert_eq!(gate.groups(), vec![1, 2]);
    assert_eq!(log.len().unwrap(), 3);
    drop(log);

    let mut log = LogStore::open(&path, sealer()).unwrap();
    assert_eq!(seen(&mut log).await.0, want);
    assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(3, 7)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_and_purge_apply_after_the_appends_queued_before_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.redb");
    let gate = Arc::new(Gate::default());
    gate.hold();
    let mut log = LogStore::open_gated(&path, sealer(), gate.clone());
    let (done, first) = notify();
    log.append_then(entries(1, 1..=5), done).unwrap();
    let g = gate.clone();
    assert_eq!(off(move || g.writer_waiting()).await, 1);

    // A new leader's entries replace 4 and 5; 1 and 2 go to a snapshot.
    log.truncate(log_id(1, 4)).await.unwrap();
    assert_eq!(seen(&mut log).await.1.last_log_id, Some(log_id(1, 3)));
    let (done, last) = notify();
    log.append_then(entries(2, 4..=6), done).unwrap();
    log.purge(log_id(1, 2)).await.unwrap();
    log.save_committed(Some(log_id(2, 4))).await.unwrap();
    let want = ids(&[(1, 3), (2, 4), (2, 5), (2, 6)]);
    let check = |(got, state): (Vec<LogId<NodeId>>, LogState<TypeConfig>)| {
        assert_eq!(got, want);
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 2)));
        assert_eq!(state.last_log_id, Some(log_id(2, 6)));
    };
    check(seen(&mut log).await);
    assert_eq!(
        log.try_get_log_entries(4..6)
            .await
            .unwrap()
            .iter()
            .map(|e| e.log_id)
            .collect::<Vec<_>>(),
        ids(&[(2, 4), (2, 5)])
    );

    // Durable one group at a time, the view stays the same.
    let g = gate.clone();
    off(move || g.release_one()).await;
    completed(&first).unwrap();
    check(seen(&mut log).await);
    let g = gate.clone();
    assert_eq!(off(move || g.writer_waiting()).await, 4);
    gate.open();
    completed(&last).unwrap();
    check(seen(&mut log).await);
    assert_eq!(gate.groups(), vec![1, 4]);
    drop(log);

    let (mut log, purged) = LogStore::open_verified(&path, sealer()).unwrap();
    assert_eq!(purged, Some(log_id(1, 2)));
    check(seen(&mut log).await);
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(2, 4)));
}

#[tokio::test]
async fn dropping_the_store_finishes_what_is_queued() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.redb");
    let mut log = LogStore::open(&path, sealer()).unwrap();
    log.save_vote(&Vote::new(1, 7)).await.unwrap();
    // Through openraft's own flush callback.
    log.blocking_append(entries(1, 1..=3)).await.unwrap();
    let reader = log.get_log_reader().await;
    // Queued, nobody waits: the last clone's drop does.
    let (done, _rx) = notify();
    log.append_then(entries(1, 4..=9), done).unwrap();
    log.save_committed(Some(log_id(1, 9))).await.unwrap();
    drop(log);
    drop(reader);

    let (mut log, _) = LogStore::open_verified(&path, sealer()).unwrap();
    let (got, state) = seen(&mut log).await;
    assert_eq!(
        got,
        entries(1, 1..=9)
            .iter()
            .map(|e| e.log_id)
            .collect::<Vec<_>>()
    );
    assert_eq!(state.last_log_id, Some(log_id(1, 9)));
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(1, 9)));
    assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(1, 7)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_fails_its_group_and_every_later_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.redb");
    let gate = Arc::new(Gate::default());
    let mut log = LogStore::open_gated(&path, sealer(), gate.clone());
    log.blocking_append(entries(1, 1..=2)).await.unwrap();

    gate.hold();
    gate.fail_next("No space left on device (os error 28)");
    let (done_a, a) = notify();
    let (done_b, b) = notify();
    log.append_then(entries(1, 3..=3), done_a).unwrap();
    log.append_then(entries(1, 4..=4), done_b).unwrap();
    let g = gate.clone();
    off(move || g.writer_waiting()).await;
    gate.open();
    let err = completed(&a).unwrap_err().to_string();
    assert!(err.contains("No space left on device"), "{err}");
    // The second append was in the same group or in a later one: refused
    // either way, and so is everything after.
    assert!(completed(&b).is_err());
    assert!(log.save_vote(&Vote::new(2, 7)).await.is_err());
    let (done, c) = notify();
    assert!(log.append_then(entries(1, 5..=5), done).is_err());
    assert!(completed(&c).is_err());
    drop(log);

    // Only what was acknowledged is there, and the log checks clean.
    let (mut log, _) = LogStore::open_verified(&path, sealer()).unwrap();
    assert_eq!(seen(&mut log).await.0, ids(&[(1, 1), (1, 2)]));
    assert_eq!(log.read_vote().await.unwrap(), None);
}

/// A fresh log and state machine in a temporary directory, for openraft's
/// storage suite.
struct Fresh;

impl openraft::testing::StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir>
    for Fresh
{
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), SErr> {
        let dir = tempfile::tempdir().map_err(io)?;
        let log = LogStore::open(&dir.path().join("log.redb"), sealer())?;
        let sm = StateMachine::open(dir.path(), sealer(), SharedState::new(8))
            .map_err(|d| write_err(format!("{}: {}", d.0.display(), d.1)))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn passes_openraft_storage_suite() {
    openraft::testing::Suite::test_all(Fresh).unwrap();
}
