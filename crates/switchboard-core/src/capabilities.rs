//! What a transport can do. The core opens a session from these, never from a transport's
//! name: a new transport declares its capabilities and gets the right lifecycle.
//!
//! ```
//! use switchboard_core::Capabilities;
//! // A hypothetical WebTransport stream: full duplex, answers protocol pings like WebSocket.
//! const WEBTRANSPORT: Capabilities = Capabilities {
//!     label: "webtransport",
//!     ..Capabilities::WEBSOCKET
//! };
//! assert!(WEBTRANSPORT.long_lived && WEBTRANSPORT.commands);
//! ```

/// A transport's capabilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Name for metrics and logs (`ws`, `sse`, `poll`, `http`).
    pub label: &'static str,
    /// The connection stays open and receives pushes as they happen (WebSocket, SSE). Such
    /// sessions are registered with the node: pinged, expired with their token, counted per
    /// user, reachable by "disconnect user" and told to reconnect when the node drains. Other
    /// sessions live for one request (a poll, an HTTP command).
    pub long_lived: bool,
    /// The client sends commands over the connection (WebSocket, `POST /cmd`).
    pub commands: bool,
    /// The peer answers protocol-level pings, so a silent peer is closed as stale (4001).
    /// Without it the transport detects dead peers itself (a failed write).
    pub liveness: bool,
    /// A subscribe is answered by a reply that carries the recovered publications; without
    /// it (SSE, poll) recovered publications are queued as publications.
    pub replies: bool,
}

impl Capabilities {
    /// WebSocket: full duplex, long-lived, pinged.
    pub const WEBSOCKET: Self = Self {
        label: "ws",
        long_lived: true,
        commands: true,
        liveness: true,
        replies: true,
    };
    /// Server-Sent Events: one-way, long-lived.
    pub const SSE: Self = Self {
        label: "sse",
        long_lived: true,
        commands: false,
        liveness: false,
        replies: false,
    };
    /// One long-poll request.
    pub const POLL: Self = Self {
        label: "poll",
        long_lived: false,
        commands: false,
        liveness: false,
        replies: false,
    };
    /// One HTTP command (`POST /cmd`) or an in-process caller.
    pub const HTTP: Self = Self {
        label: "http",
        long_lived: false,
        commands: true,
        liveness: false,
        replies: true,
    };
}
