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
use switchboard_protocol::ErrorCode;

use tokio_util::sync::CancellationToken;

use crate::config::ConnectionLimits;
use crate::error::ApiError;

/// The limits and the live counts.
pub struct Admission {
    limits: ConnectionLimits,
    /// Cancelled when the node starts draining.
    draining: CancellationToken,
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
    /// Admission under `limits`; refuses everyone once `draining` is cancelled.
    pub fn new(limits: ConnectionLimits, draining: CancellationToken) -> Self {
        Self {
            limits,
            draining,
            total: AtomicUsize::new(0),
            per_ip: Mutex::default(),
            per_user: Mutex::default(),
        }
    }

    /// Admits a connection or explains which limit it hit (HTTP 503/429 with JSON).
    ///
    /// # Errors
    /// `limit_exceeded` naming the limit.
    pub fn admit(
        self: &Arc<Self>,
        user: Option<&str>,
        ext: &Extensions,
    ) -> Result<ConnGuard, ApiError> {
        let l = &self.limits;
        let ip = ext
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        if self.draining.is_cancelled() {
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
