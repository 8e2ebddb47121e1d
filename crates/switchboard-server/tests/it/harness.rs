//! A small test language: `TestServer::start()`, a raw WebSocket test client, and waiting for
//! conditions instead of sleeping.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use switchboard_core::NamespaceConfig;
use switchboard_core::auth::{Claims, mint_hs256, unix_now};
use switchboard_server::{Config, Running};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const API_KEY: &str = "test-api-key";
pub const SECRET: &str = "test-secret";
/// How long any single expectation may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub running: Option<Running>,
    pub base: String,
    pub http: reqwest::Client,
}

pub fn base_config() -> Config {
    let mut c = Config {
        listen: "127.0.0.1:0".into(),
        api_key: Some(API_KEY.into()),
        ..Default::default()
    };
    c.jwt.secret = Some(SECRET.into());
    c.namespaces
        .insert("default".into(), NamespaceConfig::development());
    c.namespaces
        .insert("chat".into(), NamespaceConfig::development_chat());
    c.namespaces.insert(
        "big".into(),
        NamespaceConfig {
            history_size: 10_000,
            history_ttl: Duration::from_secs(600),
            ..NamespaceConfig::development()
        },
    );
    c.namespaces.insert(
        "open".into(),
        NamespaceConfig {
            allow_publish: true,
            ..NamespaceConfig::development()
        },
    );
    c.namespaces.insert(
        "closed".into(),
        NamespaceConfig {
            allow_subscribe: false,
            ..NamespaceConfig::development()
        },
    );
    c.namespaces.insert(
        "live".into(),
        NamespaceConfig {
            history_size: 0,
            presence: false,
            join_leave: false,
            ..NamespaceConfig::default()
        },
    );
    c
}

impl TestServer {
    pub async fn start() -> Self {
        Self::with(|_| {}).await
    }

    pub async fn with(f: impl FnOnce(&mut Config)) -> Self {
        let mut c = base_config();
        f(&mut c);
        let running = Running::start(c, false).await.expect("server starts");
        let base = format!("http://{}", running.addr);
        Self {
            running: Some(running),
            base,
            http: reqwest::Client::new(),
        }
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("running")
    }

    pub fn node(&self) -> &switchboard_core::Node {
        self.running().switchboard.node()
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.running().addr)
    }

    pub async fn ws(&self) -> Ws {
        Ws::open(&self.ws_url()).await
    }

    /// A connected client for `user` allowed everything in `channels`/`publish`.
    pub async fn client(&self, user: &str) -> Ws {
        let mut ws = self.ws().await;
        let r = ws.connect(&token(user, &[], &[], 3600)).await;
        assert!(r.get("ok").is_some(), "{r}");
        ws
    }

    pub async fn api(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("X-API-Key", API_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// `GET path` with a bearer token, as JSON.
    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A connection ticket for `token` (`POST /auth/ticket`).
    pub async fn ticket(&self, token: &str) -> String {
        let r: Value = self
            .http
            .post(format!("{}/auth/ticket", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["ticket"].as_str().expect("a ticket").to_owned()
    }

    pub async fn publish(&self, channel: &str, data: Value) -> Value {
        let (status, body) = self
            .api("/api/publish", json!({"channel": channel, "data": data}))
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

pub fn claims(user: &str, channels: &[&str], publish: &[&str], ttl: i64) -> Claims {
    Claims {
        sub: user.into(),
        exp: (unix_now() as i64 + ttl) as u64,
        channels: channels.iter().map(|s| s.to_string()).collect(),
        publish: publish.iter().map(|s| s.to_string()).collect(),
        info: None,
    }
}

pub fn token(user: &str, channels: &[&str], publish: &[&str], ttl: i64) -> String {
    mint_hs256(SECRET, &claims(user, channels, publish, ttl)).unwrap()
}

/// A WebSocket test client that keeps pushes apart from replies.
pub struct Ws {
    pub inner: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    pending: std::collections::VecDeque<Value>,
    pub close: Option<(u16, String)>,
}

impl Ws {
    pub async fn open(url: &str) -> Self {
        let (inner, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connects");
        Self {
            inner,
            next_id: 100,
            pending: Default::default(),
            close: None,
        }
    }

    pub async fn send(&mut self, v: &Value) {
        self.inner
            .send(Message::text(v.to_string()))
            .await
            .expect("send");
    }

    pub async fn send_text(&mut self, s: &str) {
        self.inner
            .send(Message::text(s.to_owned()))
            .await
            .expect("send");
    }

    /// The next text message, or `None` when the server closed (code kept in `self.close`).
    pub async fn recv(&mut self) -> Option<Value> {
        if let Some(v) = self.pending.pop_front() {
            return Some(v);
        }
        loop {
            let msg = tokio::time::timeout(WAIT, self.inner.next())
                .await
                .expect("timed out waiting for a message");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    return Some(serde_json::from_str(&t).expect("server sends JSON"));
                }
                Some(Ok(Message::Close(f))) => {
                    self.close = Some(f.map_or((1005, String::new()), |f| {
                        (u16::from(f.code), f.reason.to_string())
                    }));
                    return None;
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => {
                    if self.close.is_none() {
                        self.close = Some((1006, String::new()));
                    }
                    return None;
                }
            }
        }
    }

    /// Sends a command with a fresh id and returns its reply; pushes that arrive first are kept.
    pub async fn request(&mut self, mut cmd: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        cmd["id"] = json!(id);
        self.send(&cmd).await;
        let mut held = Vec::new();
        let reply = loop {
            let Some(v) = self.recv_raw().await else {
                panic!("closed while waiting for reply to {cmd}: {:?}", self.close)
            };
            if v.get("id") == Some(&json!(id)) {
                break v;
            }
            held.push(v);
        };
        self.pending.extend(held);
        reply
    }

    async fn recv_raw(&mut self) -> Option<Value> {
        let saved: Vec<Value> = self.pending.drain(..).collect();
        let v = self.recv().await;
        self.pending = saved.into_iter().collect();
        v
    }

    pub async fn connect(&mut self, token: &str) -> Value {
        self.request(json!({"op": "connect", "token": token})).await
    }

    /// The next push (message without an id) with `op`, skipping pings.
    pub async fn push(&mut self, op: &str) -> Value {
        loop {
            let v = self
                .recv()
                .await
                .unwrap_or_else(|| panic!("closed while waiting for {op}: {:?}", self.close));
            if v["op"] == op {
                return v;
            }
            assert!(
                ["ping", "join", "leave", "expiring"].contains(&v["op"].as_str().unwrap_or(""))
                    || op == "any",
                "unexpected {v} while waiting for {op}"
            );
        }
    }

    /// Reads until the server closes; returns the close code.
    pub async fn closed(&mut self) -> u16 {
        while self.recv().await.is_some() {}
        self.close.as_ref().map(|c| c.0).unwrap()
    }
}

/// Polls `cond` until it holds (bounded by [`WAIT`]).
pub async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
