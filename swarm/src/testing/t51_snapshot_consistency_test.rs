//! t51: a snapshot holds the state at exactly the log index its meta names,
//! even when it is built while entries keep being applied. A follower that
//! installs it re-applies every entry after that index, so a snapshot that
//! already contains later entries makes them apply twice (objects go back
//! to older versions and watchers see the changes again).

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::error::Result;
use crate::model::new_id;
use crate::model::Secret;
use crate::model::StoreObject;
use crate::raft::Proposal;
use crate::raft::RaftSettings;
use crate::raft::ShoalRaft;
use crate::store::StoreAction;
use crate::store::StoreSnapshot;

const WAIT: Duration = Duration::from_secs(20);
const WRITERS: usize = 8;
const WRITES_EACH: usize = 25;

fn create(name: &str) -> Proposal {
    let mut s = Secret::default();
    s.api.id = Some(new_id());
    s.api.spec = Some(secret_spec(name));
    Proposal {
        actions: vec![StoreAction::Create(s.into_object())],
    }
}

/// The snapshot `raft` serves now, as (index its meta names, index of the
/// last entry its data holds).
async fn snapshot_indexes(raft: &ShoalRaft) -> Option<(u64, u64)> {
    let snap = raft.get_snapshot().await.ok()??;
    let meta = snap.meta.last_log_id.map_or(0, |l| l.index);
    let tables = StoreSnapshot::decode(snap.snapshot.get_ref()).ok()?;
    Some((meta, tables.last_index))
}

// Real time on two threads: on the paused clock's single thread the
// spawned builder runs only once the state machine task waits, after the
// queued entries, and the race does not show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn t51_a_snapshot_built_under_load_matches_its_index() -> Result<()> {
    let settings = RaftSettings {
        snapshot_interval: 10,
        keep_logs: 5,
    };
    let c = TestCluster::with_settings(3, settings).await?;
    let leader = c.wait_leader(WAIT).await?;
    let raft = c.node(leader).raft();
    // Many writes in flight at once, so entries are applied while the
    // state machine task has just handed a builder to openraft.
    let mut tasks = Vec::new();
    let torn = Arc::new(std::sync::Mutex::new(Vec::new()));
    for w in 0..WRITERS {
        let raft = raft.clone();
        let torn = torn.clone();
        tasks.push(tokio::spawn(async move {
            for k in 0..WRITES_EACH {
                raft.client_write(create(&format!("load-{w}-{k}")))
                    .await
                    .expect("write on the leader");
                if let Some((meta, data)) = snapshot_indexes(&raft).await {
                    if data > meta {
                        torn.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((meta, data));
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer task");
    }
    c.wait_synced(WAIT).await?;
    let torn = torn.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(
        torn.is_empty(),
        "snapshots whose data is newer than their meta (meta index, data index): {torn:?}"
    );
    c.shutdown().await
}
