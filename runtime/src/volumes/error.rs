//! Errors of the volume store, with dockerd's texts (its volume service
//! wraps each as `<op> <name>: <reason>`).

use crate::error::ErrorKind;

/// What can go wrong making, finding or removing a local volume.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No volume has this name.
    #[error("get {0}: no such volume")]
    NoSuchVolume(String),
    /// Containers still mount the volume.
    #[error("remove {name}: volume is in use - [{}]", containers.join(", "))]
    InUse {
        /// The volume.
        name: String,
        /// Full IDs of the containers that mount it.
        containers: Vec<String>,
    },
    /// A name the local driver cannot use as a directory name.
    #[error("create {0}: \"{0}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path")]
    InvalidName(String),
    /// A name of one character.
    #[error("create {0}: volume name is too short, names should be at least two alphanumeric characters")]
    NameTooShort(String),
    /// A driver other than `local`: this node has no volume plugins.
    #[error(
        "create {name}: error looking up volume plugin {driver}: plugin \"{driver}\" not found"
    )]
    NoSuchDriver {
        /// The volume.
        name: String,
        /// The driver asked for.
        driver: String,
    },
    /// An option the local driver does not know.
    #[error("create {name}: invalid option: \"{key}\"")]
    InvalidOption {
        /// The volume.
        name: String,
        /// The option's key.
        key: String,
    },
    /// Mount options (`type`, `device`, `o`): the local driver would mount
    /// a filesystem for the volume, which this node does not do.
    #[error("create {0}: mounting a filesystem for a local volume is not supported on this node")]
    MountOptions(String),
    /// The volume's directory or record could not be read or written.
    #[error("{op} {name}: {source}")]
    Io {
        /// What was being done (`create`, `remove`, ...).
        op: &'static str,
        /// The volume.
        name: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Finding the containers that use volumes failed.
    #[error(transparent)]
    Runtime(#[from] crate::Error),
}

impl Error {
    /// The behaviour class, for the HTTP status.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NoSuchVolume(_) | Error::NoSuchDriver { .. } => ErrorKind::NotFound,
            Error::InUse { .. } => ErrorKind::Conflict,
            Error::InvalidName(_)
            | Error::NameTooShort(_)
            | Error::InvalidOption { .. }
            | Error::MountOptions(_) => ErrorKind::InvalidArgument,
            Error::Io { .. } => ErrorKind::Internal,
            Error::Runtime(e) => e.kind(),
        }
    }

    pub(crate) fn io(op: &'static str, name: &str) -> impl FnOnce(std::io::Error) -> Error {
        let name = name.to_string();
        move |source| Error::Io { op, name, source }
    }
}

/// Result of the volume store.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_dockerds() {
        let e = Error::InUse {
            name: "db".into(),
            containers: vec!["abc".into(), "def".into()],
        };
        assert_eq!(e.to_string(), "remove db: volume is in use - [abc, def]");
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert_eq!(
            Error::NoSuchVolume("x".into()).to_string(),
            "get x: no such volume"
        );
        assert_eq!(
            Error::InvalidName("a/b".into()).to_string(),
            "create a/b: \"a/b\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        );
    }
}
