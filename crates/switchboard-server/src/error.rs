//! The one error type of HTTP handlers: a status and a JSON body
//! `{"error":{"code":"...","message":"..."}}`. Internal details are logged, not returned.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use switchboard_protocol::{ErrorCode, ProtocolError};

/// An HTTP error with a stable code.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Error code and message.
    pub error: ProtocolError,
}

/// The HTTP status for an error code (the table in `docs/protocol.md`).
pub fn status_for(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadRequest
        | ErrorCode::InvalidChannel
        | ErrorCode::NotSubscribed
        | ErrorCode::AlreadySubscribed
        | ErrorCode::NotAvailable => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorCode::LimitExceeded | ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UnrecoverablePosition => StatusCode::CONFLICT,
        ErrorCode::Internal => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl ApiError {
    /// An error with the status its code maps to.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status: status_for(code),
            error: ProtocolError::new(code, message),
        }
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    /// 403 `permission_denied`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::PermissionDenied, message)
    }
}

impl From<ProtocolError> for ApiError {
    fn from(error: ProtocolError) -> Self {
        Self {
            status: status_for(error.code),
            error,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(code = %self.error.code, message = %self.error.message, "request failed");
        }
        let body = serde_json::json!({ "error": self.error });
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        // Every JSON problem (syntax, missing field, wrong type, content type) is a 400 with
        // the parser's explanation; only oversized bodies differ.
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::new(ErrorCode::TooLarge, r.body_text())
        } else {
            Self::bad_request(r.body_text())
        }
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        Self::bad_request(r.body_text())
    }
}
