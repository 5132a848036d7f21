//! Listeners, the router, and API version negotiation.

pub mod listener;
pub mod router;
pub mod version;
