//! Command-line options (also built by the short-run test).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::nemesis::FaultKind;

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

fn mix(s: &str) -> Result<[u32; 3], String> {
    let parts: Vec<u32> = s
        .split(':')
        .map(|p| p.trim().parse::<u32>().map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    match parts[..] {
        [a, b, c] if a + b + c > 0 => Ok([a, b, c]),
        _ => Err("expected three weights ws:sse:poll, e.g. 1:1:1".into()),
    }
}

/// `switchboard-chaos`: starts its own `redis-server` and three nodes, runs WebSocket, SSE and
/// long-poll subscribers and idempotent publishers through fault-injecting proxies, injects
/// faults, and checks that no acknowledged publication was lost, duplicated or reordered.
/// Exits 1 on any violation.
#[derive(Clone, Debug, Parser)]
#[command(name = "switchboard-chaos", version)]
pub struct Options {
    /// The `switchboard` binary (default: the one cargo built next to this program, e.g.
    /// target/release/switchboard for a release build).
    #[arg(long, env = "SWITCHBOARD_BIN")]
    pub bin: Option<PathBuf>,
    /// The `redis-server` binary.
    #[arg(long, env = "REDIS_SERVER", default_value = "redis-server")]
    pub redis_server: PathBuf,
    /// How long publishers publish (faults stop `calm_tail` before the end).
    #[arg(long, value_parser = duration, default_value = "2m")]
    pub duration: Duration,
    /// Subscribers in all.
    #[arg(long, default_value_t = 30)]
    pub subscribers: u32,
    /// Weights of WebSocket, SSE and poll subscribers.
    #[arg(long, value_parser = mix, default_value = "1:1:1")]
    pub mix: [u32; 3],
    /// Publications per second, all publishers together.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Publishers (0: one per 40 publications per second, at least 2).
    #[arg(long, default_value_t = 0)]
    pub publishers: u32,
    /// Channels.
    #[arg(long, default_value_t = 8)]
    pub channels: u16,
    /// Each subscriber subscribes to 1 up to this many channels.
    #[arg(long, default_value_t = 2)]
    pub channels_per_subscriber: u16,
    /// Pause between two polls of a poll subscriber (jittered ±50 %).
    #[arg(long, value_parser = duration, default_value = "500ms")]
    pub poll_interval: Duration,
    /// Fault kinds (repeatable; default all).
    #[arg(long = "fault", value_enum)]
    pub faults: Vec<FaultKind>,
    /// At most this many faults.
    #[arg(long, default_value_t = 1000)]
    pub max_faults: usize,
    /// No fault in the first part of the run.
    #[arg(long, value_parser = duration, default_value = "5s")]
    pub warmup: Duration,
    /// No fault in the last part of the run.
    #[arg(long, value_parser = duration, default_value = "10s")]
    pub calm_tail: Duration,
    /// Shortest gap between two faults.
    #[arg(long, value_parser = duration, default_value = "4s")]
    pub gap_min: Duration,
    /// Longest gap between two faults.
    #[arg(long, value_parser = duration, default_value = "8s")]
    pub gap_max: Duration,
    /// SIGSTOP length.
    #[arg(long, value_parser = duration, default_value = "3s")]
    pub pause: Duration,
    /// Downtime of a killed node or Redis.
    #[arg(long, value_parser = duration, default_value = "1s")]
    pub down: Duration,
    /// Calm again this long after a fault (for latency figures).
    #[arg(long, value_parser = duration, default_value = "3s")]
    pub settle: Duration,
    /// After publishing stops, longest wait for every subscriber to catch up.
    #[arg(long, value_parser = duration, default_value = "60s")]
    pub converge_timeout: Duration,
    /// Nodes' `shutdown_grace` (a drain takes at most this long).
    #[arg(long, value_parser = duration, default_value = "5s")]
    pub shutdown_grace: Duration,
    /// Directory for configs and logs (default: a new one under the temp dir).
    #[arg(long)]
    pub workdir: Option<PathBuf>,
    /// Keep the directory even when the run passes (it is kept on failure).
    #[arg(long)]
    pub keep: bool,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Do not fail when a fault kind was never injected.
    #[arg(long)]
    pub allow_missing_faults: bool,
    /// Checks the checker: withhold one delivery in N from it and report another one twice
    /// (as if the server had lost or repeated them). The run must then fail with exactly
    /// those counts as lost and duplicated. 0: off.
    #[arg(long, default_value_t = 0)]
    pub sabotage_every: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self::parse_from(["switchboard-chaos"])
    }
}

impl Options {
    /// Fault kinds in effect.
    pub fn fault_kinds(&self) -> Vec<FaultKind> {
        if self.faults.is_empty() {
            FaultKind::ALL.to_vec()
        } else {
            let mut k = self.faults.clone();
            k.sort();
            k.dedup();
            k
        }
    }

    /// Publishers in effect.
    pub fn publisher_count(&self) -> u32 {
        if self.publishers > 0 {
            self.publishers
        } else {
            ((self.rate / 40.0).ceil() as u32).max(2)
        }
    }
}
