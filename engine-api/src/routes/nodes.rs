//! `/nodes` routes.

use axum::extract::Path;
use axum::extract::Query;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::routing::post;
use axum::Json;
use axum::Router;
use swarm::controlapi::node;
use swarm::model::api;
use swarm::model::Node;

use crate::body::query_bool;
use crate::body::query_version;
use crate::body::VersionOf;
use crate::error::ApiError;
use crate::error::ApiResult;
use crate::filters::Filters;
use crate::server::version::empty_ok;
use crate::AppState;

/// The node routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/nodes", get(list))
        .route("/nodes/{id}", get(inspect).delete(remove))
        .route("/nodes/{id}/update", post(update))
}

fn to_json(n: &Node) -> serde_json::Value {
    serde_json::to_value(&n.api).unwrap_or_default()
}

fn matches(f: &Filters, n: &Node) -> bool {
    let spec = n.api.spec.clone().unwrap_or_default();
    let role = spec.role.map(|r| r.to_string()).unwrap_or_default();
    let engine_labels = n
        .api
        .description
        .as_ref()
        .and_then(|d| d.engine.as_ref())
        .and_then(|e| e.labels.as_ref());
    f.prefix("id", n.api.id.as_deref().unwrap_or(""))
        && f.prefix("name", node::hostname(n))
        && f.exact("role", &role)
        && f.exact("membership", "accepted")
        && f.labels("label", engine_labels)
        && f.labels("node.label", spec.labels.as_ref())
}

async fn list(
    State(s): State<AppState>,
    Query(q): Query<crate::body::Query>,
) -> ApiResult<Json<Vec<serde_json::Value>>> {
    let m = s.node.manager()?;
    let f = Filters::parse(q.get("filters").map(String::as_str))?;
    f.validate(&["id", "label", "membership", "name", "node.label", "role"])?;
    Ok(Json(
        node::list(m.store())
            .iter()
            .filter(|n| matches(&f, n))
            .map(to_json)
            .collect(),
    ))
}

async fn inspect(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let m = s.node.manager()?;
    Ok(Json(to_json(&node::get(m.store(), &id)?)))
}

/// Decodes a NodeSpec, giving dockerd's texts for bad Role/Availability values.
fn decode_spec(bytes: &[u8]) -> Result<api::NodeSpec, ApiError> {
    let v: serde_json::Value = crate::body::decode(bytes)?;
    for (field, allowed) in [
        ("Availability", &["active", "pause", "drain"][..]),
        ("Role", &["worker", "manager"][..]),
    ] {
        if let Some(val) = v.get(field).and_then(|x| x.as_str()) {
            if !allowed.contains(&val.to_ascii_lowercase().as_str()) {
                return Err(ApiError::bad_request(format!("invalid {field}: \"{val}\"")));
            }
        }
    }
    serde_json::from_value(v).map_err(|e| ApiError::bad_request(e.to_string()))
}

async fn update(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<crate::body::Query>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    // dockerd's order: the body, then the version, then the swarm.
    let spec = decode_spec(&body)?;
    let version = query_version(&q, VersionOf::Node)?;
    let m = s.node.manager()?;
    node::update(m.store(), &id, version, spec).await?;
    Ok(empty_ok())
}

async fn remove(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<crate::body::Query>,
) -> ApiResult<Response> {
    let m = s.node.manager()?;
    node::remove(m.store(), &id, query_bool(&q, "force")).await?;
    Ok(empty_ok())
}
