//! The parent's side of the worker protocol: spawn workers, follow their progress, collect
//! their counters and histograms, stop them.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::sampler::Sampler;
use super::worker::{Event, Stats, WorkerSpec, new_histogram};

struct Proc {
    child: Child,
    stdin: ChildStdin,
}

/// Merged counters of every worker.
#[derive(Debug, Default)]
pub struct Merged {
    /// Summed counters (`hist` unused).
    pub stats: Stats,
    /// Merged latency histogram (µs), when asked for.
    pub hist: Option<Histogram<u64>>,
}

/// Session and message counts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Sessions ready.
    pub connected: u64,
    /// Sessions that failed.
    pub failed: u64,
    /// Publications received.
    pub received: u64,
    /// Other messages received.
    pub other: u64,
}

/// Running workers.
pub struct Fleet {
    procs: Vec<Proc>,
    rx: mpsc::UnboundedReceiver<(usize, Option<Event>)>,
    /// Latest counters per worker.
    progress: Vec<Counts>,
    ready: Vec<bool>,
    replies: Vec<Option<Stats>>,
    exited: Vec<bool>,
    stopping: bool,
    /// Records the run's time series while the fleet is pumped (`--report`).
    sampler: Option<Sampler>,
}

impl Fleet {
    /// Starts one worker process per spec (`<current exe> bench worker`).
    ///
    /// # Errors
    /// A worker cannot be started.
    pub async fn spawn(specs: Vec<WorkerSpec>) -> Result<Self> {
        let exe = std::env::current_exe().context("cannot find the switchboard executable")?;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut procs = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let mut child = Command::new(&exe)
                .args(["bench", "worker"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .context("cannot start a bench worker")?;
            let mut stdin = child.stdin.take().context("worker stdin")?;
            let stdout = child.stdout.take().context("worker stdout")?;
            let mut line = serde_json::to_string(spec)?;
            line.push('\n');
            stdin.write_all(line.as_bytes()).await?;
            stdin.flush().await?;
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    match serde_json::from_str::<Event>(&l) {
                        Ok(ev) => {
                            let _ = tx.send((i, Some(ev)));
                        }
                        Err(_) => eprintln!("bench worker {i}: {l}"),
                    }
                }
                let _ = tx.send((i, None));
            });
            procs.push(Proc { child, stdin });
        }
        let n = procs.len();
        Ok(Self {
            procs,
            rx,
            progress: vec![Counts::default(); n],
            ready: vec![false; n],
            replies: vec![None; n],
            exited: vec![false; n],
            stopping: false,
            sampler: None,
        })
    }

    fn apply(&mut self, i: usize, ev: Option<Event>) -> Result<()> {
        match ev {
            Some(Event::Progress {
                connected,
                failed,
                received,
                other,
            }) => {
                self.progress[i] = Counts {
                    connected,
                    failed,
                    received,
                    other,
                }
            }
            Some(Event::Ready { connected, failed }) => {
                self.progress[i].connected = connected;
                self.progress[i].failed = failed;
                self.ready[i] = true;
            }
            Some(Event::Stats(s)) => {
                self.progress[i] = Counts {
                    connected: s.connected,
                    failed: s.failed,
                    received: s.received,
                    other: s.other,
                };
                self.replies[i] = Some(s);
            }
            None => {
                self.exited[i] = true;
                if !self.stopping {
                    bail!("bench worker {i} exited unexpectedly (see its messages above)");
                }
            }
        }
        Ok(())
    }

    /// Handles worker messages for `d`.
    ///
    /// # Errors
    /// A worker died.
    pub async fn pump(&mut self, d: Duration) -> Result<()> {
        let until = Instant::now() + d;
        loop {
            let wake = self.sampler.as_ref().map_or(until, |s| s.due().min(until));
            match tokio::time::timeout_at(wake, self.rx.recv()).await {
                Ok(Some((i, ev))) => self.apply(i, ev)?,
                Ok(None) => return Ok(()),
                Err(_) => {}
            }
            self.sample();
            if Instant::now() >= until {
                return Ok(());
            }
        }
    }

    /// Handles the worker messages already waiting, without blocking (for loops that do not
    /// pump, such as publishing at full speed), and samples when due.
    ///
    /// # Errors
    /// A worker died.
    pub fn poll(&mut self) -> Result<()> {
        while let Ok((i, ev)) = self.rx.try_recv() {
            self.apply(i, ev)?;
        }
        self.sample();
        Ok(())
    }

    /// Records the run's time series from now on (see [`Sampler`]).
    pub fn set_sampler(&mut self, mut sampler: Sampler) {
        sampler.record(self.totals());
        self.sampler = Some(sampler);
    }

    /// Labels the current moment of the time series, if one is recorded.
    pub fn mark(&mut self, label: &str) {
        let totals = self.totals();
        if let Some(s) = &mut self.sampler {
            s.record(totals);
            s.mark(label);
        }
    }

    /// Ends the time series (with a last sample) and hands it over.
    pub fn take_sampler(&mut self) -> Option<Sampler> {
        let totals = self.totals();
        let mut s = self.sampler.take()?;
        s.record(totals);
        Some(s)
    }

    fn sample(&mut self) {
        let totals = self.totals();
        if let Some(s) = &mut self.sampler {
            s.poll(totals);
        }
    }

    /// Counts summed over workers.
    pub fn totals(&self) -> Counts {
        self.progress.iter().fold(Counts::default(), |a, p| Counts {
            connected: a.connected + p.connected,
            failed: a.failed + p.failed,
            received: a.received + p.received,
            other: a.other + p.other,
        })
    }

    /// Waits until every worker attempted all its sessions; `tick` is called every `every`.
    ///
    /// # Errors
    /// A worker died, or `timeout` passed.
    pub async fn wait_ready(
        &mut self,
        timeout: Duration,
        every: Duration,
        mut tick: impl FnMut(Counts),
    ) -> Result<()> {
        let start = Instant::now();
        let mut next_tick = start + every;
        while !self.ready.iter().all(|r| *r) {
            if start.elapsed() > timeout {
                let t = self.totals();
                let hint = if t.other > 10 * t.connected.max(1) {
                    format!(
                        "; meanwhile the clients received {} other pushes ({} per session): with `join_leave` on, every subscribe is pushed to every subscriber of the channel (N² pushes for N subscribers on one channel), so use a namespace without join_leave for large channels",
                        t.other,
                        t.other / t.connected.max(1)
                    )
                } else {
                    String::new()
                };
                bail!(
                    "sessions not ready after {}: {} connected, {} failed; the node is overloaded{hint}",
                    humantime::format_duration(timeout),
                    t.connected,
                    t.failed
                );
            }
            self.pump(Duration::from_millis(100)).await?;
            if Instant::now() >= next_tick {
                tick(self.totals());
                next_tick += every;
            }
        }
        Ok(())
    }

    async fn send(&mut self, cmd: &str) -> Result<()> {
        for (i, p) in self.procs.iter_mut().enumerate() {
            if self.exited[i] {
                continue;
            }
            p.stdin
                .write_all(format!("{cmd}\n").as_bytes())
                .await
                .with_context(|| format!("bench worker {i} is gone"))?;
            p.stdin.flush().await?;
        }
        Ok(())
    }

    /// Asks every worker for its counters (`with_hist`: and latency histogram) and merges them.
    ///
    /// # Errors
    /// A worker died or did not answer within 30 s.
    pub async fn stats(&mut self, with_hist: bool) -> Result<Merged> {
        self.replies.iter_mut().for_each(|r| *r = None);
        self.send(if with_hist { "report" } else { "stats" })
            .await?;
        let until = Instant::now() + Duration::from_secs(30);
        while self.replies.iter().any(Option::is_none) {
            let Ok(Some((i, ev))) = tokio::time::timeout_at(until, self.rx.recv()).await else {
                bail!("bench workers did not answer a stats request");
            };
            self.apply(i, ev)?;
        }
        let mut m = Merged {
            hist: with_hist.then(new_histogram),
            ..Default::default()
        };
        for r in self.replies.iter_mut() {
            let Some(s) = r.take() else { continue };
            let t = &mut m.stats;
            t.connected += s.connected;
            t.failed += s.failed;
            t.received += s.received;
            t.other += s.other;
            t.bytes_in += s.bytes_in;
            t.bytes_out += s.bytes_out;
            t.requests += s.requests;
            t.last_rx_us = t.last_rx_us.max(s.last_rx_us);
            t.receiving += s.receiving;
            for (k, v) in s.errors {
                *t.errors.entry(k).or_default() += v;
            }
            for (k, v) in s.closed {
                *t.closed.entry(k).or_default() += v;
            }
            if let (Some(h), Some(pairs)) = (m.hist.as_mut(), s.hist) {
                for (v, c) in pairs {
                    let _ = h.record_n(v, c);
                }
            }
        }
        Ok(m)
    }

    /// Stops every worker (kills those that do not exit within 10 s).
    pub async fn stop(mut self) {
        self.stopping = true;
        let _ = self.send("stop").await;
        for p in &mut self.procs {
            if tokio::time::timeout(Duration::from_secs(10), p.child.wait())
                .await
                .is_err()
            {
                let _ = p.child.kill().await;
            }
        }
    }
}
