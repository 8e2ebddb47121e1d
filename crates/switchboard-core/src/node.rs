//! The node: configuration, engine, hub and sessions wired together, and the API that
//! transports, the REST layer and embedding applications call.

use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use switchboard_protocol::reply::{HistoryResult, PublishResult};
use switchboard_protocol::{
    ChannelName, ClientInfo, Disconnect, ErrorCode, ProtocolError, StreamPosition,
};
use tokio_util::sync::CancellationToken;

use crate::auth::{AuthError, Credentials, Verifier};
use crate::capabilities::Capabilities;
use crate::config::{NamespaceConfig, NodeConfig};
use crate::engine::{Control, Engine, EngineError, NodeInfo};
use crate::hub::Hub;
use crate::registry::Registry;
use crate::session::Session;
use crate::shared::{Shared, engine_error};

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
    inner: Arc<Shared>,
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
        let inner = Arc::new(Shared::new(config, verifier, engine, hub, registry));
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

    /// Opens a session for a transport with `caps`. A long-lived session is registered with
    /// the node once connected; everything it registers is removed when it is dropped.
    pub fn session(&self, caps: Capabilities) -> Session {
        Session::new(self.inner.clone(), self.inner.new_handle(caps))
    }

    /// Parses a channel name against the node's limits.
    ///
    /// # Errors
    /// `invalid_channel`.
    pub fn channel<'a>(&self, name: &'a str) -> Result<ChannelName<'a>, ProtocolError> {
        self.inner.channel(name)
    }

    /// The namespace policy of a channel.
    pub fn policy(&self, channel: &ChannelName<'_>) -> &NamespaceConfig {
        self.inner.policy(channel)
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
        self.inner
            .publish(channel, data, idempotency_key, None)
            .await
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
        self.inner.history(channel, since, limit, reverse).await
    }

    /// Lists the clients present in a channel (server view).
    ///
    /// # Errors
    /// `invalid_channel`, `not_available` (presence off), `internal`.
    pub async fn presence(&self, channel: &str) -> Result<Vec<ClientInfo>, ProtocolError> {
        self.inner.presence(channel).await
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
