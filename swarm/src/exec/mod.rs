//! The seam between the node agent and whatever runs tasks.
//!
//! `runtime` implements [`Executor`] on containerd; tests use the fakes in
//! [`fake`]. [`step`] is the pure state machine that drives a [`Controller`]
//! one transition at a time (swarmkit `exec.Do`).

pub mod deps;
pub mod errors;
pub mod executor;
#[cfg(any(test, feature = "testing"))]
pub mod fake;
pub mod logs;
pub mod network;
pub mod step;

pub use deps::DepKind;
pub use deps::DependencyGetter;
pub use errors::ExecError;
pub use executor::Controller;
pub use executor::Executor;
pub use executor::ExitStatus;
pub use logs::LogMessage;
pub use logs::LogOptions;
pub use logs::LogSelector;
pub use network::mac_for;
pub use network::Attachment;
pub use network::AttachmentAllocator;
pub use network::ContainerNetworks;
pub use network::HostPort;
pub use network::IngressPort;
pub use network::LocalAttachment;
pub use network::LocalNetwork;
pub use network::LocalNode;
pub use network::NetworkAttacher;
pub use network::NetworkKeys;
pub use network::NetworkPeers;
pub use network::NetworkRecords;
pub use network::NetworkSpec;
pub use network::NodeSubnets;
pub use network::Peer;
pub use network::PortProtocol;
pub use network::ServiceRecords;
pub use network::TaskNetns;
pub use network::VipBackends;
