//! The Redis engine for Switchboard: cross-node fan-out over Redis pubsub, history in Redis
//! streams, presence in hashes, all keyed per channel under one hash tag so it also runs on Redis
//! Cluster (sharded pubsub).
//!
//! See the crate's README.md for the key layout and the guarantees of the Lua scripts.
//!
//! ```no_run
//! # async fn f() -> Result<(), switchboard_core::engine::EngineError> {
//! use switchboard_redis::{RedisConfig, RedisEngine};
//! let engine = RedisEngine::connect(RedisConfig {
//!     url: "redis://127.0.0.1:6379".into(),
//!     ..RedisConfig::default()
//! })
//! .await?;
//! # Ok(()) }
//! ```

mod codec;
mod conn;
mod engine;
mod inner;
mod keepalive;
mod keys;
mod probe;
mod subscriber;
mod substate;

use std::time::Duration;

pub use engine::RedisEngine;

/// How to reach Redis and how to lay out keys.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// `redis://[user:pass@]host:port[/db]` (or `rediss://` with TLS support compiled in). With
    /// `cluster`, a comma-separated list of seed node URLs. RESP3 is always used.
    pub url: String,
    /// Prefix of every key and pubsub channel (default `sb`): several Switchboard deployments
    /// may share one Redis with different prefixes.
    pub prefix: String,
    /// Redis Cluster: sharded pubsub (`SSUBSCRIBE`/`SPUBLISH`) and cluster routing.
    pub cluster: bool,
    /// This node's name, for logs.
    pub node_name: String,
    /// Every command fails with `Unavailable` after this long (default 1.5 s).
    pub command_timeout: Duration,
    /// Connection attempts give up after this long (default 1 s).
    pub connect_timeout: Duration,
    /// How long a channel's meta (epoch and top offset) outlives its last use: its last
    /// publication, history read, or the last subscriber on any node leaving (default 24 h;
    /// after a publication at least twice the history ttl). While any node is subscribed it
    /// does not expire (each node extends it). When it expires the channel starts a new epoch,
    /// so old positions become unrecoverable, which is the honest answer by then.
    pub meta_ttl: Duration,
    /// Nodes that did not announce themselves for this long are dropped from `nodes()`
    /// (default 15 s).
    pub node_ttl: Duration,
    /// How often the pubsub connection is checked with a PING (default 1 s). A failed check
    /// counts as a lost connection: once it is back, the hub resynchronises from history.
    pub ping_interval: Duration,
    /// Pushes queued between the Redis connection and the sink before newer ones are dropped
    /// (default 1,000,000); a drop triggers a full resync (`EventSink::reconnected`).
    pub push_queue: usize,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            prefix: "sb".into(),
            cluster: false,
            node_name: "switchboard".into(),
            command_timeout: Duration::from_millis(1500),
            connect_timeout: Duration::from_secs(1),
            meta_ttl: Duration::from_secs(24 * 3600),
            node_ttl: Duration::from_secs(15),
            ping_interval: Duration::from_secs(1),
            push_queue: 1_000_000,
        }
    }
}
