//! The engine: cross-node fan-out (broker), history and presence behind one trait.
//!
//! # Contract every engine must keep
//! - **Atomic publish per channel.** Assigning the offset, appending to history and handing the
//!   publication to every node's [`EventSink`] are one step per channel: all subscribers on all
//!   nodes see a channel's publications in offset order. (Memory: one lock. Redis: one Lua
//!   script.)
//! - **Offsets** start at 1 and grow by exactly one per publication within an epoch. A channel's
//!   **epoch** changes whenever its history may have been lost (process restart, data loss,
//!   expiry of an idle stream); offsets of different epochs are unrelated.
//! - **History** keeps at most `history_size` publications for at most `history_ttl`.
//!   [`Engine::history`] with `since` answers either every publication after `since` or
//!   [`EngineError::Unrecoverable`]: never a silent gap.
//! - **Idempotency**: a publish with an `idempotency_key` already seen within `idempotency_ttl`
//!   returns the first result with `duplicate: true` and stores nothing.
//! - **Interest**: [`Engine::subscribe`] makes this node receive a channel's events (the hub calls
//!   it for the first local subscriber, [`Engine::unsubscribe`] after the last leaves; the hub
//!   serializes the two per channel). The memory engine delivers to its single node regardless.
//! - **Presence** entries expire after their TTL unless re-added.
//! - **Single-use values** ([`Engine::put_once`], [`Engine::take_once`]: connection tickets,
//!   SSE resume secrets) are visible to every node, expire after their TTL, and are handed out
//!   at most once: of any number of concurrent `take_once` calls on any nodes, at most one
//!   gets the value. (Memory: one map; Redis: `SET PX` and `GETDEL`.)
//! - Delivery to the sink never blocks on slow clients: sinks only enqueue.
//!
//! The conformance suite in [`crate::conformance`] checks these rules; every engine runs it.

pub mod memory;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use switchboard_protocol::{ClientInfo, Publication, StreamPosition};

/// Failures of engine operations.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// History cannot serve the requested position; `position` is the current one.
    #[error("position cannot be recovered from history")]
    Unrecoverable {
        /// The channel's current position.
        position: StreamPosition,
    },
    /// The backend is unreachable or failed; the operation may be retried.
    #[error("engine unavailable: {0}")]
    Unavailable(String),
}

/// How to store a publication.
#[derive(Clone, Debug, Default)]
pub struct PublishOptions {
    /// Publications kept (0 = keep only the offset counter).
    pub history_size: usize,
    /// How long publications are kept.
    pub history_ttl: Duration,
    /// Deduplication key.
    pub idempotency_key: Option<String>,
    /// How long the key's result is kept.
    pub idempotency_ttl: Duration,
    /// The publishing client, when a client published.
    pub info: Option<ClientInfo>,
}

/// Result of a publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishOutcome {
    /// Position assigned to the publication (or to the first one, for duplicates).
    pub position: StreamPosition,
    /// Whether this was a retry of an already stored publication.
    pub duplicate: bool,
}

/// A history read.
#[derive(Clone, Debug, Default)]
pub struct HistoryQuery {
    /// Return only publications after this position (epoch must match).
    pub since: Option<StreamPosition>,
    /// Most publications to return (0 = just the current position).
    pub limit: usize,
    /// Newest first.
    pub reverse: bool,
}

/// A page of history.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistoryPage {
    /// Publications in the requested order.
    pub publications: Vec<Publication>,
    /// The channel's current position.
    pub position: StreamPosition,
}

/// Node-to-node control messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Control {
    /// Disconnect every session of `user` on every node.
    DisconnectUser {
        /// The user id.
        user: String,
        /// Whether the sessions should reconnect.
        reconnect: bool,
    },
}

/// A node known to the engine.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Sessions connected to it.
    pub sessions: u64,
    /// Seconds since it started.
    pub uptime_secs: u64,
}

