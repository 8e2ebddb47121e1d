//! The little HTTP/1.1 a taken-over connection needs: read and parse one request head, answer
//! an error with a JSON body. Used by the SSE path that never enters hyper (`sse_raw`), so
//! nothing of hyper's per-connection state is allocated for a long-lived stream.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::ApiError;

/// Largest request head accepted.
pub const MAX_HEAD: usize = 16 * 1024;

/// Longest a refused connection is drained before it is dropped.
const LINGER: Duration = Duration::from_secs(1);
/// Most request bytes drained from a refused connection.
const LINGER_BYTES: usize = 1 << 20;

/// A parsed request head.
pub struct Head {
    /// Request target.
    pub uri: Uri,
    /// Header fields.
    pub headers: HeaderMap,
    /// HTTP/1.1 (else 1.0).
    pub http11: bool,
}

/// Reads and parses one request head. Answers what cannot be served (too large: 414/431,
/// malformed: 400) and returns `None` then, or when the client went away or stalled past
/// `timeout`.
pub async fn read_request(tcp: &mut TcpStream, timeout: Duration) -> Option<Head> {
    let mut buf = BytesMut::with_capacity(2048);
    let read = tokio::time::timeout(timeout, async {
        loop {
            if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                return Ok(());
            }
            if buf.len() >= MAX_HEAD {
                return Err(Some(buf.windows(2).any(|w| w == b"\r\n")));
            }
            match tcp.read_buf(&mut buf).await {
                Ok(n) if n > 0 => {}
                _ => return Err(None),
            }
        }
    })
    .await;
    match read {
        Ok(Ok(())) => {}
        Ok(Err(Some(line_complete))) => {
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
            write_error(tcp, e, "").await;
            return None;
        }
        Ok(Err(None)) | Err(_) => return None,
    }
    match parse(&buf) {
        Some(head) => Some(head),
        None => {
            write_error(tcp, ApiError::bad_request("malformed request"), "").await;
            None
        }
    }
}

fn parse(buf: &[u8]) -> Option<Head> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(_) = req.parse(buf).ok()? else {
        return None;
    };
    let http11 = req.version? >= 1;
    let uri: Uri = req.path?.parse().ok()?;
    let mut map = HeaderMap::new();
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        map.append(name, HeaderValue::from_bytes(h.value).ok()?);
    }
    Some(Head {
        uri,
        headers: map,
        http11,
    })
}

/// Writes an error response and closes; `extra` holds header lines (CORS, ...) to add.
pub async fn write_error(tcp: &mut TcpStream, e: ApiError, extra: &str) {
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
