//! Errors of node-local networks, with dockerd's texts.

use crate::error::ErrorKind;

/// What can go wrong with a node-local network.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No network by that ID, name or ID prefix.
    #[error("network {0} not found")]
    NotFound(String),
    /// The name is taken (by a local or a swarm network).
    #[error("network with name {0} already exists")]
    NameTaken(String),
    /// A name of dockerd's predefined networks.
    #[error("operation is not permitted on predefined {0} network ")]
    Predefined(String),
    /// A second network of a driver that has one (`host`, `null`).
    #[error("only one instance of \"{0}\" network is allowed")]
    SingleInstance(String),
    /// A driver this node does not have.
    #[error("plugin \"{0}\" not found")]
    NoSuchDriver(String),
    /// What the request asks for is not supported here (saying so).
    #[error("{0}")]
    Unsupported(String),
    /// The subnet overlaps another network's (or the gateway bridge's).
    #[error("Pool overlaps with other one on this address space")]
    Overlap,
    /// No default pool is free on this node.
    #[error("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")]
    NoPool,
    /// A subnet that does not parse.
    #[error("Invalid subnet {0} : invalid CIDR address: {0}")]
    InvalidSubnet(String),
    /// A gateway that does not parse.
    #[error("invalid gateway address {0}")]
    InvalidGateway(String),
    /// A gateway outside the subnet.
    #[error("failed to allocate gateway ({0}): Requested address is out of range")]
    GatewayOutOfRange(String),
    /// An IP range that does not parse or lies outside the subnet.
    #[error("no matching subnet for range {0}")]
    InvalidRange(String),
    /// An option with a value that cannot be used.
    #[error("invalid value {value:?} for option {option}")]
    InvalidOption {
        /// The option's key.
        option: String,
        /// Its value.
        value: String,
    },
    /// Another network has the bridge name.
    #[error("cannot create network {id} ({bridge}): conflicts with network {other} ({bridge}): networks have same bridge name")]
    BridgeNameTaken {
        /// The new network's ID.
        id: String,
        /// The bridge name.
        bridge: String,
        /// The network that has it.
        other: String,
    },
    /// A container is attached to the network.
    #[error("error while removing network: network {name} id {id} has active endpoints")]
    ActiveEndpoints {
        /// The network's name.
        name: String,
        /// Its ID.
        id: String,
    },
    /// The node's network driver failed.
    #[error("{0}")]
    Driver(String),
    /// Reading or writing the network records failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The behaviour class, for the HTTP status (dockerd's for each).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound(_) | Error::NoSuchDriver(_) => ErrorKind::NotFound,
            Error::NameTaken(_) => ErrorKind::Conflict,
            Error::Predefined(_)
            | Error::SingleInstance(_)
            | Error::Overlap
            | Error::BridgeNameTaken { .. }
            | Error::ActiveEndpoints { .. } => ErrorKind::Forbidden,
            // dockerd answers a bad subnet or a gateway outside it with a
            // 500; they are the caller's mistake, so a 400 with its text
            // (KNOWN_DIFFERENCES.md).
            Error::Unsupported(_)
            | Error::InvalidGateway(_)
            | Error::InvalidRange(_)
            | Error::InvalidOption { .. }
            | Error::InvalidSubnet(_)
            | Error::GatewayOutOfRange(_) => ErrorKind::InvalidArgument,
            Error::NoPool | Error::Driver(_) | Error::Io { .. } => ErrorKind::Internal,
        }
    }

    pub(crate) fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> Error {
        move |source| Error::Io { op, source }
    }
}

impl From<swarm::exec::ExecError> for Error {
    fn from(e: swarm::exec::ExecError) -> Self {
        Error::Driver(e.to_string())
    }
}

/// Result of node-local network calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;
