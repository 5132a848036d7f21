//! t80: slow links. Managers in different sites see round trips of tens to
//! hundreds of milliseconds; the cluster must still commit writes.

use std::time::Duration;

use super::*;
use crate::error::Result;
use crate::raft::HEARTBEAT_MS;

const WAIT: Duration = Duration::from_secs(30);

/// Every link adds `leg` each way; a write through every manager must
/// succeed.
async fn writes_commit_with_latency(leg: Duration) -> Result<()> {
    let c = TestCluster::new(3).await?;
    c.router().faults().set_latency(leg);
    for id in c.ids() {
        let name = format!("slow-{id}");
        let r = tokio::time::timeout(WAIT, create_secret(&c.node(id).store(), &name)).await;
        let r = r.unwrap_or_else(|_| panic!("{name} hung past {WAIT:?}"));
        r.unwrap_or_else(|e| panic!("{name} with {leg:?} per leg: {e}"));
    }
    c.shutdown().await
}

#[tokio::test(start_paused = true)]
async fn t80_writes_commit_over_links_with_80ms_round_trips() -> Result<()> {
    writes_commit_with_latency(Duration::from_millis(40)).await
}

/// openraft 0.9 gives each AppendEntries the heartbeat interval as its
/// deadline, so the heartbeat must leave room for a slow link: round trips
/// of 120 ms (and the follower's fsync) still commit.
#[tokio::test(start_paused = true)]
async fn t81_writes_commit_over_links_with_120ms_round_trips() -> Result<()> {
    const { assert!(HEARTBEAT_MS > 120) };
    writes_commit_with_latency(Duration::from_millis(60)).await
}
