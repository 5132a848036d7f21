//! shoal's containerd side: a client handle for one containerd socket, used in
//! the containerd namespace `shoal` so that a dockerd sharing the same
//! containerd never sees or disturbs shoal's objects.
//!
//! [`images`] holds `docker load` and the Docker view of stored images;
//! [`exec`] is the `swarm::exec::Executor` that runs tasks as containerd
//! containers (specs from [`exec::spec`], calls in [`containers`]), and
//! [`logs`] copies their output into json-file logs.

pub mod client;
pub mod containers;
pub mod error;
pub mod events;
pub mod exec;
pub mod images;
pub mod leases;
pub mod logs;
pub mod networks;
pub mod standalone;
pub mod usage;
pub mod view;
pub mod volumes;

pub use client::Containerd;
pub use client::NAMESPACE;
pub use error::Error;
pub use error::ErrorKind;
pub use error::Result;
