//! One module per resource; each exposes `routes()`.

pub mod configs;
pub mod containers;
pub mod disk_usage;
pub mod distribution;
pub mod events;
pub mod exec;
pub mod image_archive;
pub mod images;
pub mod networks;
pub mod nodes;
pub mod secrets;
pub mod services;
pub mod swarm;
pub mod system;
pub mod tasks;
pub mod volumes;

use axum::Router;

use crate::AppState;

/// Every route of the API (paths without the version prefix).
pub fn all() -> Router<AppState> {
    Router::new()
        .merge(system::routes())
        .merge(swarm::routes())
        .merge(nodes::routes())
        .merge(services::routes())
        .merge(tasks::routes())
        .merge(secrets::routes())
        .merge(configs::routes())
        .merge(networks::routes())
        .merge(distribution::routes())
        .merge(images::routes())
        .merge(containers::routes())
        .merge(exec::routes())
        .merge(volumes::routes())
        .merge(disk_usage::routes())
        .merge(events::routes())
}
