//! The WebSocket transport: the `/ws` handshake (HTTP/1.1 Upgrade or HTTP/2 extended CONNECT,
//! permessage-deflate negotiation) and the connection loop.

pub mod codec;
pub mod conn;
pub mod deflate;

use std::future::Future;
use std::pin::Pin;

use axum::extract::{Query, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::BytesMut;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use sha1::{Digest, Sha1};
use switchboard_core::{Capabilities, Credentials, Node};
use tokio::net::TcpStream;

use crate::error::ApiError;
use crate::limits::ConnGuard;
use crate::state::AppState;

/// Query parameters of `/ws`.
#[derive(Debug, Deserialize)]
pub struct WsQuery {
    /// A single-use ticket from `POST /auth/ticket`.
    pub ticket: Option<String>,
}

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// Which handshake a request makes.
enum Handshake {
    /// HTTP/1.1 `Upgrade: websocket` with its `Sec-WebSocket-Key`.
    Upgrade(Vec<u8>),
    /// HTTP/2 extended CONNECT with `:protocol = websocket` (RFC 8441): no key, answered 200.
    Connect,
}

/// Checks the request line and headers of either handshake. `protocol`: the extended CONNECT
/// protocol of an HTTP/2 request.
///
/// # Errors
/// 400, or 426 for a version other than 13 (answer with `Sec-WebSocket-Version: 13`).
fn handshake(
    method: &Method,
    protocol: Option<&str>,
    headers: &HeaderMap,
) -> Result<Handshake, ApiError> {
    let h = if method == Method::CONNECT {
        if protocol != Some("websocket") {
            return Err(ApiError::bad_request(
                "CONNECT on /ws needs the extended CONNECT protocol `websocket` (RFC 8441)",
            ));
        }
        Handshake::Connect
    } else {
        if method != Method::GET
            || !header_has_token(headers, header::UPGRADE, "websocket")
            || !header_has_token(headers, header::CONNECTION, "upgrade")
        {
            return Err(ApiError::bad_request(
                "this endpoint speaks WebSocket: send an Upgrade: websocket request",
            ));
        }
        let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
            return Err(ApiError::bad_request("missing Sec-WebSocket-Key"));
        };
        Handshake::Upgrade(key.as_bytes().to_vec())
    };
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        let mut e = ApiError::bad_request("unsupported WebSocket version, use 13");
        e.status = StatusCode::UPGRADE_REQUIRED;
        return Err(e);
    }
    Ok(h)
}

/// permessage-deflate for this connection, when the server offers it and the client's offer
/// can be accepted.
fn negotiate(app: &AppState, headers: &HeaderMap) -> Option<conn::Deflate> {
    let s = &app.settings;
    let offers = headers
        .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .filter_map(|v| v.to_str().ok());
    (s.deflate_negotiated && deflate::accepts(offers)).then_some(conn::Deflate {
        global: s.websocket.compression,
        min_size: s.websocket.compression_min_size,
        level: s.websocket.compression_level,
    })
}

/// A handshake that passed every check: what the connection starts with.
struct Admitted {
    creds: Option<Credentials>,
    guard: ConnGuard,
    /// permessage-deflate, when negotiated.
    deflate: Option<conn::Deflate>,
}

/// Origin, ticket, connection limits and compression: everything a handshake is checked for
/// after the request's shape.
///
/// # Errors
/// The refusal to answer (403, 401, 503, ...).
async fn admit(
    app: &AppState,
    headers: &HeaderMap,
    ticket: Option<&str>,
    ext: &Extensions,
) -> Result<Admitted, ApiError> {
    app.check_origin(headers)?;
    let creds = match ticket {
        Some(t) => Some(app.tickets.redeem(t).await?),
        None => None,
    };
    let guard = app
        .limits
        .admit(creds.as_ref().map(|c| c.user.as_str()), ext)?;
    Ok(Admitted {
        creds,
        guard,
        deflate: negotiate(app, headers),
    })
}

