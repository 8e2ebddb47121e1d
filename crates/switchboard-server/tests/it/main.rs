//! Integration tests of a node over real sockets on 127.0.0.1 with real clients
//! (tokio-tungstenite for WebSocket, reqwest for HTTP/SSE).

mod admin;
mod api;
mod bad_input;
mod cluster;
mod compression;
mod cors;
mod depth;
mod harness;
mod ops;
mod poll;
#[path = "../../../switchboard-redis/tests/it/harness.rs"]
#[allow(dead_code)]
mod redis_harness;
mod resume;
mod rfc6455;
mod sse;
mod sse_framing;
mod ws;
