//! One run, start to end: Redis and three nodes, proxies, the checker task, subscribers until
//! all are subscribed, publishers, the nemesis, a calm tail, convergence, the verdict.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::checker::{Checker, Findings, Transport};
use crate::ctx::{Ctx, Event};
use crate::nemesis::{self, Plan, Targets};
use crate::options::Options;
use crate::procs::{Node, NodeSpec, Redis};
use crate::proxy::Proxy;
use crate::report::{ClientStats, PublishStats, Report, Settings};
use crate::subscribers;

/// Nodes in the cluster.
pub const NODES: usize = 3;

/// Finds the `switchboard` binary: `--bin`, else the one cargo built next to this program.
///
/// # Errors
/// A clear message when it is missing (never a silent skip).
pub fn resolve_bin(opts: &Options) -> Result<PathBuf> {
    if let Some(b) = &opts.bin {
        if b.is_file() {
            return Ok(b.clone());
        }
        bail!("the switchboard binary {} does not exist", b.display());
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("executable without a directory")?;
    // `target/<profile>/` for a program, `target/<profile>/deps/` for a test.
    for d in [Some(dir), dir.parent()].into_iter().flatten() {
        let cand = d.join("switchboard");
        if cand.is_file() {
            return Ok(cand);
        }
    }
    bail!(
        "no switchboard binary next to {}: build it first with `cargo build -p switchboard-cli` \
         (`--release` for target/release; scripts/test.sh does this before the tests), or pass \
         --bin / SWITCHBOARD_BIN",
        exe.display()
    )
}

fn random_secret() -> String {
    (0..24)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rand::random_range(0..36)]))
        .collect()
}

/// The nodes' config file: Redis engine, a `chaos` namespace with enough history for every
/// resume, short heartbeats so dead links are noticed quickly.
pub fn node_config(redis_url: &str, api_key: &str, secret: &str, grace: Duration) -> String {
    format!(
        r#"# Written by switchboard-chaos.
engine = "redis"
redis_url = "{redis_url}"
api_key = "{api_key}"
shutdown_grace = "{grace}"
sse_keepalive = "5s"

[jwt]
secret = "{secret}"

[client]
ping_interval = "5s"

[connections]
max_per_ip = 0
max_per_user = 0

[namespaces.chaos]
history_size = 10000
history_ttl = "10m"
"#,
        grace = humantime::format_duration(grace)
    )
}

async fn checker_loop(mut rx: mpsc::Receiver<Event>, mut c: Checker) {
    let mut buf = Vec::with_capacity(1024);
    while rx.recv_many(&mut buf, 1024).await > 0 {
        for e in buf.drain(..) {
            match e {
                Event::Register(s, t) => c.register(s, t),
                Event::Attempt(id, ch) => c.attempted(id, ch),
                Event::Ack(id, ch, e, o, at) => c.acked(id, ch, &e, o, at),
                Event::Started(s, t, e, o) => c.started(s, t, &e, o),
                Event::Announced(s, t, e, o, at) => c.announced(s, t, &e, o, Some(at)),
                Event::Delivered {
                    stream,
                    epoch,
                    offset,
                    data,
                    calm_latency_us,
                    seen,
                } => c.delivered(stream, &epoch, offset, data, calm_latency_us, seen),
                Event::Fault(at, wipe) => c.fault(at, wipe),
                Event::Pending(tx) => {
                    let _ = tx.send(c.pending());
                }
                Event::Finish(tx) => {
                    let _ = tx.send(c.finish());
                    return;
                }
            }
        }
    }
}

async fn pending(ctx: &Ctx) -> (usize, Vec<String>) {
    let (tx, rx) = oneshot::channel();
    ctx.send(Event::Pending(tx)).await;
    rx.await.unwrap_or((usize::MAX, Vec::new()))
}

