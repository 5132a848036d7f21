//! Errors of the Docker container view, with dockerd's texts.

use crate::error::ErrorKind;

/// What can go wrong finding or acting on a task container.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nothing matches the name, ID or ID prefix given.
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    /// An ID prefix matches several containers.
    #[error("multiple IDs found with provided prefix: {0}")]
    AmbiguousPrefix(String),
    /// A signal name or number that does not parse.
    #[error("invalid signal: {0}")]
    InvalidSignal(String),
    /// Signalling a container whose process does not run (the ID is the
    /// full container ID, as dockerd words it).
    #[error("container {0} is not running")]
    NotRunning(String),
    /// Stopping a container that is not running: not a failure, dockerd
    /// answers 304.
    #[error("container is already stopped")]
    AlreadyStopped,
    /// Removing a running container without force; `reference` is what
    /// the client named it.
    #[error("cannot remove container {}: container is running: stop the container before removing or force remove", go_quote(.0))]
    RemoveRunning(String),
    /// containerd failed.
    #[error(transparent)]
    Runtime(#[from] crate::Error),
    /// Tearing the container down failed.
    #[error("{0}")]
    Teardown(String),
    /// `docker top` of a container whose process does not run (dockerd
    /// words this one with a capital).
    #[error("Container {0} is not running")]
    TopNotRunning(String),
    /// `docker cp`: the path does not exist in the container; `container`
    /// is what the client named it.
    #[error("Could not find the file {path} in container {container}")]
    NoSuchPath {
        /// The path as the client gave it.
        path: String,
        /// The container as the client named it.
        container: String,
    },
    /// `docker cp` into a path that is not a directory (a plain error in
    /// dockerd: 500).
    #[error("extraction point is not a directory")]
    NotADirectory,
    /// Reading or writing the container's files failed.
    #[error("{op}: {source}")]
    Files {
        /// What was being done.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `ps` refused, failed or printed what `docker top` cannot read
    /// (dockerd answers all of these with 500).
    #[error("{0}")]
    Top(String),
}

impl Error {
    /// The behaviour class, for the HTTP status.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NoSuchContainer(_) => ErrorKind::NotFound,
            Error::AmbiguousPrefix(_) | Error::InvalidSignal(_) => ErrorKind::InvalidArgument,
            Error::NotRunning(_) | Error::RemoveRunning(_) | Error::TopNotRunning(_) => {
                ErrorKind::Conflict
            }
            Error::Runtime(e) => e.kind(),
            Error::NoSuchPath { .. } => ErrorKind::NotFound,
            Error::NotADirectory | Error::Files { .. } => ErrorKind::Internal,
            Error::AlreadyStopped | Error::Teardown(_) | Error::Top(_) => ErrorKind::Internal,
        }
    }

    /// Whether this is dockerd's "nothing to do" answer (HTTP 304).
    pub fn is_not_modified(&self) -> bool {
        matches!(self, Error::AlreadyStopped)
    }
}

/// A string quoted as Go's `%q` does for printable text.
fn go_quote(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// Result of the view.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_dockerds() {
        assert_eq!(
            Error::RemoveRunning("web.1.x".into()).to_string(),
            "cannot remove container \"web.1.x\": container is running: stop the container before removing or force remove"
        );
        assert_eq!(
            Error::NoSuchContainer("x".into()).to_string(),
            "No such container: x"
        );
        assert_eq!(
            Error::NoSuchContainer("x".into()).kind(),
            ErrorKind::NotFound
        );
    }
}
