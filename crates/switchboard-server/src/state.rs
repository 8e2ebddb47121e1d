//! Shared state of the HTTP layer.

use std::sync::Arc;

use axum::http::{HeaderMap, header};
use switchboard_core::Node;

use crate::config::Settings;
use crate::cors::Cors;
use crate::error::ApiError;
use crate::limits::Admission;
use crate::tickets::Tickets;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The node.
    pub node: Node,
    /// HTTP-level settings.
    pub settings: Arc<Settings>,
    /// Connection tickets.
    pub tickets: Arc<Tickets>,
    /// Connection admission.
    pub limits: Arc<Admission>,
    /// Cross-origin policy.
    pub cors: Arc<Cors>,
}

impl AppState {
    /// Creates the state.
    pub fn new(node: Node, settings: Settings) -> Self {
        let tickets = Arc::new(Tickets::new(settings.ticket_ttl, node.engine().clone()));
        let limits = Arc::new(Admission::new(
            settings.connections.clone(),
            node.shutdown_token(),
        ));
        let cors = Arc::new(Cors::new(&settings.cors, &settings.allowed_origins));
        Self {
            node,
            cors,
            settings: Arc::new(settings),
            tickets,
            limits,
        }
    }

    /// Checks the `Origin` header against the allow-list (exact match). Requests without
    /// `Origin` (non-browser clients) pass; an empty list allows every origin.
    ///
    /// # Errors
    /// 403 for an origin not on the list.
    pub fn check_origin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let allowed = &self.settings.allowed_origins;
        if allowed.is_empty() {
            return Ok(());
        }
        match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
            None => Ok(()),
            Some(o) if allowed.iter().any(|a| a == o) => Ok(()),
            Some(_) => Err(ApiError::forbidden("origin not allowed")),
        }
    }

    /// Verifies an `Authorization: Bearer` header.
    ///
    /// # Errors
    /// 401 when missing or invalid.
    pub fn bearer(&self, headers: &HeaderMap) -> Result<switchboard_core::Credentials, ApiError> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token>"))?;
        self.node
            .verify_token(token.trim())
            .map_err(|e| ApiError::unauthorized(e.to_string()))
    }
}
