//! A session: one connected client, whatever its transport.
//!
//! The transport feeds it decoded commands and drains [`SessionHandle::outbox`]; the session
//! checks permissions, talks to the engine and hub, and queues replies. Replies go through the
//! same queue as publications, so a subscribe reply is always followed (never preceded) by the
//! channel's live publications.

pub mod handle;
pub mod outbox;
mod permissions;
mod rate;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use switchboard_protocol::command::{Command, CommandError, Op, decode_frame};
use switchboard_protocol::reply::{
    ConnectResult, Empty, PresenceResult, PublishResult, RefreshResult, SubscribeResult,
    encode_error, encode_ok,
};
use switchboard_protocol::{ClientInfo, Disconnect, ErrorCode, ProtocolError, StreamPosition};

use crate::auth::{AuthError, Credentials};
use crate::engine::{EngineError, HistoryQuery};
use crate::hub::ChannelEntry;
use crate::node::{Node, engine_error};
use handle::{SessionHandle, Transport};
use outbox::{EventKind, Outbound};

/// Where a subscription's recovered publications go.
enum Delivery {
    /// In the reply to command `id`.
    Reply(u64),
    /// As publication items, for streaming transports.
    Stream,
}

/// Result of [`Session::subscribe_stream`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscribed {
    /// Position after the recovered publications.
    pub position: StreamPosition,
    /// Whether everything after `since` was recovered.
    pub recovered: bool,
}

/// What the transport should do after a command.
pub type Flow = Result<(), Disconnect>;

/// One client session. Owned by its transport task.
pub struct Session {
    node: Node,
    handle: Arc<SessionHandle>,
    creds: Option<Credentials>,
    subs: HashMap<Arc<str>, Arc<ChannelEntry>>,
    bad_commands: u32,
    rate: rate::Bucket,
    registered: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.handle.id)
            .field("subs", &self.subs.len())
            .finish()
    }
}

impl Session {
    pub(crate) fn new(node: Node, handle: Arc<SessionHandle>) -> Self {
        let l = &node.inner.config.limits;
        let rate = rate::Bucket::new(l.command_rate, l.command_burst);
        Self {
            node,
            handle,
            creds: None,
            subs: HashMap::new(),
            bad_commands: 0,
            rate,
            registered: false,
        }
    }

    /// The shared handle (outbox, identity).
    pub fn handle(&self) -> &Arc<SessionHandle> {
        &self.handle
    }

    /// The node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Whether `connect` succeeded.
    pub fn is_connected(&self) -> bool {
        self.creds.is_some()
    }

