//! Assembles the router: every resource's routes, dockerd's 404s, the
//! daemon's exec records, and the version middleware in front of routing
//! (so `/v1.NN/` is stripped first).

use axum::middleware;
use axum::Extension;
use axum::Router;
use runtime::view::Execs;

use super::version;
use crate::routes;
use crate::AppState;

/// The whole API as one service. An unknown path and a known path with
/// another method both get dockerd's 404 `page not found` (its router
/// answers a method mismatch the same way, never with a 405).
///
/// Exec records live as long as the returned router: handlers reach them
/// as an `Extension<Execs>`.
pub fn app(state: AppState) -> Router {
    let inner = routes::all()
        .method_not_allowed_fallback(version::page_not_found)
        .fallback(version::page_not_found)
        .layer(Extension(Execs::default()))
        .with_state(state);
    Router::new()
        .fallback_service(inner)
        .layer(middleware::from_fn(version::negotiate))
}
