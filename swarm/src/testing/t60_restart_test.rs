//! t60: every manager stops and starts again on its own directory (a power
//! cut of the whole swarm): the state is the same, a leader is elected
//! again, and writes work through every manager.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::time::Duration;

use super::*;
use crate::error::Result;
use crate::model::Secret;
use crate::model::StoreObject;
use crate::raft::NodeId;
use crate::raft::RaftSettings;

const WAIT: Duration = Duration::from_secs(20);

/// Every secret on node `id`: ID to (name, version).
fn secrets(c: &TestCluster, id: NodeId) -> BTreeMap<String, (String, u64)> {
    c.node(id).store().view(|tx| {
        tx.list::<Secret>()
            .into_iter()
            .map(|s| {
                let name = s.name().unwrap_or("").to_string();
                (s.id().to_string(), (name, s.version()))
            })
            .collect()
    })
}

async fn restart_everything(settings: RaftSettings, writes: usize) -> Result<()> {
    let mut c = TestCluster::with_settings(3, settings).await?;
    let ids = c.ids();
    for k in 0..writes {
        create_secret(&c.node(ids[k % ids.len()]).store(), &format!("before-{k}")).await?;
    }
    c.wait_synced(WAIT).await?;
    let before = secrets(&c, ids[0]);
    assert_eq!(before.len(), writes);

    c.stop_all().await?;
    c.restart_all().await?;
    let leader = c.wait_leader(WAIT).await?;
    c.wait_synced(WAIT).await?;
    for id in c.ids() {
        assert_eq!(secrets(&c, id), before, "node {id} after the restart");
    }

    for id in c.ids() {
        create_secret(&c.node(id).store(), &format!("after-{id}")).await?;
    }
    c.wait_synced(WAIT).await?;
    let want: BTreeSet<String> = ids.iter().map(|id| format!("after-{id}")).collect();
    for id in c.ids() {
        let names = secret_names(&c.node(id).store());
        assert!(want.is_subset(&names), "node {id} (leader {leader})");
        assert_eq!(names.len(), writes + ids.len());
    }
    c.shutdown().await
}

#[tokio::test(start_paused = true)]
async fn t60_whole_cluster_restart_keeps_state_and_takes_writes() -> Result<()> {
    restart_everything(RaftSettings::default(), 30).await
}

/// The same with snapshots and a compacted log behind the state.
#[tokio::test(start_paused = true)]
async fn t61_whole_cluster_restart_from_snapshots() -> Result<()> {
    let settings = RaftSettings {
        snapshot_interval: 10,
        keep_logs: 3,
    };
    restart_everything(settings, 45).await
}
