//! Time series of a run for `--report`: every ~250 ms the parent records how many sessions are
//! up, how many publications were delivered so far, and the server's CPU time and RSS (from
//! `/proc`). The series stays bounded: when it is full, every other sample is dropped and the
//! interval doubles, so a long run keeps its whole span at a coarser step.

use std::time::Duration;

use tokio::time::Instant;

use super::fleet::Counts;
use super::procstat::Server;

/// Default sampling interval.
pub const EVERY: Duration = Duration::from_millis(250);
/// Default bound on the samples kept (17 min at 250 ms before the first thinning).
pub const CAPACITY: usize = 4096;

/// One point of the run's time series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Seconds since the sampler started.
    pub t: f64,
    /// Sessions ready.
    pub sessions: u64,
    /// Publications delivered so far (summed over every session).
    pub delivered: u64,
    /// Server CPU seconds (user + system) consumed so far.
    pub cpu_s: Option<f64>,
    /// Server resident memory.
    pub rss_kib: Option<u64>,
}

/// A labelled moment of the run (sessions ready, first publication, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    /// Seconds since the sampler started.
    pub t: f64,
    /// What happened.
    pub label: String,
}

/// Records [`Sample`]s at a fixed interval into a bounded vector.
#[derive(Debug)]
pub struct Sampler {
    start: Instant,
    every: Duration,
    next: Instant,
    capacity: usize,
    server: Option<Server>,
    samples: Vec<Sample>,
    marks: Vec<Mark>,
}

impl Sampler {
    /// A sampler of `server` (none: only session and delivery counts) every `every`, keeping
    /// at most `capacity` samples (at least 16).
    pub fn new(server: Option<Server>, every: Duration, capacity: usize) -> Self {
        let start = Instant::now();
        Self {
            start,
            every,
            next: start,
            capacity: capacity.max(16),
            server,
            samples: Vec::new(),
            marks: Vec::new(),
        }
    }

    /// When the next sample is due.
    pub fn due(&self) -> Instant {
        self.next
    }

    /// Seconds since the start.
    pub fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Records a sample when one is due.
    pub fn poll(&mut self, counts: Counts) {
        let now = Instant::now();
        if now < self.next {
            return;
        }
        self.record(counts);
        // A late call skips the missed slots rather than catching up with a burst.
        while self.next <= now {
            self.next += self.every;
        }
    }

    /// Records a sample now (the server's figures are left out once it is gone).
    pub fn record(&mut self, counts: Counts) {
        let (cpu_s, rss_kib) = match &self.server {
            Some(s) => (s.cpu_secs().ok(), s.rss_kib().ok()),
            None => (None, None),
        };
        self.push(Sample {
            t: self.elapsed(),
            sessions: counts.connected,
            delivered: counts.received,
            cpu_s,
            rss_kib,
        });
    }

    fn push(&mut self, s: Sample) {
        if self.samples.len() >= self.capacity {
            // Keep the first, the third, ...: the span stays whole, the step doubles.
            let mut i = 0;
            self.samples.retain(|_| {
                i += 1;
                i % 2 == 1
            });
            self.every *= 2;
        }
        self.samples.push(s);
    }

    /// Labels the current moment.
    pub fn mark(&mut self, label: impl Into<String>) {
        self.marks.push(Mark {
            t: self.elapsed(),
            label: label.into(),
        });
    }

    /// The samples and marks.
    pub fn into_parts(self) -> (Vec<Sample>, Vec<Mark>) {
        (self.samples, self.marks)
    }
}

/// `(t, rate)` of a cumulative series `v` over a trailing window of about `window` seconds:
/// smooths the steps of counters that are reported every 100 ms and sampled every 250 ms.
pub fn rates(
    samples: &[Sample],
    window: f64,
    v: impl Fn(&Sample) -> Option<f64>,
) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let mut j = 0;
    for (i, s) in samples.iter().enumerate() {
        while j < i && s.t - samples[j + 1].t >= window {
            j += 1;
        }
        if j == i {
            continue;
        }
        let a = &samples[j];
        if let (Some(v0), Some(v1)) = (v(a), v(s)) {
            let dt = s.t - a.t;
            if dt > 0.0 {
                out.push((s.t, ((v1 - v0) / dt).max(0.0)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, delivered: u64) -> Sample {
        Sample {
            t,
            sessions: 0,
            delivered,
            cpu_s: Some(t / 2.0),
            rss_kib: Some(1024),
        }
    }

    #[test]
    fn stays_bounded_and_keeps_the_span() {
        let mut s = Sampler::new(None, Duration::from_millis(250), 16);
        for i in 0..100 {
            s.push(sample(f64::from(i), 0));
        }
        assert!(s.samples.len() <= 16, "{}", s.samples.len());
        assert_eq!(s.samples[0].t, 0.0);
        assert_eq!(s.samples.last().unwrap().t, 99.0);
        assert!(s.every > Duration::from_millis(250));
        assert!(s.samples.windows(2).all(|w| w[0].t < w[1].t));
    }

    #[test]
    fn rates_over_a_trailing_window() {
        let samples: Vec<_> = (0..=8u32)
            .map(|i| sample(f64::from(i) * 0.25, u64::from(i) * 250))
            .collect();
        let r = rates(&samples, 1.0, |s| Some(s.delivered as f64));
        assert_eq!(r.len(), 8);
        assert!(r.iter().all(|(_, v)| (*v - 1000.0).abs() < 1e-6), "{r:?}");
        let cpu = rates(&samples, 1.0, |s| s.cpu_s);
        assert!(cpu.iter().all(|(_, v)| (*v - 0.5).abs() < 1e-6), "{cpu:?}");
    }
}
