//! The accept loop: plain hyper HTTP/1 connections (with upgrades) serving the axum router.
//!
//! Not `axum::serve`: owning the loop lets the node run TLS handshakes in the connection task
//! under a timeout (one slow client never blocks accepting), set hyper's header-read timeout
//! (slowloris), attach the peer address, and keep long-lived connections lean.
//!
//! Slowloris protection: `connections.header_timeout` bounds the TLS handshake and then every
//! request head, including the wait for the first byte of a new connection and of the next
//! request on a kept-alive one (hyper starts its header timer as soon as it waits for a head).
//! A client that sends a partial request line and stalls is disconnected after it.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::metrics as m;
use crate::state::AppState;
use crate::tls::Tls;

/// Accepts connections until `shutdown` is cancelled, then asks every HTTP connection to
/// finish its in-flight request and close (idle keep-alive connections close at once).
/// Connection tasks are tracked by `tracker` so shutdown can wait for them; upgraded
/// connections (WebSocket) are owned by the node's sessions and end through the node's drain.
///
/// `header_timeout` bounds the TLS handshake and each request head (slowloris). With
/// `sse_takeover`, plain-TCP connections that open with `GET /sse` are served by
/// [`crate::sse_raw`] instead of hyper, and accepted sockets get its
/// `connections.send_buffer`.
pub async fn accept_loop(
    listener: TcpListener,
    router: Router,
    tls: Option<Tls>,
    header_timeout: Duration,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    sse_takeover: Option<AppState>,
) {
    let send_buffer = sse_takeover
        .as_ref()
        .map_or(0, |a| a.settings.connections.send_buffer);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = tcp.set_nodelay(true);
        if send_buffer > 0 {
            let _ = socket2::SockRef::from(&tcp).set_send_buffer_size(send_buffer);
        }
        let router = router.clone();
        let tls = tls.clone();
        let shutdown = shutdown.clone();
        let sse_takeover = sse_takeover.clone();
        tracker.spawn(async move {
            let _open = m::ConnectionOpen::new();
            // Each kind of connection is a boxed future built by a plain function: the task
            // then holds one pointer for as long as the connection lives, instead of a state
            // as large as its largest arm (hyper, TLS) — a future built and boxed inside an
            // async block can still be laid out inline in that block.
            let conn = match (tls, sse_takeover) {
                (None, Some(app)) => match opening(&tcp, header_timeout).await {
                    Opening::Sse => sse_stream(tcp, peer, app, header_timeout),
                    Opening::Stalled => {
                        m::header_timeout();
                        return;
                    }
                    Opening::Other => plain(tcp, peer, router, header_timeout, shutdown),
                },
                (None, None) => plain(tcp, peer, router, header_timeout, shutdown),
                (Some(tls), _) => tls_conn(tls, tcp, peer, router, header_timeout, shutdown),
            };
            conn.await;
        });
    }
}

/// A connection task's body.
type ConnFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

fn sse_stream(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    app: AppState,
    header_timeout: Duration,
) -> ConnFuture {
    Box::pin(crate::sse_raw::serve(tcp, peer, app, header_timeout))
}

fn plain(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    header_timeout: Duration,
    shutdown: CancellationToken,
) -> ConnFuture {
    Box::pin(serve_conn(
        TokioIo::new(tcp),
        peer,
        router,
        header_timeout,
        shutdown,
    ))
}

fn tls_conn(
    tls: Tls,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    header_timeout: Duration,
    shutdown: CancellationToken,
) -> ConnFuture {
    Box::pin(async move {
        let stream = match tokio::time::timeout(header_timeout, tls.acceptor.accept(tcp)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                m::tls_handshake_failed("error");
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                m::tls_handshake_failed("timeout");
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        };
        serve_conn(TokioIo::new(stream), peer, router, header_timeout, shutdown).await;
    })
}

/// What a new plain-TCP connection opens with.
enum Opening {
    Sse,
    Other,
    /// Not enough bytes to tell within the header timeout: a stalled client.
    Stalled,
}

/// Peeks at a new plain-TCP connection: does its first request start with `GET /sse`? Waits
/// at most `timeout` for enough bytes to tell.
async fn opening(tcp: &tokio::net::TcpStream, timeout: Duration) -> Opening {
    const SSE: [&[u8]; 2] = [b"GET /sse?", b"GET /sse "];
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = [0u8; 9];
    loop {
        let n = match tokio::time::timeout_at(deadline, tcp.peek(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            Ok(_) => return Opening::Other,
            Err(_) => return Opening::Stalled,
        };
        if n == buf.len() {
            return if crate::sse_raw::is_sse_request(&buf) {
                Opening::Sse
            } else {
                Opening::Other
            };
        }
        // A partial prefix: only keep waiting while it could still become `GET /sse`.
        if !SSE.iter().any(|p| p.starts_with(&buf[..n])) {
            return Opening::Other;
        }
        if tokio::time::Instant::now() >= deadline {
            return Opening::Stalled;
        }
        // `peek` returns at once while bytes are pending; wait a little for more.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn serve_conn<I>(
    io: I,
    peer: SocketAddr,
    router: Router,
    header_timeout: Duration,
    shutdown: CancellationToken,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    // Set by the first request: until then `header_timeout` bounds the connection, which also
    // covers the protocol detection (hyper-util reads the HTTP/2 preface without a timer).
    let started = Arc::new(AtomicBool::new(false));
    let first = started.clone();
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        first.store(true, Ordering::Relaxed);
        req.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(req)
    });
    // HTTP/1.1, or HTTP/2 when the client opens with its preface: negotiated by ALPN on TLS,
    // prior knowledge (h2c) on plain TCP, as proxies and CDNs speak it to their origins.
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        // Idle HTTP/2 connections are probed like WebSockets, so dead peers do not pile up.
        .keep_alive_interval(Duration::from_secs(25))
        .keep_alive_timeout(Duration::from_secs(20))
        // WebSockets over HTTP/2 streams (RFC 8441): browsers use it on an h2 connection
        // that announces it.
        .enable_connect_protocol();
    let conn = builder.serve_connection_with_upgrades(io, svc);
    tokio::pin!(conn);
    let first_deadline = tokio::time::Instant::now() + header_timeout;
    let mut waiting_first = true;
    let result = loop {
        tokio::select! {
            r = conn.as_mut() => break r,
            _ = tokio::time::sleep_until(first_deadline), if waiting_first => {
                if started.load(Ordering::Relaxed) {
                    waiting_first = false;
                    continue;
                }
                m::header_timeout();
                tracing::debug!(%peer, "no request within the header timeout; connection closed");
                return;
            }
            _ = shutdown.cancelled() => {
                conn.as_mut().graceful_shutdown();
                break conn.await;
            }
        }
    };
    if let Err(e) = result {
        let timeout = e
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_timeout);
        if timeout {
            m::header_timeout();
            tracing::debug!(%peer, "request head not received in time; connection closed");
        } else {
            tracing::trace!(%peer, error = %e, "connection ended with an error");
        }
    }
}
