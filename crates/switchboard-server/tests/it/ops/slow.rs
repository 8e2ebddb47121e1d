//! A slow consumer (a raw WebSocket client with a small receive buffer that stops reading) is
//! cut off with 4002 once its queue passes `outbound_queue_bytes`; the publisher and the other
//! sessions never wait for it, its queue never holds more than the limit, and it resumes with
//! no loss.

use std::sync::Arc;

use serde_json::{Value, json};
use switchboard_core::SessionHandle;
use switchboard_protocol::Disconnect;

use super::raw::RawWs;
use crate::harness::*;

const QUEUE: usize = 64 * 1024;
const CHANNEL: &str = "big:firehose";
/// The most publications the test sends before giving up on a cut-off.
const MAX_PUBS: u64 = 4000;

fn session_of(s: &TestServer, client: &str) -> Option<Arc<SessionHandle>> {
    let mut found = None;
    s.node().registry().for_each(|h| {
        if &*h.id == client {
            found = Some(h.clone());
        }
    });
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_cut_off_with_4002_and_resumes_without_loss() {
    let s = TestServer::with(|c| {
        c.limits.outbound_queue_bytes = QUEUE;
        // Bounds what the kernel holds for the stalled socket, too.
        c.connections.send_buffer = 64 * 1024;
    })
    .await;
    let addr = s.running().addr;

    // The slow client: 4 KiB receive buffer, subscribes, then stops reading.
    let mut slow = RawWs::open(addr, "/ws", None, Some(4096)).await.unwrap();
    let hello = slow
        .request(json!({"id": 1, "op": "connect", "token": token("slow", &[], &[], 3600)}))
        .await;
    let client = hello["ok"]["client"].as_str().unwrap().to_owned();
    let sub = slow
        .request(json!({"id": 2, "op": "subscribe", "channel": CHANNEL}))
        .await;
    let epoch = sub["ok"]["position"]["epoch"].as_str().unwrap().to_owned();
    let handle = session_of(&s, &client).expect("slow session registered");

    // A healthy subscriber of the same channel reads everything as it comes.
    let mut healthy = s.client("healthy").await;
    let r = healthy
        .request(json!({"op": "subscribe", "channel": CHANNEL}))
        .await;
    assert!(r.get("ok").is_some());
    let mut healthy_handle = None;
    s.node().registry().for_each(|h| {
        if h.info().user == "healthy" {
            healthy_handle = Some(h.clone());
        }
    });
    let healthy_handle = healthy_handle.expect("healthy session registered");
    let healthy_task = tokio::spawn(async move {
        let mut offsets = Vec::new();
        loop {
            let p = healthy.push("pub").await;
            let off = p["offset"].as_u64().unwrap();
            offsets.push(off);
            if p["data"]["last"] == true {
                return (offsets, healthy);
            }
        }
    });

    // Publish 2 KiB publications until the slow session is cut off. The publisher never waits:
    // the loop finishes although the slow client reads nothing at all.
    let payload = "x".repeat(2048);
    let node = s.node().clone();
    let mut published = 0;
    let mut peak = 0;
    while published < MAX_PUBS {
        // Paced by the healthy reader only (its queue stays under half the limit), never by
        // the slow one: on a loaded machine an unpaced loop would overrun both.
        // (Yielding, not waiting on the outbox: its wake-up belongs to the connection task.)
        while healthy_handle.outbox.queued_bytes() > QUEUE / 2 {
            tokio::task::yield_now().await;
        }
        node.publish_json(CHANNEL, &json!({"p": payload}), None)
            .await
            .unwrap();
        published += 1;
        peak = peak.max(handle.outbox.queued_bytes());
        if handle.outbox.closed().is_some() {
            break;
        }
    }
    assert_eq!(
        handle.outbox.closed(),
        Some(Disconnect::SLOW),
        "cut off after {published} publications"
    );
    assert!(peak <= QUEUE, "queue held {peak} bytes, limit {QUEUE}");
    assert_eq!(
        handle.outbox.queued_bytes(),
        0,
        "the queue is freed at the cut-off"
    );
    // Some more after the cut-off, then the marker that ends the healthy reader.
    for _ in 0..20 {
        node.publish_json(CHANNEL, &json!({"p": "after"}), None)
            .await
            .unwrap();
    }
    let last = node
        .publish_json(CHANNEL, &json!({"last": true}), None)
        .await
        .unwrap()
        .offset;

    // Other sessions were served throughout: every publication, in order, no gap.
    let (offsets, _healthy) = healthy_task.await.unwrap();
    assert_eq!(offsets, (1..=last).collect::<Vec<_>>());
    eventually("the slow session is unregistered", || async {
        session_of(&s, &client).is_none()
    })
    .await;

    // The slow client reads what reached it: whole publications in order, then the end of the
    // connection (a close frame, if any, says 4002).
    let mut received = 0;
    let mut close = None;
    while let Some(f) = slow.frame().await {
        if let Some(code) = f.close_code() {
            close = Some(code);
            break;
        }
        if let Some(v) = f.json()
            && v["op"] == "pub"
        {
            let off = v["offset"].as_u64().unwrap();
            assert_eq!(off, received + 1, "in order, no gap");
            received = off;
        }
    }
    assert!(close.is_none_or(|c| c == 4002), "closed with {close:?}");
    assert!(received < last, "it was cut off before the end");

    // Reconnect and resume from the last publication it saw: nothing is lost.
    let mut again = s.client("slow").await;
    let r = again
        .request(json!({"op": "subscribe", "channel": CHANNEL,
            "since": {"offset": received, "epoch": epoch}}))
        .await;
    assert_eq!(r["ok"]["recovered"], true, "{r}");
    let got: Vec<u64> = r["ok"]["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p: &Value| p["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(got, ((received + 1)..=last).collect::<Vec<_>>());
}
