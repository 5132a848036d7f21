//! The cluster's certificate authority and the node PKI (swarmkit's model).
//!
//! - [`root`]: the root CA certificate and key a swarm is created with.
//! - [`tokens`]: join tokens, `SWMTKN-1-<root digest>-<secret>`; the secret
//!   decides whether a joining node gets a manager or a worker certificate.
//! - [`csr`]: a node's key and certificate signing request.
//! - [`issuer`]: signs CSRs into node certificates, CN = node ID,
//!   OU = role, O = cluster ID.
//! - [`identity`]: reads those names back from a certificate.
//! - [`tls`]: rustls configs for mutual TLS between nodes that follow
//!   certificate renewals and root rotations without a restart.
//! - [`keystore`]: the node's certificate, key and roots on disk, the key
//!   sealed by the unlock key on an autolocked manager.
//! - [`server`]: the `NodeCa` gRPC service managers serve.
//! - [`renewer`]: every node renews its certificate before it expires.
//!
//! A node joins in three steps: it fetches the root certificate over an
//! unverified connection and checks it against the token's digest, asks a
//! manager (verified against that root, no client certificate) to sign its
//! CSR with the token, and from then on talks to other nodes over mutual
//! TLS with the certificate it got.

pub mod csr;
pub mod identity;
pub mod issuer;
pub mod keystore;
pub mod renewer;
pub mod root;
pub mod rotation;
pub mod server;
pub mod throttle;
pub mod tls;
pub mod tokens;
