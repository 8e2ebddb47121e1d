//! A small test language for in-process nodes.

use std::time::Duration;

use switchboard_core::{
    Credentials, NamespaceConfig, Node, NodeConfig, Outbound, PubItem, Session, Transport,
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
    let mut s = node.session(Transport::Sse);
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
