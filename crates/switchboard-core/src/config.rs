//! Node configuration: session timings, limits, namespaces and JWT keys.
//!
//! Every struct deserializes with defaults for missing fields and rejects unknown ones, so a
//! typo in a config file fails at start-up naming the key.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything the core needs to run a node.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Name of this node in `/api/info` and logs (a random one when empty).
    pub name: String,
    /// Token verification.
    pub jwt: JwtConfig,
    /// Session behaviour (pings, timeouts, expiry notices).
    pub client: ClientConfig,
    /// Limits that protect the node.
    pub limits: LimitsConfig,
    /// Channel policies by namespace; the `default` entry covers channels without a namespace
    /// and namespaces not listed.
    pub namespaces: BTreeMap<String, NamespaceConfig>,
}

/// JWT verification settings.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// Shared secret for HMAC algorithms.
    pub secret: Option<String>,
    /// Algorithm pinned for `secret`: `HS256` (default), `HS384` or `HS512`.
    pub secret_algorithm: Option<String>,
    /// PEM public key (RSA or EC) for asymmetric tokens.
    pub public_key_pem: Option<String>,
    /// Path of a PEM public key file, instead of `public_key_pem`.
    pub public_key_file: Option<String>,
    /// Algorithm pinned for the public key: `RS256` (default for RSA), `ES256`, ...
    pub public_key_algorithm: Option<String>,
    /// Required `aud`, when set.
    pub audience: Option<String>,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Clock leeway for `exp`/`nbf`.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
}

impl std::fmt::Debug for JwtConfig {
    // Secrets must never reach logs, not even through a debug print of the config.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtConfig")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("secret_algorithm", &self.secret_algorithm)
            .field("public_key_file", &self.public_key_file)
            .field("public_key_algorithm", &self.public_key_algorithm)
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .field("leeway", &self.leeway)
            .finish()
    }
}

/// Session timings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientConfig {
    /// Interval of `ping` pushes and WebSocket Ping frames. 25 s stays under the 30–60 s idle
    /// timeouts of common proxies and NATs.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// How long after a missed pong a WebSocket peer is declared stale.
    #[serde(with = "humantime_serde")]
    pub pong_timeout: Duration,
    /// Deadline for the first (`connect`) frame.
    #[serde(with = "humantime_serde")]
    pub auth_timeout: Duration,
    /// How long before `exp` the `expiring` push is sent.
    #[serde(with = "humantime_serde")]
    pub expiring_notice: Duration,
    /// Presence entries expire unless refreshed within this time.
    #[serde(with = "humantime_serde")]
    pub presence_ttl: Duration,
    /// How long `idempotency_key` results are remembered.
    #[serde(with = "humantime_serde")]
    pub idempotency_ttl: Duration,
    /// Whether `connect` without a token is accepted (anonymous sessions).
    pub allow_anonymous: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(25),
            pong_timeout: Duration::from_secs(10),
            auth_timeout: Duration::from_secs(10),
            expiring_notice: Duration::from_secs(30),
            presence_ttl: Duration::from_secs(60),
            idempotency_ttl: Duration::from_secs(300),
            allow_anonymous: false,
        }
    }
}

/// Limits; each overflow has a documented error or close code.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest client frame / publication payload in bytes (close 4504 / `too_large`).
    pub max_message_size: usize,
    /// Longest channel name in bytes.
    pub max_channel_length: usize,
    /// Subscriptions one session may hold (`limit_exceeded`).
    pub max_subscriptions_per_session: usize,
    /// Bytes queued for one session before it is cut off as a slow consumer (4002). 1 MiB
    /// absorbs bursts of thousands of small messages while capping memory per session.
    pub outbound_queue_bytes: usize,
    /// Commands per second a session may send on average (close 4005 beyond the burst).
    pub command_rate: u32,
    /// Burst of commands allowed above `command_rate`.
    pub command_burst: u32,
    /// Consecutive bad commands before the session is closed with 4500.
    pub max_bad_commands: u32,
    /// Long-lived sessions one user may hold (0 = no limit). Not a key of its own: the server
    /// sets it from `connections.max_per_user`, which also caps handshakes.
    #[serde(skip)]
    pub max_sessions_per_user: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_message_size: 64 * 1024,
            max_channel_length: switchboard_protocol::channel::MAX_CHANNEL_LEN,
            max_subscriptions_per_session: 256,
            outbound_queue_bytes: 1024 * 1024,
            command_rate: 100,
            command_burst: 200,
            max_bad_commands: 10,
            max_sessions_per_user: 0,
        }
    }
}

