//! Issue 15: publication data nested up to the documented limit (64 levels) is accepted on every
//! publish path and comes back intact on every transport and from history; one level more is
//! refused at publish with `bad_request` (stored data is never parsed again, so nothing
//! downstream can fail on it).

use serde_json::{Value, json};

use crate::harness::*;
use crate::sse::Sse;

const LIMIT: usize = 64;

fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

async fn rest_publish(s: &TestServer, channel: &str, data: &str) -> (u16, Value) {
    let r = s
        .http
        .post(format!("{}/api/publish", s.base))
        .header("X-API-Key", API_KEY)
        .header("content-type", "application/json")
        .body(format!(r#"{{"channel":"{channel}","data":{data}}}"#))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn cmd_publish(s: &TestServer, t: &str, channel: &str, data: &str) -> (u16, Value) {
    let r = s
        .http
        .post(format!("{}/cmd", s.base))
        .bearer_auth(t)
        .body(format!(
            r#"{{"id":1,"op":"publish","channel":"{channel}","data":{data}}}"#
        ))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_depth_limit_holds_on_every_publish_path() {
    let s = TestServer::start().await;
    let t = token("u", &[], &["open:*"], 3600);

    let (st, body) = rest_publish(&s, "open:d", &nested(LIMIT + 1)).await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["error"]["code"], "bad_request");
    assert!(body["error"]["message"].as_str().unwrap().contains("64"));
    let (st, body) = rest_publish(&s, "open:d", &nested(LIMIT)).await;
    assert_eq!(st, 200, "{body}");

    let (st, body) = cmd_publish(&s, &t, "open:d", &nested(LIMIT + 1)).await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["error"]["code"], "bad_request");
    let (st, body) = cmd_publish(&s, &t, "open:d", &nested(LIMIT)).await;
    assert_eq!(st, 200, "{body}");

    let mut ws = s.ws().await;
    assert!(ws.connect(&t).await.get("ok").is_some());
    for (depth, ok) in [(LIMIT + 1, false), (30_000, false), (LIMIT, true)] {
        ws.send_text(&format!(
            r#"{{"id":{depth},"op":"publish","channel":"open:d","data":{}}}"#,
            nested(depth)
        ))
        .await;
        let r = ws.recv().await.expect("reply");
        assert_eq!(r["id"], depth, "{r}");
        assert_eq!(r.get("ok").is_some(), ok, "depth {depth}: {r}");
        if !ok {
            assert_eq!(r["error"]["code"], "bad_request");
        }
    }
    let (_, h) = s.api("/api/history", json!({"channel": "open:d"})).await;
    assert_eq!(h["publications"].as_array().unwrap().len(), 3, "{h}");
}

#[tokio::test]
async fn data_at_the_limit_reaches_every_transport_and_history() {
    let s = TestServer::start().await;
    let t = token("u", &[], &[], 3600);
    let data = nested(LIMIT);
    let expected: Value = serde_json::from_str(&data).unwrap();

    let mut ws = s.client("w").await;
    ws.request(json!({"op": "subscribe", "channel": "chat:deep"}))
        .await;
    let mut sse = Sse::open(&s, "channel=chat:deep", Some(&t), None)
        .await
        .unwrap();
    sse.next_of("welcome").await;
    let first = s.get_json("/poll?channel=chat:deep", &t).await;
    let cursor = first["cursor"].as_str().unwrap().to_owned();

    let (st, body) = rest_publish(&s, "chat:deep", &data).await;
    assert_eq!(st, 200, "{body}");

    assert_eq!(ws.push("pub").await["data"], expected, "websocket push");
    assert_eq!(sse.next_of("message").await.json()["data"], expected, "sse");
    let r = s
        .http
        .get(format!("{}/poll?channel=chat:deep&since={cursor}", s.base))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let polled: Value = r.json().await.unwrap();
    assert_eq!(polled["publications"][0]["data"], expected, "poll");
    assert_ne!(polled["cursor"], json!(cursor), "the poll cursor moved on");

    let (st, h) = s.api("/api/history", json!({"channel": "chat:deep"})).await;
    assert_eq!(st, 200);
    assert_eq!(h["publications"][0]["data"], expected, "server API history");
    let h = ws
        .request(json!({"op": "history", "channel": "chat:deep"}))
        .await;
    assert_eq!(h["ok"]["publications"][0]["data"], expected, "history");
    let mut resumed = s.client("w2").await;
    let r = resumed
        .request(json!({"op": "subscribe", "channel": "chat:deep",
            "since": {"offset": 0, "epoch": body["epoch"]}}))
        .await;
    assert_eq!(r["ok"]["publications"][0]["data"], expected, "recovery");
}
