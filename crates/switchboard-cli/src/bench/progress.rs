//! What a run shows while it goes: progress bars (indicatif) on a terminal, the plain lines of
//! old on a pipe or a log file, nothing with `--json`.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::fleet::Counts;

/// How progress is shown.
pub enum Progress {
    /// `--json`: nothing but the result.
    Off,
    /// Standard error is no terminal: a line every 2 s while sessions connect.
    Text,
    /// Standard error is a terminal: live bars.
    Bars(Bars),
}

/// The bars of a run (each one appears when its stage starts).
pub struct Bars {
    /// The bars of the current stage (a `compare` phase starts a new one below the last).
    multi: Mutex<MultiProgress>,
    sessions: Mutex<Option<ProgressBar>>,
    status: Mutex<Option<ProgressBar>>,
    published: Mutex<Option<ProgressBar>>,
    delivered: Mutex<Option<ProgressBar>>,
    /// Finished bars stay on screen while a reference to them lives.
    done: Mutex<Vec<ProgressBar>>,
}

// `per_sec:0`: the width of `per_sec` is its precision.
const BAR: &str = "{prefix:>10.bold} [{elapsed_precise}] {bar:40.cyan/blue} {human_pos:>9}/{human_len:9} {per_sec:0} {msg}";
const SPINNER: &str = "{prefix:>10.bold} [{elapsed_precise}] {spinner:.green} {msg}";

fn bar(multi: MultiProgress, prefix: &'static str, len: u64) -> ProgressBar {
    let style = ProgressStyle::with_template(BAR)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    multi.add(ProgressBar::new(len).with_style(style).with_prefix(prefix))
}

fn take(slot: &Mutex<Option<ProgressBar>>) -> Option<ProgressBar> {
    slot.lock().ok().and_then(|mut s| s.take())
}

impl Bars {
    fn multi(&self) -> MultiProgress {
        self.multi
            .lock()
            .map(|m| m.clone())
            .unwrap_or_else(|_| MultiProgress::new())
    }

    fn keep(&self, b: ProgressBar) {
        if let Ok(mut d) = self.done.lock() {
            d.push(b);
        }
    }
}

fn with(slot: &Mutex<Option<ProgressBar>>, f: impl FnOnce(&ProgressBar)) {
    if let Some(b) = slot.lock().ok().as_ref().and_then(|s| s.as_ref()) {
        f(b);
    }
}

fn put(slot: &Mutex<Option<ProgressBar>>, b: ProgressBar) {
    if let Ok(mut s) = slot.lock() {
        *s = Some(b);
    }
}

impl Progress {
    /// Bars when standard error is a terminal and the output is not JSON.
    pub fn new(json: bool) -> Self {
        if json {
            Progress::Off
        } else if std::io::stderr().is_terminal() {
            Progress::Bars(Bars {
                multi: Mutex::new(MultiProgress::new()),
                sessions: Mutex::new(None),
                status: Mutex::new(None),
                published: Mutex::new(None),
                delivered: Mutex::new(None),
                done: Mutex::new(Vec::new()),
            })
        } else {
            Progress::Text
        }
    }

    /// How often the session bar (or line) is refreshed while sessions connect.
    pub fn every(&self) -> Duration {
        match self {
            Progress::Bars(_) => Duration::from_millis(100),
            _ => Duration::from_secs(2),
        }
    }

    /// A line of text (above the bars on a terminal).
    pub fn line(&self, msg: &str) {
        match self {
            Progress::Off => {}
            Progress::Text => eprintln!("{msg}"),
            Progress::Bars(b) => {
                let _ = b.multi().println(msg);
            }
        }
    }

