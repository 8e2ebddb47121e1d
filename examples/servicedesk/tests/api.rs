//! The app end to end in-process: REST calls change requests in SQLite, and real WebSocket
//! clients (tokens from `/app/token`) receive the pushes on the customer's channel, the
//! employee's inbox and the dashboard. Bad input gets JSON errors.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use servicedesk::{Running, Settings};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const WAIT: Duration = Duration::from_secs(10);

struct App {
    running: Running,
    http: reqwest::Client,
    base: String,
}

impl App {
    async fn start() -> Self {
        let running = servicedesk::start(Settings::for_tests()).await.unwrap();
        let base = format!("http://{}", running.addr);
        Self {
            running,
            http: reqwest::Client::new(),
            base,
        }
    }

    /// Calls the REST API as `user` (the demo cookie); `None` for no identity.
    async fn call(
        &self,
        method: &str,
        path: &str,
        user: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(u) = user {
            req = req.header("Cookie", format!("sd_user={u}"));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
        (status, json)
    }

    async fn ok(&self, method: &str, path: &str, user: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method, path, Some(user), body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path} as {user}: {status} {v}"
        );
        v
    }

    /// A WebSocket session for `user`, connected with a token from `/app/token`.
    async fn ws(&self, user: &str) -> Ws {
        let token = self.ok("GET", "/app/token", user, None).await["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let url = format!("ws://{}/ws", self.running.addr);
        let (stream, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut ws = Ws {
            stream,
            next_id: 1,
            pubs: Vec::new(),
        };
        let reply = ws.command(json!({"op": "connect", "token": token})).await;
        assert_eq!(reply["ok"]["user"], user, "{reply}");
        ws
    }
}

struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// Publications that arrived while waiting for a reply.
    pubs: Vec<Value>,
}

impl Ws {
    async fn recv(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("nothing arrived in time")
                .expect("socket closed")
                .unwrap();
            if let Message::Text(t) = msg {
                return serde_json::from_str(&t).unwrap();
            }
        }
    }

    /// Sends a command and returns its reply (keeping pushes that arrive meanwhile).
    async fn command(&mut self, mut cmd: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        cmd["id"] = id.into();
        self.stream
            .send(Message::text(cmd.to_string()))
            .await
            .unwrap();
        loop {
            let m = self.recv().await;
            if m["id"] == id {
                return m;
            }
            if m["op"] == "pub" {
                self.pubs.push(m);
            }
        }
    }

    async fn subscribe(&mut self, channel: &str) -> Value {
        let reply = self
            .command(json!({"op": "subscribe", "channel": channel}))
            .await;
        assert!(reply["ok"].is_object(), "subscribe {channel}: {reply}");
        reply["ok"].clone()
    }

    /// The next publication on `channel`.
    async fn next_on(&mut self, channel: &str) -> Value {
        if let Some(i) = self.pubs.iter().position(|p| p["channel"] == channel) {
            return self.pubs.remove(i);
        }
        loop {
            let m = self.recv().await;
            if m["op"] == "pub" {
                if m["channel"] == channel {
                    return m;
                }
                self.pubs.push(m);
            }
        }
    }
}

fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], want_code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_changes_are_pushed_to_the_right_channels() {
    let app = App::start().await;

    let mut alice = app.ws("alice").await;
    let alice_sub = alice.subscribe("requests:customer#alice").await;
    let mut bob = app.ws("bob").await;
    bob.subscribe("notifications:inbox#bob").await;
    bob.subscribe("requests:assigned#bob").await;
    let mut admin = app.ws("admin").await;
    admin.subscribe("dashboard:counts").await;
    admin.subscribe("requests:all").await;

    // Tokens carry personal claims only: nobody reads another user's channels.
    for channel in [
        "notifications:inbox#bob",
        "requests:all",
        "requests:customer#dave",
    ] {
        let r = alice
            .command(json!({"op": "subscribe", "channel": channel}))
            .await;
        assert_eq!(r["error"]["code"], "permission_denied", "{channel}: {r}");
    }
    let r = bob
        .command(json!({"op": "subscribe", "channel": "requests:customer#alice"}))
        .await;
    assert_eq!(r["error"]["code"], "permission_denied", "{r}");

    // The customer files a request: plain REST.
    let (status, created) = app
        .call(
            "POST",
            "/api/requests",
            Some("alice"),
            Some(json!({"title": "  Laptop will not boot ", "category": "it", "priority": "high"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["title"], "Laptop will not boot");
    assert_eq!(created["status"], "in_review");
    let id = created["id"].as_i64().unwrap();

    let p = alice.next_on("requests:customer#alice").await;
    assert_eq!(p["data"]["event"], "created");
    assert_eq!(p["data"]["request"], created);
    let first_offset = p["offset"].as_u64().unwrap();
    let p = admin.next_on("requests:all").await;
    assert_eq!(p["data"]["request"]["id"], id);
    let c = admin.next_on("dashboard:counts").await;
    assert_eq!(c["data"]["counts"]["open"], 1, "{c}");
    assert_eq!(c["data"]["counts"]["unassigned"], 1, "{c}");

    // Assigning pops a notification in the employee's inbox.
    let assigned = app
        .ok(
            "POST",
            &format!("/api/requests/{id}/assign"),
            "admin",
            Some(json!({"assignee": "bob"})),
        )
        .await;
    assert_eq!(assigned["assignee"], "bob");
    let n = bob.next_on("notifications:inbox#bob").await;
    assert_eq!(n["data"]["type"], "notification");
    assert_eq!(n["data"]["unread"], 1);
    assert_eq!(n["data"]["notification"]["request_id"], id);
    assert!(
        n["data"]["notification"]["text"]
            .as_str()
            .unwrap()
            .contains("Laptop will not boot"),
        "{n}"
    );
    let p = bob.next_on("requests:assigned#bob").await;
    assert_eq!(p["data"]["request"]["assignee"], "bob");
    let p = alice.next_on("requests:customer#alice").await;
    assert_eq!(
        (&p["data"]["event"], &p["data"]["request"]["version"]),
        (&json!("assigned"), &json!(2))
    );
    let c = admin.next_on("dashboard:counts").await;
    assert_eq!(c["data"]["counts"]["unassigned"], 0, "{c}");
    let (_, inbox) = app
        .call("GET", "/api/notifications", Some("bob"), None)
        .await;
    assert_eq!(inbox["unread"], 1);

    // The admin moves it along; the customer's channel and the dashboard follow each step.
    for (step, open, version) in [("in_progress", 1, 3), ("completed", 0, 4)] {
        let r = app
            .ok(
                "POST",
                &format!("/api/requests/{id}/status"),
                "admin",
                Some(json!({"status": step})),
            )
            .await;
        assert_eq!(r["status"], step);
        let p = alice.next_on("requests:customer#alice").await;
        assert_eq!(p["data"]["event"], "status");
        assert_eq!(p["data"]["request"]["status"], step);
        assert_eq!(p["data"]["request"]["version"], version);
        let c = admin.next_on("dashboard:counts").await;
        assert_eq!(c["data"]["counts"]["open"], open, "{c}");
        assert_eq!(c["data"]["counts"][step], 1, "{c}");
        let p = bob.next_on("requests:assigned#bob").await;
        assert_eq!(p["data"]["request"]["status"], step);
    }

    // Resume: a new session presenting the first position gets exactly what followed.
    let mut again = app.ws("alice").await;
    let r = again
        .command(json!({
            "op": "subscribe",
            "channel": "requests:customer#alice",
            "since": {"offset": first_offset, "epoch": alice_sub["position"]["epoch"]},
        }))
        .await;
    assert_eq!(r["ok"]["recovered"], true, "{r}");
    let steps: Vec<_> = r["ok"]["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["data"]["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(steps, ["assigned", "status", "status"]);

    // REST reads agree with what was pushed.
    let (_, list) = app.call("GET", "/api/requests", Some("alice"), None).await;
    assert_eq!(list["requests"][0]["status"], "completed");
    let (_, list) = app.call("GET", "/api/requests", Some("dave"), None).await;
    assert_eq!(list["requests"], json!([]));
    let (_, d) = app.call("GET", "/api/dashboard", Some("bob"), None).await;
    assert_eq!(d["counts"]["completed"], 1);

    // The node's own server API sits in the same router, behind its key.
    let key = app.running.state.settings.api_key.clone();
    let info = app
        .http
        .get(format!("{}/api/info", app.base))
        .header("X-API-Key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 200);
    let (status, body) = app.call("GET", "/api/info", Some("admin"), None).await;
    assert_error(status, &body, 401, "unauthorized");

    app.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_json_errors() {
    let app = App::start().await;
    let (_, r) = app
        .call(
            "POST",
            "/api/requests",
            Some("alice"),
            Some(json!({"title": "Printer jam"})),
        )
        .await;
    let id = r["id"].as_i64().unwrap();
    let status_path = format!("/api/requests/{id}/status");
    let assign_path = format!("/api/requests/{id}/assign");
    let move_to = |s: &str| Some(json!({"status": s}));

    // Unknown requests.
    for path in ["/api/requests/999/status", "/api/requests/abc/status"] {
        let (s, b) = app
            .call("POST", path, Some("admin"), move_to("in_progress"))
            .await;
        assert_error(s, &b, 404, "not_found");
    }
    let (s, b) = app
        .call("GET", "/api/requests/999", Some("admin"), None)
        .await;
    assert_error(s, &b, 404, "not_found");
    let (s, b) = app
        .call(
            "POST",
            "/api/requests/999/assign",
            Some("admin"),
            Some(json!({"assignee": "bob"})),
        )
        .await;
    assert_error(s, &b, 404, "not_found");
    // Someone else's request is not found either (no hint that it exists).
    let (s, b) = app
        .call("GET", &format!("/api/requests/{id}"), Some("dave"), None)
        .await;
    assert_error(s, &b, 404, "not_found");

    // Transitions the workflow does not allow.
    for to in ["completed", "in_review"] {
        let (s, b) = app
            .call("POST", &status_path, Some("admin"), move_to(to))
            .await;
        assert_error(s, &b, 409, "invalid_transition");
    }
    app.ok("POST", &status_path, "admin", move_to("in_progress"))
        .await;
    let (s, b) = app
        .call("POST", &status_path, Some("admin"), move_to("in_progress"))
        .await;
    assert_error(s, &b, 409, "invalid_transition");
    app.ok("POST", &status_path, "admin", move_to("completed"))
        .await;
    let (s, b) = app
        .call(
            "POST",
            &assign_path,
            Some("admin"),
            Some(json!({"assignee": "bob"})),
        )
        .await;
    assert_error(s, &b, 409, "invalid_transition");

    // Malformed bodies and values.
    let (s, b) = app
        .call("POST", &status_path, Some("admin"), move_to("done"))
        .await;
    assert_error(s, &b, 400, "bad_request");
    let (s, b) = app
        .call(
            "POST",
            &status_path,
            Some("admin"),
            Some(json!({"state": 1})),
        )
        .await;
    assert_error(s, &b, 400, "bad_request");
    let res = app
        .http
        .post(format!("{}/api/requests", app.base))
        .header("Cookie", "sd_user=alice")
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["error"]["code"], "bad_request");
    for body in [
        json!({"title": "x"}),
        json!({"title": "Valid title", "category": "cars"}),
        json!({"title": "Valid title", "priority": "urgent!!"}),
        json!({"title": "y".repeat(121)}),
    ] {
        let (s, b) = app
            .call("POST", "/api/requests", Some("alice"), Some(body))
            .await;
        assert_error(s, &b, 400, "bad_request");
    }
    let (s, b) = app
        .call(
            "POST",
            "/api/requests",
            Some("alice"),
            Some(json!({"title": "Second one"})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let second = b["id"].as_i64().unwrap();
    let (s, b) = app
        .call(
            "POST",
            &format!("/api/requests/{second}/assign"),
            Some("admin"),
            Some(json!({"assignee": "alice"})),
        )
        .await;
    assert_error(s, &b, 400, "bad_request");

    // Who may do what.
    let (s, b) = app.call("GET", "/api/requests", None, None).await;
    assert_error(s, &b, 401, "unauthorized");
    let (s, b) = app.call("GET", "/app/token", None, None).await;
    assert_error(s, &b, 401, "unauthorized");
    let (s, b) = app
        .call("GET", "/api/requests", Some("mallory"), None)
        .await;
    assert_error(s, &b, 401, "unauthorized");
    let second_status = format!("/api/requests/{second}/status");
    let (s, b) = app
        .call(
            "POST",
            &second_status,
            Some("alice"),
            move_to("in_progress"),
        )
        .await;
    assert_error(s, &b, 403, "permission_denied");
    let (s, b) = app
        .call(
            "POST",
            &format!("/api/requests/{second}/assign"),
            Some("bob"),
            Some(json!({"assignee": "bob"})),
        )
        .await;
    assert_error(s, &b, 403, "permission_denied");
    let (s, b) = app
        .call(
            "POST",
            "/api/requests",
            Some("admin"),
            Some(json!({"title": "From admin"})),
        )
        .await;
    assert_error(s, &b, 403, "permission_denied");
    // An employee moves requests assigned to them, not others'.
    app.ok(
        "POST",
        &format!("/api/requests/{second}/assign"),
        "admin",
        Some(json!({"assignee": "carol"})),
    )
    .await;
    let (s, b) = app
        .call("POST", &second_status, Some("bob"), move_to("in_progress"))
        .await;
    assert_error(s, &b, 404, "not_found");
    let r = app
        .ok("POST", &second_status, "carol", move_to("in_progress"))
        .await;
    assert_eq!(r["status"], "in_progress");
    let (s, b) = app
        .call(
            "POST",
            &format!("/api/requests/{second}/assign"),
            Some("admin"),
            Some(json!({"assignee": "carol"})),
        )
        .await;
    assert_error(s, &b, 409, "invalid_transition");

    app.running.shutdown().await;
}