/// Polls the checker until no stream is pending or `limit` passes; returns what is left.
async fn wait_caught_up(ctx: &Ctx, limit: Duration) -> (usize, Vec<String>) {
    let deadline = Instant::now() + limit;
    loop {
        let p = pending(ctx).await;
        if p.0 == 0 || Instant::now() >= deadline {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn join_all(tasks: Vec<JoinHandle<()>>, limit: Duration) {
    let deadline = Instant::now() + limit;
    for t in tasks {
        let abort = t.abort_handle();
        if tokio::time::timeout_at(deadline, t).await.is_err() {
            abort.abort();
        }
    }
}

/// Lines of node logs that mean a node failed by itself.
fn log_problems(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..NODES {
        let log = dir.join(format!("node-{i}.log"));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        for line in text.lines().filter(|l| l.contains("panicked at")) {
            out.push(format!("node-{i} log: {line}"));
        }
    }
    out
}

/// Runs the checker as `opts` says and returns its report.
///
/// # Errors
/// Redis or a node could not be started (or restarted by the nemesis).
pub async fn run(opts: &Options) -> Result<Report> {
    let began = Instant::now();
    let bin = resolve_bin(opts)?;
    let workdir = match &opts.workdir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!(
            "switchboard-chaos-{}-{}",
            std::process::id(),
            random_secret().get(..6).unwrap_or("x")
        )),
    };
    std::fs::create_dir_all(&workdir)?;
    let (api_key, secret) = (random_secret(), random_secret());
    let mut redis = Redis::start(opts.redis_server.clone(), workdir.join("redis")).await?;
    let config = workdir.join("switchboard.toml");
    std::fs::write(
        &config,
        node_config(&redis.url(), &api_key, &secret, opts.shutdown_grace),
    )?;
    let spec = NodeSpec {
        bin: bin.clone(),
        config,
        dir: workdir.clone(),
    };
    let mut nodes = Vec::new();
    for i in 0..NODES {
        nodes.push(Node::start(i, spec.clone()).await?);
    }
    let mut proxies = Vec::new();
    for n in &nodes {
        proxies.push(Proxy::start(n.port).await?);
    }

    let (tx, rx) = mpsc::channel(1 << 16);
    let checker = tokio::spawn(checker_loop(rx, Checker::new(usize::from(opts.channels))));
    let channels: Vec<String> = (0..opts.channels).map(|i| format!("chaos:c{i}")).collect();
    let mut ctx = Ctx::new(
        proxies.iter().map(|p| p.port).collect(),
        api_key,
        secret,
        channels,
        tx,
        opts.poll_interval,
    );
    ctx.sabotage_every = opts.sabotage_every;
    let ctx = Arc::new(ctx);
    let specs = subscribers::plan(
        opts.subscribers,
        opts.mix,
        opts.channels,
        opts.channels_per_subscriber,
    );
    let mut per_transport = [0u32; 3];
    for s in &specs {
        per_transport[Transport::ALL
            .iter()
            .position(|t| *t == s.transport)
            .unwrap_or(0)] += 1;
    }
    let subs: Vec<JoinHandle<()>> = specs
        .into_iter()
        .map(|s| tokio::spawn(subscribers::run(ctx.clone(), s)))
        .collect();
    let mut problems = Vec::new();
    let (left, some) = wait_caught_up(&ctx, Duration::from_secs(30)).await;
    if left > 0 {
        problems.push(format!(
            "{left} streams had not subscribed 30 s after the start: {some:?}"
        ));
    }

    let publishers = opts.publisher_count();
    let per = opts.rate / f64::from(publishers);
    let pubs: Vec<JoinHandle<()>> = (0..publishers)
        .map(|i| tokio::spawn(crate::publishers::run(ctx.clone(), i, per)))
        .collect();
    let publishing_from = ctx.start().elapsed();
    let publish_end = Instant::now() + opts.duration;
    let plan = Plan {
        kinds: opts.fault_kinds(),
        start: publishing_from + opts.warmup,
        end: (publishing_from + opts.duration).saturating_sub(opts.calm_tail),
        max_faults: opts.max_faults,
        gap: (opts.gap_min, opts.gap_max.max(opts.gap_min)),
        pause: opts.pause,
        down: opts.down,
        drain_wait: opts.shutdown_grace + Duration::from_secs(5),
        settle: opts.settle,
    };
    let targets = Targets {
        redis: &mut redis,
        nodes: &mut nodes,
        proxies: &proxies,
    };
    let faults = match nemesis::run(&ctx, &plan, targets).await {
        Ok(f) => f,
        Err(e) => {
            problems.push(format!("the nemesis stopped: {e:#}"));
            Vec::new()
        }
    };
    tokio::time::sleep_until(publish_end).await;
    ctx.stop_publishing.cancel();
    let published_for = ctx.start().elapsed().saturating_sub(publishing_from);
    // Publications in flight get a while to be acknowledged, then are given up.
    join_all(pubs, Duration::from_secs(20)).await;
    ctx.give_up.cancel();

    let (left, some) = wait_caught_up(&ctx, opts.converge_timeout).await;
    if left > 0 {
        problems.push(format!(
            "{left} streams had not caught up {:?} after publishing stopped, e.g. {some:?}",
            opts.converge_timeout
        ));
    }
    ctx.stop.cancel();
    join_all(subs, Duration::from_secs(10)).await;
    let (ftx, frx) = oneshot::channel();
    ctx.send(Event::Finish(ftx)).await;
    let findings: Findings = frx.await.context("the checker task failed")?;
    let _ = checker.await;

    for n in &mut nodes {
        if !n.alive() {
            problems.push(format!(
                "node-{} exited by itself (log {})",
                n.index,
                n.log().display()
            ));
        }
        n.stop().await;
    }
    redis.stop().await;
    drop(proxies);
    problems.extend(log_problems(&workdir));

    let mut fault_counts = BTreeMap::new();
    for f in &faults {
        *fault_counts.entry(f.kind.name().to_owned()).or_insert(0) += 1;
    }
    if !opts.allow_missing_faults {
        for k in opts.fault_kinds() {
            if !fault_counts.contains_key(k.name()) {
                problems.push(format!(
                    "fault kind {} was never injected (run longer or allow it)",
                    k.name()
                ));
            }
        }
    }
    let stats = &ctx.stats;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let publish = PublishStats {
        attempted: findings.attempted,
        acknowledged: findings.acknowledged,
        retries: load(&stats.publish_retries),
        gave_up: load(&stats.publish_gave_up),
        rejected: load(&stats.publish_rejected),
        acknowledged_per_s: findings.acknowledged as f64 / published_for.as_secs_f64().max(1e-9),
    };
    if publish.rejected > 0 {
        problems.push(format!(
            "{} publications were refused with a client error",
            publish.rejected
        ));
    }
    let clients = Transport::ALL
        .iter()
        .enumerate()
        .map(|(i, t)| ClientStats {
            transport: t.name().into(),
            connects: load(&stats.connects[i]),
            failures: load(&stats.failures[i]),
            sabotage_dropped: load(&stats.sabotage_dropped[i]),
            sabotage_duplicated: load(&stats.sabotage_duplicated[i]),
        })
        .collect();
    let passed = findings.violations() == 0 && problems.is_empty();
    let report = Report {
        passed,
        problems,
        settings: Settings {
            duration_s: published_for.as_secs_f64(),
            subscribers: per_transport,
            rate: opts.rate,
            publishers,
            channels: opts.channels,
            channels_per_subscriber: opts.channels_per_subscriber,
            binary: bin.display().to_string(),
        },
        elapsed_s: began.elapsed().as_secs_f64(),
        findings,
        faults,
        fault_counts,
        publish,
        clients,
        sse_since_fallbacks: load(&stats.sse_since_fallbacks),
        workdir: workdir.display().to_string(),
    };
    if let Some(path) = &opts.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    if passed && !opts.keep && opts.workdir.is_none() {
        let _ = std::fs::remove_dir_all(&workdir);
    }
    Ok(report)
}
