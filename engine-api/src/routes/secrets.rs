//! `/secrets` routes.

use axum::Router;

use crate::AppState;

/// The `/secrets` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
}
