//! Resume: a subscriber that keeps dropping and reconnecting while publications continue gets
//! every publication exactly once, in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;

use crate::harness::*;

const TOTAL: u64 = 3000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_subscriber_sees_no_gap_and_no_duplicate() {
    let s = TestServer::start().await;
    let node = s.node().clone();
    let done = Arc::new(AtomicBool::new(false));
    let publisher = {
        let done = done.clone();
        tokio::spawn(async move {
            for i in 1..=TOTAL {
                node.publish_json("big:stream", &json!({"n": i}), None)
                    .await
                    .unwrap();
                // Paced (about 3 s in all) so the subscriber reconnects many times mid-stream.
                if i % 10 == 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut last: Option<(u64, serde_json::Value)> = None;
    let mut reconnects = 0;
    while last.as_ref().is_none_or(|(o, _)| *o < TOTAL) {
        let mut ws = s.client("resumer").await;
        let mut cmd = json!({"op": "subscribe", "channel": "big:stream"});
        if let Some((offset, epoch)) = &last {
            cmd["since"] = json!({"offset": offset, "epoch": epoch});
        }
        let r = ws.request(cmd).await;
        assert_eq!(r["ok"]["recovered"], true, "{r}");
        let epoch = r["ok"]["position"]["epoch"].clone();
        // Resuming: right after our position. First subscribe: after the reply's position.
        let mut expect = match &last {
            Some((o, _)) => o + 1,
            None => r["ok"]["position"]["offset"].as_u64().unwrap() + 1,
        };
        for p in r["ok"]["publications"].as_array().unwrap() {
            assert_eq!(
                p["offset"].as_u64().unwrap(),
                expect,
                "recovered publications are exact"
            );
            assert_eq!(p["data"]["n"].as_u64().unwrap(), expect);
            expect += 1;
        }
        // Read a varying number of live publications, then drop the connection abruptly.
        let take = 20 + (reconnects * 37) % 100;
        for _ in 0..take {
            if expect > TOTAL {
                break;
            }
            let p = ws.push("pub").await;
            assert_eq!(
                p["offset"].as_u64().unwrap(),
                expect,
                "live publications have no gap and no duplicate"
            );
            expect += 1;
        }
        last = Some((expect - 1, epoch));
        reconnects += 1;
        drop(ws);
    }
    publisher.await.unwrap();
    assert!(done.load(Ordering::SeqCst));
    assert!(
        reconnects >= 10,
        "the test must actually reconnect many times ({reconnects})"
    );
}

#[tokio::test]
async fn foreign_epoch_is_reported_unrecoverable() {
    let s = TestServer::start().await;
    s.publish("chat:e", json!(1)).await;
    let mut ws = s.client("u").await;
    let r = ws.request(json!({"op": "subscribe", "channel": "chat:e", "since": {"offset": 1, "epoch": "gone"}})).await;
    assert_eq!(r["ok"]["recovered"], false);
    assert_eq!(r["ok"]["position"]["offset"], 1);
    assert_eq!(r["ok"]["publications"], json!([]));
}

#[tokio::test]
async fn history_that_no_longer_reaches_back_is_unrecoverable() {
    let s = TestServer::start().await;
    let first = s.publish("chat:trim", json!(0)).await;
    for i in 1..=150 {
        s.publish("chat:trim", json!(i)).await;
    }
    let mut ws = s.client("u").await;
    let r = ws.request(json!({"op": "subscribe", "channel": "chat:trim", "since": {"offset": 1, "epoch": first["epoch"]}})).await;
    assert_eq!(
        r["ok"]["recovered"], false,
        "history keeps 100, so offset 2 is gone"
    );
    let r2 = ws.request(json!({"op": "history", "channel": "chat:trim", "since": {"offset": 120, "epoch": first["epoch"]}})).await;
    assert_eq!(r2["ok"]["publications"].as_array().unwrap().len(), 31);
}
