//! Single-use connection tickets: a short-lived stand-in for a JWT in a URL.
//!
//! `POST /auth/ticket` exchanges a verified token for a random 256-bit ticket bound to the
//! token's credentials. Redeeming removes it, so a ticket seen in a proxy log or browser history
//! is worthless. Tickets live in this node's memory: behind a load balancer the ticket request
//! and the connection must reach the same node (or use the token in the first message).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use parking_lot::Mutex;
use rand::RngCore;
use switchboard_core::Credentials;

use crate::error::ApiError;

/// Most live tickets kept; beyond it, new tickets are refused rather than growing memory.
const MAX_TICKETS: usize = 100_000;

/// The ticket store.
pub struct Tickets {
    ttl: Duration,
    map: Mutex<HashMap<String, (Credentials, Instant)>>,
}

impl Tickets {
    /// Tickets valid for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Issues a ticket; returns it with its lifetime in seconds.
    ///
    /// # Errors
    /// 429 when too many tickets are outstanding.
    pub fn issue(&self, creds: Credentials) -> Result<(String, u64), ApiError> {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let ticket = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let now = Instant::now();
        // A ticket never outlives the token it stands for.
        let ttl = creds
            .expires_in()
            .map_or(self.ttl, |s| self.ttl.min(Duration::from_secs(s)));
        let mut map = self.map.lock();
        if map.len() >= MAX_TICKETS {
            map.retain(|_, (_, exp)| *exp > now);
            if map.len() >= MAX_TICKETS {
                return Err(ApiError::new(
                    switchboard_protocol::ErrorCode::LimitExceeded,
                    "too many outstanding tickets",
                ));
            }
        }
        map.insert(ticket.clone(), (creds, now + ttl));
        Ok((ticket, ttl.as_secs()))
    }

    /// Redeems a ticket once.
    ///
    /// # Errors
    /// 401 for unknown, replayed or expired tickets, and when the token it stood for expired.
    pub fn redeem(&self, ticket: &str) -> Result<Credentials, ApiError> {
        let entry = self.map.lock().remove(ticket);
        match entry {
            Some((creds, exp)) if exp > Instant::now() && creds.expires_in() != Some(0) => {
                Ok(creds)
            }
            Some(_) => Err(ApiError::unauthorized("ticket expired")),
            None => Err(ApiError::unauthorized("unknown or already used ticket")),
        }
    }
}
