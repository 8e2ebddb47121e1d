//! Interest and connection health of the pubsub side, shared with the push callback, the
//! subscriber and the supervisor (see `subscriber.rs` for how a loss is handled).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::{Notify, RwLock};

/// Interest and connection health, shared with the push callback.
#[derive(Default)]
pub(crate) struct SubState {
    /// Channels this node wants (switchboard names).
    pub(crate) desired: Mutex<HashSet<String>>,
    /// Channels whose UNSUBSCRIBE failed: retried after the next reconnect.
    pub(crate) stale: Mutex<HashSet<String>>,
    /// Subscribe/unsubscribe hold it shared; the stale cleanup exclusively.
    pub(crate) interest: RwLock<()>,
    /// Bumped on every loss (disconnection, failed ping, dropped push).
    pub(crate) lost: AtomicU64,
    /// The last `lost` value the sink was told about.
    pub(crate) handled: AtomicU64,
    pub(crate) lost_since: Mutex<Option<Instant>>,
    pub(crate) overflow: AtomicBool,
    pub(crate) dropped: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    /// Delivery probes.
    pub(crate) probes: crate::probe::Probes,
    /// Consecutive failed liveness checks.
    pub(crate) failed_checks: AtomicU32,
    pub(crate) wake: Notify,
}

impl SubState {
    pub(crate) fn mark_lost(&self, why: &str) {
        let mut since = self.lost_since.lock();
        if since.is_none() {
            tracing::warn!(why, "redis pubsub connection lost");
            *since = Some(Instant::now());
        }
        self.lost.fetch_add(1, Ordering::AcqRel);
        drop(since);
        self.wake.notify_one();
    }

    /// The channels this node is subscribed to.
    pub(crate) fn desired_channels(&self) -> Vec<String> {
        self.desired.lock().iter().cloned().collect()
    }

    /// Whether a loss has not been recovered yet.
    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire) != self.handled.load(Ordering::Acquire)
    }
}
