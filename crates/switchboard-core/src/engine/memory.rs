//! The embedded single-node engine: history, presence and fan-out in process memory.
//!
//! Each channel's stream sits behind its own lock; publishing assigns the offset, appends and
//! hands the publication to the hub under that lock, which is what makes a channel's order
//! total. Epochs are random per stream, so a restarted node (or a stream forgotten after being
//! unused) never lets old offsets look contiguous with new ones.
//!
//! # Stream lifetime
//! A channel's position (offset and epoch) is kept while this node has subscribers on it
//! (between [`Engine::subscribe`] and [`Engine::unsubscribe`]) and, after that, for the meta TTL
//! (default [`DEFAULT_META_TTL`], at least twice the history TTL) after its last publication,
//! history read or last subscriber leaving: a client may present a position that long and still
//! hear `recovered: true` when nothing it missed was lost. Only then is the stream forgotten;
//! a later publication starts a new epoch, which is the honest answer by then.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use switchboard_protocol::{ClientInfo, Publication, StreamPosition};
use tokio::time::Instant;

use super::{
    Control, Engine, EngineError, EventSink, HistoryPage, HistoryQuery, NodeInfo, PublishOptions,
    PublishOutcome,
};

const SHARDS: usize = 64;
/// How long an unused channel's position is kept by default (the Redis engine's default too):
/// a day covers a laptop closed overnight; an empty stream costs about 150 bytes.
pub const DEFAULT_META_TTL: Duration = Duration::from_secs(24 * 3600);

struct Stream {
    epoch: Arc<str>,
    top: u64,
    pubs: VecDeque<(Publication, Instant)>,
    /// Whether this node has subscribers on the channel (the hub's interest).
    subscribed: bool,
    /// Last publication, history read, or last subscriber leaving.
    touched: Instant,
    /// How long after `touched` an unsubscribed stream is kept.
    keep: Duration,
}

impl Stream {
    fn new(keep: Duration) -> Self {
        Self {
            epoch: new_epoch().into(),
            top: 0,
            pubs: VecDeque::new(),
            subscribed: false,
            touched: Instant::now(),
            keep,
        }
    }

    /// Whether the stream must be kept at `now` (see the module docs).
    fn alive(&self, now: Instant) -> bool {
        self.subscribed || !self.pubs.is_empty() || now.duration_since(self.touched) < self.keep
    }

    fn trim_expired(&mut self, now: Instant) {
        while self.pubs.front().is_some_and(|(_, exp)| *exp <= now) {
            self.pubs.pop_front();
        }
    }

    fn position(&self) -> StreamPosition {
        StreamPosition {
            offset: self.top,
            epoch: self.epoch.to_string(),
        }
    }
}

/// Random epoch: 8 base62 characters.
pub fn new_epoch() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    (0..8)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

type StreamMap = HashMap<String, Arc<Mutex<Stream>>>;

struct PresenceEntry {
    info: ClientInfo,
    expires: Instant,
}

/// The in-memory engine. Cheap to clone.
#[derive(Clone, Default)]
pub struct MemoryEngine {
    inner: Arc<Inner>,
}

struct Inner {
    sink: OnceLock<Arc<dyn EventSink>>,
    streams: Vec<Mutex<StreamMap>>,
    presence: Mutex<HashMap<String, HashMap<String, PresenceEntry>>>,
    idempotency: Mutex<HashMap<(String, String), (PublishOutcome, Instant)>>,
    /// Single-use values (tickets, resume secrets), bounded by [`MAX_ONCE`].
    once: Mutex<HashMap<String, (Bytes, Instant)>>,
    hasher: std::collections::hash_map::RandomState,
    meta_ttl: Duration,
}

/// Most single-use values held at once: beyond it `put_once` fails (the server answers 429)
/// rather than growing memory.
pub const MAX_ONCE: usize = 200_000;

impl Default for Inner {
    fn default() -> Self {
        Self {
            sink: OnceLock::new(),
            streams: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            presence: Mutex::new(HashMap::new()),
            idempotency: Mutex::new(HashMap::new()),
            once: Mutex::new(HashMap::new()),
            hasher: Default::default(),
            meta_ttl: DEFAULT_META_TTL,
        }
    }
}

