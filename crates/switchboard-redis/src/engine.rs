//! `RedisEngine`: the [`Engine`] implementation.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use redis::{RedisResult, Value};
use switchboard_core::engine::memory::new_epoch;
use switchboard_core::engine::{
    Control, Engine, EngineError, EventSink, HistoryPage, HistoryQuery, NodeInfo, PublishOptions,
    PublishOutcome,
};
use switchboard_protocol::{ClientInfo, StreamPosition};
use tokio::sync::mpsc;

use crate::RedisConfig;
use crate::codec::{
    array_of, bad_reply, bytes_of, encode_control, encode_join_leave, int_of, parse_entry,
};
use crate::conn::{connect_commands, connect_pubsub};
use crate::inner::{Inner, Scripts, make_push, millis, unavailable};
use crate::keys::Keys;
use crate::subscriber;
use crate::substate::SubState;

/// The Redis engine. Cheap to clone; all clones share the connections.
#[derive(Clone)]
pub struct RedisEngine {
    pub(crate) inner: Arc<Inner>,
}

impl RedisEngine {
    /// Connects both connections (commands and pubsub). Events are delivered once
    /// [`Engine::start`] is called.
    ///
    /// # Errors
    /// [`EngineError::Unavailable`] when the URL or prefix is invalid or Redis cannot be reached within
    /// `connect_timeout` (plus `command_timeout`).
    pub async fn connect(cfg: RedisConfig) -> Result<Self, EngineError> {
        if cfg.prefix.is_empty() || cfg.prefix.contains(['{', '}']) {
            return Err(EngineError::Unavailable(format!(
                "redis: invalid key prefix {:?} (must be non-empty, without braces)",
                cfg.prefix
            )));
        }
        let subs = Arc::new(SubState::default());
        let (tx, rx) = mpsc::channel(cfg.push_queue.max(1));
        let push = make_push(tx.clone(), subs.clone());
        let deadline = cfg.connect_timeout + cfg.command_timeout;
        let connect = async {
            let cmd = connect_commands(&cfg).await?;
            let sub = connect_pubsub(&cfg, push).await?;
            RedisResult::Ok((cmd, sub))
        };
        let (cmd, sub) = match tokio::time::timeout(deadline, connect).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(unavailable(&e)),
            Err(_) => {
                return Err(EngineError::Unavailable(format!(
                    "redis: could not connect within {deadline:?}"
                )));
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                keys: Keys::new(&cfg.prefix),
                cfg,
                cmd,
                sub: Mutex::new(sub),
                push_tx: tx,
                instance: new_epoch(),
                subs,
                sink: OnceLock::new(),
                push_rx: Mutex::new(Some(rx)),
                scripts: Scripts::new(),
                tasks: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Pushes dropped because the queue to the sink was full (each drop caused a resync).
    pub fn dropped_pushes(&self) -> u64 {
        self.inner.subs.dropped.load(Ordering::Relaxed)
    }

    /// Whether the pubsub connection is healthy (no loss waiting to be recovered).
    pub fn is_connected(&self) -> bool {
        !self.inner.subs.is_lost()
    }

    /// How many times the pubsub connection was found lost and then restored (each time
    /// `EventSink::reconnected` was called).
    pub fn reconnects(&self) -> u64 {
        self.inner.subs.reconnects.load(Ordering::Relaxed)
    }
}

fn parse_position(v: &[Value]) -> Option<StreamPosition> {
    let offset = u64::try_from(int_of(v.get(1)?)?).ok()?;
    let epoch = String::from_utf8(bytes_of(v.get(2)?.clone())?).ok()?;
    Some(StreamPosition { offset, epoch })
}

#[async_trait]
impl Engine for RedisEngine {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn start(&self, sink: Arc<dyn EventSink>) -> Result<(), EngineError> {
        let inner = &self.inner;
        if inner.sink.set(sink).is_err() {
            return Err(EngineError::Unavailable("engine already started".into()));
        }
        let rx = inner
            .push_rx
            .lock()
            .take()
            .ok_or_else(|| EngineError::Unavailable("engine already started".into()))?;
        let weak = Arc::downgrade(inner);
        let pushes = tokio::spawn(subscriber::run_pushes(weak.clone(), rx));
        let supervisor = tokio::spawn(subscriber::supervise(weak.clone()));
        let keepalive = tokio::spawn(crate::keepalive::run(weak));
        inner.tasks.lock().extend([
            pushes.abort_handle(),
            supervisor.abort_handle(),
            keepalive.abort_handle(),
        ]);
        let mut names = inner
            .subs
            .probes
            .plan(&inner.cmd, &inner.cfg, &inner.instance)
            .await?;
        names.push(inner.keys.control().to_owned());
        let mut sub = inner.sub();
        inner.run(sub.resubscribe(&names)).await?;
        inner.subs.probes.reset();
        Ok(())
    }

    async fn publish(
        &self,
        channel: &str,
        data: Bytes,
        opts: &PublishOptions,
    ) -> Result<PublishOutcome, EngineError> {
        let inner = &self.inner;
        let keys = &inner.keys;
        let info = match &opts.info {
            Some(i) => {
                serde_json::to_vec(i).map_err(|e| EngineError::Unavailable(e.to_string()))?
            }
            None => Vec::new(),
        };
        let meta_ttl = inner.cfg.meta_ttl.max(opts.history_ttl.saturating_mul(2));
        let mut inv = inner.scripts.publish.prepare_invoke();
        inv.key(keys.stream(channel)).key(keys.meta(channel));
        if let Some(k) = &opts.idempotency_key {
            inv.key(keys.idempotency(channel, k));
        }
        inv.arg(keys.pubsub(channel))
            .arg(data.as_ref())
            .arg(info)
            .arg(opts.history_size.min(i64::MAX as usize))
            .arg(millis(opts.history_ttl))
            .arg(millis(meta_ttl).max(1000))
            .arg(new_epoch())
            .arg(millis(opts.idempotency_ttl).max(1))
            .arg(inner.publish_cmd());
        let mut conn = inner.cmd.clone();
        let v: Value = inner.run(inv.invoke_async(&mut conn)).await?;
        let v = array_of(v).ok_or_else(|| bad_reply("publish"))?;
        let duplicate = v
            .first()
            .and_then(int_of)
            .ok_or_else(|| bad_reply("publish"))?
            == 1;
        let position = parse_position(&v).ok_or_else(|| bad_reply("publish"))?;
        Ok(PublishOutcome {
            position,
            duplicate,
        })
    }

    async fn history(&self, channel: &str, q: &HistoryQuery) -> Result<HistoryPage, EngineError> {
        let inner = &self.inner;
        let keys = &inner.keys;
        let mut inv = inner.scripts.history.prepare_invoke();
        inv.key(keys.stream(channel))
            .key(keys.meta(channel))
            .arg(new_epoch())
            .arg(millis(inner.cfg.meta_ttl).max(1000));
        match &q.since {
            Some(s) => inv.arg(s.offset).arg(s.epoch.as_str()),
            None => inv.arg("").arg(""),
        };
        inv.arg(q.limit.min(i64::MAX as usize))
            .arg(if q.reverse { "1" } else { "0" });
        let mut conn = inner.cmd.clone();
        let v: Value = inner.run(inv.invoke_async(&mut conn)).await?;
        let mut v = array_of(v).ok_or_else(|| bad_reply("history"))?;
        let ok = v
            .first()
            .and_then(int_of)
            .ok_or_else(|| bad_reply("history"))?
            == 1;
        let position = parse_position(&v).ok_or_else(|| bad_reply("history"))?;
        if !ok {
            return Err(EngineError::Unrecoverable { position });
        }
        let entries = if v.len() > 3 {
            array_of(v.swap_remove(3)).ok_or_else(|| bad_reply("history entries"))?
        } else {
            Vec::new()
        };
        let publications = entries
            .into_iter()
            .map(|e| parse_entry(e).ok_or_else(|| bad_reply("history entry")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HistoryPage {
            publications,
            position,
        })
    }

    async fn subscribe(&self, channel: &str) -> Result<(), EngineError> {
        subscriber::subscribe(&self.inner, channel).await
    }

    async fn unsubscribe(&self, channel: &str) -> Result<(), EngineError> {
        let r = subscriber::unsubscribe(&self.inner, channel).await;
        // The last local subscriber left: the position lives `meta_ttl` from now.
        crate::keepalive::extend(&self.inner, &[channel.to_owned()]).await;
        r
    }

    async fn publish_join_leave(
        &self,
        channel: &str,
        join: bool,
        client: &ClientInfo,
    ) -> Result<(), EngineError> {
        let inner = &self.inner;
        inner
            .publish_raw(&inner.keys.pubsub(channel), encode_join_leave(join, client))
            .await
    }

    async fn presence_add(
        &self,
        channel: &str,
        clients: &[ClientInfo],
        ttl: Duration,
    ) -> Result<(), EngineError> {
        if clients.is_empty() {
            return Ok(());
        }
        let inner = &self.inner;
        let mut inv = inner.scripts.presence_add.prepare_invoke();
        inv.key(inner.keys.presence(channel))
            .key(inner.keys.presence_expiry(channel))
            .arg(millis(ttl).max(1));
        for c in clients {
            let json =
                serde_json::to_vec(c).map_err(|e| EngineError::Unavailable(e.to_string()))?;
            inv.arg(c.client.as_str()).arg(json);
        }
        let mut conn = inner.cmd.clone();
        inner.run(inv.invoke_async::<()>(&mut conn)).await
    }

    async fn presence_remove(&self, channel: &str, client: &str) -> Result<(), EngineError> {
        let inner = &self.inner;
        let mut inv = inner.scripts.presence_remove.prepare_invoke();
        inv.key(inner.keys.presence(channel))
            .key(inner.keys.presence_expiry(channel))
            .arg(client);
        let mut conn = inner.cmd.clone();
        inner.run(inv.invoke_async::<()>(&mut conn)).await
    }

    async fn presence(&self, channel: &str) -> Result<Vec<ClientInfo>, EngineError> {
        let inner = &self.inner;
        let mut inv = inner.scripts.presence.prepare_invoke();
        inv.key(inner.keys.presence(channel))
            .key(inner.keys.presence_expiry(channel));
        let mut conn = inner.cmd.clone();
        let v: Value = inner.run(inv.invoke_async(&mut conn)).await?;
        let mut out = array_of(v)
            .ok_or_else(|| bad_reply("presence"))?
            .into_iter()
            .filter_map(|e| serde_json::from_slice::<ClientInfo>(&bytes_of(e)?).ok())
            .collect::<Vec<_>>();
        out.sort_by(|a, b| a.client.cmp(&b.client));
        Ok(out)
    }

    async fn publish_control(&self, control: &Control) -> Result<(), EngineError> {
        let inner = &self.inner;
        inner
            .publish_raw(inner.keys.control(), encode_control(control))
            .await
    }

    async fn nodes(&self, me: &NodeInfo) -> Result<Vec<NodeInfo>, EngineError> {
        let inner = &self.inner;
        let json = serde_json::to_vec(me).map_err(|e| EngineError::Unavailable(e.to_string()))?;
        let mut inv = inner.scripts.nodes.prepare_invoke();
        inv.key(inner.keys.nodes())
            .key(inner.keys.nodes_info())
            .arg(me.name.as_str())
            .arg(json)
            .arg(millis(inner.cfg.node_ttl).max(1));
        let mut conn = inner.cmd.clone();
        let v: Value = inner.run(inv.invoke_async(&mut conn)).await?;
        let mut nodes: Vec<NodeInfo> = array_of(v)
            .ok_or_else(|| bad_reply("nodes"))?
            .into_iter()
            .filter_map(|e| {
                let v: serde_json::Value = serde_json::from_slice(&bytes_of(e)?).ok()?;
                Some(NodeInfo {
                    name: v.get("name")?.as_str()?.to_owned(),
                    sessions: v.get("sessions")?.as_u64()?,
                    uptime_secs: v.get("uptime_secs")?.as_u64()?,
                })
            })
            .collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(nodes)
    }

    async fn put_once(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), EngineError> {
        let inner = &self.inner;
        let mut conn = inner.cmd.clone();
        let mut cmd = redis::cmd("SET");
        cmd.arg(inner.keys.once(key))
            .arg(value.as_ref())
            .arg("PX")
            .arg(millis(ttl).max(1));
        inner.run(cmd.query_async::<()>(&mut conn)).await
    }

    async fn take_once(&self, key: &str) -> Result<Option<Bytes>, EngineError> {
        let inner = &self.inner;
        let mut conn = inner.cmd.clone();
        // GETDEL is atomic: of concurrent takers on any nodes, one gets the value.
        let mut cmd = redis::cmd("GETDEL");
        cmd.arg(inner.keys.once(key));
        let v: Option<Vec<u8>> = inner.run(cmd.query_async(&mut conn)).await?;
        Ok(v.map(Bytes::from))
    }

    async fn ready(&self) -> bool {
        let inner = &self.inner;
        let mut conn = inner.cmd.clone();
        let ping = async { redis::cmd("PING").query_async::<()>(&mut conn).await };
        let timeout = inner.cfg.command_timeout.min(Duration::from_secs(1));
        matches!(tokio::time::timeout(timeout, ping).await, Ok(Ok(()))) && !inner.subs.is_lost()
    }
}
