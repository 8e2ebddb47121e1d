//! The node: configuration, engine, hub and sessions wired together, and the API that
//! transports, the REST layer and embedding applications call.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::value::RawValue;
use switchboard_protocol::depth::{self, MAX_DATA_DEPTH};
use switchboard_protocol::reply::{HistoryResult, PublishResult};
use switchboard_protocol::{
    ChannelName, ClientInfo, Disconnect, ErrorCode, ProtocolError, StreamPosition,
};
use tokio_util::sync::CancellationToken;

use crate::auth::{AuthError, Credentials, Verifier};
use crate::config::{NamespaceConfig, NodeConfig};
use crate::engine::{Control, Engine, EngineError, HistoryQuery, NodeInfo, PublishOptions};
use crate::hub::Hub;
use crate::registry::Registry;
use crate::session::Session;
use crate::session::handle::{SessionHandle, Transport};

/// Errors starting a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The engine failed to start.
    #[error("engine failed to start: {0}")]
    Engine(#[from] EngineError),
}

pub(crate) struct NodeInner {
    pub(crate) name: String,
    pub(crate) config: NodeConfig,
    pub(crate) verifier: Verifier,
    pub(crate) engine: Arc<dyn Engine>,
    pub(crate) hub: Arc<Hub>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) started: Instant,
    pub(crate) seq: AtomicU64,
    pub(crate) shutdown: CancellationToken,
    pub(crate) nodes: Mutex<Vec<NodeInfo>>,
}

/// A running Switchboard node. Cheap to clone; all clones share the node.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use switchboard_core::{Node, NodeConfig};
/// let node = Node::memory(NodeConfig::default()).await?;
/// node.publish_json("orders:42", &serde_json::json!({"status": "completed"}), None).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<NodeInner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.inner.name)
            .field("engine", &self.inner.engine.name())
            .finish()
    }
}

impl Node {
    /// Starts a node on `engine`.
    ///
    /// # Errors
    /// [`NodeError`] for invalid configuration (bad JWT key, nonsense limits) or an engine that
    /// cannot start.
    pub async fn start(mut config: NodeConfig, engine: Arc<dyn Engine>) -> Result<Self, NodeError> {
        config.validate().map_err(NodeError::Config)?;
        let verifier =
            Verifier::from_config(&config.jwt).map_err(|e| NodeError::Config(e.to_string()))?;
        if config.name.is_empty() {
            config.name = format!(
                "node-{}",
                crate::engine::memory::new_epoch()[..6].to_lowercase()
            );
        }
        let registry = Arc::new(Registry::default());
        let hub = Hub::new(registry.clone());
        hub.set_engine(&engine);
        engine.start(hub.clone()).await?;
        let inner = Arc::new(NodeInner {
            name: config.name.clone(),
            config,
            verifier,
            engine,
            hub,
            registry,
            started: Instant::now(),
            seq: AtomicU64::new(1),
            shutdown: CancellationToken::new(),
            nodes: Mutex::new(Vec::new()),
        });
        crate::housekeeper::spawn(Arc::downgrade(&inner));
        inner.announce().await;
        Ok(Self { inner })
    }

    /// Starts a node on the embedded memory engine.
    ///
    /// # Errors
    /// As [`Node::start`].
    pub async fn memory(config: NodeConfig) -> Result<Self, NodeError> {
        Self::start(config, Arc::new(crate::engine::memory::MemoryEngine::new())).await
    }