impl MemoryEngine {
    /// Creates an empty engine.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates an empty engine that keeps unused channels' positions for `meta_ttl` (see the
    /// module docs).
    pub fn with_meta_ttl(meta_ttl: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                meta_ttl,
                ..Inner::default()
            }),
        }
    }

    fn shard(&self, channel: &str) -> &Mutex<StreamMap> {
        &self.inner.streams[(self.inner.hasher.hash_one(channel) as usize) % SHARDS]
    }

    fn stream(&self, channel: &str) -> Arc<Mutex<Stream>> {
        let mut shard = self.shard(channel).lock();
        shard
            .entry(channel.to_owned())
            .or_insert_with(|| Arc::new(Mutex::new(Stream::new(self.inner.meta_ttl))))
            .clone()
    }

    /// Drops expired publications, unused streams (see the module docs), presence and
    /// idempotency entries.
    pub fn housekeep(&self) {
        let now = Instant::now();
        for shard in &self.inner.streams {
            let mut map = shard.lock();
            map.retain(|_, s| {
                let mut s = s.lock();
                s.trim_expired(now);
                s.alive(now)
            });
            // `retain` never shrinks: give back the table of a burst of channels that is gone.
            if map.capacity() > 4 * map.len() + 64 {
                map.shrink_to_fit();
            }
        }
        self.inner.presence.lock().retain(|_, m| {
            m.retain(|_, e| e.expires > now);
            !m.is_empty()
        });
        self.inner
            .idempotency
            .lock()
            .retain(|_, (_, exp)| *exp > now);
        self.inner.once.lock().retain(|_, (_, exp)| *exp > now);
    }

    fn publish_locked(&self, channel: &str, data: Bytes, opts: &PublishOptions) -> PublishOutcome {
        let stream = self.stream(channel);
        let mut s = stream.lock();
        let now = Instant::now();
        s.top += 1;
        s.touched = now;
        s.keep = s.keep.max(opts.history_ttl.saturating_mul(2));
        let publication = Publication {
            offset: s.top,
            data,
            info: opts.info.clone(),
        };
        if opts.history_size > 0 {
            s.pubs
                .push_back((publication.clone(), now + opts.history_ttl));
            while s.pubs.len() > opts.history_size {
                s.pubs.pop_front();
            }
            s.trim_expired(now);
        }
        let position = s.position();
        if let Some(sink) = self.inner.sink.get() {
            // Under the stream lock: this is what orders a channel's deliveries.
            sink.publication(channel, &s.epoch, publication);
        }
        PublishOutcome {
            position,
            duplicate: false,
        }
    }
}

