//! SSE on a taken-over TCP connection.
//!
//! A plain-TCP connection whose first request is `GET /sse` never enters hyper: the accept loop
//! peeks at it, this module reads and parses the request head (httparse), answers with a
//! chunked `text/event-stream` response (close-delimited for HTTP/1.0), and writes events straight to the socket with
//! vectored writes. Nothing HTTP-related stays allocated per stream, which is what keeps an
//! idle stream at a few KiB instead of hyper's ~11 KiB per held connection.

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::ApiError;
use crate::sse::{HEADERS, PING, Prepared, prepare};
use crate::state::AppState;

/// Largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// Whether the bytes at the start of a connection are an SSE request for this module.
pub fn is_sse_request(peeked: &[u8]) -> bool {
    peeked.starts_with(b"GET /sse?") || peeked.starts_with(b"GET /sse ")
}

/// Why no request head could be read.
enum HeadError {
    /// The client went away or stalled past the header timeout: nothing to answer.
    Gone,
    /// The head passed [`MAX_HEAD`]; `line_complete` tells a long URI (414) from long headers
    /// (431).
    TooLarge { line_complete: bool },
}

async fn read_head(tcp: &mut TcpStream, timeout: Duration) -> Result<BytesMut, HeadError> {
    let mut buf = BytesMut::with_capacity(2048);
    let read = tokio::time::timeout(timeout, async {
        loop {
            if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                return Ok(());
            }
            if buf.len() >= MAX_HEAD {
                let line_complete = buf.windows(2).any(|w| w == b"\r\n");
                return Err(HeadError::TooLarge { line_complete });
            }
            match tcp.read_buf(&mut buf).await {
                Ok(n) if n > 0 => {}
                _ => return Err(HeadError::Gone),
            }
        }
    })
    .await;
    match read {
        Ok(Ok(())) => Ok(buf),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(HeadError::Gone),
    }
}

/// The request's URI, headers, and whether it is HTTP/1.1 (which gets a chunked response; an
/// HTTP/1.0 client gets a close-delimited one).
fn parse(buf: &[u8]) -> Option<(Uri, HeaderMap, bool)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(buf).ok()?;
    let http11 = req.version? >= 1;
    let uri: Uri = req.path?.parse().ok()?;
    let mut map = HeaderMap::new();
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        map.append(name, HeaderValue::from_bytes(h.value).ok()?);
    }
    Some((uri, map, http11))
}

/// Writes an error response; `extra` holds header lines (CORS) to add.
async fn write_error(tcp: &mut TcpStream, e: ApiError, extra: &str) {
    let body = serde_json::json!({ "error": e.error }).to_string();
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}connection: close\r\n\r\n",
        e.status.as_u16(),
        e.status.canonical_reason().unwrap_or(""),
        body.len()
    );
    let _ = tcp.write_all(head.as_bytes()).await;
    let _ = tcp.write_all(body.as_bytes()).await;
    let _ = tcp.shutdown().await;
    // Lingering close: closing with unread request bytes makes the kernel answer with a reset,
    // which can destroy the response before the client reads it. Read and drop what the client
    // is still sending, bounded in bytes and time.
    let _ = tokio::time::timeout(LINGER, async {
        // On the heap: an array here would sit inline in every held stream's task future.
        let mut sink = vec![0u8; 4096];
        let mut left = LINGER_BYTES;
        while left > 0 {
            match tcp.read(&mut sink).await {
                Ok(n) if n > 0 => left = left.saturating_sub(n),
                _ => break,
            }
        }
    })
    .await;
}

/// Longest a refused connection is drained before it is dropped.
const LINGER: Duration = Duration::from_secs(1);
/// Most request bytes drained from a refused connection.
const LINGER_BYTES: usize = 1 << 20;

/// Serves one SSE connection. The peer's request head has not been consumed yet.
pub async fn serve(mut tcp: TcpStream, peer: SocketAddr, app: AppState, header_timeout: Duration) {
    let head = match read_head(&mut tcp, header_timeout).await {
        Ok(head) => head,
        Err(HeadError::Gone) => return,
        Err(HeadError::TooLarge { line_complete }) => {
            let (status, what) = if line_complete {
                (
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "request headers",
                )
            } else {
                (StatusCode::URI_TOO_LONG, "request URI")
            };
            let mut e = ApiError::bad_request(format!(
                "{what} longer than {MAX_HEAD} bytes; tickets and cursors are far shorter"
            ));
            e.status = status;
            write_error(&mut tcp, e, "").await;
            return;
        }
    };
    let Some((uri, headers, chunked)) = parse(&head) else {
        write_error(&mut tcp, ApiError::bad_request("malformed request"), "").await;
        return;
    };
    drop(head);
    let cors = app.cors.header_lines(&headers);
    // Boxed: the preparation (auth, subscribe with recovery, engine calls) is a large future
    // that must not stay inline in the held stream's task for as long as the stream lives.
    let p = match Box::pin(prepare(&app, &uri, &headers, Some(peer))).await {
        Ok(p) => p,
        Err(e) => {
            write_error(&mut tcp, e, &cors).await;
            return;
        }
    };
    run(tcp, p, chunked, cors).await;
}

/// The last chunk of a chunked stream.
const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Streams `p`: chunked transfer coding (RFC 9112 §7.1) on HTTP/1.1, every event its own
/// chunk, so a client that reads in blocks (Python `requests`, `sseclient`) hands each event on
/// as it arrives instead of waiting for more bytes; close-delimited for HTTP/1.0.
async fn run(mut tcp: TcpStream, mut p: Prepared, chunked: bool, cors: String) {
    p.renderer.chunked = chunked;
    let mut status = String::from("HTTP/1.1 200 OK\r\n");
    for (k, v) in HEADERS {
        status.push_str(&format!("{k}: {v}\r\n"));
    }
    if chunked {
        status.push_str("transfer-encoding: chunked\r\n");
    }
    status.push_str(&cors);
    // Nothing of the request stays with the stream.
    drop(cors);
    status.push_str("connection: close\r\n\r\n");
    let mut segments = vec![Bytes::from(status), p.renderer.frame(p.head.clone())];
    let handle = p.session.handle().clone();
    let mut ok = crate::vectored::write_all(&mut tcp, &mut segments)
        .await
        .is_ok();
    while ok {
        let mut batch = p.next_batch();
        if !batch.segments.is_empty() {
            ok = crate::vectored::write_all(&mut tcp, &mut batch.segments)
                .await
                .is_ok();
        }
        if batch.closed || !ok {
            break;
        }
        if batch.more {
            continue;
        }
        tokio::select! {
            _ = handle.outbox.wait() => {}
            _ = tokio::time::sleep(p.keepalive) => {
                let ping = p.renderer.frame(Bytes::from_static(PING));
                ok = tcp.write_all(&ping).await.is_ok();
            }
            // The client never sends after its request: readable means it closed (or broke
            // the protocol); either way the stream ends.
            _ = tcp.readable() => {
                let mut probe = [0u8; 1];
                match tcp.try_read(&mut probe) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    _ => ok = false,
                }
            }
        }
    }
    if ok && chunked {
        let _ = tcp.write_all(LAST_CHUNK).await;
    }
    let _ = tcp.shutdown().await;
    p.session.close(None).await;
    drop(p.guard);
}
