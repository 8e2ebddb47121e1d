//! The SSE transport: `GET /sse?channel=a&channel=b`, usable by a bare `EventSource`.
//!
//! Every event that moves a position carries an `id:` cursor with every channel's position, so
//! the browser's own reconnect (`Last-Event-ID`) resumes exactly. Publications are the same
//! JSON as WebSocket pushes (shared bytes); only the `id:` line is per connection.
//!
//! Two ways to carry the stream: plain-TCP connections whose first request is `GET /sse` are
//! taken over by `sse_raw.rs` (no HTTP machinery kept per stream: a few KiB per idle
//! stream); everything else (TLS, keep-alive reuse, embedding in another app) streams through
//! hyper as a response body. Both share [`prepare`] and [`Renderer`].

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::stream;
use switchboard_core::{Capabilities, EventKind, Outbound, Session};
use switchboard_protocol::{Cursor, Disconnect};

use crate::error::ApiError;
use crate::limits::ConnGuard;
use crate::state::AppState;
use crate::stream_query::StreamQuery;

/// Items rendered per write.
pub const BATCH: usize = 64;

/// A stream ready to run: subscribed session, first bytes, cursor.
pub struct Prepared {
    /// The session (subscribed).
    pub session: Session,
    /// `retry:`, `welcome` and maybe `reset`.
    pub head: Bytes,
    /// Turns queued items into SSE bytes.
    pub renderer: Renderer,
    /// Keep-alive comment interval.
    pub keepalive: Duration,
    /// The admission slot.
    pub guard: ConnGuard,
    resume: String,
    tickets: std::sync::Arc<crate::tickets::Tickets>,
}

/// One step of a stream: the SSE bytes of up to [`BATCH`] queued items.
pub struct Batch {
    /// Byte segments to write, in order (empty when nothing was queued).
    pub segments: Vec<Bytes>,
    /// The stream ends after these segments (a `disconnect` event is among them).
    pub closed: bool,
    /// A full batch was taken and more may be queued: take another before waiting (the outbox
    /// only wakes a stream when it goes from empty to non-empty).
    pub more: bool,
}

impl Prepared {
    /// Drains and renders the next batch; both stream paths call it.
    pub fn next_batch(&mut self) -> Batch {
        let handle = self.session.handle().clone();
        let mut items = Vec::new();
        let closed = handle.outbox.drain(&mut items, BATCH);
        let more = items.len() == BATCH;
        let mut segments = Vec::new();
        for item in items {
            self.renderer.render(item, &mut segments);
        }
        if let Some(d) = &closed {
            let bye = Renderer::disconnect(d, handle.reconnect_delay_ms());
            segments.push(self.renderer.frame(bye));
            self.finish(Some(d));
        }
        Batch {
            segments,
            closed: closed.is_some(),
            more,
        }
    }

    /// Called when the stream ends: a terminal disconnect revokes the resume secret, so the
    /// browser's automatic reconnect is refused.
    pub fn finish(&self, reason: Option<&Disconnect>) {
        if reason.is_some_and(|d| !d.reconnect) {
            let (tickets, resume) = (self.tickets.clone(), self.resume.clone());
            tokio::spawn(async move { tickets.revoke_resume(&resume).await });
        }
    }
}

/// Renders outbox items as SSE events, keeping the stream's cursor.
pub struct Renderer {
    /// Frame each event as an HTTP/1.1 chunk (the taken-over path; hyper chunks by itself).
    pub chunked: bool,
    cursor: Cursor,
    /// `.<resume secret>` appended to every id (see [`crate::tickets::Tickets::issue_resume`]).
    suffix: String,
}

const DATA: &[u8] = b"data: ";
const END: &[u8] = b"\n\n";
/// A keep-alive comment.
pub const PING: &[u8] = b": ping\n\n";

fn event_bytes(event: Option<&str>, id: Option<&str>, data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 64);
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
    out.put_slice(DATA);
    out.put_slice(data);
    out.put_slice(END);
    out.freeze()
}

