//! Allocator passes over an in-memory store.

use super::*;
use crate::model::Cluster;
use crate::model::StoreObject;

async fn store_with_cluster() -> Arc<Store> {
    let store = Store::in_memory();
    let mut c = Cluster::default();
    c.api.id = Some(crate::model::new_id());
    store.update(|tx| tx.create(c.clone())).await.unwrap();
    store
}

fn service_spec(name: &str, published: Option<i64>) -> api::ServiceSpec {
    api::ServiceSpec {
        name: Some(name.into()),
        task_template: Some(api::TaskSpec::default()),
        endpoint_spec: Some(api::EndpointSpec {
            mode: Some(api::EndpointSpecModeEnum::VIP),
            ports: Some(vec![api::EndpointPortConfig {
                target_port: Some(80),
                published_port: published,
                ..Default::default()
            }]),
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn first_pass_creates_ingress_and_second_writes_nothing() {
    let store = store_with_cluster().await;
    assert_eq!(store.update(allocate_all).await.unwrap(), 1);
    let nets = store.view(|v| v.list::<Network>());
    assert_eq!(nets.len(), 1);
    assert_eq!(nets[0].api.name.as_deref(), Some("ingress"));
    assert_eq!(
        network::subnet_of(&nets[0]).unwrap().to_string(),
        "10.0.0.0/24"
    );
    assert_eq!(store.update(allocate_all).await.unwrap(), 0);
}

#[tokio::test]
async fn no_cluster_no_work() {
    let store = Store::in_memory();
    assert_eq!(store.update(allocate_all).await.unwrap(), 0);
}

#[tokio::test]
async fn services_get_vips_and_ports_and_tasks_go_pending() {
    let store = store_with_cluster().await;
    store.update(allocate_all).await.unwrap();
    let mut svc = Service::default();
    let sid = crate::model::new_id();
    svc.api.id = Some(sid.clone());
    svc.api.spec = Some(service_spec("web", None));
    let mut task = Task::default();
    let tid = crate::model::new_id();
    task.api.id = Some(tid.clone());
    task.api.service_id = Some(sid.clone());
    task.api.desired_state = Some(api::TaskState::RUNNING);
    task.api.status = Some(api::TaskStatus {
        state: Some(api::TaskState::NEW),
        ..Default::default()
    });
    store
        .update(|tx| {
            tx.create(svc.clone())?;
            tx.create(task.clone())
        })
        .await
        .unwrap();
    assert_eq!(store.update(allocate_all).await.unwrap(), 2);
    let s = store.view(|v| v.get::<Service>(&sid)).unwrap();
    let ep = s.api.endpoint.clone().unwrap();
    assert_eq!(ep.ports.clone().unwrap()[0].published_port, Some(30000));
    assert_eq!(
        ep.virtual_ips.unwrap()[0].addr.as_deref(),
        Some("10.0.0.2/24")
    );
    let t = store.view(|v| v.get::<Task>(&tid)).unwrap();
    assert_eq!(t.state(), api::TaskState::PENDING);
    assert_eq!(
        t.api.status.unwrap().message.as_deref(),
        Some(PENDING_MESSAGE)
    );
    assert_eq!(t.networks[0].addresses, vec!["10.0.0.3/24".to_string()]);
    assert_eq!(store.update(allocate_all).await.unwrap(), 0);
    let v = s.version();
    assert!(v > 0);
}

#[tokio::test]
async fn run_loop_allocates_and_stops_on_cancel() {
    let store = store_with_cluster().await;
    let cancel = CancellationToken::new();
    let h = tokio::spawn(run(store.clone(), cancel.clone()));
    for _ in 0..200 {
        if store.view(|v| v.list::<Network>().len()) == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(store.view(|v| v.list::<Network>().len()), 1);
    cancel.cancel();
    h.await.unwrap();
}

#[tokio::test]
async fn every_node_gets_its_own_ingress_address_once() {
    let store = store_with_cluster().await;
    store.update(allocate_all).await.unwrap();
    for _ in 0..3 {
        let mut n = Node::default();
        n.api.id = Some(crate::model::new_id());
        store.update(|tx| tx.create(n.clone())).await.unwrap();
    }
    assert_eq!(store.update(allocate_all).await.unwrap(), 3);
    let mut addrs: Vec<String> = store.view(|v| {
        v.list::<Node>()
            .into_iter()
            .filter_map(|n| n.ingress_address)
            .collect()
    });
    addrs.sort();
    // The gateway (.1) is the network's; nodes take the next ones.
    assert_eq!(addrs, vec!["10.0.0.2/24", "10.0.0.3/24", "10.0.0.4/24"]);
    assert_eq!(store.update(allocate_all).await.unwrap(), 0);
}
