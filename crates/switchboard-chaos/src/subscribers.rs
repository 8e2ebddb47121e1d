//! Subscribers: who subscribes to what over which transport, and what the three transports'
//! tasks share. Every subscriber reconnects to a random node with full-jitter backoff (or
//! after the delay a draining node hints) and resumes from its last position.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::checker::{Seen, StreamId, Transport};
use crate::ctx::{Ctx, Event, Payload, Sabotage};

/// Longest reconnect delay taken from a draining node's hint.
pub const MAX_HINT: Duration = Duration::from_secs(10);
/// A connection that brings nothing (not even a keep-alive) for this long is given up.
pub const IDLE: Duration = Duration::from_secs(15);
/// Connection and handshake timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One subscriber.
#[derive(Clone, Debug)]
pub struct SubSpec {
    /// Index (user `<transport>-<index>`).
    pub index: u32,
    /// Transport.
    pub transport: Transport,
    /// Channel indexes.
    pub channels: Vec<u16>,
}

impl SubSpec {
    /// The stream of channel `ch`.
    pub fn stream(&self, ch: u16) -> StreamId {
        StreamId {
            subscriber: self.index,
            channel: ch,
        }
    }

    /// The user id in its token.
    pub fn user(&self) -> String {
        format!("{}-{}", self.transport.name(), self.index)
    }

    /// `channel=a&channel=b` for SSE and poll URLs (names are URL-safe).
    pub fn query(&self, ctx: &Ctx) -> String {
        self.channels
            .iter()
            .map(|&c| format!("channel={}", ctx.channels[usize::from(c)]))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// `n` subscribers: transports in proportion to `mix` (ws, sse, poll weights), each on
/// 1..=`per_sub` distinct channels of `channels`, every channel covered.
pub fn plan(n: u32, mix: [u32; 3], channels: u16, per_sub: u16) -> Vec<SubSpec> {
    let mut pattern = Vec::new();
    for (t, w) in Transport::ALL.iter().zip(mix) {
        pattern.extend(std::iter::repeat_n(*t, w as usize));
    }
    if pattern.is_empty() {
        pattern.push(Transport::Ws);
    }
    let per_sub = per_sub.clamp(1, channels.max(1));
    (0..n)
        .map(|i| {
            let first = (i % u32::from(channels.max(1))) as u16;
            let want = rand::random_range(1..=per_sub);
            let mut chans = vec![first];
            while chans.len() < usize::from(want) {
                let c = rand::random_range(0..channels);
                if !chans.contains(&c) {
                    chans.push(c);
                }
            }
            SubSpec {
                index: i,
                transport: pattern[i as usize % pattern.len()],
                channels: chans,
            }
        })
        .collect()
}

/// Runs one subscriber until the run stops.
pub async fn run(ctx: Arc<Ctx>, spec: SubSpec) {
    for &ch in &spec.channels {
        ctx.send(Event::Register(spec.stream(ch), spec.transport))
            .await;
    }
    match spec.transport {
        Transport::Ws => crate::ws::run(ctx, spec).await,
        Transport::Sse => crate::sse::run(ctx, spec).await,
        Transport::Poll => crate::poll::run(ctx, spec).await,
    }
}

/// A publication as pushed (WebSocket), streamed (SSE) or returned (poll).
#[derive(Deserialize)]
pub struct PubMsg {
    /// Channel.
    pub channel: String,
    /// Offset.
    pub offset: u64,
    /// Data.
    pub data: Option<Box<RawValue>>,
}

/// The node and start (µs since the run started) of the connection a delivery came through.
#[derive(Clone, Copy, Debug)]
pub struct Via {
    /// Node index.
    pub node: u8,
    /// When the connection (or poll request) was opened.
    pub since_us: u64,
}

impl Via {
    /// A connection to `node` opened now.
    pub fn now(ctx: &Ctx, node: u8) -> Self {
        Self {
            node,
            since_us: ctx.now_us(),
        }
    }
}

/// Tells the checker that `spec`'s stream of channel `ch` received `offset` of `epoch`
/// carrying `data`. With sabotage on (see [`Ctx::sabotage`]) some deliveries are withheld or
/// reported twice, to show that the checker catches it.
pub async fn deliver(
    ctx: &Ctx,
    spec: &SubSpec,
    ch: u16,
    epoch: &Arc<str>,
    offset: u64,
    data: Option<&RawValue>,
    via: Via,
) {
    let payload = data.and_then(Payload::parse);
    let calm_latency_us = payload.and_then(|p| ctx.calm_latency(p.t));
    let at_us = ctx.now_us();
    let seen = Seen {
        at_us,
        node: via.node,
        conn_us: at_us.saturating_sub(via.since_us),
    };
    let event = || Event::Delivered {
        stream: spec.stream(ch),
        epoch: epoch.clone(),
        offset,
        data: payload.map(|p| p.id()),
        calm_latency_us,
        seen,
    };
    match ctx.sabotage(spec.transport) {
        Sabotage::None => ctx.send(event()).await,
        Sabotage::Drop => {}
        Sabotage::Duplicate => {
            ctx.send(event()).await;
            ctx.send(event()).await;
        }
    }
}

/// `epoch` as a shared string, reusing `cached` when it is the same.
pub fn share_epoch(cached: &mut Option<Arc<str>>, epoch: &str) -> Arc<str> {
    match cached {
        Some(e) if **e == *epoch => e.clone(),
        _ => {
            let e: Arc<str> = epoch.into();
            *cached = Some(e.clone());
            e
        }
    }
}

/// Sleeps `d` unless the run stops first; returns whether it stopped.
pub async fn pause_or_stop(ctx: &Ctx, d: Duration) -> bool {
    tokio::select! {
        _ = ctx.stop.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_covers_every_channel_and_mixes_transports() {
        let p = plan(30, [1, 1, 1], 6, 3);
        assert_eq!(p.len(), 30);
        for c in 0..6 {
            assert!(p.iter().any(|s| s.channels.contains(&c)));
        }
        for t in Transport::ALL {
            assert_eq!(p.iter().filter(|s| s.transport == t).count(), 10);
        }
        for s in &p {
            let mut c = s.channels.clone();
            c.sort();
            c.dedup();
            assert_eq!(c.len(), s.channels.len());
            assert!((1..=3).contains(&c.len()));
        }
    }
}