#[async_trait]
impl Engine for MemoryEngine {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn start(&self, sink: Arc<dyn EventSink>) -> Result<(), EngineError> {
        if self.inner.sink.set(sink).is_err() {
            return Err(EngineError::Unavailable("engine already started".into()));
        }
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                MemoryEngine { inner }.housekeep();
            }
        });
        Ok(())
    }

    async fn publish(
        &self,
        channel: &str,
        data: Bytes,
        opts: &PublishOptions,
    ) -> Result<PublishOutcome, EngineError> {
        let Some(key) = &opts.idempotency_key else {
            return Ok(self.publish_locked(channel, data, opts));
        };
        // Held across the publish so two concurrent retries cannot both store.
        let mut idem = self.inner.idempotency.lock();
        let now = Instant::now();
        let k = (channel.to_owned(), key.clone());
        if let Some((outcome, exp)) = idem.get(&k)
            && *exp > now
        {
            return Ok(PublishOutcome {
                duplicate: true,
                ..outcome.clone()
            });
        }
        let outcome = self.publish_locked(channel, data, opts);
        idem.insert(k, (outcome.clone(), now + opts.idempotency_ttl));
        Ok(outcome)
    }

    async fn history(&self, channel: &str, q: &HistoryQuery) -> Result<HistoryPage, EngineError> {
        let stream = self.stream(channel);
        let mut s = stream.lock();
        let now = Instant::now();
        s.touched = now;
        s.trim_expired(now);
        let position = s.position();
        let oldest = s.top + 1 - s.pubs.len() as u64;
        let from = match &q.since {
            Some(since) => {
                let ok =
                    since.epoch == *s.epoch && since.offset <= s.top && since.offset + 1 >= oldest;
                if !ok {
                    return Err(EngineError::Unrecoverable { position });
                }
                since.offset + 1
            }
            None => oldest,
        };
        let skip = (from - oldest) as usize;
        let available = s.pubs.iter().skip(skip).map(|(p, _)| p);
        let publications: Vec<Publication> = if q.reverse {
            let v: Vec<_> = available.cloned().collect();
            v.into_iter().rev().take(q.limit).collect()
        } else {
            available.take(q.limit).cloned().collect()
        };
        Ok(HistoryPage {
            publications,
            position,
        })
    }

    async fn subscribe(&self, channel: &str) -> Result<(), EngineError> {
        // Delivery needs no interest on one node; the stream's lifetime does.
        self.stream(channel).lock().subscribed = true;
        Ok(())
    }

    async fn unsubscribe(&self, channel: &str) -> Result<(), EngineError> {
        let stream = self.shard(channel).lock().get(channel).cloned();
        if let Some(stream) = stream {
            let mut s = stream.lock();
            s.subscribed = false;
            s.touched = Instant::now();
        }
        Ok(())
    }

    async fn publish_join_leave(
        &self,
        channel: &str,
        join: bool,
        client: &ClientInfo,
    ) -> Result<(), EngineError> {
        if let Some(sink) = self.inner.sink.get() {
            sink.join_leave(channel, join, client.clone());
        }
        Ok(())
    }

    async fn presence_add(
        &self,
        channel: &str,
        clients: &[ClientInfo],
        ttl: Duration,
    ) -> Result<(), EngineError> {
        let expires = Instant::now() + ttl;
        let mut p = self.inner.presence.lock();
        let m = p.entry(channel.to_owned()).or_default();
        for c in clients {
            m.insert(
                c.client.clone(),
                PresenceEntry {
                    info: c.clone(),
                    expires,
                },
            );
        }
        Ok(())
    }

    async fn presence_remove(&self, channel: &str, client: &str) -> Result<(), EngineError> {
        let mut p = self.inner.presence.lock();
        if let Some(m) = p.get_mut(channel) {
            m.remove(client);
            if m.is_empty() {
                p.remove(channel);
            }
        }
        Ok(())
    }

    async fn presence(&self, channel: &str) -> Result<Vec<ClientInfo>, EngineError> {
        let now = Instant::now();
        let p = self.inner.presence.lock();
        let mut out: Vec<ClientInfo> = p
            .get(channel)
            .map(|m| {
                m.values()
                    .filter(|e| e.expires > now)
                    .map(|e| e.info.clone())
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| a.client.cmp(&b.client));
        Ok(out)
    }

    async fn publish_control(&self, control: &Control) -> Result<(), EngineError> {
        if let Some(sink) = self.inner.sink.get() {
            sink.control(control.clone());
        }
        Ok(())
    }

    async fn nodes(&self, me: &NodeInfo) -> Result<Vec<NodeInfo>, EngineError> {
        Ok(vec![me.clone()])
    }

    async fn ready(&self) -> bool {
        true
    }

    async fn put_once(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), EngineError> {
        let now = Instant::now();
        let mut once = self.inner.once.lock();
        if once.len() >= MAX_ONCE {
            once.retain(|_, (_, exp)| *exp > now);
            if once.len() >= MAX_ONCE {
                return Err(EngineError::Unavailable(
                    "too many outstanding single-use values".into(),
                ));
            }
        }
        once.insert(key.to_owned(), (value, now + ttl));
        Ok(())
    }

    async fn take_once(&self, key: &str) -> Result<Option<Bytes>, EngineError> {
        let taken = self.inner.once.lock().remove(key);
        Ok(taken.and_then(|(v, exp)| (exp > Instant::now()).then_some(v)))
    }
}

#[cfg(test)]
mod tests {
    crate::engine_conformance!(async { super::MemoryEngine::new() });
}
