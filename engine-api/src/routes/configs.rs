//! `/configs` routes.

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
use swarm::controlapi::config;
use swarm::model::api;

use crate::body::query_version;
use crate::body::JsonBody;
use crate::body::VersionOf;
use crate::error::ApiResult;
use crate::filters::Filters;
use crate::routes::secrets::object_matches;
use crate::server::version::empty_ok;
use crate::server::version::ApiVersion;
use crate::AppState;

/// The config routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/configs", get(list))
        .route("/configs/create", post(create))
        .route("/configs/{id}", get(inspect).delete(remove))
        .route("/configs/{id}/update", post(update))
}

async fn list(
    State(s): State<AppState>,
    Query(q): Query<crate::body::Query>,
) -> ApiResult<Json<Vec<serde_json::Value>>> {
    let m = s.node.manager()?;
    let f = Filters::parse(q.get("filters").map(String::as_str))?;
    f.validate(&["id", "label", "name", "names"])?;
    Ok(Json(
        config::list(m.store())
            .iter()
            .map(config::view)
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
    JsonBody(spec): JsonBody<api::ConfigSpec>,
) -> ApiResult<Response> {
    crate::compat::templating_in("config", spec.templating.is_some(), version)?;
    let m = s.node.manager()?;
    let id = config::create(m.store(), spec).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "ID": id }))).into_response())
}

async fn inspect(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let m = s.node.manager()?;
    let c = m.store().read_fresh(|st| config::get(st, &id)).await?;
    Ok(Json(crate::wire::object_out(&config::view(&c))))
}

async fn update(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<crate::body::Query>,
    JsonBody(spec): JsonBody<api::ConfigSpec>,
) -> ApiResult<Response> {
    let version = query_version(&q, VersionOf::Config)?;
    let m = s.node.manager()?;
    config::update(m.store(), &id, version, spec).await?;
    Ok(empty_ok())
}

async fn remove(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let m = s.node.manager()?;
    config::remove(m.store(), &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
