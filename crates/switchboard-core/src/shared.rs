//! The node's shared state: one context that the hub's owner, sessions and the housekeeper
//! hold (`Arc<Shared>`), with the operations they all need (channel policy, publish, history,
//! presence). [`crate::Node`] is its public face; nothing here is public API.
//!
//! Lifetime: created by `Node::start`, owned by every `Node` clone and every `Session`; the
//! housekeeper holds only a `Weak`, so the node's state goes away with its last user.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::value::RawValue;
use switchboard_protocol::depth::{self, MAX_DATA_DEPTH};
use switchboard_protocol::reply::{HistoryResult, PublishResult};
use switchboard_protocol::{ChannelName, ClientInfo, ErrorCode, ProtocolError, StreamPosition};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::auth::Verifier;
use crate::capabilities::Capabilities;
use crate::config::{NamespaceConfig, NodeConfig};
use crate::engine::{Engine, EngineError, HistoryQuery, NodeInfo, PublishOptions};
use crate::handle::SessionHandle;
use crate::hub::Hub;
use crate::registry::Registry;

/// See the module docs.
pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) config: NodeConfig,
    pub(crate) verifier: Verifier,
    pub(crate) engine: Arc<dyn Engine>,
    pub(crate) hub: Arc<Hub>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) started: Instant,
    seq: AtomicU64,
    pub(crate) shutdown: CancellationToken,
    pub(crate) nodes: Mutex<Vec<NodeInfo>>,
}

impl Shared {
    pub(crate) fn new(
        config: NodeConfig,
        verifier: Verifier,
        engine: Arc<dyn Engine>,
        hub: Arc<Hub>,
        registry: Arc<Registry>,
    ) -> Self {
        Self {
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
        }
    }

    /// A new session handle with a node-unique serial and a cluster-unique id.
    pub(crate) fn new_handle(&self, caps: Capabilities) -> Arc<SessionHandle> {
        let sid = self.seq.fetch_add(1, Ordering::Relaxed);
        let id: Arc<str> = format!("{}-{sid:x}", self.name).into();
        Arc::new(SessionHandle::new(
            sid,
            id,
            caps,
            self.config.limits.outbound_queue_bytes,
        ))
    }

    pub(crate) fn channel<'a>(&self, name: &'a str) -> Result<ChannelName<'a>, ProtocolError> {
        ChannelName::parse(name, self.config.limits.max_channel_length)
            .map_err(|e| ProtocolError::new(ErrorCode::InvalidChannel, e.to_string()))
    }

    pub(crate) fn policy(&self, channel: &ChannelName<'_>) -> &NamespaceConfig {
        self.config.namespace(channel.namespace())
    }

    /// Validates and publishes; every publish path (server API, client command, in-process)
    /// comes through here.
    pub(crate) async fn publish(
        &self,
        channel: &str,
        data: Bytes,
        idempotency_key: Option<String>,
        info: Option<ClientInfo>,
    ) -> Result<PublishResult, ProtocolError> {
        let ch = self.channel(channel)?;
        let limit = self.config.limits.max_message_size;
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
            idempotency_ttl: self.config.client.idempotency_ttl,
            info,
        };
        let out = self
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

    pub(crate) async fn history(
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
            .engine
            .history(channel, &q)
            .await
            .map_err(engine_error("history"))?;
        Ok(HistoryResult {
            publications: page.publications,
            position: page.position,
        })
    }

    pub(crate) async fn presence(&self, channel: &str) -> Result<Vec<ClientInfo>, ProtocolError> {
        let ch = self.channel(channel)?;
        if !self.policy(&ch).presence {
            return Err(ProtocolError::new(
                ErrorCode::NotAvailable,
                "presence is off for this channel's namespace",
            ));
        }
        self.engine
            .presence(channel)
            .await
            .map_err(engine_error("presence"))
    }

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
