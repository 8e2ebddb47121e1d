//! Commands: decoding a frame, permission checks, running each `op`, and the one reply path.
//!
//! Every command is answered once, encoded with its own id: [`Session::reply_to`] queues the
//! answer to the outbox for transports that stream (WebSocket), [`Session::execute`] returns
//! it to request–response callers (`POST /cmd`). A subscribe reply differs in timing, not in
//! path: the hub queues it under the channel's lock so no live publication can overtake it.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use switchboard_protocol::command::{Command, CommandError, Op, decode_frame};
use switchboard_protocol::reply::{
    Empty, PresenceResult, PublishResult, RefreshResult, encode_error, encode_ok,
};
use switchboard_protocol::{Disconnect, ErrorCode, ProtocolError};
use tokio::time::Instant;

use super::{Session, permissions};
use crate::auth::{AuthError, Credentials};
use crate::outbox::{EventKind, Outbound};

/// What the transport should do after a command.
pub type Flow = Result<(), Disconnect>;

/// A command's outcome before it reaches the client.
enum Answer {
    /// The encoded success reply.
    Ok(Bytes),
    /// Already queued (subscribe: the hub orders it before live publications).
    Queued,
}

impl Session {
    /// Decodes and handles one WebSocket text frame (one command or a batch).
    ///
    /// # Errors
    /// The [`Disconnect`] the transport must close with.
    pub async fn handle_frame(&mut self, text: &str) -> Flow {
        for decoded in decode_frame(text) {
            match decoded {
                Ok(cmd) => self.handle_command(cmd).await?,
                Err(CommandError { id, error }) => {
                    self.queue(encode_error(id, &error));
                    if !self.is_connected() {
                        return Err(Disconnect::BAD_REQUEST);
                    }
                    self.count_bad(error.code)?;
                }
            }
        }
        Ok(())
    }

    /// Handles one command and queues its reply.
    ///
    /// # Errors
    /// The [`Disconnect`] the transport must close with.
    pub async fn handle_command(&mut self, cmd: Command) -> Flow {
        if !self.rate.take() {
            return Err(Disconnect::RATE_LIMITED);
        }
        let started = Instant::now();
        let op = cmd.op.name();
        let flow = self.run(cmd.id, cmd.op).await;
        crate::metrics::command(op, started.elapsed().as_secs_f64());
        flow
    }

    /// Runs one command for a request–response caller and returns its encoded reply
    /// (`{"id":..,"ok":..}` or `{"id":..,"error":..}`) with the error code, if any, for the
    /// HTTP status. Meant for stateless commands (`publish`, `history`, `presence`).
    pub async fn execute(&mut self, id: u64, op: Op) -> (Bytes, Option<ErrorCode>) {
        match self.answer(id, op).await {
            Ok(Answer::Ok(bytes)) => (bytes, None),
            Ok(Answer::Queued) => (encode_ok(id, &Empty {}), None),
            Err(e) => (encode_error(Some(id), &e), Some(e.code)),
        }
    }

    async fn run(&mut self, id: u64, op: Op) -> Flow {
        match op {
            Op::Connect { token } => self.connect(id, token),
            _ if !self.is_connected() => {
                let e = ProtocolError::new(ErrorCode::Unauthorized, "send `connect` first");
                self.queue(encode_error(Some(id), &e));
                Err(Disconnect::BAD_REQUEST)
            }
            op => {
                let answer = self.answer(id, op).await;
                self.reply_to(id, answer)
            }
        }
    }

    /// The one place a command's outcome becomes a reply in the outbox.
    fn reply_to(&mut self, id: u64, answer: Result<Answer, ProtocolError>) -> Flow {
        match answer {
            Ok(Answer::Ok(bytes)) => {
                self.queue(bytes);
                Ok(())
            }
            Ok(Answer::Queued) => Ok(()),
            Err(e) => {
                self.queue(encode_error(Some(id), &e));
                self.count_bad(e.code)
            }
        }
    }

    fn queue(&self, reply: Bytes) {
        self.handle
            .outbox
            .push(Outbound::Event(EventKind::Reply, reply));
    }

    fn count_bad(&mut self, code: ErrorCode) -> Flow {
        if matches!(code, ErrorCode::BadRequest | ErrorCode::InvalidChannel) {
            self.bad_commands += 1;
            if self.bad_commands > self.shared.config.limits.max_bad_commands {
                return Err(Disconnect::BAD_REQUEST);
            }
        }
        Ok(())
    }

