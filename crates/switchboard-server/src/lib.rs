//! Switchboard's HTTP layer: the WebSocket, SSE and poll transports, the server API, tickets,
//! health and metrics, served by an own hyper accept loop or mounted into an existing axum app.
//!
//! # Embedding
//! The server API lives under `/api/*`, the transports at `/ws`, `/sse`, `/poll`, `/cmd` and
//! `/auth/ticket`, `/health`, `/ready`, `/metrics`, and `/admin` (the admin console, 404 unless
//! `[admin]` enables it): keep the application's own routes off those paths (or nest the
//! application under its own prefix).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{Router, routing::get};
//! use switchboard_server::{Config, Switchboard};
//!
//! let mut config = Config::default();
//! config.api_key = Some("server-key".into());
//! config.jwt.secret = Some("jwt-secret".into());
//! let sb = Switchboard::start(config, false).await?;
//! let node = sb.node().clone();
//! let app: Router = Router::new()
//!     .route("/orders/{id}/complete", get(move || {
//!         let node = node.clone();
//!         async move {
//!             // Request-driven work happens here, then the push goes out in-process.
//!             node.publish_json("orders:42", &serde_json::json!({"status": "completed"}), None).await.ok();
//!             "done"
//!         }
//!     }))
//!     .merge(sb.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! // With connect info, the per-IP connection limit sees client addresses.
//! let make = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
//! axum::serve(listener, make).await?;
//! # Ok(()) }
//! ```

mod access_log;
mod admin;
mod api;
pub mod config;
mod cors;
#[doc(hidden)]
pub mod decoders;
mod demo;
mod engine;
mod error;
mod http;
mod limits;
mod metrics;
mod poll;
mod raw_http;
mod serve;
mod sse;
mod sse_raw;
mod state;
mod stream_query;
mod tickets;
mod tls;
mod vectored;
mod ws;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use switchboard_core::{Engine, Node};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{Config, CorsConfig, EngineKind, Loaded, LogFormat, Overrides, Settings};
pub use error::ApiError;
pub use state::AppState;
pub use tls::TlsError;

/// Errors starting a server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The node failed to start.
    #[error(transparent)]
    Node(#[from] switchboard_core::NodeError),
    /// The engine could not be built.
    #[error("engine: {0}")]
    Engine(String),
    /// Binding the listener failed.
    #[error("cannot listen on {0}: {1}")]
    Bind(String, std::io::Error),
    /// TLS files are unusable.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// A node with its HTTP state: what an application embeds.
#[derive(Clone)]
pub struct Switchboard {
    state: AppState,
    openapi: Arc<serde_json::Value>,
    admin: Option<Arc<admin::Admin>>,
}

impl Switchboard {
    /// Builds the engine and starts a node. `development` turns on the demo routes (unless the
    /// config says otherwise) and the demo ticker.
    ///
    /// # Errors
    /// [`ServerError`] when the engine or node cannot start.
    pub async fn start(config: Config, development: bool) -> Result<Self, ServerError> {
        let engine = engine::build(&config).await?;
        Self::start_with_engine(config, engine, development).await
    }

    /// Starts a node on an engine the application built (its own `Engine` implementation, or
    /// one configured in code); `config.engine` and the Redis keys are ignored.
    ///
    /// # Errors
    /// [`ServerError`] when the node cannot start.
    pub async fn start_with_engine(
        config: Config,
        engine: Arc<dyn Engine>,
        development: bool,
    ) -> Result<Self, ServerError> {
        let engine = metrics::Instrumented::wrap(engine);
        let node = Node::start(config.node_config(), engine).await?;
        Ok(Self::with_node(node, config.settings(development)))
    }

    /// Wraps an already started node.
    pub fn with_node(node: Node, settings: Settings) -> Self {
        metrics::install();
        if settings.demo {
            demo::spawn_ticker(node.clone());
        }
        let state = AppState::new(node, settings);
        let (_, api) = api::router(state.clone());
        let openapi = Arc::new(serde_json::to_value(&api).unwrap_or_default());
        let admin = state
            .settings
            .admin
            .enabled
            .then(|| admin::Admin::start(&state));
        Self {
            state,
            openapi,
            admin,
        }
    }

    /// The node, for in-process publishing.
    pub fn node(&self) -> &Node {
        &self.state.node
    }

    /// The HTTP state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Every Switchboard route, ready to merge into an application's router.
    pub fn router(&self) -> Router {
        let (api, _) = api::router(self.state.clone());
        let openapi = self.openapi.clone();
        let mut r = Router::new()
            .route("/ws", get(ws::handler).connect(ws::handler))
            .route("/sse", get(sse::handler))
            .route("/poll", get(poll::handler))
            .route("/auth/ticket", post(http::ticket))
            .route("/cmd", post(http::command))
            .route("/health", get(http::health))
            .route("/ready", get(http::ready))
            .route("/metrics", get(http::metrics))
            .route("/sdk/switchboard.js", get(demo::sdk))
            .route(
                "/api/openapi.json",
                get(move || async move { axum::Json((*openapi).clone()) }),
            )
            .merge(api);
        if self.state.settings.demo {
            r = r.merge(demo::router());
        }
        r = r.merge(admin::router(self.state.clone(), self.admin.clone()));
        r.layer(axum::middleware::from_fn_with_state(
            self.state.clone(),
            http::cors,
        ))
        .layer(axum::middleware::from_fn(access_log::log))
        .with_state(self.state.clone())
    }
}

/// A server listening on a socket.
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// The embedded node and state.
    pub switchboard: Switchboard,
    accept_stop: CancellationToken,
    tracker: TaskTracker,
    grace: std::time::Duration,
    drain_rate: usize,
    tls: Option<tls::Tls>,
}

impl Running {
    /// Binds `config.listen` and serves until [`Running::shutdown`].
    ///
    /// # Errors
    /// [`ServerError`].
    pub async fn start(config: Config, development: bool) -> Result<Self, ServerError> {
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(c), Some(k)) => Some(tls::Tls::new(c, k)?),
            _ => None,
        };
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .map_err(|e| ServerError::Bind(config.listen.clone(), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| ServerError::Bind(config.listen.clone(), e))?;
        let header_timeout = config.connections.header_timeout;
        let (grace, drain_rate) = (config.shutdown_grace, config.drain_rate);
        let switchboard = Switchboard::start(config, development).await?;
        let accept_stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        tokio::spawn(serve::accept_loop(
            listener,
            switchboard.router(),
            tls.clone(),
            header_timeout,
            accept_stop.clone(),
            tracker.clone(),
            Some(switchboard.state().clone()),
        ));
        Ok(Self {
            addr,
            switchboard,
            accept_stop,
            tracker,
            grace,
            drain_rate,
            tls,
        })
    }

    /// Reloads TLS certificates (SIGHUP).
    ///
    /// # Errors
    /// The new files are unusable; the old certificate stays.
    pub fn reload_tls(&self) -> Result<bool, tls::TlsError> {
        match &self.tls {
            Some(t) => t.reload().map(|_| true),
            None => Ok(false),
        }
    }

    /// Graceful drain: readiness turns false, accepting stops, sessions are told to reconnect
    /// (paced by `drain_rate`), in-flight requests finish; returns within the grace period.
    pub async fn shutdown(self) {
        let deadline = tokio::time::Instant::now() + self.grace;
        self.accept_stop.cancel();
        self.switchboard
            .node()
            .shutdown(self.grace, self.drain_rate)
            .await;
        self.tracker.close();
        let _ = tokio::time::timeout_at(deadline, self.tracker.wait()).await;
    }
}
