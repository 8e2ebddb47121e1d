//! Periodic per-node work: pings, token expiry, stale peers and presence refresh.
//!
//! One task walks every session once a second instead of each session owning timers, which
//! keeps idle sessions small (no per-session timer entries) and costs a few nanoseconds per
//! session per second.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use switchboard_protocol::Disconnect;
use switchboard_protocol::push::encode_expiring;

use crate::auth::unix_now;
use crate::clock::now_ms;
use crate::outbox::{EventKind, Outbound};
use crate::shared::Shared;

pub(crate) fn spawn(node: std::sync::Weak<Shared>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n: u64 = 0;
        loop {
            tick.tick().await;
            let Some(node) = node.upgrade() else { break };
            if node.shutdown.is_cancelled() {
                break;
            }
            sweep_sessions(&node);
            let presence_every = (node.config.client.presence_ttl.as_secs() / 3).max(1);
            if n.is_multiple_of(presence_every) && n > 0 {
                refresh_presence(&node).await;
            }
            if n.is_multiple_of(5) {
                node.announce().await;
            }
            n += 1;
        }
    });
}

fn sweep_sessions(node: &Arc<Shared>) {
    let now = now_ms();
    let now_unix = unix_now();
    let ping_ms = node.config.client.ping_interval.as_millis() as u64;
    let stale_ms = ping_ms + node.config.client.pong_timeout.as_millis() as u64;
    let notice = node.config.client.expiring_notice.as_secs();
    node.registry.for_each(|s| {
        let exp = s.expires_at.load(Ordering::Relaxed);
        if exp != 0 {
            if now_unix >= exp {
                s.outbox.close(Disconnect::EXPIRED);
                return;
            }
            if exp - now_unix <= notice && !s.expiring_sent.swap(true, Ordering::Relaxed) {
                s.outbox.push(Outbound::Event(
                    EventKind::Notice,
                    encode_expiring(exp - now_unix),
                ));
            }
        }
        if s.caps.liveness && now.saturating_sub(s.last_seen.load(Ordering::Relaxed)) > stale_ms {
            s.outbox.close(Disconnect::STALE);
            return;
        }
        let next = s.next_ping.load(Ordering::Relaxed);
        if next == 0 {
            s.next_ping.store(now + ping_ms, Ordering::Relaxed);
        } else if now >= next {
            s.next_ping.store(now + ping_ms, Ordering::Relaxed);
            s.outbox.push(Outbound::Ping);
        }
    });
}

async fn refresh_presence(node: &Arc<Shared>) {
    let snapshot = node.hub.presence_snapshot(|ch| {
        let ns = switchboard_protocol::ChannelName::parse(ch, usize::MAX)
            .map(|c| c.namespace())
            .unwrap_or("");
        node.config.namespace(ns).presence
    });
    let ttl = node.config.client.presence_ttl;
    for (channel, infos) in snapshot {
        if !infos.is_empty()
            && node
                .engine
                .presence_add(&channel, &infos, ttl)
                .await
                .is_err()
        {
            crate::metrics::engine_error("presence_add");
        }
    }
}
