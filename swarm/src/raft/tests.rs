use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::model::new_id;
use crate::model::Secret;
use crate::model::StoreObject;
use crate::store::Store;

fn secret(name: &str, data: &str) -> Secret {
    let mut s = Secret::default();
    s.api.id = Some(new_id());
    s.api.spec = Some(crate::model::api::SecretSpec {
        name: Some(name.into()),
        data: Some(data.into()),
        ..Default::default()
    });
    s
}

async fn boot(dir: &Path, key: [u8; 32], init: bool) -> (ShoalRaft, Arc<Store>) {
    let state = SharedState::new(64);
    let sealer = Arc::new(encryption::Sealer::new(key));
    let raft = start(
        dir,
        sealer,
        state.clone(),
        7,
        &RaftSettings::default(),
        network::Solo,
    )
    .await
    .unwrap();
    if init {
        bootstrap(&raft, 7, "127.0.0.1:2377").await.unwrap();
    }
    wait_leader(&raft, 7, Duration::from_secs(10))
        .await
        .unwrap();
    let store = Store::new(
        state.clone(),
        Arc::new(RaftProposer::new(raft.clone(), state, None)),
    );
    (raft, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_restart_and_are_encrypted() {
    let dir = tempfile::tempdir().unwrap();
    let key = [9u8; 32];
    let marker = "plaintext-marker-4f1c2a";
    let s = secret("s1", marker);
    let id = s.id().to_string();
    {
        let (raft, store) = boot(dir.path(), key, true).await;
        store.update(|tx| tx.create(s.clone())).await.unwrap();
        let v = store.view(|tx| tx.get::<Secret>(&id)).unwrap().version();
        assert!(v > 0);
        raft.shutdown().await.unwrap();
    }
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(marker.len()).any(|w| w == marker.as_bytes()));
    }
    let (raft, store) = boot(dir.path(), key, false).await;
    // Committed entries are re-applied before or right after leadership.
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(s) = store.view(|tx| tx.get::<Secret>(&id)) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(got.api.spec.unwrap().data.as_deref(), Some(marker));
    raft.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_restart_restores_state() {
    let dir = tempfile::tempdir().unwrap();
    let key = [3u8; 32];
    let mut ids = Vec::new();
    {
        let (raft, store) = boot(dir.path(), key, true).await;
        for i in 0..20 {
            let s = secret(&format!("s{i}"), "x");
            ids.push(s.id().to_string());
            store.update(|tx| tx.create(s.clone())).await.unwrap();
        }
        raft.trigger().snapshot().await.unwrap();
        let mut metrics = raft.metrics();
        tokio::time::timeout(Duration::from_secs(5), async {
            while metrics.borrow().snapshot.is_none() {
                metrics.changed().await.unwrap();
            }
        })
        .await
        .expect("snapshot built within 5s");
        raft.shutdown().await.unwrap();
    }
    let (raft, store) = boot(dir.path(), key, false).await;
    assert_eq!(store.view(|tx| tx.list::<Secret>().len()), 20);
    raft.shutdown().await.unwrap();
}
