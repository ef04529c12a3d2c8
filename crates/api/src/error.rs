//! The one place errors become HTTP responses: MLflow's `{error_code, message}` body and status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kittiwake_domain::{Error, ErrorKind};
use serde_json::json;

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self(Error::invalid(message))
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self(Error::new(ErrorKind::TooLarge, message))
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self.0.kind {
            ErrorKind::InvalidParameter => (StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE"),
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST"),
            ErrorKind::AlreadyExists => (StatusCode::BAD_REQUEST, "RESOURCE_ALREADY_EXISTS"),
            ErrorKind::Unauthenticated => (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
            ErrorKind::PermissionDenied => (StatusCode::FORBIDDEN, "PERMISSION_DENIED"),
            ErrorKind::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "REQUEST_LIMIT_EXCEEDED"),
            ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!(error = %self.0.message, "request failed");
        }
        let mut response = (
            status,
            Json(json!({"error_code": code, "message": self.0.message})),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
