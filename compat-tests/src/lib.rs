//! Compatibility tools for shoal: recorder and replayer of Docker API
//! traffic, and the multi-node harness the cluster tests and bench use.
//!
//! - [`bench`]: the shoald-versus-dockerd cluster benchmark.
//! - [`cluster`]: labs of nodes in namespaces, each with its own containerd
//!   and engine, driven with the stock CLI.
//! - [`record`]: the `shoal-record` proxy and the cassette line format.
//! - [`replay`]: the `shoal-replay` engine that sends recorded requests to a
//!   daemon and compares what comes back.

pub mod bench;
pub mod cluster;
pub mod record;
pub mod replay;
