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

// Regression tests for what schemathesis (`scripts/schemathesis.sh`) found when it checked the
// server API against its own OpenAPI document.

async fn openapi(s: &TestServer) -> serde_json::Value {
    s.http
        .get(format!("{}/api/openapi.json", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Every operation documents the errors every call can get: 401 (the key is checked before any
/// handler) and, with a JSON body, 400 and 413; each as the JSON error body.
#[tokio::test]
async fn every_operation_documents_its_common_errors() {
    let s = TestServer::start().await;
    let doc = openapi(&s).await;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let mut want = vec!["200", "401"];
            if op.get("requestBody").is_some() {
                want.extend(["400", "413"]);
            }
            for status in want {
                let r = &op["responses"][status];
                assert!(r.is_object(), "{method} {path} does not document {status}");
                if status != "200" {
                    assert_eq!(
                        r["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
            // And the 401 is what a call without the key gets.
            let req = match method.as_str() {
                "get" => s.http.get(format!("{}{path}", s.base)),
                _ => s.http.post(format!("{}{path}", s.base)).json(&json!({})),
            };
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 401, "{method} {path}");
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "unauthorized", "{method} {path}");
        }
    }
    let detail = &doc["components"]["schemas"]["ErrorDetail"];
    assert_eq!(detail["required"], json!(["code", "message"]));
    let codes = detail["properties"]["code"]["enum"].as_array().unwrap();
    assert!(
        codes.contains(&json!("unrecoverable_position")),
        "{codes:?}"
    );
}

/// Names the document calls valid are accepted, and the ones it calls invalid refused: the
/// channel schema follows the grammar and the node's own length limit; empty channel lists and
/// user ids are out of the schema as they are out of the API.
#[tokio::test]
async fn channel_and_user_schemas_match_what_the_api_accepts() {
    let s = TestServer::with(|c| c.limits.max_channel_length = 40).await;
    let doc = openapi(&s).await;
    let schemas = &doc["components"]["schemas"];
    let channel = &schemas["Channel"];
    assert_eq!(channel["minLength"], 1);
    assert_eq!(
        channel["maxLength"], 40,
        "the node's limit, not the default"
    );
    assert!(channel["pattern"].as_str().unwrap().starts_with('^'));
    for op in ["PublishRequest", "HistoryRequest", "PresenceRequest"] {
        assert_eq!(
            schemas[op]["properties"]["channel"]["$ref"], "#/components/schemas/Channel",
            "{op}"
        );
    }
    let longest = format!("chat:{}", "a".repeat(35));
    for ok in ["a", "x_-.=@/+9", "chat:a#u1,u.2@x-_", longest.as_str()] {
        let (st, b) = s
            .api("/api/publish", json!({"channel": ok, "data": 1}))
            .await;
        assert_eq!(st, 200, "{ok}: {b}");
    }
    let too_long = format!("{longest}a");
    for bad in [
        "",
        ":a",
        "a b",
        "chat:",
        "a#",
        "a#u,",
        "é",
        too_long.as_str(),
    ] {
        let (st, b) = s
            .api("/api/publish", json!({"channel": bad, "data": 1}))
            .await;
        assert_eq!(st, 400, "{bad:?}: {b}");
        assert_eq!(b["error"]["code"], "invalid_channel", "{bad:?}");
    }
    let broadcast = &schemas["BroadcastRequest"]["properties"]["channels"];
    assert_eq!(
        (broadcast["minItems"].clone(), broadcast["maxItems"].clone()),
        (json!(1), json!(1000))
    );
    assert_eq!(
        schemas["DisconnectRequest"]["properties"]["user"]["minLength"],
        1
    );
    let (st, _) = s
        .api("/api/broadcast", json!({"channels": [], "data": 1}))
        .await;
    assert_eq!(st, 400);
    let (st, _) = s.api("/api/disconnect", json!({"user": ""})).await;
    assert_eq!(st, 400);
}

/// `data` is any JSON value, in requests and in history: the document no longer says `object`
/// (which made every publish of a number or string a "schema-violating request accepted").
#[tokio::test]
async fn data_is_any_json_value_in_the_document() {
    let s = TestServer::start().await;
    let doc = openapi(&s).await;
    let schemas = &doc["components"]["schemas"];
    for (schema, field) in [
        ("PublishRequest", "data"),
        ("BroadcastRequest", "data"),
        ("ApiPublication", "data"),
        ("Client", "info"),
    ] {
        let f = &schemas[schema]["properties"][field];
        assert!(
            f.is_object() && f.get("type").is_none(),
            "{schema}.{field}: {f}"
        );
    }
    for data in [
        json!(42),
        json!("text"),
        json!(null),
        json!([1, {"a": true}]),
    ] {
        s.publish("chat:any", data).await;
    }
    let (_, h) = s.api("/api/history", json!({"channel": "chat:any"})).await;
    let got: Vec<_> = h["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["data"].clone())
        .collect();
    assert_eq!(
        got,
        [
            json!(42),
            json!("text"),
            json!(null),
            json!([1, {"a": true}])
        ]
    );
}

/// Integers are what JSON Schema calls integers: `limit` takes the whole u32 range (the
/// document said int32) and `7.0` is an integer; fractions, negatives and values past the
/// documented maximum are 400.
#[tokio::test]
async fn history_integers_follow_json_schema() {
    let s = TestServer::start().await;
    let epoch = s.publish("chat:n", json!(1)).await["epoch"].clone();
    let doc = openapi(&s).await;
    let schemas = &doc["components"]["schemas"];
    let limit = &schemas["HistoryRequest"]["properties"]["limit"];
    assert_eq!(limit["maximum"], u64::from(u32::MAX));
    assert!(limit.get("format").is_none(), "{limit}");
    let offset = &schemas["Position"]["properties"]["offset"];
    assert_eq!(offset["maximum"], u64::MAX);
    for ok in [
        json!({"channel": "chat:n", "limit": 2_147_483_648_u64}),
        json!({"channel": "chat:n", "limit": u32::MAX}),
        json!({"channel": "chat:n", "limit": 26131.0}),
        json!({"channel": "chat:n", "since": {"offset": 0.0, "epoch": epoch}}),
        json!({"channel": "chat:n", "since": {"offset": u64::MAX, "epoch": epoch}, "limit": 0}),
    ] {
        let (st, b) = s.api("/api/history", ok.clone()).await;
        assert!(st == 200 || st == 409, "{ok}: {st} {b}");
    }
    for bad in [
        json!({"channel": "chat:n", "limit": 4_294_967_296_u64}),
        json!({"channel": "chat:n", "limit": 1.5}),
        json!({"channel": "chat:n", "limit": -1}),
        json!({"channel": "chat:n", "limit": "1"}),
        json!({"channel": "chat:n", "since": {"offset": -1, "epoch": epoch}}),
        json!({"channel": "chat:n", "since": {"offset": 1e20, "epoch": epoch}}),
    ] {
        let (st, b) = s.api("/api/history", bad.clone()).await;
        assert_eq!(st, 400, "{bad}: {b}");
        assert_eq!(b["error"]["code"], "bad_request", "{bad}");
    }
}

/// `pattern` of `GET /api/channels` is an optional query parameter (it was documented as a
/// required path parameter).
#[tokio::test]
async fn channels_pattern_is_an_optional_query_parameter() {
    let s = TestServer::start().await;
    let doc = openapi(&s).await;
    let params = doc["paths"]["/api/channels"]["get"]["parameters"]
        .as_array()
        .unwrap();
    assert_eq!(params.len(), 1);
    assert_eq!(params[0]["name"], "pattern");
    assert_eq!(params[0]["in"], "query");
    assert_eq!(params[0]["required"], false);
    for q in ["", "?pattern=chat:*", "?pattern=%FF%FE"] {
        let r = s
            .http
            .get(format!("{}/api/channels{q}", s.base))
            .header("X-API-Key", API_KEY)
            .send()
            .await
            .unwrap();
        assert!(
            r.status() == 200 || r.status() == 400,
            "{q}: {}",
            r.status()
        );
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(body.is_object(), "{q}: {body}");
    }
}

/// An `idempotency_key` is 1–256 printable ASCII characters, as documented: a key of 256
/// characters that are more than 256 bytes was valid by the document and refused by the node.
#[tokio::test]
async fn idempotency_key_is_printable_ascii() {
    let s = TestServer::start().await;
    let doc = openapi(&s).await;
    let key = &doc["components"]["schemas"]["PublishRequest"]["properties"]["idempotency_key"];
    assert_eq!(
        (key["minLength"].clone(), key["maxLength"].clone()),
        (json!(1), json!(256))
    );
    assert!(key["pattern"].is_string(), "{key}");
    let longest = "k".repeat(256);
    for ok in ["a", " ~", longest.as_str()] {
        for path in ["/api/publish", "/api/broadcast"] {
            let body = json!({"channel": "chat:k", "channels": ["chat:k"], "data": 1, "idempotency_key": ok});
            let body = strip_other(path, body);
            let (st, b) = s.api(path, body).await;
            assert_eq!(st, 200, "{path} {ok:?}: {b}");
        }
    }
    let too_long = "k".repeat(257);
    let wide = "é".repeat(200);
    for bad in ["", "tab\there", "ключ", wide.as_str(), too_long.as_str()] {
        for path in ["/api/publish", "/api/broadcast"] {
            let body = json!({"channel": "chat:k", "channels": ["chat:k"], "data": 1, "idempotency_key": bad});
            let body = strip_other(path, body);
            let (st, b) = s.api(path, body).await;
            assert_eq!(st, 400, "{path} {bad:?}: {b}");
            assert_eq!(b["error"]["code"], "bad_request");
        }
    }
}

/// Keeps `channel` for publish and `channels` for broadcast (both refuse unknown fields).
fn strip_other(path: &str, mut body: serde_json::Value) -> serde_json::Value {
    let other = if path == "/api/publish" {
        "channels"
    } else {
        "channel"
    };
    body.as_object_mut().unwrap().remove(other);
    body
}

/// Errors under /api are JSON even when no handler runs: a method the route does not serve is a
/// 405 with `Allow`, an unknown call a 404 (after the key check, like every call).
#[tokio::test]
async fn wrong_method_and_unknown_call_are_json_errors() {
    let s = TestServer::start().await;
    for (method, path, status, allow) in [
        (reqwest::Method::DELETE, "/api/publish", 405, Some("POST")),
        (reqwest::Method::PUT, "/api/info", 405, Some("GET,HEAD")),
        (reqwest::Method::GET, "/api/nope", 404, None),
        (reqwest::Method::POST, "/api/publish/extra", 404, None),
    ] {
        let r = s
            .http
            .request(method.clone(), format!("{}{path}", s.base))
            .header("X-API-Key", API_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{method} {path}");
        if let Some(allow) = allow {
            assert_eq!(r.headers()["allow"], allow, "{method} {path}");
        }
        assert_eq!(r.headers()["content-type"], "application/json");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "bad_request", "{method} {path}");
        let r = s
            .http
            .request(method.clone(), format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} {path} without the key");
    }
    // The document itself stays public.
    let r = s
        .http
        .get(format!("{}/api/openapi.json", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
