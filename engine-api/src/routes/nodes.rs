//! `/nodes` routes.

use axum::Router;

use crate::AppState;

/// The `/nodes` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
}
