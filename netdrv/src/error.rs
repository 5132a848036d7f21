//! The crate's error, sorted by behaviour: a bad attachment or a host port
//! the node cannot give is the task's fault (fatal), everything else is the
//! node's (worth retrying).

use std::path::PathBuf;

use swarm::exec::ExecError;

use crate::state::PlanError;

/// A failure of the network driver.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The attachments cannot be made real as given (bad address, duplicate
    /// network, bad ID).
    #[error("{0}")]
    Plan(#[from] PlanError),
    /// A netlink request failed.
    #[error("{what}: {source}")]
    Netlink {
        /// What was being done.
        what: String,
        /// The kernel's (or the library's) answer.
        source: rtnetlink::Error,
    },
    /// A link the driver just made or relies on is not there.
    #[error("link {0} not found")]
    MissingLink(String),
    /// A system call (namespaces, mounts) failed.
    #[error("{what}: {source}")]
    Sys {
        /// What was being done.
        what: String,
        /// The errno.
        source: nix::Error,
    },
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `nft` refused or could not run.
    #[error("nftables: {0}")]
    Nft(#[from] nftables::helper::NftablesError),
    /// The state file is unreadable.
    #[error("state file {path}: {source}")]
    State {
        /// The file.
        path: PathBuf,
        /// Why it does not parse.
        source: serde_json::Error,
    },
    /// Every candidate node-local subnet clashes with a host route.
    #[error("no node-local subnet left for the gateway bridge: every candidate overlaps a host route or nameserver")]
    NoEgressSubnet,
    /// A host-mode port another task on this node already publishes
    /// (dockerd's port allocator text).
    #[error("Bind for 0.0.0.0:{port} failed: port is already allocated")]
    PortAllocated {
        /// The published port.
        port: u16,
    },
    /// A host-mode port something else on this node holds (a listening
    /// process, the routing mesh): dockerd's userland proxy text.
    #[error("Error starting userland proxy: listen {protocol}4 0.0.0.0:{port}: bind: address already in use")]
    PortInUse {
        /// `tcp`, `udp` or `sctp`.
        protocol: &'static str,
        /// The published port.
        port: u16,
    },
}

impl Error {
    /// Whether retrying the same call may succeed.
    pub fn is_temporary(&self) -> bool {
        !matches!(
            self,
            Error::Plan(_) | Error::PortAllocated { .. } | Error::PortInUse { .. }
        )
    }

    pub(crate) fn netlink(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Error {
        let what = what.into();
        move |source| Error::Netlink { what, source }
    }

    pub(crate) fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> Error {
        let what = what.into();
        move |source| Error::Sys { what, source }
    }

    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}

impl From<Error> for ExecError {
    fn from(e: Error) -> Self {
        if e.is_temporary() {
            ExecError::Temporary(e.to_string())
        } else {
            ExecError::Fatal(e.to_string())
        }
    }
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
