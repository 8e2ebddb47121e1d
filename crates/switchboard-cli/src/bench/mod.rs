//! `switchboard bench`: load tests against a running node on 127.0.0.1.
//!
//! The parent process (`bench idle|fanout|compare`) measures the server through `/proc` and
//! publishes through the server API; the client sessions live in worker processes
//! (`bench worker`, hidden) because one process may hold only 20,000 open files. Each worker
//! holds at most ~8,000 sessions, spread over source addresses 127.0.0.1..127.0.0.N so no
//! address runs out of ephemeral ports. Everything is bounded: session counts, publication
//! counts, and time (`--max-duration`; workers also exit by themselves).
//!
//! With `--url https://127.0.0.1:PORT --ca FILE` every client speaks TLS; `--transport sse-h2`
//! opens the SSE streams over HTTP/2, many per connection (see [`h2`]).
//!
//! On a terminal the run draws progress bars ([`progress`]); `fanout` and `idle` take
//! `--report FILE`, a self-contained HTML page with SVG charts ([`report`]) of the latency and
//! of the time series that [`sampler`] records while the fleet runs.

mod fleet;
mod h2;
mod http;
mod modes;
mod procstat;
mod progress;
mod report;
mod sampler;
mod scan;
mod tls;
mod worker;
mod wsdeflate;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use serde::{Deserialize, Serialize};

/// Sessions one worker process holds at most (the open-file limit is 20,000 per process).
const MAX_PER_WORKER: u64 = 8_000;
/// Sessions per source address by default (ephemeral ports: ~28k per address).
const PER_SOURCE: u64 = 8_000;

/// Options of `bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(clap::Subcommand)]
enum Mode {
    /// Open N idle sessions and measure the server's resident memory per session.
    #[command(
        after_help = "Examples (SSE over HTTP/1.1, then over HTTP/2 + TLS on a node started with tls_cert/tls_key):\n  \
        switchboard bench idle --url http://127.0.0.1:8200 --connections 10000 --transport sse --jwt-secret s --pid $PID\n  \
        switchboard bench idle --url https://127.0.0.1:8443 --ca cert.pem --connections 10000 --transport sse-h2 --jwt-secret s --pid $PID"
    )]
    Idle(IdleArgs),
    /// N subscribers on one channel; publish M messages at R/s; delivery latency and server CPU
    /// per delivery.
    Fanout(FanoutArgs),
    /// Plain polling vs SSE vs WebSocket for the same clients and the same update stream.
    Compare(CompareArgs),
    /// Internal: one worker process holding client sessions (spawned by the other modes).
    #[command(hide = true)]
    Worker,
}

/// Transport of the client sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// WebSocket (`/ws`).
    Ws,
    /// Server-Sent Events (`/sse`), one HTTP/1.1 connection per stream.
    Sse,
    /// Server-Sent Events over HTTP/2, `--streams-per-connection` streams per connection: h2
    /// through ALPN on an https URL, h2c (prior knowledge) on http.
    #[serde(rename = "sse-h2")]
    SseH2,
    /// HTTP polling (`/poll`).
    Poll,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Ws => "ws",
            Transport::Sse => "sse",
            Transport::SseH2 => "sse-h2",
            Transport::Poll => "poll",
        }
    }
}

