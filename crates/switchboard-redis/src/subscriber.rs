//! The pubsub side: interest (subscribe/unsubscribe), decoding pushes into sink calls, and the
//! supervisor that notices a lost connection and tells the sink once it is back.
//!
//! Lost-connection handling: redis-rs reconnects the pubsub connection by itself and re-sends
//! every confirmed subscription before handing the new connection out (automatic
//! resubscription). A `Disconnection` push, a failed liveness PING or a dropped push (full queue)
//! bumps `lost`; the supervisor then PINGs through the pubsub connection until it answers. That
//! PING waits for the new connection, which is only handed out after the resubscription
//! pipeline ran, so when it succeeds every channel is subscribed again and `reconnected()` is
//! called: the hub re-reads history for every channel, which covers whatever was published
//! while the connection was down.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use redis::{PushInfo, PushKind};
use switchboard_core::engine::EngineError;
use tokio::sync::{Notify, RwLock, mpsc};

use crate::codec::{ChannelEvent, bytes_of, decode_channel_event, decode_control};
use crate::engine::Inner;

/// Interest and connection health, shared with the push callback.
#[derive(Default)]
pub(crate) struct SubState {
    /// Channels this node wants (switchboard names).
    desired: Mutex<HashSet<String>>,
    /// Channels whose UNSUBSCRIBE failed: retried after the next reconnect.
    stale: Mutex<HashSet<String>>,
    /// Subscribe/unsubscribe hold it shared; the stale cleanup exclusively.
    interest: RwLock<()>,
    /// Bumped on every loss (disconnection, failed ping, dropped push).
    lost: AtomicU64,
    /// The last `lost` value the sink was told about.
    handled: AtomicU64,
    lost_since: Mutex<Option<Instant>>,
    pub(crate) overflow: AtomicBool,
    pub(crate) dropped: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    wake: Notify,
}

impl SubState {
    fn mark_lost(&self, why: &str) {
        let mut since = self.lost_since.lock();
        if since.is_none() {
            tracing::warn!(why, "redis pubsub connection lost");
            *since = Some(Instant::now());
        }
        self.lost.fetch_add(1, Ordering::AcqRel);
        drop(since);
        self.wake.notify_one();
    }

    /// Whether a loss has not been recovered yet.
    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire) != self.handled.load(Ordering::Acquire)
    }
}

pub(crate) async fn subscribe(inner: &Inner, channel: &str) -> Result<(), EngineError> {
    let subs = &inner.subs;
    let _g = subs.interest.read().await;
    subs.desired.lock().insert(channel.to_owned());
    subs.stale.lock().remove(channel);
    let pubsub = inner.keys.pubsub(channel);
    let mut sub = inner.sub.clone();
    let r = inner.run(sub.subscribe(&[&pubsub])).await;
    if r.is_err() {
        subs.desired.lock().remove(channel);
        // It may still go through (or be re-sent on reconnect): undo it then.
        subs.stale.lock().insert(channel.to_owned());
    }
    r
}

pub(crate) async fn unsubscribe(inner: &Inner, channel: &str) -> Result<(), EngineError> {
    let subs = &inner.subs;
    let _g = subs.interest.read().await;
    subs.desired.lock().remove(channel);
    let pubsub = inner.keys.pubsub(channel);
    let mut sub = inner.sub.clone();
    let r = inner.run(sub.unsubscribe(&[&pubsub])).await;
    if r.is_err() {
        subs.stale.lock().insert(channel.to_owned());
    }
    r
}

/// Receives pushes in order and hands them to the sink.
pub(crate) async fn run_pushes(weak: Weak<Inner>, mut rx: mpsc::Receiver<PushInfo>) {
    let mut batch = Vec::with_capacity(256);
    loop {
        if rx.recv_many(&mut batch, 256).await == 0 {
            return;
        }
        let Some(inner) = weak.upgrade() else { return };
        for push in batch.drain(..) {
            handle_push(&inner, push);
        }
        if inner.subs.overflow.swap(false, Ordering::AcqRel) {
            inner.subs.mark_lost("push queue overflow");
        }
    }
}

