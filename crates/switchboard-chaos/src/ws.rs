//! WebSocket subscribers, written against the wire protocol rather than
//! `switchboard-client` (which drops repeated offsets and hides epochs: what it would hide is
//! exactly what the checker looks for). Each connection: `connect` with a token, `subscribe`
//! every channel with `since` = the last position received, then read pushes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde::Deserialize;
use serde_json::value::RawValue;
use switchboard_client::Backoff;
use switchboard_protocol::StreamPosition;
use tokio_tungstenite::tungstenite::Message;

use crate::checker::Transport;
use crate::ctx::{Ctx, Event, Stats};
use crate::subscribers::{CONNECT_TIMEOUT, IDLE, MAX_HINT, SubSpec, Via, deliver, pause_or_stop};

#[derive(Deserialize)]
struct Incoming {
    id: Option<u64>,
    op: Option<String>,
    channel: Option<String>,
    offset: Option<u64>,
    data: Option<Box<RawValue>>,
    ok: Option<Box<RawValue>>,
    delay_ms: Option<u64>,
}

#[derive(Deserialize)]
struct SubReply {
    position: StreamPosition,
    recovered: bool,
    #[serde(default)]
    publications: Vec<ReplyPub>,
}

#[derive(Deserialize)]
struct ReplyPub {
    offset: u64,
    data: Option<Box<RawValue>>,
}

/// Last position received per channel.
type Positions = HashMap<u16, (Arc<str>, u64)>;

/// Runs a WebSocket subscriber until the run stops.
pub async fn run(ctx: Arc<Ctx>, spec: SubSpec) {
    let token = ctx.token(&spec.user());
    let mut pos = Positions::new();
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    loop {
        let hint = tokio::select! {
            _ = ctx.stop.cancelled() => return,
            h = connection(&ctx, &spec, &token, &mut pos, &mut backoff) => h,
        };
        let delay = hint.map_or_else(
            || backoff.next_delay(),
            |ms| Duration::from_millis(ms).min(MAX_HINT),
        );
        if pause_or_stop(&ctx, delay).await {
            return;
        }
    }
}

/// One connection; returns the reconnect delay a draining node hinted, if any.
async fn connection(
    ctx: &Ctx,
    spec: &SubSpec,
    token: &str,
    pos: &mut Positions,
    backoff: &mut Backoff,
) -> Option<u64> {
    let (node, port) = ctx.pick_node();
    let via = Via::now(ctx, node);
    let url = format!("ws://127.0.0.1:{port}/ws");
    Stats::bump(&ctx.stats.connects, Transport::Ws);
    let conn = tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(&url)).await;
    let Ok(Ok((mut ws, _))) = conn else {
        Stats::bump(&ctx.stats.failures, Transport::Ws);
        return None;
    };
    let hello = serde_json::json!({"id": 1, "op": "connect", "token": token});
    if ws.send(Message::text(hello.to_string())).await.is_err() {
        return None;
    }
    let mut next_id = 2u64;
    let mut pending: HashMap<u64, u16> = HashMap::new();
    // Epoch of each channel subscribed on this connection (pushes carry none).
    let mut live: HashMap<u16, Arc<str>> = HashMap::new();
    let mut hint = None;
    loop {
        let msg = match tokio::time::timeout(IDLE, ws.next()).await {
            Ok(Some(Ok(m))) => m,
            _ => return hint,
        };
        let text = match msg {
            Message::Text(t) => t,
            Message::Close(_) => return hint,
            _ => continue,
        };
        let Ok(m) = serde_json::from_str::<Incoming>(text.as_str()) else {
            continue;
        };
        match (m.id, m.op.as_deref()) {
            (Some(1), _) => {
                if m.ok.is_none() {
                    Stats::bump(&ctx.stats.failures, Transport::Ws);
                    return hint;
                }
                for &ch in &spec.channels {
                    let mut cmd = serde_json::json!({
                        "id": next_id, "op": "subscribe", "channel": ctx.channels[usize::from(ch)],
                    });
                    if let Some((epoch, offset)) = pos.get(&ch) {
                        cmd["since"] = serde_json::json!({"offset": offset, "epoch": &**epoch});
                    }
                    pending.insert(next_id, ch);
                    next_id += 1;
                    if ws.send(Message::text(cmd.to_string())).await.is_err() {
                        return hint;
                    }
                }
            }
            (Some(id), _) => {
                let Some(ch) = pending.remove(&id) else {
                    continue;
                };
                let Some(reply) =
                    m.ok.and_then(|ok| serde_json::from_str::<SubReply>(ok.get()).ok())
                else {
                    // Refused (the engine is down, say): start over on some node.
                    Stats::bump(&ctx.stats.failures, Transport::Ws);
                    return hint;
                };
                subscribed(ctx, spec, ch, reply, pos, &mut live, via).await;
                if pending.is_empty() {
                    backoff.reset();
                }
            }
            (None, Some("pub")) => {
                let (Some(name), Some(offset)) = (m.channel, m.offset) else {
                    continue;
                };
                let Some(ch) = ctx.channel(&name) else {
                    continue;
                };
                // A push for a channel not (yet) subscribed on this connection has no epoch:
                // the checker sees a silent epoch change, which is what it would be.
                let epoch = live
                    .get(&ch)
                    .cloned()
                    .unwrap_or_else(|| Arc::from("<not subscribed>"));
                deliver(ctx, spec, ch, &epoch, offset, m.data.as_deref(), via).await;
                advance(pos, ch, &epoch, offset);
            }
            (None, Some("disconnect")) => hint = m.delay_ms,
            _ => {}
        }
    }
}

async fn subscribed(
    ctx: &Ctx,
    spec: &SubSpec,
    ch: u16,
    reply: SubReply,
    pos: &mut Positions,
    live: &mut HashMap<u16, Arc<str>>,
    via: Via,
) {
    let epoch: Arc<str> = reply.position.epoch.as_str().into();
    let stream = spec.stream(ch);
    let at = reply.position.offset;
    match pos.get(&ch) {
        None => {
            ctx.send(Event::Started(stream, Transport::Ws, epoch.clone(), at))
                .await;
            pos.insert(ch, (epoch.clone(), at));
        }
        Some(_) if !reply.recovered => {
            let now = ctx.now_us();
            ctx.send(Event::Announced(
                stream,
                Transport::Ws,
                epoch.clone(),
                at,
                now,
            ))
            .await;
            pos.insert(ch, (epoch.clone(), at));
        }
        Some(_) => {
            for p in reply.publications {
                deliver(ctx, spec, ch, &epoch, p.offset, p.data.as_deref(), via).await;
                advance(pos, ch, &epoch, p.offset);
            }
        }
    }
    live.insert(ch, epoch);
}

/// Moves the position forward (a repeated or late offset does not move it back).
fn advance(pos: &mut Positions, ch: u16, epoch: &Arc<str>, offset: u64) {
    match pos.get_mut(&ch) {
        Some((e, o)) if **e == **epoch => *o = (*o).max(offset),
        _ => {
            pos.insert(ch, (epoch.clone(), offset));
        }
    }
}
