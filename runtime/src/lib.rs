//! shoal's containerd side: a client handle for one containerd socket, used in
//! the containerd namespace `shoal` so that a dockerd sharing the same
//! containerd never sees or disturbs shoal's objects.
//!
//! This first piece covers images: `docker load` into containerd's content
//! store and image service, and the Docker JSON view of what is stored there.
//! Containers, tasks and the `swarm::exec` executor come later.

pub mod client;
pub mod error;
pub mod images;

pub use client::Containerd;
pub use client::NAMESPACE;
pub use error::Error;
pub use error::ErrorKind;
pub use error::Result;
