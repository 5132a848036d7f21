//! Errors across the wire: a `swarm::Error` travels as a gRPC status whose
//! code carries its kind and whose message is its user-visible text, so the
//! node that answers the API reports exactly what the node that failed said.

use tonic::Code;
use tonic::Status;

use crate::error::Error;
use crate::error::ErrorKind;

/// The gRPC status for an error of the control plane.
pub fn to_status(e: &Error) -> Status {
    let code = match e.kind() {
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::NameConflict => Code::AlreadyExists,
        ErrorKind::Unauthorized => Code::Unauthenticated,
        ErrorKind::FailedPrecondition => Code::FailedPrecondition,
        ErrorKind::Unknown => Code::Unknown,
        ErrorKind::Unimplemented => Code::Unimplemented,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Internal => Code::Internal,
    };
    Status::new(code, e.message())
}

/// The control-plane error a peer's status stands for. Transport failures
/// (no connection, a reset stream) are `Unavailable`.
pub fn from_status(s: &Status) -> Error {
    let kind = match s.code() {
        Code::InvalidArgument | Code::OutOfRange => ErrorKind::InvalidArgument,
        Code::NotFound => ErrorKind::NotFound,
        Code::AlreadyExists => ErrorKind::NameConflict,
        Code::Unauthenticated | Code::PermissionDenied => ErrorKind::Unauthorized,
        Code::FailedPrecondition => ErrorKind::FailedPrecondition,
        Code::Unknown => ErrorKind::Unknown,
        Code::Unimplemented => ErrorKind::Unimplemented,
        Code::Internal | Code::DataLoss => ErrorKind::Internal,
        _ => ErrorKind::Unavailable,
    };
    Error::new(kind, s.message())
}

/// Whether the call failed before the peer could act on it (no connection,
/// a broken stream, a timeout): safe to try again elsewhere.
pub fn is_transport(s: &Status) -> bool {
    matches!(
        s.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_texts_survive_the_wire() {
        for kind in [
            ErrorKind::InvalidArgument,
            ErrorKind::NotFound,
            ErrorKind::NameConflict,
            ErrorKind::Unauthorized,
            ErrorKind::FailedPrecondition,
            ErrorKind::Unknown,
            ErrorKind::Unimplemented,
            ErrorKind::Unavailable,
            ErrorKind::Internal,
        ] {
            let e = Error::new(kind, "rpc error: code = X desc = some text");
            let back = from_status(&to_status(&e));
            assert_eq!(back.kind(), kind);
            assert_eq!(back.message(), e.message());
        }
    }
}
