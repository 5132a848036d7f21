//! `/services` routes.

use axum::Router;

use crate::AppState;

/// The `/services` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
}
