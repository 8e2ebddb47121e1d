//! Access logging and request ids.
//!
//! Every request gets an `x-request-id`: the caller's (a proxy's, e.g. nginx `$request_id`)
//! when it sends a sane one, otherwise a fresh one. It is echoed in the response and recorded on
//! the request's span, so every log line written while handling the request carries it.
//!
//! Never logged: query strings (tickets travel in `?ticket=`), headers (`Authorization`,
//! `X-API-Key`), bodies. Paths are logged as the matched route when there is one.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The request id header.
pub const REQUEST_ID: &str = "x-request-id";

/// Longest request id accepted from a caller; longer or odd ones are replaced.
const MAX_ID_LEN: usize = 64;

fn caller_id(req: &Request) -> Option<HeaderValue> {
    let v = req.headers().get(REQUEST_ID)?;
    let ok = !v.is_empty()
        && v.len() <= MAX_ID_LEN
        && v.as_bytes()
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then(|| v.clone())
}

/// A fresh request id: 16 random bytes in hex.
pub fn new_request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Assigns the request id, logs method, route, status and latency at debug level (errors at
/// info), and records the HTTP metrics.
pub async fn log(mut req: Request, next: Next) -> Response {
    let id = caller_id(&req).unwrap_or_else(|| {
        HeaderValue::from_str(&new_request_id()).unwrap_or(HeaderValue::from_static("-"))
    });
    req.headers_mut().insert(REQUEST_ID, id.clone());
    let method = req.method().clone();
    // The matched pattern (`/api/publish`), never the raw URI: bounded label values and no
    // query string.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let request_id = id.to_str().unwrap_or("-").to_owned();
    let span = tracing::info_span!("http", %request_id, %method, %route);
    let started = Instant::now();
    let mut res = next.run(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = res.status().as_u16();
    res.headers_mut().insert(REQUEST_ID, id);
    crate::metrics::http_response(route, status, elapsed.as_secs_f64());
    let ms = elapsed.as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::info!(status, ms, "request");
        } else {
            tracing::debug!(status, ms, "request");
        }
    });
    res
}
