//! Publishers: `POST /api/publish` through a random node, each publication with its own
//! idempotency key; a failed or timed-out request is retried with the same key (and the same
//! data) on a random node until it is acknowledged. One publication in flight per publisher,
//! paced by a timer (a publisher held up by retries does not burst afterwards).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Deserialize;
use switchboard_client::Backoff;
use tokio::time::MissedTickBehavior;

use crate::checker::PubId;
use crate::ctx::{Ctx, Event, Payload};

/// Timeout of one publish request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Deserialize)]
struct Ack {
    offset: u64,
    epoch: String,
}

/// Runs publisher `index` at `rate` publications per second until the run stops publishing.
pub async fn run(ctx: Arc<Ctx>, index: u32, rate: f64) {
    let Ok(client) = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
    else {
        return;
    };
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.001)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut seq = 0u64;
    loop {
        tokio::select! {
            _ = ctx.stop_publishing.cancelled() => return,
            _ = tick.tick() => {}
        }
        let ch = rand::random_range(0..ctx.channels.len()) as u16;
        let id = PubId {
            publisher: index,
            seq,
        };
        seq += 1;
        let payload = Payload {
            p: index,
            s: id.seq,
            t: ctx.now_us(),
        };
        ctx.send(Event::Attempt(id, ch)).await;
        let body = serde_json::json!({
            "channel": ctx.channels[usize::from(ch)],
            "data": payload,
            "idempotency_key": format!("chaos-{index}-{}", id.seq),
        });
        let body = bytes::Bytes::from(body.to_string());
        publish(&ctx, &client, id, ch, body).await;
    }
}

/// Publishes until acknowledged, refused for good, or the run gives up.
async fn publish(ctx: &Ctx, client: &reqwest::Client, id: PubId, ch: u16, body: bytes::Bytes) {
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
    loop {
        let url = format!("http://127.0.0.1:{}/api/publish", ctx.pick_node().1);
        let r = client
            .post(url)
            .header("X-API-Key", &ctx.api_key)
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
            .await;
        match r {
            Ok(resp) if resp.status().is_success() => {
                if let Ok(a) = resp.json::<Ack>().await {
                    let at = ctx.now_us();
                    ctx.send(Event::Ack(id, ch, a.epoch.into(), a.offset, at))
                        .await;
                    return;
                }
            }
            Ok(resp)
                if resp.status().is_client_error()
                    && !matches!(resp.status().as_u16(), 408 | 429) =>
            {
                ctx.stats.publish_rejected.fetch_add(1, Ordering::Relaxed);
                return;
            }
            _ => {}
        }
        ctx.stats.publish_retries.fetch_add(1, Ordering::Relaxed);
        tokio::select! {
            _ = ctx.give_up.cancelled() => {
                ctx.stats.publish_gave_up.fetch_add(1, Ordering::Relaxed);
                return;
            }
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}
