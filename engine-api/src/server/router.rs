//! Assembles the router: every resource's routes, dockerd's 404s, the
//! daemon's exec records, and the version middleware in front of routing
//! (so `/v1.NN/` is stripped first), behind the one that reads paths of
//! any bytes as dockerd reads them.

use axum::extract::Request;
use axum::middleware;
use axum::middleware::Next;
use axum::response::Response;
use axum::Extension;
use axum::Router;
use runtime::view::Execs;

use super::lossy_path;
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
        .route_layer(middleware::from_fn(crate::metrics::observe))
        .method_not_allowed_fallback(version::page_not_found)
        .fallback(version::page_not_found)
        .layer(Extension(Execs::default()))
        .with_state(state);
    Router::new()
        .fallback_service(inner)
        .layer(middleware::from_fn(version::negotiate))
        .layer(middleware::from_fn(lossy_path::lossy_path))
        .layer(middleware::from_fn(log_call))
}

/// dockerd's debug line for every call, as the client sent it.
async fn log_call(req: Request, next: Next) -> Response {
    tracing::debug!("Calling {} {}", req.method(), req.uri());
    next.run(req).await
}
