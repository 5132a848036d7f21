//! `swarm::Error`: every failure the control plane reports, sorted by kind.
//!
//! The texts are dockerd's to the letter (moby `daemon/cluster/errors.go` and
//! swarmkit's gRPC errors); the HTTP edge maps [`ErrorKind`] to a status code.

use crate::model::Kind;

/// How an error behaves; the HTTP edge maps each kind to one status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400: the request is wrong.
    InvalidArgument,
    /// 404: the object does not exist.
    NotFound,
    /// 409: a name is taken, or the request conflicts with the node's state
    /// (unlocking a swarm that is not locked).
    NameConflict,
    /// 401: a secret the caller gave is wrong (the unlock key).
    Unauthorized,
    /// 400 with gRPC FailedPrecondition text.
    FailedPrecondition,
    /// 500: stale version ("update out of sequence") and swarmkit's other
    /// non-gRPC errors that dockerd returns as 500.
    Unknown,
    /// 501: not supported (renaming a service).
    Unimplemented,
    /// 503: this node is not a manager, not in a swarm, already in one, or locked.
    Unavailable,
    /// 500: a bug or an I/O failure.
    Internal,
}

/// An error of the control plane with its user-visible text.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

/// Result alias for the control plane.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// dockerd's text for swarm calls on a node that is not a manager.
pub const NOT_MANAGER: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";
/// dockerd's text for manager calls on a worker.
pub const WORKER_NOT_MANAGER: &str = "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.";
/// dockerd's text for leave/unlock on a node outside any swarm.
pub const NOT_IN_SWARM: &str = "This node is not part of a swarm";
/// dockerd's text for init/join on a node already in a swarm.
pub const ALREADY_IN_SWARM: &str = "This node is already part of a swarm. Use \"docker swarm leave\" to leave this swarm and join another one.";
/// swarmkit's text when no manager leads (quorum lost, or an election runs).
pub const NO_LEADER: &str = "The swarm does not have a leader. It's possible that too few managers are online. Make sure more than half of the managers are online.";
/// dockerd's text while the store is locked.
pub const LOCKED: &str = "Swarm is encrypted and needs to be unlocked before it can be used. Please use \"docker swarm unlock\" to unlock it.";

impl Error {
    /// An error of `kind` with exactly `message` as its text.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// The behaviour class of the error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The user-visible text.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// `<kind> <name> not found`, as dockerd says it for a missing object.
    pub fn not_found(kind: Kind, what: &str) -> Self {
        Error::new(
            ErrorKind::NotFound,
            format!("{} {} not found", kind.word(), what),
        )
    }

    /// gRPC InvalidArgument as dockerd relays it.
    pub fn invalid(desc: impl std::fmt::Display) -> Self {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("rpc error: code = InvalidArgument desc = {desc}"),
        )
    }

    /// gRPC FailedPrecondition as dockerd relays it.
    pub fn precondition(desc: impl std::fmt::Display) -> Self {
        Error::new(
            ErrorKind::FailedPrecondition,
            format!("rpc error: code = FailedPrecondition desc = {desc}"),
        )
    }

    /// gRPC AlreadyExists as dockerd relays it (409).
    pub fn already_exists(desc: impl std::fmt::Display) -> Self {
        Error::new(
            ErrorKind::NameConflict,
            format!("rpc error: code = AlreadyExists desc = {desc}"),
        )
    }

    /// gRPC Unknown as dockerd relays it (500): swarmkit's plain errors.
    pub fn unknown(desc: impl std::fmt::Display) -> Self {
        Error::new(
            ErrorKind::Unknown,
            format!("rpc error: code = Unknown desc = {desc}"),
        )
    }

    /// swarmkit's plain error for input it refuses: dockerd relays it as
    /// gRPC Unknown with a 500, a server error for the client's mistake.
    /// The text stays dockerd's; the kind is [`ErrorKind::InvalidArgument`]
    /// (each such case is listed in api-fixtures/KNOWN_DIFFERENCES.md).
    pub fn unknown_bad_input(desc: impl std::fmt::Display) -> Self {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("rpc error: code = Unknown desc = {desc}"),
        )
    }

    /// "update out of sequence" for a stale `Version.Index`.
    pub fn out_of_sequence() -> Self {
        Error::unknown("update out of sequence")
    }

    /// The node is not a swarm manager (503).
    pub fn not_manager() -> Self {
        Error::new(ErrorKind::Unavailable, NOT_MANAGER)
    }

    /// No manager leads the swarm: dockerd relays swarmkit's gRPC Unknown (500).
    pub fn no_leader() -> Self {
        Error::unknown(NO_LEADER)
    }

    /// This node is a worker (503).
    pub fn worker_not_manager() -> Self {
        Error::new(ErrorKind::Unavailable, WORKER_NOT_MANAGER)
    }

    /// The store is locked (503).
    pub fn locked() -> Self {
        Error::new(ErrorKind::Unavailable, LOCKED)
    }

    /// An internal failure (500) with a description for the log and the user.
    pub fn internal(desc: impl std::fmt::Display) -> Self {
        Error::new(ErrorKind::Internal, desc.to_string())
    }
}
