//! t10: writes on a healthy cluster. Whichever manager takes a write, every
//! manager sees it, and the manager that took it sees it at once.

use std::time::Duration;

use super::*;
use crate::error::Result;
use crate::model::Secret;
use crate::model::StoreObject;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(start_paused = true)]
async fn t10_a_write_through_each_manager_is_visible_on_all() -> Result<()> {
    let c = TestCluster::new(3).await?;
    let leader = c.wait_leader(WAIT).await?;
    let mut written = Vec::new();
    for id in c.ids() {
        let name = format!("via-node-{id}");
        let store = c.node(id).store();
        let sid = create_secret(&store, &name).await?;
        let version = store
            .view(|tx| tx.get::<Secret>(&sid))
            .map(|s| s.version())
            .expect("the manager that took the write has applied it");
        for other in c.ids() {
            c.wait_applied(other, version, WAIT).await?;
            assert!(
                secret_names(&c.node(other).store()).contains(&name),
                "{name} (written on node {id}, leader {leader}) is missing on node {other}"
            );
        }
        written.push(name);
    }
    for id in c.ids() {
        let names = secret_names(&c.node(id).store());
        assert_eq!(names.len(), 3, "node {id} has exactly the three secrets");
        assert!(written.iter().all(|n| names.contains(n)));
    }
    c.shutdown().await
}

/// The follower's replication lags: the leader's calls to it take 30 ms a
/// leg, while its own forwarded writes are answered at once. A write
/// through it still returns only once it has applied the write itself.
#[tokio::test(start_paused = true)]
async fn t11_a_follower_write_returns_after_the_follower_applied_it() -> Result<()> {
    let c = TestCluster::new(3).await?;
    let leader = c.wait_leader(WAIT).await?;
    let follower = c.a_follower(leader);
    let lag = Duration::from_millis(30);
    c.router()
        .faults()
        .set_link_latency(leader, follower, Some(lag));
    let store = c.node(follower).store();
    for i in 0..5 {
        let name = format!("ryw-{i}");
        let started = tokio::time::Instant::now();
        let sid = create_secret(&store, &name).await?;
        // No wait here: the write has returned, so the follower has it.
        let got = store.view(|tx| tx.get::<Secret>(&sid));
        let got = got.expect("read-your-writes on the follower");
        assert!(c.node(follower).metrics().last_applied.map(|l| l.index) >= Some(got.version()));
        // The leader's own copy was committed earlier: the call did wait
        // for the lagging replication, not only for the leader.
        assert!(
            started.elapsed() >= lag,
            "the write returned before the follower could have applied it"
        );
    }
    c.shutdown().await
}

/// The follower's replication stalls for good (every append to it times
/// out) while the leader commits with the third manager. A write through
/// the follower is committed, but the follower never applies it: the call
/// must not report success to a caller who then cannot read it there.
#[tokio::test(start_paused = true)]

async fn t12_a_follower_that_cannot_apply_does_not_acknowledge() -> Result<()> {
    let c = TestCluster::new(3).await?;
    let leader = c.wait_leader(WAIT).await?;
    let follower = c.a_follower(leader);
    // Longer than openraft's append deadline (the heartbeat interval):
    // every append to the follower times out; its own calls are fast.
    c.router()
        .faults()
        .set_link_latency(leader, follower, Some(Duration::from_millis(200)));
    let store = c.node(follower).store();
    let r = create_secret(&store, "unapplied").await;
    let visible = secret_names(&store).contains("unapplied");
    assert!(
        r.is_err() || visible,
        "the write returned Ok but the follower does not show it"
    );
    c.shutdown().await
}

/// A follower's replication lags 30 ms a leg. A secret written through the
/// leader is acknowledged before the follower has it; a read through the
/// follower right after must still find it (dockerd sends every read to
/// the leader; shoal reads its own copy and, finding nothing, catches up
/// with the leader's read index first). The same for an update by name.
#[tokio::test(start_paused = true)]
async fn t13_a_follower_finds_what_another_manager_just_acknowledged() -> Result<()> {
    let c = TestCluster::new(3).await?;
    let leader = c.wait_leader(WAIT).await?;
    let follower = c.a_follower(leader);
    c.router()
        .faults()
        .set_link_latency(leader, follower, Some(Duration::from_millis(30)));
    let (on_leader, on_follower) = (c.node(leader).store(), c.node(follower).store());
    let mut unseen_at_once = 0;
    for i in 0..5 {
        let name = format!("fresh-{i}");
        create_secret(&on_leader, &name).await?;
        if !secret_names(&on_follower).contains(&name) {
            unseen_at_once += 1;
        }
        let got = on_follower
            .read_fresh(|s| crate::controlapi::secret::get(s, &name))
            .await?;
        assert_eq!(got.api.spec.and_then(|s| s.name), Some(name.clone()));
        // A write naming it through the follower finds it as well.
        let labelled = format!("{name}-again");
        create_secret(&on_leader, &labelled).await?;
        crate::controlapi::secret::remove(&on_follower, &labelled).await?;
    }
    // The lag is real: without the catch-up these reads would have failed.
    assert!(
        unseen_at_once > 0,
        "the follower had every secret at once: the test shows nothing"
    );
    c.shutdown().await
}
