//! `/services` routes.

use std::collections::HashMap;

use axum::extract::Path;
use axum::extract::Query;
use axum::extract::State;
use axum::http::header;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::get;
use axum::routing::post;
use axum::Json;
use axum::Router;
use swarm::controlapi::service;
use swarm::controlapi::service::UpdateKind;
use swarm::model::api;
use swarm::model::Node;
use swarm::model::Service;
use swarm::model::StoreObject;
use swarm::model::Task;

use crate::body::query_strict_bool;
use crate::body::query_version;
use crate::body::BadBool;
use crate::body::VersionOf;
use crate::error::ApiResult;
use crate::filters::Filters;
use crate::server::version::ApiVersion;
use crate::AppState;
use axum::Extension;

/// The service routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/services", get(list))
        .route("/services/create", post(create))
        .route("/services/{id}", get(inspect).delete(remove))
        .route("/services/{id}/update", post(update))
        .route("/services/{id}/logs", get(logs))
}

/// A service as dockerd shows it: the API object plus `PreviousSpec`.
fn to_json(s: &Service, defaults: bool, version: ApiVersion) -> serde_json::Value {
    let mut v = if defaults {
        let mut api = s.api.clone();
        api.spec = api.spec.map(service::with_defaults);
        serde_json::to_value(&api)
    } else {
        serde_json::to_value(&s.api)
    }
    .unwrap_or_default();
    if let Some(prev) = &s.previous_spec {
        v["PreviousSpec"] = serde_json::to_value(prev).unwrap_or_default();
        crate::wire::service_spec_out(&mut v["PreviousSpec"], version);
    }
    if let Some(spec) = v.get_mut("Spec") {
        crate::wire::service_spec_out(spec, version);
    }
    if let Some(spec) = v.get_mut("Spec") {
        // dockerd reports the runtime it derived from the spec.
        if let Some(tt) = spec.get_mut("TaskTemplate") {
            if tt.get("ContainerSpec").is_some() && tt.get("Runtime").is_none() {
                tt["Runtime"] = "container".into();
            }
        }
    }
    v
}

fn mode_of(s: &Service) -> &'static str {
    let m = s.spec().mode.clone().unwrap_or_default();
    match (
        m.global.is_some(),
        m.replicated_job.is_some(),
        m.global_job.is_some(),
    ) {
        (true, _, _) => "global",
        (_, true, _) => "replicated-job",
        (_, _, true) => "global-job",
        _ => "replicated",
    }
}

async fn list(
    State(s): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    Query(q): Query<crate::body::Query>,
) -> ApiResult<Response> {
    // dockerd reads `status` (and refuses a bad one) only from API 1.41.
    let with_status = if version.at_least(41) {
        query_strict_bool(&q, "status", BadBool::Wrapped)?.unwrap_or(false)
    } else {
        false
    };
    let m = s.node.manager()?;
    let f = Filters::parse(q.get("filters").map(String::as_str))?;
    f.validate(&["id", "label", "mode", "name"])?;
    let cache = &s.services_json;
    let body = m.store().view(|v| {
        let t = v.tables();
        let mut by_service: HashMap<&str, Vec<&Task>> = HashMap::new();
        if with_status {
            for task in t.iter::<Task>() {
                by_service.entry(task.service_id()).or_default().push(task);
            }
        }
        let ready = t
            .iter::<Node>()
            .filter(|n| n.api.status.as_ref().and_then(|s| s.state) == Some(api::NodeState::READY))
            .count();
        let mut body = String::from("[");
        let mut live = 0;
        for svc in t.iter::<Service>() {
            live += 1;
            let shown = f.prefix("id", svc.api.id.as_deref().unwrap_or(""))
                && f.prefix("name", svc.name())
                && f.exact("mode", mode_of(svc))
                && f.labels("label", svc.labels());
            if !shown {
                continue;
            }
            let json = cache.get_or_render(svc.id(), svc.version(), version.0, || {
                to_json(svc, false, version).to_string()
            });
            if body.len() > 1 {
                body.push(',');
            }
            if with_status {
                // The status is live (task counts): splice it into the object.
                let tasks = by_service
                    .get(svc.api.id.as_deref().unwrap_or(""))
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                let status = serde_json::to_string(&service::status(svc, tasks, ready))
                    .unwrap_or_else(|_| "null".into());
                let open = json.strip_suffix('}').unwrap_or(&json);
                body.push_str(open);
                if open.len() > 1 {
                    body.push(',');
                }
                body.push_str("\"ServiceStatus\":");
                body.push_str(&status);
                body.push('}');
            } else {
                body.push_str(&json);
            }
        }
        body.push(']');
        cache.prune(live, |id| t.get::<Service>(id).is_some());
        body
    });
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The `X-Registry-Auth` header the CLI sends with `--with-registry-auth`.
fn registry_auth(headers: &header::HeaderMap) -> Option<String> {
    headers
        .get("X-Registry-Auth")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

async fn create(
    State(s): State<AppState>,
    Extension(api_version): Extension<ApiVersion>,
    headers: header::HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let mut spec: api::ServiceSpec = crate::body::decode(&body)?;
    crate::compat::service_spec_in(&mut spec, api_version);
    let m = s.node.manager()?;
    let id = service::create(m.store(), spec, registry_auth(&headers)).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "ID": id }))).into_response())
}

async fn inspect(
    State(s): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    Path(id): Path<String>,
    Query(q): Query<crate::body::Query>,
) -> ApiResult<Json<serde_json::Value>> {
    let defaults = query_strict_bool(&q, "insertDefaults", BadBool::Wrapped)?.unwrap_or(false);
    let m = s.node.manager()?;
    let svc = m.store().read_fresh(|st| service::get(st, &id)).await?;
    Ok(Json(to_json(&svc, defaults, version)))
}

async fn update(
    State(s): State<AppState>,
    Extension(api_version): Extension<ApiVersion>,
    Path(id): Path<String>,
    Query(q): Query<crate::body::Query>,
    headers: header::HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    // dockerd's order: the body, then the version, then the swarm.
    let mut spec: api::ServiceSpec = crate::body::decode(&body)?;
    let version = query_version(&q, VersionOf::Service)?;
    crate::compat::service_spec_in(&mut spec, api_version);
    let m = s.node.manager()?;
    let kind = if q.get("rollback").map(String::as_str) == Some("previous") {
        UpdateKind::Rollback
    } else {
        UpdateKind::Replace
    };
    service::update(m.store(), &id, version, spec, kind, registry_auth(&headers)).await?;
    Ok(Json(serde_json::json!({ "Warnings": null })))
}

async fn remove(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let m = s.node.manager()?;
    service::remove(m.store(), &id).await?;
    Ok(crate::server::version::empty_ok())
}

/// `GET /services/{id}/logs`: the lines of the service's task containers
/// on this node, with the task details the CLI prefixes lines with.
async fn logs(
    State(s): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    Path(id): Path<String>,
    Query(q): Query<crate::body::Query>,
) -> ApiResult<Response> {
    let m = s.node.manager()?;
    let svc = m.store().read_fresh(|st| service::get(st, &id)).await?;
    let tty = svc
        .spec()
        .task_template
        .as_ref()
        .and_then(|t| t.container_spec.as_ref())
        .and_then(|c| c.tty)
        .unwrap_or(false);
    let selector = super::containers::logs::Selector::Service(svc.id().to_string());
    super::containers::logs::swarm_request(&s, &q, version, selector, tty).await
}
