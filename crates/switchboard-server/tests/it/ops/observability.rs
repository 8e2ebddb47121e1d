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

/// The metric names a PromQL expression reads: identifiers that are neither functions,
/// aggregation clauses (`by (...)`), keywords, label matchers, ranges nor dashboard variables.
fn promql_metrics(expr: &str) -> Vec<String> {
    const KEYWORDS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "inf",
        "nan",
    ];
    // Drop label matchers, ranges and quoted strings first: what they hold is no metric.
    let mut plain = String::new();
    let mut close = None;
    let mut quoted = false;
    for c in expr.chars() {
        match (close, quoted, c) {
            (_, true, '"') => quoted = false,
            (_, true, _) => {}
            (_, false, '"') => quoted = true,
            (None, false, '{') => close = Some('}'),
            (None, false, '[') => close = Some(']'),
            (Some(end), false, c) if c == end => close = None,
            (Some(_), false, _) => {}
            (None, false, c) => plain.push(c),
        }
    }
    let mut out = Vec::new();
    let mut rest = plain.as_str();
    let mut skip_group = false;
    while let Some(start) = rest.find(|c: char| c.is_ascii_alphabetic() || c == '_' || c == '$') {
        let before = &rest[..start];
        rest = &rest[start..];
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '$'))
            .unwrap_or(rest.len());
        let word = &rest[..len];
        rest = &rest[len..];
        if skip_group {
            // Label names inside `by (...)` / `without (...)`.
            if before.contains(')') {
                skip_group = false;
            } else {
                continue;
            }
        }
        // Digits glued to a number (`1e3`, `0.99`) are part of it.
        if before.ends_with(|c: char| c.is_ascii_digit() || c == '.') {
            continue;
        }
        let next = rest.trim_start();
        if word == "by" || word == "without" || word == "on" || word == "ignoring" {
            skip_group = true;
            continue;
        }
        // A function, or an aggregation with its clause first (`sum by (x) (...)`).
        let next_word: String = next
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let called = next.starts_with('(') || next_word == "by" || next_word == "without";
        if word.starts_with('$') || called || KEYWORDS.contains(&word) {
            continue;
        }
        out.push(word.to_owned());
    }
    out
}

/// Every PromQL expression of the dashboard's panels (rows included), with the panel title.
fn dashboard_exprs(v: &Value, out: &mut Vec<(String, String)>) {
    for p in v["panels"].as_array().into_iter().flatten() {
        let title = p["title"].as_str().unwrap_or_default();
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(e) = t["expr"].as_str() {
                out.push((title.to_owned(), e.to_owned()));
            }
        }
        dashboard_exprs(p, out);
    }
}

#[test]
fn promql_metric_names_are_extracted() {
    assert_eq!(
        promql_metrics(
            r#"histogram_quantile(0.99, sum by (le, op) (rate(switchboard_engine_duration_seconds_bucket{instance=~"$node", op!="x"}[$__rate_interval])))"#
        ),
        ["switchboard_engine_duration_seconds_bucket"]
    );
    assert_eq!(
        promql_metrics(
            r#"sum by (instance) (rate(a_total{code="4002"}[5m])) * 60 / on (instance) group_left b > bool 0"#
        ),
        ["a_total", "b"]
    );
    assert_eq!(promql_metrics("sum(x) without (job) + 1e3"), ["x"]);
}

/// The Grafana dashboard in deploy/grafana only queries metrics that a node exposes: a renamed
/// metric (or a typo in a panel) fails here instead of drawing an empty panel in production.
#[tokio::test]
async fn grafana_dashboard_queries_only_metrics_the_node_exposes() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/grafana/switchboard.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let dash: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert_eq!(dash["__inputs"][0]["name"], "DS_PROMETHEUS");
    let vars = dash["templating"]["list"].as_array().unwrap();
    let node = vars
        .iter()
        .find(|v| v["name"] == "node")
        .expect("a node variable");
    assert!(
        node["definition"].as_str().unwrap().contains("instance"),
        "{node}"
    );
    let mut exprs = Vec::new();
    dashboard_exprs(&dash, &mut exprs);
    let mut wanted = std::collections::BTreeMap::<String, String>::new();
    for (title, e) in &exprs {
        assert!(
            e.contains(r#"instance=~"$node""#),
            "panel `{title}` ignores the node selection: {e}"
        );
        let names = promql_metrics(e);
        assert!(!names.is_empty(), "panel `{title}` reads no metric: {e}");
        for n in names {
            wanted.entry(n).or_insert_with(|| title.clone());
        }
    }
    assert!(wanted.len() >= 15, "{wanted:?}");

    // Traffic that creates the lazily registered series: a WebSocket session (handshake,
    // commands, engine calls), an SSE stream, a server-side disconnect, and a failed TLS
    // handshake on a second node (the recorder is the process's, shared by both nodes).
    let s = TestServer::start().await;
    let mut ws = s.client("dash1").await;
    let r = ws
        .request(json!({"op": "subscribe", "channel": "open:dashboard"}))
        .await;
    assert!(r.get("ok").is_some(), "{r}");
    let r = ws
        .request(json!({"op": "publish", "channel": "open:dashboard", "data": {"n": 1}}))
        .await;
    assert!(r.get("ok").is_some(), "{r}");
    ws.push("pub").await;
    let t = token("dash2", &[], &[], 3600);
    let _sse = crate::sse::Sse::open(&s, "channel=open:dashboard", Some(&t), None)
        .await
        .unwrap();
    s.publish("open:dashboard", json!({"n": 2})).await;
    ws.push("pub").await;
    let mut gone = s.client("dash3").await;
    s.api(
        "/api/disconnect",
        json!({"user": "dash3", "reconnect": true}),
    )
    .await;
    assert_eq!(gone.closed().await, 4006);

    let dir = super::temp_dir("dashboard-tls");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let tls = TestServer::with(|c| {
        c.tls_cert = Some(cert_path.clone());
        c.tls_key = Some(key_path.clone());
    })
    .await;
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(tls.running().addr)
            .await
            .unwrap();
        // Plain HTTP where a ClientHello belongs.
        tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        let _ = tokio::time::timeout(WAIT, tcp.read(&mut buf)).await;
    }

    let scrape = || async {
        s.http
            .get(format!("{}/metrics", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let exposed = |body: &str, name: &str| {
        let typed = |n: &str| body.lines().any(|l| l.starts_with(&format!("# TYPE {n} ")));
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix));
        has(body, name, "") || typed(name) || base.is_some_and(typed)
    };
    eventually("the TLS handshake failure is counted", || async {
        has(
            &scrape().await,
            "switchboard_tls_handshake_failures_total",
            "",
        )
    })
    .await;
    let body = scrape().await;
    let missing: Vec<_> = wanted
        .iter()
        .filter(|(name, _)| !exposed(&body, name))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics that /metrics does not expose (metric, panel): {missing:?}\n{body}"
    );
    let _ = std::fs::remove_dir_all(dir);
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
