//! Long-polling: cursors, waiting, exactly-once across consecutive polls, bad input.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;

async fn poll(s: &TestServer, query: &str, t: &str) -> (u16, Value) {
    let r = s
        .http
        .get(format!("{}/poll?{query}", s.base))
        .bearer_auth(t)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn first_poll_returns_the_cursor_then_waits_for_news() {
    let s = TestServer::start().await;
    let t = token("p1", &[], &[], 3600);
    s.publish("chat:p", json!(0)).await;
    let (st, first) = poll(&s, "channel=chat:p", &t).await;
    assert_eq!(st, 200);
    assert_eq!(first["publications"], json!([]));
    let cursor = first["cursor"].as_str().unwrap().to_owned();
    let waiting = {
        let s_base = s.base.clone();
        let t = t.clone();
        let cursor = cursor.clone();
        tokio::spawn(async move {
            reqwest::Client::new()
                .get(format!(
                    "{s_base}/poll?channel=chat:p&since={cursor}&timeout=10"
                ))
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    // Publish once the poll is parked on the channel (it shows up as a subscriber).
    eventually("the poll to wait on the channel", || async {
        s.node()
            .channels(Some("chat:p"))
            .first()
            .is_some_and(|(_, n)| *n == 1)
    })
    .await;
    s.publish("chat:p", json!({"late": true})).await;
    let r = waiting.await.unwrap();
    assert_eq!(r["publications"][0]["data"], json!({"late": true}));
    assert_ne!(r["cursor"], json!(cursor));
    let (_, empty) = poll(
        &s,
        &format!(
            "channel=chat:p&since={}&timeout=0",
            r["cursor"].as_str().unwrap()
        ),
        &t,
    )
    .await;
    assert_eq!(empty["publications"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consecutive_polls_see_every_publication_exactly_once() {
    let s = TestServer::start().await;
    let t = token("p2", &[], &[], 3600);
    let node = s.node().clone();
    let (_, first) = poll(&s, "channel=big:poll&channel=chat:poll2", &t).await;
    let mut cursor = first["cursor"].as_str().unwrap().to_owned();
    const N: u64 = 500;
    let publisher = tokio::spawn(async move {
        for i in 1..=N {
            let ch = if i % 3 == 0 { "chat:poll2" } else { "big:poll" };
            node.publish_json(ch, &json!({"i": i}), None).await.unwrap();
            if i % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });
    let mut seen = BTreeSet::new();
    let mut last_offsets = std::collections::HashMap::<String, u64>::new();
    while seen.len() < N as usize {
        let (st, r) = poll(
            &s,
            &format!("channel=big:poll&channel=chat:poll2&since={cursor}&timeout=5"),
            &t,
        )
        .await;
        assert_eq!(st, 200, "{r}");
        assert!(r.get("reset").is_none(), "{r}");
        for p in r["publications"].as_array().unwrap() {
            let ch = p["channel"].as_str().unwrap().to_owned();
            let off = p["offset"].as_u64().unwrap();
            let prev = last_offsets.insert(ch.clone(), off).unwrap_or(0);
            assert_eq!(off, prev + 1, "gap or duplicate on {ch}");
            assert!(
                seen.insert(p["data"]["i"].as_u64().unwrap()),
                "duplicate {p}"
            );
        }
        cursor = r["cursor"].as_str().unwrap().to_owned();
    }
    publisher.await.unwrap();
    assert_eq!(seen, (1..=N).collect());
}

#[tokio::test]
async fn polling_needs_history_and_valid_input() {
    let s = TestServer::start().await;
    let t = token("p3", &[], &[], 3600);
    let (st, body) = poll(&s, "channel=live:x", &t).await;
    assert_eq!(st, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("history"),
        "{body}"
    );
    let (st, _) = poll(&s, "channel=chat:a&since=%%%", &t).await;
    assert_eq!(st, 400);
    let (st, _) = poll(&s, "channel=chat:a&timeout=soon", &t).await;
    assert_eq!(st, 400);
    let (st, _) = poll(&s, "channel=closed:a", &t).await;
    assert_eq!(st, 403);
    let r = s
        .http
        .get(format!("{}/poll?channel=chat:a", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let mut c = switchboard_protocol::Cursor::new();
    c.set(
        "chat:a",
        switchboard_protocol::StreamPosition::new(3, "old-epoch"),
    );
    let (st, r) = poll(
        &s,
        &format!("channel=chat:a&since={}&timeout=0", c.encode()),
        &t,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(r["reset"], json!(["chat:a"]));
}
