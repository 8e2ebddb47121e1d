//! The per-session outbound queue, bounded in bytes.
//!
//! Publishers push without waiting; the session's transport drains the queue in batches. When a
//! push would take the queue past its byte limit the session is cut off as a slow consumer
//! (4002): its queue is dropped at once (memory stays bounded) and the transport closes the
//! connection. The client reconnects and resumes from its last position, so nothing is lost.
//!
//! Replies have a budget of their own: the subscribe reply that resumes a cut-off client carries
//! about a full queue's worth of publications, so counting it against the publications' budget
//! would cut the client off again at once. A reply is accepted while the replies already queued
//! are within the limit, so one session holds at most twice the limit plus one reply (replies
//! are bounded by history size × message size, and commands by the rate limit).

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use parking_lot::Mutex;
use switchboard_protocol::Disconnect;
use tokio::sync::Notify;

/// A publication encoded once and shared by every subscriber.
#[derive(Debug)]
pub struct PubItem {
    /// Channel name.
    pub channel: Arc<str>,
    /// Offset in the channel.
    pub offset: u64,
    /// Epoch of the stream.
    pub epoch: Arc<str>,
    /// The `{"op":"pub",...}` JSON push.
    pub json: Bytes,
    /// Transport framing of `json`, built by the first transport that needs it and reused by
    /// all the others (the WebSocket frame, header included).
    pub framed: OnceLock<Bytes>,
    /// A second transport framing of `json` for sessions that negotiated a different encoding
    /// (the WebSocket frame compressed with permessage-deflate, or the plain frame when the
    /// publication is not worth compressing); built once by the first such session.
    pub framed_compressed: OnceLock<Bytes>,
}

/// Kinds of non-publication pushes; SSE names its events after them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A reply to a command.
    Reply,
    /// A join push.
    Join,
    /// A leave push.
    Leave,
    /// `expiring` and other session-level pushes.
    Notice,
    /// Channels that could not be resumed (SSE `reset`).
    Reset,
}

/// One queued item.
#[derive(Clone, Debug)]
pub enum Outbound {
    /// A shared publication.
    Pub(Arc<PubItem>),
    /// A JSON message for this session only.
    Event(EventKind, Bytes),
    /// Time for a keep-alive / ping (the transport decides what to send).
    Ping,
}

impl Outbound {
    fn cost(&self) -> usize {
        // A fixed overhead per item stands for the queue slot and framing.
        32 + match self {
            Outbound::Pub(p) => p.json.len(),
            Outbound::Event(_, b) => b.len(),
            Outbound::Ping => 0,
        }
    }
}

#[derive(Default)]
struct State {
    items: VecDeque<Outbound>,
    /// Bytes of every queued item.
    bytes: usize,
    /// Bytes of queued replies (part of `bytes`).
    reply_bytes: usize,
    closed: Option<Disconnect>,
}

fn is_reply(item: &Outbound) -> bool {
    matches!(item, Outbound::Event(EventKind::Reply, _))
}

/// The queue. Cheap when empty: an idle session holds no buffer.
pub struct Outbox {
    state: Mutex<State>,
    notify: Notify,
    limit: usize,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state.lock();
        f.debug_struct("Outbox")
            .field("items", &s.items.len())
            .field("bytes", &s.bytes)
            .finish()
    }
}

