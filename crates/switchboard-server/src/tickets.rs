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
    resume: Mutex<HashMap<String, Credentials>>,
}

fn random_token() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Tickets {
    /// Tickets valid for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            map: Mutex::new(HashMap::new()),
            resume: Mutex::new(HashMap::new()),
        }
    }

    /// Issues a ticket; returns it with its lifetime in seconds.
    ///
    /// # Errors
    /// 429 when too many tickets are outstanding.
    pub fn issue(&self, creds: Credentials) -> Result<(String, u64), ApiError> {
        let ticket = random_token();
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

    /// Issues the resume secret of an SSE stream. It rides in every event id (never in a URL),
    /// so the browser's own reconnect (`Last-Event-ID`) can authenticate once more with the same
    /// credentials even though the stream's ticket was single-use. It is itself single-use and
    /// dies with the token.
    pub fn issue_resume(&self, creds: &Credentials) -> String {
        let secret = random_token();
        let mut map = self.resume.lock();
        if map.len() >= MAX_TICKETS {
            map.retain(|_, c| c.expires_in() != Some(0));
        }
        map.insert(secret.clone(), creds.clone());
        secret
    }

    /// Forgets a resume secret (its stream ended for a reason that must not resume, or it was
    /// replaced).
    pub fn revoke_resume(&self, secret: &str) {
        self.resume.lock().remove(secret);
    }

    /// Redeems a resume secret once.
    ///
    /// # Errors
    /// 401 for unknown or used secrets and expired tokens.
    pub fn redeem_resume(&self, secret: &str) -> Result<Credentials, ApiError> {
        match self.resume.lock().remove(secret) {
            Some(c) if c.expires_in() != Some(0) => Ok(c),
            Some(_) => Err(ApiError::unauthorized(
                "token expired: reconnect with a fresh ticket",
            )),
            None => Err(ApiError::unauthorized("unknown or already used resume id")),
        }
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
