//! Configuration: built-in defaults ← TOML file ← `SWITCHBOARD_*` environment ← command-line
//! flags. Unknown keys are errors that name the key; see `docs/configuration.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use switchboard_core::NodeConfig;

use switchboard_core::config::{ClientConfig, JwtConfig, LimitsConfig, NamespaceConfig};

/// Which engine backs the node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// Embedded, single node.
    #[default]
    Memory,
    /// Redis, several nodes.
    Redis,
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The whole configuration file.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// Key for `/api` (`X-API-Key`); generated at start-up when unset.
    pub api_key: Option<String>,
    /// `memory` or `redis`.
    pub engine: EngineKind,
    /// Redis URL for `engine = "redis"`.
    pub redis_url: String,
    /// Prefix of every Redis key.
    pub redis_prefix: String,
    /// Redis Cluster mode (sharded pub/sub).
    pub redis_cluster: bool,
    /// How long an unused channel's position (offset and epoch) is kept after its last
    /// publication, history read or last subscriber leaving; never while subscribed. Both
    /// engines.
    #[serde(with = "humantime_serde")]
    pub meta_ttl: Duration,
    /// Node name (random when empty).
    pub name: String,
    /// Origins allowed on WebSocket and SSE handshakes (exact match; empty = any).
    pub allowed_origins: Vec<String>,
    /// PEM certificate chain: serve https/wss.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// `text` or `json` logs.
    pub log_format: LogFormat,
    /// Lifetime of connection tickets.
    #[serde(with = "humantime_serde")]
    pub ticket_ttl: Duration,
    /// Interval of SSE keep-alive comments (below common proxy idle timeouts).
    #[serde(with = "humantime_serde")]
    pub sse_keepalive: Duration,
    /// Longest wait a `/poll` request may ask for.
    #[serde(with = "humantime_serde")]
    pub poll_max_timeout: Duration,
    /// Time given to sessions and requests to finish at shutdown.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Sessions told to reconnect per second while draining.
    pub drain_rate: usize,
    /// Serve the demo page, `/dev/token` and the demo ticker (default: on without a config
    /// file, off with one).
    pub demo: Option<bool>,
    /// Cross-origin access for browsers (see `cors.rs`).
    pub cors: CorsConfig,
    /// WebSocket options (`[websocket]`): permessage-deflate.
    pub websocket: WebSocketConfig,
    /// Token verification.
    pub jwt: JwtConfig,
    /// Session timings.
    pub client: ClientConfig,
    /// Message and session limits.
    pub limits: LimitsConfig,
    /// Connection limits.
    pub connections: ConnectionLimits,
    /// Channel policies by namespace (`default` for the rest).
    pub namespaces: BTreeMap<String, NamespaceConfig>,
    /// The admin console at `/admin` (`[admin]`), off by default.
    pub admin: AdminConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8000".into(),
            api_key: None,
            engine: EngineKind::Memory,
            redis_url: "redis://127.0.0.1:6379".into(),
            redis_prefix: "sb".into(),
            redis_cluster: false,
            meta_ttl: switchboard_core::engine::memory::DEFAULT_META_TTL,
            name: String::new(),
            allowed_origins: Vec::new(),
            tls_cert: None,
            tls_key: None,
            log_format: LogFormat::Text,
            ticket_ttl: Duration::from_secs(30),
            sse_keepalive: Duration::from_secs(15),
            poll_max_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            drain_rate: 1000,
            demo: None,
            cors: CorsConfig::default(),
            websocket: WebSocketConfig::default(),
            jwt: JwtConfig::default(),
            client: ClientConfig::default(),
            limits: LimitsConfig::default(),
            connections: ConnectionLimits::default(),
            namespaces: BTreeMap::new(),
            admin: AdminConfig::default(),
        }
    }
}

/// Values given on the command line; they override everything else.
#[derive(Clone, Default, Serialize)]
pub struct Overrides {
    /// `--listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// `--api-key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// `--engine`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineKind>,
    /// `--redis-url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// `--jwt-secret` (or `SWITCHBOARD_JWT_SECRET`).
    #[serde(skip)]
    pub jwt_secret: Option<String>,
}

