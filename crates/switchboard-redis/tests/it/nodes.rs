//! Two engines ("nodes") on one Redis.

use std::time::Duration;

use bytes::Bytes;
use switchboard_core::engine::{Control, Engine, HistoryQuery, NodeInfo, PublishOptions};
use switchboard_protocol::ClientInfo;
use switchboard_redis::{RedisConfig, RedisEngine};

use crate::harness::{shared, unique_prefix};
use crate::sink::start;

fn opts() -> PublishOptions {
    PublishOptions {
        history_size: 1000,
        history_ttl: Duration::from_secs(60),
        idempotency_ttl: Duration::from_secs(60),
        ..Default::default()
    }
}

async fn pair() -> (RedisEngine, RedisEngine) {
    let prefix = unique_prefix();
    let cfg = |name: &str| RedisConfig {
        url: shared().url(),
        prefix: prefix.clone(),
        node_name: name.into(),
        ..RedisConfig::default()
    };
    let a = RedisEngine::connect(cfg("a")).await.unwrap();
    let b = RedisEngine::connect(cfg("b")).await.unwrap();
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publications_from_one_node_reach_the_other_in_order() {
    let (a, b) = pair().await;
    let sa = start(&a).await;
    let sb = start(&b).await;
    b.subscribe("chat:lobby").await.unwrap();
    let mut epoch = String::new();
    for i in 1..=300u64 {
        let info = (i % 2 == 0).then(|| ClientInfo {
            client: format!("c{i}"),
            user: "u".into(),
            info: None,
        });
        let out = a
            .publish(
                "chat:lobby",
                Bytes::from(format!("{{\"n\":{i}}}")),
                &PublishOptions { info, ..opts() },
            )
            .await
            .unwrap();
        assert_eq!(out.position.offset, i);
        epoch = out.position.epoch;
    }
    sb.rec
        .wait_for("300 publications on b", |r| {
            r.for_channel("chat:lobby").len() == 300
        })
        .await;
    assert_eq!(sb.offsets("chat:lobby"), (1..=300).collect::<Vec<_>>());
    let delivered = sb.rec.publications.lock().clone();
    assert!(delivered.iter().all(|(_, e, _)| *e == epoch));
    assert_eq!(delivered[1].2.data, Bytes::from_static(br#"{"n":2}"#));
    assert_eq!(delivered[1].2.info.as_ref().unwrap().client, "c2");
    assert!(delivered[0].2.info.is_none());
    // The history seen from b is what b received.
    let page = b
        .history(
            "chat:lobby",
            &HistoryQuery {
                since: None,
                limit: 1000,
                reverse: false,
            },
        )
        .await
        .unwrap();
    let received: Vec<_> = delivered.into_iter().map(|(_, _, p)| p).collect();
    assert_eq!(page.publications, received);
    // a never subscribed: nothing delivered there.
    assert!(sa.rec.for_channel("chat:lobby").is_empty());

    // After unsubscribing, b receives nothing more.
    b.unsubscribe("chat:lobby").await.unwrap();
    a.subscribe("chat:lobby").await.unwrap();
    a.publish("chat:lobby", Bytes::from_static(b"1"), &opts())
        .await
        .unwrap();
    sa.rec
        .wait_for("a's delivery", |r| r.for_channel("chat:lobby").len() == 1)
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(sb.rec.for_channel("chat:lobby").len(), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_leave_and_control_reach_both_nodes() {
    let (a, b) = pair().await;
    let sa = start(&a).await;
    let sb = start(&b).await;
    a.subscribe("room").await.unwrap();
    b.subscribe("room").await.unwrap();
    let who = ClientInfo {
        client: "c1".into(),
        user: "42".into(),
        info: Some(serde_json::json!({"name": "Ada"})),
    };
    a.publish_join_leave("room", true, &who).await.unwrap();
    b.publish_join_leave("room", false, &who).await.unwrap();
    let ctl = Control::DisconnectUser {
        user: "42".into(),
        reconnect: false,
    };
    b.publish_control(&ctl).await.unwrap();
    for s in [&sa, &sb] {
        s.rec
            .wait_for("join, leave and control", |r| {
                r.join_leave.lock().len() == 2 && r.controls.lock().len() == 1
            })
            .await;
        assert_eq!(
            *s.rec.join_leave.lock(),
            vec![
                ("room".to_owned(), true, "c1".to_owned()),
                ("room".to_owned(), false, "c1".to_owned())
            ]
        );
        assert_eq!(*s.rec.controls.lock(), vec![ctl.clone()]);
    }
    // Presence written by one node is read by the other.
    a.presence_add("room", std::slice::from_ref(&who), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(b.presence("room").await.unwrap(), vec![who]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_see_each_other_and_forget_silent_ones() {
    let prefix = unique_prefix();
    let cfg = RedisConfig {
        url: shared().url(),
        prefix,
        node_ttl: Duration::from_millis(500),
        ..RedisConfig::default()
    };
    let a = RedisEngine::connect(cfg.clone()).await.unwrap();
    let b = RedisEngine::connect(cfg).await.unwrap();
    let me = |name: &str, sessions| NodeInfo {
        name: name.into(),
        sessions,
        uptime_secs: 7,
    };
    assert_eq!(a.nodes(&me("a", 3)).await.unwrap(), vec![me("a", 3)]);
    assert_eq!(
        b.nodes(&me("b", 5)).await.unwrap(),
        vec![me("a", 3), me("b", 5)]
    );
    // a stops announcing itself: b forgets it after node_ttl.
    let mut nodes = Vec::new();
    for _ in 0..50 {
        nodes = b.nodes(&me("b", 6)).await.unwrap();
        if nodes.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(nodes, vec![me("b", 6)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_options_are_accepted() {
    let e = crate::harness::make_engine().await;
    let _s = start(&e).await;
    let o = PublishOptions {
        history_size: usize::MAX,
        history_ttl: Duration::MAX,
        idempotency_key: Some("k".into()),
        idempotency_ttl: Duration::MAX,
        info: None,
    };
    assert_eq!(
        e.publish("x", Bytes::from_static(b"1"), &o)
            .await
            .unwrap()
            .position
            .offset,
        1
    );
    let page = e
        .history(
            "x",
            &HistoryQuery {
                since: Some(switchboard_protocol::StreamPosition::new(u64::MAX, "nope")),
                limit: usize::MAX,
                reverse: true,
            },
        )
        .await;
    assert!(matches!(
        page,
        Err(switchboard_core::engine::EngineError::Unrecoverable { .. })
    ));
    let page = e
        .history(
            "x",
            &HistoryQuery {
                since: None,
                limit: usize::MAX,
                reverse: true,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.publications.len(), 1);
    // Zero ttls: nothing kept, offsets still count.
    let zero = PublishOptions {
        history_size: 10,
        history_ttl: Duration::ZERO,
        idempotency_key: Some("z".into()),
        idempotency_ttl: Duration::ZERO,
        info: None,
    };
    assert_eq!(
        e.publish("y", Bytes::from_static(b"1"), &zero)
            .await
            .unwrap()
            .position
            .offset,
        1
    );
    assert!(
        RedisEngine::connect(RedisConfig {
            url: shared().url(),
            prefix: "a{b".into(),
            ..RedisConfig::default()
        })
        .await
        .is_err()
    );
}
