//! Graceful drain (`Running::shutdown`, what SIGTERM and Ctrl-C run): readiness turns false
//! first, accepting stops, every session is told to reconnect (4000) at `drain_rate` per second,
//! in-flight requests finish, and it returns within `shutdown_grace`. On the Redis engine the
//! drained sessions resume on another node without losing a publication.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_server::EngineKind;

use crate::harness::*;
use crate::sse::Sse;

const N: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_turns_unready_then_paces_4000_to_every_session_and_finishes_in_flight_requests() {
    let grace = Duration::from_secs(4);
    let mut s = TestServer::with(|c| {
        // 10 sessions per 100 ms tick: N sessions over about N / 100 seconds.
        c.drain_rate = 100;
        c.shutdown_grace = grace;
    })
    .await;
    let node = s.node().clone();
    let addr = s.running().addr;

    let mut clients = Vec::new();
    for i in 0..N {
        let mut ws = s.client(&format!("u{i}")).await;
        let node = node.clone();
        clients.push(tokio::spawn(async move {
            let push = loop {
                let v = ws.recv().await.expect("a disconnect push before the close");
                if v["op"] == "disconnect" {
                    break v;
                }
            };
            let at = Instant::now();
            let ready = node.ready().await;
            (push, ws.closed().await, at, ready)
        }));
    }
    let t = token("sse", &[], &[], 3600);
    let mut sse = Sse::open(&s, "channel=chat:drain", Some(&t), None)
        .await
        .unwrap();

    // A long poll in flight (it would wait 25 s, far beyond the grace).
    let cursor = s
        .http
        .get(format!("{}/poll?channel=big:drain", s.base))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let poll = tokio::spawn(
        s.http
            .get(format!(
                "{}/poll?channel=big:drain&since={cursor}&timeout=25",
                s.base
            ))
            .bearer_auth(&t)
            .send(),
    );
    eventually("the poll waits on its channel", || async {
        node.channels(Some("big:drain"))
            .iter()
            .any(|(_, n)| *n == 1)
    })
    .await;

    assert!(node.ready().await);
    let running = s.running.take().unwrap();
    let started = Instant::now();
    let shutdown = tokio::spawn(async move { running.shutdown().await });

    // Every session gets 4000 with `reconnect: true`, and readiness was already false.
    let mut arrivals = Vec::new();
    let mut delays = std::collections::BTreeSet::new();
    for c in clients {
        let (push, code, at, ready) = c.await.unwrap();
        assert_eq!(push["code"], 4000, "{push}");
        assert_eq!(push["reconnect"], true, "{push}");
        // A jittered reconnect delay hint, within the documented 1 ms..30 s.
        let delay = push["delay_ms"]
            .as_u64()
            .unwrap_or_else(|| panic!("no delay_ms: {push}"));
        assert!((1..=30_000).contains(&delay), "{push}");
        delays.insert(delay);
        assert_eq!(code, 4000);
        assert!(
            !ready,
            "readiness turns false before sessions are told to go"
        );
        arrivals.push(at);
    }
    assert!(
        delays.len() > 1,
        "delays are jittered per session: {delays:?}"
    );
    let ev = sse.next_of("disconnect").await;
    assert_eq!(ev.json()["code"], 4000);
    assert!(
        ev.json()["delay_ms"].as_u64().is_some(),
        "SSE gets the hint too"
    );
    // Paced: N sessions at 10 per 100 ms tick cannot all leave in the first tick.
    let first = *arrivals.iter().min().unwrap();
    let last = *arrivals.iter().max().unwrap();
    assert!(
        last - first >= Duration::from_millis(150),
        "the drain was not paced: {:?}",
        last - first
    );

    // The waiting poll finished with a usable cursor instead of being cut.
    let r = poll.await.unwrap().expect("the in-flight poll completes");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(body["cursor"].is_string(), "{body}");

    shutdown.await.unwrap();
    let took = started.elapsed();
    assert!(
        took < grace + Duration::from_secs(1),
        "shutdown took {took:?}"
    );
    // No longer accepting.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// A `redis-server` on a free port for one test, killed on drop.
struct Redis {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Redis {
    fn start() -> Option<Redis> {
        let bin = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let port = super::free_port();
        let dir = super::temp_dir("redis");
        let child = Command::new(&bin)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--dir"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let r = Redis { child, port, dir };
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(r)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drained_sessions_resume_on_another_node_without_loss() {
    let Some(redis) = Redis::start() else {
        panic!(
            "redis-server is needed (scripts/test.sh installs it; REDIS_SERVER overrides the path)"
        );
    };
    let prefix = format!("drain{}", std::process::id());
    let on_redis = |c: &mut switchboard_server::Config| {
        c.engine = EngineKind::Redis;
        c.redis_url = format!("redis://127.0.0.1:{}", redis.port);
        c.redis_prefix = prefix.clone();
        c.drain_rate = 50;
        c.shutdown_grace = Duration::from_secs(4);
    };
    let mut a = TestServer::with(on_redis).await;
    let b = TestServer::with(on_redis).await;
    const CH: &str = "big:orders";
    const TOTAL: u64 = 60;
    const SESSIONS: usize = 10;

    let b_url = b.ws_url();
    let mut tasks = Vec::new();
    for i in 0..SESSIONS {
        let mut ws = a.client(&format!("u{i}")).await;
        let r = ws.request(json!({"op": "subscribe", "channel": CH})).await;
        let epoch = r["ok"]["position"]["epoch"].as_str().unwrap().to_owned();
        let b_url = b_url.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen: Vec<u64> = Vec::new();
            let mut moved = false;
            loop {
                let v = match ws.recv().await {
                    Some(v) => v,
                    None => {
                        // Told to go (4000): resume on node B from the last publication seen.
                        assert_eq!(ws.close.as_ref().map(|c| c.0), Some(4000));
                        assert!(!moved, "moved twice");
                        moved = true;
                        ws = Ws::open(&b_url).await;
                        let r = ws.connect(&token(&format!("u{i}"), &[], &[], 3600)).await;
                        assert!(r.get("ok").is_some(), "{r}");
                        let since =
                            json!({"offset": seen.last().copied().unwrap_or(0), "epoch": epoch});
                        let r = ws
                            .request(json!({"op": "subscribe", "channel": CH, "since": since}))
                            .await;
                        assert_eq!(r["ok"]["recovered"], true, "{r}");
                        for p in r["ok"]["publications"].as_array().unwrap() {
                            seen.push(p["offset"].as_u64().unwrap());
                        }
                        continue;
                    }
                };
                if v["op"] == "pub" {
                    seen.push(v["offset"].as_u64().unwrap());
                }
                if seen.last() == Some(&TOTAL) {
                    return (seen, moved);
                }
            }
        }));
    }

    // Publications before, during and after the drain, all through node B's API.
    for n in 1..=20 {
        b.publish(CH, json!({"n": n})).await;
    }
    let running = a.running.take().unwrap();
    let drain = tokio::spawn(async move { running.shutdown().await });
    for n in 21..=40 {
        b.publish(CH, json!({"n": n})).await;
        // Spread over the drain so some land while sessions are moving.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drain.await.unwrap();
    for n in 41..=TOTAL {
        b.publish(CH, json!({"n": n})).await;
    }
    for t in tasks {
        let (seen, moved) = tokio::time::timeout(WAIT, t).await.unwrap().unwrap();
        assert!(moved, "every session was drained to node B");
        assert_eq!(
            seen,
            (1..=TOTAL).collect::<Vec<_>>(),
            "no loss, no duplicate"
        );
    }
    drop(b);
}
