//! Errors of an executor, sorted by behaviour.

/// A failure of a controller operation.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExecError {
    /// Worth retrying later (containerd restarting, image pull hiccup).
    #[error("{0}")]
    Temporary(String),
    /// The task cannot run as specified (bad image, bad mount): reject or fail it.
    #[error("{0}")]
    Fatal(String),
    /// The operation is not supported by this executor.
    #[error("operation not supported by this executor")]
    Unsupported,
}

impl ExecError {
    /// Whether retrying may succeed.
    pub fn is_temporary(&self) -> bool {
        matches!(self, ExecError::Temporary(_))
    }
}
