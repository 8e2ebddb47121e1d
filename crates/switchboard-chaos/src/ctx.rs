//! What every client task of a run shares: where the nodes are, credentials, the channels, the
//! line to the checker, the run's clock and whether the run is calm.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use switchboard_core::auth::{Claims, mint_hs256, unix_now};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::checker::{Findings, PubId, Seen, StreamId, Transport};

/// What client tasks tell the checker task.
#[derive(Debug)]
pub enum Event {
    /// A subscriber task exists for this stream.
    Register(StreamId, Transport),
    /// A publisher is about to send a publication.
    Attempt(PubId, u16),
    /// A publication was acknowledged at a position, at a time (µs since the start).
    Ack(PubId, u16, Arc<str>, u64, u64),
    /// A stream subscribed without a position.
    Started(StreamId, Transport, Arc<str>, u64),
    /// A stream was told it cannot be resumed; `u64` is when (µs since the start).
    Announced(StreamId, Transport, Arc<str>, u64, u64),
    /// A stream received a publication.
    Delivered {
        /// Stream.
        stream: StreamId,
        /// Epoch.
        epoch: Arc<str>,
        /// Offset.
        offset: u64,
        /// What it carried (`None`: unreadable).
        data: Option<PubId>,
        /// Publish-to-delivery time when both were in a calm period.
        calm_latency_us: Option<u64>,
        /// When and through which node.
        seen: Seen,
    },
    /// A fault began (µs since the start); `true` when it loses Redis data.
    Fault(u64, bool),
    /// How many streams have not caught up, and a few of them described.
    Pending(oneshot::Sender<(usize, Vec<String>)>),
    /// Classify everything and stop.
    Finish(oneshot::Sender<Findings>),
}

/// The data of every publication: who published it, and when it was first attempted.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Payload {
    /// Publisher.
    pub p: u32,
    /// Sequence number.
    pub s: u64,
    /// First attempt, µs since the run started.
    pub t: u64,
}

impl Payload {
    /// Reads a publication's data.
    pub fn parse(raw: &RawValue) -> Option<Payload> {
        serde_json::from_str(raw.get()).ok()
    }

    /// The publication's id.
    pub fn id(&self) -> PubId {
        PubId {
            publisher: self.p,
            seq: self.s,
        }
    }
}

/// Counters the client tasks keep.
#[derive(Debug, Default)]
pub struct Stats {
    /// (Re)connections per transport (WebSocket connections, SSE streams, poll requests).
    pub connects: [AtomicU64; 3],
    /// Failed connection attempts or requests per transport.
    pub failures: [AtomicU64; 3],
    /// SSE resumes whose `Last-Event-ID` was refused (spent or lost resume secret), resumed
    /// with `?since=` and the bearer token instead.
    pub sse_since_fallbacks: AtomicU64,
    /// Publish requests that failed and were retried with the same idempotency key.
    pub publish_retries: AtomicU64,
    /// Publications given up (never acknowledged) when the run ended.
    pub publish_gave_up: AtomicU64,
    /// Publish requests refused with a client error (a bug in the checker or the server).
    pub publish_rejected: AtomicU64,
    /// Deliveries withheld from the checker per transport (sabotage).
    pub sabotage_dropped: [AtomicU64; 3],
    /// Deliveries reported twice per transport (sabotage).
    pub sabotage_duplicated: [AtomicU64; 3],
}

