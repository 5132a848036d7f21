use std::time::Duration;

use super::*;
use crate::model::api;
use crate::model::new_id;
use crate::model::Secret;
use crate::model::StoreObject;

fn service(name: &str, replicas: i64) -> Service {
    let mut s = Service::default();
    s.api.id = Some(new_id());
    s.api.spec = Some(api::ServiceSpec {
        name: Some(name.into()),
        mode: Some(api::ServiceSpecMode {
            replicated: Some(api::ServiceSpecModeReplicated {
                replicas: Some(replicas),
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    s
}

async fn next(rx: &mut tokio::sync::broadcast::Receiver<Message>) -> Message {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an event in time")
        .expect("the bus is open")
}

#[tokio::test]
async fn service_and_secret_changes_become_swarm_events() {
    let store = Store::in_memory();
    let bus = EventBus::new();
    let cancel = CancellationToken::new();
    let mut rx = bus.subscribe().rx;
    let task = tokio::spawn(run(store.clone(), bus.clone(), cancel.clone()));
    // On this single-threaded runtime the watcher runs up to its first wait
    // (it has subscribed by then) before this test goes on.
    tokio::task::yield_now().await;
    let s = service("web", 1);
    let id = s.id().to_string();
    store.update(|tx| tx.create(s.clone())).await.unwrap();
    let m = next(&mut rx).await;
    assert_eq!((m.kind.as_str(), m.action.as_str()), ("service", "create"));
    assert_eq!(m.scope, "swarm");
    assert_eq!(m.actor.id, id);
    assert_eq!(m.actor.attributes["name"], "web");
    assert!(m.time > 0 && m.time_nano / 1_000_000_000 == m.time);

    let mut cur = store.view(|tx| tx.get::<Service>(&id)).unwrap();
    if let Some(spec) = cur.api.spec.as_mut() {
        spec.mode = service("web", 3).api.spec.unwrap().mode;
    }
    store.update(|tx| tx.update(cur.clone())).await.unwrap();
    let m = next(&mut rx).await;
    assert_eq!(m.action, "update");
    assert_eq!(m.actor.attributes["replicas.old"], "1");
    assert_eq!(m.actor.attributes["replicas.new"], "3");

    store.update(|tx| tx.delete::<Service>(&id)).await.unwrap();
    let m = next(&mut rx).await;
    assert_eq!(
        (m.action.as_str(), m.actor.attributes["name"].as_str()),
        ("remove", "web")
    );

    let mut sec = Secret::default();
    sec.api.id = Some(new_id());
    sec.api.spec = Some(api::SecretSpec {
        name: Some("pw".into()),
        ..Default::default()
    });
    store.update(|tx| tx.create(sec.clone())).await.unwrap();
    let m = next(&mut rx).await;
    assert_eq!((m.kind.as_str(), m.action.as_str()), ("secret", "create"));
    assert_eq!(m.actor.attributes["name"], "pw");
    cancel.cancel();
    task.await.unwrap();
}

#[test]
fn node_updates_say_what_changed() {
    let mut seen = Seen::default();
    let mut n = Node::default();
    n.api.id = Some("n1".into());
    n.api.description = Some(api::NodeDescription {
        hostname: Some("host1".into()),
        ..Default::default()
    });
    n.api.spec = Some(api::NodeSpec {
        availability: Some(api::NodeSpecAvailabilityEnum::ACTIVE),
        ..Default::default()
    });
    let m = seen
        .event(EventAction::Create, &Object::Node(Box::new(n.clone())), 7)
        .unwrap();
    assert_eq!(m.actor.attributes["name"], "host1");
    // No creation time on the object: the fallback stamps it.
    assert_eq!(m.time_nano, 7);
    n.api.spec.as_mut().unwrap().availability = Some(api::NodeSpecAvailabilityEnum::DRAIN);
    let m = seen
        .event(EventAction::Update, &Object::Node(Box::new(n)), 8)
        .unwrap();
    assert_eq!(m.actor.attributes["availability.old"], "active");
    assert_eq!(m.actor.attributes["availability.new"], "drain");
    assert!(!m.actor.attributes.contains_key("state.new"));
}

#[test]
fn tasks_and_deletion_marks_make_no_event() {
    let mut seen = Seen::default();
    let t = crate::model::Task::default();
    assert!(seen
        .event(EventAction::Create, &Object::Task(Box::new(t)), 1)
        .is_none());
    let mut s = service("web", 1);
    s.pending_delete = true;
    assert!(seen
        .event(EventAction::Update, &Object::Service(Box::new(s)), 1)
        .is_none());
}
