//! Development-only routes: the landing page, `/dev/token` and the demo ticker. Served only in
//! demo mode (no config file, or `demo = true`).

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::{Json, Router, routing::get};
use serde::Deserialize;
use switchboard_core::auth::{Claims, mint_hs256, unix_now};

use crate::error::ApiError;
use crate::state::AppState;

const INDEX: &str = include_str!("../assets/index.html");
const CSS: &str = include_str!("../assets/demo.css");
const JS: &str = include_str!("../assets/demo.js");

/// The browser SDK, served on every node at `/sdk/switchboard.js`.
pub const SDK: &str = include_str!("../../../clients/js/src/switchboard.js");

/// Demo routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/",
            get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX) }),
        )
        .route(
            "/assets/demo.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css")], CSS) }),
        )
        .route(
            "/assets/demo.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], JS) }),
        )
        .route("/dev/token", get(dev_token))
}

/// `GET /sdk/switchboard.js`.
pub async fn sdk() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SDK,
    )
}

#[derive(Deserialize)]
struct TokenQuery {
    user: Option<String>,
}

async fn dev_token(
    State(app): State<AppState>,
    Query(q): Query<TokenQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let user = q
        .user
        .filter(|u| !u.is_empty() && u.len() <= 32)
        .unwrap_or_else(|| "guest".into());
    let user: String = user
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "_-.@".contains(*c))
        .collect();
    let secret = app
        .node
        .config()
        .jwt
        .secret
        .clone()
        .ok_or_else(|| ApiError::bad_request("no HMAC secret configured"))?;
    let claims = Claims {
        sub: user.clone(),
        exp: unix_now() + 3600,
        channels: vec!["*".into()],
        publish: vec!["chat:*".into(), "playground:*".into()],
        info: Some(serde_json::json!({"name": user})),
    };
    let token =
        mint_hs256(&secret, &claims).map_err(|_| ApiError::bad_request("could not sign"))?;
    Ok(Json(serde_json::json!({"token": token})))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Publishes a made-up price feed to `demo:ticker` several times a second until shutdown.
pub fn spawn_ticker(node: switchboard_core::Node) {
    tokio::spawn(async move {
        let shutdown = node.shutdown_token();
        let mut prices = [
            ("SWB", 120.0f64),
            ("RUST", 88.0),
            ("AXUM", 42.0),
            ("TOKIO", 64.0),
        ];
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut i: u64 = 0;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => break,
            }
            let (sym, price) = &mut prices[(i % 4) as usize];
            let wave = ((i as f64) * 0.37).sin() * 0.8 + (rand::random::<f64>() - 0.5);
            *price = (*price + wave).max(1.0);
            let data = serde_json::json!({"symbol": sym, "price": (*price * 100.0).round() / 100.0, "ts": now_ms()});
            let _ = node.publish_json("demo:ticker", &data, None).await;
            i += 1;
        }
    });
}