/// A loaded configuration with where it came from.
#[derive(Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// No config file was given: development defaults apply.
    pub development: bool,
    /// Secrets generated because none were configured (printed once at start-up).
    pub generated: Vec<(&'static str, String)>,
}

const REDACTED: &str = "<redacted>";

// Secrets never reach logs, not even through a debug print of the configuration.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut()
            && o.get("api_key").is_some_and(|k| !k.is_null())
        {
            o.insert("api_key".into(), REDACTED.into());
        }
        if let Some(j) = v.get_mut("jwt").and_then(|j| j.as_object_mut())
            && j.get("secret").is_some_and(|k| !k.is_null())
        {
            j.insert("secret".into(), REDACTED.into());
        }
        if let Some(a) = v.get_mut("admin").and_then(|a| a.as_object_mut())
            && a.get("password").is_some_and(|k| !k.is_null())
        {
            a.insert("password".into(), REDACTED.into());
        }
        write!(f, "Config {v}")
    }
}

impl std::fmt::Debug for Overrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overrides")
            .field("listen", &self.listen)
            .field("api_key", &self.api_key.as_ref().map(|_| REDACTED))
            .field("engine", &self.engine)
            .field("redis_url", &self.redis_url)
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| REDACTED))
            .finish()
    }
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let generated: Vec<&str> = self.generated.iter().map(|(k, _)| *k).collect();
        f.debug_struct("Loaded")
            .field("config", &self.config)
            .field("development", &self.development)
            .field("generated", &generated)
            .finish()
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("api_key", &REDACTED)
            .field("allowed_origins", &self.allowed_origins)
            .field("cors", &self.cors)
            .field("ticket_ttl", &self.ticket_ttl)
            .field("sse_keepalive", &self.sse_keepalive)
            .field("poll_max_timeout", &self.poll_max_timeout)
            .field("demo", &self.demo)
            .field("connections", &self.connections)
            .field("admin", &self.admin)
            .finish()
    }
}

/// Environment variables that the command line reads itself.
const CLI_ENV: &[&str] = &["config", "jwt_secret", "url"];

