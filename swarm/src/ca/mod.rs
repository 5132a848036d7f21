//! The cluster's certificate authority: root CA and join tokens.
//!
//! Node certificates and the NodeCA gRPC service come with manager/worker
//! join; a one-manager swarm needs the root CA (its digest is part of every
//! join token) and the tokens themselves.

pub mod csr;
pub mod identity;
pub mod issuer;
pub mod keystore;
pub mod root;
pub mod server;
pub mod tls;
pub mod tokens;
