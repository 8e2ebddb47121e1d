//! Exponential backoff with full jitter: `delay = random(0, min(cap, base · 2^attempt))`.
//! Full jitter spreads a crowd of reconnecting clients evenly instead of in waves.

use std::time::Duration;

/// Backoff state.
#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// Starts at `base` (ceiling of the first delay), never above `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        ceiling.mul_f64(rand::random::<f64>())
    }

    /// Back to the first delay after a successful connection.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_under_a_growing_ceiling() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(20));
        for i in 0..20 {
            let ceiling = Duration::from_millis(500)
                .saturating_mul(1 << i.min(16))
                .min(Duration::from_secs(20));
            assert!(b.next_delay() <= ceiling);
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(500));
    }
}
