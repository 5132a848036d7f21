//! Listeners, the router, API version negotiation, and connection
//! take-over for streams.

pub mod hijack;
pub mod listener;
pub mod lossy_path;
pub mod router;
pub mod tls;
pub mod version;