    /// The session's credentials once connected.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.creds.as_ref()
    }

    /// Channels subscribed.
    pub fn channels(&self) -> impl Iterator<Item = &Arc<str>> {
        self.subs.keys()
    }

    /// Connects with already verified credentials (a ticket, or an HTTP `Authorization` header
    /// checked by the transport).
    ///
    /// # Errors
    /// `limit_exceeded` when the user already holds `limits.max_sessions_per_user` sessions
    /// (the transport closes with 4007 or answers 429).
    pub fn connect_with(&mut self, creds: Credentials) -> Result<ConnectResult, ProtocolError> {
        let h = &self.handle;
        h.set_info(ClientInfo {
            client: h.id.to_string(),
            user: creds.user.clone(),
            info: creds.info.clone(),
        });
        h.expires_at
            .store(creds.expires_at.unwrap_or(0), Ordering::Relaxed);
        h.expiring_sent.store(false, Ordering::Relaxed);
        let result = ConnectResult {
            client: h.id.to_string(),
            user: creds.user.clone(),
            expires_in: creds.expires_in(),
            ping_interval: self.node.inner.config.client.ping_interval.as_secs(),
        };
        // Only long-lived sessions are registered (pings, expiry, counts, disconnect by user);
        // a poll request or an HTTP command lives for one request.
        let long_lived = matches!(self.handle.transport, Transport::Ws | Transport::Sse);
        if long_lived && !self.registered {
            let max = self.node.inner.config.limits.max_sessions_per_user;
            if !self
                .node
                .inner
                .registry
                .try_insert(self.handle.clone(), max)
            {
                return Err(ProtocolError::new(
                    ErrorCode::LimitExceeded,
                    "too many connections for this user",
                ));
            }
            self.registered = true;
        }
        self.creds = Some(creds);
        Ok(result)
    }

    fn reply<T: serde::Serialize>(&self, id: u64, result: &T) {
        self.handle
            .outbox
            .push(Outbound::Event(EventKind::Reply, encode_ok(id, result)));
    }

    fn reply_error(&mut self, id: Option<u64>, err: &ProtocolError) -> Flow {
        self.handle
            .outbox
            .push(Outbound::Event(EventKind::Reply, encode_error(id, err)));
        if matches!(err.code, ErrorCode::BadRequest | ErrorCode::InvalidChannel) {
            self.bad_commands += 1;
            if self.bad_commands > self.node.inner.config.limits.max_bad_commands {
                return Err(Disconnect::BAD_REQUEST);
            }
        }
        Ok(())
    }

    /// Decodes and handles one WebSocket text frame (one command or a batch).
    ///
    /// # Errors
    /// The [`Disconnect`] the transport must close with.
    pub async fn handle_frame(&mut self, text: &str) -> Flow {
        for decoded in decode_frame(text) {
            match decoded {
                Ok(cmd) => self.handle_command(cmd).await?,
                Err(CommandError { id, error }) => {
                    if !self.is_connected() {
                        self.handle
                            .outbox
                            .push(Outbound::Event(EventKind::Reply, encode_error(id, &error)));
                        return Err(Disconnect::BAD_REQUEST);
                    }
                    self.reply_error(id, &error)?;
                }
            }
        }
        Ok(())
    }

    /// Handles one command, queueing its reply.
    ///
    /// # Errors
    /// The [`Disconnect`] the transport must close with.
    pub async fn handle_command(&mut self, cmd: Command) -> Flow {
        if !self.rate.take() {
            return Err(Disconnect::RATE_LIMITED);
        }
        let started = Instant::now();
        let op = cmd.op.name();
        let id = cmd.id;
        let flow = match cmd.op {
            Op::Connect { token } => self.connect(id, token),
            _ if !self.is_connected() => {
                let e = ProtocolError::new(ErrorCode::Unauthorized, "send `connect` first");
                self.handle.outbox.push(Outbound::Event(
                    EventKind::Reply,
                    encode_error(Some(id), &e),
                ));
                Err(Disconnect::BAD_REQUEST)
            }
            Op::Subscribe { channel, since } => match self.subscribe(id, &channel, since).await {
                Ok(()) => Ok(()),
                Err(e) => self.reply_error(Some(id), &e),
            },
            Op::Unsubscribe { channel } => {
                if self.unsubscribe(&channel).await {
                    self.reply(id, &Empty {});
                    Ok(())
                } else {
                    self.reply_error(
                        Some(id),
                        &ProtocolError::new(
                            ErrorCode::NotSubscribed,
                            "not subscribed to this channel",
                        ),
                    )
                }
            }
            other => match self.execute(other).await {
                Ok(bytes) => {
                    self.handle
                        .outbox
                        .push(Outbound::Event(EventKind::Reply, splice_id(id, &bytes)));
                    Ok(())
                }
                Err(e) => self.reply_error(Some(id), &e),
            },
        };
        crate::metrics::command(op, started.elapsed().as_secs_f64());
        flow
    }

    fn connect(&mut self, id: u64, token: Option<String>) -> Flow {
        if let Some(creds) = &self.creds {
            // Connected by ticket when the socket opened: `connect` without a token reports
            // the session.
            if token.is_none() {
                let creds = creds.clone();
                return self.connected(id, creds);
            }
            return self.reply_error(
                Some(id),
                &ProtocolError::new(ErrorCode::BadRequest, "already connected"),
            );
        }
        let creds = match token {
            Some(t) => match self.node.verify_token(&t) {
                Ok(c) => c,
                Err(e) => {
                    let err = ProtocolError::new(ErrorCode::Unauthorized, e.to_string());
                    self.handle.outbox.push(Outbound::Event(
                        EventKind::Reply,
                        encode_error(Some(id), &err),
                    ));
                    return Err(if e == AuthError::Expired {
                        Disconnect::EXPIRED
                    } else {
                        Disconnect::INVALID_TOKEN
                    });
                }
            },
            None if self.node.inner.config.client.allow_anonymous => Credentials::anonymous(),
            None => {
                let err = ProtocolError::new(ErrorCode::Unauthorized, "a token is required");
                self.handle.outbox.push(Outbound::Event(
                    EventKind::Reply,
                    encode_error(Some(id), &err),
                ));
                return Err(Disconnect::INVALID_TOKEN);
            }
        };
        self.connected(id, creds)
    }

    fn connected(&mut self, id: u64, creds: Credentials) -> Flow {
        match self.connect_with(creds) {
            Ok(r) => {
                self.reply(id, &r);
                Ok(())
            }
            Err(e) => {
                self.handle.outbox.push(Outbound::Event(
                    EventKind::Reply,
                    encode_error(Some(id), &e),
                ));
                Err(Disconnect::CONNECTION_LIMIT)
            }
        }
    }

    /// Subscribes with recovery, following the buffered protocol described in [`crate::hub`],
    /// and queues the reply.
    async fn subscribe(
        &mut self,
        id: u64,
        channel: &str,
        since: Option<StreamPosition>,
    ) -> Result<(), ProtocolError> {
        self.subscribe_with(channel, since, Delivery::Reply(id))
            .await
            .map(|_| ())
    }

    /// Subscribes for a streaming transport (SSE, poll): recovered publications are queued as
    /// publication items (not a reply), followed by live ones.
    ///
    /// # Errors
    /// Permission, channel and engine errors, as for the `subscribe` command.
    pub async fn subscribe_stream(
        &mut self,
        channel: &str,
        since: Option<StreamPosition>,
    ) -> Result<Subscribed, ProtocolError> {
        self.subscribe_with(channel, since, Delivery::Stream).await
    }

    async fn subscribe_with(
        &mut self,
        channel: &str,
        since: Option<StreamPosition>,
        delivery: Delivery,
    ) -> Result<Subscribed, ProtocolError> {
        let ch = self.node.channel(channel)?;
        let creds = self
            .creds
            .as_ref()
            .ok_or_else(|| ProtocolError::new(ErrorCode::Unauthorized, "not connected"))?;
        let policy = self.node.policy(&ch).clone();
        permissions::can_subscribe(creds, &ch, &policy)?;
        if self.subs.contains_key(channel) {
            return Err(ProtocolError::new(
                ErrorCode::AlreadySubscribed,
                "already subscribed to this channel",
            ));
        }
        let max = self.node.inner.config.limits.max_subscriptions_per_session;
        if self.subs.len() >= max {
            return Err(ProtocolError::new(
                ErrorCode::LimitExceeded,
                format!("at most {max} subscriptions per session"),
            ));
        }
        let hub = &self.node.inner.hub;
        let entry = hub
            .subscribe(&self.handle, channel)
            .await
            .map_err(engine_error("subscribe"))?;
        let engine = &self.node.inner.engine;
        let query = HistoryQuery {
            since: since.clone(),
            limit: if since.is_some() {
                policy.history_size
            } else {
                0
            },
            reverse: false,
        };
        let (position, recovered, publications) = match engine.history(channel, &query).await {
            Ok(page) => (page.position, true, page.publications),
            Err(EngineError::Unrecoverable { position }) => (position, false, Vec::new()),
            Err(e) => {
                hub.unsubscribe(&self.handle, channel).await;
                return Err(engine_error("history")(e));
            }
        };
        let head = match delivery {
            Delivery::Reply(id) => {
                let r = SubscribeResult {
                    position: position.clone(),
                    recovered,
                    publications,
                };
                vec![Outbound::Event(EventKind::Reply, encode_ok(id, &r))]
            }
            Delivery::Stream => {
                let epoch: Arc<str> = position.epoch.as_str().into();
                publications
                    .iter()
                    .map(|p| Outbound::Pub(crate::hub::Hub::item(entry.name(), &epoch, p)))
                    .collect()
            }
        };
        hub.activate(&entry, &self.handle, &position, head);
        self.subs.insert(entry.name().clone(), entry);
        if policy.presence {
            let info = self.handle.info();
            let ttl = self.node.inner.config.client.presence_ttl;
            if engine
                .presence_add(channel, std::slice::from_ref(&*info), ttl)
                .await
                .is_err()
            {
                crate::metrics::engine_error("presence_add");
            }
            if policy.join_leave
                && engine
                    .publish_join_leave(channel, true, &info)
                    .await
                    .is_err()
            {
                crate::metrics::engine_error("join");
            }
        }
        Ok(Subscribed {
            position,
            recovered,
        })
    }

    /// Unsubscribes; returns whether the session was subscribed.
    pub async fn unsubscribe(&mut self, channel: &str) -> bool {
        let Some(entry) = self.subs.remove(channel) else {
            return false;
        };
        self.node
            .inner
            .hub
            .unsubscribe(&self.handle, entry.name())
            .await;
        self.leave(entry.name()).await;
        true
    }

    async fn leave(&self, channel: &str) {
        let Ok(ch) = self.node.channel(channel) else {
            return;
        };
        let policy = self.node.policy(&ch);
        if policy.presence {
            let engine = &self.node.inner.engine;
            let _ = engine.presence_remove(channel, &self.handle.id).await;
            if policy.join_leave {
                let _ = engine
                    .publish_join_leave(channel, false, &self.handle.info())
                    .await;
            }
        }
    }

    /// Runs a stateless command (`publish`, `history`, `presence`, `refresh`) and returns the
    /// reply body with id 0 (callers splice their id). Used by WebSocket sessions and by the
    /// HTTP command endpoint.
    ///
    /// # Errors
    /// The command's error.
    pub async fn execute(&mut self, op: Op) -> Result<Bytes, ProtocolError> {
        let creds = self
            .creds
            .as_ref()
            .ok_or_else(|| ProtocolError::new(ErrorCode::Unauthorized, "not connected"))?;
        match op {
            Op::Publish { channel, data } => {
                let ch = self.node.channel(&channel)?;
                permissions::can_publish(creds, &ch, self.node.policy(&ch))?;
                let info = (*self.handle.info()).clone();
                let r: PublishResult = self
                    .node
                    .publish_as(&channel, data, None, Some(info))
                    .await?;
                Ok(encode_ok(0, &r))
            }
            Op::History {
                channel,
                since,
                limit,
                reverse,
            } => {
                let ch = self.node.channel(&channel)?;
                permissions::can_subscribe(creds, &ch, self.node.policy(&ch))?;
                Ok(encode_ok(
                    0,
                    &self.node.history(&channel, since, limit, reverse).await?,
                ))
            }
            Op::Presence { channel } => {
                let ch = self.node.channel(&channel)?;
                permissions::can_subscribe(creds, &ch, self.node.policy(&ch))?;
                Ok(encode_ok(
                    0,
                    &PresenceResult {
                        clients: self.node.presence(&channel).await?,
                    },
                ))
            }
            Op::Refresh { token } => {
                let fresh = self
                    .node
                    .verify_token(&token)
                    .map_err(|e| ProtocolError::new(ErrorCode::Unauthorized, e.to_string()))?;
                if fresh.user != creds.user {
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
                Ok(encode_ok(0, &r))
            }
            other => Err(ProtocolError::new(
                ErrorCode::BadRequest,
                format!("`{}` is not available here", other.name()),
            )),
        }
    }

    /// Ends the session: unsubscribes everything, removes presence and unregisters. Transports
    /// call it exactly once when the connection ends.
    pub async fn close(&mut self, reason: Option<&Disconnect>) {
        let channels: Vec<Arc<str>> = self.subs.keys().cloned().collect();
        for ch in channels {
            self.unsubscribe(&ch).await;
        }
        if self.registered {
            self.node.inner.registry.remove(&self.handle);
            self.registered = false;
        }
        if let Some(r) = reason {
            crate::metrics::disconnect(r.code);
        }
    }
}

/// Replaces the `"id":0` that [`Session::execute`] encodes with the caller's id.
pub fn splice_id(id: u64, reply: &Bytes) -> Bytes {
    const PREFIX: &[u8] = br#"{"id":0,"#;
    match reply.strip_prefix(PREFIX) {
        Some(rest) if id != 0 => {
            let mut v = Vec::with_capacity(reply.len() + 20);
            v.extend_from_slice(br#"{"id":"#);
            v.extend_from_slice(id.to_string().as_bytes());
            v.push(b',');
            v.extend_from_slice(rest);
            Bytes::from(v)
        }
        _ => reply.clone(),
    }
}
