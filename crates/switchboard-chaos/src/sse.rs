//! SSE subscribers that behave like a browser's `EventSource`: the first stream authenticates
//! with a bearer token; a reconnect sends the last event id as `Last-Event-ID` (its resume
//! secret stands for the credentials). When the node refuses that id (401: the secret was
//! spent by a request that was cut before its answer arrived, or Redis lost it) the
//! subscriber does what the SDK does with a fresh ticket: it opens `?since=<cursor>` with its
//! token. Epochs come from each event's cursor.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use switchboard_client::Backoff;
use switchboard_protocol::Cursor;

use crate::checker::Transport;
use crate::ctx::{Ctx, Event, Stats};
use crate::subscribers::{
    CONNECT_TIMEOUT, IDLE, MAX_HINT, PubMsg, SubSpec, Via, deliver, pause_or_stop, share_epoch,
};

/// Where an SSE subscriber stands between streams.
#[derive(Default)]
struct State {
    /// Last event id (`<cursor>.<resume secret>`).
    last_id: Option<String>,
    /// Its cursor part.
    cursor: Option<String>,
    started: bool,
    epochs: HashMap<u16, Option<Arc<str>>>,
}

#[derive(Deserialize)]
struct Reset {
    channels: Vec<String>,
}

#[derive(Deserialize)]
struct Bye {
    delay_ms: Option<u64>,
}

/// Runs an SSE subscriber until the run stops.
pub async fn run(ctx: Arc<Ctx>, spec: SubSpec) {
    let token = ctx.token(&spec.user());
    let query = spec.query(&ctx);
    let Ok(client) = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
    else {
        return;
    };
    let mut st = State::default();
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    loop {
        let hint = tokio::select! {
            _ = ctx.stop.cancelled() => return,
            h = stream(&ctx, &spec, &client, &token, &query, &mut st, &mut backoff) => h,
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

/// One stream; returns a reconnect delay (hinted by a draining node, or 0 to retry at once).
async fn stream(
    ctx: &Ctx,
    spec: &SubSpec,
    client: &reqwest::Client,
    token: &str,
    query: &str,
    st: &mut State,
    backoff: &mut Backoff,
) -> Option<u64> {
    let (node, port) = ctx.pick_node();
    let via = Via::now(ctx, node);
    let mut url = format!("http://127.0.0.1:{port}/sse?{query}");
    if st.last_id.is_none()
        && let Some(c) = &st.cursor
    {
        url.push_str(&format!("&since={c}"));
    }
    let mut req = client.get(url).bearer_auth(token);
    if let Some(id) = &st.last_id {
        req = req.header("Last-Event-ID", id);
    }
    Stats::bump(&ctx.stats.connects, Transport::Sse);
    let resp = match tokio::time::timeout(CONNECT_TIMEOUT, req.send()).await {
        Ok(Ok(r)) => r,
        _ => {
            Stats::bump(&ctx.stats.failures, Transport::Sse);
            return None;
        }
    };
    if resp.status() == reqwest::StatusCode::UNAUTHORIZED && st.last_id.is_some() {
        st.last_id = None;
        ctx.stats
            .sse_since_fallbacks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return Some(0);
    }
    if !resp.status().is_success() {
        Stats::bump(&ctx.stats.failures, Transport::Sse);
        return None;
    }
    let mut resp = resp;
    let mut buf: Vec<u8> = Vec::new();
    let mut hint = None;
    loop {
        let chunk = match tokio::time::timeout(IDLE, resp.chunk()).await {
            Ok(Ok(Some(c))) => c,
            _ => return hint,
        };
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = buf.drain(..end + 2).collect();
            let Ok(block) = std::str::from_utf8(&block) else {
                continue;
            };
            let ev = parse_event(block);
            if ev.event == "welcome" {
                backoff.reset();
            }
            if let Some(h) = handle(ctx, spec, st, ev, via).await {
                hint = Some(h);
            }
        }
    }
}

/// One parsed event.
#[derive(Debug, Default, PartialEq, Eq)]
struct SseEvent<'a> {
    event: &'a str,
    id: Option<&'a str>,
    data: String,
}

fn parse_event(block: &str) -> SseEvent<'_> {
    let mut ev = SseEvent {
        event: "message",
        ..Default::default()
    };
    let mut first = true;
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => ev.event = value,
            "id" => ev.id = Some(value),
            "data" => {
                if !first {
                    ev.data.push('\n');
                }
                ev.data.push_str(value);
                first = false;
            }
            _ => {} // comments (`: ping`), `retry:`
        }
    }
    ev
}

