//! SSE on a taken-over TCP connection.
//!
//! A plain-TCP connection whose first request is `GET /sse` never enters hyper: the accept loop
//! peeks at it, this module reads and parses the request head (httparse), answers with a
//! chunked `text/event-stream` response (close-delimited for HTTP/1.0), and writes events straight to the socket with
//! vectored writes. Nothing HTTP-related stays allocated per stream, which is what keeps an
//! idle stream at a few KiB instead of hyper's ~11 KiB per held connection.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::raw_http::{Head, read_request, write_error};
use crate::sse::{HEADERS, PING, Prepared, prepare};
use crate::state::AppState;

/// Whether the bytes at the start of a connection are an SSE request for this module.
pub fn is_sse_request(peeked: &[u8]) -> bool {
    peeked.starts_with(b"GET /sse?") || peeked.starts_with(b"GET /sse ")
}

/// Serves one SSE connection. The peer's request head has not been consumed yet.
pub async fn serve(mut tcp: TcpStream, peer: SocketAddr, app: AppState, header_timeout: Duration) {
    let Some(head) = read_request(&mut tcp, header_timeout).await else {
        return;
    };
    let Head {
        uri,
        headers,
        http11: chunked,
    } = head;
    let cors = app.cors.header_lines(&headers);
    // Boxed: the preparation (auth, subscribe with recovery, engine calls) is a large future
    // that must not stay inline in the held stream's task for as long as the stream lives.
    // Bound first: a future boxed inside the awaited expression would stay laid out inline in
    // this function's state (rustc keeps the temporary alive across the await).
    let preparing = Box::pin(prepare(&app, &uri, &headers, Some(peer)));
    let p = match preparing.await {
        Ok(p) => p,
        Err(e) => {
            write_error(&mut tcp, e, &cors).await;
            return;
        }
    };
    drop((uri, headers));
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
