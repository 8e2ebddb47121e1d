//! The engine's shared state (`Inner`): configuration, key layout, the command and pubsub
//! connections, interest and health (`SubState`), the sink, scripts and background tasks.
//! `RedisEngine` is its public face; the subscriber, supervisor, probes and keepalive work on
//! it. Owned by every `RedisEngine` clone; background tasks hold only a `Weak`, and dropping
//! the last clone aborts them.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use redis::{PushInfo, RedisResult, Script};
use switchboard_core::engine::{EngineError, EventSink};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::RedisConfig;
pub(crate) use crate::conn::unavailable;
use crate::conn::{Conn, PushFn, SubConn, connect_pubsub};
use crate::keys::Keys;
use crate::substate::SubState;

pub(crate) struct Scripts {
    pub(crate) publish: Script,
    pub(crate) history: Script,
    pub(crate) presence_add: Script,
    pub(crate) presence: Script,
    pub(crate) presence_remove: Script,
    pub(crate) nodes: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            publish: Script::new(include_str!("lua/publish.lua")),
            history: Script::new(include_str!("lua/history.lua")),
            presence_add: Script::new(include_str!("lua/presence_add.lua")),
            presence: Script::new(include_str!("lua/presence.lua")),
            presence_remove: Script::new(include_str!("lua/presence_remove.lua")),
            nodes: Script::new(include_str!("lua/nodes.lua")),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) cfg: RedisConfig,
    pub(crate) keys: Keys,
    pub(crate) cmd: Conn,
    pub(crate) sub: Mutex<SubConn>,
    pub(crate) push_tx: mpsc::Sender<PushInfo>,
    /// Random id of this engine instance (names its probe channels).
    pub(crate) instance: String,
    pub(crate) subs: Arc<SubState>,
    pub(crate) sink: OnceLock<Arc<dyn EventSink>>,
    pub(crate) push_rx: Mutex<Option<mpsc::Receiver<PushInfo>>>,
    pub(crate) scripts: Scripts,
    pub(crate) tasks: Mutex<Vec<AbortHandle>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for t in self.tasks.get_mut().drain(..) {
            t.abort();
        }
    }
}

/// Milliseconds, capped at about ten years so that Redis' expiry arithmetic cannot overflow.
pub(crate) fn millis(d: Duration) -> u64 {
    const MAX: u64 = 10 * 365 * 24 * 3600 * 1000;
    u64::try_from(d.as_millis()).unwrap_or(MAX).min(MAX)
}

/// The push callback: never fails and never blocks (redis-rs#1610). A full queue drops the
/// push and flags a resync instead.
pub(crate) fn make_push(tx: mpsc::Sender<PushInfo>, subs: Arc<SubState>) -> PushFn {
    Box::new(move |info: PushInfo| {
        if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(info) {
            subs.dropped.fetch_add(1, Ordering::Relaxed);
            subs.overflow.store(true, Ordering::Release);
        }
        Ok(())
    })
}

impl Inner {
    /// The current pubsub connection.
    pub(crate) fn sub(&self) -> SubConn {
        self.sub.lock().clone()
    }

    /// Replaces the pubsub connection with a new one (which has no subscriptions yet).
    pub(crate) async fn rebuild_sub(&self) -> Result<(), EngineError> {
        let push = make_push(self.push_tx.clone(), self.subs.clone());
        let new = self.run(connect_pubsub(&self.cfg, push)).await?;
        *self.sub.lock() = new;
        Ok(())
    }

    /// Runs a command with the command timeout; failures become `Unavailable`.
    pub(crate) async fn run<T>(
        &self,
        fut: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, EngineError> {
        crate::conn::run(self.cfg.command_timeout, fut).await
    }

    pub(crate) fn publish_cmd(&self) -> &'static str {
        if self.cfg.cluster {
            "SPUBLISH"
        } else {
            "PUBLISH"
        }
    }

    pub(crate) async fn publish_raw(
        &self,
        channel: &str,
        payload: Vec<u8>,
    ) -> Result<(), EngineError> {
        let mut conn = self.cmd.clone();
        let mut cmd = redis::cmd(self.publish_cmd());
        cmd.arg(channel).arg(payload);
        self.run(cmd.query_async::<()>(&mut conn)).await
    }
}
