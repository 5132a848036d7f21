use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::dispatcher::Local;
use crate::exec::fake::FakeController;
use crate::exec::fake::FakeExecutor;
use crate::model::api;
use crate::model::api::TaskState;
use crate::model::new_id;
use crate::model::Node;
use crate::model::Task;
use crate::store::Store;

async fn setup(exit: i64) -> (Arc<Store>, String, CancellationToken, FakeController) {
    let store = Store::in_memory();
    let node_id = new_id();
    let mut n = Node::default();
    n.api.id = Some(node_id.clone());
    store.update(|tx| tx.create(n.clone())).await.unwrap();
    let ctl = FakeController::exits(exit);
    let exec = Arc::new(FakeExecutor {
        template: ctl.clone(),
    });
    let disp = Arc::new(Local::new(store.clone(), Duration::from_secs(5)));
    let cancel = CancellationToken::new();
    let connector = Arc::new(crate::dispatcher::Fixed(disp));
    tokio::spawn(run(
        node_id.clone(),
        NodeAddrs::default(),
        connector,
        exec,
        cancel.clone(),
    ));
    (store, node_id, cancel, ctl)
}

async fn assign(store: &Store, node: &str, desired: TaskState) -> String {
    let id = new_id();
    let mut t = Task::default();
    t.api.id = Some(id.clone());
    t.api.node_id = Some(node.into());
    t.api.desired_state = Some(desired);
    t.api.status = Some(api::TaskStatus {
        state: Some(TaskState::ASSIGNED),
        ..Default::default()
    });
    store.update(|tx| tx.create(t.clone())).await.unwrap();
    id
}

async fn wait_state(store: &Store, id: &str, want: TaskState) {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if store.view(|v| v.get::<Task>(id)).map(|t| t.state()) == Some(want) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("task never reached {want:?}"));
}

#[tokio::test]
async fn assigned_task_runs_to_completion_through_the_dispatcher() {
    let (store, node, cancel, ctl) = setup(0).await;
    let id = assign(&store, &node, TaskState::COMPLETE).await;
    wait_state(&store, &id, TaskState::COMPLETE).await;
    let node_state = store
        .view(|v| v.get::<Node>(&node))
        .unwrap()
        .api
        .status
        .unwrap()
        .state;
    assert_eq!(node_state, Some(api::NodeState::READY));
    assert_eq!(
        ctl.calls.lock().unwrap().as_slice(),
        &["prepare", "start", "wait"]
    );
    cancel.cancel();
}

#[tokio::test]
async fn failed_exit_is_reported_with_dockerd_text() {
    let (store, node, cancel, _) = setup(2).await;
    let id = assign(&store, &node, TaskState::RUNNING).await;
    wait_state(&store, &id, TaskState::FAILED).await;
    let err = store
        .view(|v| v.get::<Task>(&id))
        .unwrap()
        .api
        .status
        .unwrap()
        .err;
    assert_eq!(err.as_deref(), Some("task: non-zero exit (2)"));
    cancel.cancel();
}

#[tokio::test]
async fn removed_task_is_removed_on_the_node() {
    let (store, node, cancel, ctl) = setup(0).await;
    let id = assign(&store, &node, TaskState::COMPLETE).await;
    wait_state(&store, &id, TaskState::COMPLETE).await;
    store.update(|tx| tx.delete::<Task>(&id)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), async {
        while !ctl.calls.lock().unwrap().contains(&"remove") {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("controller removed");
    cancel.cancel();
}
