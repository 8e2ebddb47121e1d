//! The report of a run: the checker's findings per transport, the faults, publisher and
//! client counters, and anything else that makes the run fail. Printed as Markdown (pasted
//! into `docs/benchmarks.md` as is) and optionally written as JSON.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::checker::{Findings, Latency};
use crate::nemesis::FaultRecord;

/// What the run was asked to do.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    /// Publishing time, seconds.
    pub duration_s: f64,
    /// Subscribers (ws, sse, poll).
    pub subscribers: [u32; 3],
    /// Publications per second asked for.
    pub rate: f64,
    /// Publishers.
    pub publishers: u32,
    /// Channels.
    pub channels: u16,
    /// Channels per subscriber, at most.
    pub channels_per_subscriber: u16,
    /// The `switchboard` binary.
    pub binary: String,
}

/// Publisher counters.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PublishStats {
    /// Publications attempted.
    pub attempted: u64,
    /// Acknowledged.
    pub acknowledged: u64,
    /// Requests retried with the same idempotency key.
    pub retries: u64,
    /// Never acknowledged by the end.
    pub gave_up: u64,
    /// Refused with a client error.
    pub rejected: u64,
    /// Acknowledged per second of publishing.
    pub acknowledged_per_s: f64,
}

/// Client counters of one transport.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ClientStats {
    /// Transport.
    pub transport: String,
    /// Connections (WebSocket), streams (SSE) or requests (poll) opened.
    pub connects: u64,
    /// Of which failed.
    pub failures: u64,
    /// Deliveries withheld from the checker (`--sabotage-every`).
    pub sabotage_dropped: u64,
    /// Deliveries reported twice (`--sabotage-every`).
    pub sabotage_duplicated: u64,
}

/// A run's report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// No violation and no problem.
    pub passed: bool,
    /// What else failed the run (a fault kind never injected, a node that crashed by itself,
    /// subscribers that never caught up, a panic in a node's log...).
    pub problems: Vec<String>,
    /// Settings.
    pub settings: Settings,
    /// Wall time of the whole run, seconds.
    pub elapsed_s: f64,
    /// The checker's findings.
    pub findings: Findings,
    /// Faults injected, in order.
    pub faults: Vec<FaultRecord>,
    /// Faults per kind.
    pub fault_counts: BTreeMap<String, usize>,
    /// Publishers.
    pub publish: PublishStats,
    /// Subscribers' connections.
    pub clients: Vec<ClientStats>,
    /// SSE resumes that fell back from `Last-Event-ID` to `?since=`.
    pub sse_since_fallbacks: u64,
    /// Where configs and logs are (kept when the run failed).
    pub workdir: String,
}

impl Report {
    /// Violations found by the checker.
    pub fn violations(&self) -> u64 {
        self.findings.violations()
    }
}

fn latency(l: &Latency, p999: bool) -> String {
    if l.count == 0 {
        return "–".into();
    }
    if p999 {
        format!(
            "{:.1} / {:.1} / {:.1} / {:.0}",
            l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms
        )
    } else {
        format!("{:.0} / {:.0} (n={})", l.p50_ms, l.max_ms, l.count)
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        let verdict = if self.passed { "PASSED" } else { "FAILED" };
        writeln!(
            f,
            "## switchboard-chaos: {verdict} ({} violations, {} other problems)\n",
            self.violations(),
            self.problems.len()
        )?;
        writeln!(
            f,
            "{:.0} s of publishing ({:.0} s in all); subscribers ws/sse/poll {}/{}/{}; {} publishers at {}/s asked over {} channels (1–{} per subscriber); binary `{}`.\n",
            s.duration_s,
            self.elapsed_s,
            s.subscribers[0],
            s.subscribers[1],
            s.subscribers[2],
            s.publishers,
            s.rate,
            s.channels,
            s.channels_per_subscriber,
            s.binary
        )?;
        let p = &self.publish;
        writeln!(
            f,
            "Publications: {} attempted, **{} acknowledged** ({:.0}/s), {} retries with the same key, {} never acknowledged, {} refused. Stored twice: {}. Conflicting acknowledgements: {}. Epochs: {} Redis wipes, at most {} epochs per channel, {} unexplained epoch changes.\n",
            thousands(p.attempted),
            thousands(p.acknowledged),
            p.acknowledged_per_s,
            thousands(p.retries),
            p.gave_up,
            p.rejected,
            self.findings.stored_twice,
            self.findings.conflicting_acks,
            self.findings.wipes,
            self.findings.max_epochs_per_channel,
            self.findings.unexplained_epoch_changes
        )?;
        writeln!(
            f,
            "| transport | streams | acknowledged in span | deliveries checked | lost | duplicated | reordered | gaps | unexpected | silent epoch changes | stale | never subscribed | discontinuities announced | spurious | fault → announcement ms p50 / max | calm latency ms p50 / p99 / p99.9 / max |"
        )?;
        writeln!(
            f,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        )?;
        for t in &self.findings.transports {
            writeln!(
                f,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                t.transport.name(),
                t.streams,
                thousands(t.expected),
                thousands(t.deliveries),
                t.lost,
                t.duplicated,
                t.reordered,
                t.gaps,
                t.unexpected,
                t.silent_epoch_changes,
                t.stale,
                t.never_started,
                t.announcements,
                t.spurious_announcements,
                latency(&t.fault_to_announcement, false),
                latency(&t.calm_latency, true)
            )?;
        }
        writeln!(f)?;
        let counts: Vec<String> = self
            .fault_counts
            .iter()
            .map(|(k, n)| format!("{k} ×{n}"))
            .collect();
        writeln!(
            f,
            "Faults ({}): {}.\n",
            self.faults.len(),
            counts.join(", ")
        )?;
        let clients: Vec<String> = self
            .clients
            .iter()
            .map(|c| {
                format!(
                    "{} {} opened ({} failed)",
                    c.transport,
                    thousands(c.connects),
                    c.failures
                )
            })
            .collect();
        writeln!(
            f,
            "Client connections: {}; SSE resumes falling back to `?since=`: {}.\n",
            clients.join(", "),
            self.sse_since_fallbacks
        )?;
        for c in self
            .clients
            .iter()
            .filter(|c| c.sabotage_dropped + c.sabotage_duplicated > 0)
        {
            writeln!(
                f,
                "SABOTAGE: {} deliveries withheld from the checker, {} reported twice over {}.\n",
                c.sabotage_dropped, c.sabotage_duplicated, c.transport
            )?;
        }
        writeln!(f, "<details><summary>fault log</summary>\n")?;
        for r in &self.faults {
            writeln!(
                f,
                "- {:7.1} s {} {}: {} ({} ms)",
                r.at_s,
                r.kind.name(),
                r.target,
                r.note,
                r.took_ms
            )?;
        }
        writeln!(f, "\n</details>\n")?;
        for p in &self.problems {
            writeln!(f, "PROBLEM: {p}")?;
        }
        for e in &self.findings.examples {
            writeln!(f, "VIOLATION: {e}")?;
        }
        writeln!(f, "Work directory: {}", self.workdir)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_are_separated() {
        assert_eq!(super::thousands(1_234_567), "1,234,567");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(1000), "1,000");
    }
}
