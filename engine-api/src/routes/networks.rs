//! `/networks` routes.

use axum::Router;

use crate::AppState;

/// The `/networks` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
}