/// Where an engine delivers events for this node. Implemented by the hub. Methods are
/// synchronous and must only enqueue.
pub trait EventSink: Send + Sync + 'static {
    /// A publication in `channel` (epoch of its stream given separately).
    fn publication(&self, channel: &str, epoch: &str, publication: Publication);
    /// A client joined or left `channel`.
    fn join_leave(&self, channel: &str, join: bool, client: ClientInfo);
    /// A control message from some node (possibly this one).
    fn control(&self, control: Control);
    /// The engine lost its connection to the backend and regained it: events may have been
    /// missed for every channel, so the node must resynchronise its subscribers from history.
    fn reconnected(&self);
}

/// Broker, history and presence for a node.
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// Short name for logs and `/api/info` (`memory`, `redis`).
    fn name(&self) -> &'static str;

    /// Starts delivering events to `sink`. Called once, before any other method.
    ///
    /// # Errors
    /// [`EngineError::Unavailable`] when the backend cannot be reached.
    async fn start(&self, sink: Arc<dyn EventSink>) -> Result<(), EngineError>;

    /// Publishes to a channel; see the contract above.
    ///
    /// # Errors
    /// [`EngineError::Unavailable`] when the backend is unreachable. After a timeout the
    /// publication may nevertheless have been stored: callers that retry should pass an
    /// `idempotency_key`, which makes the retry safe either way.
    async fn publish(
        &self,
        channel: &str,
        data: Bytes,
        opts: &PublishOptions,
    ) -> Result<PublishOutcome, EngineError>;

    /// Reads history.
    ///
    /// # Errors
    /// [`EngineError::Unrecoverable`] when `since` cannot be served; `Unavailable` on backend
    /// failure.
    async fn history(
        &self,
        channel: &str,
        query: &HistoryQuery,
    ) -> Result<HistoryPage, EngineError>;

    /// Starts receiving `channel`'s events on this node.
    ///
    /// # Errors
    /// `Unavailable` on backend failure.
    async fn subscribe(&self, channel: &str) -> Result<(), EngineError>;

    /// Stops receiving `channel`'s events on this node.
    ///
    /// # Errors
    /// `Unavailable` on backend failure.
    async fn unsubscribe(&self, channel: &str) -> Result<(), EngineError>;

    /// Sends a join or leave event to every node subscribed to `channel`.
    ///
    /// # Errors
    /// `Unavailable` on backend failure.
    async fn publish_join_leave(
        &self,
        channel: &str,
        join: bool,
        client: &ClientInfo,
    ) -> Result<(), EngineError>;

    /// Adds (or refreshes) presence entries of `channel`, expiring after `ttl`.
    ///
    /// # Errors
    /// `Unavailable` on backend failure.
    async fn presence_add(
        &self,
        channel: &str,
        clients: &[ClientInfo],
        ttl: Duration,
    ) -> Result<(), EngineError>;

    /// Removes a client's presence entry.
    ///
    /// # Errors
    /// `Unavailable` on backend failure.
    async fn presence_remove(&self, channel: &str, client: &str) -> Result<(), EngineError>;

    /// Lists unexpired presence entries.
    ///
    /// # Errors
    /// `Unavailable` on backend failure.
    async fn presence(&self, channel: &str) -> Result<Vec<ClientInfo>, EngineError>;

    /// Sends a control message to every node, this one included.
    ///
    /// # Errors
    /// `Unavailable` on backend failure.
    async fn publish_control(&self, control: &Control) -> Result<(), EngineError>;

    /// Announces this node (called periodically) and lists live nodes.
    ///
    /// # Errors
    /// `Unavailable` on backend failure.
    async fn nodes(&self, me: &NodeInfo) -> Result<Vec<NodeInfo>, EngineError>;

    /// Whether the backend is reachable now (readiness).
    async fn ready(&self) -> bool;

    /// Stores `value` under `key` for `ttl`, for one [`Engine::take_once`] on any node.
    ///
    /// # Errors
    /// `Unavailable` on backend failure, or when the engine holds as many values as it may.
    async fn put_once(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), EngineError>;

    /// Removes and returns the value under `key`, if it is there and unexpired. Atomic across
    /// nodes: a value is returned at most once.
    ///
    /// # Errors
    /// `Unavailable` on backend failure.
    async fn take_once(&self, key: &str) -> Result<Option<Bytes>, EngineError>;
}
