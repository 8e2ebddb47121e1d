//! Issue 15: a quiet channel's meta (epoch and top offset) does not expire while a node is
//! subscribed to it, so its next publication reaches the subscribers instead of cutting them off
//! with a new epoch.

use std::sync::Arc;
use std::time::Duration;

use switchboard_core::config::NamespaceConfig;
use switchboard_core::{Capabilities, Credentials, Node, NodeConfig, Outbound};
use switchboard_redis::{RedisConfig, RedisEngine};

use crate::harness::{raw_command, shared, unique_prefix};

async fn node(prefix: &str, meta_ttl: Duration) -> Node {
    let engine = RedisEngine::connect(RedisConfig {
        url: shared().url(),
        prefix: prefix.to_owned(),
        meta_ttl,
        ..RedisConfig::default()
    })
    .await
    .unwrap();
    let mut cfg = NodeConfig::default();
    cfg.namespaces
        .insert("default".into(), NamespaceConfig::development());
    Node::start(cfg, Arc::new(engine)).await.unwrap()
}

fn pttl(key: &str) -> i64 {
    let reply = raw_command(shared().port, &format!("PTTL {key}")).expect("redis answers");
    reply
        .trim()
        .trim_start_matches(':')
        .parse()
        .expect("integer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_channel_keeps_its_meta_while_subscribed() {
    let prefix = unique_prefix();
    let meta_ttl = Duration::from_secs(1);
    let publisher = node(&prefix, meta_ttl).await;
    let subscriber = node(&prefix, meta_ttl).await;
    let mut s = subscriber.session(Capabilities::SSE);
    s.connect_with(Credentials {
        user: "u".into(),
        ..Credentials::default()
    })
    .unwrap();
    let sub = s.subscribe_stream("quiet", None).await.unwrap();
    let meta = format!("{prefix}:{{quiet}}:m");

    // Quiet for four meta TTLs: the key must be there at every look.
    let until = tokio::time::Instant::now() + 4 * meta_ttl;
    while tokio::time::Instant::now() < until {
        assert!(pttl(&meta) > 0, "meta expired under a live subscriber");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let r = publisher
        .publish("quiet", bytes::Bytes::from_static(b"1"), None)
        .await
        .unwrap();
    assert_eq!(
        r.epoch, sub.position.epoch,
        "same epoch after the quiet period"
    );
    assert_eq!(r.offset, 1);
    let handle = s.handle().clone();
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let mut items = Vec::new();
            let closed = handle.outbox.drain(&mut items, 64);
            assert_eq!(closed, None, "the subscriber was cut off");
            if let Some(p) = items.into_iter().find_map(|i| match i {
                Outbound::Pub(p) => Some(p),
                _ => None,
            }) {
                return p;
            }
            handle.outbox.wait().await;
        }
    })
    .await
    .expect("the publication arrives");
    assert_eq!(got.offset, 1);

    // The last subscriber leaving starts the meta TTL (longer after a publication: at least
    // twice the history TTL).
    s.close(None).await;
    assert!(pttl(&meta) > 1000);
}
