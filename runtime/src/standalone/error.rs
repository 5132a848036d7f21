//! Errors of standalone containers, with dockerd's texts.

use crate::error::ErrorKind;

/// What can go wrong creating or running a standalone container.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The name is taken.
    #[error("Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name.")]
    NameInUse {
        /// The name asked for.
        name: String,
        /// The container that has it.
        id: String,
    },
    /// A name with characters dockerd does not allow.
    #[error("Invalid container name ({0}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    InvalidName(String),
    /// The request is refused as dockerd refuses it (400).
    #[error("{0}")]
    Invalid(String),
    /// What the request asks for is not supported here (400, saying so).
    #[error("{0}")]
    Unsupported(String),
    /// A network the container is to join does not exist.
    #[error("network {0} not found")]
    NoSuchNetwork(String),
    /// Starting a container that runs: not a failure, dockerd answers 304.
    #[error("container already started")]
    AlreadyStarted,
    /// Acting on a container whose process does not run; the ID is the
    /// full container ID.
    #[error("Container {0} is not running")]
    NotRunning(String),
    /// Pausing a paused container.
    #[error("Container {0} is already paused")]
    AlreadyPaused(String),
    /// Unpausing a container that is not paused.
    #[error("Container {0} is not paused")]
    NotPaused(String),
    /// Starting a paused container.
    #[error("cannot start a paused container, try unpause instead")]
    StartPaused,
    /// Attaching to a paused container.
    #[error("container {0} is paused, unpause the container before attach")]
    AttachPaused(String),
    /// Setting the name it already has.
    #[error("Renaming a container with the same name as its current name")]
    SameName,
    /// containerd failed.
    #[error(transparent)]
    Runtime(#[from] crate::Error),
    /// The swarm refused or failed an attachment to one of its networks.
    #[error(transparent)]
    Swarm(#[from] swarm::Error),
    /// Making the container or its network failed.
    #[error("{0}")]
    Failed(String),
    /// Refused in the current state (403, dockerd's text).
    #[error("{0}")]
    Forbidden(String),
    /// `docker update` of limits that conflict with the container's.
    #[error("Cannot update container {id}: {message}")]
    UpdateConflict {
        /// The container's full ID.
        id: String,
        /// dockerd's reason.
        message: String,
    },
    /// Reading or writing the container's files failed.
    #[error("{op}: {source}")]
    Files {
        /// What was being done.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The behaviour class, for the HTTP status.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NameInUse { .. }
            | Error::NotRunning(_)
            | Error::AlreadyPaused(_)
            | Error::NotPaused(_)
            | Error::StartPaused
            | Error::AttachPaused(_)
            | Error::UpdateConflict { .. } => ErrorKind::Conflict,
            Error::InvalidName(_) | Error::Invalid(_) | Error::Unsupported(_) | Error::SameName => {
                ErrorKind::InvalidArgument
            }
            Error::NoSuchNetwork(_) => ErrorKind::NotFound,
            Error::Forbidden(_) => ErrorKind::Forbidden,
            Error::Runtime(e) => e.kind(),
            Error::Swarm(e) => match e.kind() {
                swarm::ErrorKind::NotFound => ErrorKind::NotFound,
                swarm::ErrorKind::InvalidArgument | swarm::ErrorKind::FailedPrecondition => {
                    ErrorKind::InvalidArgument
                }
                swarm::ErrorKind::NameConflict => ErrorKind::Conflict,
                swarm::ErrorKind::Unavailable => ErrorKind::Unavailable,
                _ => ErrorKind::Internal,
            },
            Error::AlreadyStarted | Error::Failed(_) | Error::Files { .. } => ErrorKind::Internal,
        }
    }

    /// Whether this is dockerd's "nothing to do" answer (HTTP 304).
    pub fn is_not_modified(&self) -> bool {
        matches!(self, Error::AlreadyStarted)
    }

    pub(super) fn files(op: &'static str) -> impl FnOnce(std::io::Error) -> Error {
        move |source| Error::Files { op, source }
    }
}

/// Result of standalone container calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;
