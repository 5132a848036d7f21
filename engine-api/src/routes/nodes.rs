//! `/nodes` routes.

use std::collections::HashMap;

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
    let n = m.store().read_fresh(|st| node::get(st, &id)).await?;
    Ok(Json(to_json(&n)))
}

/// A `NodeSpec` body with its role and availability as text, for dockerd's
/// own check of them.
#[derive(serde::Deserialize)]
struct NodeSpecBody {
    #[serde(rename = "Name")]
    name: Option<String>,
    #[serde(rename = "Labels")]
    labels: Option<HashMap<String, String>>,
    #[serde(rename = "Role")]
    role: Option<String>,
    #[serde(rename = "Availability")]
    availability: Option<String>,
}

/// One of Role/Availability as dockerd's conversion reads it: a known value
/// in any case, else (an empty or absent one too, Go's zero value) its
/// `invalid FIELD: "VALUE"`.
fn node_enum<T: std::str::FromStr>(field: &str, value: Option<String>) -> Result<T, ApiError> {
    let v = value.unwrap_or_default();
    let lower = v.to_ascii_lowercase();
    match lower.parse() {
        Ok(known) if !lower.is_empty() => Ok(known),
        _ => Err(ApiError::bad_request(format!("invalid {field}: \"{v}\""))),
    }
}

impl NodeSpecBody {
    /// The spec, judged as dockerd judges it once the version and the
    /// manager are known good: the role first, then the availability.
    fn into_spec(self) -> Result<api::NodeSpec, ApiError> {
        Ok(api::NodeSpec {
            role: Some(node_enum("Role", self.role)?),
            availability: Some(node_enum("Availability", self.availability)?),
            name: self.name,
            labels: self.labels,
        })
    }
}

async fn update(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<crate::body::Query>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    // dockerd's order: the body, the version, the swarm, then the values.
    let body: NodeSpecBody = crate::body::decode(&body)?;
    let version = query_version(&q, VersionOf::Node)?;
    let m = s.node.manager()?;
    node::update(m.store(), &id, version, body.into_spec()?).await?;
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