fn handle_push(inner: &Inner, push: PushInfo) {
    match push.kind {
        PushKind::Message | PushKind::SMessage => {
            let mut data = push.data.into_iter();
            let (Some(ch), Some(payload)) = (
                data.next().and_then(bytes_of),
                data.next().and_then(bytes_of),
            ) else {
                return;
            };
            deliver(inner, &ch, payload);
        }
        PushKind::Disconnection => inner.subs.mark_lost("disconnected"),
        _ => {}
    }
}

fn deliver(inner: &Inner, pubsub: &[u8], payload: Vec<u8>) {
    let Some(sink) = inner.sink.get() else { return };
    let Ok(pubsub) = std::str::from_utf8(pubsub) else {
        return;
    };
    if pubsub == inner.keys.control() {
        match decode_control(&payload) {
            Some(c) => sink.control(c),
            None => tracing::debug!("ignoring unknown control message"),
        }
        return;
    }
    let Some(channel) = inner.keys.channel_of_pubsub(pubsub) else {
        return;
    };
    match decode_channel_event(Bytes::from(payload)) {
        Some(ChannelEvent::Publication { epoch, publication }) => {
            sink.publication(channel, &epoch, publication);
        }
        Some(ChannelEvent::JoinLeave { join, client }) => sink.join_leave(channel, join, client),
        None => tracing::warn!(channel, "ignoring malformed pubsub message"),
    }
}

/// Checks the pubsub connection every `ping_interval` (and at once after a loss); once it
/// answers after a loss, cleans up failed unsubscribes and calls `EventSink::reconnected`.
pub(crate) async fn supervise(weak: Weak<Inner>) {
    loop {
        let (wake, interval, retry) = {
            let Some(inner) = weak.upgrade() else { return };
            let subs: Arc<SubState> = inner.subs.clone();
            let lost = subs.is_lost();
            (subs, inner.cfg.ping_interval, lost)
        };
        let pause = if retry {
            interval.min(std::time::Duration::from_millis(100))
        } else {
            interval
        };
        tokio::select! {
            () = wake.wake.notified() => {}
            () = tokio::time::sleep(pause) => {}
        }
        drop(wake);
        let Some(inner) = weak.upgrade() else { return };
        check(&inner).await;
    }
}

async fn check(inner: &Inner) {
    let subs = &inner.subs;
    let seen = subs.lost.load(Ordering::Acquire);
    let mut sub = inner.sub.clone();
    if let Err(e) = inner.run(sub.ping()).await {
        tracing::debug!(error = %e, "redis pubsub ping failed");
        if !subs.is_lost() {
            subs.mark_lost("ping failed");
        }
        return;
    }
    if seen == subs.handled.load(Ordering::Acquire) {
        return;
    }
    cleanup_stale(inner).await;
    subs.handled.store(seen, Ordering::Release);
    let since = subs.lost_since.lock().take();
    subs.reconnects.fetch_add(1, Ordering::Relaxed);
    tracing::info!(
        node = %inner.cfg.node_name,
        after_ms = since.map(|s| s.elapsed().as_millis()).unwrap_or(0),
        "redis pubsub connection restored; resynchronising channels"
    );
    if let Some(sink) = inner.sink.get() {
        sink.reconnected();
    }
}

/// Unsubscribes channels whose UNSUBSCRIBE failed and that nobody wants any more.
async fn cleanup_stale(inner: &Inner) {
    let subs = &inner.subs;
    let _g = subs.interest.write().await;
    let stale: Vec<String> = {
        let desired = subs.desired.lock();
        subs.stale
            .lock()
            .drain()
            .filter(|c| !desired.contains(c))
            .collect()
    };
    if stale.is_empty() {
        return;
    }
    let names: Vec<String> = stale.iter().map(|c| inner.keys.pubsub(c)).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut sub = inner.sub.clone();
    if inner.run(sub.unsubscribe(&refs)).await.is_err() {
        subs.stale.lock().extend(stale);
    }
}
