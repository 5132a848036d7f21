//! shoal's control plane and node agent.
//!
//! It knows no HTTP, no containerd and no netlink: the `engine-api` crate calls
//! [`controlapi`] through [`node::SwarmNode`] and wires concrete executors into
//! the `exec` seams.

pub mod agent;
pub mod allocator;
pub mod ca;
pub mod controlapi;
pub mod dispatcher;
pub mod error;
pub mod events;
pub mod exec;
pub mod host;
pub mod leader;
pub mod logbroker;
pub mod manager;
pub mod model;
pub mod node;
pub mod orchestrator;
pub mod raft;
pub mod reference;
pub mod scheduler;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod transport;

pub use error::Error;
pub use error::ErrorKind;
pub use error::Result;
