//! Connection admission: global, per-IP and per-user caps for long-lived connections
//! (WebSocket and SSE), checked at the handshake. Each admitted connection holds a
//! [`ConnGuard`] that frees its slot.
//!
//! Refusals are HTTP responses with the JSON error body (`limit_exceeded`): 503 when the node
//! is at `max_connections` or draining (a load balancer retries elsewhere), 429 for the per-IP
//! and per-user caps. The per-user cap counts connections whose user is known at the handshake:
//! WebSocket with `?ticket=`, and SSE (ticket or bearer token). A WebSocket that authenticates
//! with the `connect` frame is counted globally and per IP only.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::ConnectInfo;
use axum::http::Extensions;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use switchboard_protocol::ErrorCode;

use crate::error::ApiError;
use crate::state::AppState;

/// Connection limits (`[connections]` in the config file).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionLimits {
    /// Long-lived connections on this node (0 = no limit). Keep below the process's open-file
    /// limit so the node can still accept API calls.
    pub max_connections: usize,
    /// Per client IP (0 = no limit); bounds what one machine or NAT can take.
    pub max_per_ip: usize,
    /// Per user id from tickets/tokens checked at the handshake (0 = no limit).
    pub max_per_user: usize,
    /// Time allowed to send a request's headers (slowloris protection).
    #[serde(with = "humantime_serde")]
    pub header_timeout: std::time::Duration,
    /// Kernel send buffer of each accepted socket, bytes (0 = the OS default). The default
    /// grows up to `net.ipv4.tcp_wmem` max (4 MiB) for a client that stops reading, outside
    /// the node's own queue limit; a cap bounds that kernel memory per connection.
    pub send_buffer: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 100_000,
            max_per_ip: 20_000,
            max_per_user: 1_000,
            header_timeout: std::time::Duration::from_secs(10),
            send_buffer: 0,
        }
    }
}

/// Live counts.
#[derive(Default)]
pub struct Admission {
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    per_user: Mutex<HashMap<String, usize>>,
}

/// Frees a connection slot when dropped.
pub struct ConnGuard {
    admission: Arc<Admission>,
    ip: Option<IpAddr>,
    user: Option<String>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.admission.total.fetch_sub(1, Ordering::Relaxed);
        if let Some(ip) = self.ip {
            dec(&mut self.admission.per_ip.lock(), &ip);
        }
        if let Some(u) = &self.user {
            dec(&mut self.admission.per_user.lock(), u);
        }
    }
}

fn dec<K: std::hash::Hash + Eq>(m: &mut HashMap<K, usize>, k: &K) {
    if let Some(n) = m.get_mut(k) {
        *n -= 1;
        if *n == 0 {
            m.remove(k);
        }
    }
}

impl Admission {
    /// Admits a connection or explains which limit it hit (HTTP 503/429 with JSON).
    ///
    /// # Errors
    /// `limit_exceeded` naming the limit.
    pub fn admit(
        self: &Arc<Self>,
        app: &AppState,
        user: Option<&str>,
        ext: &Extensions,
    ) -> Result<ConnGuard, ApiError> {
        let l = &app.settings.connections;
        let ip = ext
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        if app.node.shutdown_token().is_cancelled() {
            // Sessions admitted now would only be told to reconnect again.
            return Err(unavailable("the node is draining; connect to another node"));
        }
        let total = self.total.fetch_add(1, Ordering::Relaxed) + 1;
        let guard = ConnGuard {
            admission: self.clone(),
            ip: None,
            user: None,
        };
        if l.max_connections > 0 && total > l.max_connections {
            crate::metrics::rejected("total");
            return Err(unavailable("the node is at its connection limit"));
        }
        let mut guard = guard;
        if let Some(ip) = ip {
            let mut m = self.per_ip.lock();
            let n = m.entry(ip).or_insert(0);
            if l.max_per_ip > 0 && *n >= l.max_per_ip {
                crate::metrics::rejected("ip");
                return Err(ApiError::new(
                    ErrorCode::LimitExceeded,
                    "too many connections from this address",
                ));
            }
            *n += 1;
            guard.ip = Some(ip);
        }
        if let Some(u) = user.filter(|u| !u.is_empty()) {
            let mut m = self.per_user.lock();
            let n = m.entry(u.to_owned()).or_insert(0);
            if l.max_per_user > 0 && *n >= l.max_per_user {
                crate::metrics::rejected("user");
                return Err(ApiError::new(
                    ErrorCode::LimitExceeded,
                    "too many connections for this user",
                ));
            }
            *n += 1;
            guard.user = Some(u.to_owned());
        }
        Ok(guard)
    }
}

fn unavailable(message: &str) -> ApiError {
    let mut e = ApiError::new(ErrorCode::LimitExceeded, message);
    e.status = axum::http::StatusCode::SERVICE_UNAVAILABLE;
    e
}

impl Admission {
    /// Long-lived connections admitted now.
    pub fn total(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }
}