impl Outbox {
    /// Creates a queue that holds at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            limit,
        }
    }

    /// Queues an item. Returns `false` when the session is closed (now or before).
    pub fn push(&self, item: Outbound) -> bool {
        let mut s = self.state.lock();
        if s.closed.is_some() {
            return false;
        }
        let cost = item.cost();
        let reply = is_reply(&item);
        let over = if reply {
            s.reply_bytes > self.limit
        } else {
            s.bytes - s.reply_bytes + cost > self.limit
        };
        if over {
            s.items = VecDeque::new();
            s.bytes = 0;
            s.reply_bytes = 0;
            s.closed = Some(Disconnect::SLOW);
            drop(s);
            crate::metrics::slow_consumer();
            self.notify.notify_one();
            return false;
        }
        let was_empty = s.items.is_empty();
        s.items.push_back(item);
        s.bytes += cost;
        if reply {
            s.reply_bytes += cost;
        }
        drop(s);
        if was_empty {
            self.notify.notify_one();
        }
        true
    }

    /// Marks the session closed with `reason` (the first reason wins) and wakes the transport.
    /// Items already queued are still delivered before the close.
    pub fn close(&self, reason: Disconnect) {
        let mut s = self.state.lock();
        if s.closed.is_none() {
            s.closed = Some(reason);
        }
        drop(s);
        self.notify.notify_one();
    }

    /// Why the session is closed, if it is.
    pub fn closed(&self) -> Option<Disconnect> {
        self.state.lock().closed.clone()
    }

    /// Moves up to `max` items into `out`; returns the close reason once the queue is empty
    /// and the session is closed.
    pub fn drain(&self, out: &mut Vec<Outbound>, max: usize) -> Option<Disconnect> {
        let mut s = self.state.lock();
        let n = s.items.len().min(max);
        let (mut freed, mut replies) = (0, 0);
        for item in s.items.drain(..n) {
            let cost = item.cost();
            freed += cost;
            if is_reply(&item) {
                replies += cost;
            }
            out.push(item);
        }
        s.bytes -= freed;
        s.reply_bytes -= replies;
        if s.items.is_empty() {
            // Give back the memory of a burst; an idle session should hold nothing.
            if s.items.capacity() > 64 {
                s.items = VecDeque::new();
            }
            return s.closed.clone();
        }
        None
    }

    /// Bytes queued now.
    pub fn queued_bytes(&self) -> usize {
        self.state.lock().bytes
    }

    /// Waits until something is pushed or the session is closed.
    ///
    /// # Cancel safety
    /// Cancel-safe: a wake-up that arrives while nobody waits is kept for the next call.
    pub async fn wait(&self) {
        self.notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_cuts_off_and_frees() {
        let o = Outbox::new(200);
        assert!(o.push(Outbound::Event(
            EventKind::Join,
            Bytes::from(vec![b'x'; 100])
        )));
        assert!(!o.push(Outbound::Event(
            EventKind::Join,
            Bytes::from(vec![b'x'; 100])
        )));
        assert_eq!(o.closed(), Some(Disconnect::SLOW));
        assert_eq!(o.queued_bytes(), 0);
        let mut out = Vec::new();
        assert_eq!(o.drain(&mut out, 10), Some(Disconnect::SLOW));
        assert!(out.is_empty());
    }

    #[test]
    fn a_reply_larger_than_the_limit_does_not_cut_off() {
        let o = Outbox::new(200);
        let reply = || Outbound::Event(EventKind::Reply, Bytes::from(vec![b'x'; 500]));
        assert!(o.push(reply()));
        // Publications still have their whole budget next to the reply.
        assert!(o.push(Outbound::Event(
            EventKind::Join,
            Bytes::from(vec![b'x'; 100])
        )));
        assert_eq!(o.queued_bytes(), 500 + 100 + 64);
        // A second reply while the first is over the limit: the client is not reading.
        assert!(!o.push(reply()));
        assert_eq!(o.closed(), Some(Disconnect::SLOW));
        assert_eq!(o.queued_bytes(), 0);
    }

    #[test]
    fn close_delivers_queued_items_first() {
        let o = Outbox::new(1000);
        o.push(Outbound::Ping);
        o.close(Disconnect::SHUTDOWN);
        o.close(Disconnect::STALE);
        let mut out = Vec::new();
        assert_eq!(o.drain(&mut out, 10), Some(Disconnect::SHUTDOWN));
        assert_eq!(out.len(), 1);
    }
}
