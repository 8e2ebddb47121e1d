//! SSE on a taken-over TCP connection.
//!
//! A plain-TCP connection whose first request is `GET /sse` never enters hyper: the accept loop
//! peeks at it, this module reads and parses the request head (httparse), answers with a
//! close-delimited `text/event-stream` response, and writes events straight to the socket with
//! vectored writes. Nothing HTTP-related stays allocated per stream, which is what keeps an
//! idle stream at a few KiB instead of hyper's ~11 KiB per held connection.

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Uri};
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

async fn read_head(tcp: &mut TcpStream, timeout: Duration) -> Option<BytesMut> {
    let mut buf = BytesMut::with_capacity(2048);
    tokio::time::timeout(timeout, async {
        loop {
            if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                return Some(());
            }
            if buf.len() >= MAX_HEAD || tcp.read_buf(&mut buf).await.ok()? == 0 {
                return None;
            }
        }
    })
    .await
    .ok()??;
    Some(buf)
}

fn parse(buf: &[u8]) -> Option<(Uri, HeaderMap)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(buf).ok()?;
    let uri: Uri = req.path?.parse().ok()?;
    let mut map = HeaderMap::new();
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        map.append(name, HeaderValue::from_bytes(h.value).ok()?);
    }
    Some((uri, map))
}

async fn write_error(tcp: &mut TcpStream, e: ApiError) {
    let body = serde_json::json!({ "error": e.error }).to_string();
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        e.status.as_u16(),
        e.status.canonical_reason().unwrap_or(""),
        body.len()
    );
    let _ = tcp.write_all(head.as_bytes()).await;
    let _ = tcp.write_all(body.as_bytes()).await;
    let _ = tcp.shutdown().await;
}

/// Serves one SSE connection. The peer's request head has not been consumed yet.
pub async fn serve(mut tcp: TcpStream, peer: SocketAddr, app: AppState, header_timeout: Duration) {
    let Some(head) = read_head(&mut tcp, header_timeout).await else {
        return;
    };
    let Some((uri, headers)) = parse(&head) else {
        write_error(&mut tcp, ApiError::bad_request("malformed request")).await;
        return;
    };
    drop(head);
    let p = match prepare(&app, &uri, &headers, Some(peer)).await {
        Ok(p) => p,
        Err(e) => {
            write_error(&mut tcp, e).await;
            return;
        }
    };
    run(tcp, p).await;
}

async fn run(mut tcp: TcpStream, mut p: Prepared) {
    let mut status = String::from("HTTP/1.1 200 OK\r\n");
    for (k, v) in HEADERS {
        status.push_str(&format!("{k}: {v}\r\n"));
    }
    status.push_str("connection: close\r\n\r\n");
    let mut segments = vec![Bytes::from(status), p.head.clone()];
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
                ok = tcp.write_all(PING).await.is_ok();
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
    let _ = tcp.shutdown().await;
    p.session.close(None).await;
    drop(p.guard);
}
