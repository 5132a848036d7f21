//! shoald's HTTP edge: the Docker Engine API on a Unix socket.
#![recursion_limit = "256"]
//!
//! Handlers are thin: decode, call `swarm`, encode. Errors become dockerd's
//! status codes and `{"message": ...}` bodies only in [`error`].

pub mod body;
pub mod compat;
pub mod config;
pub mod error;
pub mod filters;
pub mod gojson;
pub mod metrics;
pub mod pidfile;
pub mod render_cache;
pub mod routes;
pub mod server;
pub mod until;
pub mod wire;

use std::sync::Arc;
use std::time::Instant;

use swarm::node::SwarmNode;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// This machine's swarm membership (and, when a manager, its store).
    pub node: Arc<SwarmNode>,
    /// Engine facts for `/version` and `/info`.
    pub engine: Arc<EngineInfo>,
    /// Rendered services, reused while unchanged.
    pub services_json: Arc<render_cache::RenderCache>,
    /// containerd (images now; containers and tasks later). Connects lazily:
    /// calls fail with a clear error while containerd is unreachable.
    pub runtime: runtime::Containerd,
    /// The daemon's event log (`GET /events`).
    pub events: swarm::events::EventBus,
    /// Containers made with `docker create` and `docker run`.
    pub standalone: Arc<runtime::standalone::Standalone>,
}

/// Static facts about this daemon.
#[derive(Debug, Clone)]
pub struct EngineInfo {
    /// Daemon version string.
    pub version: String,
    /// `--data-root`.
    pub data_root: String,
    /// The machine's hostname.
    pub hostname: String,
    /// A stable daemon ID.
    pub id: String,
    /// When the daemon started.
    pub started: Instant,
}

/// The daemon version reported by `/version` and in node descriptions.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
