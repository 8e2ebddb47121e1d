//! `switchboard serve`.

use anyhow::{Result, anyhow};
use switchboard_server::Running;
use switchboard_server::config::{self, LogFormat, Overrides};
use tracing_subscriber::EnvFilter;

use crate::ServeArgs;

pub async fn run(a: ServeArgs) -> Result<()> {
    let overrides = Overrides {
        listen: a.listen,
        api_key: a.api_key,
        engine: a.engine,
        redis_url: a.redis_url,
        jwt_secret: a.jwt_secret,
    };
    let loaded = config::load(a.config.as_deref(), &overrides)
        .map_err(|e| anyhow!("invalid configuration: {e}"))?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match loaded.config.log_format {
        LogFormat::Json => fmt.json().init(),
        LogFormat::Text => fmt.init(),
    }
    let development = loaded.development;
    let engine = loaded.config.engine;
    let tls = loaded.config.tls_cert.is_some();
    let running = Running::start(loaded.config, development).await?;
    let scheme = if tls { "https" } else { "http" };
    println!(
        "Switchboard {} listening on {scheme}://{} (engine: {engine:?})",
        env!("CARGO_PKG_VERSION"),
        running.addr
    );
    if development {
        tracing::warn!(
            "development mode: no config file; demo page, /dev/token and the demo ticker are on"
        );
        println!(
            "Development mode: demo page at {scheme}://{}/",
            running.addr
        );
    }
    // Printed once, on stdout, never through the logger.
    for (what, value) in &loaded.generated {
        println!("Generated {what}: {value}");
    }
    wait_for_signal(&running).await;
    tracing::info!("draining");
    running.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signal(running: &Running) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return,
            _ = term.recv() => return,
            _ = hup.recv() => match running.reload_tls() {
                Ok(true) => tracing::info!("TLS certificates reloaded"),
                Ok(false) => tracing::info!("SIGHUP: nothing to reload"),
                Err(e) => tracing::error!(error = %e, "TLS reload failed; keeping the old certificate"),
            },
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal(_running: &Running) {
    let _ = tokio::signal::ctrl_c().await;
}
