//! The three modes: `idle` (memory per session), `fanout` (latency and CPU per delivery) and
//! `compare` (polling vs SSE vs WebSocket).

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::fleet::{Fleet, Merged};
use super::procstat::{Cpu, Server, find_listener};
use super::progress::Progress;
use super::report::{self, Report};
use super::sampler::{self, Mark, Sample, Sampler};
use super::scan::unix_micros;
use super::worker::WorkerSpec;
use super::{Common, CompareArgs, FanoutArgs, IdleArgs, Transport, local_port};

/// What the run talks to.
struct Target {
    port: u16,
    /// The node serves TLS (an https URL); the clients trust `--ca`.
    tls: bool,
    base: String,
    /// Client of the health check and the publisher (HTTP/1.1).
    http: reqwest::Client,
    server: Option<Server>,
}

async fn target(c: &Common) -> Result<Target> {
    let (tls, port) = local_port(&c.url)?;
    let http = match (tls, &c.ca) {
        (false, None) => reqwest::Client::new(),
        (true, Some(ca)) => reqwest::Client::builder()
            .tls_backend_preconfigured(super::tls::client_config(ca, &[super::tls::ALPN_HTTP1])?)
            .build()?,
        (true, None) => bail!(
            "--url is https: pass the node's certificate (or the CA that issued it) with --ca FILE"
        ),
        (false, Some(_)) => bail!("--ca applies to https URLs only"),
    };
    let base = format!("{}://127.0.0.1:{port}", if tls { "https" } else { "http" });
    let health = http
        .get(format!("{base}/health"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .with_context(|| {
            format!(
                "no node answers at {base} (start one with `switchboard serve`{})",
                if tls {
                    "; with https, --ca must hold its certificate or CA"
                } else {
                    ""
                }
            )
        })?;
    if !health.status().is_success() {
        bail!("{base}/health answered {}", health.status());
    }
    let pid = match c.pid {
        Some(p) => Some(p),
        None => find_listener(port),
    };
    let server = match pid {
        Some(p) => Some(Server::new(p)?),
        None => {
            eprintln!(
                "note: server pid unknown (pass --pid): memory and CPU figures are not measured"
            );
            None
        }
    };
    Ok(Target {
        port,
        tls,
        base,
        http,
        server,
    })
}

struct Plan<'a> {
    transport: Transport,
    channel: &'a str,
    spread: u64,
    poll_timeout: u64,
    poll_interval: Duration,
    /// WebSocket sessions negotiate permessage-deflate.
    deflate: bool,
    /// Publish ticker updates instead of padding.
    ticker: bool,
}

fn specs(c: &Common, t: &Target, p: &Plan<'_>) -> Result<(Vec<WorkerSpec>, usize)> {
    let (workers, sources) = c.layout()?;
    let secret = c.secret()?;
    let n = c.connections;
    let mut out = Vec::new();
    let mut first = 0;
    for w in 0..workers {
        let count = n / workers + u64::from(w < n % workers);
        out.push(WorkerSpec {
            index: w as usize,
            transport: p.transport,
            port: t.port,
            sources: sources.clone(),
            first,
            count,
            channel: p.channel.to_owned(),
            spread: p.spread,
            secret: secret.clone(),
            token_ttl_secs: c.max_duration.as_secs() + 3600,
            poll_timeout: p.poll_timeout,
            poll_interval_ms: p.poll_interval.as_millis() as u64,
            connect_concurrency: c.connect_concurrency as usize,
            lifetime_secs: c.max_duration.as_secs() + 60,
            ca: if t.tls { c.ca.clone() } else { None },
            streams_per_connection: c.streams_per_connection,
            deflate: p.deflate,
        });
        first += count;
    }
    Ok((out, sources.len()))
}

/// TCP connections the sessions use, and how they are carried (for the report).
fn wire(specs: &[WorkerSpec], t: &Target) -> (u64, String) {
    let tls = if t.tls { "TLS" } else { "plain TCP" };
    match specs.first() {
        Some(s) if s.transport == Transport::SseH2 => {
            let per = s.streams_per_connection.max(1);
            (
                specs.iter().map(|s| s.count.div_ceil(per)).sum(),
                format!(
                    "HTTP/2 over {}, {per} stream{} per connection",
                    if t.tls { "TLS" } else { "plain TCP (h2c)" },
                    if per == 1 { "" } else { "s" }
                ),
            )
        }
        _ => (
            specs.iter().map(|s| s.count).sum(),
            format!("HTTP/1.1 over {tls}"),
        ),
    }
}

/// Starts the workers and waits for their sessions; `sampler` records the run's time series
/// from the first connection on.
async fn launch(
    c: &Common,
    specs: Vec<WorkerSpec>,
    progress: &Progress,
    sampler: Option<Sampler>,
) -> Result<(Fleet, f64)> {
    let start = Instant::now();
    let mut fleet = Fleet::spawn(specs).await?;
    if let Some(s) = sampler {
        fleet.set_sampler(s);
    }
    fleet.mark("sessions connecting");
    // Generous: a loaded 2-core machine sets up a few thousand sessions per second.
    let timeout = c
        .ready_timeout
        .unwrap_or(Duration::from_secs(60) + Duration::from_millis(c.connections * 10));
    progress.sessions_start(c.connections);
    fleet
        .wait_ready(timeout, progress.every(), |t| progress.sessions(t))
        .await?;
    progress.sessions_done(fleet.totals());
    fleet.mark("sessions ready");
    Ok((fleet, start.elapsed().as_secs_f64()))
}

/// How the server came to rest after the sessions were set up.
struct Settled {
    secs: f64,
    settled: bool,
    /// Server CPU use in the last second, in cores.
    idle_cpu: Option<f64>,
}

/// Waits until the server's RSS stops growing and (with `quiet_cpu`) its CPU goes quiet (join
/// storms, lazy allocations), at most `timeout`. Plain pollers keep the server busy by design,
/// so their phase only waits for the RSS.
async fn settle(
    server: Option<&Server>,
    fleet: &mut Fleet,
    timeout: Duration,
    quiet_cpu: bool,
    progress: &Progress,
) -> Result<Settled> {
    let start = Instant::now();
    let Some(server) = server else {
        progress.status("settling", "2 s (server pid unknown)".into());
        fleet.pump(Duration::from_secs(2)).await?;
        progress.status_done("2 s".into());
        return Ok(Settled {
            secs: 2.0,
            settled: false,
            idle_cpu: None,
        });
    };
    progress.status(
        "settling",
        "waiting until the server's RSS stops growing and its CPU is quiet".into(),
    );
    let mut samples: VecDeque<(Instant, u64, f64)> = VecDeque::new();
    loop {
        let now = Instant::now();
        samples.push_back((now, server.rss_kib()?, server.cpu_secs()?));
        while samples.len() > 5 {
            samples.pop_front();
        }
        if samples.len() == 5 {
            let (_, rss0, _) = samples[0];
            let (t1, _, cpu1) = samples[2];
            let (t2, rss2, cpu2) = samples[4];
            let growth = rss2.saturating_sub(rss0);
            let cpu = (cpu2 - cpu1) / (t2 - t1).as_secs_f64();
            let quiet = growth <= (rss2 / 200).max(256) && (!quiet_cpu || cpu <= 0.05);
            progress.status_update(format!(
                "server RSS {}, CPU {:.0} % of a core",
                kib(rss2),
                cpu * 100.0
            ));
            if quiet || start.elapsed() >= timeout {
                progress.status_done(format!(
                    "{} after {:.1} s (RSS {}, CPU {:.0} %)",
                    if quiet { "settled" } else { "NOT settled" },
                    start.elapsed().as_secs_f64(),
                    kib(rss2),
                    cpu * 100.0
                ));
                fleet.mark("server settled");
                return Ok(Settled {
                    secs: start.elapsed().as_secs_f64(),
                    settled: quiet,
                    idle_cpu: Some(cpu),
                });
            }
        }
        fleet.pump(Duration::from_millis(500)).await?;
    }
}

fn kib(v: u64) -> String {
    if v >= 10 * 1024 {
        format!("{:.1} MiB", v as f64 / 1024.0)
    } else {
        format!("{v} KiB")
    }
}

fn print_map(title: &str, m: &BTreeMap<String, u64>) {
    if m.is_empty() {
        return;
    }
    println!("  {title}:");
    for (k, v) in m {
        println!("    {v:>7} × {k}");
    }
}

fn ms(us: u64) -> f64 {
    (us as f64 / 1000.0 * 100.0).round() / 100.0
}

fn latency_json(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return Value::Null;
    }
    json!({
        "p50_ms": ms(h.value_at_quantile(0.50)),
        "p90_ms": ms(h.value_at_quantile(0.90)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "max_ms": ms(h.max()),
        "mean_ms": (h.mean() / 10.0).round() / 100.0,
        "samples": h.len(),
    })
}

/// Checks early (before a long run) that the `--report` file can be written.
fn report_file(path: &Path) -> Result<PathBuf> {
    std::fs::write(path, "")
        .with_context(|| format!("--report: cannot write {}", path.display()))?;
    Ok(path.to_owned())
}

/// Report parameters that every mode shares.
fn common_params(c: &Common, t: &Target, workers: usize, sources: usize) -> Vec<(String, String)> {
    let mut p = vec![
        ("--url".to_owned(), t.base.clone()),
        ("--connections".to_owned(), c.connections.to_string()),
        ("workers".to_owned(), workers.to_string()),
        ("source addresses".to_owned(), sources.to_string()),
        (
            "--connect-concurrency".to_owned(),
            format!("{} per worker", c.connect_concurrency),
        ),
        (
            "server pid".to_owned(),
            t.server
                .as_ref()
                .map(|s| s.pid.to_string())
                .unwrap_or_else(|| "unknown (no CPU or RSS figures)".into()),
        ),
    ];
    if t.tls {
        p.push(("TLS".into(), "yes (--ca)".into()));
    }
    p.push((
        "machine".into(),
        format!(
            "{} CPUs (load generator and node share them)",
            std::thread::available_parallelism().map_or(0, usize::from)
        ),
    ));
    p
}

fn server_notes(t: &Target) -> Vec<String> {
    let mut n = vec![
        "The load generator runs on the same machine as the node: compare runs with each other, not with other machines.".to_owned(),
        "Samples every 250 ms (the step doubles when a long run fills the series); rates over a trailing 1 s window.".to_owned(),
    ];
    if t.server.is_none() {
        n.push("The server's pid was unknown (pass --pid): no CPU or RSS series.".into());
    }
    n
}

// ---------------------------------------------------------------- idle

pub async fn idle(a: IdleArgs) -> Result<()> {
    let c = &a.common;
    if a.transport == Transport::Poll {
        bail!(
            "idle does not apply to poll: a poller holds no session between requests (use ws or sse)"
        );
    }
    c.layout()?;
    c.secret()?;
    let t = target(c).await?;
    let plan = Plan {
        transport: a.transport,
        channel: &a.channel,
        spread: 100,
        poll_timeout: 0,
        poll_interval: Duration::ZERO,
        deflate: false,
        ticker: false,
    };
    let (specs, sources) = specs(c, &t, &plan)?;
    let workers = specs.len();
    let (tcp_connections, carried) = wire(&specs, &t);
    if !c.json {
        println!(
            "bench idle: {} {} sessions on {}-0..99 ({carried}, {tcp_connections} connections; {workers} workers, {sources} source addresses){}",
            c.connections,
            a.transport.name(),
            a.channel,
            t.server
                .as_ref()
                .map(|s| format!(", server pid {}", s.pid))
                .unwrap_or_default()
        );
    }
    let report_file = a.report.as_deref().map(report_file).transpose()?;
    let progress = Progress::new(c.json);
    let rss_before = t.server.as_ref().map(Server::rss_kib).transpose()?;
    let sampler = report_file
        .is_some()
        .then(|| Sampler::new(t.server.clone(), sampler::EVERY, sampler::CAPACITY));
    let (mut fleet, setup_secs) = launch(c, specs, &progress, sampler).await?;
    let settled = settle(
        t.server.as_ref(),
        &mut fleet,
        c.settle_timeout,
        true,
        &progress,
    )
    .await?;
    let rss_after = t.server.as_ref().map(Server::rss_kib).transpose()?;
    let ready = fleet.stats(false).await?.stats;
    let sessions = ready.connected;
    let per_session = match (rss_before, rss_after) {
        (Some(before), Some(after)) if sessions > 0 => {
            Some(after.saturating_sub(before) as f64 / sessions as f64)
        }
        _ => None,
    };
    if !c.json {
        progress.suspend(|| {
            println!(
                "  sessions: {sessions} ready, {} failed, set up in {setup_secs:.1} s",
                ready.failed
            );
            print_map("setup errors", &ready.errors);
            if let (Some(b), Some(af), Some(p)) = (rss_before, rss_after, per_session) {
                println!(
                    "  server RSS: before {}, after {} ({} after {:.1} s)",
                    kib(b),
                    kib(af),
                    if settled.settled {
                        "settled"
                    } else {
                        "NOT settled"
                    },
                    settled.secs
                );
                println!("  KiB per session: {p:.2}");
            }
            if !matches!(progress, Progress::Bars(_)) {
                println!("  holding for {} ...", humantime::format_duration(a.hold));
            }
        });
    }
    fleet.mark("hold");
    progress.status(
        "holding",
        format!(
            "{} sessions for {}",
            sessions,
            humantime::format_duration(a.hold)
        ),
    );
    fleet.pump(a.hold).await?;
    progress.status_done(format!("held for {}", humantime::format_duration(a.hold)));
    let end = fleet.stats(false).await?.stats;
    let rss_end = t.server.as_ref().map(Server::rss_kib).transpose()?;
    let lost: u64 = end.closed.values().sum();
    let series = fleet.take_sampler().map(Sampler::into_parts);
    fleet.stop().await;
    if let (Some(path), Some((samples, marks))) = (&report_file, series) {
        let mut summary = vec![
            ("sessions ready".to_owned(), sessions.to_string()),
            ("sessions failed".to_owned(), ready.failed.to_string()),
            ("set up in".to_owned(), format!("{setup_secs:.1} s")),
            (
                "server settled".to_owned(),
                format!(
                    "{} after {:.1} s",
                    if settled.settled { "yes" } else { "NO" },
                    settled.secs
                ),
            ),
            (
                "sessions closed by the server during the hold".to_owned(),
                lost.to_string(),
            ),
        ];
        let mut headline = vec![("sessions".to_owned(), sessions.to_string())];
        if let (Some(b), Some(af)) = (rss_before, rss_after) {
            summary.push(("server RSS before".to_owned(), kib(b)));
            summary.push(("server RSS with the sessions".to_owned(), kib(af)));
            headline.push(("server RSS with the sessions".to_owned(), kib(af)));
        }
        if let Some(r) = rss_end {
            summary.push(("server RSS after the hold".to_owned(), kib(r)));
        }
        if let Some(p) = per_session {
            summary.push(("KiB per session".to_owned(), format!("{p:.2}")));
            headline.push(("KiB per session".to_owned(), format!("{p:.2}")));
        }
        headline.push(("set up in".to_owned(), format!("{setup_secs:.1} s")));
        for (k, v) in &end.closed {
            summary.push((format!("closed by the server: {k}"), v.to_string()));
        }
        for (k, v) in &ready.errors {
            summary.push((format!("setup error: {k}"), v.to_string()));
        }
        let mut params = common_params(c, &t, workers, sources);
        params.insert(0, ("mode".into(), "idle".into()));
        params.push(("--transport".into(), a.transport.name().into()));
        params.push(("--channel".into(), format!("{}-0..99", a.channel)));
        params.push((
            "--hold".into(),
            humantime::format_duration(a.hold).to_string(),
        ));
        let r = Report {
            title: "bench idle".into(),
            subtitle: format!(
                "{} idle {} sessions ({carried}, {tcp_connections} connections) · {}",
                c.connections,
                a.transport.name(),
                report::now_utc()
            ),
            headline,
            params,
            summary,
            latency_us: None,
            samples,
            marks,
            deliveries: false,
            notes: server_notes(&t),
        };
        report::write(path, &r)?;
        if !c.json {
            println!("  report: {}", path.display());
        }
    }
    if c.json {
        println!(
            "{}",
            json!({
                "mode": "idle",
                "transport": a.transport.name(),
                "tls": t.tls,
                "streams_per_connection": (a.transport == Transport::SseH2).then_some(c.streams_per_connection),
                "tcp_connections": tcp_connections,
                "requested": c.connections,
                "sessions": sessions,
                "failed": ready.failed,
                "workers": workers,
                "source_addresses": sources,
                "setup_s": setup_secs,
                "settled": settled.settled,
                "settle_s": settled.secs,
                "server_pid": t.server.as_ref().map(|s| s.pid),
                "rss_before_kib": rss_before,
                "rss_after_kib": rss_after,
                "rss_after_hold_kib": rss_end,
                "kib_per_session": per_session,
                "closed_during_hold": end.closed,
                "errors": end.errors,
                "report": report_file,
            })
        );
    } else {
        println!(
            "  after the hold: {} sessions still open{}",
            sessions.saturating_sub(lost),
            rss_end
                .map(|r| format!(", server RSS {}", kib(r)))
                .unwrap_or_default()
        );
        print_map("sessions closed by the server", &end.closed);
    }
    Ok(())
}

// ---------------------------------------------------------------- publishing

struct Published {
    ok: u64,
    failed: u64,
    errors: BTreeMap<String, u64>,
    first_us: u64,
    last_us: u64,
}

impl Published {
    /// Publications per second actually achieved (first to last publication).
    fn rate(&self) -> f64 {
        let n = self.ok + self.failed;
        let span = self.last_us.saturating_sub(self.first_us) as f64 / 1e6;
        if n > 1 && span > 0.0 {
            (n - 1) as f64 / span
        } else {
            f64::NAN
        }
    }
}

/// What each publication carries.
#[derive(Clone, Copy)]
struct Body {
    /// Approximate bytes of padding.
    size: u64,
    /// A ticker update instead.
    ticker: bool,
}

/// A ticker update (~700 B): prices and sizes that move with `seq`, the top eight levels of an
/// order book on each side, as exchanges push them.
fn ticker(channel: &str, seq: u64, ts: u64) -> String {
    let mid = 64_000.0 + ((seq * 7919) % 2000) as f64 / 4.0;
    let side = |sign: f64| {
        (1..=8u32)
            .map(|i| {
                let price = mid + sign * f64::from(i) * 0.5;
                let size = ((seq * 31 + u64::from(i) * 17) % 500) as f64 / 100.0;
                format!(r#"{{"price":{price:.2},"size":{size:.3}}}"#)
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        r#"{{"channel":{},"data":{{"seq":{seq},"ts":{ts},"symbol":"BTC-USD","bid":{:.2},"ask":{:.2},"last":{{"price":{mid:.2},"size":{:.3},"side":"{}"}},"volume_24h":{:.3},"bids":[{}],"asks":[{}]}}}}"#,
        serde_json::to_string(channel).unwrap_or_default(),
        mid - 0.25,
        mid + 0.25,
        ((seq * 13) % 100) as f64 / 1000.0,
        if seq.is_multiple_of(2) { "buy" } else { "sell" },
        12_345.0 + (seq % 1000) as f64 * 0.125,
        side(-1.0),
        side(1.0),
    )
}

fn payload(channel: &str, seq: u64, ts: u64, size: u64) -> String {
    let head = format!(r#"{{"seq":{seq},"ts":{ts},"pad":""#);
    let pad = (size as usize).saturating_sub(head.len() + 2);
    format!(
        r#"{{"channel":{},"data":{head}{}"}}}}"#,
        serde_json::to_string(channel).unwrap_or_default(),
        "x".repeat(pad)
    )
}

/// Publishes `messages` publications at `rate`/s through `POST /api/publish`, handling worker
/// messages meanwhile.
#[allow(clippy::too_many_arguments)]
async fn publish(
    t: &Target,
    key: &str,
    channel: &str,
    messages: u64,
    rate: f64,
    body: Body,
    fleet: &mut Fleet,
    progress: &Progress,
) -> Result<Published> {
    let url = format!("{}/api/publish", t.base);
    let start = Instant::now();
    let mut out = Published {
        ok: 0,
        failed: 0,
        errors: BTreeMap::new(),
        first_us: 0,
        last_us: 0,
    };
    for i in 0..messages {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        let now = Instant::now();
        if due > now {
            fleet.pump(due - now).await?;
        }
        let ts = unix_micros();
        if i == 0 {
            out.first_us = ts;
        }
        out.last_us = ts;
        let r = t
            .http
            .post(&url)
            .timeout(Duration::from_secs(10))
            .header("X-API-Key", key)
            .header("Content-Type", "application/json")
            .body(if body.ticker {
                ticker(channel, i, ts)
            } else {
                payload(channel, i, ts, body.size)
            })
            .send()
            .await;
        match r {
            Ok(r) if r.status().is_success() => out.ok += 1,
            Ok(r) => {
                out.failed += 1;
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                *out.errors
                    .entry(format!(
                        "HTTP {status} {}",
                        body.chars().take(120).collect::<String>()
                    ))
                    .or_default() += 1;
            }
            Err(e) => {
                out.failed += 1;
                *out.errors.entry(format!("publish: {e}")).or_default() += 1;
            }
        }
        // At high rates the loop may never pump: take the workers' news and sample anyway.
        fleet.poll()?;
        progress.published(i + 1, out.failed, fleet.totals().received);
    }
    progress.publish_done(out.ok);
    Ok(out)
}

/// Waits until `expected` publications arrived, deliveries stall for 5 s, or `timeout` passes.
async fn drain(
    fleet: &mut Fleet,
    expected: u64,
    timeout: Duration,
    progress: &Progress,
) -> Result<()> {
    let start = Instant::now();
    let mut last = fleet.totals().received;
    let mut changed = Instant::now();
    while fleet.totals().received < expected && start.elapsed() < timeout {
        fleet.pump(Duration::from_millis(20)).await?;
        let now = fleet.totals().received;
        progress.delivered(now);
        if now != last {
            last = now;
            changed = Instant::now();
        } else if changed.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    progress.delivered_done(fleet.totals().received, expected);
    Ok(())
}

/// One measured publish phase.
struct Phase {
    transport: Transport,
    setup_secs: f64,
    settled: Settled,
    ready: Merged,
    published: Published,
    expected: u64,
    /// Counter deltas over the window (first publication → all delivered).
    window: super::worker::Stats,
    window_secs: f64,
    final_stats: Merged,
    cpu: Option<Cpu>,
    rss_kib: Option<(u64, u64)>,
    /// The time series, when a report was asked for.
    series: Option<(Vec<Sample>, Vec<Mark>)>,
}

#[allow(clippy::too_many_arguments)]
async fn phase(
    c: &Common,
    t: &Target,
    plan: &Plan<'_>,
    messages: u64,
    rate: f64,
    size: u64,
    drain_timeout: Duration,
    progress: &Progress,
    sample: bool,
) -> Result<Phase> {
    let key = c.api_key()?;
    let (specs, _) = specs(c, t, plan)?;
    let sampler = sample.then(|| Sampler::new(t.server.clone(), sampler::EVERY, sampler::CAPACITY));
    let (mut fleet, setup_secs) = launch(c, specs, progress, sampler).await?;
    let quiet_cpu = plan.transport != Transport::Poll || plan.poll_interval.is_zero();
    let settled = settle(
        t.server.as_ref(),
        &mut fleet,
        c.settle_timeout,
        quiet_cpu,
        progress,
    )
    .await?;
    let rss_ready = t.server.as_ref().map(Server::rss_kib).transpose()?;
    let ready = fleet.stats(false).await?;
    if ready.stats.connected == 0 {
        fleet.stop().await;
        bail!("no session could be set up: {:?}", ready.stats.errors);
    }
    progress.line(&format!(
        "  {} {} sessions ready ({} failed) in {setup_secs:.1} s; server {} after {:.1} s; publishing {messages} at {rate}/s ...",
        ready.stats.connected,
        plan.transport.name(),
        ready.stats.failed,
        if settled.settled {
            "settled"
        } else {
            "NOT settled"
        },
        settled.secs,
    ));
    let cpu0 = t.server.as_ref().map(Server::cpu).transpose()?;
    let w0 = Instant::now();
    let body = Body {
        size,
        ticker: plan.ticker,
    };
    fleet.mark("first publication");
    progress.publish_start(messages, messages * ready.stats.connected);
    let published = publish(
        t,
        &key,
        plan.channel,
        messages,
        rate,
        body,
        &mut fleet,
        progress,
    )
    .await?;
    fleet.mark("last publication");
    let expected = published.ok * ready.stats.connected;
    drain(&mut fleet, expected, drain_timeout, progress).await?;
    fleet.mark("deliveries drained");
    let cpu1 = t.server.as_ref().map(Server::cpu).transpose()?;
    let window_secs = w0.elapsed().as_secs_f64();
    let end = fleet.stats(true).await?;
    let rss_end = t.server.as_ref().map(Server::rss_kib).transpose()?;
    let series = fleet.take_sampler().map(Sampler::into_parts);
    fleet.stop().await;
    let s0 = &ready.stats;
    let s1 = &end.stats;
    let window = super::worker::Stats {
        received: s1.received - s0.received,
        other: s1.other - s0.other,
        bytes_in: s1.bytes_in - s0.bytes_in,
        bytes_out: s1.bytes_out - s0.bytes_out,
        requests: s1.requests - s0.requests,
        ..Default::default()
    };
    Ok(Phase {
        transport: plan.transport,
        setup_secs,
        settled,
        ready,
        published,
        expected,
        window,
        window_secs,
        final_stats: end,
        cpu: cpu0.zip(cpu1).map(|(a, b)| b - a),
        rss_kib: rss_ready.zip(rss_end),
        series,
    })
}

impl Phase {
    /// Server CPU-seconds (user + system) in the window.
    fn cpu_secs(&self) -> Option<f64> {
        self.cpu.map(|c| c.user + c.system)
    }

    fn delivered(&self) -> u64 {
        self.window.received
    }

    /// Delivered as a share of expected, in percent.
    fn delivered_pct(&self) -> f64 {
        if self.expected > 0 {
            self.delivered() as f64 * 100.0 / self.expected as f64
        } else {
            0.0
        }
    }

    /// Ready subscribers that received nothing.
    fn silent(&self) -> u64 {
        self.ready
            .stats
            .connected
            .saturating_sub(self.final_stats.stats.receiving)
    }

    /// First publication → last delivery.
    fn delivery_secs(&self) -> f64 {
        let last = self.final_stats.stats.last_rx_us;
        if last > self.published.first_us {
            (last - self.published.first_us) as f64 / 1e6
        } else {
            self.window_secs
        }
    }

    fn hist(&self) -> Option<&Histogram<u64>> {
        self.final_stats.hist.as_ref().filter(|h| !h.is_empty())
    }

    fn cpu_per_million(&self) -> Option<f64> {
        let d = self.delivered();
        self.cpu_secs()
            .filter(|_| d > 0)
            .map(|c| c / d as f64 * 1e6)
    }

    fn to_json(&self) -> Value {
        let d = self.delivered();
        json!({
            "transport": self.transport.name(),
            "sessions": self.ready.stats.connected,
            "failed": self.ready.stats.failed,
            "setup_s": self.setup_secs,
            "settled": self.settled.settled,
            "settle_s": self.settled.secs,
            "server_idle_cpu_cores": self.settled.idle_cpu,
            "published": self.published.ok,
            "publish_failed": self.published.failed,
            "publish_errors": self.published.errors,
            "publish_rate_achieved": self.published.rate(),
            "expected": self.expected,
            "delivered": d,
            "delivered_pct": if self.expected > 0 { d as f64 * 100.0 / self.expected as f64 } else { 0.0 },
            "delivery_s": self.delivery_secs(),
            "deliveries_per_s": d as f64 / self.delivery_secs().max(1e-9),
            "window_s": self.window_secs,
            "client_requests": self.window.requests,
            "client_requests_per_s": self.window.requests as f64 / self.window_secs.max(1e-9),
            "bytes_down": self.window.bytes_in,
            "bytes_up": self.window.bytes_out,
            "bytes_per_update": if d > 0 { Some((self.window.bytes_in + self.window.bytes_out) as f64 / d as f64) } else { None },
            "other_messages": self.window.other,
            "sessions_receiving": self.final_stats.stats.receiving,
            "latency": self.hist().map(latency_json),
            "server_cpu_s": self.cpu_secs(),
            "server_cpu_user_s": self.cpu.map(|c| c.user),
            "server_cpu_system_s": self.cpu.map(|c| c.system),
            "server_cpu_pct": self.cpu_secs().map(|c| c * 100.0 / self.window_secs.max(1e-9)),
            "server_cpu_s_per_million_deliveries": self.cpu_per_million(),
            "server_rss_kib_ready": self.rss_kib.map(|r| r.0),
            "server_rss_kib_end": self.rss_kib.map(|r| r.1),
            "setup_errors": self.ready.stats.errors,
            "errors": self.final_stats.stats.errors,
            "closed": self.final_stats.stats.closed,
        })
    }
}

// ---------------------------------------------------------------- fanout

pub async fn fanout(a: FanoutArgs) -> Result<()> {
    let c = &a.common;
    if !(a.rate > 0.0 && a.rate <= 100_000.0) {
        bail!("--rate must be in (0, 100000]");
    }
    if a.compression && a.transport != Transport::Ws {
        bail!("--compression needs --transport ws");
    }
    c.layout()?;
    c.secret()?;
    c.api_key()?;
    let t = target(c).await?;
    let plan = Plan {
        transport: a.transport,
        channel: &a.channel,
        spread: 0,
        poll_timeout: 25,
        poll_interval: Duration::ZERO,
        deflate: a.compression,
        ticker: a.ticker,
    };
    let (workers, sources) = c.layout()?;
    let report_file = a.report.as_deref().map(report_file).transpose()?;
    if !c.json {
        println!(
            "bench fanout: {} {}{} subscribers on {} ({workers} workers, {} source addresses){}; {} publications of {} at {}/s",
            c.connections,
            a.transport.name(),
            if a.compression {
                " (permessage-deflate)"
            } else {
                ""
            },
            a.channel,
            sources.len(),
            t.server
                .as_ref()
                .map(|s| format!(", server pid {}", s.pid))
                .unwrap_or_default(),
            a.messages,
            if a.ticker {
                "ticker updates (~700 B)".to_owned()
            } else {
                format!("~{} B", a.size)
            },
            a.rate
        );
    }
    let progress = Progress::new(c.json);
    let p = phase(
        c,
        &t,
        &plan,
        a.messages,
        a.rate,
        a.size,
        a.drain_timeout,
        &progress,
        report_file.is_some(),
    )
    .await?;
    if let Some(path) = &report_file {
        report::write(
            path,
            &fanout_report(&a, &t, &p, workers as usize, sources.len()),
        )?;
    }
    if c.json {
        let mut v = p.to_json();
        v["mode"] = "fanout".into();
        v["channel"] = a.channel.clone().into();
        v["size"] = a.size.into();
        v["ticker"] = a.ticker.into();
        v["compression"] = a.compression.into();
        v["rate"] = a.rate.into();
        v["report"] = json!(report_file);
        println!("{v}");
        return Ok(());
    }
    let d = p.delivered();
    println!(
        "  subscribers: {} ready, {} failed, set up in {:.1} s",
        p.ready.stats.connected, p.ready.stats.failed, p.setup_secs
    );
    print_map("setup errors", &p.ready.stats.errors);
    println!(
        "  published: {} ok, {} failed, {:.1}/s achieved",
        p.published.ok,
        p.published.failed,
        p.published.rate()
    );
    print_map("publish errors", &p.published.errors);
    println!(
        "  delivered: {d}/{} ({:.2} %)",
        p.expected,
        p.delivered_pct()
    );
    let silent = p.silent();
    if silent > 0 {
        println!("  subscribers that received nothing: {silent}");
    }
    println!(
        "  deliveries per second: {:.0} (over {:.2} s, first publication to last delivery)",
        d as f64 / p.delivery_secs().max(1e-9),
        p.delivery_secs()
    );
    if let Some(h) = p.hist() {
        println!(
            "  latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.9)),
            ms(h.value_at_quantile(0.99)),
            ms(h.max())
        );
    }
    if let Some(cpu) = p.cpu {
        let total = cpu.user + cpu.system;
        println!(
            "  server CPU-seconds during the publish phase: {total:.3} (user {:.2} + system {:.2}; {:.1} % of one core over {:.2} s; idle before: {:.1} %)",
            cpu.user,
            cpu.system,
            total * 100.0 / p.window_secs,
            p.window_secs,
            p.settled.idle_cpu.unwrap_or(0.0) * 100.0
        );
    }
    if let Some(x) = p.cpu_per_million() {
        println!("  server CPU-seconds per million deliveries: {x:.3}");
    }
    if d > 0 {
        println!(
            "  bytes read by the subscribers per delivery: {:.1} (framing, pings and keep-alives included){}",
            p.window.bytes_in as f64 / d as f64,
            if a.compression {
                "; permessage-deflate"
            } else {
                ""
            }
        );
    }
    if let Some((r0, r1)) = p.rss_kib {
        println!(
            "  server RSS: {} with subscribers, {} at the end",
            kib(r0),
            kib(r1)
        );
    }
    print_map("errors", &p.final_stats.stats.errors);
    print_map("sessions closed by the server", &p.final_stats.stats.closed);
    if let Some(path) = &report_file {
        println!("  report: {}", path.display());
    }
    Ok(())
}

/// The `--report` of a fanout run.
fn fanout_report(a: &FanoutArgs, t: &Target, p: &Phase, workers: usize, sources: usize) -> Report {
    let c = &a.common;
    let d = p.delivered();
    let per_s = d as f64 / p.delivery_secs().max(1e-9);
    let mut headline = vec![("deliveries/s".to_owned(), format!("{per_s:.0}"))];
    let mut summary = vec![
        (
            "subscribers".to_owned(),
            format!(
                "{} ready, {} failed, set up in {:.1} s",
                p.ready.stats.connected, p.ready.stats.failed, p.setup_secs
            ),
        ),
        (
            "server settled".to_owned(),
            format!(
                "{} after {:.1} s (idle CPU {:.1} %)",
                if p.settled.settled { "yes" } else { "NO" },
                p.settled.secs,
                p.settled.idle_cpu.unwrap_or(0.0) * 100.0
            ),
        ),
        (
            "published".to_owned(),
            format!(
                "{} ok, {} failed, {:.1}/s achieved",
                p.published.ok,
                p.published.failed,
                p.published.rate()
            ),
        ),
        (
            "delivered".to_owned(),
            format!("{d}/{} ({:.2} %)", p.expected, p.delivered_pct()),
        ),
        (
            "subscribers that received nothing".to_owned(),
            p.silent().to_string(),
        ),
        (
            "deliveries per second".to_owned(),
            format!(
                "{per_s:.0} over {:.2} s (first publication to last delivery)",
                p.delivery_secs()
            ),
        ),
    ];
    if let Some(h) = p.hist() {
        let q = |q: f64| format!("{:.2} ms", ms(h.value_at_quantile(q)));
        headline.push(("latency p50".into(), q(0.5)));
        headline.push(("latency p99".into(), q(0.99)));
        summary.push((
            "latency".into(),
            format!(
                "p50 {}, p90 {}, p99 {}, max {:.2} ms, mean {:.2} ms",
                q(0.5),
                q(0.9),
                q(0.99),
                ms(h.max()),
                h.mean() / 1000.0
            ),
        ));
    }
    if let Some(cpu) = p.cpu {
        let total = cpu.user + cpu.system;
        summary.push((
            "server CPU-seconds, publish phase".into(),
            format!(
                "{total:.3} (user {:.2} + system {:.2}; {:.1} % of one core over {:.2} s)",
                cpu.user,
                cpu.system,
                total * 100.0 / p.window_secs.max(1e-9),
                p.window_secs
            ),
        ));
    }
    if let Some(x) = p.cpu_per_million() {
        headline.push(("CPU-s per million deliveries".into(), format!("{x:.3}")));
        summary.push((
            "server CPU-seconds per million deliveries".into(),
            format!("{x:.3}"),
        ));
    }
    if d > 0 {
        summary.push((
            "bytes read per delivery".into(),
            format!(
                "{:.1} (framing, pings and keep-alives included)",
                p.window.bytes_in as f64 / d as f64
            ),
        ));
    }
    if let Some((r0, r1)) = p.rss_kib {
        headline.push(("server RSS".into(), kib(r1)));
        summary.push((
            "server RSS".into(),
            format!("{} with subscribers, {} at the end", kib(r0), kib(r1)),
        ));
    }
    for (title, m) in [
        ("setup error", &p.ready.stats.errors),
        ("publish error", &p.published.errors),
        ("error", &p.final_stats.stats.errors),
        ("closed by the server", &p.final_stats.stats.closed),
    ] {
        for (k, v) in m {
            summary.push((format!("{title}: {k}"), v.to_string()));
        }
    }
    let mut params = common_params(c, t, workers, sources);
    params.insert(0, ("mode".into(), "fanout".into()));
    params.extend([
        (
            "--transport".to_owned(),
            format!(
                "{}{}",
                a.transport.name(),
                if a.compression {
                    " (permessage-deflate)"
                } else {
                    ""
                }
            ),
        ),
        ("--channel".to_owned(), a.channel.clone()),
        ("--messages".to_owned(), a.messages.to_string()),
        ("--rate".to_owned(), format!("{}/s", a.rate)),
        (
            "publication".to_owned(),
            if a.ticker {
                "ticker update (~700 B)".to_owned()
            } else {
                format!("~{} B (--size)", a.size)
            },
        ),
        (
            "--drain-timeout".to_owned(),
            humantime::format_duration(a.drain_timeout).to_string(),
        ),
    ]);
    let (samples, marks) = p.series.clone().unwrap_or_default();
    Report {
        title: "bench fanout".into(),
        subtitle: format!(
            "{} {} subscribers on one channel · {} publications at {}/s · {}",
            p.ready.stats.connected,
            a.transport.name(),
            p.published.ok,
            a.rate,
            report::now_utc()
        ),
        headline,
        params,
        summary,
        latency_us: p.hist().cloned(),
        samples,
        marks,
        deliveries: true,
        notes: server_notes(t),
    }
}

// ---------------------------------------------------------------- compare

pub async fn compare(a: CompareArgs) -> Result<()> {
    let c = &a.common;
    if !(a.rate > 0.0 && a.rate <= 1000.0) {
        bail!("--rate must be in (0, 1000]");
    }
    if a.poll_interval < Duration::from_millis(10) {
        bail!("--poll-interval must be at least 10ms");
    }
    c.layout()?;
    c.secret()?;
    c.api_key()?;
    let t = target(c).await?;
    if !c.json {
        println!(
            "bench compare: {} clients per transport on {}; {} updates of ~{} B at {}/s; plain polling every {}{}",
            c.connections,
            a.channel,
            a.messages,
            a.size,
            a.rate,
            humantime::format_duration(a.poll_interval),
            t.server
                .as_ref()
                .map(|s| format!("; server pid {}", s.pid))
                .unwrap_or_default(),
        );
    }
    let progress = Progress::new(c.json);
    let mut phases = Vec::new();
    for &tr in &a.transports {
        let plan = Plan {
            transport: tr,
            channel: &a.channel,
            spread: 0,
            poll_timeout: 0,
            poll_interval: a.poll_interval,
            deflate: false,
            ticker: false,
        };
        progress.next_stage();
        progress.line(&format!("- {} ...", tr.name()));
        phases.push(
            phase(
                c,
                &t,
                &plan,
                a.messages,
                a.rate,
                a.size,
                a.drain_timeout,
                &progress,
                false,
            )
            .await?,
        );
    }
    if c.json {
        println!(
            "{}",
            json!({
                "mode": "compare",
                "clients": c.connections,
                "channel": a.channel,
                "updates": a.messages,
                "rate": a.rate,
                "size": a.size,
                "poll_interval_s": a.poll_interval.as_secs_f64(),
                "publisher_requests_per_s": a.rate,
                "bytes_note": "bytes read and written by the clients' sockets during the window (HTTP headers, WebSocket framing, pings and keep-alives included; TCP/IP headers not included)",
                "results": phases.iter().map(Phase::to_json).collect::<Vec<_>>(),
            })
        );
        return Ok(());
    }
    println!();
    println!(
        "  {:<10} {:>13} {:>10} {:>12} {:>10} {:>10} {:>9} {:>8} {:>8}",
        "transport", "delivered", "client", "bytes/update", "(down", "up)", "server", "p50", "p99"
    );
    println!(
        "  {:<10} {:>13} {:>10} {:>12} {:>10} {:>10} {:>9} {:>8} {:>8}",
        "", "", "req/s", "", "", "", "CPU-s", "ms", "ms"
    );
    for p in &phases {
        let d = p.delivered().max(1) as f64;
        let name = match p.transport {
            Transport::Poll => format!("poll/{}", humantime::format_duration(a.poll_interval)),
            t => t.name().to_owned(),
        };
        let (p50, p99) = p
            .hist()
            .map(|h| (ms(h.value_at_quantile(0.5)), ms(h.value_at_quantile(0.99))))
            .unwrap_or((f64::NAN, f64::NAN));
        println!(
            "  {:<10} {:>13} {:>10.1} {:>12.0} {:>10.0} {:>10.0} {:>9} {:>8.1} {:>8.1}",
            name,
            format!("{}/{}", p.delivered(), p.expected),
            p.window.requests as f64 / p.window_secs.max(1e-9),
            (p.window.bytes_in + p.window.bytes_out) as f64 / d,
            p.window.bytes_in as f64 / d,
            p.window.bytes_out as f64 / d,
            p.cpu_secs()
                .map(|c| format!("{c:.3}"))
                .unwrap_or_else(|| "n/a".into()),
            p50,
            p99
        );
    }
    println!();
    println!(
        "  window: first update to last delivery ({:.0}-{:.0} s); the publisher's {} request(s)/s to /api/publish are not counted.",
        phases
            .iter()
            .map(|p| p.window_secs)
            .fold(f64::MAX, f64::min),
        phases.iter().map(|p| p.window_secs).fold(0.0, f64::max),
        a.rate
    );
    println!(
        "  bytes: read and written by the clients' sockets in the window, HTTP headers, WebSocket framing, pings and keep-alives included, TCP/IP headers (~66 B per segment) not."
    );
    for p in &phases {
        let errs: u64 = p.final_stats.stats.errors.values().sum::<u64>()
            + p.ready.stats.errors.values().sum::<u64>();
        let closed: u64 = p.final_stats.stats.closed.values().sum();
        if errs + closed + p.ready.stats.failed + p.published.failed > 0 {
            println!("  {}:", p.transport.name());
            print_map("setup errors", &p.ready.stats.errors);
            print_map("errors", &p.final_stats.stats.errors);
            print_map("sessions closed by the server", &p.final_stats.stats.closed);
            print_map("publish errors", &p.published.errors);
        }
    }
    Ok(())
}