/// Options shared by every mode.
#[derive(clap::Args, Clone, Debug)]
struct Common {
    /// Node base URL; only 127.0.0.1 (or localhost) is accepted. With https (a node serving
    /// TLS) every client speaks TLS and --ca is needed.
    #[arg(long, env = "SWITCHBOARD_URL", default_value = "http://127.0.0.1:8000")]
    url: String,
    /// PEM certificates to trust with an https URL: the node's own certificate (self-signed
    /// works) or the CA that issued it.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// SSE streams per HTTP/2 connection with `--transport sse-h2` (the node allows 200).
    #[arg(long, value_name = "N", default_value_t = h2::DEFAULT_STREAMS_PER_CONNECTION, value_parser = clap::value_parser!(u64).range(1..=200))]
    streams_per_connection: u64,
    /// Server process id, to read its memory and CPU time from /proc (default: the process
    /// listening on the URL's port, when it is ours to read).
    #[arg(long)]
    pid: Option<u32>,
    /// Server API key (publishing in `fanout` and `compare`).
    #[arg(long, env = "SWITCHBOARD_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// HMAC secret of the node: each session gets a token for user `bench-<n>`.
    #[arg(long, env = "SWITCHBOARD_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Client sessions.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    connections: u64,
    /// Worker processes (default: one per 8,000 sessions).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
    workers: Option<u64>,
    /// Source addresses 127.0.0.1..127.0.0.N (default: one per 8,000 sessions).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=250))]
    sources: Option<u64>,
    /// Sessions being set up at the same time, per worker.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=5000))]
    connect_concurrency: u64,
    /// Longest wait for every session to be set up (default: 60 s + 10 ms per session).
    #[arg(long, value_parser = humantime::parse_duration)]
    ready_timeout: Option<Duration>,
    /// Longest wait for the server to settle (RSS stops growing, CPU goes quiet) after the
    /// sessions are up.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    settle_timeout: Duration,
    /// The whole run stops (and its workers with it) after this long.
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    max_duration: Duration,
    /// Print the results as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Options of `bench idle`.
#[derive(clap::Args, Clone, Debug)]
struct IdleArgs {
    #[command(flatten)]
    common: Common,
    /// Transport (poll keeps no session open, so it does not apply). sse-h2 puts
    /// --streams-per-connection streams on each HTTP/2 connection.
    #[arg(long, value_enum, default_value = "ws")]
    transport: Transport,
    /// Keep the sessions open this long after measuring.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    hold: Duration,
    /// Channel prefix: session n subscribes to `<prefix>-<n % 100>`.
    #[arg(long, default_value = "bench:idle")]
    channel: String,
    /// Write a self-contained HTML report to FILE: sessions and server RSS and CPU over time
    /// as the sessions connect and idle, with the run's parameters and figures.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
}

/// Options of `bench fanout`.
#[derive(clap::Args, Clone, Debug)]
struct FanoutArgs {
    #[command(flatten)]
    common: Common,
    /// Transport of the subscribers (poll = long-polling with `timeout=25`).
    #[arg(long, value_enum, default_value = "ws")]
    transport: Transport,
    /// Publications.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    messages: u64,
    /// Publications per second.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Approximate size of each publication's data in bytes.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(30..=60_000))]
    size: u64,
    /// Publish a realistic ticker update (~700 B of JSON: symbol, prices, sizes, the top of an
    /// order book, numbers changing with every update) instead of `--size` bytes of padding,
    /// which compresses unrealistically well.
    #[arg(long)]
    ticker: bool,
    /// WebSocket subscribers offer permessage-deflate and require it (the node must enable
    /// `websocket.compression` or a namespace's `compression`); each compressed message is
    /// inflated to read its timestamp.
    #[arg(long)]
    compression: bool,
    /// The channel every subscriber joins.
    #[arg(long, default_value = "bench:fanout")]
    channel: String,
    /// Longest wait for deliveries after the last publication.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    drain_timeout: Duration,
    /// Write a self-contained HTML report to FILE: latency histogram and percentile curve,
    /// deliveries/s, sessions, server CPU and RSS over time, the run's parameters and figures.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
}

/// Options of `bench compare`.
#[derive(clap::Args, Clone, Debug)]
struct CompareArgs {
    #[command(flatten)]
    common: Common,
    /// Updates published (one stream, the same for every transport).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    messages: u64,
    /// Updates per second.
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Approximate size of each update's data in bytes.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(30..=60_000))]
    size: u64,
    /// Interval of the plain pollers (`/poll?...&timeout=0`).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    poll_interval: Duration,
    /// Transports to compare, in order.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "poll,sse,ws")]
    transports: Vec<Transport>,
    /// The channel of the update stream.
    #[arg(long, default_value = "bench:compare")]
    channel: String,
    /// Longest wait for deliveries after the last update.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    drain_timeout: Duration,
}

/// Runs `switchboard bench ...`.
///
/// # Errors
/// Bad options, an unreachable node, a worker failure, or the run's time limit.
pub async fn run(a: BenchArgs) -> Result<()> {
    let (common, fut): (Common, std::pin::Pin<Box<dyn Future<Output = Result<()>>>>) = match a.mode
    {
        Mode::Worker => return worker::main().await,
        Mode::Idle(a) => (a.common.clone(), Box::pin(modes::idle(a))),
        Mode::Fanout(a) => (a.common.clone(), Box::pin(modes::fanout(a))),
        Mode::Compare(a) => (a.common.clone(), Box::pin(modes::compare(a))),
    };
    match tokio::time::timeout(common.max_duration, fut).await {
        Ok(r) => r,
        // Dropping the run drops its fleets, which kills their workers.
        Err(_) => bail!(
            "the run exceeded --max-duration {}; workers stopped",
            humantime::format_duration(common.max_duration)
        ),
    }
}

/// Whether the URL is https, and the node's port, after checking that the URL points at this
/// machine.
fn local_port(url: &str) -> Result<(bool, u16)> {
    let (tls, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(r), _) => (false, r),
        (_, Some(r)) => (true, r),
        _ => bail!("--url must be http://127.0.0.1:PORT or https://127.0.0.1:PORT"),
    };
    let hostport = rest.split('/').next().unwrap_or("");
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| anyhow!("bad port in --url {url}"))?,
        ),
        None => (hostport, if tls { 443 } else { 80 }),
    };
    if host != "127.0.0.1" && host != "localhost" {
        bail!(
            "bench only talks to 127.0.0.1 (got `{host}`): it is a load generator and must not be pointed at another machine"
        );
    }
    Ok((tls, port))
}

