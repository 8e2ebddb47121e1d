//! Limits, each with its documented refusal: connection caps (HTTP 503/429 at the WebSocket and
//! SSE handshakes), slowloris (`header_timeout`), subscriptions per session
//! (`limit_exceeded`), command rate (4005), message size (4504 / 413) and channel name length
//! (`invalid_channel`).

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::raw::{self, RawWs};
use crate::harness::*;
use crate::sse::Sse;

fn error_code(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    v["error"]["code"].as_str().unwrap_or("").to_owned()
}

async fn ticket(s: &TestServer, user: &str) -> String {
    let r = s
        .http
        .post(format!("{}/auth/ticket", s.base))
        .bearer_auth(token(user, &[], &[], 3600))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["ticket"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn global_cap_refuses_websocket_and_sse_with_503_and_frees_slots() {
    let s = TestServer::with(|c| {
        c.connections.max_connections = 2;
        c.connections.max_per_ip = 0;
    })
    .await;
    let addr = s.running().addr;
    let a = RawWs::open(addr, "/ws", None, None).await.unwrap();
    let _b = RawWs::open(addr, "/ws", None, None).await.unwrap();
    let (status, body) = RawWs::open(addr, "/ws", None, None).await.err().unwrap();
    assert_eq!(
        (status, error_code(&body).as_str()),
        (503, "limit_exceeded")
    );
    let t = token("u1", &[], &[], 3600);
    let (status, body) = Sse::open(&s, "channel=chat:x", Some(&t), None)
        .await
        .err()
        .unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("limit_exceeded"))
    );
    // Plain requests are not long-lived connections and still pass.
    let r = s
        .http
        .get(format!("{}/health", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(a);
    eventually("a freed slot admits again", || async {
        RawWs::open(addr, "/ws", None, None).await.is_ok()
    })
    .await;
}

#[tokio::test]
async fn per_ip_cap_refuses_with_429_and_other_addresses_pass() {
    let s = TestServer::with(|c| c.connections.max_per_ip = 2).await;
    let addr = s.running().addr;
    let _a = RawWs::open(addr, "/ws", None, None).await.unwrap();
    let _b = RawWs::open(addr, "/ws", None, None).await.unwrap();
    let (status, body) = RawWs::open(addr, "/ws", None, None).await.err().unwrap();
    assert_eq!(
        (status, error_code(&body).as_str()),
        (429, "limit_exceeded")
    );
    // SSE from the same address counts against the same cap.
    let t = token("u1", &[], &[], 3600);
    let (status, _) = Sse::open(&s, "channel=chat:x", Some(&t), None)
        .await
        .err()
        .unwrap();
    assert_eq!(status, 429);
    // Another source address (all of 127/8 is loopback on Linux) has its own count.
    let other = Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    let _c = RawWs::open(addr, "/ws", other, None)
        .await
        .expect("another address is admitted");
}

#[tokio::test]
async fn per_user_cap_counts_tickets_and_sse_tokens() {
    let s = TestServer::with(|c| c.connections.max_per_user = 1).await;
    let addr = s.running().addr;
    let t1 = ticket(&s, "alice").await;
    let _a = RawWs::open(addr, &format!("/ws?ticket={t1}"), None, None)
        .await
        .unwrap();
    let t2 = ticket(&s, "alice").await;
    let (status, body) = RawWs::open(addr, &format!("/ws?ticket={t2}"), None, None)
        .await
        .err()
        .unwrap();
    assert_eq!(
        (status, error_code(&body).as_str()),
        (429, "limit_exceeded")
    );
    let alice = token("alice", &[], &[], 3600);
    let (status, _) = Sse::open(&s, "channel=chat:x", Some(&alice), None)
        .await
        .err()
        .unwrap();
    assert_eq!(status, 429);
    let bob = token("bob", &[], &[], 3600);
    assert!(
        Sse::open(&s, "channel=chat:x", Some(&bob), None)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn slowloris_clients_are_disconnected_after_the_header_timeout() {
    let timeout = Duration::from_millis(400);
    let s = TestServer::with(|c| c.connections.header_timeout = timeout).await;
    let addr = s.running().addr;
    // A partial request line, then nothing; a connection that never sends a byte; a partial
    // SSE request (the accept loop peeks at SSE requests before hyper sees them); a partial
    // HTTP/2 preface (protocol detection has no timer of its own).
    let partials: [&[u8]; 4] = [b"GET /hea", b"", b"GET /sse?chan", b"PRI * HTTP/2.0\r\n"];
    let mut tasks = Vec::new();
    for p in partials {
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut tcp = raw::tcp(addr, None, None).await;
            tcp.write_all(p).await.unwrap();
            raw::closed_within(&mut tcp, Duration::from_secs(5)).await;
            started.elapsed()
        }));
    }
    for t in tasks {
        let took = t.await.unwrap();
        assert!(
            took >= timeout - Duration::from_millis(50),
            "closed too early: {took:?}"
        );
        assert!(
            took < timeout * 2 + Duration::from_secs(1),
            "closed too late: {took:?}"
        );
    }
    // A complete request on a fresh connection is served as usual.
    let r = s
        .http
        .get(format!("{}/health", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn subscriptions_per_session_are_capped_with_limit_exceeded() {
    let s = TestServer::with(|c| c.limits.max_subscriptions_per_session = 2).await;
    let mut ws = s.client("u1").await;
    for ch in ["chat:a", "chat:b"] {
        let r = ws.request(json!({"op": "subscribe", "channel": ch})).await;
        assert!(r.get("ok").is_some(), "{r}");
    }
    let r = ws
        .request(json!({"op": "subscribe", "channel": "chat:c"}))
        .await;
    assert_eq!(r["error"]["code"], "limit_exceeded", "{r}");
    // The session lives and keeps its subscriptions.
    s.publish("chat:b", json!({"n": 1})).await;
    assert_eq!(ws.push("pub").await["channel"], "chat:b");
    // SSE asks for its channels at once: too many is a 429 with the same code.
    let t = token("u1", &[], &[], 3600);
    let (status, body) = Sse::open(
        &s,
        "channel=chat:a&channel=chat:b&channel=chat:c",
        Some(&t),
        None,
    )
    .await
    .err()
    .unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("limit_exceeded"))
    );
}

#[tokio::test]
async fn command_flood_is_closed_with_4005() {
    let s = TestServer::with(|c| {
        c.limits.command_rate = 5;
        c.limits.command_burst = 10;
    })
    .await;
    let mut ws = s.client("u1").await;
    // One frame carrying a batch of 50 commands: far above the burst.
    let batch: Vec<Value> = (0..50)
        .map(|i| json!({"id": i + 1, "op": "presence", "channel": "chat:a"}))
        .collect();
    ws.send(&Value::Array(batch)).await;
    assert_eq!(ws.closed().await, 4005);
}

#[tokio::test]
async fn oversized_frames_close_with_4504_and_oversized_publishes_get_413() {
    let s = TestServer::with(|c| c.limits.max_message_size = 1024).await;
    let (status, body) = s
        .api(
            "/api/publish",
            json!({"channel": "chat:a", "data": {"text": "x".repeat(2000)}}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("too_large"))
    );
    let mut ws = s.client("u1").await;
    let big = json!({"id": 9, "op": "publish", "channel": "open:a", "data": "x".repeat(4000)});
    ws.send(&big).await;
    assert_eq!(ws.closed().await, 4504);
}

#[tokio::test]
async fn long_channel_names_are_invalid_channel() {
    let s = TestServer::with(|c| c.limits.max_channel_length = 16).await;
    let long = format!("chat:{}", "a".repeat(12));
    let mut ws = s.client("u1").await;
    let r = ws
        .request(json!({"op": "subscribe", "channel": long}))
        .await;
    assert_eq!(r["error"]["code"], "invalid_channel", "{r}");
    let r = ws
        .request(json!({"op": "subscribe", "channel": "chat:ok"}))
        .await;
    assert!(r.get("ok").is_some(), "the session lives: {r}");
    let (status, body) = s
        .api("/api/publish", json!({"channel": long, "data": {}}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_channel"))
    );
}

/// The per-user cap also covers WebSocket sessions that authenticate in their first frame.
#[tokio::test]
async fn per_user_cap_covers_tokens_in_the_connect_frame() {
    let s = TestServer::with(|c| c.connections.max_per_user = 2).await;
    let a = s.client("capped").await;
    let _b = s.client("capped").await;
    let mut third = s.ws().await;
    let r = third.connect(&token("capped", &[], &[], 60)).await;
    assert_eq!(r["error"]["code"], "limit_exceeded", "{r}");
    assert_eq!(third.closed().await, 4007);
    // Others are unaffected, and a freed slot admits again.
    let _other = s.client("someone-else").await;
    drop(a);
    eventually("the slot to be freed", || async {
        s.node().registry().count_user("capped") == 1
    })
    .await;
    let mut fourth = s.ws().await;
    assert!(
        fourth
            .connect(&token("capped", &[], &[], 60))
            .await
            .get("ok")
            .is_some()
    );
}
