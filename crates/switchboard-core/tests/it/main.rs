//! Core tests without sockets: nodes, sessions and the hub driven in-process, time controlled
//! with `tokio::time::pause` (every TTL and timer in the core runs on tokio's clock).

mod lifetime;
mod session;
mod support;
