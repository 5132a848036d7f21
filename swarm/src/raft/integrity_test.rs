//! Damaged raft files: byte flips and cuts anywhere in a real log and
//! snapshot, and a commit torn by a crash. Each damaged file is either
//! refused (with its name in the error) or, when the damage hit bytes no
//! live record uses, loads exactly what was written; never a panic, never a
//! silent load of something else.

use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

use openraft::storage::RaftLogStorage;
use openraft::CommittedLeaderId;
use openraft::EntryPayload;
use openraft::LogId;
use openraft::RaftLogReader;
use openraft::Vote;
use rand::rngs::StdRng;
use rand::Rng;
use rand::SeedableRng;

use super::*;
use crate::raft::network;
use crate::raft::state_machine;
use crate::raft::state_machine::Damage;
use crate::raft::Entry;
use crate::raft::Proposal;
use crate::raft::RaftSettings;
use crate::raft::StateMachine;
use crate::store::SharedState;
use crate::store::StoreSnapshot;

const PAGE: usize = 4096;

fn sealer() -> Arc<Sealer> {
    Arc::new(Sealer::new([5u8; 32]))
}

fn log_id(i: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(1, 7), i)
}

fn entry(i: u64) -> Entry {
    Entry {
        log_id: log_id(i),
        payload: EntryPayload::Normal(Proposal { actions: vec![] }),
    }
}

/// A log of entries 1..=n, committed up to n, written `batch` entries a
/// commit (the fewer commits, the fewer stale page copies in the file).
async fn write_log(path: &Path, n: u64, batch: u64) {
    let mut log = LogStore::open(path, sealer()).unwrap();
    log.save_vote(&Vote::new(1, 7)).await.unwrap();
    for first in (1..=n).step_by(batch as usize) {
        log.write_entries((first..=n.min(first + batch - 1)).map(entry))
            .unwrap();
    }
    log.save_committed(Some(log_id(n))).await.unwrap();
}

/// Everything a start would read from the log, as text to compare.
async fn contents(log: &mut LogStore) -> String {
    let entries = log.try_get_log_entries(..).await.unwrap();
    let vote = log.read_vote().await.unwrap();
    let committed = log.read_committed().await.unwrap();
    serde_json::to_string(&(entries, vote, committed)).unwrap()
}

/// How a damaged copy of the log fared.
#[derive(Debug, Default)]
struct Tally {
    refused: usize,
    intact: usize,
}

/// Opens `bytes` as a log file through the start-time check and sorts the
/// outcome; a load that differs from `want` fails the test.
async fn judge(dir: &Path, case: &str, bytes: &[u8], want: &str, tally: &mut Tally) {
    let path = dir.join(format!("{case}.redb"));
    std::fs::write(&path, bytes).unwrap();
    match open_log(&path, sealer()) {
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&path.display().to_string()) && msg.contains("is damaged"),
                "{case}: refusal does not name the file: {msg}"
            );
            tally.refused += 1;
        }
        Ok((mut log, _)) => {
            let got = contents(&mut log).await;
            assert_eq!(got, want, "{case}: a damaged log loaded something else");
            tally.intact += 1;
        }
    }
    let _ = std::fs::remove_file(&path);
}

/// Offsets of the bytes in pages that differ between `a` and `b` and hold
/// anything: the pages the commits between them wrote. (Most of a redb file is unused or stale
/// page copies, where a flip proves nothing.)
fn written_offsets(a: &[u8], b: &[u8]) -> Vec<usize> {
    let page = |f: &[u8], i: usize| {
        f.get(i * PAGE..((i + 1) * PAGE).min(f.len()))
            .map(<[u8]>::to_vec)
    };
    (0..b.len().div_ceil(PAGE))
        .filter(|i| page(a, *i) != page(b, *i))
        // Pages the file grew by stay zero until used.
        .filter(|i| page(b, *i).is_some_and(|p| p.iter().any(|x| *x != 0)))
        .flat_map(|i| i * PAGE..((i + 1) * PAGE).min(b.len()))
        .collect()
}

