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
        let status = match e.kind() {
            runtime::ErrorKind::NotFound => StatusCode::NOT_FOUND,
            runtime::ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
            runtime::ErrorKind::Conflict => StatusCode::CONFLICT,
            // dockerd answers 500 when its containerd is gone.
            runtime::ErrorKind::Unavailable | runtime::ErrorKind::Internal => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
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
