//! t50: a manager that joins after the log was compacted catches up from a
//! snapshot, not by replaying the log from index 1.

use std::time::Duration;

use openraft::storage::RaftLogStorage;
use openraft::RaftLogReader;
use tokio::sync::broadcast::error::TryRecvError;

use super::*;
use crate::error::Result;
use crate::raft::LogStore;
use crate::raft::RaftSettings;
use crate::store::EventAction;

const WAIT: Duration = Duration::from_secs(20);
const WRITES: usize = 120;

#[tokio::test(start_paused = true)]
async fn t50_a_late_manager_catches_up_through_a_snapshot() -> Result<()> {
    let settings = RaftSettings {
        snapshot_interval: 20,
        keep_logs: 5,
    };
    let mut c = TestCluster::with_settings(3, settings).await?;
    let leader = c.wait_leader(WAIT).await?;
    let ids = c.ids();
    for k in 0..WRITES {
        let via = ids[k % ids.len()];
        create_secret(&c.node(via).store(), &format!("s-{k}")).await?;
    }
    // The leader compacted: index 1 is gone from its log.
    let purged = c.wait_for(WAIT, "the leader to purge its log", |c| {
        c.node(leader).metrics().purged.filter(|p| p.index > 1)
    });
    let purged = purged.await?;

    let new = c.start_node().await?;
    let mut commits = c.node(new).store().subscribe();
    c.join_node(new).await?;
    c.wait_synced(WAIT).await?;

    // It has every object.
    let names = secret_names(&c.node(new).store());
    assert_eq!(names.len(), WRITES);
    let m = c.node(new).metrics();
    let snap = m.snapshot.expect("the new manager installed a snapshot");
    assert!(
        snap.index >= purged.index,
        "snapshot {snap} purged {purged}"
    );

    // Its store was restored from the snapshot first, then applied only
    // entries after it.
    let mut seen = Vec::new();
    loop {
        match commits.try_recv() {
            Ok(commit) => {
                let resync = commit
                    .events
                    .iter()
                    .any(|e| e.action == EventAction::Resync);
                seen.push((commit.index, resync));
            }
            Err(TryRecvError::Empty) | Err(TryRecvError::Closed) => break,
            Err(TryRecvError::Lagged(n)) => panic!("the watch lagged by {n}"),
        }
    }
    let first = seen
        .first()
        .copied()
        .expect("the new store applied something");
    assert!(first.1, "the first change was a snapshot restore: {seen:?}");
    assert!(
        seen.iter()
            .skip(1)
            .all(|(i, resync)| !resync && *i > first.0),
        "after the restore only later entries were applied: {seen:?}"
    );

    // Its log on disk starts after the snapshot.
    c.stop(new).await?;
    let dir = c.node(new).dir().join("log.redb");
    let mut log = open_log(&dir, c.node(new).sealer().clone()).await?;
    let state = log
        .get_log_state()
        .await
        .map_err(|e| crate::Error::internal(e.to_string()))?;
    let entries = log
        .try_get_log_entries(0..)
        .await
        .map_err(|e| crate::Error::internal(e.to_string()))?;
    let first_index = entries.first().map(|e| e.log_id.index);
    assert!(
        first_index.is_none_or(|i| i > snap.index),
        "log starts at {first_index:?}, snapshot at {snap}"
    );
    assert!(state
        .last_purged_log_id
        .is_some_and(|p| p.index >= snap.index));
    drop(log);
    c.restart(new).await?;
    c.shutdown().await
}

/// Opens a stopped node's log, again while openraft's last tasks of the
/// previous run still hold it.
async fn open_log(
    path: &std::path::Path,
    sealer: std::sync::Arc<crate::raft::encryption::Sealer>,
) -> Result<LogStore> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match LogStore::open(path, sealer.clone()) {
            Ok(l) => return Ok(l),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(crate::Error::internal(e.to_string()))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}
