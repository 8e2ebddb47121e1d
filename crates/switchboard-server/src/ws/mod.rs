//! The WebSocket transport: the `/ws` handshake (HTTP/1.1 Upgrade or HTTP/2 extended CONNECT,
//! permessage-deflate negotiation) and the connection loop.

pub mod codec;
pub mod conn;
pub mod deflate;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::BytesMut;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use sha1::{Digest, Sha1};
use switchboard_core::Capabilities;
use tokio::net::TcpStream;

use crate::error::ApiError;
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

/// Checks the request line and headers of either handshake.
fn handshake(req: &axum::extract::Request) -> Result<Handshake, Box<Response>> {
    let headers = req.headers();
    let h = if req.method() == Method::CONNECT {
        let protocol = req.extensions().get::<hyper::ext::Protocol>();
        if protocol.map(hyper::ext::Protocol::as_str) != Some("websocket") {
            return Err(Box::new(
                ApiError::bad_request(
                    "CONNECT on /ws needs the extended CONNECT protocol `websocket` (RFC 8441)",
                )
                .into_response(),
            ));
        }
        Handshake::Connect
    } else {
        if !header_has_token(headers, header::UPGRADE, "websocket")
            || !header_has_token(headers, header::CONNECTION, "upgrade")
        {
            return Err(Box::new(
                ApiError::bad_request(
                    "this endpoint speaks WebSocket: send an Upgrade: websocket request",
                )
                .into_response(),
            ));
        }
        let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
            return Err(Box::new(
                ApiError::bad_request("missing Sec-WebSocket-Key").into_response(),
            ));
        };
        Handshake::Upgrade(key.as_bytes().to_vec())
    };
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        let mut r = ApiError::bad_request("unsupported WebSocket version, use 13").into_response();
        *r.status_mut() = StatusCode::UPGRADE_REQUIRED;
        r.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return Err(Box::new(r));
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

/// `GET /ws` (HTTP/1.1 Upgrade) and `CONNECT /ws` (HTTP/2, RFC 8441): checks the handshake,
/// origin and ticket, then hands the upgraded stream to the connection loop.
pub async fn handler(
    State(app): State<AppState>,
    Query(q): Query<WsQuery>,
    mut req: axum::extract::Request,
) -> Response {
    let kind = match handshake(&req) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    if let Err(e) = app.check_origin(req.headers()) {
        return e.into_response();
    }
    let creds = match q.ticket.as_deref() {
        Some(t) => match app.tickets.redeem(t).await {
            Ok(c) => Some(c),
            Err(e) => return e.into_response(),
        },
        None => None,
    };
    let guard = match app
        .limits
        .admit(creds.as_ref().map(|c| c.user.as_str()), req.extensions())
    {
        Ok(g) => g,
        Err(e) => return e.into_response(),
    };
    let deflate = negotiate(&app, req.headers());
    let Some(on_upgrade) = req.extensions_mut().remove::<OnUpgrade>() else {
        return ApiError::bad_request("this connection cannot carry a WebSocket").into_response();
    };
    crate::metrics::ws_handshake(matches!(kind, Handshake::Connect), deflate.is_some());
    let node = app.node.clone();
    tokio::spawn(async move {
        let _guard = guard;
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
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
        // Unwrap hyper's boxed IO back to the plain TCP stream when possible: smaller and
        // without an extra indirection on every read and write.
        // Each arm boxed: the task's future would otherwise be as large as the largest arm
        // (the TLS one) for every plain connection. `BytesMut::from` copies the few bytes that
        // came with the handshake, so hyper's read buffer behind `read_buf` is freed now.
        // An HTTP/2 stream stays boxed (the last arm).
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => {
                let initial = BytesMut::from(&parts.read_buf[..]);
                drop(parts.read_buf);
                Box::pin(conn::run(parts.io.into_inner(), session, initial, deflate)).await
            }
            Err(upgraded) => match upgraded.downcast::<TokioIo<crate::tls::TlsStream>>() {
                Ok(parts) => {
                    let initial = BytesMut::from(&parts.read_buf[..]);
                    drop(parts.read_buf);
                    Box::pin(conn::run(parts.io.into_inner(), session, initial, deflate)).await
                }
                Err(upgraded) => {
                    let io = TokioIo::new(upgraded);
                    Box::pin(conn::run(io, session, BytesMut::new(), deflate)).await
                }
            },
        }
    });
    let response = match kind {
        Handshake::Upgrade(key) => Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::UPGRADE, "websocket")
            .header(header::CONNECTION, "Upgrade")
            .header(header::SEC_WEBSOCKET_ACCEPT, accept_key(&key)),
        Handshake::Connect => Response::builder().status(StatusCode::OK),
    };
    let response = match deflate {
        Some(_) => response.header(header::SEC_WEBSOCKET_EXTENSIONS, deflate::RESPONSE),
        None => response,
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
