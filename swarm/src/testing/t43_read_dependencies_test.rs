//! t43: concurrent writes that conflict through what they *read*, not what
//! they write. Two services that publish one port are two fresh objects,
//! so the leader's check (`store::check`: written objects unchanged, names
//! free) lets both through, although the second call fails when the calls
//! run one after the other on the leader.

use std::time::Duration;

use super::*;
use crate::controlapi;
use crate::error::Result;
use crate::model::api;
use crate::model::Service;
use crate::raft::NodeId;

const WAIT: Duration = Duration::from_secs(10);

fn service(name: &str, published: Option<i64>) -> api::ServiceSpec {
    api::ServiceSpec {
        name: Some(name.into()),
        task_template: Some(api::TaskSpec {
            container_spec: Some(api::TaskSpecContainerSpec {
                image: Some("busybox:latest".into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        mode: Some(api::ServiceSpecMode {
            replicated: Some(Default::default()),
            ..Default::default()
        }),
        endpoint_spec: Some(api::EndpointSpec {
            ports: Some(vec![api::EndpointPortConfig {
                target_port: Some(80),
                published_port: published,
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The ingress ports each service on `id`'s store publishes.
fn published_ports(c: &TestCluster, id: NodeId) -> Vec<i64> {
    let mut out: Vec<i64> = c
        .node(id)
        .store()
        .view(|tx| tx.list::<Service>())
        .iter()
        .filter_map(|s| s.api.endpoint.as_ref()?.ports.clone())
        .flatten()
        .filter_map(|p| p.published_port)
        .collect();
    out.sort_unstable();
    out
}

async fn followers() -> Result<(TestCluster, NodeId, NodeId)> {
    let c = TestCluster::new(3).await?;
    let leader = c.wait_leader(WAIT).await?;
    let f: Vec<NodeId> = c.ids().into_iter().filter(|id| *id != leader).collect();
    Ok((c, f[0], f[1]))
}

#[tokio::test(start_paused = true)]

async fn t43_one_published_port_for_two_services_on_two_managers() -> Result<()> {
    let (c, f1, f2) = followers().await?;
    let (s1, s2) = (c.node(f1).store(), c.node(f2).store());
    let (r1, r2) = tokio::join!(
        controlapi::service::create(&s1, service("web1", Some(8080)), None),
        controlapi::service::create(&s2, service("web2", Some(8080)), None)
    );
    c.wait_synced(WAIT).await?;
    let ports = published_ports(&c, f1);
    assert!(
        r1.is_err() || r2.is_err(),
        "both creates succeeded; published ports now {ports:?}"
    );
    let e = r1.err().or(r2.err()).map(|e| e.message().to_string());
    assert!(
        e.is_some_and(|m| m.contains("port '8080' is already in use by service")),
        "the loser gets the port conflict"
    );
    assert_eq!(ports, vec![8080]);
    c.shutdown().await
}

#[tokio::test(start_paused = true)]

async fn t44_dynamic_ports_assigned_on_two_managers_differ() -> Result<()> {
    let (c, f1, f2) = followers().await?;
    let (s1, s2) = (c.node(f1).store(), c.node(f2).store());
    let (r1, r2) = tokio::join!(
        controlapi::service::create(&s1, service("web1", None), None),
        controlapi::service::create(&s2, service("web2", None), None)
    );
    r1?;
    r2?;
    c.wait_synced(WAIT).await?;
    let ports = published_ports(&c, f1);
    assert_eq!(ports.len(), 2);
    assert_ne!(ports[0], ports[1], "two services got one ingress port");
    c.shutdown().await
}
