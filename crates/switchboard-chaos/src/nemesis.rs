//! The nemesis: injects one fault at a time, kinds in shuffled rounds (every kind once before
//! any kind twice), a random gap between faults, bounded in count and by a time window; each
//! fault ends with everything running again.

use std::time::Duration;

use anyhow::Result;
use rand::seq::SliceRandom as _;
use serde::Serialize;
use tokio::time::Instant;

use crate::ctx::{Ctx, Event};
use crate::procs::{Node, Redis};
use crate::proxy::Proxy;

/// A kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// `kill -9` of a node, restart on the same port.
    Kill,
    /// SIGTERM of a node (drain), restart once it exited.
    Drain,
    /// SIGSTOP of a node for a few seconds, then SIGCONT.
    Pause,
    /// `kill -9` of Redis and a restart with its data (AOF): epochs stay.
    RedisRestart,
    /// `kill -9` of Redis and a restart without its data: new epochs, clients told.
    RedisWipe,
    /// Abrupt cut (TCP reset) of all client connections or a random share, through the
    /// proxies.
    Cut,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 6] = [
        FaultKind::Kill,
        FaultKind::Drain,
        FaultKind::Pause,
        FaultKind::RedisRestart,
        FaultKind::RedisWipe,
        FaultKind::Cut,
    ];

    /// Name as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Drain => "drain",
            FaultKind::Pause => "pause",
            FaultKind::RedisRestart => "redis-restart",
            FaultKind::RedisWipe => "redis-wipe",
            FaultKind::Cut => "cut",
        }
    }
}

/// One injected fault.
#[derive(Clone, Debug, Serialize)]
pub struct FaultRecord {
    /// Kind.
    pub kind: FaultKind,
    /// What it hit.
    pub target: String,
    /// When it began, seconds since the start of the run.
    pub at_s: f64,
    /// How long until everything ran again, ms.
    pub took_ms: u64,
    /// Details.
    pub note: String,
}

/// When and how the nemesis strikes.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Kinds to inject.
    pub kinds: Vec<FaultKind>,
    /// No fault before this (since the start of the run).
    pub start: Duration,
    /// Every fault over by this (since the start of the run).
    pub end: Duration,
    /// At most this many faults.
    pub max_faults: usize,
    /// Gap between faults, drawn from this range.
    pub gap: (Duration, Duration),
    /// SIGSTOP length.
    pub pause: Duration,
    /// Downtime of a killed node or Redis.
    pub down: Duration,
    /// Longest wait for a drained node to exit.
    pub drain_wait: Duration,
    /// A period counts as calm from this long after a fault.
    pub settle: Duration,
}

impl Plan {
    /// The longest a fault of `kind` may take, to keep it inside the window.
    fn budget(&self, kind: FaultKind) -> Duration {
        let restart = Duration::from_secs(5);
        match kind {
            FaultKind::Kill | FaultKind::RedisRestart | FaultKind::RedisWipe => self.down + restart,
            FaultKind::Drain => self.drain_wait + restart,
            FaultKind::Pause => self.pause + Duration::from_secs(1),
            FaultKind::Cut => Duration::from_secs(1),
        }
    }
}

/// What the nemesis can hit.
pub struct Targets<'a> {
    /// Redis.
    pub redis: &'a mut Redis,
    /// The nodes.
    pub nodes: &'a mut [Node],
    /// The proxies, one per node.
    pub proxies: &'a [Proxy],
}

/// Runs the plan; returns the faults injected.
///
/// # Errors
/// A process could not be restarted (the run cannot go on).
pub async fn run(ctx: &Ctx, plan: &Plan, mut t: Targets<'_>) -> Result<Vec<FaultRecord>> {
    let mut out = Vec::new();
    let mut round: Vec<FaultKind> = Vec::new();
    let end = ctx.start() + plan.end;
    tokio::time::sleep_until(ctx.start() + plan.start).await;
    while out.len() < plan.max_faults && !plan.kinds.is_empty() {
        if round.is_empty() {
            round = plan.kinds.clone();
            round.shuffle(&mut rand::rng());
        }
        let Some(&kind) = round.last() else { break };
        if Instant::now() + plan.budget(kind) > end {
            break;
        }
        round.pop();
        let at = ctx.now_us();
        ctx.fault_begins();
        ctx.send(Event::Fault(at, kind == FaultKind::RedisWipe))
            .await;
        let started = Instant::now();
        let (target, note) = inject(kind, plan, &mut t).await?;
        ctx.calm_after(plan.settle);
        out.push(FaultRecord {
            kind,
            target,
            at_s: at as f64 / 1e6,
            took_ms: started.elapsed().as_millis() as u64,
            note,
        });
        let (lo, hi) = plan.gap;
        let gap = lo + (hi.saturating_sub(lo)).mul_f64(rand::random::<f64>());
        tokio::time::sleep_until((Instant::now() + gap).min(end)).await;
    }
    Ok(out)
}

async fn inject(kind: FaultKind, plan: &Plan, t: &mut Targets<'_>) -> Result<(String, String)> {
    let i = rand::random_range(0..t.nodes.len());
    let node = format!("node-{i}");
    Ok(match kind {
        FaultKind::Kill => {
            t.nodes[i].crash_and_restart(plan.down).await?;
            (node, "kill -9, restarted on the same port".into())
        }
        FaultKind::Drain => {
            let (took, clean) = t.nodes[i].drain_and_restart(plan.drain_wait).await?;
            let how = if clean {
                "exited by itself"
            } else {
                "did not exit in time, killed"
            };
            (node, format!("SIGTERM, {how} after {took:.1?}, restarted"))
        }
        FaultKind::Pause => {
            t.nodes[i].pause(plan.pause).await?;
            (node, format!("SIGSTOP for {:?}, SIGCONT", plan.pause))
        }
        FaultKind::RedisRestart => {
            t.redis.crash_and_restart(false, plan.down).await?;
            ("redis".into(), "kill -9, restarted with its AOF".into())
        }
        FaultKind::RedisWipe => {
            t.redis.crash_and_restart(true, plan.down).await?;
            ("redis".into(), "kill -9, restarted without data".into())
        }
        FaultKind::Cut => {
            if rand::random::<bool>() {
                let n: usize = t.proxies.iter().map(|p| p.cut(1.0)).sum();
                ("all nodes".into(), format!("cut all {n} connections"))
            } else {
                let share = 0.3 + 0.5 * rand::random::<f64>();
                let n = t.proxies[i].cut(share);
                (
                    node,
                    format!("cut {n} connections ({:.0} % of them)", share * 100.0),
                )
            }
        }
    })
}
