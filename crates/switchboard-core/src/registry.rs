//! The node's connected sessions, for housekeeping (pings, expiry, staleness), counts and
//! disconnecting a user.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use switchboard_protocol::Disconnect;

use crate::handle::SessionHandle;

const SHARDS: usize = 64;

/// Connected sessions, sharded by serial number.
pub struct Registry {
    shards: Vec<Mutex<HashMap<u64, Arc<SessionHandle>>>>,
    /// Sessions per user id (anonymous sessions not counted), for the per-user cap.
    users: Mutex<HashMap<String, usize>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            users: Mutex::new(HashMap::new()),
        }
    }
}

impl Registry {
    fn shard(&self, sid: u64) -> &Mutex<HashMap<u64, Arc<SessionHandle>>> {
        &self.shards[(sid as usize) % SHARDS]
    }

    /// Registers `s` unless its user already has `max_per_user` sessions (0 = no limit);
    /// returns whether it was registered.
    pub(crate) fn try_insert(&self, s: Arc<SessionHandle>, max_per_user: usize) -> bool {
        let user = s.info().user.clone();
        if !user.is_empty() {
            let mut users = self.users.lock();
            let n = users.entry(user).or_insert(0);
            if max_per_user > 0 && *n >= max_per_user {
                return false;
            }
            *n += 1;
        }
        self.insert(s);
        true
    }

    fn insert(&self, s: Arc<SessionHandle>) {
        crate::metrics::session_gauge(s.caps.label, 1.0);
        tracing::debug!(session = %s.id, user = %s.info().user, transport = s.caps.label, "session connected");
        self.shard(s.sid).lock().insert(s.sid, s);
    }

    pub(crate) fn remove(&self, s: &SessionHandle) {
        if self.shard(s.sid).lock().remove(&s.sid).is_some() {
            crate::metrics::session_gauge(s.caps.label, -1.0);
            let user = &s.info().user;
            if !user.is_empty() {
                let mut users = self.users.lock();
                if let Some(n) = users.get_mut(user.as_str()) {
                    *n -= 1;
                    if *n == 0 {
                        users.remove(user.as_str());
                    }
                }
            }
            // The code is the server's reason; none when the client went away.
            let code = s.outbox.closed().map(|d| d.code);
            tracing::debug!(session = %s.id, transport = s.caps.label, code, "session closed");
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

    /// Sessions of `user`.
    pub fn count_user(&self, user: &str) -> usize {
        self.users.lock().get(user).copied().unwrap_or(0)
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
