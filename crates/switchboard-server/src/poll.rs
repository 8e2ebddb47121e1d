//! The long-poll transport: `GET /poll?channel=..&since=<cursor>&timeout=N`.
//!
//! Stateless: the cursor carries every channel's position, so any node answers. A request
//! subscribes a short-lived session from the cursor (the same buffered recovery as the other
//! transports), returns at once when publications are waiting, otherwise waits for the first
//! one or the timeout, and unsubscribes.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use switchboard_core::{Capabilities, Outbound};
use switchboard_protocol::{ErrorCode, StreamPosition};

use crate::error::ApiError;
use crate::state::AppState;
use crate::stream_query::StreamQuery;

/// Most publications returned by one poll; the cursor lets the client fetch the rest at once.
const MAX_BATCH: usize = 1000;

/// `GET /poll`.
pub async fn handler(State(app): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    match poll(app, uri, headers).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn poll(app: AppState, uri: Uri, headers: HeaderMap) -> Result<Response, ApiError> {
    let node = app.node.clone();
    let q = StreamQuery::parse(
        uri.query(),
        node.config().limits.max_subscriptions_per_session,
    )?;
    let timeout = match q.timeout.as_deref() {
        None => app.settings.poll_max_timeout.min(Duration::from_secs(25)),
        Some(t) => Duration::from_secs(
            t.parse::<u64>()
                .map_err(|_| ApiError::bad_request("timeout must be whole seconds"))?,
        ),
    }
    .min(app.settings.poll_max_timeout);
    let creds = app.bearer(&headers)?;
    for ch in &q.channels {
        let name = node.channel(ch)?;
        if node.policy(&name).history_size == 0 {
            return Err(ApiError::new(
                ErrorCode::NotAvailable,
                format!(
                    "channel {ch} keeps no history; polling needs history to resume between requests"
                ),
            ));
        }
    }
    let cursor = q.cursor(&headers)?;
    let mut session = node.session(Capabilities::POLL);
    session.connect_with(creds)?;
    let resumed = session.resume(&q.channels, cursor.as_ref()).await?;
    let (mut out, reset) = (resumed.cursor, resumed.reset);
    let mut publications: Vec<Bytes> = Vec::new();
    if cursor.is_some() {
        let outbox = &session.handle().outbox;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut items = Vec::new();
        loop {
            let closed = outbox.drain(&mut items, MAX_BATCH - publications.len());
            for item in items.drain(..) {
                if let Outbound::Pub(p) = item {
                    out.set(&p.channel, StreamPosition::new(p.offset, &*p.epoch));
                    publications.push(p.json.clone());
                }
            }
            // Return as soon as there is something to say, or the session was closed (token
            // expiry, drain): the next poll continues from the cursor.
            if !publications.is_empty() || !reset.is_empty() || closed.is_some() {
                break;
            }
            // A draining node answers waiting polls at once (the cursor is current), so they
            // finish within the shutdown grace and the client polls another node.
            let draining = node.shutdown_token();
            tokio::select! {
                r = tokio::time::timeout_at(deadline, outbox.wait()) => if r.is_err() { break },
                _ = draining.cancelled() => break,
            }
        }
    }
    session.close(None).await;
    let body = encode_body(&publications, &out.encode(), &reset);
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `{"publications":[..],"cursor":"..","reset":[..]}`, with each publication push embedded as
/// the bytes every other transport sends (stored data is never parsed again).
fn encode_body(publications: &[Bytes], cursor: &str, reset: &[String]) -> Bytes {
    let len = publications.iter().map(|p| p.len() + 1).sum::<usize>() + cursor.len() + 64;
    let mut body = Vec::with_capacity(len);
    body.extend_from_slice(br#"{"publications":["#);
    for (i, p) in publications.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(p);
    }
    body.extend_from_slice(br#"],"cursor":"#);
    // Strings serialize infallibly; the fallbacks keep this free of panics regardless.
    body.extend_from_slice(&serde_json::to_vec(cursor).unwrap_or_else(|_| b"\"\"".to_vec()));
    if !reset.is_empty() {
        body.extend_from_slice(br#","reset":"#);
        body.extend_from_slice(&serde_json::to_vec(reset).unwrap_or_else(|_| b"[]".to_vec()));
    }
    body.push(b'}');
    Bytes::from(body)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    #[test]
    fn body_embeds_pushes_verbatim() {
        let deep = format!(
            r#"{{"op":"pub","data":{}{}}}"#,
            "[".repeat(500),
            "]".repeat(500)
        );
        let body = super::encode_body(
            &[
                Bytes::from_static(br#"{"op":"pub"}"#),
                Bytes::from(deep.clone()),
            ],
            "1abc",
            &["a".to_owned()],
        );
        assert_eq!(
            String::from_utf8(body.to_vec()).unwrap(),
            format!(r#"{{"publications":[{{"op":"pub"}},{deep}],"cursor":"1abc","reset":["a"]}}"#)
        );
    }
}
