//! Slow consumers next to healthy subscribers: prints figures, asserts nothing.
//!
//! ```text
//! cargo run --release -p switchboard-server --example slow_consumers
//! ```
//!
//! Runs two scenarios, each in a child process of its own (so that one's memory does not
//! colour the other's): `baseline` (healthy subscribers only) and `slow` (the same plus slow
//! consumers that read far slower than their channels publish). The node runs in-process on a
//! one-worker runtime; the clients run on another one-worker runtime and talk to it over
//! loopback TCP.
//!
//! - Healthy: `HEALTHY` raw WebSocket clients on 10 channels, each channel publishing a small
//!   timestamped message every 50 ms; publish→receive latency goes into an HDR histogram.
//! - Slow: `SLOW` raw WebSocket clients with a 4 KiB receive buffer on 10 "firehose" channels
//!   publishing 8 KiB every 10 ms; each reads 1 KiB per second.
//! - The firehose publishes in both scenarios (nobody listens in the baseline), so the publish
//!   work is the same.
//!
//! Server memory: VmRSS of the process (server and clients share it; the clients' part is the
//! same in both scenarios) sampled every 100 ms, and the node's own count of bytes queued in
//! session outboxes. Kernel socket memory (TCP `mem` in /proc/net/sockstat) is printed too.
//!
//! Environment: `HEALTHY` (1000), `SLOW` (1000), `SECONDS` (15), `QUEUE_KIB` (256),
//! `SNDBUF_KIB` (64: `connections.send_buffer`; 0 keeps the OS default).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use switchboard_core::NamespaceConfig;
use switchboard_core::auth::{Claims, mint_hs256, unix_now};
use switchboard_server::{Config, Running};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const SECRET: &str = "bench-secret";
const CHANNELS: usize = 10;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(scenario) = args.get(1) {
        run_scenario(scenario == "slow");
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    let mut results = BTreeMap::new();
    for scenario in ["baseline", "slow"] {
        eprintln!("running {scenario} ...");
        let out = std::process::Command::new(&exe)
            .arg(scenario)
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("child runs");
        assert!(out.status.success(), "{scenario} failed");
        let line = String::from_utf8_lossy(&out.stdout).into_owned();
        let v: Value = serde_json::from_str(line.trim()).expect("child prints JSON");
        results.insert(scenario, v);
    }
    report(&results["baseline"], &results["slow"]);
}

fn report(base: &Value, slow: &Value) {
    let mib = |v: &Value| v.as_f64().unwrap_or(0.0) / (1024.0 * 1024.0);
    let ms = |v: &Value| v.as_f64().unwrap_or(0.0) / 1000.0;
    let q = slow["queue_bytes"].as_u64().unwrap();
    let n_slow = slow["slow"].as_u64().unwrap();
    println!(
        "{} healthy subscribers, {} slow consumers, {} s, outbound_queue_bytes = {} KiB, send_buffer = {} KiB",
        slow["healthy"],
        n_slow,
        slow["seconds"],
        q / 1024,
        slow["send_buffer"].as_u64().unwrap_or(0) / 1024
    );
    println!();
    println!("| | baseline | with slow consumers |");
    println!("| --- | ---: | ---: |");
    for (label, key) in [
        ("healthy p50 latency (ms)", "p50"),
        ("healthy p99 latency (ms)", "p99"),
        ("healthy p99.9 latency (ms)", "p999"),
        ("healthy max latency (ms)", "max"),
    ] {
        println!(
            "| {label} | {:.2} | {:.2} |",
            ms(&base[key]),
            ms(&slow[key])
        );
    }
    println!(
        "| healthy deliveries | {} | {} |",
        base["received"], slow["received"]
    );
    println!(
        "| RSS idle, all connected (MiB) | {:.1} | {:.1} |",
        mib(&base["rss_idle"]),
        mib(&slow["rss_idle"])
    );
    println!(
        "| RSS peak (MiB) | {:.1} | {:.1} |",
        mib(&base["rss_peak"]),
        mib(&slow["rss_peak"])
    );
    println!(
        "| RSS peak − idle (MiB) | {:.1} | {:.1} |",
        mib(&base["rss_peak"]) - mib(&base["rss_idle"]),
        mib(&slow["rss_peak"]) - mib(&slow["rss_idle"])
    );
    println!(
        "| peak bytes in session queues (MiB) | {:.1} | {:.1} |",
        mib(&base["queued_peak"]),
        mib(&slow["queued_peak"])
    );
    println!(
        "| kernel TCP memory peak (MiB) | {:.1} | {:.1} |",
        mib(&base["tcp_mem_peak"]),
        mib(&slow["tcp_mem_peak"])
    );
    println!(
        "| slow consumers cut off with 4002 (server count) | – | {} of {} |",
        slow["cut_off"], n_slow
    );
    println!(
        "| … of which saw the 4002 close frame / only the end of the stream | – | {} / {} |",
        slow["saw_4002"], slow["saw_eof"]
    );
    println!(
        "| last cut-off after (s) | – | {:.1} |",
        slow["last_cut_off_s"].as_f64().unwrap_or(0.0)
    );
    println!();
    let cap = (q * n_slow) as f64 / (1024.0 * 1024.0);
    let extra = mib(&slow["rss_peak"])
        - mib(&slow["rss_idle"])
        - (mib(&base["rss_peak"]) - mib(&base["rss_idle"]));
    println!(
        "queue cap × slow consumers = {cap:.1} MiB; extra peak RSS over the baseline = {extra:.1} MiB"
    );
    let p99 = |v: &Value| v["p99"].as_f64().unwrap_or(0.0);
    println!(
        "healthy p99 with slow consumers = {:.0}% of the baseline's",
        100.0 * p99(slow) / p99(base).max(1.0)
    );
}

