//! Keeps the positions of channels this node is subscribed to.
//!
//! A channel's meta hash (epoch and top offset) expires `meta_ttl` after its last publication or
//! history read; a quiet channel with live subscribers must not lose it, or its next publication
//! starts a new epoch and every subscriber is cut off with "insufficient state". So, while this
//! node is subscribed to a channel, its meta TTL is extended every quarter `meta_ttl` (capped
//! at an hour), and once more when the node's last subscriber leaves: the position then lives
//! for `meta_ttl` after the channel was last used by anyone, on any node.

use std::sync::Weak;
use std::time::Duration;

use futures_util::future::join_all;

use crate::inner::{Inner, millis};

/// Meta keys extended concurrently.
const CHUNK: usize = 64;

/// How often subscribed channels' meta TTLs are extended.
pub(crate) fn interval(meta_ttl: Duration) -> Duration {
    (meta_ttl / 4).clamp(Duration::from_millis(250), Duration::from_secs(3600))
}

/// Extends the meta TTL of `channels` to at least `meta_ttl` (never shortens one that a
/// publication set longer). Missing keys stay missing.
pub(crate) async fn extend(inner: &Inner, channels: &[String]) {
    let ttl = millis(inner.cfg.meta_ttl).max(1000);
    for chunk in channels.chunks(CHUNK) {
        let calls = chunk.iter().map(|ch| {
            let mut conn = inner.cmd.clone();
            let mut cmd = redis::cmd("PEXPIRE");
            cmd.arg(inner.keys.meta(ch)).arg(ttl).arg("GT");
            async move { inner.run(cmd.query_async::<i64>(&mut conn)).await }
        });
        let failed = join_all(calls).await.iter().filter(|r| r.is_err()).count();
        if failed > 0 {
            tracing::debug!(
                failed,
                "extending channel meta ttl failed; retried next round"
            );
        }
    }
}

/// Runs until the engine is dropped.
pub(crate) async fn run(weak: Weak<Inner>) {
    loop {
        let every = match weak.upgrade() {
            Some(inner) => interval(inner.cfg.meta_ttl),
            None => return,
        };
        tokio::time::sleep(every).await;
        let Some(inner) = weak.upgrade() else { return };
        let channels = inner.subs.desired_channels();
        extend(&inner, &channels).await;
    }
}
