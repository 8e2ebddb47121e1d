//! Observability: the Prometheus names operators alert on exist after some traffic, logs carry
//! request and session ids, and no token, ticket or API key ever reaches a log line.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::harness::*;

/// Whether some sample line of `body` is metric `name` with `labels` among its labels.
fn has(body: &str, name: &str, labels: &str) -> bool {
    body.lines().any(|l| {
        !l.starts_with('#')
            && (l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{")))
            && l.contains(labels)
    })
}

#[tokio::test]
async fn metrics_expose_sessions_queues_latencies_and_errors_after_traffic() {
    let s = TestServer::start().await;
    let mut ws = s.client("m1").await;
    let r = ws
        .request(json!({"op": "subscribe", "channel": "open:metrics"}))
        .await;
    assert!(r.get("ok").is_some());
    let r = ws
        .request(json!({"op": "publish", "channel": "open:metrics", "data": {"n": 1}}))
        .await;
    assert!(r.get("ok").is_some(), "{r}");
    ws.push("pub").await;
    let t = token("m2", &[], &[], 3600);
    let _sse = crate::sse::Sse::open(&s, "channel=open:metrics", Some(&t), None)
        .await
        .unwrap();
    s.publish("open:metrics", json!({"n": 2})).await;
    ws.push("pub").await;
    let mut gone = s.client("m3").await;
    s.api("/api/disconnect", json!({"user": "m3", "reconnect": true}))
        .await;
    assert_eq!(gone.closed().await, 4006);

    let r = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let body = r.text().await.unwrap();
    let expected: &[(&str, &str)] = &[
        ("switchboard_sessions", r#"transport="ws""#),
        ("switchboard_sessions", r#"transport="sse""#),
        ("switchboard_subscriptions", ""),
        ("switchboard_channels", ""),
        ("switchboard_publications_total", ""),
        ("switchboard_deliveries_total", ""),
        ("switchboard_disconnects_total", r#"code="4006""#),
        ("switchboard_disconnects_total", r#"code="4002""#),
        ("switchboard_outbound_queue_bytes", ""),
        ("switchboard_outbound_queue_bytes_max", ""),
        (
            "switchboard_command_duration_seconds_bucket",
            r#"op="publish""#,
        ),
        (
            "switchboard_command_duration_seconds_count",
            r#"op="subscribe""#,
        ),
        (
            "switchboard_engine_duration_seconds_bucket",
            r#"op="publish""#,
        ),
        (
            "switchboard_engine_duration_seconds_count",
            r#"op="history""#,
        ),
        ("switchboard_engine_failures_total", r#"op="publish""#),
        ("switchboard_engine_errors_total", r#"op="publish""#),
        (
            "switchboard_http_request_duration_seconds_bucket",
            r#"route="/api/publish""#,
        ),
        ("switchboard_http_responses_total", r#"status="200""#),
        ("switchboard_connections_open", ""),
        ("switchboard_connections_rejected_total", r#"limit="ip""#),
        ("switchboard_header_timeouts_total", ""),
    ];
    let missing: Vec<_> = expected.iter().filter(|(n, l)| !has(&body, n, l)).collect();
    assert!(missing.is_empty(), "missing {missing:?} in\n{body}");
    // Labels stay bounded: no channel or user names.
    assert!(
        !body.contains("open:metrics") && !body.contains("m1"),
        "{body}"
    );
}

/// Captures what the subscriber writes, until `stop`.
#[derive(Clone)]
struct Captured(Arc<Mutex<Option<Vec<u8>>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(v) = self.0.lock().unwrap().as_mut() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn start() -> Self {
        Self(Arc::new(Mutex::new(Some(Vec::new()))))
    }

    fn text(&self) -> String {
        let v = self.0.lock().unwrap();
        String::from_utf8_lossy(v.as_deref().unwrap_or_default()).into_owned()
    }

    /// Stops capturing (the global subscriber outlives the test).
    fn stop(&self) {
        *self.0.lock().unwrap() = None;
    }
}

// The subscriber is the process's global one: a thread-local default (`set_default`) misses
// events whose callsite another test thread registers at the same moment. Other tests' lines
// land in the capture too while this test runs; they must not hold secrets either.
#[tokio::test]
async fn logs_carry_request_and_session_ids_and_never_secrets() {
    let logs = Captured::start();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_current_span(true)
        .with_span_list(true)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber)
        .expect("no other test installs a global subscriber");

    let s = TestServer::start().await;
    let mut secrets: Vec<String> = vec![API_KEY.into(), SECRET.into()];
    let bearer = token("logged", &[], &[], 3600);
    secrets.push(bearer.clone());

    // Tickets for a WebSocket and an SSE stream.
    let mut tickets = Vec::new();
    for _ in 0..2 {
        let r: Value = s
            .http
            .post(format!("{}/auth/ticket", s.base))
            .bearer_auth(&bearer)
            .header("x-request-id", "req-ticket-1")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        tickets.push(r["ticket"].as_str().unwrap().to_owned());
    }
    secrets.extend(tickets.iter().cloned());
    let mut ws = Ws::open(&format!("{}?ticket={}", s.ws_url(), tickets[0])).await;
    let r = ws
        .request(json!({"op": "subscribe", "channel": "chat:logs"}))
        .await;
    assert!(r.get("ok").is_some(), "{r}");
    let _sse = crate::sse::Sse::open(
        &s,
        &format!("channel=chat:logs&ticket={}", tickets[1]),
        None,
        None,
    )
    .await
    .unwrap();
    // A token in the connect frame, a refresh, a bad token.
    let mut ws2 = s.ws().await;
    let hello = ws2.connect(&bearer).await;
    let client = hello["ok"]["client"].as_str().unwrap().to_owned();
    let fresh = token("logged", &[], &[], 7200);
    secrets.push(fresh.clone());
    ws2.request(json!({"op": "refresh", "token": fresh})).await;
    let forged = format!("{bearer}x");
    secrets.push(forged.clone());
    let r = s
        .http
        .post(format!("{}/auth/ticket", s.base))
        .bearer_auth(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // API calls with the right and a wrong key; the caller's request id is echoed.
    let r = s
        .http
        .post(format!("{}/api/publish", s.base))
        .header("X-API-Key", API_KEY)
        .header("x-request-id", "req-publish-42")
        .json(&json!({"channel": "chat:logs", "data": {"n": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "req-publish-42");
    let wrong = "wrong-api-key-0123456789";
    secrets.push(wrong.into());
    let r = s
        .http
        .post(format!("{}/api/publish", s.base))
        .header("X-API-Key", wrong)
        .json(&json!({"channel": "chat:logs", "data": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Without a caller's id, a fresh one.
    let r = s
        .http
        .get(format!("{}/health", s.base))
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(
        id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    ws.push("pub").await;
    s.api(
        "/api/disconnect",
        json!({"user": "logged", "reconnect": true}),
    )
    .await;
    assert_eq!(ws2.closed().await, 4006);
    eventually("the session's close is logged", || async {
        logs.text().contains("session closed")
    })
    .await;
    let closed: Vec<String> = logs
        .text()
        .lines()
        .filter(|l| l.contains("session closed"))
        .map(String::from)
        .collect();
    assert!(
        closed
            .iter()
            .any(|l| l.contains(&client) && l.contains("4006")),
        "session ends are logged with their code: {closed:?}"
    );

    let text = logs.text();
    logs.stop();
    assert!(text.contains("req-publish-42"), "request ids are logged");
    assert!(text.contains(&id), "generated request ids are logged");
    assert!(text.contains(&client), "session ids are logged");
    for line in text.lines() {
        serde_json::from_str::<Value>(line).expect("one JSON object per line");
    }
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a secret reached the logs: {secret}"
        );
    }
    // The signature part of a token alone must not appear either.
    let sig = bearer.rsplit('.').next().unwrap();
    assert!(!text.contains(sig));
}
