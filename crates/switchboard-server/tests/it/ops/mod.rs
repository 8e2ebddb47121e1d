//! Production readiness: TLS, limits, slow consumers, drain, reverse proxy, observability.

mod drain;
mod http2;
mod limits;
mod nginx;
mod observability;
mod probe;
pub mod raw;
mod slow;
mod tls;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh temporary directory for one test.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "sb-ops-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