    /// The node's configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.inner.engine
    }

    /// Seconds since start.
    pub fn uptime_secs(&self) -> u64 {
        self.inner.started.elapsed().as_secs()
    }

    /// The connected sessions.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// A token that is cancelled when the node begins shutting down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    /// Verifies a JWT.
    ///
    /// # Errors
    /// [`AuthError`].
    pub fn verify_token(&self, token: &str) -> Result<Credentials, AuthError> {
        self.inner.verifier.verify(token)
    }

    /// Creates a session for a transport. It is registered with the node once connected.
    pub fn session(&self, transport: Transport) -> Session {
        let sid = self.inner.seq.fetch_add(1, Ordering::Relaxed);
        let id: Arc<str> = format!("{}-{sid:x}", self.inner.name).into();
        let handle = Arc::new(SessionHandle::new(
            sid,
            id,
            transport,
            self.inner.config.limits.outbound_queue_bytes,
        ));
        Session::new(self.clone(), handle)
    }

    /// Parses a channel name against the node's limits.
    ///
    /// # Errors
    /// `invalid_channel`.
    pub fn channel<'a>(&self, name: &'a str) -> Result<ChannelName<'a>, ProtocolError> {
        ChannelName::parse(name, self.inner.config.limits.max_channel_length)
            .map_err(|e| ProtocolError::new(ErrorCode::InvalidChannel, e.to_string()))
    }

    /// The namespace policy of a channel.
    pub fn policy(&self, channel: &ChannelName<'_>) -> &NamespaceConfig {
        self.inner.config.namespace(channel.namespace())
    }

    /// Publishes raw JSON `data` to `channel` as the server (no publishing client).
    ///
    /// # Errors
    /// `invalid_channel`, `bad_request` (not JSON), `too_large`, `internal` (engine down).
    pub async fn publish(
        &self,
        channel: &str,
        data: Bytes,
        idempotency_key: Option<String>,
    ) -> Result<PublishResult, ProtocolError> {
        self.publish_as(channel, data, idempotency_key, None).await
    }

    /// Serializes `data` and publishes it.
    ///
    /// # Errors
    /// As [`Node::publish`].
    pub async fn publish_json<T: Serialize + ?Sized>(
        &self,
        channel: &str,
        data: &T,
        idempotency_key: Option<String>,
    ) -> Result<PublishResult, ProtocolError> {
        let bytes = serde_json::to_vec(data)
            .map_err(|e| ProtocolError::new(ErrorCode::BadRequest, e.to_string()))?;
        self.publish(channel, Bytes::from(bytes), idempotency_key)
            .await
    }

    pub(crate) async fn publish_as(
        &self,
        channel: &str,
        data: Bytes,
        idempotency_key: Option<String>,
        info: Option<ClientInfo>,
    ) -> Result<PublishResult, ProtocolError> {
        let ch = self.channel(channel)?;
        let limit = self.inner.config.limits.max_message_size;
        if data.len() > limit {
            return Err(ProtocolError::new(
                ErrorCode::TooLarge,
                format!("data is larger than {limit} bytes"),
            ));
        }
        let text = std::str::from_utf8(&data)
            .map_err(|_| ProtocolError::new(ErrorCode::BadRequest, "data is not UTF-8 JSON"))?;
        serde_json::from_str::<&RawValue>(text).map_err(|e| {
            ProtocolError::new(ErrorCode::BadRequest, format!("data is not JSON: {e}"))
        })?;
        // Validated here, once, on every publish path; stored data is never parsed again.
        if depth::json_depth(&data, MAX_DATA_DEPTH) > MAX_DATA_DEPTH {
            return Err(ProtocolError::new(
                ErrorCode::BadRequest,
                format!("data is nested deeper than {MAX_DATA_DEPTH} levels"),
            ));
        }
        if idempotency_key
            .as_ref()
            .is_some_and(|k| k.is_empty() || k.len() > 256)
        {
            return Err(ProtocolError::new(
                ErrorCode::BadRequest,
                "idempotency_key must be 1–256 bytes",
            ));
        }
        let ns = self.policy(&ch);
        let opts = PublishOptions {
            history_size: ns.history_size,
            history_ttl: ns.history_ttl,
            idempotency_key,
            idempotency_ttl: self.inner.config.client.idempotency_ttl,
            info,
        };
        let out = self
            .inner
            .engine
            .publish(channel, data, &opts)
            .await
            .map_err(engine_error("publish"))?;
        if !out.duplicate {
            crate::metrics::published();
        }
        Ok(PublishResult {
            offset: out.position.offset,
            epoch: out.position.epoch,
        })
    }

    /// Reads a channel's history (server view: no permission checks).
    ///
    /// # Errors
    /// `invalid_channel`, `not_available` (no history), `unrecoverable_position`, `internal`.
    pub async fn history(
        &self,
        channel: &str,
        since: Option<StreamPosition>,
        limit: Option<u32>,
        reverse: bool,
    ) -> Result<HistoryResult, ProtocolError> {
        let ch = self.channel(channel)?;
        let size = self.policy(&ch).history_size;
        if size == 0 && limit != Some(0) {
            return Err(ProtocolError::new(
                ErrorCode::NotAvailable,
                "history is off for this channel's namespace",
            ));
        }
        let limit = limit.map_or(size, |l| (l as usize).min(size));
        let q = HistoryQuery {
            since,
            limit,
            reverse,
        };
        let page = self
            .inner
            .engine
            .history(channel, &q)
            .await
            .map_err(engine_error("history"))?;
        Ok(HistoryResult {
            publications: page.publications,
            position: page.position,
        })
    }

    /// Lists the clients present in a channel (server view).
    ///
    /// # Errors
    /// `invalid_channel`, `not_available` (presence off), `internal`.
    pub async fn presence(&self, channel: &str) -> Result<Vec<ClientInfo>, ProtocolError> {
        let ch = self.channel(channel)?;
        if !self.policy(&ch).presence {
            return Err(ProtocolError::new(
                ErrorCode::NotAvailable,
                "presence is off for this channel's namespace",
            ));
        }
        self.inner
            .engine
            .presence(channel)
            .await
            .map_err(engine_error("presence"))
    }

    /// This node's active channels and local subscriber counts.
    pub fn channels(&self, pattern: Option<&str>) -> Vec<(String, usize)> {
        self.inner.hub.channels(pattern)
    }

    /// Disconnects every session of `user` on every node. Returns the number closed here.
    ///
    /// # Errors
    /// `internal` when the engine cannot reach other nodes.
    pub async fn disconnect_user(
        &self,
        user: &str,
        reconnect: bool,
    ) -> Result<usize, ProtocolError> {
        let here = self.inner.registry.count_user(user);
        let c = Control::DisconnectUser {
            user: user.to_owned(),
            reconnect,
        };
        self.inner
            .engine
            .publish_control(&c)
            .await
            .map_err(engine_error("control"))?;
        Ok(here)
    }

    /// Live nodes as last announced through the engine.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        self.inner.nodes.lock().clone()
    }

    /// Whether the engine is reachable and the node is not shutting down.
    pub async fn ready(&self) -> bool {
        !self.inner.shutdown.is_cancelled() && self.inner.engine.ready().await
    }

    /// Begins shutdown: readiness turns false and every session is told to reconnect
    /// elsewhere (4000), `per_second` sessions at a time so clients do not all return at
    /// once. Resolves when every session is closed or `grace` passes.
    pub async fn shutdown(&self, grace: std::time::Duration, per_second: usize) {
        self.inner.shutdown.cancel();
        let deadline = tokio::time::Instant::now() + grace;
        let mut all = Vec::new();
        self.inner.registry.for_each(|s| all.push(s.clone()));
        let per_tick = (per_second / 10).max(1);
        // Each client also gets a jittered delay before it reconnects, spread over about as
        // long as the drain itself takes (at least a second, at most 30 s), so the nodes that
        // take over see a steady trickle rather than a wave.
        let spread_ms = ((all.len() as u64 * 1000) / per_second.max(1) as u64).clamp(1000, 30_000);
        for chunk in all.chunks(per_tick) {
            for s in chunk {
                s.set_reconnect_delay_ms(rand::random_range(1..=spread_ms));
                s.outbox.close(Disconnect::SHUTDOWN);
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        for s in &all {
            s.outbox.close(Disconnect::SHUTDOWN);
        }
        while !self.inner.registry.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

impl NodeInner {
    pub(crate) async fn announce(&self) {
        let me = NodeInfo {
            name: self.name.clone(),
            sessions: self.registry.len() as u64,
            uptime_secs: self.started.elapsed().as_secs(),
        };
        match self.engine.nodes(&me).await {
            Ok(nodes) => *self.nodes.lock() = nodes,
            Err(_) => crate::metrics::engine_error("nodes"),
        }
    }
}

/// Maps engine failures to protocol errors.
pub(crate) fn engine_error(op: &'static str) -> impl Fn(EngineError) -> ProtocolError {
    move |e| match e {
        EngineError::Unrecoverable { .. } => ProtocolError::new(
            ErrorCode::UnrecoverablePosition,
            "history does not reach back to that position",
        ),
        EngineError::Unavailable(msg) => {
            crate::metrics::engine_error(op);
            tracing::warn!(op, error = %msg, "engine unavailable");
            ProtocolError::new(ErrorCode::Internal, "engine unavailable, retry later")
        }
    }
}
