//! The node's connected sessions, for housekeeping (pings, expiry, staleness), counts and
//! disconnecting a user.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use switchboard_protocol::Disconnect;

use crate::session::handle::{SessionHandle, Transport};

const SHARDS: usize = 64;

/// Connected sessions, sharded by serial number.
pub struct Registry {
    shards: Vec<Mutex<HashMap<u64, Arc<SessionHandle>>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl Registry {
    fn shard(&self, sid: u64) -> &Mutex<HashMap<u64, Arc<SessionHandle>>> {
        &self.shards[(sid as usize) % SHARDS]
    }

    pub(crate) fn insert(&self, s: Arc<SessionHandle>) {
        crate::metrics::session_gauge(s.transport.as_str(), 1.0);
        tracing::debug!(session = %s.id, user = %s.info().user, transport = s.transport.as_str(), "session connected");
        self.shard(s.sid).lock().insert(s.sid, s);
    }

    pub(crate) fn remove(&self, s: &SessionHandle) {
        if self.shard(s.sid).lock().remove(&s.sid).is_some() {
            crate::metrics::session_gauge(s.transport.as_str(), -1.0);
            // The code is the server's reason; none when the client went away.
            let code = s.outbox.closed().map(|d| d.code);
            tracing::debug!(session = %s.id, transport = s.transport.as_str(), code, "session closed");
        }
    }

    /// Number of connected sessions.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Whether no session is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sessions per transport.
    pub fn count_by_transport(&self, t: Transport) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().values().filter(|h| h.transport == t).count())
            .sum()
    }

    /// Sessions of `user`.
    pub fn count_user(&self, user: &str) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().values().filter(|h| h.info().user == user).count())
            .sum()
    }

    /// Closes every session of `user`; returns how many.
    pub fn disconnect_user(&self, user: &str, reason: Disconnect) -> usize {
        let mut n = 0;
        self.for_each(|s| {
            if s.info().user == user {
                s.outbox.close(reason.clone());
                n += 1;
            }
        });
        n
    }

    /// Calls `f` for every session, one shard lock at a time.
    pub fn for_each(&self, mut f: impl FnMut(&Arc<SessionHandle>)) {
        for shard in &self.shards {
            let sessions: Vec<Arc<SessionHandle>> = shard.lock().values().cloned().collect();
            for s in &sessions {
                f(s);
            }
        }
    }
}
