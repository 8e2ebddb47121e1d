//! WebSocket protocol behaviour.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::*;

#[tokio::test]
async fn connect_subscribe_and_receive_server_publications() {
    let s = TestServer::start().await;
    let mut ws = s.ws().await;
    let r = ws.connect(&token("42", &[], &[], 3600)).await;
    assert_eq!(r["ok"]["user"], "42");
    assert_eq!(r["ok"]["ping_interval"], 25);
    assert!(r["ok"]["expires_in"].as_u64().unwrap() > 3500);
    let sub = ws
        .request(json!({"op": "subscribe", "channel": "chat:lobby"}))
        .await;
    assert_eq!(sub["ok"]["recovered"], true);
    assert_eq!(sub["ok"]["position"]["offset"], 0);
    let p = s.publish("chat:lobby", json!({"text": "hi"})).await;
    assert_eq!(p["offset"], 1);
    let push = ws.push("pub").await;
    assert_eq!(
        push,
        json!({"op": "pub", "channel": "chat:lobby", "offset": 1, "data": {"text": "hi"}})
    );
}

#[tokio::test]
async fn client_publish_carries_publisher_info_and_needs_permission() {
    let s = TestServer::start().await;
    let mut a = s.ws().await;
    a.connect(&token("alice", &[], &["chat:*"], 3600)).await;
    a.request(json!({"op": "subscribe", "channel": "chat:room"}))
        .await;
    let r = a
        .request(json!({"op": "publish", "channel": "chat:room", "data": {"t": 1}}))
        .await;
    assert_eq!(r["ok"]["offset"], 1);
    let push = a.push("pub").await;
    assert_eq!(push["info"]["user"], "alice");
    let denied = a
        .request(json!({"op": "publish", "channel": "news:x", "data": 1}))
        .await;
    assert_eq!(denied["error"]["code"], "permission_denied");
    // Namespaces with allow_publish let any authenticated client publish.
    let ok = a
        .request(json!({"op": "publish", "channel": "open:x", "data": 1}))
        .await;
    assert_eq!(ok["ok"]["offset"], 1);
}