/// How many times the default number of cases to try:
/// `SHOAL_FAULT_CASES` (1 in the suite; longer runs in RESULTS.md).
fn scale() -> usize {
    std::env::var("SHOAL_FAULT_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

fn rng() -> (StdRng, u64) {
    let seed = rand::random();
    (StdRng::seed_from_u64(seed), seed)
}

#[tokio::test]
async fn byte_flips_in_the_log_are_refused_or_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.redb");
    let mut log = LogStore::open(&path, sealer()).unwrap();
    log.save_vote(&Vote::new(1, 7)).await.unwrap();
    let empty = std::fs::read(&path).unwrap();
    log.write_entries((1..=120).map(entry)).unwrap();
    log.save_committed(Some(log_id(120))).await.unwrap();
    drop(log);
    let good = std::fs::read(&path).unwrap();
    let want = contents(&mut LogStore::open(&path, sealer()).unwrap()).await;
    let live = written_offsets(&empty, &good);
    let (mut rng, seed) = rng();
    let mut tally = Tally::default();
    for case in 0..200 * scale() {
        let mut bytes = good.clone();
        // The first case hits the file's magic number, which is always read.
        let at = match case {
            0 => 0,
            _ => live[rng.gen_range(0..live.len())],
        };
        bytes[at] ^= 1 << rng.gen_range(0..8);
        judge(
            dir.path(),
            &format!("flip{case}-at{at}-seed{seed}"),
            &bytes,
            &want,
            &mut tally,
        )
        .await;
    }
    eprintln!("log byte flips (seed {seed}): {tally:?}");
    assert!(tally.refused > 0, "no flip was noticed: {tally:?}");
}

#[tokio::test]
async fn a_cut_log_file_is_refused_or_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.redb");
    write_log(&path, 120, 1).await;
    let good = std::fs::read(&path).unwrap();
    let want = contents(&mut LogStore::open(&path, sealer()).unwrap()).await;
    let (mut rng, seed) = rng();
    let mut tally = Tally::default();
    let mut cuts: Vec<usize> = vec![0, 1, 511, PAGE, 2 * PAGE + 17, good.len() - 1];
    cuts.extend((0..40 * scale()).map(|_| rng.gen_range(0..good.len())));
    for cut in cuts {
        judge(
            dir.path(),
            &format!("cut{cut}-seed{seed}"),
            &good[..cut],
            &want,
            &mut tally,
        )
        .await;
    }
    eprintln!("log cuts (seed {seed}): {tally:?}");
    assert!(tally.refused > 0, "no cut was noticed: {tally:?}");
}

/// A crash in the middle of appending entry n+1: any part of that commit's
/// pages reached the disk. Entries up to n were acknowledged (their commit
/// returned) and must all load; n+1 loads whole or not at all.
#[tokio::test]
async fn a_commit_torn_by_a_crash_keeps_every_acknowledged_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.redb");
    write_log(&path, 60, 1).await;
    let log = LogStore::open(&path, sealer()).unwrap();
    // Copied while open: what a crash right now would leave on disk.
    let before = std::fs::read(&path).unwrap();
    log.write_entries([entry(61)]).unwrap();
    let after = std::fs::read(&path).unwrap();
    drop(log);
    let pages = after.len().max(before.len()).div_ceil(PAGE);
    let changed: Vec<usize> = (0..pages)
        .filter(|p| {
            let r = |b: &[u8]| {
                b.get(p * PAGE..((p + 1) * PAGE).min(b.len()))
                    .map(<[u8]>::to_vec)
            };
            r(&before) != r(&after)
        })
        .collect();
    assert!(!changed.is_empty());
    let (mut rng, seed) = rng();
    let (mut with_new, mut without_new) = (0, 0);
    let cases = 40 * scale();
    for case in 0..cases {
        // Each changed page is either written or not; the file keeps the
        // length of the new commit (redb grows it before writing).
        let mut bytes = after.clone();
        for p in &changed {
            if case == 0 || rng.gen_bool(0.5) {
                let end = ((p + 1) * PAGE).min(bytes.len());
                let old = before.get(p * PAGE..end.min(before.len())).unwrap_or(&[]);
                bytes[p * PAGE..p * PAGE + old.len()].copy_from_slice(old);
                bytes[p * PAGE + old.len()..end].fill(0);
            }
        }
        let file = dir.path().join(format!("torn{case}-seed{seed}.redb"));
        std::fs::write(&file, &bytes).unwrap();
        let (mut log, _) = open_log(&file, sealer())
            .unwrap_or_else(|e| panic!("torn case {case} (seed {seed}) refused: {e}"));
        let entries = log.try_get_log_entries(..).await.unwrap();
        let idx: Vec<u64> = entries.iter().map(|e| e.log_id.index).collect();
        match idx.len() {
            60 => without_new += 1,
            61 => with_new += 1,
            _ => panic!("torn case {case} (seed {seed}): entries {idx:?}"),
        }
        assert_eq!(idx, (1..=idx.len() as u64).collect::<Vec<_>>());
        assert_eq!(log.read_committed().await.unwrap(), Some(log_id(60)));
        drop(log);
        std::fs::remove_file(&file).unwrap();
    }
    eprintln!(
        "torn commits (seed {seed}, {} pages changed): {cases} recovered, {with_new} kept the unacknowledged entry, {without_new} dropped it",
        changed.len()
    );
}

