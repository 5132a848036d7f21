//! The one place that maps errors to HTTP status codes and dockerd's JSON body.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::Json;
use swarm::ErrorKind;

/// An error response: a status and dockerd's `{"message": ...}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The text the CLI prints after "Error response from daemon: ".
    pub message: String,
}

impl ApiError {
    /// An error with an explicit status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// 304 Not Modified: dockerd's "nothing to do" (stopping a stopped
    /// container). The response carries no body, so any prefix a handler
    /// adds to the message is never seen.
    pub fn not_modified(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_MODIFIED, message)
    }

    /// Whether this is the body-less 304.
    pub fn is_not_modified(&self) -> bool {
        self.status == StatusCode::NOT_MODIFIED
    }
}

/// Status code for each behaviour class of the control plane.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidArgument | ErrorKind::FailedPrecondition => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::NameConflict => StatusCode::CONFLICT,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Unknown | ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<swarm::Error> for ApiError {
    fn from(e: swarm::Error) -> Self {
        ApiError::new(status_of(e.kind()), e.message())
    }
}

impl From<runtime::Error> for ApiError {
    fn from(e: runtime::Error) -> Self {
        // A registry's refusal keeps the status dockerd passes on for it.
        match e.registry_kind() {
            Some(runtime::images::RegistryErrorKind::Unauthorized) => {
                return ApiError::new(StatusCode::UNAUTHORIZED, e.to_string())
            }
            Some(runtime::images::RegistryErrorKind::Forbidden) => {
                return ApiError::new(StatusCode::FORBIDDEN, e.to_string())
            }
            _ => {}
        }
        ApiError::new(runtime_status(e.kind()), e.to_string())
    }
}

/// Status code for each behaviour class of the runtime.
pub fn runtime_status(kind: runtime::ErrorKind) -> StatusCode {
    match kind {
        runtime::ErrorKind::NotFound => StatusCode::NOT_FOUND,
        runtime::ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
        runtime::ErrorKind::Conflict => StatusCode::CONFLICT,
        runtime::ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        // dockerd answers 500 when its containerd is gone.
        runtime::ErrorKind::Unavailable | runtime::ErrorKind::Internal => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

impl From<runtime::view::Error> for ApiError {
    fn from(e: runtime::view::Error) -> Self {
        match e {
            runtime::view::Error::Runtime(inner) => inner.into(),
            other if other.is_not_modified() => ApiError::not_modified(other.to_string()),
            other => ApiError::new(runtime_status(other.kind()), other.to_string()),
        }
    }
}

impl From<runtime::standalone::Error> for ApiError {
    fn from(e: runtime::standalone::Error) -> Self {
        match e {
            runtime::standalone::Error::Runtime(inner) => inner.into(),
            runtime::standalone::Error::Swarm(inner) => inner.into(),
            other if other.is_not_modified() => ApiError::not_modified(other.to_string()),
            other => ApiError::new(runtime_status(other.kind()), other.to_string()),
        }
    }
}

impl From<runtime::networks::Error> for ApiError {
    fn from(e: runtime::networks::Error) -> Self {
        ApiError::new(runtime_status(e.kind()), e.to_string())
    }
}

impl From<runtime::view::ExecError> for ApiError {
    fn from(e: runtime::view::ExecError) -> Self {
        match e {
            runtime::view::ExecError::Container(inner) => inner.into(),
            other => ApiError::new(runtime_status(other.kind()), other.to_string()),
        }
    }
}

impl From<runtime::volumes::Error> for ApiError {
    fn from(e: runtime::volumes::Error) -> Self {
        match e {
            runtime::volumes::Error::Runtime(inner) => inner.into(),
            other => ApiError::new(runtime_status(other.kind()), other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.is_not_modified() {
            return self.status.into_response();
        }
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, message = %self.message, "request failed");
        }
        (
            self.status,
            Json(serde_json::json!({ "message": self.message })),
        )
            .into_response()
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn not_modified_has_no_body() {
        let e: ApiError = runtime::view::Error::AlreadyStopped.into();
        let r = e.into_response();
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        let body = axum::body::to_bytes(r.into_body(), 1024).await.unwrap();
        assert!(body.is_empty());
    }

    #[test]
    fn container_and_exec_errors_get_dockerds_statuses() {
        let e: ApiError = runtime::view::Error::NotRunning("abc".into()).into();
        assert_eq!(
            (e.status, e.message.as_str()),
            (StatusCode::CONFLICT, "container abc is not running")
        );
        let e: ApiError = runtime::view::ExecError::NoSuchExec("x".into()).into();
        assert_eq!(
            (e.status, e.message.as_str()),
            (StatusCode::NOT_FOUND, "No such exec instance: x")
        );
        let e: ApiError = runtime::view::ExecError::Container(
            runtime::view::Error::NoSuchContainer("nope".into()),
        )
        .into();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        let e: ApiError = runtime::view::ExecError::NoCommand.into();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let e: ApiError = runtime::volumes::Error::InUse {
            name: "db".into(),
            containers: vec!["c1".into()],
        }
        .into();
        assert_eq!(
            (e.status, e.message.as_str()),
            (StatusCode::CONFLICT, "remove db: volume is in use - [c1]")
        );
        let e: ApiError = runtime::volumes::Error::NoSuchVolume("x".into()).into();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
    }
}