    /// Runs `f` (which prints to standard output) with the bars out of its way: they are
    /// cleared first and drawn again below what `f` printed.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match self {
            Progress::Bars(b) => b.multi().suspend(f),
            _ => f(),
        }
    }

    /// A new stage (a `compare` phase): the finished bars stay where they are and new ones
    /// are drawn below them.
    pub fn next_stage(&self) {
        if let Progress::Bars(b) = self
            && let Ok(mut m) = b.multi.lock()
        {
            *m = MultiProgress::new();
        }
    }

    /// Sessions start connecting.
    pub fn sessions_start(&self, total: u64) {
        if let Progress::Bars(b) = self {
            put(&b.sessions, bar(b.multi(), "sessions", total));
        }
    }

    /// Sessions set up so far.
    pub fn sessions(&self, t: Counts) {
        match self {
            Progress::Off => {}
            Progress::Text => eprintln!(
                "  ... {} sessions ready, {} failed, {} other pushes received",
                t.connected, t.failed, t.other
            ),
            Progress::Bars(b) => with(&b.sessions, |p| {
                p.set_position(t.connected + t.failed);
                p.set_message(format!("{} failed", t.failed));
            }),
        }
    }

    /// Every session was attempted.
    pub fn sessions_done(&self, t: Counts) {
        if let Progress::Bars(b) = self
            && let Some(p) = take(&b.sessions)
        {
            p.set_position(t.connected + t.failed);
            p.finish_with_message(format!("{} ready, {} failed", t.connected, t.failed));
            b.keep(p);
        }
    }

    /// A stage without a count (settling, holding) starts.
    pub fn status(&self, prefix: &'static str, msg: String) {
        if let Progress::Bars(b) = self {
            let style = ProgressStyle::with_template(SPINNER)
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            let p = b.multi().add(
                ProgressBar::new_spinner()
                    .with_style(style)
                    .with_prefix(prefix)
                    .with_message(msg),
            );
            p.enable_steady_tick(Duration::from_millis(120));
            if let Some(old) = b.status.lock().ok().and_then(|mut s| s.replace(p)) {
                old.finish();
                b.keep(old);
            }
        }
    }

    /// News of the current stage.
    pub fn status_update(&self, msg: String) {
        if let Progress::Bars(b) = self {
            with(&b.status, |p| p.set_message(msg));
        }
    }

    /// The stage is over.
    pub fn status_done(&self, msg: String) {
        if let Progress::Bars(b) = self
            && let Some(p) = take(&b.status)
        {
            p.finish_with_message(msg);
            b.keep(p);
        }
    }

    /// Publishing starts: `messages` publications, `expected` deliveries.
    pub fn publish_start(&self, messages: u64, expected: u64) {
        if let Progress::Bars(b) = self {
            put(&b.published, bar(b.multi(), "published", messages));
            put(&b.delivered, bar(b.multi(), "delivered", expected));
        }
    }

    /// Publications sent (`failed` of them refused) and deliveries so far.
    pub fn published(&self, sent: u64, failed: u64, delivered: u64) {
        if let Progress::Bars(b) = self {
            with(&b.published, |p| {
                p.set_position(sent);
                if failed > 0 {
                    p.set_message(format!("{failed} failed"));
                }
            });
            with(&b.delivered, |p| p.set_position(delivered));
        }
    }

    /// Publishing is over; deliveries may still arrive.
    pub fn publish_done(&self, ok: u64) {
        if let Progress::Bars(b) = self
            && let Some(p) = take(&b.published)
        {
            p.finish_with_message(format!("{ok} ok"));
            b.keep(p);
        }
    }

    /// Deliveries so far (while draining).
    pub fn delivered(&self, n: u64) {
        if let Progress::Bars(b) = self {
            with(&b.delivered, |p| p.set_position(n));
        }
    }

    /// Every delivery arrived (or the wait ended).
    pub fn delivered_done(&self, n: u64, expected: u64) {
        if let Progress::Bars(b) = self
            && let Some(p) = take(&b.delivered)
        {
            p.set_position(n);
            if n < expected {
                p.abandon_with_message(format!("{} missing", expected - n));
            } else {
                p.finish();
            }
            b.keep(p);
        }
    }
}
