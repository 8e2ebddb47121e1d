//! Query and header parsing shared by the SSE and poll transports: repeated `channel=`
//! parameters, cursors and credentials.

use axum::http::HeaderMap;
use switchboard_core::Credentials;
use switchboard_protocol::Cursor;

use crate::error::ApiError;
use crate::state::AppState;

/// Parsed query of `/sse` and `/poll`.
#[derive(Debug, Default)]
pub struct StreamQuery {
    /// Channels, in order, without duplicates.
    pub channels: Vec<String>,
    /// `since=` cursor.
    pub since: Option<String>,
    /// `ticket=`.
    pub ticket: Option<String>,
    /// `timeout=` (poll).
    pub timeout: Option<String>,
}

impl StreamQuery {
    /// Parses a raw query string.
    ///
    /// # Errors
    /// 400 for a missing channel, 429 (`limit_exceeded`) for more than `max_channels`.
    pub fn parse(query: Option<&str>, max_channels: usize) -> Result<Self, ApiError> {
        let mut q = StreamQuery::default();
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match &*k {
                // Refused at the first channel past the limit: the duplicate check is linear
                // in the channels kept, so a long query must not make it quadratic.
                "channel" if !q.channels.iter().any(|c| *c == v) => {
                    if q.channels.len() >= max_channels {
                        return Err(ApiError::new(
                            switchboard_protocol::ErrorCode::LimitExceeded,
                            format!("at most {max_channels} channels"),
                        ));
                    }
                    q.channels.push(v.into_owned());
                }
                "channel" => {}
                "since" | "last_event_id" => q.since = Some(v.into_owned()),
                "ticket" => q.ticket = Some(v.into_owned()),
                "timeout" => q.timeout = Some(v.into_owned()),
                _ => {}
            }
        }
        if q.channels.is_empty() {
            return Err(ApiError::bad_request(
                "at least one `channel` parameter is required",
            ));
        }
        Ok(q)
    }

    /// The resume cursor: `Last-Event-ID` (the browser's reconnect) wins over `since`.
    ///
    /// # Errors
    /// 400 for a malformed, oversized or foreign cursor.
    pub fn cursor(&self, headers: &HeaderMap) -> Result<Option<Cursor>, ApiError> {
        let from_header = headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .filter(|s| !s.is_empty());
        let Some(text) = from_header
            .or(self.since.as_deref())
            .filter(|s| !s.is_empty())
        else {
            return Ok(None);
        };
        // SSE ids are `<cursor>.<resume secret>`; the secret is for `credentials`.
        let text = text.split_once('.').map_or(text, |(c, _)| c);
        let names: Vec<&str> = self.channels.iter().map(String::as_str).collect();
        Cursor::decode(text, &names)
            .map(Some)
            .map_err(|e| ApiError::bad_request(format!("invalid cursor: {e}")))
    }

    /// Credentials from `?ticket=` or `Authorization: Bearer`.
    ///
    /// # Errors
    /// 401 when neither is valid.
    pub async fn credentials(
        &self,
        app: &AppState,
        headers: &HeaderMap,
    ) -> Result<Credentials, ApiError> {
        // The browser's automatic SSE reconnect repeats the URL (with its used ticket) and adds
        // `Last-Event-ID`, whose resume secret stands for the stream's credentials.
        let resume = headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|id| id.split_once('.'))
            .map(|(_, secret)| secret);
        if let Some(secret) = resume {
            return app.tickets.redeem_resume(secret).await;
        }
        match &self.ticket {
            Some(t) => app.tickets.redeem(t).await,
            None => app.bearer(headers),
        }
    }
}
