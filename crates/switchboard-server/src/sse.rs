//! The SSE transport: `GET /sse?channel=a&channel=b`, usable by a bare `EventSource`.
//!
//! Every event that moves a position carries an `id:` cursor with every channel's position, so
//! the browser's own reconnect (`Last-Event-ID`) resumes exactly. Publications are the same
//! JSON as WebSocket pushes (shared bytes); only the `id:` line is per connection.

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::stream;
use switchboard_core::{EventKind, Outbound, Session, Transport};
use switchboard_protocol::{Cursor, Disconnect, StreamPosition};

use crate::error::ApiError;
use crate::limits::ConnGuard;
use crate::state::AppState;
use crate::stream_query::StreamQuery;

/// Items written per chunk.
const BATCH: usize = 64;

struct Stream {
    session: Option<Session>,
    cursor: Cursor,
    keepalive: tokio::time::Interval,
    done: bool,
    _guard: ConnGuard,
}

impl Drop for Stream {
    fn drop(&mut self) {
        // The client went away: unsubscribe and unregister off the hot path.
        if let Some(mut s) = self.session.take() {
            tokio::spawn(async move { s.close(None).await });
        }
    }
}

fn put_event(out: &mut BytesMut, event: Option<&str>, id: Option<&str>, data: &[u8]) {
    if let Some(e) = event {
        out.put_slice(b"event: ");
        out.put_slice(e.as_bytes());
        out.put_u8(b'\n');
    }
    if let Some(id) = id {
        out.put_slice(b"id: ");
        out.put_slice(id.as_bytes());
        out.put_u8(b'\n');
    }
    out.put_slice(b"data: ");
    out.put_slice(data);
    out.put_slice(b"\n\n");
}

impl Stream {
    /// Renders queued items; `None` ends the stream.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        let session = self.session.as_ref()?;
        let outbox = &session.handle().outbox;
        let mut items = Vec::new();
        loop {
            let closed = outbox.drain(&mut items, BATCH);
            if !items.is_empty() || closed.is_some() {
                let mut out = BytesMut::new();
                for item in items.drain(..) {
                    match item {
                        Outbound::Pub(p) => {
                            self.cursor
                                .set(&p.channel, StreamPosition::new(p.offset, &*p.epoch));
                            put_event(&mut out, None, Some(&self.cursor.encode()), &p.json);
                        }
                        Outbound::Event(EventKind::Join, b) => {
                            put_event(&mut out, Some("join"), None, &b)
                        }
                        Outbound::Event(EventKind::Leave, b) => {
                            put_event(&mut out, Some("leave"), None, &b)
                        }
                        Outbound::Event(EventKind::Reset, b) => {
                            put_event(&mut out, Some("reset"), Some(&self.cursor.encode()), &b)
                        }
                        Outbound::Event(_, _) => {}
                        Outbound::Ping => out.put_slice(b": ping\n\n"),
                    }
                }
                if let Some(d) = closed {
                    put_event(&mut out, Some("disconnect"), None, &disconnect_json(&d));
                    self.done = true;
                }
                self.keepalive.reset();
                return Some(out.freeze());
            }
            tokio::select! {
                _ = outbox.wait() => {}
                _ = self.keepalive.tick() => return Some(Bytes::from_static(b": ping\n\n")),
            }
        }
    }
}

fn disconnect_json(d: &Disconnect) -> Vec<u8> {
    serde_json::to_vec(
        &serde_json::json!({"code": d.code, "reason": d.reason, "reconnect": d.reconnect}),
    )
    .unwrap_or_default()
}

/// Subscribes `session` to every channel, resuming from `cursor`; returns the initial cursor
/// and the channels that could not be resumed.
///
/// # Errors
/// The first channel error (invalid name, permission, engine).
pub async fn subscribe_all(
    session: &mut Session,
    channels: &[String],
    cursor: Option<&Cursor>,
) -> Result<(Cursor, Vec<String>), ApiError> {
    let mut out = Cursor::new();
    let mut reset = Vec::new();
    for ch in channels {
        let since = cursor.and_then(|c| c.get(ch)).cloned();
        let r = session
            .subscribe_stream(ch, since.clone())
            .await
            .map_err(ApiError::from)?;
        match since {
            // Recovered: the queued publications will advance the cursor from `since`.
            Some(s) if r.recovered => out.set(ch, s),
            Some(_) => {
                reset.push(ch.clone());
                out.set(ch, r.position);
            }
            None => out.set(ch, r.position),
        }
    }
    Ok((out, reset))
}

/// `GET /sse`.
pub async fn handler(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    req: axum::extract::Request,
) -> Response {
    match open(app, uri, headers, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn open(
    app: AppState,
    uri: Uri,
    headers: HeaderMap,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let node = app.node.clone();
    let q = StreamQuery::parse(
        uri.query(),
        node.config().limits.max_subscriptions_per_session,
    )?;
    app.check_origin(&headers)?;
    let cursor = q.cursor(&headers)?;
    let creds = q.credentials(&app, &headers)?;
    let guard = app
        .limits
        .admit(&app, Some(creds.user.as_str()), req.extensions())?;
    let mut session = node.session(Transport::Sse);
    let welcome = session.connect_with(creds);
    let (initial, reset) = match subscribe_all(&mut session, &q.channels, cursor.as_ref()).await {
        Ok(x) => x,
        Err(e) => {
            session.close(None).await;
            return Err(e);
        }
    };
    let mut head = BytesMut::new();
    let retry = 2000 + rand::random::<u64>() % 3000;
    head.put_slice(format!("retry: {retry}\n").as_bytes());
    let welcome_json = serde_json::json!({
        "client": welcome.client, "user": welcome.user, "expires_in": welcome.expires_in, "channels": q.channels,
    });
    put_event(
        &mut head,
        Some("welcome"),
        Some(&initial.encode()),
        welcome_json.to_string().as_bytes(),
    );
    if !reset.is_empty() {
        let data = serde_json::json!({"channels": reset, "reason": "position cannot be recovered; reload state"});
        put_event(
            &mut head,
            Some("reset"),
            Some(&initial.encode()),
            data.to_string().as_bytes(),
        );
    }
    let mut keepalive =
        tokio::time::interval(app.settings.sse_keepalive.max(Duration::from_secs(1)));
    keepalive.reset();
    let state = Stream {
        session: Some(session),
        cursor: initial,
        keepalive,
        done: false,
        _guard: guard,
    };
    let first = stream::once(async move { Ok::<_, std::convert::Infallible>(head.freeze()) });
    let rest = stream::unfold(state, |mut s| async move {
        s.next_chunk().await.map(|b| (Ok(b), s))
    });
    let body = Body::from_stream(futures_util::StreamExt::chain(first, rest));
    let mut res = (StatusCode::OK, body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(res)
}
