//! A small test language for in-process nodes.

use std::time::Duration;

use switchboard_core::{
    Capabilities, Credentials, NamespaceConfig, Node, NodeConfig, Outbound, PubItem, Session,
};
use switchboard_protocol::Disconnect;

/// A memory node with the development namespaces (history 100 for 10 minutes, presence).
pub async fn dev_node() -> Node {
    let mut c = NodeConfig::default();
    c.namespaces
        .insert("default".into(), NamespaceConfig::development());
    Node::memory(c).await.expect("node starts")
}

/// Credentials of `user`, never expiring.
pub fn user(user: &str) -> Credentials {
    Credentials {
        user: user.into(),
        ..Credentials::default()
    }
}

/// A connected streaming session of `user`.
pub fn session(node: &Node, who: &str) -> Session {
    let mut s = node.session(Capabilities::SSE);
    s.connect_with(user(who)).expect("connects");
    s
}

/// What a session's outbox holds now: publications and the close reason, pings skipped.
pub fn drain(s: &Session) -> (Vec<std::sync::Arc<PubItem>>, Option<Disconnect>) {
    let mut items = Vec::new();
    let mut pubs = Vec::new();
    let closed = loop {
        let closed = s.handle().outbox.drain(&mut items, 1024);
        let empty = items.is_empty();
        for item in items.drain(..) {
            if let Outbound::Pub(p) = item {
                pubs.push(p);
            }
        }
        if empty {
            break closed;
        }
    };
    (pubs, closed)
}

/// Lets paused time run for `d` (every timer due meanwhile fires, in order).
pub async fn quiet_for(d: Duration) {
    tokio::time::sleep(d).await;
}

/// The JWT secret of [`dev_node`].
pub const SECRET: &str = "core-test-secret";

/// [`dev_node`] with `f` applied to its configuration first.
pub async fn node_with(f: impl FnOnce(&mut NodeConfig)) -> Node {
    let mut c = NodeConfig::default();
    c.jwt.secret = Some(SECRET.into());
    c.namespaces
        .insert("default".into(), NamespaceConfig::development());
    c.namespaces
        .insert("chat".into(), NamespaceConfig::development_chat());
    f(&mut c);
    Node::memory(c).await.expect("node starts")
}

/// A token for `user` expiring in `ttl` on the node's clock.
pub fn token(user: &str, ttl: Duration) -> String {
    let claims = switchboard_core::Claims {
        sub: user.into(),
        exp: switchboard_core::clock::unix_now() + ttl.as_secs(),
        channels: Vec::new(),
        publish: vec!["*".into()],
        info: None,
    };
    switchboard_core::auth::mint_hs256(SECRET, &claims).expect("signs")
}

/// Every JSON message (replies and pushes) queued for `s`, and the close reason.
pub fn drain_json(s: &Session) -> (Vec<serde_json::Value>, Option<Disconnect>) {
    let mut items = Vec::new();
    let mut out = Vec::new();
    let closed = loop {
        let closed = s.handle().outbox.drain(&mut items, 1024);
        let empty = items.is_empty();
        for item in items.drain(..) {
            let bytes = match item {
                Outbound::Pub(p) => p.json.clone(),
                Outbound::Event(_, b) => b,
                Outbound::Ping => continue,
            };
            out.push(serde_json::from_slice(&bytes).expect("JSON"));
        }
        if empty {
            break closed;
        }
    };
    (out, closed)
}

/// A WebSocket-like session that needs no pongs (the tests play a silent but live peer).
pub const DUPLEX: Capabilities = Capabilities {
    label: "test",
    liveness: false,
    ..Capabilities::WEBSOCKET
};
