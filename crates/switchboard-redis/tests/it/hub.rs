//! End to end through the core's hub: two `Node`s on one Redis, a subscriber session on one,
//! publications from the other, while Redis cuts the pubsub connections.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use switchboard_core::config::NamespaceConfig;
use switchboard_core::{Capabilities, Credentials, Node, NodeConfig, Outbound};
use switchboard_redis::{RedisConfig, RedisEngine};

use crate::harness::{raw_command, shared, unique_prefix};

async fn node(prefix: &str) -> Node {
    let engine = RedisEngine::connect(RedisConfig {
        url: shared().url(),
        prefix: prefix.to_owned(),
        ..RedisConfig::default()
    })
    .await
    .unwrap();
    let mut cfg = NodeConfig::default();
    let mut ns = NamespaceConfig::development();
    ns.history_size = 10_000;
    cfg.namespaces.insert("default".into(), ns);
    Node::start(cfg, Arc::new(engine)).await.unwrap()
}

/// Publications keep arriving in order, without gaps or duplicates, at a subscriber on another
/// node while Redis kills every pubsub connection several times (`CLIENT KILL TYPE pubsub`):
/// the engine notices, resubscribes, tells the hub, and the hub fills the gaps from history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_gap_when_pubsub_connections_are_killed() {
    crate::harness::init_logs();
    let prefix = unique_prefix();
    let a = node(&prefix).await;
    let b = node(&prefix).await;
    let mut session = b.session(Capabilities::SSE);
    let _ = session.connect_with(Credentials {
        user: "u1".into(),
        ..Credentials::default()
    });
    session.subscribe_stream("e2e", None).await.unwrap();

    const N: u64 = 1500;
    let publisher = tokio::spawn(async move {
        for i in 1..=N {
            let data = Bytes::from(format!("{{\"n\":{i}}}"));
            // Retry on the (rare) publish that hits a killed connection.
            for _ in 0..50 {
                if a.publish("e2e", data.clone(), Some(format!("k{i}")))
                    .await
                    .is_ok()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if i % 100 == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        a
    });
    let port = shared().port;
    let killer = tokio::spawn(async move {
        let mut killed = 0;
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(60)).await;
            let reply = tokio::task::spawn_blocking(move || {
                raw_command(port, "CLIENT KILL TYPE pubsub").unwrap_or_default()
            })
            .await
            .unwrap();
            killed += reply
                .trim()
                .trim_start_matches(':')
                .parse::<u64>()
                .unwrap_or(0);
        }
        killed
    });

    let handle = session.handle().clone();
    let mut offsets = Vec::new();
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while offsets.last() != Some(&N) {
        if let Some(d) = handle.outbox.drain(&mut buf, 1024) {
            panic!(
                "session closed: {d:?} after offsets up to {:?}",
                offsets.last()
            );
        }
        for item in buf.drain(..) {
            if let Outbound::Pub(p) = item {
                offsets.push(p.offset);
            }
        }
        if offsets.last() == Some(&N) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stuck at {:?}",
            offsets.last()
        );
        let _ = tokio::time::timeout(Duration::from_millis(200), handle.outbox.wait()).await;
    }
    let killed = killer.await.unwrap();
    let _a = publisher.await.unwrap();
    assert_eq!(offsets, (1..=N).collect::<Vec<_>>());
    assert!(killed >= 2, "pubsub connections killed: {killed}");
    eprintln!("{N} publications delivered in order; {killed} pubsub connections killed");
}
