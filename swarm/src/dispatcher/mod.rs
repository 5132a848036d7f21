//! The dispatcher: the leader's side of node sessions. Agents open a
//! session, heartbeat, receive their task assignments and report task
//! status through [`DispatcherApi`]. [`Local`] is the leader's dispatcher
//! over its store, called in process by the leader's own agent and through
//! [`grpc`] by every other node's [`client::Remote`]; a node whose session
//! lapses is marked down ([`sessions`]).

pub mod api;
pub mod assignments;
pub mod client;
pub mod grpc;
mod local;
pub mod records;
pub mod remotes;
pub mod sessions;
pub mod wire;

pub use api::Assignment;
pub use api::AssignmentSet;
pub use api::Connector;
pub use api::DispatcherApi;
pub use api::Fixed;
pub use api::SessionInfo;
pub use api::StatusUpdate;
pub use local::Local;
pub use remotes::Remotes;
pub use wire::SessionRequest;