impl Stats {
    /// Adds one to a per-transport counter.
    pub fn bump(counter: &[AtomicU64; 3], t: Transport) {
        let i = Transport::ALL.iter().position(|x| *x == t).unwrap_or(0);
        counter[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// What sabotage does to one delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sabotage {
    /// Nothing: report it.
    None,
    /// Withhold it, as if the server had not sent it.
    Drop,
    /// Report it twice, as if the server had sent it twice.
    Duplicate,
}

/// Shared by every task of a run.
pub struct Ctx {
    /// Proxy ports, one per node.
    pub proxies: Vec<u16>,
    /// Server API key.
    pub api_key: String,
    /// JWT secret.
    pub secret: String,
    /// Channel names.
    pub channels: Vec<String>,
    channel_index: HashMap<String, u16>,
    /// Line to the checker task.
    pub events: mpsc::Sender<Event>,
    start: Instant,
    /// µs since the start from which the run is calm (`u64::MAX` during a fault).
    calm_from: AtomicU64,
    /// Stops subscribers.
    pub stop: CancellationToken,
    /// Stops publishers from starting new publications.
    pub stop_publishing: CancellationToken,
    /// Ends retries of publications still unacknowledged.
    pub give_up: CancellationToken,
    /// Counters.
    pub stats: Stats,
    /// Pause between two polls of one poll subscriber.
    pub poll_interval: Duration,
    /// Sabotage every this many deliveries (0: never).
    pub sabotage_every: u64,
    deliveries: AtomicU64,
}

impl Ctx {
    /// A context; the run's clock starts now.
    pub fn new(
        proxies: Vec<u16>,
        api_key: String,
        secret: String,
        channels: Vec<String>,
        events: mpsc::Sender<Event>,
        poll_interval: Duration,
    ) -> Self {
        let channel_index = channels
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), i as u16))
            .collect();
        Self {
            proxies,
            api_key,
            secret,
            channels,
            channel_index,
            events,
            start: Instant::now(),
            calm_from: AtomicU64::new(0),
            stop: CancellationToken::new(),
            stop_publishing: CancellationToken::new(),
            give_up: CancellationToken::new(),
            stats: Stats::default(),
            poll_interval,
            sabotage_every: 0,
            deliveries: AtomicU64::new(0),
        }
    }

    /// µs since the run started.
    pub fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// When the run started.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// A random node: its index and its proxy's port.
    pub fn pick_node(&self) -> (u8, u16) {
        let i = rand::random_range(0..self.proxies.len());
        (i as u8, self.proxies[i])
    }

    /// A channel's index.
    pub fn channel(&self, name: &str) -> Option<u16> {
        self.channel_index.get(name).copied()
    }

    /// A token for `user`, allowed every channel of the run, valid for a day.
    pub fn token(&self, user: &str) -> String {
        let claims = Claims {
            sub: user.into(),
            exp: unix_now() + 86_400,
            channels: vec!["chaos:*".into()],
            publish: Vec::new(),
            info: None,
        };
        mint_hs256(&self.secret, &claims).expect("HS256 signing does not fail")
    }

    /// Marks a fault: not calm until [`Ctx::calm_after`].
    pub fn fault_begins(&self) {
        self.calm_from.store(u64::MAX, Ordering::Relaxed);
    }

    /// Calm again `settle` from now.
    pub fn calm_after(&self, settle: Duration) {
        let at = self.now_us() + settle.as_micros() as u64;
        self.calm_from.store(at, Ordering::Relaxed);
    }

    /// Publish-to-delivery time of a publication first attempted at `sent_us`, if it was
    /// published and delivered (now) in one calm period.
    pub fn calm_latency(&self, sent_us: u64) -> Option<u64> {
        let calm = self.calm_from.load(Ordering::Relaxed);
        let now = self.now_us();
        (sent_us >= calm && now >= calm).then(|| now.saturating_sub(sent_us))
    }

    /// Whether to tamper with the next delivery: with `sabotage_every` = N, one delivery in N
    /// is withheld and another one in N reported twice (counted in [`Stats`]).
    pub fn sabotage(&self, t: Transport) -> Sabotage {
        let n = self.sabotage_every;
        if n < 2 {
            return Sabotage::None;
        }
        let k = self.deliveries.fetch_add(1, Ordering::Relaxed) % n;
        if k == n - 1 {
            Stats::bump(&self.stats.sabotage_dropped, t);
            Sabotage::Drop
        } else if k == n / 2 {
            Stats::bump(&self.stats.sabotage_duplicated, t);
            Sabotage::Duplicate
        } else {
            Sabotage::None
        }
    }

    /// Sends an event to the checker (lost only when the checker is gone).
    pub async fn send(&self, e: Event) {
        let _ = self.events.send(e).await;
    }
}
