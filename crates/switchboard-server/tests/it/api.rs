//! The server API and its OpenAPI document.

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn idempotent_publish_returns_the_first_result() {
    let s = TestServer::start().await;
    let body = json!({"channel": "chat:i", "data": {"x": 1}, "idempotency_key": "order-7"});
    let (_, a) = s.api("/api/publish", body.clone()).await;
    let (_, b) = s.api("/api/publish", body).await;
    assert_eq!(a, b);
    let (_, h) = s.api("/api/history", json!({"channel": "chat:i"})).await;
    assert_eq!(h["publications"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn broadcast_history_presence_channels_info() {
    let s = TestServer::start().await;
    let mut ws = s.client("watcher").await;
    ws.request(json!({"op": "subscribe", "channel": "chat:one"}))
        .await;
    let (st, b) = s
        .api(
            "/api/broadcast",
            json!({"channels": ["chat:one", "chat:two", "bad name"], "data": {"hello": true}}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(b["results"][0]["offset"], 1);
    assert_eq!(b["results"][1]["offset"], 1);
    assert_eq!(b["results"][2]["error"]["code"], "invalid_channel");
    assert_eq!(ws.push("pub").await["data"], json!({"hello": true}));
    let (_, h) = s
        .api("/api/history", json!({"channel": "chat:one", "limit": 10}))
        .await;
    assert_eq!(h["publications"][0]["data"], json!({"hello": true}));
    assert_eq!(h["position"]["offset"], 1);
    let (_, p) = s.api("/api/presence", json!({"channel": "chat:one"})).await;
    assert_eq!(p["clients"][0]["user"], "watcher");
    let r = s
        .http
        .get(format!("{}/api/channels?pattern=chat:*", s.base))
        .header("X-API-Key", API_KEY)
        .send()
        .await
        .unwrap();
    let c: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        c["channels"],
        json!([{"channel": "chat:one", "subscribers": 1}])
    );
    let r = s
        .http
        .get(format!("{}/api/info", s.base))
        .header("X-API-Key", API_KEY)
        .send()
        .await
        .unwrap();
    let info: serde_json::Value = r.json().await.unwrap();
    assert_eq!(info["sessions"], 1);
    assert_eq!(info["engine"], "memory");
    assert_eq!(info["nodes"].as_array().unwrap().len(), 1);
}

/// The OpenAPI document is generated from the handlers; this checks every API route is in it
/// and that each documented path answers (no 404) — the two cannot drift.
#[tokio::test]
async fn openapi_document_matches_the_routes() {
    let s = TestServer::start().await;
    let doc: serde_json::Value = s
        .http
        .get(format!("{}/api/openapi.json", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let mut names: Vec<&String> = paths.keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "/api/broadcast",
            "/api/channels",
            "/api/disconnect",
            "/api/history",
            "/api/info",
            "/api/presence",
            "/api/publish"
        ]
    );
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let req = match method.as_str() {
                "get" => s.http.get(format!("{}{path}", s.base)),
                "post" => s.http.post(format!("{}{path}", s.base)).json(&json!({})),
                other => panic!("unexpected method {other}"),
            };
            let r = req.header("X-API-Key", API_KEY).send().await.unwrap();
            assert_ne!(r.status(), 404, "{method} {path} documented but not routed");
            assert_ne!(
                r.status(),
                405,
                "{method} {path} documented with the wrong method"
            );
        }
    }
    assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
}

#[tokio::test]
async fn health_ready_and_metrics() {
    let s = TestServer::start().await;
    let _ws = s.client("m").await;
    let h = s
        .http
        .get(format!("{}/health", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(h.status(), 200);
    let r = s
        .http
        .get(format!("{}/ready", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.publish("chat:m", json!(1)).await;
    let m = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("switchboard_sessions"), "{m}");
    assert!(m.contains("switchboard_publications_total"), "{m}");
}
