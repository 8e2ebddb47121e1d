//! The node's clock. Everything time-driven in the core (history and presence TTLs, token
//! expiry, pings, staleness) reads tokio's clock through here, so a test that pauses tokio's
//! time (`tokio::time::pause`) drives all of it without waiting.
//!
//! Unix time is the wall clock read once, at the first call, advanced by tokio's monotonic
//! clock since then: token expiry follows paused time in tests, and a stepped system clock
//! does not make every session expire at once in production (the JWT library still checks `exp`
//! against the real wall clock when a token is verified).

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

struct Base {
    instant: std::time::Instant,
    unix: Duration,
}

static BASE: OnceLock<Base> = OnceLock::new();

fn base() -> &'static Base {
    BASE.get_or_init(|| Base {
        instant: tokio::time::Instant::now().into_std(),
        unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
    })
}

/// Now, on tokio's clock.
pub fn now() -> tokio::time::Instant {
    tokio::time::Instant::now()
}

fn elapsed() -> Duration {
    now().into_std().saturating_duration_since(base().instant)
}

/// Milliseconds since the first call in this process.
pub fn now_ms() -> u64 {
    u64::try_from(elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Seconds since the Unix epoch (see the module docs).
pub fn unix_now() -> u64 {
    (base().unix + elapsed()).as_secs()
}
