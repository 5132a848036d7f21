//! Assembles the router: every resource's routes, the 404 fallback, and the
//! version middleware in front of routing (so `/v1.NN/` is stripped first).

use axum::middleware;
use axum::Router;

use super::version;
use crate::routes;
use crate::AppState;

/// The whole API as one service.
pub fn app(state: AppState) -> Router {
    let inner = routes::all()
        .fallback(version::page_not_found)
        .with_state(state);
    Router::new()
        .fallback_service(inner)
        .layer(middleware::from_fn(version::negotiate))
}
