//! `GET /distribution/{name}/json`: image digest resolution.
//!
//! shoal does not reach registries from the manager; like a dockerd that
//! cannot reach the registry, it answers with an error so the CLI warns and
//! keeps the tag unpinned.

use axum::extract::Path;
use axum::routing::get;
use axum::Router;

use crate::error::ApiError;
use crate::AppState;

/// The distribution routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/distribution/{*name}", get(inspect))
}

async fn inspect(Path(name): Path<String>) -> ApiError {
    let image = name.strip_suffix("/json").unwrap_or(&name);
    if !swarm::controlapi::validate::is_valid_reference(image) {
        return ApiError::bad_request(
            "invalid reference format: repository name must be lowercase",
        );
    }
    ApiError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        format!("resolving {image}: no registry is reachable from this node"),
    )
}
