//! t40: concurrent conditional writes through different managers. Each
//! follower builds its transaction on its own copy of the store and the
//! leader commits it only if what it writes is unchanged; the outcomes must
//! be the ones the calls would give one after the other on the leader.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::*;
use crate::controlapi;
use crate::error::Result;
use crate::model::api;
use crate::model::Secret;
use crate::model::StoreObject;
use crate::raft::NodeId;
use crate::store::Store;

const WAIT: Duration = Duration::from_secs(10);

async fn cluster_and_followers() -> Result<(TestCluster, NodeId, NodeId, NodeId)> {
    let c = TestCluster::new(3).await?;
    let leader = c.wait_leader(WAIT).await?;
    let f: Vec<NodeId> = c.ids().into_iter().filter(|id| *id != leader).collect();
    Ok((c, leader, f[0], f[1]))
}

fn labels_of(store: &Store, id: &str) -> HashMap<String, String> {
    store
        .view(|tx| tx.get::<Secret>(id))
        .and_then(|s| s.api.spec)
        .and_then(|s| s.labels)
        .unwrap_or_default()
}

/// Adds label `key` to secret `id`, reading the current version each time
/// the transaction runs (as controllers do).
async fn add_label(store: &Store, id: &str, key: &str, runs: &AtomicUsize) -> Result<()> {
    store
        .update(|tx| {
            runs.fetch_add(1, Ordering::SeqCst);
            let mut s = tx
                .get::<Secret>(id)
                .ok_or_else(|| crate::Error::internal("gone"))?;
            let spec = s.api.spec.get_or_insert_with(Default::default);
            spec.labels
                .get_or_insert_with(Default::default)
                .insert(key.into(), "yes".into());
            tx.update(s)
        })
        .await
}

#[tokio::test(start_paused = true)]
async fn t40_read_modify_writes_on_two_followers_both_apply() -> Result<()> {
    let (c, leader, f1, f2) = cluster_and_followers().await?;
    let id = create_secret(&c.node(leader).store(), "shared").await?;
    c.wait_synced(WAIT).await?;
    let runs = AtomicUsize::new(0);
    let (s1, s2) = (c.node(f1).store(), c.node(f2).store());
    let (r1, r2) = tokio::join!(
        add_label(&s1, &id, "from-f1", &runs),
        add_label(&s2, &id, "from-f2", &runs)
    );
    r1?;
    r2?;
    // Both read the same version; the second to reach the leader was
    // stale, caught up and ran once more.
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    c.wait_synced(WAIT).await?;
    for n in c.ids() {
        let labels = labels_of(&c.node(n).store(), &id);
        assert!(
            labels.contains_key("from-f1") && labels.contains_key("from-f2"),
            "node {n}: {labels:?}"
        );
    }
    c.shutdown().await
}

fn labelled(name: &str, key: &str) -> api::SecretSpec {
    let mut spec = secret_spec(name);
    spec.data = None;
    spec.labels = Some([(key.to_string(), "yes".to_string())].into());
    spec
}

#[tokio::test(start_paused = true)]
async fn t41_updates_with_the_same_read_version_one_wins_one_is_out_of_sequence() -> Result<()> {
    let (c, leader, f1, f2) = cluster_and_followers().await?;
    let id = create_secret(&c.node(leader).store(), "shared").await?;
    c.wait_synced(WAIT).await?;
    // Both clients inspected the secret at this version (`docker secret
    // update` sends it back as `?version=`).
    let version = c
        .node(f1)
        .store()
        .view(|tx| tx.get::<Secret>(&id))
        .map(|s| s.version())
        .expect("replicated");
    let (s1, s2) = (c.node(f1).store(), c.node(f2).store());
    let (r1, r2) = tokio::join!(
        controlapi::secret::update(&s1, &id, version, labelled("shared", "from-f1")),
        controlapi::secret::update(&s2, &id, version, labelled("shared", "from-f2"))
    );
    let (winner, loser) = match (&r1, &r2) {
        (Ok(()), Err(e)) => ("from-f1", e),
        (Err(e), Ok(())) => ("from-f2", e),
        _ => panic!("exactly one update must win: {r1:?} {r2:?}"),
    };
    // The loser gets what the leader's store gives for that version now.
    let on_leader = controlapi::secret::update(
        &c.node(leader).store(),
        &id,
        version,
        labelled("shared", "late"),
    )
    .await
    .expect_err("the version is stale on the leader too");
    assert_eq!(loser.kind(), on_leader.kind());
    assert_eq!(loser.message(), on_leader.message());
    assert_eq!(
        loser.message(),
        "rpc error: code = Unknown desc = update out of sequence"
    );
    c.wait_synced(WAIT).await?;
    for n in c.ids() {
        let labels = labels_of(&c.node(n).store(), &id);
        assert_eq!(labels.keys().collect::<Vec<_>>(), vec![winner], "node {n}");
    }
    c.shutdown().await
}

#[tokio::test(start_paused = true)]
async fn t42_creates_of_one_name_on_two_managers_one_succeeds() -> Result<()> {
    let (c, leader, f1, f2) = cluster_and_followers().await?;
    let (s1, s2) = (c.node(f1).store(), c.node(f2).store());
    let (r1, r2) = tokio::join!(create_secret(&s1, "dup"), create_secret(&s2, "dup"));
    let loser = match (&r1, &r2) {
        (Ok(_), Err(e)) | (Err(e), Ok(_)) => e,
        _ => panic!("exactly one create must win: {r1:?} {r2:?}"),
    };
    let on_leader = create_secret(&c.node(leader).store(), "dup")
        .await
        .expect_err("the name is taken on the leader too");
    assert_eq!(loser.kind(), crate::ErrorKind::NameConflict);
    assert_eq!(loser.message(), on_leader.message());
    c.wait_synced(WAIT).await?;
    for n in c.ids() {
        let count = c
            .node(n)
            .store()
            .view(|tx| tx.list::<Secret>())
            .iter()
            .filter(|s| s.name() == Some("dup"))
            .count();
        assert_eq!(count, 1, "node {n}");
    }
    c.shutdown().await
}