/// `bytes` as one HTTP/1.1 chunk (RFC 9112 §7.1): hex length, CRLF, data, CRLF.
pub fn chunk(bytes: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(bytes.len() + 12);
    out.extend_from_slice(format!("{:x}\r\n", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
    Bytes::from(out)
}

/// Room kept in front of an event for its chunk header (six hex digits and CRLF: events up to
/// 16 MiB, far above the message size limit).
const CHUNK_HEAD: usize = 8;

impl Renderer {
    /// Appends the byte segments of `item` to `out`: one buffer per event, with this stream's
    /// `id:` line and the publication's shared JSON (and, on a chunked stream, its chunk framing
    /// in the same buffer).
    pub fn render(&mut self, item: Outbound, out: &mut Vec<Bytes>) {
        let ev = match item {
            Outbound::Pub(p) => {
                self.cursor.advance(&p.channel, p.offset, &p.epoch);
                let mut ev =
                    Vec::with_capacity(CHUNK_HEAD + 48 + self.suffix.len() + p.json.len() + 2);
                if self.chunked {
                    ev.resize(CHUNK_HEAD, 0);
                }
                ev.extend_from_slice(b"id: ");
                self.cursor.encode_to(&mut ev);
                ev.extend_from_slice(self.suffix.as_bytes());
                ev.push(b'\n');
                ev.extend_from_slice(DATA);
                ev.extend_from_slice(&p.json);
                ev.extend_from_slice(END);
                if !self.chunked {
                    out.push(Bytes::from(ev));
                    return;
                }
                // Write the chunk header right-aligned into the room kept for it.
                let len = ev.len() - CHUNK_HEAD;
                let head = format!("{len:x}\r\n");
                let Some(start) = CHUNK_HEAD.checked_sub(head.len()) else {
                    // Larger than the room kept (a message size limit above 16 MiB): copy.
                    out.push(chunk(&ev[CHUNK_HEAD..]));
                    return;
                };
                ev[start..CHUNK_HEAD].copy_from_slice(head.as_bytes());
                ev.extend_from_slice(b"\r\n");
                out.push(Bytes::from(ev).slice(start..));
                return;
            }
            Outbound::Event(EventKind::Join, b) => event_bytes(Some("join"), None, &b),
            Outbound::Event(EventKind::Leave, b) => event_bytes(Some("leave"), None, &b),
            Outbound::Event(EventKind::Reset, b) => {
                event_bytes(Some("reset"), Some(&self.id()), &b)
            }
            Outbound::Event(_, _) => return,
            Outbound::Ping => Bytes::from_static(PING),
        };
        out.push(self.frame(ev));
    }

    /// Frames a whole event for this stream (a chunk, on a chunked stream).
    pub fn frame(&self, event: Bytes) -> Bytes {
        if self.chunked { chunk(&event) } else { event }
    }

    fn id(&self) -> String {
        format!("{}{}", self.cursor.encode(), self.suffix)
    }

    /// The final `disconnect` event.
    pub fn disconnect(d: &Disconnect, delay_ms: Option<u64>) -> Bytes {
        let data = switchboard_protocol::push::encode_disconnect(d, delay_ms);
        event_bytes(Some("disconnect"), None, &data)
    }
}

/// Authenticates, admits and subscribes a stream.
///
/// # Errors
/// An [`ApiError`] to answer instead of the stream.
pub async fn prepare(
    app: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Result<Prepared, ApiError> {
    let node = app.node.clone();
    let q = StreamQuery::parse(
        uri.query(),
        node.config().limits.max_subscriptions_per_session,
    )?;
    app.check_origin(headers)?;
    let cursor = q.cursor(headers)?;
    let creds = q.credentials(app, headers).await?;
    let mut ext = Extensions::new();
    if let Some(p) = peer {
        ext.insert(ConnectInfo(p));
    }
    let guard = app.limits.admit(Some(creds.user.as_str()), &ext)?;
    let mut session = node.session(Capabilities::SSE);
    let welcome = session.connect_with(creds.clone())?;
    let resumed = session.resume(&q.channels, cursor.as_ref()).await?;
    let (initial, reset) = (resumed.cursor, resumed.reset);
    let resume = app.tickets.issue_resume(&creds).await?;
    let mut head = BytesMut::new();
    // Jittered per connection, so a restart does not bring every browser back at once.
    let retry = 2000 + rand::random::<u64>() % 3000;
    head.put_slice(format!("retry: {retry}\n").as_bytes());
    let welcome_json = serde_json::json!({
        "client": welcome.client, "user": welcome.user, "expires_in": welcome.expires_in, "channels": q.channels,
    });
    let id = format!("{}.{resume}", initial.encode());
    // With a reset, only the reset event carries the new position: a client cut between the
    // two resumes from its old position and is told about the reset again, instead of
    // resuming past it without ever seeing it.
    let welcome_id = reset.is_empty().then_some(id.as_str());
    head.put_slice(&event_bytes(
        Some("welcome"),
        welcome_id,
        welcome_json.to_string().as_bytes(),
    ));
    if !reset.is_empty() {
        let data = serde_json::json!({"channels": reset, "reason": "position cannot be recovered; reload state"});
        head.put_slice(&event_bytes(
            Some("reset"),
            Some(&id),
            data.to_string().as_bytes(),
        ));
    }
    Ok(Prepared {
        session,
        head: head.freeze(),
        renderer: Renderer {
            chunked: false,
            cursor: initial,
            suffix: format!(".{resume}"),
        },
        resume,
        tickets: app.tickets.clone(),
        keepalive: app.settings.sse_keepalive.max(Duration::from_secs(1)),
        guard,
    })
}

/// The response head of a stream.
pub const HEADERS: [(&str, &str); 3] = [
    ("content-type", "text/event-stream"),
    ("cache-control", "no-cache"),
    ("x-accel-buffering", "no"),
];

struct BodyStream {
    p: Option<Prepared>,
    done: bool,
}

impl BodyStream {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        let p = self.p.as_mut()?;
        loop {
            let batch = p.next_batch();
            if !batch.segments.is_empty() {
                self.done = batch.closed;
                return Some(batch.segments.concat().into());
            }
            let handle = p.session.handle().clone();
            tokio::select! {
                _ = handle.outbox.wait() => {}
                _ = tokio::time::sleep(p.keepalive) => return Some(Bytes::from_static(PING)),
            }
        }
    }
}

/// `GET /sse` through hyper (TLS, reused connections, embedding).
pub async fn handler(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    req: axum::extract::Request,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let p = match prepare(&app, &uri, &headers, peer).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let head = p.head.clone();
    let state = BodyStream {
        p: Some(p),
        done: false,
    };
    let first = stream::once(async move { Ok::<_, std::convert::Infallible>(head) });
    let rest = stream::unfold(state, |mut s| async move {
        s.next_chunk().await.map(|b| (Ok(b), s))
    });
    let mut res = (
        StatusCode::OK,
        Body::from_stream(futures_util::StreamExt::chain(first, rest)),
    )
        .into_response();
    for (k, v) in HEADERS {
        res.headers_mut().insert(k, HeaderValue::from_static(v));
    }
    res
}