fn rss_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

fn tcp_mem_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("TCP:"))
        .and_then(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let i = f.iter().position(|x| *x == "mem")?;
            f.get(i + 1)?.parse::<u64>().ok()
        })
        .map_or(0, |pages| pages * 4096)
}

/// `switchboard_disconnects_total{code="4002"}` from the node's `/metrics`.
async fn disconnects_4002(addr: SocketAddr) -> u64 {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    tcp.read_to_string(&mut body).await.unwrap();
    body.lines()
        .find(|l| l.starts_with("switchboard_disconnects_total{") && l.contains("code=\"4002\""))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

fn token(user: &str) -> String {
    mint_hs256(
        SECRET,
        &Claims {
            sub: user.into(),
            exp: unix_now() + 3600,
            channels: vec![],
            publish: vec![],
            info: None,
        },
    )
    .unwrap()
}

fn run_scenario(with_slow: bool) {
    let healthy = env("HEALTHY", 1000) as usize;
    let slow = if with_slow {
        env("SLOW", 1000) as usize
    } else {
        0
    };
    let seconds = env("SECONDS", 15);
    let queue = env("QUEUE_KIB", 256) as usize * 1024;
    let sndbuf = env("SNDBUF_KIB", 64) as usize * 1024;
    let t0 = Instant::now();

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();

    let running = server_rt.block_on(async {
        let mut c = Config {
            listen: "127.0.0.1:0".into(),
            api_key: Some("bench-key".into()),
            ..Default::default()
        };
        c.jwt.secret = Some(SECRET.into());
        c.limits.outbound_queue_bytes = queue;
        c.connections.max_per_ip = 0;
        c.connections.send_buffer = sndbuf;
        let plain = NamespaceConfig {
            history_size: 0,
            presence: false,
            join_leave: false,
            ..NamespaceConfig::default()
        };
        c.namespaces.insert("default".into(), plain.clone());
        Running::start(c, false).await.expect("node starts")
    });
    let addr = running.addr;
    let node = running.switchboard.node().clone();
    let base = Instant::now();
    let received = Arc::new(AtomicU64::new(0));

    // Connect everyone.
    let (healthy_tasks, slow_tasks) = client_rt.block_on(async {
        let mut h = Vec::new();
        for i in 0..healthy {
            let ws = RawWs::connect(
                addr,
                None,
                &token(&format!("h{i}")),
                &format!("lat:{}", i % CHANNELS),
            )
            .await;
            h.push(ws);
        }
        let mut s = Vec::new();
        for i in 0..slow {
            let ws = RawWs::connect(
                addr,
                Some(4096),
                &token(&format!("s{i}")),
                &format!("fire:{}", i % CHANNELS),
            )
            .await;
            s.push(ws);
        }
        (h, s)
    });
    eprintln!("  connected in {:.1} s", t0.elapsed().as_secs_f64());
    std::thread::sleep(Duration::from_millis(500));
    let rss_idle = rss_bytes("VmRSS:");

    let stop_at = Instant::now() + Duration::from_secs(seconds);
    // Healthy readers.
    let healthy_handles: Vec<_> = healthy_tasks
        .into_iter()
        .map(|mut ws| {
            let received = received.clone();
            client_rt.spawn(async move {
                let mut lat = Vec::new();
                while Instant::now() < stop_at {
                    let Ok(Some(frame)) =
                        tokio::time::timeout(Duration::from_millis(200), ws.frame()).await
                    else {
                        continue;
                    };
                    if frame.0 != 1 {
                        continue;
                    }
                    let now = base.elapsed().as_micros() as u64;
                    if let Ok(v) = serde_json::from_slice::<Value>(&frame.1)
                        && let Some(ts) = v["data"]["ts"].as_u64()
                    {
                        lat.push(now.saturating_sub(ts));
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
                lat
            })
        })
        .collect();
    // Slow readers: 1 KiB per second until the end, then everything left, to see how it ended.
    let slow_handles: Vec<_> = slow_tasks
        .into_iter()
        .map(|mut ws| {
            client_rt.spawn(async move {
                let mut buf = [0u8; 1024];
                while Instant::now() < stop_at {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if let Ok(Ok(0)) =
                        tokio::time::timeout(Duration::from_millis(1), ws.tcp.read(&mut buf)).await
                    {
                        break;
                    }
                }
                ws.drain_to_end().await
            })
        })
        .collect();

    // Publishers, on the server's runtime (an embedding application publishing in-process).
    let pubs = server_rt.spawn({
        let node = node.clone();
        async move {
            let pad = "x".repeat(100);
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            while Instant::now() < stop_at {
                tick.tick().await;
                for c in 0..CHANNELS {
                    let ts = base.elapsed().as_micros() as u64;
                    let data = Bytes::from(json!({"ts": ts, "pad": pad}).to_string());
                    let _ = node.publish(&format!("lat:{c}"), data, None).await;
                }
            }
        }
    });
    let fire = server_rt.spawn({
        let node = node.clone();
        async move {
            let data = Bytes::from(json!({"blob": "y".repeat(8 * 1024)}).to_string());
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            while Instant::now() < stop_at {
                tick.tick().await;
                for c in 0..CHANNELS {
                    let _ = node.publish(&format!("fire:{c}"), data.clone(), None).await;
                }
            }
        }
    });

    // Sample memory and queues until the end.
    let (mut rss_peak, mut queued_peak, mut tcp_peak) = (rss_idle, 0usize, 0u64);
    let registered0 = node.registry().len();
    let (mut last_cut, mut cut_seen) = (0.0f64, 0usize);
    let started = Instant::now();
    while Instant::now() < stop_at {
        std::thread::sleep(Duration::from_millis(100));
        rss_peak = rss_peak.max(rss_bytes("VmRSS:"));
        tcp_peak = tcp_peak.max(tcp_mem_bytes());
        let mut q = 0;
        node.registry().for_each(|s| q += s.outbox.queued_bytes());
        queued_peak = queued_peak.max(q);
        let now = node.registry().len();
        if with_slow && registered0.saturating_sub(now) > cut_seen {
            cut_seen = registered0 - now;
            last_cut = started.elapsed().as_secs_f64();
        }
    }
    server_rt.block_on(async {
        let _ = pubs.await;
        let _ = fire.await;
    });
    eprintln!("  published for {seconds} s");
    let cut_off = client_rt.block_on(disconnects_4002(addr));
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    client_rt.block_on(async {
        for h in healthy_handles {
            for l in h.await.unwrap() {
                let _ = hist.record(l.max(1));
            }
        }
    });
    let (mut saw_4002, mut saw_eof) = (0, 0);
    client_rt.block_on(async {
        for h in slow_handles {
            match h.await.unwrap() {
                Some(4002) => saw_4002 += 1,
                _ => saw_eof += 1,
            }
        }
    });
    eprintln!("  collected in {:.1} s", t0.elapsed().as_secs_f64());
    let out = json!({
        "healthy": healthy, "slow": slow, "seconds": seconds, "queue_bytes": queue,
        "send_buffer": sndbuf,
        "p50": hist.value_at_quantile(0.5), "p99": hist.value_at_quantile(0.99),
        "p999": hist.value_at_quantile(0.999), "max": hist.max(),
        "received": received.load(Ordering::Relaxed),
        "rss_idle": rss_idle, "rss_peak": rss_peak.max(rss_bytes("VmHWM:")),
        "queued_peak": queued_peak, "tcp_mem_peak": tcp_peak,
        "cut_off": cut_off, "saw_4002": if with_slow { saw_4002 } else { 0 },
        "saw_eof": if with_slow { saw_eof } else { 0 }, "last_cut_off_s": last_cut,
    });
    println!("{out}");
    drop(running);
    std::process::exit(0);
}

/// A minimal WebSocket client over raw TCP (masked text frames out, any frames in).
struct RawWs {
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl RawWs {
    async fn connect(addr: SocketAddr, rcvbuf: Option<u32>, token: &str, channel: &str) -> RawWs {
        let sock = TcpSocket::new_v4().unwrap();
        if let Some(n) = rcvbuf {
            sock.set_recv_buffer_size(n).unwrap();
        }
        let mut tcp = sock.connect(addr).await.expect("connects");
        let req = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 1024];
            let n = tcp.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed during the handshake");
            buf.extend_from_slice(&chunk[..n]);
        };
        assert!(buf.starts_with(b"HTTP/1.1 101"), "handshake refused");
        let mut ws = RawWs {
            tcp,
            buf: buf[end..].to_vec(),
        };
        ws.send(&json!({"id": 1, "op": "connect", "token": token}).to_string())
            .await;
        ws.send(&json!({"id": 2, "op": "subscribe", "channel": channel}).to_string())
            .await;
        // Wait for the subscribe reply.
        loop {
            let (op, payload) = ws.frame().await.expect("open");
            if op == 1 {
                let v: Value = serde_json::from_slice(&payload).unwrap();
                assert!(v.get("error").is_none(), "{v}");
                if v["id"] == 2 {
                    return ws;
                }
            }
        }
    }

    async fn send(&mut self, text: &str) {
        let mask = [1u8, 2, 3, 4];
        let p = text.as_bytes();
        let mut f = vec![0x81];
        if p.len() < 126 {
            f.push(0x80 | p.len() as u8);
        } else {
            f.push(0x80 | 126);
            f.extend_from_slice(&(p.len() as u16).to_be_bytes());
        }
        f.extend_from_slice(&mask);
        f.extend(p.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.tcp.write_all(&f).await.unwrap();
    }

    fn parse(&mut self) -> Option<(u8, Vec<u8>)> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        let (len, at) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => (u64::from_be_bytes(b[2..10].try_into().ok()?) as usize, 10),
            126 | 127 => return None,
            n => (n as usize, 2),
        };
        if b.len() < at + len {
            return None;
        }
        let op = b[0] & 0x0f;
        let payload = b[at..at + len].to_vec();
        self.buf.drain(..at + len);
        Some((op, payload))
    }

    /// The next frame (opcode, payload); `None` at the end of the connection. Cancel-safe.
    async fn frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some(f) = self.parse() {
                return Some(f);
            }
            let mut chunk = [0u8; 8192];
            match self.tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads everything left; returns the close code if a close frame came.
    async fn drain_to_end(&mut self) -> Option<u16> {
        loop {
            match tokio::time::timeout(Duration::from_secs(5), self.frame()).await {
                Ok(Some((8, p))) if p.len() >= 2 => return Some(u16::from_be_bytes([p[0], p[1]])),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return None,
            }
        }
    }
}
