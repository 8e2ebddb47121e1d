//! Delivery probes: proof that the pubsub connection still receives what is published.
//!
//! A PING only shows that a connection answers, not that it is still subscribed: the redis-rs
//! cluster client may replace a node's connection at any time (slot refresh, reconnect) and
//! re-sends its subscriptions fire-and-forget, so a failed resubscription would silently stop
//! deliveries from one shard. Each engine therefore subscribes to one probe channel per master
//! (a channel whose hash slot that master owns; one channel on a standalone server) and
//! publishes a sequence number to every probe each `ping_interval`. When a probe round has not
//! come back by the next-but-one check, the subscriptions are considered lost: the supervisor
//! subscribes everything again and the sink resynchronises from history.

use std::collections::{BTreeMap, HashMap};

use parking_lot::Mutex;
use redis::Value;

use crate::RedisConfig;
use crate::codec::{array_of, bytes_of, int_of};
use crate::conn::{Conn, run};

/// The hash slot of a key or channel (CRC16/XMODEM of the hash tag, mod 16384).
pub(crate) fn slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    let mut crc: u16 = 0;
    for &b in tagged {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

/// Probe state of one engine.
#[derive(Default)]
pub(crate) struct Probes {
    /// Probe pubsub channels (one per master).
    channels: Mutex<Vec<String>>,
    /// Rounds sent since the last reset.
    sent: Mutex<u64>,
    /// Highest round received per probe channel.
    acks: Mutex<HashMap<String, u64>>,
}

fn probe_channel(prefix: &str, i: usize, instance: &str) -> String {
    format!("{{{prefix}:probe:{i}}}:{instance}")
}

impl Probes {
    /// Whether `pubsub` is one of this engine's probe channels; records the round if so.
    pub(crate) fn on_message(&self, pubsub: &str, payload: &[u8]) -> bool {
        if !self.channels.lock().iter().any(|c| c == pubsub) {
            return false;
        }
        if let Some(round) = std::str::from_utf8(payload)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
        {
            let mut acks = self.acks.lock();
            let e = acks.entry(pubsub.to_owned()).or_default();
            *e = (*e).max(round);
        }
        true
    }

    /// The probe channels (to subscribe).
    pub(crate) fn channels(&self) -> Vec<String> {
        self.channels.lock().clone()
    }

    /// Starts counting rounds afresh (after (re)subscribing).
    pub(crate) fn reset(&self) {
        *self.sent.lock() = 0;
        self.acks.lock().clear();
    }

    /// Chooses one probe channel per master (from `CLUSTER SLOTS`), or one for a standalone
    /// server. Returns the new channel list.
    pub(crate) async fn plan(
        &self,
        cmd_conn: &Conn,
        cfg: &RedisConfig,
        instance: &str,
    ) -> Result<Vec<String>, switchboard_core::engine::EngineError> {
        let prefix = &cfg.prefix;
        let mut conn = cmd_conn.clone();
        let channels = if let Conn::Cluster(_) = conn {
            let mut cmd = redis::cmd("CLUSTER");
            cmd.arg("SLOTS");
            let v: Value = run(cfg.command_timeout, cmd.query_async(&mut conn)).await?;
            let ranges = slot_ranges(v);
            let masters: Vec<&Vec<(u16, u16)>> = ranges.values().collect();
            let mut chosen: Vec<Option<String>> = vec![None; masters.len()];
            let mut i = 0;
            while chosen.iter().any(Option::is_none) && i < 100_000 {
                let ch = probe_channel(prefix, i, instance);
                let s = slot(ch.as_bytes());
                if let Some(m) = masters
                    .iter()
                    .position(|r| r.iter().any(|(a, b)| (*a..=*b).contains(&s)))
                    && chosen[m].is_none()
                {
                    chosen[m] = Some(ch);
                }
                i += 1;
            }
            chosen.into_iter().flatten().collect()
        } else {
            vec![probe_channel(prefix, 0, instance)]
        };
        *self.channels.lock() = channels.clone();
        self.reset();
        Ok(channels)
    }

    /// Publishes a round to every probe and waits (up to `ping_interval`, at least 500 ms) until
    /// all of them came back. Used before telling the sink that the connection is back.
    pub(crate) async fn verify(&self, conn: &Conn, cfg: &RedisConfig) -> bool {
        self.reset();
        if !self.check(conn, cfg).await {
            return false;
        }
        let channels = self.channels();
        let wait = cfg.ping_interval.max(std::time::Duration::from_millis(500));
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            {
                let acks = self.acks.lock();
                if channels
                    .iter()
                    .all(|c| acks.get(c).copied().unwrap_or(0) >= 1)
                {
                    break;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::debug!("probes did not come back after resubscribing; retrying");
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        self.reset();
        true
    }

    /// One check: returns `false` when the round sent two checks ago has not come back on
    /// every probe; otherwise publishes the next round.
    pub(crate) async fn check(&self, cmd_conn: &Conn, cfg: &RedisConfig) -> bool {
        let channels = self.channels();
        if channels.is_empty() {
            return true;
        }
        let round = {
            let mut sent = self.sent.lock();
            if *sent >= 2 {
                let need = *sent - 1;
                let acks = self.acks.lock();
                if let Some(missing) = channels
                    .iter()
                    .find(|c| acks.get(*c).copied().unwrap_or(0) < need)
                {
                    tracing::warn!(probe = %missing, "redis pubsub probe did not come back");
                    return false;
                }
            }
            *sent += 1;
            *sent
        };
        let publish = if cfg.cluster { "SPUBLISH" } else { "PUBLISH" };
        for ch in channels {
            let mut conn = cmd_conn.clone();
            let mut cmd = redis::cmd(publish);
            cmd.arg(&ch).arg(round.to_string());
            // A failed publish shows up as a missing round at a later check.
            let _ = run(cfg.command_timeout, cmd.query_async::<()>(&mut conn)).await;
        }
        true
    }
}

/// Master id (or address) → slot ranges, from a `CLUSTER SLOTS` reply.
fn slot_ranges(v: Value) -> BTreeMap<String, Vec<(u16, u16)>> {
    let mut out: BTreeMap<String, Vec<(u16, u16)>> = BTreeMap::new();
    for range in array_of(v).unwrap_or_default() {
        let mut parts = array_of(range).unwrap_or_default().into_iter();
        let (Some(start), Some(end), Some(master)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (Some(start), Some(end)) = (int_of(&start), int_of(&end)) else {
            continue;
        };
        let mut m = array_of(master).unwrap_or_default().into_iter();
        let host = m.next().and_then(bytes_of).unwrap_or_default();
        let port = m.next().and_then(|p| int_of(&p)).unwrap_or_default();
        let key = format!("{}:{port}", String::from_utf8_lossy(&host));
        if let (Ok(s), Ok(e)) = (u16::try_from(start), u16::try_from(end)) {
            out.entry(key).or_default().push((s, e));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::slot;

    #[test]
    fn slots_match_redis() {
        // Values from the Redis cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(slot(b"123456789"), 0x31C3);
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        // An empty tag does not count: the whole key is hashed.
        assert_eq!(slot(b"foo{}{bar}"), 8363);
    }
}
