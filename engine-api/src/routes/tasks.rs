//! `/tasks` routes.

use std::collections::HashMap;

use axum::extract::Path;
use axum::extract::Query;
use axum::extract::State;
use axum::routing::get;
use axum::Json;
use axum::Router;
use swarm::controlapi::node;
use swarm::controlapi::task;
use swarm::model::Network;
use swarm::model::Node;
use swarm::model::Service;
use swarm::model::Task;

use crate::error::ApiResult;
use crate::filters::Filters;
use crate::server::version::ApiVersion;
use crate::AppState;
use axum::Extension;

/// The task routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/tasks", get(list))
        .route("/tasks/{id}", get(inspect))
        .route("/tasks/{id}/logs", get(logs))
}

/// A task as dockerd shows it: the API object plus `NetworksAttachments`,
/// each carrying the cluster's copy of the network as of now.
pub fn to_json(
    t: &Task,
    networks: &HashMap<String, Network>,
    version: ApiVersion,
) -> serde_json::Value {
    let mut v = serde_json::to_value(&t.api).unwrap_or_default();
    if let Some(spec) = v.get_mut("Spec") {
        crate::wire::task_spec_out(spec, version);
        // dockerd derives Runtime for services only, not in a task's spec.
        if let Some(o) = spec.as_object_mut() {
            o.remove("Runtime");
        }
    }
    // dockerd always shows the (possibly empty) published-port status.
    if let Some(st) = v.get_mut("Status").and_then(|s| s.as_object_mut()) {
        st.entry("PortStatus")
            .or_insert_with(|| serde_json::json!({}));
    }
    if !t.networks.is_empty() {
        let atts: Vec<serde_json::Value> = t
            .networks
            .iter()
            .map(|a| {
                let net = match networks.get(&a.network_id) {
                    Some(n) => super::networks::cluster_view(n),
                    None => serde_json::json!({ "ID": a.network_id }),
                };
                serde_json::json!({ "Network": net, "Addresses": a.addresses })
            })
            .collect();
        v["NetworksAttachments"] = serde_json::Value::Array(atts);
    }
    v
}

/// Every network by ID, for rendering attachments.
fn network_map(v: &swarm::store::ReadTx<'_>) -> HashMap<String, Network> {
    v.tables()
        .iter::<Network>()
        .map(|n| (n.api.id.clone().unwrap_or_default(), n.clone()))
        .collect()
}

/// The task's display name (`svc.slot` or `svc.node`), for the `name` filter.
fn task_name(t: &Task, services: &HashMap<String, Service>) -> String {
    let svc = services
        .get(t.service_id())
        .map(|s| s.name().to_string())
        .unwrap_or_default();
    match t.api.slot.filter(|s| *s > 0) {
        Some(slot) => format!("{svc}.{slot}"),
        None => format!("{svc}.{}", t.node_id().unwrap_or("")),
    }
}

struct Ctx {
    services: HashMap<String, Service>,
    nodes: Vec<Node>,
}

fn matches(f: &Filters, t: &Task, cx: &Ctx) -> bool {
    let svc = cx.services.get(t.service_id());
    let service_ok = !f.contains("service")
        || f.get("service").any(|want| {
            t.service_id() == want
                || svc.is_some_and(|s| {
                    s.name() == want
                        || (want.len() >= 3
                            && s.api.id.as_deref().unwrap_or("").starts_with(want.as_str()))
                })
        });
    let node_ok = !f.contains("node")
        || f.get("node").any(|want| {
            let n = cx.nodes.iter().find(|n| n.api.id.as_deref() == t.node_id());
            t.node_id() == Some(want.as_str()) || n.is_some_and(|n| node::hostname(n) == want)
        });
    let desired = t.desired_state().to_string();
    let desired_ok = !f.contains("desired-state")
        || f.get("desired-state").any(|w| {
            w == &desired
                || (w == "running" && t.desired_state() <= swarm::model::api::TaskState::RUNNING)
        });
    let up_to_date =
        !f.contains("_up-to-date") || svc.is_some_and(|s| s.spec_version == t.spec_version);
    let labels = svc.and_then(|s| s.labels());
    service_ok
        && node_ok
        && desired_ok
        && up_to_date
        && f.prefix("id", t.api.id.as_deref().unwrap_or(""))
        && f.prefix("name", &task_name(t, &cx.services))
        && f.labels("label", labels.or(t.api.labels.as_ref()))
}

