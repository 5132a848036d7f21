//! Compatibility tools for shoal: recorder and replayer of Docker API traffic.
//!
//! - [`record`]: the `shoal-record` proxy and the cassette line format.
//! - [`replay`]: the `shoal-replay` engine that sends recorded requests to a
//!   daemon and compares what comes back.

pub mod record;
pub mod replay;
