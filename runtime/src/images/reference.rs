//! Image references: the daemon's one parser lives in `swarm::reference`
//! (service specs are validated with it); the image code uses it from here.

pub use swarm::reference::familiar;
pub use swarm::reference::Reference;