/// Loads the configuration.
///
/// # Errors
/// A message naming the bad key or file.
pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Loaded, String> {
    let mut fig = Figment::from(Serialized::defaults(Config::default()));
    if let Some(path) = file {
        if !path.exists() {
            return Err(format!("config file {} does not exist", path.display()));
        }
        fig = fig.merge(Toml::file_exact(path));
    }
    fig = fig
        .merge(
            Env::prefixed("SWITCHBOARD_")
                .split("__")
                .filter(|k| !CLI_ENV.iter().any(|c| k.as_str().eq_ignore_ascii_case(c))),
        )
        .merge(Serialized::defaults(overrides));
    let mut config: Config = fig.extract().map_err(|e| {
        e.into_iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    if let Some(secret) = &overrides.jwt_secret {
        config.jwt.secret = Some(secret.clone());
    }
    let development = file.is_none();
    if development {
        // Namespaces given through the environment add to the development default.
        config
            .namespaces
            .entry("default".into())
            .or_insert_with(NamespaceConfig::development);
        config
            .namespaces
            .entry("chat".into())
            .or_insert_with(NamespaceConfig::development_chat);
    }
    let mut generated = Vec::new();
    if config.api_key.as_deref().is_none_or(str::is_empty) {
        let key = random_secret();
        generated.push(("api key", key.clone()));
        config.api_key = Some(key);
    }
    if config.jwt.secret.is_none()
        && config.jwt.public_key_pem.is_none()
        && config.jwt.public_key_file.is_none()
    {
        let secret = random_secret();
        generated.push(("jwt secret", secret.clone()));
        config.jwt.secret = Some(secret);
    }
    if config.tls_cert.is_some() != config.tls_key.is_some() {
        return Err("tls_cert and tls_key must be given together".into());
    }
    if !(1..=9).contains(&config.websocket.compression_level) {
        return Err("websocket.compression_level must be in 1..=9".into());
    }
    // An empty password (an environment variable set to "") means "use the API key".
    if config.admin.password.as_deref() == Some("") {
        config.admin.password = None;
    }
    if config.admin.session_ttl.is_zero() {
        return Err("admin.session_ttl must be longer than 0s".into());
    }
    config.node_config().validate()?;
    Ok(Loaded {
        config,
        development,
        generated,
    })
}

fn random_secret() -> String {
    use base64::Engine as _;
    use rand::RngCore;
    let mut b = [0u8; 24];
    rand::rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// HTTP-level settings derived from [`Config`].
#[derive(Clone)]
pub struct Settings {
    /// API key for `/api`.
    pub api_key: String,
    /// Allowed origins.
    pub allowed_origins: Vec<String>,
    /// Ticket lifetime.
    pub ticket_ttl: Duration,
    /// SSE keep-alive interval.
    pub sse_keepalive: Duration,
    /// Longest poll wait.
    pub poll_max_timeout: Duration,
    /// Demo page and dev endpoints on.
    pub demo: bool,
    /// Connection limits.
    pub connections: ConnectionLimits,
    /// Cross-origin policy.
    pub cors: CorsConfig,
    /// WebSocket compression: the server-wide setting, and whether the extension is offered
    /// at all (on when it is on globally or for any namespace).
    pub websocket: WebSocketConfig,
    /// permessage-deflate is negotiated with clients that offer it.
    pub deflate_negotiated: bool,
    /// The admin console.
    pub admin: AdminConfig,
    /// The node serves TLS itself (the admin cookie is then `Secure`).
    pub tls: bool,
}

impl Config {
    /// The core's part of the configuration.
    pub fn node_config(&self) -> NodeConfig {
        let mut namespaces = self.namespaces.clone();
        if self.admin.enabled {
            // The console's stats stream lives in a namespace of its own, whatever the file says.
            namespaces.insert(
                crate::admin::NAMESPACE.into(),
                crate::admin::namespace_policy(),
            );
        }
        NodeConfig {
            name: self.name.clone(),
            jwt: self.jwt.clone(),
            client: self.client.clone(),
            limits: LimitsConfig {
                max_sessions_per_user: self.connections.max_per_user,
                ..self.limits.clone()
            },
            namespaces,
        }
    }

    /// The HTTP layer's part.
    pub fn settings(&self, development: bool) -> Settings {
        Settings {
            api_key: self.api_key.clone().unwrap_or_default(),
            allowed_origins: self.allowed_origins.clone(),
            ticket_ttl: self.ticket_ttl,
            sse_keepalive: self.sse_keepalive,
            poll_max_timeout: self.poll_max_timeout,
            demo: self.demo.unwrap_or(development),
            connections: self.connections.clone(),
            cors: self.cors.clone(),
            websocket: self.websocket.clone(),
            deflate_negotiated: self.websocket.compression
                || self
                    .namespaces
                    .values()
                    .any(|n| n.compression == Some(true)),
            admin: self.admin.clone(),
            tls: self.tls_cert.is_some(),
        }
    }
}

/// `[admin]` in the config file: the admin console at `/admin`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Serve the console. Off by default: everything under `/admin` is then 404.
    pub enabled: bool,
    /// The console's password; unset, the API key is the password.
    pub password: Option<String>,
    /// How long a console login lasts (absolute, not sliding).
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            password: None,
            session_ttl: Duration::from_secs(8 * 3600),
        }
    }
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("enabled", &self.enabled)
            .field("password", &self.password.as_ref().map(|_| REDACTED))
            .field("session_ttl", &self.session_ttl)
            .finish()
    }
}

/// `[cors]` in the config file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Origins allowed to read responses (exact match, e.g. `https://app.example.com`);
    /// unset: the top-level `allowed_origins`. Empty: no cross-origin access.
    pub allowed_origins: Option<Vec<String>>,
    /// Send `Access-Control-Allow-Credentials: true` (for cookie-based setups).
    pub allow_credentials: bool,
    /// Also allow the server API (`/api/...`) cross-origin. Off: the API is for backends.
    pub api: bool,
}

