//! `/configs` routes.

use axum::Router;

use crate::AppState;

/// The `/configs` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
}
