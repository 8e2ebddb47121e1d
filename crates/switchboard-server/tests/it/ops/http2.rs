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