/// The connection of an admitted handshake on `io`, boxed: the session is opened now (not
/// inside the future), so the future holds only the connection loop and the admission guard.
///
/// A plain function on purpose: a future built inside an `async` block and then boxed may still
/// be laid out inline in that block's state (rustc keeps such temporaries), which made every
/// idle WebSocket task carry the whole connection future twice.
fn connection<S>(
    node: &Node,
    a: Admitted,
    io: S,
    initial: BytesMut,
) -> Pin<Box<dyn Future<Output = ()> + Send>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Admitted {
        creds,
        guard,
        deflate,
    } = a;
    let mut session = node.session(Capabilities::WEBSOCKET);
    if let Some(c) = creds
        && session.connect_with(c).is_err()
    {
        // The user is at the per-user cap: the socket opens and is closed with 4007.
        session
            .handle()
            .outbox
            .close(switchboard_protocol::Disconnect::CONNECTION_LIMIT);
    }
    Box::pin(async move {
        let _guard = guard;
        conn::run(io, session, initial, deflate).await;
    })
}

/// The connection on hyper's upgraded IO, unwrapped back to the plain TCP or TLS stream when
/// possible: smaller and without an extra indirection on every read and write.
/// `BytesMut::from` copies the few bytes that came with the handshake, so hyper's read buffer
/// behind `read_buf` is freed now. An HTTP/2 stream stays boxed.
fn upgraded_connection(
    node: &Node,
    a: Admitted,
    upgraded: hyper::upgrade::Upgraded,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => {
            let initial = BytesMut::from(&parts.read_buf[..]);
            drop(parts.read_buf);
            connection(node, a, parts.io.into_inner(), initial)
        }
        Err(upgraded) => match upgraded.downcast::<TokioIo<crate::tls::TlsStream>>() {
            Ok(parts) => {
                let initial = BytesMut::from(&parts.read_buf[..]);
                drop(parts.read_buf);
                connection(node, a, parts.io.into_inner(), initial)
            }
            Err(upgraded) => connection(node, a, TokioIo::new(upgraded), BytesMut::new()),
        },
    }
}

fn error_response(e: ApiError) -> Response {
    let upgrade = e.status == StatusCode::UPGRADE_REQUIRED;
    let mut r = e.into_response();
    if upgrade {
        r.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
    }
    r
}

/// `GET /ws` (HTTP/1.1 Upgrade) and `CONNECT /ws` (HTTP/2, RFC 8441) through hyper: checks the
/// handshake, origin and ticket, then hands the upgraded stream to the connection loop.
pub async fn handler(
    State(app): State<AppState>,
    Query(q): Query<WsQuery>,
    mut req: axum::extract::Request,
) -> Response {
    let protocol = req
        .extensions()
        .get::<hyper::ext::Protocol>()
        .map(hyper::ext::Protocol::as_str);
    let kind = match handshake(req.method(), protocol, req.headers()) {
        Ok(k) => k,
        Err(e) => return error_response(e),
    };
    let admitted = match admit(&app, req.headers(), q.ticket.as_deref(), req.extensions()).await {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let Some(on_upgrade) = req.extensions_mut().remove::<OnUpgrade>() else {
        return ApiError::bad_request("this connection cannot carry a WebSocket").into_response();
    };
    let deflate = admitted.deflate.is_some();
    crate::metrics::ws_handshake(matches!(kind, Handshake::Connect), deflate);
    let node = app.node.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        upgraded_connection(&node, admitted, upgraded).await;
    });
    let response = match kind {
        Handshake::Upgrade(key) => Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::UPGRADE, "websocket")
            .header(header::CONNECTION, "Upgrade")
            .header(header::SEC_WEBSOCKET_ACCEPT, accept_key(&key)),
        Handshake::Connect => Response::builder().status(StatusCode::OK),
    };
    let response = if deflate {
        response.header(header::SEC_WEBSOCKET_EXTENSIONS, deflate::RESPONSE)
    } else {
        response
    };
    response
        .body(axum::body::Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn accept_key_matches_rfc_example() {
        assert_eq!(
            super::accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
