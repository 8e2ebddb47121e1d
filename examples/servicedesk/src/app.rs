//! Wiring: the database, the embedded Switchboard node, and one axum router holding the app's
//! pages and REST API next to Switchboard's own routes (`/ws`, `/sse`, `/sdk/switchboard.js`,
//! ...), served by `axum::serve` on one listener.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use switchboard_server::Switchboard;
use tokio::sync::{Mutex, oneshot};
use tokio::task::JoinHandle;

use crate::channels::{Pusher, switchboard_config};
use crate::settings::Settings;
use crate::store::Db;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    /// SQLite.
    pub db: Db,
    /// In-process publishing.
    pub push: Pusher,
    /// Settings (the JWT secret for `/app/token`).
    pub settings: Arc<Settings>,
    /// Held while a change is written and pushed, so pushes leave in the order of the writes.
    pub writes: Arc<Mutex<()>>,
}

/// Opens the database, starts the embedded node and builds the whole router.
///
/// # Errors
/// The database or the node cannot start.
pub async fn build(settings: Settings) -> anyhow::Result<(Router, AppState, Switchboard)> {
    let db = Db::open(&settings.database)
        .with_context(|| format!("opening the database {}", settings.database))?;
    if settings.seed {
        db.run(crate::seed::seed_if_empty).await?;
    }
    // `development = false`: no demo page or `/dev/token`; tokens come from `/app/token`.
    let sb = Switchboard::start(switchboard_config(&settings), false).await?;
    let state = AppState {
        db,
        push: Pusher::new(sb.node().clone()),
        settings: Arc::new(settings),
        writes: Arc::new(Mutex::new(())),
    };
    let router = Router::new()
        .merge(crate::pages::router())
        .merge(crate::api::router())
        .with_state(state.clone())
        .merge(sb.router());
    Ok((router, state, sb))
}

/// A running app.
pub struct Running {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    /// The embedded Switchboard.
    pub switchboard: Switchboard,
    /// Handler state.
    pub state: AppState,
    stop: oneshot::Sender<()>,
    server: JoinHandle<std::io::Result<()>>,
}

/// Binds `settings.listen` and serves until [`Running::shutdown`].
///
/// # Errors
/// The address is taken, or [`build`] failed.
pub async fn start(settings: Settings) -> anyhow::Result<Running> {
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let (router, state, switchboard) = build(settings).await?;
    let (stop, stopped) = oneshot::channel::<()>();
    // Connect info gives Switchboard the peer address for its per-IP connection limits.
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move {
        axum::serve(listener, service)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    Ok(Running {
        addr,
        switchboard,
        state,
        stop,
        server,
    })
}

impl Running {
    /// Tells connected browsers to reconnect later (close code 4000, paced), then stops
    /// accepting and lets in-flight requests finish.
    pub async fn shutdown(self) {
        let grace = Duration::from_secs(5);
        self.switchboard.node().shutdown(grace, 1000).await;
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(grace, self.server).await;
    }
}