async fn list(
    State(s): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    Query(q): Query<crate::body::Query>,
) -> ApiResult<Json<Vec<serde_json::Value>>> {
    let m = s.node.manager()?;
    let f = Filters::parse(q.get("filters").map(String::as_str))?;
    f.validate(&[
        "id",
        "label",
        "name",
        "node",
        "service",
        "desired-state",
        "_up-to-date",
    ])?;
    // dockerd resolves these filters to objects first: an unknown one is a 404.
    // With a service filter (what `docker service ps` sends) only those
    // services' tasks are read: copying every task of a large cluster under
    // the store's lock for each poll starved its writers.
    let mut scope: Option<Vec<String>> = None;
    for want in f.get("service") {
        let svc = m
            .store()
            .read_fresh(|st| swarm::controlapi::service::get(st, want))
            .await?;
        let ids = scope.get_or_insert_with(Vec::new);
        let id = svc.api.id.clone().unwrap_or_default();
        // A service named twice (by name and by ID) is read once.
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    for want in f.get("node") {
        m.store().read_fresh(|st| node::get(st, want)).await?;
    }
    let (tasks, cx, nets) = m.store().view(|v| {
        let nets = network_map(v);
        let t = v.tables();
        let (services, candidates): (Vec<&Service>, Vec<Task>) = match &scope {
            Some(ids) => {
                // In ID order, as the whole list comes.
                let mut some: Vec<Task> =
                    ids.iter().flat_map(|id| v.tasks_by_service(id)).collect();
                some.sort_by(|a, b| a.api.id.cmp(&b.api.id));
                let services = ids.iter().filter_map(|id| t.get::<Service>(id)).collect();
                (services, some)
            }
            None => (
                t.iter::<Service>().collect(),
                t.iter::<Task>().cloned().collect(),
            ),
        };
        let services = services
            .into_iter()
            .map(|s| (s.api.id.clone().unwrap_or_default(), s.clone()))
            .collect();
        (
            // Standalone containers' network attachments are no API tasks.
            candidates
                .into_iter()
                .filter(|t| !swarm::controlapi::attachment::is_attachment(t))
                .collect::<Vec<_>>(),
            Ctx {
                services,
                nodes: t.iter::<Node>().cloned().collect(),
            },
            nets,
        )
    });
    Ok(Json(
        tasks
            .iter()
            .filter(|t| matches(&f, t, &cx))
            .map(|t| to_json(t, &nets, version))
            .collect(),
    ))
}

async fn inspect(
    State(s): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let m = s.node.manager()?;
    let t = m.store().read_fresh(|st| task::get(st, &id)).await?;
    let nets = m.store().view(network_map);
    Ok(Json(to_json(&t, &nets, version)))
}

/// `GET /tasks/{id}/logs`: the lines of the task's container on this node.
async fn logs(
    State(s): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    Path(id): Path<String>,
    Query(q): Query<crate::body::Query>,
) -> ApiResult<axum::response::Response> {
    let m = s.node.manager()?;
    let t = m.store().read_fresh(|st| task::get(st, &id)).await?;
    let tty = t
        .api
        .spec
        .as_ref()
        .and_then(|sp| sp.container_spec.as_ref())
        .and_then(|c| c.tty)
        .unwrap_or(false);
    let task_id = t.api.id.clone().unwrap_or_default();
    let selector = super::containers::logs::Selector::Task(task_id);
    super::containers::logs::swarm_request(&s, &q, version, selector, tty).await
}
