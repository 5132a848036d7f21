//! `runtime::Error`: what can go wrong talking to containerd, sorted by
//! behaviour with [`Error::kind`] so the HTTP edge can pick a status code.

/// Errors of the runtime crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// containerd's socket cannot be reached (not running, wrong path).
    #[error("containerd is not reachable at {socket}: {reason}")]
    Unavailable {
        /// The socket shoald was configured with.
        socket: String,
        /// Why the connection failed.
        reason: String,
    },
    /// No image matches a name or ID; the text is dockerd's.
    #[error("No such image: {0}")]
    NoSuchImage(String),
    /// A name to tag or import as is not a valid reference; dockerd's text.
    #[error("invalid reference format: {0}")]
    InvalidReference(String),
    /// An `--change` line of `docker import` that is not a Dockerfile
    /// instruction allowed there; dockerd's text.
    #[error("{0} is not a valid change command")]
    InvalidChange(String),
    /// The uploaded archive is not a docker-archive or OCI layout shoal reads.
    #[error("invalid image archive: {0}")]
    InvalidArchive(String),
    /// Deleting an image by ID while several names point at it, without force.
    #[error("conflict: unable to delete {0} (must be forced) - image is referenced in multiple repositories")]
    ReferencedInMultipleRepositories(String),
    /// A blob in containerd is not what its descriptor says.
    #[error("content {digest}: {reason}")]
    BadContent {
        /// The blob's digest.
        digest: String,
        /// What is wrong with it.
        reason: String,
    },
    /// containerd answered a call with an error.
    #[error("containerd {op}: {message}")]
    Containerd {
        /// The call that failed.
        op: &'static str,
        /// gRPC status code.
        code: tonic::Code,
        /// containerd's message.
        message: String,
    },
    /// Talking to an image registry failed; the text is dockerd's.
    #[error(transparent)]
    Registry(#[from] crate::images::RegistryError),
    /// Local I/O (spooling an upload to disk, reading it back).
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Behaviour classes of [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The object does not exist.
    NotFound,
    /// The request or its payload is malformed.
    InvalidArgument,
    /// The request conflicts with current state.
    Conflict,
    /// The request is refused in the current state (dockerd's 403: a
    /// network in use, an overlapping pool).
    Forbidden,
    /// containerd is not reachable.
    Unavailable,
    /// Anything else.
    Internal,
}

impl Error {
    /// The behaviour class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NoSuchImage(_) => ErrorKind::NotFound,
            Error::InvalidArchive(_) | Error::InvalidReference(_) | Error::InvalidChange(_) => {
                ErrorKind::InvalidArgument
            }
            Error::ReferencedInMultipleRepositories(_) => ErrorKind::Conflict,
            Error::Unavailable { .. } => ErrorKind::Unavailable,
            Error::Containerd { code, .. } => match code {
                tonic::Code::NotFound => ErrorKind::NotFound,
                tonic::Code::AlreadyExists | tonic::Code::FailedPrecondition => ErrorKind::Conflict,
                tonic::Code::InvalidArgument => ErrorKind::InvalidArgument,
                tonic::Code::Unavailable => ErrorKind::Unavailable,
                _ => ErrorKind::Internal,
            },
            Error::Registry(e) => e.error_kind(),
            Error::BadContent { .. } | Error::Io { .. } => ErrorKind::Internal,
        }
    }

    /// The registry's side of a failed pull or lookup, when that is what
    /// failed; the HTTP edge uses it to answer 401 and 403 as dockerd does.
    pub fn registry_kind(&self) -> Option<crate::images::RegistryErrorKind> {
        match self {
            Error::Registry(e) => Some(e.kind()),
            _ => None,
        }
    }

    pub(crate) fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> Error {
        move |source| Error::Io { op, source }
    }
}

/// Result of the runtime crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
