//! Single-use connection tickets and SSE resume secrets, valid on every node.
//!
//! `POST /auth/ticket` exchanges a verified token for a random 192-bit ticket bound to the
//! token's credentials. Redeeming takes it, so a ticket seen in a proxy log or browser history
//! is worthless. The credentials live in the engine (`Engine::put_once`/`take_once`): on the
//! memory engine in this node, on Redis for every node (`SET PX`, `GETDEL`), so behind a load
//! balancer without sticky sessions a ticket minted on node A is accepted once on node B, and
//! single use holds across nodes: it is enforced by the engine, never by trusting the client.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use rand::RngCore;
use std::sync::Arc;
use switchboard_core::{Credentials, Engine};
use switchboard_protocol::ErrorCode;

use crate::error::ApiError;

/// Length of a ticket or resume secret: 24 random bytes in base64url.
const SECRET_LEN: usize = 32;
/// Longest a resume secret is kept for a token that does not expire (anonymous streams).
const MAX_RESUME_TTL: Duration = Duration::from_secs(24 * 3600);

/// The ticket store (a view of the engine's single-use values).
pub struct Tickets {
    ttl: Duration,
    engine: Arc<dyn Engine>,
}

/// A fresh ticket or resume secret.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `s` can be one of ours: checked before it is used as a key.
pub fn well_formed(s: &str) -> bool {
    s.len() == SECRET_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn unavailable() -> ApiError {
    ApiError::new(
        ErrorCode::Internal,
        "tickets are unavailable (engine unreachable); retry later",
    )
}

impl Tickets {
    /// Tickets valid for `ttl`, stored in `engine`.
    pub fn new(ttl: Duration, engine: Arc<dyn Engine>) -> Self {
        Self { ttl, engine }
    }

    async fn put(
        &self,
        kind: &str,
        creds: &Credentials,
        ttl: Duration,
    ) -> Result<String, ApiError> {
        let secret = random_secret();
        let value = serde_json::to_vec(creds).map_err(|_| unavailable())?;
        self.engine
            .put_once(&format!("{kind}:{secret}"), Bytes::from(value), ttl)
            .await
            .map_err(|_| unavailable())?;
        Ok(secret)
    }

    async fn take(&self, kind: &str, secret: &str) -> Result<Option<Credentials>, ApiError> {
        if !well_formed(secret) {
            return Ok(None);
        }
        let value = self
            .engine
            .take_once(&format!("{kind}:{secret}"))
            .await
            .map_err(|_| unavailable())?;
        // Written by `put` above; anything else is as good as unknown.
        Ok(value.and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Issues a ticket; returns it with its lifetime in seconds.
    ///
    /// # Errors
    /// 500 when the engine cannot store it.
    pub async fn issue(&self, creds: Credentials) -> Result<(String, u64), ApiError> {
        // A ticket never outlives the token it stands for.
        let ttl = creds
            .expires_in()
            .map_or(self.ttl, |s| self.ttl.min(Duration::from_secs(s)));
        let ticket = self.put("t", &creds, ttl).await?;
        Ok((ticket, ttl.as_secs()))
    }

    /// Redeems a ticket once, on any node.
    ///
    /// # Errors
    /// 401 for unknown, replayed or expired tickets, and when the token it stood for expired.
    pub async fn redeem(&self, ticket: &str) -> Result<Credentials, ApiError> {
        match self.take("t", ticket).await? {
            Some(c) if c.expires_in() != Some(0) => Ok(c),
            Some(_) => Err(ApiError::unauthorized("ticket expired")),
            None => Err(ApiError::unauthorized("unknown or already used ticket")),
        }
    }

    /// Issues the resume secret of an SSE stream. It rides in every event id (never in a URL),
    /// so the browser's own reconnect (`Last-Event-ID`) can authenticate once more with the same
    /// credentials, on any node, even though the stream's ticket was single-use. It is itself
    /// single-use and dies with the token.
    ///
    /// # Errors
    /// 500 when the engine cannot store it.
    pub async fn issue_resume(&self, creds: &Credentials) -> Result<String, ApiError> {
        let ttl = creds.expires_in().map_or(MAX_RESUME_TTL, |s| {
            MAX_RESUME_TTL.min(Duration::from_secs(s))
        });
        self.put("r", creds, ttl.max(Duration::from_secs(1))).await
    }

    /// Forgets a resume secret (its stream ended for a reason that must not resume).
    pub async fn revoke_resume(&self, secret: &str) {
        let _ = self.take("r", secret).await;
    }

    /// Redeems a resume secret once, on any node.
    ///
    /// # Errors
    /// 401 for unknown or used secrets and expired tokens.
    pub async fn redeem_resume(&self, secret: &str) -> Result<Credentials, ApiError> {
        match self.take("r", secret).await? {
            Some(c) if c.expires_in() != Some(0) => Ok(c),
            Some(_) => Err(ApiError::unauthorized(
                "token expired: reconnect with a fresh ticket",
            )),
            None => Err(ApiError::unauthorized("unknown or already used resume id")),
        }
    }
}