#[tokio::test]
async fn history_presence_and_join_leave() {
    let s = TestServer::start().await;
    for i in 1..=5 {
        s.publish("chat:h", json!({"n": i})).await;
    }
    let mut a = s.client("a").await;
    let sub = a
        .request(json!({"op": "subscribe", "channel": "chat:h"}))
        .await;
    let epoch = sub["ok"]["position"]["epoch"].clone();
    let h = a
        .request(
            json!({"op": "history", "channel": "chat:h", "since": {"offset": 2, "epoch": epoch}}),
        )
        .await;
    let offsets: Vec<u64> = h["ok"]["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [3, 4, 5]);
    let rev = a
        .request(json!({"op": "history", "channel": "chat:h", "limit": 2, "reverse": true}))
        .await;
    assert_eq!(rev["ok"]["publications"][0]["data"], json!({"n": 5}));
    let bad = a
        .request(
            json!({"op": "history", "channel": "chat:h", "since": {"offset": 2, "epoch": "other"}}),
        )
        .await;
    assert_eq!(bad["error"]["code"], "unrecoverable_position");

    let mut b = s.client("b").await;
    b.request(json!({"op": "subscribe", "channel": "chat:h"}))
        .await;
    // `a` first sees its own join, then b's.
    let mut join = a.push("join").await;
    if join["client"]["user"] == "a" {
        join = a.push("join").await;
    }
    assert_eq!(join["client"]["user"], "b");
    let p = a
        .request(json!({"op": "presence", "channel": "chat:h"}))
        .await;
    let mut users: Vec<&str> = p["ok"]["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["user"].as_str().unwrap())
        .collect();
    users.sort();
    assert_eq!(users, ["a", "b"]);
    b.request(json!({"op": "unsubscribe", "channel": "chat:h"}))
        .await;
    assert_eq!(a.push("leave").await["client"]["user"], "b");
    let again = b
        .request(json!({"op": "unsubscribe", "channel": "chat:h"}))
        .await;
    assert_eq!(again["error"]["code"], "not_subscribed");
    let none = a
        .request(json!({"op": "history", "channel": "live:x"}))
        .await;
    assert_eq!(none["error"]["code"], "not_available");
}

#[tokio::test]
async fn personal_channels_only_for_their_users() {
    let s = TestServer::start().await;
    let mut owner = s.client("42").await;
    let ok = owner
        .request(json!({"op": "subscribe", "channel": "notifications:inbox#42"}))
        .await;
    assert!(ok.get("ok").is_some(), "{ok}");
    let mut other = s.ws().await;
    other.connect(&token("7", &["*"], &[], 3600)).await;
    let denied = other
        .request(json!({"op": "subscribe", "channel": "notifications:inbox#42"}))
        .await;
    assert_eq!(denied["error"]["code"], "permission_denied");
    // `channels: ["*"]` grants namespaces closed to others, but never someone's personal channel.
    let granted = other
        .request(json!({"op": "subscribe", "channel": "closed:x"}))
        .await;
    assert!(granted.get("ok").is_some(), "{granted}");
    let mut plain = s.client("8").await;
    let closed = plain
        .request(json!({"op": "subscribe", "channel": "closed:x"}))
        .await;
    assert_eq!(closed["error"]["code"], "permission_denied");
    s.publish("notifications:inbox#42", json!({"badge": 1}))
        .await;
    assert_eq!(owner.push("pub").await["data"], json!({"badge": 1}));
}

#[tokio::test]
async fn refresh_extends_and_expiry_closes_with_4004() {
    let s = TestServer::with(|c| c.client.expiring_notice = Duration::from_secs(2)).await;
    let mut ws = s.ws().await;
    ws.connect(&token("u", &[], &[], 3)).await;
    let exp = ws.push("expiring").await;
    assert!(exp["in"].as_u64().unwrap() <= 2);
    let wrong = ws
        .request(json!({"op": "refresh", "token": token("someone-else", &[], &[], 60)}))
        .await;
    assert_eq!(wrong["error"]["code"], "permission_denied");
    let r = ws
        .request(json!({"op": "refresh", "token": token("u", &[], &[], 60)}))
        .await;
    assert!(r["ok"]["expires_in"].as_u64().unwrap() > 50);

    let mut short = s.ws().await;
    short.connect(&token("v", &[], &[], 2)).await;
    let d = short.push("disconnect").await;
    assert_eq!(
        d,
        json!({"op": "disconnect", "code": 4004, "reason": "token expired", "reconnect": true})
    );
    assert_eq!(short.closed().await, 4004);
    // The refreshed session is still alive.
    let p = ws
        .request(json!({"op": "presence", "channel": "chat:x"}))
        .await;
    assert!(p.get("ok").is_some());
}

#[tokio::test]
async fn app_pings_arrive_every_interval() {
    let s = TestServer::with(|c| c.client.ping_interval = Duration::from_secs(1)).await;
    let mut ws = s.client("u").await;
    let first = ws.push("ping").await;
    assert_eq!(first, json!({"op": "ping"}));
    ws.push("ping").await;
}

/// A peer that completes the handshake but never answers protocol Pings is closed as stale.
#[tokio::test]
async fn silent_peer_is_closed_as_stale() {
    let s = TestServer::with(|c| {
        c.client.ping_interval = Duration::from_secs(1);
        c.client.pong_timeout = Duration::from_secs(1);
    })
    .await;
    let mut tcp = tokio::net::TcpStream::connect(s.running().addr)
        .await
        .unwrap();
    let req = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    tcp.write_all(req.as_bytes()).await.unwrap();
    // One masked text frame with the connect command, then silence.
    let payload = json!({"id": 1, "op": "connect", "token": token("u", &[], &[], 60)}).to_string();
    let mut frame = vec![0x81u8, 0xfe];
    frame.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(payload.as_bytes());
    tcp.write_all(&frame).await.unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(WAIT, async {
        loop {
            let n = tcp.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
    });
    read.await.expect("server closes the stale peer");
    let text = String::from_utf8_lossy(&all);
    assert!(text.contains(r#""code":4001"#), "{text}");
    // The close frame carries 4001 (0x0fa1).
    assert!(
        all.windows(4).any(|w| w == [0x88, 7, 0x0f, 0xa1]),
        "close frame with 4001 expected"
    );
}

#[tokio::test]
async fn auth_timeout_closes_with_4502() {
    let s = TestServer::with(|c| c.client.auth_timeout = Duration::from_millis(500)).await;
    let mut ws = s.ws().await;
    assert_eq!(ws.closed().await, 4502);
}

#[tokio::test]
async fn api_disconnect_closes_the_users_sessions() {
    let s = TestServer::start().await;
    let mut a = s.client("victim").await;
    let mut b = s.client("victim").await;
    let mut other = s.client("bystander").await;
    let (status, body) = s
        .api(
            "/api/disconnect",
            json!({"user": "victim", "reconnect": true}),
        )
        .await;
    assert_eq!((status, body["disconnected"].as_u64()), (200, Some(2)));
    assert_eq!(a.closed().await, 4006);
    assert_eq!(b.closed().await, 4006);
    let mut c = s.client("victim").await;
    s.api("/api/disconnect", json!({"user": "victim"})).await;
    assert_eq!(c.closed().await, 4503);
    let p = other
        .request(json!({"op": "presence", "channel": "chat:x"}))
        .await;
    assert!(p.get("ok").is_some());
}

#[tokio::test]
async fn origin_allow_list_is_enforced_on_the_handshake() {
    let s = TestServer::with(|c| c.allowed_origins = vec!["https://app.example".into()]).await;
    let mut req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(s.ws_url())
            .unwrap();
    req.headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    let err = tokio_tungstenite::connect_async(req).await.unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(r) => assert_eq!(r.status(), 403),
        other => panic!("expected 403, got {other}"),
    }
    let mut req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(s.ws_url())
            .unwrap();
    req.headers_mut()
        .insert("origin", "https://app.example".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_ok());
}

#[tokio::test]
async fn ticket_connects_once_and_is_refused_on_replay() {
    let s = TestServer::start().await;
    let r = s
        .http
        .post(format!("{}/auth/ticket", s.base))
        .bearer_auth(token("t", &[], &[], 60))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    let ticket = body["ticket"].as_str().unwrap().to_owned();
    assert!(body["expires_in"].as_u64().unwrap() <= 30);
    let mut ws = Ws::open(&format!("{}?ticket={ticket}", s.ws_url())).await;
    let who = ws.request(json!({"op": "connect"})).await;
    assert_eq!(who["ok"]["user"], "t");
    let err = tokio_tungstenite::connect_async(format!("{}?ticket={ticket}", s.ws_url()))
        .await
        .unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(r) => assert_eq!(r.status(), 401),
        other => panic!("expected 401, got {other}"),
    }
    let no_auth = s
        .http
        .post(format!("{}/auth/ticket", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(no_auth.status(), 401);
}

#[tokio::test]
async fn batched_commands_reply_in_order() {
    let s = TestServer::start().await;
    let mut ws = s.ws().await;
    let t = token("b", &[], &[], 60);
    ws.send(&json!([{"id": 1, "op": "connect", "token": t}, {"id": 2, "op": "subscribe", "channel": "chat:b"}, {"id": 3, "op": "presence", "channel": "chat:b"}])).await;
    let mut ids = Vec::new();
    while ids.len() < 3 {
        let v = ws.recv().await.unwrap();
        if let Some(id) = v["id"].as_u64() {
            ids.push(id); // pushes such as `join` carry no id
        }
    }
    assert_eq!(ids, [1, 2, 3]);
}
