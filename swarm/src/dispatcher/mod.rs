//! The dispatcher: the manager side of node sessions. Agents open a session,
//! heartbeat, receive their task assignments and report task status through
//! [`DispatcherApi`]; [`Local`] serves an agent in the same process, and a gRPC
//! client/server pair over mutual TLS will serve remote nodes through the
//! same trait.

pub mod api;
pub mod assignments;
mod local;
pub mod records;

pub use api::Assignment;
pub use api::AssignmentSet;
pub use api::DispatcherApi;
pub use api::SessionInfo;
pub use api::StatusUpdate;
pub use local::Local;
