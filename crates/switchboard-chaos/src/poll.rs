//! Long-poll subscribers: the first request (no `since`) returns the current cursor; every
//! next one asks for what came after the cursor it holds, on a random node. A request that
//! fails is repeated with the same cursor, so nothing a failed response carried is skipped.
//! Between polls a subscriber waits `poll_interval` (jittered), as applications that poll do;
//! a full batch is followed up at once.
//!
//! Epochs come from the response's cursor. A channel listed in `reset` is announced at the
//! position just before its first publication in that response (or at the cursor's position
//! when the response has none for it): the response does not say where the server put the
//! channel before those publications, so the checker cannot check that stretch.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use switchboard_client::Backoff;
use switchboard_protocol::Cursor;

use crate::checker::Transport;
use crate::ctx::{Ctx, Event, Stats};
use crate::subscribers::{
    CONNECT_TIMEOUT, PubMsg, SubSpec, Via, deliver, pause_or_stop, share_epoch,
};

/// `timeout=` of each poll, seconds.
const POLL_WAIT: u64 = 10;
/// The server's largest batch.
const MAX_BATCH: usize = 1000;

#[derive(Deserialize)]
struct PollBody {
    publications: Vec<PubMsg>,
    cursor: String,
    #[serde(default)]
    reset: Vec<String>,
}

/// Runs a poll subscriber until the run stops.
pub async fn run(ctx: Arc<Ctx>, spec: SubSpec) {
    let token = ctx.token(&spec.user());
    let query = spec.query(&ctx);
    let Ok(client) = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(Duration::from_secs(POLL_WAIT + 10))
        .build()
    else {
        return;
    };
    let names: Vec<String> = spec
        .channels
        .iter()
        .map(|&c| ctx.channels[usize::from(c)].clone())
        .collect();
    let mut cursor: Option<String> = None;
    let mut epochs: HashMap<u16, Option<Arc<str>>> = HashMap::new();
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    loop {
        let (node, port) = ctx.pick_node();
        let via = Via::now(&ctx, node);
        let mut url = format!("http://127.0.0.1:{port}/poll?{query}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&since={c}&timeout={POLL_WAIT}"));
        }
        Stats::bump(&ctx.stats.connects, Transport::Poll);
        let req = client.get(url).bearer_auth(&token).send();
        let body = tokio::select! {
            _ = ctx.stop.cancelled() => return,
            r = async { req.await?.error_for_status()?.bytes().await } => r,
        };
        let parsed = body
            .ok()
            .and_then(|b| serde_json::from_slice::<PollBody>(&b).ok());
        let Some(body) = parsed else {
            Stats::bump(&ctx.stats.failures, Transport::Poll);
            if pause_or_stop(&ctx, backoff.next_delay()).await {
                return;
            }
            continue;
        };
        backoff.reset();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let Ok(next) = Cursor::decode(&body.cursor, &refs) else {
            Stats::bump(&ctx.stats.failures, Transport::Poll);
            if pause_or_stop(&ctx, backoff.next_delay()).await {
                return;
            }
            continue;
        };
        let mut epoch_of = |ch: u16| -> (Arc<str>, u64) {
            let slot = epochs.entry(ch).or_default();
            match next.get(&ctx.channels[usize::from(ch)]) {
                Some(p) => (share_epoch(slot, &p.epoch), p.offset),
                None => (Arc::from("<no cursor>"), 0),
            }
        };
        if cursor.is_none() {
            for &ch in &spec.channels {
                let (epoch, offset) = epoch_of(ch);
                ctx.send(Event::Started(
                    spec.stream(ch),
                    Transport::Poll,
                    epoch,
                    offset,
                ))
                .await;
            }
        }
        let now = ctx.now_us();
        for name in &body.reset {
            let Some(ch) = ctx.channel(name) else {
                continue;
            };
            let (epoch, at) = epoch_of(ch);
            let first = body
                .publications
                .iter()
                .find(|p| p.channel == *name)
                .map(|p| p.offset.saturating_sub(1));
            let stream = spec.stream(ch);
            ctx.send(Event::Announced(
                stream,
                Transport::Poll,
                epoch,
                first.unwrap_or(at),
                now,
            ))
            .await;
        }
        for p in &body.publications {
            let Some(ch) = ctx.channel(&p.channel) else {
                continue;
            };
            let (epoch, _) = epoch_of(ch);
            deliver(&ctx, &spec, ch, &epoch, p.offset, p.data.as_deref(), via).await;
        }
        cursor = Some(body.cursor);
        if body.publications.len() < MAX_BATCH {
            let jitter = ctx.poll_interval.mul_f64(0.5 + rand::random::<f64>());
            if pause_or_stop(&ctx, jitter).await {
                return;
            }
        }
    }
}
