//! The stats stream behind the console's live charts: every node publishes a small snapshot to
//! the stats channel once a second, through its own engine, so a console on any node of a
//! cluster sees every node. The console subscribes to it like any client (its ticket's user is
//! the only one the channel admits).
//!
//! The rates come from the same counters `/metrics` exports, so they include the stats stream
//! itself: one publication per node per second, delivered once per watching console.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchboard_core::Node;
use tokio::time::{Instant, MissedTickBehavior};

/// How often each node publishes a snapshot.
const INTERVAL: Duration = Duration::from_secs(1);
/// Intervals skipped after a failed publish (engine down): the console goes quiet rather than
/// adding a failed publish and its warning to the logs every second of an outage.
const BACKOFF_TICKS: u32 = 10;

/// What a node publishes every [`INTERVAL`].
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// Node name.
    pub node: String,
    /// Its version.
    pub version: String,
    /// Seconds since it started.
    pub uptime_secs: u64,
    /// Unix milliseconds when taken.
    pub ts: u64,
    /// Sessions connected to it.
    pub sessions: u64,
    /// Sessions by transport (`ws`, `sse`).
    pub transports: BTreeMap<String, u64>,
    /// Publications accepted per second since the previous snapshot.
    pub publications_per_sec: f64,
    /// Publications queued to its sessions per second since the previous snapshot.
    pub deliveries_per_sec: f64,
}

/// This node's version, as reported in snapshots and `/api/info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// This node now, with the given rates. Counting sessions by transport walks the registry (one
/// shard lock at a time), about a millisecond per 100,000 sessions.
pub fn snapshot(node: &Node, publications_per_sec: f64, deliveries_per_sec: f64) -> Snapshot {
    let mut transports = BTreeMap::new();
    let mut sessions = 0;
    node.registry().for_each(|s| {
        *transports.entry(s.caps.label.to_owned()).or_insert(0) += 1;
        sessions += 1;
    });
    for t in ["ws", "sse"] {
        transports.entry(t.to_owned()).or_insert(0);
    }
    Snapshot {
        node: node.name().to_owned(),
        version: VERSION.to_owned(),
        uptime_secs: node.uptime_secs(),
        ts: unix_ms(),
        sessions,
        transports,
        publications_per_sec,
        deliveries_per_sec,
    }
}

/// Per-second rate of a counter that went from `before` to `now` in `secs`, to one decimal.
fn rate(before: u64, now: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        return 0.0;
    }
    (now.saturating_sub(before) as f64 / secs * 10.0).round() / 10.0
}

/// Publishes a snapshot to `channel` every [`INTERVAL`] until the node shuts down.
pub fn spawn(node: Node, channel: String) {
    tokio::spawn(async move {
        let shutdown = node.shutdown_token();
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut last: Option<(Instant, u64, u64)> = None;
        let mut skip = 0;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => break,
            }
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let now = Instant::now();
            let totals = crate::metrics::totals();
            let (pubs, dels) = match (totals, last) {
                (Some((p, d)), Some((then, p0, d0))) => {
                    let secs = now.duration_since(then).as_secs_f64();
                    (rate(p0, p, secs), rate(d0, d, secs))
                }
                _ => (0.0, 0.0),
            };
            last = totals.map(|(p, d)| (now, p, d));
            let snap = snapshot(&node, pubs, dels);
            if let Err(e) = node.publish_json(&channel, &snap, None).await {
                tracing::debug!(error = %e.message, "admin stats not published");
                skip = BACKOFF_TICKS;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_per_second_and_never_negative() {
        assert_eq!(rate(10, 30, 2.0), 10.0);
        assert_eq!(rate(30, 10, 1.0), 0.0);
        assert_eq!(rate(0, 1, 3.0), 0.3);
        assert_eq!(rate(0, 5, 0.0), 0.0);
    }
}
