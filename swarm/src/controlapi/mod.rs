//! Validation and CRUD for every API object, through the store. The HTTP edge
//! calls these; they return dockerd's texts.
//!
//! Names are resolved as dockerd does: full ID, then exact name, then a unique
//! ID prefix ("ambiguous (N matches found)" otherwise).

pub mod attachment;
pub mod cluster;
pub mod config;
pub mod leave;
pub mod names;
pub mod network;
pub mod node;
pub mod refs;
pub mod resolve;
pub mod secret;
pub mod service;
pub mod service_spec;
pub mod task;
pub mod validate;
