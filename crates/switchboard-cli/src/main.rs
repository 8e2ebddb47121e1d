//! `switchboard`: serve a node, mint development tokens, publish, subscribe and load-test.

mod bench;
mod serve;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use switchboard_server::config::EngineKind;

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Real-time messaging server: WebSocket, SSE and long-poll push with resume"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node.
    Serve(ServeArgs),
    /// Print a JWT signed with the configured HMAC secret (development tokens).
    Token(TokenArgs),
    /// Publish JSON to a channel through the server API.
    Pub(PubArgs),
    /// Print a channel's publications as they arrive (reconnects and resumes).
    Sub(SubArgs),
    /// Load-test a running node (talks to 127.0.0.1 only).
    Bench(bench::BenchArgs),
}

/// Options of `serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// TOML config file (without one: development defaults).
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Listen address.
    #[arg(long)]
    pub listen: Option<String>,
    /// Server API key.
    #[arg(long)]
    pub api_key: Option<String>,
    /// HMAC secret for tokens.
    #[arg(long, env = "SWITCHBOARD_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Engine.
    #[arg(long, value_parser = parse_engine)]
    pub engine: Option<EngineKind>,
    /// Redis URL.
    #[arg(long)]
    pub redis_url: Option<String>,
}

fn parse_engine(s: &str) -> Result<EngineKind, String> {
    match s {
        "memory" => Ok(EngineKind::Memory),
        "redis" => Ok(EngineKind::Redis),
        _ => Err("engine must be memory or redis".into()),
    }
}

#[derive(clap::Args)]
struct TokenArgs {
    /// User id (`sub`).
    #[arg(long)]
    user: String,
    /// Channel patterns the token may subscribe to (repeatable).
    #[arg(long = "channel")]
    channels: Vec<String>,
    /// Channel patterns the token may publish to (repeatable).
    #[arg(long = "publish")]
    publish: Vec<String>,
    /// Lifetime, e.g. `1h`, `15m`.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    ttl: Duration,
    /// HMAC secret (or from the config file).
    #[arg(long, env = "SWITCHBOARD_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Config file to read `jwt.secret` from.
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(clap::Args)]
struct PubArgs {
    /// Channel.
    channel: String,
    /// JSON payload.
    json: String,
    /// Node base URL.
    #[arg(long, env = "SWITCHBOARD_URL", default_value = "http://127.0.0.1:8000")]
    url: String,
    /// Server API key.
    #[arg(long, env = "SWITCHBOARD_API_KEY", hide_env_values = true)]
    api_key: String,
    /// Retry-safe publish key.
    #[arg(long)]
    idempotency_key: Option<String>,
}

#[derive(clap::Args)]
struct SubArgs {
    /// Channels.
    #[arg(required = true)]
    channels: Vec<String>,
    /// Node base URL.
    #[arg(long, env = "SWITCHBOARD_URL", default_value = "http://127.0.0.1:8000")]
    url: String,
    /// Token; without one, a token is minted with `--jwt-secret`.
    #[arg(long, env = "SWITCHBOARD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// HMAC secret to mint a token with.
    #[arg(long, env = "SWITCHBOARD_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// User id for a minted token.
    #[arg(long, default_value = "cli")]
    user: String,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Serve(a) => serve::run(a).await,
            Command::Token(a) => token(a),
            Command::Pub(a) => publish(a).await,
            Command::Sub(a) => subscribe(a).await,
            Command::Bench(a) => bench::run(a).await,
        }
    })
}

fn secret_from(flag: Option<String>, config: Option<&std::path::Path>) -> Result<String> {
    if let Some(s) = flag {
        return Ok(s);
    }
    if let Some(path) = config {
        let loaded = switchboard_server::config::load(Some(path), &Default::default())
            .map_err(anyhow::Error::msg)?;
        if let Some(s) = loaded
            .config
            .jwt
            .secret
            .filter(|_| loaded.generated.iter().all(|(k, _)| *k != "jwt secret"))
        {
            return Ok(s);
        }
    }
    bail!(
        "no HMAC secret: pass --jwt-secret, set SWITCHBOARD_JWT_SECRET, or --config with jwt.secret"
    )
}

fn token(a: TokenArgs) -> Result<()> {
    let secret = secret_from(a.jwt_secret, a.config.as_deref())?;
    let claims = switchboard_core::auth::claims_for(&a.user, a.ttl, a.channels, a.publish);
    println!("{}", switchboard_core::auth::mint_hs256(&secret, &claims)?);
    Ok(())
}

async fn publish(a: PubArgs) -> Result<()> {
    let data: serde_json::Value =
        serde_json::from_str(&a.json).context("the payload must be JSON")?;
    let mut body = serde_json::json!({"channel": a.channel, "data": data});
    if let Some(k) = a.idempotency_key {
        body["idempotency_key"] = k.into();
    }
    let res = reqwest::Client::new()
        .post(format!("{}/api/publish", a.url.trim_end_matches('/')))
        .header("X-API-Key", a.api_key)
        .json(&body)
        .send()
        .await
        .context("cannot reach the node")?;
    let status = res.status();
    let text = res.text().await?;
    if !status.is_success() {
        bail!("{status}: {text}");
    }
    println!("{text}");
    Ok(())
}

async fn subscribe(a: SubArgs) -> Result<()> {
    let token = match a.token {
        Some(t) => t,
        None => {
            let secret = secret_from(a.jwt_secret, None)?;
            let claims = switchboard_core::auth::claims_for(
                &a.user,
                Duration::from_secs(24 * 3600),
                a.channels.clone(),
                vec![],
            );
            switchboard_core::auth::mint_hs256(&secret, &claims)?
        }
    };
    let base = a.url.trim_end_matches('/');
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}/ws")
    } else {
        format!("ws://{}/ws", base.trim_start_matches("http://"))
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let cfg = switchboard_client::ClientConfig {
        url: ws,
        token,
        channels: a.channels,
        min_backoff: Duration::from_millis(500),
        max_backoff: Duration::from_secs(20),
    };
    let client = tokio::spawn(switchboard_client::run(cfg, tx));
    while let Some(ev) = rx.recv().await {
        match ev {
            switchboard_client::Event::Publication {
                channel,
                offset,
                data,
            } => {
                println!(
                    "{}",
                    serde_json::json!({"channel": channel, "offset": offset, "data": data})
                );
            }
            other => eprintln!("{other:?}"),
        }
    }
    client.await?.map_err(anyhow::Error::from)
}
