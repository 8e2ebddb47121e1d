//! Small HTTP endpoints: health, readiness, metrics, tickets and HTTP commands.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use switchboard_core::Capabilities;
use switchboard_protocol::command::{Op, decode_one};
use switchboard_protocol::reply::encode_error;

use crate::error::{ApiError, status_for};
use crate::state::AppState;

/// `GET /health`: the process is alive.
pub async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// `GET /ready`: the engine is reachable and the node is not draining.
pub async fn ready(State(app): State<AppState>) -> Response {
    if app.node.ready().await {
        Json(serde_json::json!({"ready": true})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"ready": false})),
        )
            .into_response()
    }
}

/// `GET /metrics`: the Prometheus text format.
pub async fn metrics(State(app): State<AppState>) -> Response {
    let body = crate::metrics::render(app.node.registry());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
        .into_response()
}

/// `POST /auth/ticket`: exchanges a bearer token for a single-use connection ticket.
pub async fn ticket(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let creds = app.bearer(&headers)?;
    let (ticket, expires_in) = app.tickets.issue(creds).await?;
    Ok(Json(
        serde_json::json!({"ticket": ticket, "expires_in": expires_in}),
    ))
}

/// `POST /cmd`: one `publish`, `history` or `presence` command over HTTP, for clients that
/// receive over SSE or poll. The body and the reply use the WebSocket command format.
pub async fn command(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let creds = match app.bearer(&headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let reply = |status: StatusCode, body: Bytes| {
        (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    };
    if body.len() > app.node.config().limits.max_message_size + 1024 {
        return ApiError::new(
            switchboard_protocol::ErrorCode::TooLarge,
            "command too large",
        )
        .into_response();
    }
    let Ok(text) = std::str::from_utf8(&body) else {
        return ApiError::bad_request("body is not UTF-8").into_response();
    };
    let cmd = match decode_one(text) {
        Ok(c) => c,
        Err(e) => return reply(status_for(e.error.code), encode_error(e.id, &e.error)),
    };
    if !matches!(
        cmd.op,
        Op::Publish { .. } | Op::History { .. } | Op::Presence { .. }
    ) {
        let e = switchboard_protocol::ProtocolError::new(
            switchboard_protocol::ErrorCode::BadRequest,
            format!("`{}` is not available over HTTP; use /ws", cmd.op.name()),
        );
        return reply(StatusCode::BAD_REQUEST, encode_error(Some(cmd.id), &e));
    }
    let mut session = app.node.session(Capabilities::HTTP);
    // HTTP commands are not registered sessions: no per-user cap applies, so this cannot fail.
    if let Err(e) = session.connect_with(creds) {
        return reply(status_for(e.code), encode_error(Some(cmd.id), &e));
    }
    let (body, error) = session.execute(cmd.id, cmd.op).await;
    reply(error.map_or(StatusCode::OK, status_for), body)
}

/// The CORS middleware (policy in `cors.rs`).
pub async fn cors(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let cors = &app.cors;
    if !cors.covers(req.uri().path()) {
        return next.run(req).await;
    }
    let origin = cors.allowed(req.headers()).cloned();
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let mut res = StatusCode::NO_CONTENT.into_response();
        let h = res.headers_mut();
        cors.apply(origin.as_ref(), h);
        if origin.is_some() {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(crate::cors::METHODS),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(crate::cors::HEADERS),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from(crate::cors::MAX_AGE.as_secs()),
            );
        }
        return res;
    }
    let mut res = next.run(req).await;
    cors.apply(origin.as_ref(), res.headers_mut());
    res
}