/// A snapshot file as the state machine writes it, of an empty store as at
/// entry `at`.
fn write_snapshot_file(dir: &Path, at: u64) -> PathBuf {
    let state = SharedState::new(8);
    let meta = openraft::SnapshotMeta {
        last_log_id: Some(log_id(at)),
        last_membership: Default::default(),
        snapshot_id: format!("1-{at}"),
    };
    let data = state.read(StoreSnapshot::encode).unwrap();
    state_machine::write_snapshot(dir, sealer(), &meta, &data).unwrap();
    dir.join("snapshot.bin")
}

#[test]
fn every_flip_or_cut_of_a_snapshot_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_snapshot_file(dir.path(), 10);
    let good = std::fs::read(&file).unwrap();
    let sm = StateMachine::open(dir.path(), sealer(), SharedState::new(8)).unwrap();
    assert_eq!(sm.last_applied(), Some(log_id(10)));
    let (mut rng, seed) = rng();
    let mut cases: Vec<Vec<u8>> = (0..400 * scale())
        .map(|_| {
            let mut b = good.clone();
            b[rng.gen_range(0..good.len())] ^= 1 << rng.gen_range(0..8);
            b
        })
        .collect();
    cases.extend([0, 5, 27, 28, good.len() / 2, good.len() - 1].map(|n| good[..n].to_vec()));
    let tried = cases.len();
    for (i, bytes) in cases.into_iter().enumerate() {
        std::fs::write(&file, bytes).unwrap();
        match StateMachine::open(dir.path(), sealer(), SharedState::new(8)) {
            Err(Damage(f, what)) => {
                assert_eq!(f, file, "case {i} (seed {seed})");
                assert!(!what.is_empty());
            }
            Ok(_) => panic!("case {i} (seed {seed}): a damaged snapshot loaded"),
        }
    }
    eprintln!("snapshot flips and cuts (seed {seed}): {tried} refused of {tried}");
}

#[tokio::test]
async fn a_compacted_log_without_its_snapshot_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = LogStore::open(&dir.path().join("log.redb"), sealer()).unwrap();
        log.save_vote(&Vote::new(1, 7)).await.unwrap();
        log.write_entries((1..=20).map(entry)).unwrap();
        log.save_committed(Some(log_id(20))).await.unwrap();
        log.purge(log_id(12)).await.unwrap();
    }
    let settings = RaftSettings::default();
    let start = || {
        crate::raft::start(
            dir.path(),
            sealer(),
            SharedState::new(8),
            7,
            &settings,
            network::Solo,
        )
    };
    let err = start().await.err().expect("refused").to_string();
    assert!(
        err.contains("snapshot.bin") && err.contains("compacted up to entry 12"),
        "{err}"
    );
    // With the snapshot that covers the purged entries, it starts.
    write_snapshot_file(dir.path(), 11);
    let err = start().await.err().expect("refused").to_string();
    assert!(err.contains("is missing or older"), "{err}");
    write_snapshot_file(dir.path(), 12);
    let raft = start().await.unwrap();
    raft.shutdown().await.unwrap();
}

/// A crash inside `purge`, after the purged index was recorded and before
/// the entries went: the leftovers are below it and do not count.
#[tokio::test]
async fn entries_left_by_an_interrupted_purge_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.redb");
    {
        let mut log = LogStore::open(&path, sealer()).unwrap();
        log.write_entries((1..=20).map(entry)).unwrap();
        log.save_committed(Some(log_id(20))).await.unwrap();
        log.purge(log_id(12)).await.unwrap();
        // What the interrupted purge would have left.
        log.write_entries((5..=12).map(entry)).unwrap();
    }
    let (_, purged) = open_log(&path, sealer()).unwrap();
    assert_eq!(purged, Some(log_id(12)));
}

#[tokio::test]
async fn a_gap_or_a_lost_tail_in_the_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.redb");
    {
        let mut log = LogStore::open(&path, sealer()).unwrap();
        log.write_entries((1..=5).chain(7..=9).map(entry)).unwrap();
        log.save_committed(Some(log_id(9))).await.unwrap();
    }
    let err = open_log(&path, sealer()).err().unwrap().to_string();
    assert!(err.contains("entries 6 to 6 are missing"), "{err}");
    {
        let mut log = LogStore::open(&path, sealer()).unwrap();
        log.write_entries([entry(6)]).unwrap();
        log.save_committed(Some(log_id(12))).await.unwrap();
    }
    let err = open_log(&path, sealer()).err().unwrap().to_string();
    assert!(
        err.contains("committed but it holds entries only up to 9"),
        "{err}"
    );
    let err = open_log(&path, Arc::new(Sealer::new([6u8; 32])))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("authentication"), "{err}");
}
