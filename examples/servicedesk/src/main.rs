//! `cargo run -p servicedesk`: serves the service desk on <http://127.0.0.1:3000>.

use servicedesk::{Settings, start};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,switchboard_server::access_log=warn".into()),
        )
        .init();
    let settings = Settings::from_env();
    let database = settings.database.clone();
    let running = start(settings).await?;
    let base = format!("http://{}", running.addr);
    // The test harness waits for this line; keep its shape.
    println!("servicedesk listening on {base}");
    println!();
    println!("  start page (pick a demo user)  {base}/");
    println!("  customer view                  {base}/customer");
    println!("  admin view                     {base}/admin");
    println!("  employee view                  {base}/employee");
    println!("  REST API                       {base}/api/requests");
    println!("  Switchboard WebSocket          ws://{}/ws", running.addr);
    println!();
    println!("  database {database}");
    println!("  Ctrl-C to stop");
    shutdown_signal().await;
    println!("shutting down");
    running.shutdown().await;
    Ok(())
}

/// Ctrl-C, or SIGTERM from a process manager.
async fn shutdown_signal() {
    let terminate = async {
        #[cfg(unix)]
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
            return;
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