    fn connect(&mut self, id: u64, token: Option<String>) -> Flow {
        if let Some(creds) = &self.creds {
            // Connected by ticket when the socket opened: `connect` without a token reports
            // the session.
            if token.is_none() {
                let creds = creds.clone();
                return self.connected(id, creds);
            }
            let e = ProtocolError::new(ErrorCode::BadRequest, "already connected");
            return self.reply_to(id, Err(e));
        }
        let creds = match token {
            Some(t) => match self.shared.verifier.verify(&t) {
                Ok(c) => c,
                Err(e) => {
                    let err = ProtocolError::new(ErrorCode::Unauthorized, e.to_string());
                    self.queue(encode_error(Some(id), &err));
                    return Err(if e == AuthError::Expired {
                        Disconnect::EXPIRED
                    } else {
                        Disconnect::INVALID_TOKEN
                    });
                }
            },
            None if self.shared.config.client.allow_anonymous => Credentials::anonymous(),
            None => {
                let err = ProtocolError::new(ErrorCode::Unauthorized, "a token is required");
                self.queue(encode_error(Some(id), &err));
                return Err(Disconnect::INVALID_TOKEN);
            }
        };
        self.connected(id, creds)
    }

    fn connected(&mut self, id: u64, creds: Credentials) -> Flow {
        match self.connect_with(creds) {
            Ok(r) => {
                self.queue(encode_ok(id, &r));
                Ok(())
            }
            Err(e) => {
                self.queue(encode_error(Some(id), &e));
                Err(Disconnect::CONNECTION_LIMIT)
            }
        }
    }

    fn creds(&self) -> Result<&Credentials, ProtocolError> {
        self.creds
            .as_ref()
            .ok_or_else(|| ProtocolError::new(ErrorCode::Unauthorized, "not connected"))
    }

    async fn answer(&mut self, id: u64, op: Op) -> Result<Answer, ProtocolError> {
        self.creds()?;
        let ok = |r: Bytes| Ok(Answer::Ok(r));
        match op {
            Op::Subscribe { channel, since } => {
                let reply_id = self.handle.caps.replies.then_some(id);
                self.subscribe_with(&channel, since, reply_id).await?;
                Ok(Answer::Queued)
            }
            Op::Unsubscribe { channel } => {
                if self.unsubscribe(&channel).await {
                    ok(encode_ok(id, &Empty {}))
                } else {
                    Err(ProtocolError::new(
                        ErrorCode::NotSubscribed,
                        "not subscribed to this channel",
                    ))
                }
            }
            Op::Publish { channel, data } => {
                let ch = self.shared.channel(&channel)?;
                permissions::can_publish(self.creds()?, &ch, self.shared.policy(&ch))?;
                let info = (*self.handle.info()).clone();
                let r: PublishResult = self
                    .shared
                    .publish(&channel, data, None, Some(info))
                    .await?;
                ok(encode_ok(id, &r))
            }
            Op::History {
                channel,
                since,
                limit,
                reverse,
            } => {
                let ch = self.shared.channel(&channel)?;
                permissions::can_subscribe(self.creds()?, &ch, self.shared.policy(&ch))?;
                let r = self.shared.history(&channel, since, limit, reverse).await?;
                ok(encode_ok(id, &r))
            }
            Op::Presence { channel } => {
                let ch = self.shared.channel(&channel)?;
                permissions::can_subscribe(self.creds()?, &ch, self.shared.policy(&ch))?;
                let clients = self.shared.presence(&channel).await?;
                ok(encode_ok(id, &PresenceResult { clients }))
            }
            Op::Refresh { token } => {
                let fresh = self
                    .shared
                    .verifier
                    .verify(&token)
                    .map_err(|e| ProtocolError::new(ErrorCode::Unauthorized, e.to_string()))?;
                if fresh.user != self.creds()?.user {
                    return Err(ProtocolError::new(
                        ErrorCode::PermissionDenied,
                        "the new token belongs to another user",
                    ));
                }
                let h = &self.handle;
                h.expires_at
                    .store(fresh.expires_at.unwrap_or(0), Ordering::Relaxed);
                h.expiring_sent.store(false, Ordering::Relaxed);
                let r = RefreshResult {
                    expires_in: fresh.expires_in(),
                };
                self.creds = Some(fresh);
                ok(encode_ok(id, &r))
            }
            Op::Connect { .. } => Err(ProtocolError::new(
                ErrorCode::BadRequest,
                "already connected",
            )),
        }
    }
}
