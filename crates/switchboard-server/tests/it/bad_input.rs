//! Bad input: each case gets its documented error reply or close code, and nothing else breaks.

use futures_util::SinkExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::*;

/// A bystander subscribed before the abuse keeps receiving, and receives nothing it should not.
async fn bystander(s: &TestServer) -> Ws {
    let mut b = s.client("bystander").await;
    b.request(json!({"op": "subscribe", "channel": "chat:safe"}))
        .await;
    b
}

async fn bystander_still_served(s: &TestServer, b: &mut Ws) {
    let r = s.publish("chat:safe", json!({"still": "here"})).await;
    let p = b.push("pub").await;
    assert_eq!(
        p["channel"], "chat:safe",
        "nothing from other channels leaks"
    );
    assert_eq!(p["offset"], r["offset"]);
}

#[tokio::test]
async fn malformed_commands_get_error_replies_and_the_connection_lives() {
    let s = TestServer::start().await;
    let mut b = bystander(&s).await;
    let mut ws = s.client("u").await;
    ws.send_text("{not json").await;
    let e = ws.recv().await.unwrap();
    assert_eq!(e["error"]["code"], "bad_request");
    assert!(e.get("id").is_none());
    let e = ws.request(json!({"op": "dance"})).await;
    assert_eq!(e["error"]["code"], "bad_request");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown op")
    );
    let e = ws.request(json!({"op": "subscribe", "channel": 42})).await;
    assert_eq!(e["error"]["code"], "bad_request");
    let e = ws.request(json!({"op": "subscribe"})).await;
    assert_eq!(e["error"]["code"], "bad_request");
    let e = ws
        .request(json!({"op": "subscribe", "channel": "bad channel!"}))
        .await;
    assert_eq!(e["error"]["code"], "invalid_channel");
    let e = ws
        .request(json!({"op": "subscribe", "channel": "x".repeat(300)}))
        .await;
    assert_eq!(e["error"]["code"], "invalid_channel");
    let e = ws
        .request(json!({"op": "subscribe", "channel": "chat:a"}))
        .await;
    assert!(e.get("ok").is_some(), "still usable: {e}");
    let e = ws
        .request(json!({"op": "subscribe", "channel": "chat:a"}))
        .await;
    assert_eq!(e["error"]["code"], "already_subscribed");
    bystander_still_served(&s, &mut b).await;
}

#[tokio::test]
async fn repeated_bad_commands_close_with_4500() {
    let s = TestServer::start().await;
    let mut ws = s.client("u").await;
    for _ in 0..12 {
        ws.send_text("[]").await;
    }
    assert_eq!(ws.closed().await, 4500);
}

#[tokio::test]
async fn commands_before_connect_close_with_4500() {
    let s = TestServer::start().await;
    let mut ws = s.ws().await;
    let e = ws
        .request(json!({"op": "subscribe", "channel": "chat:a"}))
        .await;
    assert_eq!(e["error"]["code"], "unauthorized");
    assert_eq!(ws.closed().await, 4500);
}

#[tokio::test]
async fn oversized_frame_closes_with_4504() {
    let s = TestServer::with(|c| c.limits.max_message_size = 1024).await;
    let mut b = bystander(&s).await;
    let mut ws = s.client("u").await;
    let big = json!({"id": 9, "op": "publish", "channel": "chat:a", "data": "x".repeat(2000)});
    ws.send(&big).await;
    assert_eq!(ws.closed().await, 4504);
    bystander_still_served(&s, &mut b).await;
}

#[tokio::test]
async fn binary_frames_close_with_1003() {
    let s = TestServer::start().await;
    let mut ws = s.client("u").await;
    ws.inner
        .send(Message::binary(vec![1u8, 2, 3]))
        .await
        .unwrap();
    assert_eq!(ws.closed().await, 1003);
}

#[tokio::test]
async fn unauthorized_subscribe_and_publish_are_refused_without_leaks() {
    let s = TestServer::start().await;
    let mut b = bystander(&s).await;
    let mut ws = s.ws().await;
    ws.connect(&token("u", &["chat:*"], &[], 60)).await;
    let e = ws
        .request(json!({"op": "subscribe", "channel": "closed:secret"}))
        .await;
    assert_eq!(e["error"]["code"], "permission_denied");
    let e = ws
        .request(json!({"op": "publish", "channel": "chat:safe", "data": {"evil": true}}))
        .await;
    assert_eq!(e["error"]["code"], "permission_denied");
    let e = ws
        .request(json!({"op": "history", "channel": "notifications:inbox#someone"}))
        .await;
    assert_eq!(e["error"]["code"], "permission_denied");
    bystander_still_served(&s, &mut b).await;
}

