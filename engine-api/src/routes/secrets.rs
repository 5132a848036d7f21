//! `/secrets` routes (secret data is never returned).

use axum::extract::Path;
use axum::extract::Query;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::get;
use axum::routing::post;
use axum::Extension;
use axum::Json;
use axum::Router;
use swarm::controlapi::secret;
use swarm::model::api;

use crate::body::query_version;
use crate::body::JsonBody;
use crate::body::VersionOf;
use crate::error::ApiResult;
use crate::filters::Filters;
use crate::server::version::empty_ok;
use crate::server::version::ApiVersion;
use crate::AppState;

/// The secret routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/secrets", get(list))
        .route("/secrets/create", post(create))
        .route("/secrets/{id}", get(inspect).delete(remove))
        .route("/secrets/{id}/update", post(update))
}

/// Whether an object with this ID, name and labels passes the list filters
/// shared by secrets and configs.
pub fn object_matches(
    f: &Filters,
    id: &str,
    name: &str,
    labels: Option<&std::collections::HashMap<String, String>>,
) -> bool {
    f.prefix("id", id)
        && f.prefix("name", name)
        && f.exact("names", name)
        && f.labels("label", labels)
}

async fn list(
    State(s): State<AppState>,
    Query(q): Query<crate::body::Query>,
) -> ApiResult<Json<Vec<serde_json::Value>>> {
    let m = s.node.manager()?;
    let f = Filters::parse(q.get("filters").map(String::as_str))?;
    f.validate(&["id", "label", "name", "names"])?;
    Ok(Json(
        secret::list(m.store())
            .iter()
            .map(secret::view)
            .filter(|v| {
                let spec = v.spec.as_ref();
                object_matches(
                    &f,
                    v.id.as_deref().unwrap_or(""),
                    spec.and_then(|s| s.name.as_deref()).unwrap_or(""),
                    spec.and_then(|s| s.labels.as_ref()),
                )
            })
            .map(|v| crate::wire::object_out(&v))
            .collect(),
    ))
}

async fn create(
    State(s): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    JsonBody(spec): JsonBody<api::SecretSpec>,
) -> ApiResult<Response> {
    crate::compat::templating_in("secret", spec.templating.is_some(), version)?;
    let m = s.node.manager()?;
    let id = secret::create(m.store(), spec).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "ID": id }))).into_response())
}

async fn inspect(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let m = s.node.manager()?;
    let sec = m.store().read_fresh(|st| secret::get(st, &id)).await?;
    Ok(Json(crate::wire::object_out(&secret::view(&sec))))
}

async fn update(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<crate::body::Query>,
    JsonBody(spec): JsonBody<api::SecretSpec>,
) -> ApiResult<Response> {
    let version = query_version(&q, VersionOf::Secret)?;
    let m = s.node.manager()?;
    secret::update(m.store(), &id, version, spec).await?;
    Ok(empty_ok())
}

async fn remove(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let m = s.node.manager()?;
    secret::remove(m.store(), &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
