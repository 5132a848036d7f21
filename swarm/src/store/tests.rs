use super::*;
use crate::model::new_id;
use crate::model::Secret;
use crate::model::Service;
use crate::model::StoreObject;
use crate::model::Task;
use crate::ErrorKind;

fn service(name: &str) -> Service {
    let mut s = Service::default();
    s.api.id = Some(new_id());
    s.api.spec = Some(crate::model::api::ServiceSpec {
        name: Some(name.into()),
        ..Default::default()
    });
    s
}

#[tokio::test]
async fn create_then_read_sets_version_and_times() {
    let store = Store::in_memory();
    let s = service("web");
    let id = s.id().to_string();
    store.update(|tx| tx.create(s.clone())).await.unwrap();
    let got = store.view(|tx| tx.get::<Service>(&id)).unwrap();
    assert_eq!(got.version(), 1);
    assert!(got.api.created_at.is_some());
    assert_eq!(got.api.created_at, got.api.updated_at);
}

#[tokio::test]
async fn stale_version_is_out_of_sequence() {
    let store = Store::in_memory();
    let s = service("web");
    let id = s.id().to_string();
    store.update(|tx| tx.create(s.clone())).await.unwrap();
    let cur = store.view(|tx| tx.get::<Service>(&id)).unwrap();
    store.update(|tx| tx.update(cur.clone())).await.unwrap();
    let err = store.update(|tx| tx.update(cur.clone())).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unknown);
    assert_eq!(
        err.message(),
        "rpc error: code = Unknown desc = update out of sequence"
    );
}

#[tokio::test]
async fn duplicate_names_conflict() {
    let store = Store::in_memory();
    store.update(|tx| tx.create(service("dup"))).await.unwrap();
    let err = store
        .update(|tx| tx.create(service("dup")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NameConflict);
    // Names are per kind: a secret may share a service's name.
    let mut sec = Secret::default();
    sec.api.id = Some(new_id());
    sec.api.spec = Some(crate::model::api::SecretSpec {
        name: Some("dup".into()),
        ..Default::default()
    });
    store.update(|tx| tx.create(sec.clone())).await.unwrap();
}

#[tokio::test]
async fn failed_transaction_writes_nothing() {
    let store = Store::in_memory();
    let r: crate::Result<()> = store
        .update(|tx| {
            tx.create(service("a"))?;
            Err(crate::Error::invalid("no"))
        })
        .await;
    assert!(r.is_err());
    assert_eq!(store.view(|tx| tx.list::<Service>().len()), 0);
}

#[tokio::test]
async fn tx_sees_its_own_writes_and_indexes_follow() {
    let store = Store::in_memory();
    let s = service("web");
    let sid = s.id().to_string();
    store
        .update(|tx| {
            tx.create(s.clone())?;
            for slot in 1..=3 {
                let mut t = Task::default();
                t.api.id = Some(new_id());
                t.api.service_id = Some(sid.clone());
                t.api.slot = Some(slot);
                tx.create(t)?;
            }
            assert_eq!(tx.tasks_by_service(&sid).len(), 3);
            Ok(())
        })
        .await
        .unwrap();
    let mut rx = store.subscribe();
    let tasks = store.view(|tx| tx.tasks_by_service(&sid));
    assert_eq!(tasks.len(), 3);
    let victim = tasks[0].id().to_string();
    store.update(|tx| tx.delete::<Task>(&victim)).await.unwrap();
    assert_eq!(store.view(|tx| tx.tasks_by_service(&sid).len()), 2);
    let commit = rx.recv().await.unwrap();
    assert_eq!(commit.events.len(), 1);
    assert_eq!(commit.events[0].action, EventAction::Remove);
}

#[tokio::test]
async fn create_update_delete_in_one_tx_collapses() {
    let store = Store::in_memory();
    let s = service("web");
    let id = s.id().to_string();
    store
        .update(|tx| {
            tx.create(s.clone())?;
            let mut cur = tx.get::<Service>(&id).unwrap();
            cur.spec_version = 7;
            tx.update(cur)?;
            Ok(())
        })
        .await
        .unwrap();
    let got = store.view(|tx| tx.get::<Service>(&id)).unwrap();
    assert_eq!(got.spec_version, 7);
    store
        .update(|tx| {
            let mut t = Task::default();
            t.api.id = Some("t1".into());
            tx.create(t)?;
            tx.delete::<Task>("t1")
        })
        .await
        .unwrap();
    assert!(store.view(|tx| tx.get::<Task>("t1")).is_none());
}

#[test]
fn snapshot_round_trip_rebuilds_indexes() {
    let mut t = Tables::default();
    let mut task = Task::default();
    task.api.id = Some("t1".into());
    task.api.service_id = Some("s1".into());
    task.api.node_id = Some("n1".into());
    t.put(task.into_object());
    t.last_index = 9;
    let bytes = StoreSnapshot::encode(&t).unwrap();
    let back = StoreSnapshot::decode(&bytes).unwrap();
    assert_eq!(back.last_index, 9);
    assert_eq!(back.task_ids_by_node("n1").count(), 1);
    assert_eq!(back.task_ids_by_service("s1").count(), 1);
}

#[tokio::test]
async fn a_batched_update_commits_large_transactions_in_bounded_entries() {
    let store = Store::in_memory();
    let n = 2 * MAX_CHANGES_PER_ENTRY + 50;
    let made: Vec<Service> = (0..n).map(|i| service(&format!("s{i}"))).collect();
    let mut rx = store.subscribe();
    store
        .update_batched(|tx| {
            for s in &made {
                tx.create(s.clone())?;
            }
            Ok(())
        })
        .await
        .unwrap();
    // Every change is there, in three entries of at most the bound, in order.
    let versions: Vec<u64> = made
        .iter()
        .map(|s| {
            store
                .view(|tx| tx.get::<Service>(s.id()))
                .unwrap()
                .version()
        })
        .collect();
    assert_eq!(versions[0], 1);
    assert_eq!(versions[MAX_CHANGES_PER_ENTRY - 1], 1);
    assert_eq!(versions[MAX_CHANGES_PER_ENTRY], 2);
    assert_eq!(versions[n - 1], 3);
    let sizes: Vec<usize> = (0..3)
        .map(|_| rx.try_recv().unwrap().events.len())
        .collect();
    assert_eq!(
        sizes,
        vec![MAX_CHANGES_PER_ENTRY, MAX_CHANGES_PER_ENTRY, 50]
    );
    // A plain update stays one entry, whatever its size.
    let more: Vec<Service> = (0..n).map(|i| service(&format!("t{i}"))).collect();
    store
        .update(|tx| {
            for s in &more {
                tx.create(s.clone())?;
            }
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(rx.try_recv().unwrap().events.len(), n);
}