/// `[websocket]` in the config file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSocketConfig {
    /// Negotiate permessage-deflate (RFC 7692) and compress publications of every namespace
    /// (a namespace's `compression` overrides this), replies and pushes. Off by default:
    /// compression costs CPU on both ends and pays only for larger, repetitive JSON.
    pub compression: bool,
    /// Messages shorter than this many bytes are sent uncompressed even on a compressed
    /// session (deflate cannot shrink them enough to pay for itself).
    pub compression_min_size: usize,
    /// Deflate level, 1 (fastest) to 9 (smallest). Each publication is compressed once for all
    /// its subscribers, so a higher level costs little at fan-out.
    pub compression_level: u32,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        Self {
            compression: false,
            compression_min_size: 128,
            compression_level: 6,
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_named() {
        let dir = std::env::temp_dir().join(format!("sbcfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("bad.toml");
        std::fs::write(
            &f,
            "listen = \"127.0.0.1:1\"\n[client]\nping_intervall = \"5s\"\n",
        )
        .unwrap();
        let err = load(Some(&f), &Overrides::default()).unwrap_err();
        assert!(err.contains("ping_intervall"), "{err}");
        std::fs::write(&f, "[limits]\nmax_message_size = 5\n").unwrap();
        let err = load(Some(&f), &Overrides::default()).unwrap_err();
        assert!(err.contains("max_message_size"), "{err}");
        std::fs::write(
            &f,
            "listen = \"127.0.0.1:1\"\n[namespaces.chat]\nhistory_size = 10\n",
        )
        .unwrap();
        let l = load(
            Some(&f),
            &Overrides {
                listen: Some("127.0.0.1:2".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(l.config.listen, "127.0.0.1:2");
        assert_eq!(l.config.namespaces["chat"].history_size, 10);
        assert!(!l.development);
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_secrets() {
        let o = Overrides {
            api_key: Some("key-123".into()),
            jwt_secret: Some("sec-456".into()),
            ..Default::default()
        };
        let mut l = load(None, &o).unwrap();
        l.config.admin.password = Some("adm-789".into());
        let all = format!(
            "{l:?} {o:?} {:?} {:?}",
            l.config.settings(true),
            l.config.node_config()
        );
        for secret in ["key-123", "sec-456", "adm-789"] {
            assert!(!all.contains(secret), "{secret} leaked: {all}");
        }
        assert!(all.contains("<redacted>"));
    }
}

#[cfg(test)]
mod doc_tests {
    use super::*;

    /// Every key of the configuration appears in `docs/configuration.md`.
    #[test]
    fn configuration_doc_lists_every_key() {
        let doc = include_str!("../../../docs/configuration.md");
        let mut c = Config::default();
        c.namespaces
            .insert("default".into(), NamespaceConfig::default());
        let v = serde_json::to_value(&c).unwrap();
        let mut missing = Vec::new();
        for (k, val) in v.as_object().unwrap() {
            let section = val.is_object() && doc.contains(&format!("## `[{k}"));
            if !section && !doc.contains(&format!("`{k}`")) {
                missing.push(k.clone());
            }
            if let Some(inner) = val.as_object() {
                for (k2, val2) in inner {
                    let leaf = if k == "namespaces" {
                        val2.as_object().unwrap().keys().cloned().collect()
                    } else {
                        vec![k2.clone()]
                    };
                    for l in leaf {
                        if !doc.contains(&format!("`{l}`")) {
                            missing.push(format!("{k}.{l}"));
                        }
                    }
                }
            }
        }
        assert!(missing.is_empty(), "undocumented keys: {missing:?}");
    }
}

#[cfg(test)]
mod protocol_doc_tests {
    use switchboard_protocol::{Disconnect, ErrorCode};

    /// The close-code and error-code tables in `docs/protocol.md` match the code.
    #[test]
    fn protocol_doc_tables_match_the_code() {
        let doc = include_str!("../../../docs/protocol.md");
        for d in Disconnect::ALL {
            let yes = if d.reconnect { "yes" } else { "no" };
            let row = format!("| {} | {} | {} |", d.code, d.reason, yes);
            assert!(doc.contains(&row), "docs/protocol.md lacks the row {row:?}");
        }
        for code in ErrorCode::ALL {
            let status = crate::error::status_for(code).as_u16();
            let row = format!("| `{}` | {} |", code.as_str(), status);
            assert!(doc.contains(&row), "docs/protocol.md lacks the row {row:?}");
        }
    }
}
