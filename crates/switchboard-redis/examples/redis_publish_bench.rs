//! Prints publish throughput and delivery latency of the Redis engine against a running Redis.
//!
//! ```text
//! redis-server --port 6390 --save '' &
//! cargo run --release -p switchboard-redis --example redis_publish_bench -- redis://127.0.0.1:6390 20000 32
//! ```
//! Arguments: URL, publications per run (default 20,000), concurrent publishers (default 32).
//! Add `cluster` as a fourth argument for a cluster (URL = comma-separated seed nodes).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchboard_core::engine::{Control, Engine, EventSink, PublishOptions};
use switchboard_protocol::{ClientInfo, Publication};
use switchboard_redis::{RedisConfig, RedisEngine};

#[derive(Default)]
struct Counter {
    received: AtomicU64,
    latency_us: AtomicU64,
}

impl EventSink for Counter {
    fn publication(&self, _channel: &str, _epoch: &str, p: Publication) {
        // The payload carries the send time in µs since the bench started.
        if let Some(sent) = std::str::from_utf8(&p.data)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
        {
            let now = START.get().unwrap().elapsed().as_micros() as u64;
            self.latency_us
                .fetch_add(now.saturating_sub(sent), Ordering::Relaxed);
        }
        self.received.fetch_add(1, Ordering::Relaxed);
    }
    fn join_leave(&self, _: &str, _: bool, _: ClientInfo) {}
    fn control(&self, _: Control) {}
    fn reconnected(&self) {}
}

static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let n: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let conc: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(32);
    let cluster = args.get(4).is_some_and(|s| s == "cluster");
    START.get_or_init(Instant::now);
    let cfg = RedisConfig {
        url,
        cluster,
        prefix: format!("bench{}", std::process::id()),
        ..RedisConfig::default()
    };
    let publisher = Arc::new(RedisEngine::connect(cfg.clone()).await.expect("connect"));
    let receiver = RedisEngine::connect(cfg).await.expect("connect");
    let counter = Arc::new(Counter::default());
    publisher.start(Arc::new(Counter::default())).await.unwrap();
    receiver.start(counter.clone()).await.unwrap();
    let channels: Vec<String> = (0..conc).map(|i| format!("bench:c{i}")).collect();
    for ch in &channels {
        receiver.subscribe(ch).await.unwrap();
    }
    let opts = PublishOptions {
        history_size: 100,
        history_ttl: Duration::from_secs(60),
        ..Default::default()
    };

    // Sequential: one publish at a time (round-trip bound).
    let seq = (n / 10).max(1);
    let t = Instant::now();
    for _ in 0..seq {
        let now = START.get().unwrap().elapsed().as_micros() as u64;
        publisher
            .publish(&channels[0], Bytes::from(now.to_string()), &opts)
            .await
            .unwrap();
    }
    let el = t.elapsed();
    println!(
        "sequential: {seq} publishes in {:.0} ms = {:.0}/s, {:.0} µs each",
        el.as_secs_f64() * 1e3,
        seq as f64 / el.as_secs_f64(),
        el.as_micros() as f64 / seq as f64
    );
    wait_for(&counter, seq).await;

    // Concurrent: `conc` publishers, one channel each.
    let before = counter.received.load(Ordering::Relaxed);
    counter.latency_us.store(0, Ordering::Relaxed);
    let t = Instant::now();
    let mut tasks = Vec::new();
    for ch in channels.clone() {
        let p = publisher.clone();
        let opts = opts.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..n / conc {
                let now = START.get().unwrap().elapsed().as_micros() as u64;
                p.publish(&ch, Bytes::from(now.to_string()), &opts)
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let el = t.elapsed();
    let total = n / conc * conc;
    println!(
        "concurrent ({conc} publishers): {total} publishes in {:.0} ms = {:.0}/s",
        el.as_secs_f64() * 1e3,
        total as f64 / el.as_secs_f64()
    );
    wait_for(&counter, before + total).await;
    let delivered = counter.received.load(Ordering::Relaxed) - before;
    println!(
        "delivered to the other engine: {delivered}, mean publish→sink latency {:.0} µs (under load)",
        counter.latency_us.load(Ordering::Relaxed) as f64 / delivered.max(1) as f64
    );
}

async fn wait_for(c: &Counter, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.received.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