/// Handles one event; returns a reconnect hint from a `disconnect` event.
async fn handle(
    ctx: &Ctx,
    spec: &SubSpec,
    st: &mut State,
    ev: SseEvent<'_>,
    via: Via,
) -> Option<u64> {
    let names: Vec<&str> = spec
        .channels
        .iter()
        .map(|&c| ctx.channels[usize::from(c)].as_str())
        .collect();
    let cursor = ev.id.and_then(|id| {
        let c = id.split_once('.').map_or(id, |(c, _)| c);
        Cursor::decode(c, &names).ok()
    });
    if let Some(id) = ev.id {
        st.last_id = Some(id.to_owned());
        st.cursor = Some(id.split_once('.').map_or(id, |(c, _)| c).to_owned());
    }
    let epoch_of = |st: &mut State, ch: u16| -> (Arc<str>, u64) {
        let name = ctx.channels[usize::from(ch)].as_str();
        let slot = st.epochs.entry(ch).or_default();
        match cursor.as_ref().and_then(|c| c.get(name)) {
            Some(p) => (share_epoch(slot, &p.epoch), p.offset),
            None => (Arc::from("<no cursor>"), 0),
        }
    };
    match ev.event {
        "welcome" if !st.started => {
            st.started = true;
            for &ch in &spec.channels {
                let (epoch, offset) = epoch_of(st, ch);
                ctx.send(Event::Started(
                    spec.stream(ch),
                    Transport::Sse,
                    epoch,
                    offset,
                ))
                .await;
            }
        }
        "reset" => {
            let Ok(r) = serde_json::from_str::<Reset>(&ev.data) else {
                return None;
            };
            let now = ctx.now_us();
            for name in r.channels {
                let Some(ch) = ctx.channel(&name) else {
                    continue;
                };
                let (epoch, offset) = epoch_of(st, ch);
                ctx.send(Event::Announced(
                    spec.stream(ch),
                    Transport::Sse,
                    epoch,
                    offset,
                    now,
                ))
                .await;
            }
        }
        "message" => {
            let Ok(p) = serde_json::from_str::<PubMsg>(&ev.data) else {
                return None;
            };
            let ch = ctx.channel(&p.channel)?;
            let (epoch, _) = epoch_of(st, ch);
            deliver(ctx, spec, ch, &epoch, p.offset, p.data.as_deref(), via).await;
        }
        "disconnect" => {
            return serde_json::from_str::<Bye>(&ev.data)
                .ok()
                .and_then(|b| b.delay_ms);
        }
        _ => {}
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_parsed_like_an_event_source() {
        let ev = parse_event("event: reset\nid: 1abc.xyz\ndata: {\"a\":1}\n\n");
        assert_eq!(
            ev,
            SseEvent {
                event: "reset",
                id: Some("1abc.xyz"),
                data: "{\"a\":1}".into()
            }
        );
        let ev = parse_event(": ping\n\n");
        assert_eq!((ev.event, ev.id, ev.data.as_str()), ("message", None, ""));
        let ev = parse_event("retry: 2500\nevent: welcome\ndata: a\ndata: b\n\n");
        assert_eq!((ev.event, ev.data.as_str()), ("welcome", "a\nb"));
    }
}
