//! `/tasks` routes.

use axum::Router;

use crate::AppState;

/// The `/tasks` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
}
