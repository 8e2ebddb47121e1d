//! The pubsub side: interest (subscribe/unsubscribe), decoding pushes into sink calls, and the
//! supervisor that notices a lost connection and tells the sink once it is back.
//!
//! Lost-connection handling. A `Disconnection` push, a failed liveness PING, a probe round
//! that did not come back (see [`crate::probe`]) or a dropped push (full queue) bumps `lost`.
//! While lost, the supervisor checks every 100 ms:
//! 1. PING through the pubsub connection (every master in a cluster) must answer; redis-rs
//!    reconnects by itself and re-sends its tracked subscriptions. If the pubsub connection stays
//!    unresponsive for 3 checks while the command connection works, it is replaced by a new one.
//! 2. Redis must serve data (`DBSIZE` is refused while an AOF loads; every master must report
//!    `cluster_state:ok`), because the hub reads history as soon as it is told.
//! 3. Every wanted channel, the control channel and the probes are subscribed again explicitly
//!    (redis-rs ignores failures of its own resubscription; re-subscribing is idempotent).
//! 4. A probe round must come back from every shard.
//!
//! Only then is `EventSink::reconnected()` called, once per outage: the hub re-reads history for
//! every channel, which covers whatever was published while deliveries were interrupted.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use redis::{PushInfo, PushKind};
use switchboard_core::engine::EngineError;
use tokio::sync::mpsc;

use crate::codec::{ChannelEvent, bytes_of, decode_channel_event, decode_control};
use crate::inner::Inner;
use crate::substate::SubState;

pub(crate) async fn subscribe(inner: &Inner, channel: &str) -> Result<(), EngineError> {
    let subs = &inner.subs;
    let _g = subs.interest.read().await;
    subs.desired.lock().insert(channel.to_owned());
    subs.stale.lock().remove(channel);
    let pubsub = inner.keys.pubsub(channel);
    let mut sub = inner.sub();
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
    let mut sub = inner.sub();
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
    if pubsub.starts_with('{') {
        // Node-wide names: control and probes (channel names start with the prefix).
        if pubsub == inner.keys.control() {
            match decode_control(&payload) {
                Some(c) => sink.control(c),
                None => tracing::debug!("ignoring unknown control message"),
            }
        } else {
            inner.subs.probes.on_message(pubsub, &payload);
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
    let mut sub = inner.sub();
    if let Err(e) = inner.run(sub.ping()).await {
        tracing::debug!(error = %e, "redis pubsub ping failed");
        if !subs.is_lost() {
            subs.mark_lost("ping failed");
        }
        let failed = subs.failed_checks.fetch_add(1, Ordering::AcqRel) + 1;
        if failed >= REBUILD_AFTER_FAILED_CHECKS && serving(inner).await {
            // Redis answers on the command connection but not on the pubsub one: the client
            // is stuck (seen with redis-rs cluster connections after a master restart). Start
            // over with a fresh connection; the recovery below subscribes it to everything.
            tracing::warn!("redis pubsub connection unresponsive; replacing it");
            match inner.rebuild_sub().await {
                Ok(()) => subs.failed_checks.store(0, Ordering::Release),
                Err(e) => tracing::debug!(error = %e, "replacing the pubsub connection failed"),
            }
        }
        return;
    }
    subs.failed_checks.store(0, Ordering::Release);
    if seen == subs.handled.load(Ordering::Acquire) {
        if !subs.probes.check(&inner.cmd, &inner.cfg).await {
            subs.mark_lost("probe lost");
        }
        return;
    }
    // Recovering. The hub re-reads history as soon as it is told, so wait until Redis serves
    // data again (AOF loaded, cluster state ok).
    if !serving(inner).await {
        return;
    }
    {
        let _g = subs.interest.write().await;
        // redis-rs resubscribes by itself, but it ignores failures (and a cluster node may
        // refuse SSUBSCRIBE while the cluster is still down): subscribe again to be sure.
        let mut names: Vec<String> = subs
            .desired
            .lock()
            .iter()
            .map(|c| inner.keys.pubsub(c))
            .collect();
        names.push(inner.keys.control().to_owned());
        // The cluster's topology may have changed: choose the probes again.
        match subs
            .probes
            .plan(&inner.cmd, &inner.cfg, &inner.instance)
            .await
        {
            Ok(probes) => names.extend(probes),
            Err(e) => {
                tracing::debug!(error = %e, "planning probes failed; retrying");
                return;
            }
        }
        let resubscribe = sub.resubscribe(&names);
        let timeout =
            inner.cfg.command_timeout * (1 + u32::try_from(names.len() / 2000).unwrap_or(u32::MAX));
        match tokio::time::timeout(timeout, resubscribe).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "resubscribing failed; retrying");
                return;
            }
            Err(_) => {
                tracing::debug!("resubscribing timed out; retrying");
                return;
            }
        }
        cleanup_stale(inner).await;
    }
    // Proof that every shard delivers again before the sink resynchronises.
    if !subs.probes.verify(&inner.cmd, &inner.cfg).await {
        return;
    }
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

/// Liveness checks of the pubsub connection that may fail in a row, while the command connection
/// works, before the pubsub connection is replaced.
const REBUILD_AFTER_FAILED_CHECKS: u32 = 3;

/// Whether Redis serves data on the command connection: `DBSIZE` is refused while an AOF is
/// loading; in a cluster, every master must also report `cluster_state:ok` (SSUBSCRIBE and
/// keyed commands fail while the cluster is down).
async fn serving(inner: &Inner) -> bool {
    let mut conn = inner.cmd.clone();
    if let Err(e) = inner
        .run(redis::cmd("DBSIZE").query_async::<redis::Value>(&mut conn))
        .await
    {
        tracing::debug!(error = %e, "redis not serving data yet");
        return false;
    }
    let crate::conn::Conn::Cluster(c) = &mut conn else {
        return true;
    };
    let mut cmd = redis::cmd("CLUSTER");
    cmd.arg("INFO");
    let routing = redis::cluster_routing::RoutingInfo::MultiNode((
        redis::cluster_routing::MultipleNodeRoutingInfo::AllMasters,
        None,
    ));
    match inner.run(c.route_command(cmd, routing)).await {
        Ok(v) => {
            let mut texts = Vec::new();
            collect_text(v, &mut texts);
            let ok = !texts.is_empty()
                && texts
                    .iter()
                    .filter(|t| t.contains("cluster_state:"))
                    .all(|t| t.contains("cluster_state:ok"));
            if !ok {
                tracing::debug!("redis cluster state not ok yet");
            }
            ok
        }
        Err(e) => {
            tracing::debug!(error = %e, "CLUSTER INFO failed");
            false
        }
    }
}

fn collect_text(v: redis::Value, out: &mut Vec<String>) {
    use redis::Value;
    match v {
        Value::Map(m) => m.into_iter().for_each(|(_, v)| collect_text(v, out)),
        Value::Array(a) | Value::Set(a) => a.into_iter().for_each(|v| collect_text(v, out)),
        other => {
            if let Some(b) = crate::codec::bytes_of(other) {
                out.push(String::from_utf8_lossy(&b).into_owned());
            }
        }
    }
}

/// Unsubscribes channels whose UNSUBSCRIBE failed and that nobody wants any more. The caller
/// holds the interest lock exclusively.
async fn cleanup_stale(inner: &Inner) {
    let subs = &inner.subs;
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
    let mut sub = inner.sub();
    if inner.run(sub.unsubscribe(&refs)).await.is_err() {
        subs.stale.lock().extend(stale);
    }
}