impl Common {
    fn secret(&self) -> Result<String> {
        self.jwt_secret.clone().ok_or_else(|| {
            anyhow!(
                "--jwt-secret (or SWITCHBOARD_JWT_SECRET) is needed to mint the sessions' tokens"
            )
        })
    }

    fn api_key(&self) -> Result<String> {
        self.api_key.clone().ok_or_else(|| {
            anyhow!(
                "--api-key (or SWITCHBOARD_API_KEY) is needed to publish through the server API"
            )
        })
    }

    /// Worker count and source addresses for `self.connections` sessions.
    fn layout(&self) -> Result<(u64, Vec<std::net::Ipv4Addr>)> {
        let n = self.connections;
        let workers = self.workers.unwrap_or(n.div_ceil(MAX_PER_WORKER)).min(n);
        if n.div_ceil(workers) > MAX_PER_WORKER {
            bail!(
                "{} sessions per worker is too many (at most {MAX_PER_WORKER}: the open-file limit is 20,000 per process); raise --workers",
                n.div_ceil(workers)
            );
        }
        let sources = self.sources.unwrap_or(n.div_ceil(PER_SOURCE)).max(1);
        let addrs = (1..=sources)
            .map(|i| std::net::Ipv4Addr::new(127, 0, 0, i as u8))
            .collect();
        Ok((workers, addrs))
    }
}

#[cfg(test)]
mod tests {
    use super::local_port;

    #[test]
    fn urls() {
        assert_eq!(local_port("http://127.0.0.1:8200").unwrap(), (false, 8200));
        assert_eq!(local_port("https://127.0.0.1:8443/").unwrap(), (true, 8443));
        assert_eq!(local_port("https://localhost").unwrap(), (true, 443));
        assert!(local_port("https://10.0.0.1:8443").is_err());
        assert!(local_port("ftp://127.0.0.1:21").is_err());
    }
}
