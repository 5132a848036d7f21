//! shoal's control plane and node agent.
//!
//! It knows no HTTP, no containerd and no netlink: the `engine-api` crate calls
//! [`controlapi`] and wires concrete executors into [`exec`] seams.

pub mod error;
pub mod model;
pub mod raft;
pub mod orchestrator;
pub mod scheduler;
pub mod store;

pub use error::Error;
pub use error::ErrorKind;
pub use error::Result;
