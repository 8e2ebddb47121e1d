//! A session: one connected client, whatever its transport.
//!
//! The transport opens it with its [`Capabilities`](crate::Capabilities), feeds it commands or
//! a resume cursor, and drains [`SessionHandle::outbox`]; the session checks permissions, talks
//! to the engine and hub, and queues replies. Replies go through the same queue as
//! publications, so a subscribe reply is always followed (never preceded) by the channel's live
//! publications.
//!
//! Cleanup follows ownership: whatever a session registered (hub slots, registry entry,
//! presence entries) is removed when the `Session` is dropped, for whatever reason — a
//! finished connection, an early `?`, a cancelled or panicking connection future. The part
//! that needs no IO happens in `drop` itself; the engine calls (unsubscribe the node, remove
//! presence, leave pushes) run in a spawned task. [`Session::close`] does the same eagerly and
//! records why the session ended.

mod command;
mod permissions;
mod rate;
mod resume;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use switchboard_protocol::reply::{ConnectResult, SubscribeResult, encode_ok};
use switchboard_protocol::{ClientInfo, Disconnect, ErrorCode, ProtocolError, StreamPosition};

use crate::auth::Credentials;
use crate::config::NodeConfig;
use crate::engine::{EngineError, HistoryQuery};
use crate::handle::SessionHandle;
use crate::hub::{ChannelEntry, Hub};
use crate::outbox::{EventKind, Outbound};
use crate::shared::{Shared, engine_error};

pub use command::Flow;
pub use resume::Resumed;

/// Result of a subscription opened by a streaming transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscribed {
    /// Position after the recovered publications.
    pub position: StreamPosition,
    /// Whether everything after `since` was recovered.
    pub recovered: bool,
}

/// One client session. Owned by its transport's connection task (see the module docs for what
/// dropping it does).
pub struct Session {
    shared: Arc<Shared>,
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
    pub(crate) fn new(shared: Arc<Shared>, handle: Arc<SessionHandle>) -> Self {
        let l = &shared.config.limits;
        let rate = rate::Bucket::new(l.command_rate, l.command_burst);
        Self {
            shared,
            handle,
            creds: None,
            subs: HashMap::new(),
            bad_commands: 0,
            rate,
            registered: false,
        }
    }

    /// The shared handle (outbox, identity, capabilities).
    pub fn handle(&self) -> &Arc<SessionHandle> {
        &self.handle
    }

    /// The node's configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.shared.config
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
            ping_interval: self.shared.config.client.ping_interval.as_secs(),
        };
        // Only long-lived sessions are registered (pings, expiry, counts, disconnect by user).
        if self.handle.caps.long_lived && !self.registered {
            let max = self.shared.config.limits.max_sessions_per_user;
            if !self.shared.registry.try_insert(self.handle.clone(), max) {
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
        self.subscribe_with(channel, since, None).await
    }

    /// Subscribes with recovery, following the buffered protocol described in [`crate::hub`].
    /// With `reply_id`, the recovered publications go in the reply to that command; without,
    /// they are queued as publications (streaming transports).
    async fn subscribe_with(
        &mut self,
        channel: &str,
        since: Option<StreamPosition>,
        reply_id: Option<u64>,
    ) -> Result<Subscribed, ProtocolError> {
        let ch = self.shared.channel(channel)?;
        let creds = self
            .creds
            .as_ref()
            .ok_or_else(|| ProtocolError::new(ErrorCode::Unauthorized, "not connected"))?;
        let policy = self.shared.policy(&ch).clone();
        permissions::can_subscribe(creds, &ch, &policy)?;
        if self.subs.contains_key(channel) {
            return Err(ProtocolError::new(
                ErrorCode::AlreadySubscribed,
                "already subscribed to this channel",
            ));
        }
        let max = self.shared.config.limits.max_subscriptions_per_session;
        if self.subs.len() >= max {
            return Err(ProtocolError::new(
                ErrorCode::LimitExceeded,
                format!("at most {max} subscriptions per session"),
            ));
        }
        let hub = &self.shared.hub;
        let entry = hub
            .subscribe(&self.handle, channel)
            .await
            .map_err(engine_error("subscribe"))?;
        // From here the hub holds a slot: it is ours to remove, on error or drop.
        self.subs.insert(entry.name().clone(), entry.clone());
        let engine = &self.shared.engine;
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
                self.subs.remove(channel);
                hub.unsubscribe(&self.handle, channel).await;
                return Err(engine_error("history")(e));
            }
        };
        let head = match reply_id {
            Some(id) => {
                let r = SubscribeResult {
                    position: position.clone(),
                    recovered,
                    publications,
                };
                vec![Outbound::Event(EventKind::Reply, encode_ok(id, &r))]
            }
            None => {
                let epoch: Arc<str> = position.epoch.as_str().into();
                publications
                    .iter()
                    .map(|p| Outbound::Pub(Hub::item(entry.name(), &epoch, p)))
                    .collect()
            }
        };
        hub.activate(&entry, &self.handle, &position, head);
        if policy.presence {
            let info = self.handle.info();
            let ttl = self.shared.config.client.presence_ttl;
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
        Cleanup::channel(&self.shared, &self.handle, entry.name()).await;
        true
    }

    /// Ends the session now: unsubscribes everything, removes presence and unregisters, and
    /// records `reason` (the server's reason; `None` when the client went away). Dropping the
    /// session does the same without waiting; calling `close` is optional.
    pub async fn close(&mut self, reason: Option<&Disconnect>) {
        self.take_cleanup().run().await;
        if let Some(r) = reason {
            crate::metrics::disconnect(r.code);
        }
    }

    /// Takes everything this session registered, leaving nothing for `drop`.
    fn take_cleanup(&mut self) -> Cleanup {
        if std::mem::take(&mut self.registered) {
            self.shared.registry.remove(&self.handle);
        }
        let channels: Vec<Arc<str>> = self.subs.drain().map(|(k, _)| k).collect();
        // The hub slots go at once, so no publication is queued to a session that is gone.
        for ch in &channels {
            self.shared.hub.remove_slot(&self.handle, ch);
        }
        Cleanup {
            shared: self.shared.clone(),
            handle: self.handle.clone(),
            channels,
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.registered && self.subs.is_empty() {
            return;
        }
        let cleanup = self.take_cleanup();
        // The engine calls need a runtime; without one (the runtime itself is shutting down)
        // there is no engine left to tell, and presence entries expire by their TTL.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(cleanup.run());
        }
    }
}

/// The engine-side cleanup of a session's channels, after its hub slots were removed.
struct Cleanup {
    shared: Arc<Shared>,
    handle: Arc<SessionHandle>,
    channels: Vec<Arc<str>>,
}

impl Cleanup {
    async fn run(self) {
        for ch in &self.channels {
            Self::channel(&self.shared, &self.handle, ch).await;
        }
    }

    /// Leaves one channel: hub slot (if still there), node interest, presence, leave push.
    async fn channel(shared: &Shared, handle: &SessionHandle, channel: &str) {
        shared.hub.unsubscribe(handle, channel).await;
        let Ok(ch) = shared.channel(channel) else {
            return;
        };
        let policy = shared.policy(&ch);
        if policy.presence {
            let _ = shared.engine.presence_remove(channel, &handle.id).await;
            if policy.join_leave {
                let _ = shared
                    .engine
                    .publish_join_leave(channel, false, &handle.info())
                    .await;
            }
        }
    }
}
