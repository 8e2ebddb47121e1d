//! Integration tests of a node over real sockets on 127.0.0.1 with real clients
//! (tokio-tungstenite for WebSocket, reqwest for HTTP/SSE).

mod api;
mod bad_input;
mod harness;
mod poll;
mod resume;
mod sse;
mod ws;
mod ops;
