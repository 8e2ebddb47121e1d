//! The admin console at `/admin`: a login form, then one page (plain HTML, CSS and JS embedded
//! in the binary) with the cluster's nodes, live charts fed by the node's own push, channels,
//! a channel's tail and history with a publish form, and a user's sessions with a disconnect
//! button. Off unless `[admin] enabled = true`; off, nothing is mounted and every `/admin`
//! path is 404.
//!
//! Security, in layers (details in `auth.rs`):
//! - the password (or the API key) is POSTed by the login form, compared in constant time, and
//!   failed attempts are rate limited per client address;
//! - a login is a random 256-bit id in an `HttpOnly; SameSite=Strict; Path=/admin` cookie, kept
//!   in this node's memory with an absolute expiry and a bounded count;
//! - every `/admin/api` call needs the cookie (401 JSON without it), and every state-changing
//!   one also the login's CSRF token in `X-CSRF-Token`, a same-origin `Origin` and no
//!   cross-site `Sec-Fetch-Site`;
//! - the page's live views connect with single-use tickets whose user is the console's own id
//!   (`Admin::user`, derived from the API key so that every node of a cluster agrees and no
//!   client token names it by chance): only that user may subscribe to the stats channel
//!   `sb-admin:stats#<id>`, and the ticket's claims name exactly the channels the operator
//!   tails (namespace policy applies as to any signed-in client) and grant no publishing;
//! - responses carry `Cache-Control: no-store`, a strict Content-Security-Policy and
//!   `frame-ancestors 'none'`; passwords, cookies, CSRF tokens and tickets are never logged.

mod auth;
mod handlers;
mod stats;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};
use switchboard_core::NamespaceConfig;

use crate::error::ApiError;
use crate::state::AppState;

/// The namespace of the console's own channels, reserved while the console is enabled.
pub const NAMESPACE: &str = "sb-admin";

/// How many stats snapshots the namespace keeps: two minutes of one node, less of a cluster;
/// the console draws its charts from them on load and the nodes view reads the latest.
const STATS_HISTORY: usize = 600;

const INDEX: &str = include_str!("assets/index.html");
const JS: &str = include_str!("assets/admin.js");
const CSS: &str = include_str!("assets/admin.css");

/// The policy of [`NAMESPACE`]: history for the charts, no presence, nobody subscribes or
/// publishes by namespace policy (the stats channel's `#user` part admits the console alone).
pub fn namespace_policy() -> NamespaceConfig {
    NamespaceConfig {
        history_size: STATS_HISTORY,
        history_ttl: Duration::from_secs(120),
        presence: false,
        join_leave: false,
        allow_publish: false,
        allow_subscribe: false,
        allow_anonymous: false,
        compression: None,
    }
}

/// The console's state on this node.
pub struct Admin {
    sessions: auth::Sessions,
    limiter: auth::LoginLimiter,
    password: auth::Secret,
    /// The user id of the console's live sessions.
    user: String,
    /// The stats channel, `sb-admin:stats#<user>`.
    channel: String,
    ttl: Duration,
    /// Mark the cookie `Secure` (the node serves TLS).
    tls: bool,
}

impl Admin {
    /// The console of a node configured with `app.settings`; starts the stats publisher.
    pub fn start(app: &AppState) -> Arc<Self> {
        let s = &app.settings;
        let password = s.admin.password.as_deref().unwrap_or(&s.api_key);
        let user = console_user(&s.api_key);
        let channel = format!("{NAMESPACE}:stats#{user}");
        stats::spawn(app.node.clone(), channel.clone());
        tracing::info!("admin console enabled at /admin");
        Arc::new(Self {
            sessions: auth::Sessions::default(),
            limiter: auth::LoginLimiter::default(),
            password: auth::Secret::new(password.as_bytes()),
            user,
            channel,
            ttl: s.admin.session_ttl,
            tls: s.tls,
        })
    }
}

/// The console's user id: the same on every node that shares the API key, and unknown to
/// anyone without it, so no application token names it (a `#user` channel admits only the
/// users it lists; a `channels: ["*"]` claim does not reach it).
fn console_user(api_key: &str) -> String {
    let mac = auth::hmac_sha1(api_key.as_bytes(), b"switchboard admin console");
    let hex: String = mac[..10].iter().map(|b| format!("{b:02x}")).collect();
    format!("{NAMESPACE}.{hex}")
}

/// What the console's handlers reach.
#[derive(Clone)]
struct AdminApp {
    app: AppState,
    admin: Arc<Admin>,
}

/// The `/admin` routes. Everything under `/admin/api` (and logout) needs the login cookie.
/// Without a console every `/admin` path is 404, whatever the application's other fallbacks.
pub fn router(app: AppState, admin: Option<Arc<Admin>>) -> Router<AppState> {
    let Some(admin) = admin else {
        return Router::new()
            .route("/admin", any(not_found))
            .route("/admin/{*rest}", any(not_found));
    };
    let state = AdminApp { app, admin };
    let private = Router::new()
        .route("/admin/api/session", get(handlers::session))
        .route("/admin/api/nodes", get(handlers::nodes))
        .route("/admin/api/channels", get(handlers::channels))
        .route("/admin/api/history", get(handlers::history))
        .route("/admin/api/sessions", get(handlers::sessions))
        .route("/admin/api/publish", post(handlers::publish))
        .route("/admin/api/disconnect", post(handlers::disconnect))
        .route("/admin/api/ticket", post(handlers::ticket))
        .route("/admin/logout", post(auth::logout))
        .route("/admin/api/{*rest}", any(not_found))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_login,
        ));
    Router::new()
        .route("/admin", get(page))
        .route("/admin/", get(|| async { Redirect::to("/admin") }))
        .route("/admin/assets/admin.js", get(js))
        .route("/admin/assets/admin.css", get(css))
        .route("/admin/login", post(auth::login))
        .route("/admin/{*rest}", any(not_found))
        .merge(private)
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

async fn not_found() -> Response {
    let mut e = ApiError::bad_request("not found");
    e.status = StatusCode::NOT_FOUND;
    e.into_response()
}

async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX).into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        JS,
    )
        .into_response()
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

/// Only this origin's scripts and styles, connections back to this origin (its WebSocket
/// included), no framing, no plugins, forms posting only here.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Headers on every `/admin` response: never cached (they carry cluster data and CSRF tokens),
/// never framed (clickjacking), never sniffed, no referrer.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_user_is_a_valid_channel_user_and_depends_on_the_key() {
        let a = console_user("key-a");
        assert_ne!(a, console_user("key-b"));
        assert_eq!(a, console_user("key-a"));
        let channel = format!("{NAMESPACE}:stats#{a}");
        let parsed = switchboard_protocol::ChannelName::parse(&channel, 255).unwrap();
        assert_eq!(parsed.user_allowed(&a), Some(true));
        assert_eq!(parsed.user_allowed("anyone"), Some(false));
    }
}
