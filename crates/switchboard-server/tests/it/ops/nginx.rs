//! The nginx configuration of `docs/deployment.md`, run for real: Debian's nginx in front of a
//! node, with WebSocket, SSE and poll clients going through it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;

const DOC: &str = include_str!("../../../../../docs/deployment.md");

/// The first ```nginx block of the deployment guide.
fn documented_config() -> &'static str {
    let start = DOC
        .find("```nginx\n")
        .expect("deployment.md has an nginx block")
        + 9;
    let len = DOC[start..].find("```").unwrap();
    &DOC[start..start + len]
}

fn nginx_bin() -> String {
    if let Ok(p) = std::env::var("NGINX") {
        return p;
    }
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .find(|p| Path::new(p).exists())
        .map_or_else(|| "nginx".into(), |p| p.to_string())
}

/// nginx running in the foreground from a temp dir, killed on drop.
struct Nginx {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Nginx {
    /// Starts nginx with the documented config pointed at `upstream`.
    async fn start(upstream: std::net::SocketAddr) -> Nginx {
        Self::start_many(&[upstream]).await
    }

    /// The documented config with every node of `upstreams` in the `upstream` block
    /// (round-robin, no sticky sessions).
    async fn start_many(upstreams: &[std::net::SocketAddr]) -> Nginx {
        let dir = super::temp_dir("nginx");
        let port = super::free_port();
        let servers: Vec<String> = upstreams.iter().map(|u| format!("server {u};")).collect();
        let site = documented_config()
            .replace("server 127.0.0.1:8000;", &servers.join("\n    "))
            .replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
        assert!(site.contains(&upstreams[0].to_string()) && site.contains(&port.to_string()));
        let d = dir.display();
        // One process (no master/worker split): nothing to switch users for, and killing the
        // child stops everything. Every path nginx writes stays inside the temp dir.
        let conf = format!(
            "master_process off;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n\
             access_log {d}/access.log;\n\
             client_body_temp_path {d}/client_body;\n\
             proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n\
             scgi_temp_path {d}/scgi;\n\
             {site}\n}}\n"
        );
        let file = dir.join("nginx.conf");
        std::fs::write(&file, conf).unwrap();
        let bin = nginx_bin();
        let child = Command::new(&bin)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&file)
            .arg("-e")
            .arg(dir.join("error.log"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {bin} ({e}); scripts/test.sh installs nginx-light, NGINX overrides the path")
            });
        let mut n = Nginx { child, port, dir };
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if let Ok(Some(status)) = n.child.try_wait() {
                let log = std::fs::read_to_string(n.dir.join("error.log")).unwrap_or_default();
                panic!("nginx exited with {status}:\n{log}");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "nginx did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        n
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Reads SSE events (`event` name and `data`, presence events skipped) from a streaming
/// response.
struct Events {
    resp: reqwest::Response,
    buf: String,
}

impl Events {
    async fn next(&mut self) -> (String, Value) {
        loop {
            if let Some(i) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..i + 2).collect();
                let mut event = "message".to_string();
                let mut data = None;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        event = v.into();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = Some(serde_json::from_str(v).unwrap());
                    }
                }
                match data {
                    Some(_) if event == "join" || event == "leave" => {}
                    Some(d) => return (event, d),
                    None => {}
                }
                continue;
            }
            let chunk = tokio::time::timeout(WAIT, self.resp.chunk())
                .await
                .expect("an event in time: is the proxy buffering?")
                .unwrap()
                .expect("the stream stays open");
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_sse_and_poll_work_through_the_documented_nginx_config() {
    let s = TestServer::start().await;
    let nginx = Nginx::start(s.running().addr).await;
    let base = nginx.base();
    let http = reqwest::Client::new();
    let t = token("proxied", &[], &[], 3600);
    let publish = |n: u64| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let r = http
                .post(format!("{base}/api/publish"))
                .header("X-API-Key", API_KEY)
                .json(&json!({"channel": "big:proxy", "data": {"n": n}}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    };

    // Plain requests, with nginx's request id passed through and echoed.
    let r = http.get(format!("{base}/ready")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 32, "nginx's $request_id: {id}");

    // WebSocket through the proxy.
    let mut ws = Ws::open(&format!("ws://127.0.0.1:{}/ws", nginx.port)).await;
    assert!(ws.connect(&t).await.get("ok").is_some());
    let r = ws
        .request(json!({"op": "subscribe", "channel": "big:proxy"}))
        .await;
    assert!(r.get("ok").is_some(), "{r}");

    // SSE through the proxy: events arrive one by one, unbuffered.
    let resp = http
        .get(format!("{base}/sse?channel=big:proxy"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut sse = Events {
        resp,
        buf: String::new(),
    };
    assert_eq!(sse.next().await.0, "welcome");

    // A long poll waiting through the proxy.
    let cursor = http
        .get(format!("{base}/poll?channel=big:proxy"))
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
        http.get(format!(
            "{base}/poll?channel=big:proxy&since={cursor}&timeout=20"
        ))
        .bearer_auth(&t)
        .send(),
    );
    eventually("the poll waits at the node", || async {
        s.node()
            .channels(Some("big:proxy"))
            .iter()
            .any(|(_, n)| *n == 3)
    })
    .await;

    publish(1).await;
    let p = ws.push("pub").await;
    assert_eq!(p["data"]["n"], 1);
    let (event, data) = sse.next().await;
    assert_eq!((event.as_str(), &data["data"]["n"]), ("message", &json!(1)));
    let r = poll.await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["publications"][0]["data"]["n"], 1, "{body}");

    // A second publication: still streaming one event at a time on both.
    publish(2).await;
    assert_eq!(ws.push("pub").await["data"]["n"], 2);
    assert_eq!(sse.next().await.1["data"]["n"], 2);
}

/// Issue 10: two nodes on Redis behind the documented nginx config, round-robin, no sticky
/// sessions. Tickets work whichever node mints or redeems them, a replay is refused on every
/// node, and an SSE client whose node is stopped resumes through nginx on the other one with
/// its `Last-Event-ID`: no gap, no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_behind_round_robin_nginx_share_tickets_and_resume() {
    use crate::redis_harness::{RedisServer, ServerOpts, unique_prefix};
    use crate::sse::Sse;
    let redis = RedisServer::start(&ServerOpts::default());
    let prefix = unique_prefix();
    let node = |name: &'static str| {
        let (url, prefix) = (redis.url(), prefix.clone());
        TestServer::with(move |c| {
            c.engine = switchboard_server::EngineKind::Redis;
            c.redis_url = url;
            c.redis_prefix = prefix;
            c.name = name.into();
        })
    };
    let mut nodes = [node("node-a").await, node("node-b").await];
    let addrs: Vec<_> = nodes.iter().map(|n| n.running().addr).collect();
    let nginx = Nginx::start_many(&addrs).await;
    // The SSE client talks to nginx only.
    let front = TestServer {
        running: None,
        base: nginx.base(),
        http: reqwest::Client::new(),
    };
    let t = token("lb", &[], &[], 3600);
    let mint = || front.ticket(&t);
    // Several tickets, each minted and redeemed on whichever node nginx picks: all accepted.
    for _ in 0..4 {
        let q = format!("channel=feed:lb&ticket={}", mint().await);
        let mut s = Sse::open(&front, &q, None, None)
            .await
            .expect("ticket accepted");
        s.next_of("welcome").await;
    }
    let query = format!("channel=feed:lb&ticket={}", mint().await);
    let mut stream = Sse::open(&front, &query, None, None).await.unwrap();
    let welcome = stream.next_of("welcome").await.json();
    // A replay, twice (round-robin reaches both nodes): refused.
    for _ in 0..2 {
        let (status, _) = Sse::open(&front, &query, None, None).await.err().unwrap();
        assert_eq!(status, 401);
    }
    for i in 1..=3 {
        nodes[0].publish("feed:lb", json!({"n": i})).await;
    }
    let mut last_id = String::new();
    for i in 1..=3 {
        let e = stream.next_of("message").await;
        assert_eq!(e.json()["data"]["n"], i);
        last_id = e.id.unwrap();
    }
    // Stop the node that holds the stream; the other one keeps serving.
    let holder = usize::from(welcome["client"].as_str().unwrap().starts_with("node-b"));
    let survivor = 1 - holder;
    let running = nodes[holder].running.take().unwrap();
    let stopping = tokio::spawn(running.shutdown());
    assert_eq!(stream.next_of("disconnect").await.json()["code"], 4000);
    stopping.await.unwrap();
    for i in 4..=5 {
        nodes[survivor].publish("feed:lb", json!({"n": i})).await;
    }
    // The browser's reconnect through nginx (the stopped node refuses, nginx uses the other).
    let mut resumed = Sse::open(&front, &query, None, Some(&last_id))
        .await
        .unwrap();
    let again = resumed.next_of("welcome").await.json();
    assert!(
        again["client"]
            .as_str()
            .unwrap()
            .starts_with(["node-a", "node-b"][survivor])
    );
    for i in 4..=5 {
        assert_eq!(resumed.next_of("message").await.json()["data"]["n"], i);
    }
    nodes[survivor].publish("feed:lb", json!({"n": 6})).await;
    assert_eq!(resumed.next_of("message").await.json()["data"]["n"], 6);
}
