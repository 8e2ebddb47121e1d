//! Error codes carried in error replies.

use serde::{Serialize, Serializer};

/// Short, stable error codes sent in `{"error":{"code":...}}` replies and HTTP JSON bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The command is malformed (bad JSON, unknown op, wrong field type, missing field).
    BadRequest,
    /// Missing or invalid credentials.
    Unauthorized,
    /// Credentials are valid but do not allow this action.
    PermissionDenied,
    /// The channel name does not follow the grammar or is too long.
    InvalidChannel,
    /// The command needs a subscription the session does not have.
    NotSubscribed,
    /// A configured limit (subscriptions, connections, ...) was reached.
    LimitExceeded,
    /// Too many commands in too short a time.
    RateLimited,
    /// The message is larger than allowed.
    TooLarge,
    /// The requested position cannot be served from history.
    UnrecoverablePosition,
    /// The feature is disabled for this channel or node (history, presence, ...).
    NotAvailable,
    /// Something failed inside the node (engine unreachable, ...). Retrying may help.
    Internal,
    /// The command was already done (e.g. subscribing twice).
    AlreadySubscribed,
}

impl ErrorCode {
    /// Every code, for documentation and tests.
    pub const ALL: [ErrorCode; 12] = [
        Self::BadRequest,
        Self::Unauthorized,
        Self::PermissionDenied,
        Self::InvalidChannel,
        Self::NotSubscribed,
        Self::LimitExceeded,
        Self::RateLimited,
        Self::TooLarge,
        Self::UnrecoverablePosition,
        Self::NotAvailable,
        Self::Internal,
        Self::AlreadySubscribed,
    ];

    /// The wire form of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::PermissionDenied => "permission_denied",
            Self::InvalidChannel => "invalid_channel",
            Self::NotSubscribed => "not_subscribed",
            Self::LimitExceeded => "limit_exceeded",
            Self::RateLimited => "rate_limited",
            Self::TooLarge => "too_large",
            Self::UnrecoverablePosition => "unrecoverable_position",
            Self::NotAvailable => "not_available",
            Self::Internal => "internal",
            Self::AlreadySubscribed => "already_subscribed",
        }
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error a command produced: a code and a human-readable message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{code}: {message}")]
pub struct ProtocolError {
    /// The stable code.
    pub code: ErrorCode,
    /// What went wrong, for humans.
    pub message: String,
}

impl ProtocolError {
    /// Creates an error.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}