/// Policy for the channels of one namespace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NamespaceConfig {
    /// Publications kept for resume and `history` (0 = none).
    pub history_size: usize,
    /// How long publications are kept.
    #[serde(with = "humantime_serde")]
    pub history_ttl: Duration,
    /// Track who is subscribed.
    pub presence: bool,
    /// Push `join`/`leave` to subscribers (needs `presence`).
    pub join_leave: bool,
    /// Any authenticated client may publish (otherwise only tokens whose `publish` claim matches).
    pub allow_publish: bool,
    /// Any authenticated client may subscribe (otherwise only tokens whose `channels` claim
    /// matches).
    pub allow_subscribe: bool,
    /// Anonymous clients may subscribe.
    pub allow_anonymous: bool,
    /// WebSocket permessage-deflate for this namespace's publications: `true` or `false`
    /// overrides the server-wide `websocket.compression`; unset follows it. Only sessions that
    /// negotiated the extension ever receive a compressed frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<bool>,
}

impl Default for NamespaceConfig {
    fn default() -> Self {
        Self {
            history_size: 0,
            history_ttl: Duration::from_secs(300),
            presence: false,
            join_leave: false,
            allow_publish: false,
            allow_subscribe: true,
            allow_anonymous: false,
            compression: None,
        }
    }
}

impl NamespaceConfig {
    /// The policy used with no config file: history (100 publications, 10 minutes) and
    /// presence everywhere, so the demo and resume work out of the box. Join/leave stays off:
    /// each join or leave is pushed to every subscriber of the channel, which is quadratic in a
    /// channel's size (see [`NamespaceConfig::development_chat`]).
    pub fn development() -> Self {
        Self {
            history_size: 100,
            history_ttl: Duration::from_secs(600),
            presence: true,
            join_leave: false,
            allow_publish: false,
            allow_subscribe: true,
            allow_anonymous: false,
            compression: None,
        }
    }
}

impl NamespaceConfig {
    /// The development policy of the `chat` namespace: [`NamespaceConfig::development`] with
    /// join/leave pushes, for chat rooms of a reasonable size.
    pub fn development_chat() -> Self {
        Self {
            join_leave: true,
            ..Self::development()
        }
    }
}

impl NodeConfig {
    /// The policy for `namespace` (`""` for channels without one).
    pub fn namespace(&self, namespace: &str) -> &NamespaceConfig {
        static FALLBACK: std::sync::OnceLock<NamespaceConfig> = std::sync::OnceLock::new();
        let key = if namespace.is_empty() {
            "default"
        } else {
            namespace
        };
        self.namespaces
            .get(key)
            .or_else(|| self.namespaces.get("default"))
            .unwrap_or_else(|| FALLBACK.get_or_init(NamespaceConfig::default))
    }

    /// Checks values that deserialize but make no sense.
    ///
    /// # Errors
    /// A message naming the offending key.
    pub fn validate(&self) -> Result<(), String> {
        let c = &self.client;
        if c.ping_interval < Duration::from_secs(1) {
            return Err("client.ping_interval must be at least 1s".into());
        }
        if c.auth_timeout.is_zero() {
            return Err("client.auth_timeout must be above 0".into());
        }
        let l = &self.limits;
        if l.max_message_size < 128 {
            return Err("limits.max_message_size must be at least 128".into());
        }
        if l.outbound_queue_bytes < l.max_message_size {
            return Err(
                "limits.outbound_queue_bytes must be at least limits.max_message_size".into(),
            );
        }
        if l.max_channel_length == 0 || l.max_channel_length > 1024 {
            return Err("limits.max_channel_length must be in 1..=1024".into());
        }
        for (name, ns) in &self.namespaces {
            if name != "default"
                && switchboard_protocol::ChannelName::parse(&format!("{name}:x"), 2048).is_err()
            {
                return Err(format!("namespaces.{name}: invalid namespace name"));
            }
            if ns.join_leave && !ns.presence {
                return Err(format!(
                    "namespaces.{name}.join_leave needs presence = true"
                ));
            }
            if ns.history_size > 0 && ns.history_ttl.is_zero() {
                return Err(format!(
                    "namespaces.{name}.history_ttl must be above 0 when history_size > 0"
                ));
            }
        }
        Ok(())
    }
}
