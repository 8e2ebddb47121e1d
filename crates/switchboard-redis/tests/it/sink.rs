//! A sink that records everything, reconnects included.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use switchboard_core::conformance::Recorder;
use switchboard_core::engine::{Control, Engine, EventSink};
use switchboard_protocol::{ClientInfo, Publication};

#[derive(Default)]
pub struct TestSink {
    pub rec: Recorder,
    pub reconnects: AtomicU64,
    /// When each `reconnected()` call happened.
    pub reconnected_at: parking_lot::Mutex<Vec<std::time::Instant>>,
}

impl EventSink for TestSink {
    fn publication(&self, channel: &str, epoch: &str, publication: Publication) {
        self.rec.publication(channel, epoch, publication);
    }
    fn join_leave(&self, channel: &str, join: bool, client: ClientInfo) {
        self.rec.join_leave(channel, join, client);
    }
    fn control(&self, control: Control) {
        self.rec.control(control);
    }
    fn reconnected(&self) {
        self.reconnected_at.lock().push(std::time::Instant::now());
        self.reconnects.fetch_add(1, Ordering::SeqCst);
    }
}

impl TestSink {
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::SeqCst)
    }

    /// Offsets delivered for `channel`.
    pub fn offsets(&self, channel: &str) -> Vec<u64> {
        self.rec
            .for_channel(channel)
            .iter()
            .map(|p| p.offset)
            .collect()
    }
}

/// Starts `engine` with a fresh `TestSink`.
pub async fn start(engine: &impl Engine) -> Arc<TestSink> {
    crate::harness::init_logs();
    let sink = Arc::new(TestSink::default());
    engine.start(sink.clone()).await.expect("engine starts");
    sink
}

/// Polls `cond` every 10 ms for up to `secs` seconds.
pub async fn eventually(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
