//! The part of a session the rest of the node can see: identity, capabilities, outbox and
//! timers. The hub, the registry and the housekeeper hold it; the [`crate::Session`] owns it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use switchboard_protocol::ClientInfo;

use crate::capabilities::Capabilities;
use crate::outbox::Outbox;

/// Shared, cheap-to-read state of one session.
#[derive(Debug)]
pub struct SessionHandle {
    /// Node-local serial number.
    pub sid: u64,
    /// Client id (unique across nodes).
    pub id: Arc<str>,
    /// What its transport can do.
    pub caps: Capabilities,
    /// Outbound queue.
    pub outbox: Outbox,
    info: Mutex<Arc<ClientInfo>>,
    /// Token expiry in Unix seconds (0 = never).
    pub(crate) expires_at: AtomicU64,
    pub(crate) expiring_sent: AtomicBool,
    /// Last time the peer was heard from, in node-clock milliseconds.
    pub(crate) last_seen: AtomicU64,
    pub(crate) next_ping: AtomicU64,
    /// Reconnect delay hint for the disconnect push, in ms (0 = none).
    reconnect_delay_ms: AtomicU64,
}

impl SessionHandle {
    pub(crate) fn new(sid: u64, id: Arc<str>, caps: Capabilities, queue_limit: usize) -> Self {
        let now = crate::clock::now_ms();
        Self {
            sid,
            info: Mutex::new(Arc::new(ClientInfo {
                client: id.to_string(),
                user: String::new(),
                info: None,
            })),
            id,
            caps,
            outbox: Outbox::new(queue_limit),
            expires_at: AtomicU64::new(0),
            expiring_sent: AtomicBool::new(false),
            last_seen: AtomicU64::new(now),
            next_ping: AtomicU64::new(0),
            reconnect_delay_ms: AtomicU64::new(0),
        }
    }

    /// Who the client is.
    pub fn info(&self) -> Arc<ClientInfo> {
        self.info.lock().clone()
    }

    pub(crate) fn set_info(&self, info: ClientInfo) {
        *self.info.lock() = Arc::new(info);
    }

    /// The reconnect delay the client should be told in its disconnect push, if any.
    pub fn reconnect_delay_ms(&self) -> Option<u64> {
        Some(self.reconnect_delay_ms.load(Ordering::Relaxed)).filter(|d| *d > 0)
    }

    pub(crate) fn set_reconnect_delay_ms(&self, ms: u64) {
        self.reconnect_delay_ms.store(ms, Ordering::Relaxed);
    }

    /// Records that the peer was heard from (any frame, pong included).
    pub fn touch(&self) {
        self.last_seen
            .store(crate::clock::now_ms(), Ordering::Relaxed);
    }
}
