//! CORS for the browser-facing endpoints: the app on `app.example.com`, Switchboard on
//! `rt.example.com`.
//!
//! Policy: an origin on `cors.allowed_origins` (exact match; default: the WebSocket/SSE
//! `allowed_origins` list) gets `Access-Control-Allow-Origin: <that origin>` and `Vary: Origin`
//! on `/sse`, `/poll`, `/cmd`, `/auth/ticket`, `/health` and the SDK, and preflights
//! (`OPTIONS`) answered 204 with the methods and headers the SDK uses. Any other origin, or
//! none, gets no CORS header at all (the browser then refuses the response); a wildcard is
//! never sent. `Access-Control-Allow-Credentials: true` only when `cors.allow_credentials` is
//! set (cookies); the SDK itself sends tokens in `Authorization`, which needs no credentials.
//! The server API under `/api` stays server-to-server unless `cors.api` is set.
//!
//! The middleware is `http::cors`. Hand-written rather than tower-http's layer because the taken-over SSE path
//! (`sse_raw.rs`) writes its own response head and must apply the very same policy.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};

use crate::config::CorsConfig;

/// The resolved policy.
#[derive(Clone, Debug, Default)]
pub struct Cors {
    origins: Vec<String>,
    credentials: bool,
    api: bool,
}

/// How long a browser may cache a preflight.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(600);
pub(crate) const METHODS: &str = "GET, POST, OPTIONS";
pub(crate) const HEADERS: &str = "authorization, content-type, last-event-id, x-api-key";

impl Cors {
    /// The policy from `[cors]`, falling back to `fallback_origins` for the origin list.
    pub fn new(cfg: &CorsConfig, fallback_origins: &[String]) -> Self {
        Self {
            origins: cfg
                .allowed_origins
                .clone()
                .unwrap_or_else(|| fallback_origins.to_vec()),
            credentials: cfg.allow_credentials,
            api: cfg.api,
        }
    }

    /// Whether `path` is served cross-origin at all.
    pub fn covers(&self, path: &str) -> bool {
        matches!(
            path,
            "/sse" | "/poll" | "/cmd" | "/auth/ticket" | "/health" | "/sdk/switchboard.js"
        ) || (self.api && path.starts_with("/api/"))
    }

    /// The request's origin when it is allowed.
    pub fn allowed<'a>(&self, headers: &'a HeaderMap) -> Option<&'a HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        let text = origin.to_str().ok()?;
        self.origins.iter().any(|o| o == text).then_some(origin)
    }

    /// Adds the response headers for a request from `origin` (already checked).
    pub fn apply(&self, origin: Option<&HeaderValue>, out: &mut HeaderMap) {
        out.append(header::VARY, HeaderValue::from_static("origin"));
        if let Some(o) = origin {
            out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o.clone());
            if self.credentials {
                out.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
        }
    }

    /// The same headers as raw header lines, for the taken-over SSE path.
    pub fn header_lines(&self, headers: &HeaderMap) -> String {
        let mut out = String::from("vary: origin\r\n");
        if let Some(o) = self.allowed(headers).and_then(|o| o.to_str().ok()) {
            out.push_str(&format!("access-control-allow-origin: {o}\r\n"));
            if self.credentials {
                out.push_str("access-control-allow-credentials: true\r\n");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_origin(o: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        h
    }

    #[test]
    fn exact_origins_only_and_never_a_wildcard() {
        let c = Cors::new(
            &CorsConfig {
                allowed_origins: Some(vec!["https://app.example.com".into()]),
                allow_credentials: true,
                api: false,
            },
            &[],
        );
        assert!(c.allowed(&with_origin("https://app.example.com")).is_some());
        assert!(
            c.allowed(&with_origin("https://app.example.com.evil"))
                .is_none()
        );
        assert!(c.allowed(&with_origin("null")).is_none());
        assert!(c.allowed(&HeaderMap::new()).is_none());
        let mut out = HeaderMap::new();
        c.apply(None, &mut out);
        assert!(out.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        assert!(out.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
        assert!(!c.covers("/api/publish"));
        assert!(c.covers("/poll"));
    }

    #[test]
    fn falls_back_to_the_websocket_allow_list() {
        let c = Cors::new(&CorsConfig::default(), &["http://a".into()]);
        assert!(c.allowed(&with_origin("http://a")).is_some());
        let none = Cors::new(&CorsConfig::default(), &[]);
        assert!(none.allowed(&with_origin("http://a")).is_none());
    }
}