#[tokio::test]
async fn invalid_tokens_close_with_their_codes() {
    let s = TestServer::start().await;
    let mut b = bystander(&s).await;

    let mut ws = s.ws().await;
    let e = ws.connect("not.a.jwt").await;
    assert_eq!(e["error"]["code"], "unauthorized");
    assert_eq!(ws.closed().await, 4501);

    let mut ws = s.ws().await;
    let wrong_secret =
        switchboard_core::auth::mint_hs256("other-secret", &claims("u", &[], &[], 60)).unwrap();
    ws.connect(&wrong_secret).await;
    assert_eq!(ws.closed().await, 4501);

    let mut ws = s.ws().await;
    ws.connect(&token("u", &[], &[], -120)).await;
    assert_eq!(
        ws.closed().await,
        4004,
        "expired tokens ask the client to come back with a fresh one"
    );

    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let none = format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(json!(claims("u", &[], &[], 60)).to_string())
    );
    let mut ws = s.ws().await;
    ws.connect(&none).await;
    assert_eq!(ws.closed().await, 4501);

    let mut ws = s.ws().await;
    ws.send(&json!({"id": 1, "op": "connect"})).await;
    assert_eq!(ws.recv().await.unwrap()["error"]["code"], "unauthorized");
    assert_eq!(
        ws.closed().await,
        4501,
        "no anonymous access unless configured"
    );
    bystander_still_served(&s, &mut b).await;
}

/// RS256 → HS256 confusion: an HMAC token "signed" with the server's RSA public key.
#[tokio::test]
async fn rsa_key_cannot_be_used_as_an_hmac_secret() {
    let public = include_str!("fixtures/rsa_public.pem");
    let private = include_str!("fixtures/rsa_private.pem");
    let s = TestServer::with(|c| {
        c.jwt.secret = None;
        c.jwt.public_key_pem = Some(public.into());
        c.jwt.public_key_algorithm = Some("RS256".into());
    })
    .await;
    let c = claims("u", &[], &[], 60);
    let good = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &c,
        &EncodingKey::from_rsa_pem(private.as_bytes()).unwrap(),
    )
    .unwrap();
    let mut ws = s.ws().await;
    assert!(ws.connect(&good).await.get("ok").is_some());
    let forged = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &c,
        &EncodingKey::from_secret(public.as_bytes()),
    )
    .unwrap();
    let mut ws = s.ws().await;
    let e = ws.connect(&forged).await;
    assert_eq!(e["error"]["code"], "unauthorized");
    assert_eq!(ws.closed().await, 4501);
}

#[tokio::test]
async fn invalid_utf8_and_broken_framing_use_rfc_codes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start().await;
    for (frame, code) in [
        (vec![0x81u8, 0x82, 0, 0, 0, 0, 0xff, 0xfe], 1007u16), // masked text, invalid UTF-8
        (vec![0x81u8, 0x02, b'h', b'i'], 1002),                // unmasked client frame
        (vec![0x83u8, 0x80, 0, 0, 0, 0], 1002),                // reserved opcode
    ] {
        let mut tcp = tokio::net::TcpStream::connect(s.running().addr)
            .await
            .unwrap();
        let req = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        tcp.write_all(req.as_bytes()).await.unwrap();
        tcp.write_all(&frame).await.unwrap();
        let mut all = Vec::new();
        tokio::time::timeout(WAIT, tcp.read_to_end(&mut all))
            .await
            .unwrap()
            .unwrap();
        let want = code.to_be_bytes();
        assert!(
            all.windows(4).any(|w| w[0] == 0x88 && w[2..4] == want),
            "close {code} expected: {all:?}"
        );
    }
}

#[tokio::test]
async fn rest_api_errors_are_json_with_statuses() {
    let s = TestServer::with(|c| c.limits.max_message_size = 1024).await;
    let url = format!("{}/api/publish", s.base);
    let r = s
        .http
        .post(&url)
        .json(&json!({"channel": "a", "data": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "unauthorized"
    );
    let r = s
        .http
        .post(&url)
        .header("X-API-Key", API_KEY)
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "bad_request"
    );
    let (st, body) = s
        .api("/api/publish", json!({"channel": "bad name", "data": 1}))
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (400, Some("invalid_channel"))
    );
    let (st, body) = s
        .api(
            "/api/publish",
            json!({"channel": "a", "data": "x".repeat(2000)}),
        )
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (413, Some("too_large"))
    );
    let (st, body) = s.api("/api/publish", json!({"channel": "a"})).await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    let (st, _) = s.api("/api/history", json!({"channel": "live:x"})).await;
    assert_eq!(st, 400);
}
