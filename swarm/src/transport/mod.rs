//! The node-to-node transport: gRPC (tonic) over mutual TLS (rustls, ring)
//! on the cluster listen address.
//!
//! The services are generated at build time from Rust message types
//! (`build.rs`); every message is JSON through [`JsonCodec`]. The CA's
//! rustls configs authenticate both ends; [`auth`] turns the peer's
//! verified certificate into its node identity and checks its role on
//! every call.

pub mod auth;
pub mod client;
pub mod codec;
pub mod server;
pub mod status;

pub use client::Channels;
pub use codec::JsonCodec;

/// Generated clients and servers, one module per service.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    /// Raft between managers (manager certificates only).
    pub mod raft {
        include!(concat!(env!("OUT_DIR"), "/shoal.Raft.rs"));
    }
    /// Membership and forwarded writes (manager certificates only).
    pub mod cluster {
        include!(concat!(env!("OUT_DIR"), "/shoal.Cluster.rs"));
    }
    /// The node CA: the root certificate and node certificates.
    pub mod ca {
        include!(concat!(env!("OUT_DIR"), "/shoal.NodeCa.rs"));
    }
    /// Agent sessions (any node certificate).
    pub mod dispatcher {
        include!(concat!(env!("OUT_DIR"), "/shoal.Dispatcher.rs"));
    }
}
