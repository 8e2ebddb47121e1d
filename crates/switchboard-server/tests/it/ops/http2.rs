//! Issue 10: HTTP/2 — prior knowledge (h2c) on plain TCP, as proxies and CDNs talk to origins;
//! over TLS it is negotiated by ALPN (`ops::tls`). Streams, polls, commands, tickets and the
//! API share one connection.

use serde_json::{Value, json};

use crate::harness::*;
use crate::sse::Sse;

/// Ten SSE streams and every request kind over `front` (a client that speaks HTTP/2 to `node`):
/// all on HTTP/2, all on one TCP connection, every stream receives.
pub async fn multiplexed_session(front: &TestServer, node: &TestServer) {
    let t = token("h2", &[], &[], 3600);
    let r = front
        .http
        .get(format!("{}/health", front.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let mut streams = Vec::new();
    for i in 0..10 {
        let mut s = Sse::open(
            front,
            &format!("channel=feed:h2&channel=feed:h2-{i}"),
            Some(&t),
            None,
        )
        .await
        .unwrap();
        s.next_of("welcome").await;
        streams.push(s);
    }
    // Commands, tickets, polls and the API on the same connection.
    let r = front
        .http
        .post(format!("{}/auth/ticket", front.base))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.version(), r.status().as_u16()),
        (reqwest::Version::HTTP_2, 200)
    );
    let first = front.get_json("/poll?channel=feed:h2", &t).await;
    let r = front
        .http
        .post(format!("{}/api/publish", front.base))
        .header("X-API-Key", API_KEY)
        .json(&json!({"channel": "feed:h2", "data": {"n": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.version(), r.status().as_u16()),
        (reqwest::Version::HTTP_2, 200)
    );
    for s in &mut streams {
        assert_eq!(s.next_of("message").await.json()["data"]["n"], 1);
    }
    let since = first["cursor"].as_str().unwrap();
    let polled = front
        .get_json(&format!("/poll?channel=feed:h2&since={since}"), &t)
        .await;
    assert_eq!(polled["publications"][0]["data"]["n"], 1);
    let r = front
        .http
        .post(format!("{}/cmd", front.base))
        .bearer_auth(&t)
        .body(r#"{"id":7,"op":"history","channel":"feed:h2"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let h: Value = r.json().await.unwrap();
    assert_eq!(h["id"], 7);
    assert_eq!(h["ok"]["publications"].as_array().unwrap().len(), 1);
    // All of it over one TCP connection (the only one this node has seen).
    let metrics = front
        .http
        .get(format!("{}/metrics", front.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let open = metrics
        .lines()
        .find(|l| l.starts_with("switchboard_connections_open "))
        .expect("connections gauge");
    assert_eq!(open, "switchboard_connections_open 1", "{open}");
    assert_eq!(node.node().registry().len(), 10, "ten SSE sessions");
}

#[tokio::test]
async fn h2c_prior_knowledge_serves_everything_on_one_connection() {
    let s = TestServer::start().await;
    let front = TestServer {
        running: None,
        base: s.base.clone(),
        http: reqwest::Client::builder()
            .http2_prior_knowledge()
            .build()
            .unwrap(),
    };
    multiplexed_session(&front, &s).await;
}

/// RFC 8441: a WebSocket on an HTTP/2 stream (extended CONNECT with `:protocol = websocket`),
/// next to ordinary requests on the same connection. The server announces the extension in its
/// SETTINGS; the session connects, subscribes and receives like one on HTTP/1.1.
#[tokio::test]
async fn websocket_rides_an_http2_stream_with_extended_connect() {
    use bytes::{Buf, Bytes};
    let s = TestServer::start().await;
    let tcp = tokio::net::TcpStream::connect(s.running().addr)
        .await
        .unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.expect("h2c handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    // An ordinary request first: its answer means the server's SETTINGS have arrived.
    let mut client = client.ready().await.unwrap();
    let get = http::Request::get(format!("{}/health", s.base))
        .body(())
        .unwrap();
    let (health, _) = client.send_request(get, true).unwrap();
    assert_eq!(health.await.unwrap().status(), 200);
    assert!(client.is_extended_connect_protocol_enabled());

    let mut req = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(format!("{}/ws", s.base))
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap();
    req.extensions_mut()
        .insert(h2::ext::Protocol::from_static("websocket"));
    let mut client = client.ready().await.unwrap();
    let (response, mut send) = client.send_request(req, false).unwrap();
    let response = response.await.expect("CONNECT answered");
    assert_eq!(response.status(), 200);
    let mut recv = response.into_body();
    let mut buf = bytes::BytesMut::new();
    // Reads the next server text frame on the stream, skipping pings.
    let mut next = async || -> Value {
        loop {
            if buf.len() >= 2 && buf[1] & 0x7f < 126 {
                let len = usize::from(buf[1] & 0x7f);
                if buf.len() >= 2 + len {
                    let op = buf[0] & 0x0f;
                    buf.advance(2);
                    let payload = buf.split_to(len);
                    if op == 1 {
                        let v: Value = serde_json::from_slice(&payload).unwrap();
                        if v["op"] != "ping" {
                            return v;
                        }
                    }
                    continue;
                }
            }
            if buf.len() >= 4 && buf[1] & 0x7f == 126 {
                let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
                if buf.len() >= 4 + len {
                    buf.advance(4);
                    let payload = buf.split_to(len);
                    return serde_json::from_slice(&payload).unwrap();
                }
            }
            let chunk = tokio::time::timeout(WAIT, recv.data())
                .await
                .expect("data in time")
                .expect("stream open")
                .unwrap();
            let _ = recv.flow_control().release_capacity(chunk.len());
            buf.extend_from_slice(&chunk);
        }
    };
    let t = token("h2ws", &[], &[], 3600);
    let cmds = [
        json!({"id": 1, "op": "connect", "token": t}),
        json!({"id": 2, "op": "subscribe", "channel": "feed:h2ws"}),
    ];
    for cmd in &cmds {
        let frame = crate::ops::raw::masked(1, cmd.to_string().as_bytes());
        send.send_data(Bytes::from(frame), false).unwrap();
        let reply = next().await;
        assert_eq!(reply["id"], cmd["id"]);
        assert!(reply.get("error").is_none(), "{}", reply["error"]);
    }
    s.publish("feed:h2ws", json!({"over": "h2"})).await;
    let p = next().await;
    assert_eq!(
        (p["op"].as_str(), &p["data"]["over"]),
        (Some("pub"), &json!("h2"))
    );
}
