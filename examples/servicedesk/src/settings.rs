//! The app's settings, from `SERVICEDESK_*` environment variables.

use std::time::Duration;

/// Everything the app needs to start.
#[derive(Clone)]
pub struct Settings {
    /// Address to listen on (`SERVICEDESK_LISTEN`, default `127.0.0.1:3000`; port 0 picks one).
    pub listen: String,
    /// SQLite file (`SERVICEDESK_DB`, default `servicedesk.sqlite3` in the system temp dir), or
    /// `:memory:`.
    pub database: String,
    /// Secret the app signs Switchboard tokens with and the node verifies them with
    /// (`SERVICEDESK_JWT_SECRET`, random per start by default: tokens are minted by this
    /// process only).
    pub jwt_secret: String,
    /// Key for Switchboard's server API under `/api/publish` etc. (`SERVICEDESK_API_KEY`,
    /// random by default; the app itself publishes in-process and does not need it).
    pub api_key: String,
    /// Origins allowed to open `/ws` and `/sse` (`SERVICEDESK_ALLOWED_ORIGINS`, comma
    /// separated; empty allows any, which suits local development).
    pub allowed_origins: Vec<String>,
    /// Lifetime of the tokens `/app/token` mints (the SDK fetches a new one before expiry).
    pub token_ttl: Duration,
    /// Fill an empty database with a few example requests (`SERVICEDESK_SEED`, default on).
    pub seed: bool,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("database", &self.database)
            .field("allowed_origins", &self.allowed_origins)
            .field("token_ttl", &self.token_ttl)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

fn random_secret() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

impl Settings {
    /// Reads the environment.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let database = var("SERVICEDESK_DB").unwrap_or_else(|| {
            std::env::temp_dir()
                .join("servicedesk.sqlite3")
                .to_string_lossy()
                .into_owned()
        });
        Self {
            listen: var("SERVICEDESK_LISTEN").unwrap_or_else(|| "127.0.0.1:3000".into()),
            database,
            jwt_secret: var("SERVICEDESK_JWT_SECRET").unwrap_or_else(random_secret),
            api_key: var("SERVICEDESK_API_KEY").unwrap_or_else(random_secret),
            allowed_origins: var("SERVICEDESK_ALLOWED_ORIGINS")
                .map(|v| v.split(',').map(|o| o.trim().to_owned()).collect())
                .unwrap_or_default(),
            token_ttl: Duration::from_secs(15 * 60),
            seed: var("SERVICEDESK_SEED").is_none_or(|v| !matches!(v.as_str(), "0" | "false")),
        }
    }

    /// An in-memory database on a free port, no seed data.
    pub fn for_tests() -> Self {
        Self {
            listen: "127.0.0.1:0".into(),
            database: ":memory:".into(),
            jwt_secret: random_secret(),
            api_key: random_secret(),
            allowed_origins: Vec::new(),
            token_ttl: Duration::from_secs(15 * 60),
            seed: false,
        }
    }
}
