//! Redis going away: crash and restart with and without persistence, and fail-fast while down.

use std::time::{Duration, Instant};

use bytes::Bytes;
use switchboard_core::engine::{Engine, EngineError, HistoryQuery, PublishOptions};
use switchboard_protocol::StreamPosition;
use switchboard_redis::RedisEngine;

use crate::harness::{RedisServer, ServerOpts, config, temp_dir};
use crate::sink::{eventually, start};

fn opts() -> PublishOptions {
    PublishOptions {
        history_size: 100,
        history_ttl: Duration::from_secs(300),
        idempotency_ttl: Duration::from_secs(60),
        ..Default::default()
    }
}

fn since(offset: u64, epoch: &str) -> HistoryQuery {
    HistoryQuery {
        since: Some(StreamPosition::new(offset, epoch)),
        limit: 100,
        reverse: false,
    }
}

fn data(i: u64) -> Bytes {
    Bytes::from(format!("{{\"n\":{i}}}"))
}

/// Publishes 1..=3 and waits for their delivery; returns the epoch.
async fn publish_three(e: &RedisEngine, sink: &crate::sink::TestSink, ch: &str) -> String {
    let mut epoch = String::new();
    for i in 1..=3 {
        epoch = e
            .publish(ch, data(i), &opts())
            .await
            .unwrap()
            .position
            .epoch;
    }
    sink.rec
        .wait_for("3 deliveries", |r| r.for_channel(ch).len() == 3)
        .await;
    epoch
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_aof_keeps_the_epoch_and_resubscribes() {
    let aof = ServerOpts {
        aof: true,
        ..Default::default()
    };
    let dir = temp_dir("aof");
    let server = RedisServer::start_at(crate::harness::free_port(), &dir, &aof);
    let port = server.port;
    let e = RedisEngine::connect(config(server.url())).await.unwrap();
    let sink = start(&e).await;
    // Many channels, so resubscription is more than one command.
    let channels: Vec<String> = (0..200).map(|i| format!("aof:c{i}")).collect();
    for ch in &channels {
        e.subscribe(ch).await.unwrap();
    }
    let epoch = publish_three(&e, &sink, "aof:c0").await;

    server.kill();
    let restarted_at = Instant::now();
    let server = RedisServer::start_at(port, &dir, &aof);
    let started_in = restarted_at.elapsed();
    eventually("reconnected()", 15, || sink.reconnects() >= 1).await;
    let reconnect_ms = restarted_at.elapsed().as_millis();
    eprintln!(
        "redis restart (AOF): server up after {} ms, reconnected() after {reconnect_ms} ms",
        started_in.as_millis()
    );

    // Same epoch, offsets continue, and the history since the old position is served.
    let out = e.publish("aof:c0", data(4), &opts()).await.unwrap();
    assert_eq!(out.position, StreamPosition::new(4, epoch.clone()));
    let page = e.history("aof:c0", &since(3, &epoch)).await.unwrap();
    assert_eq!(
        page.publications
            .iter()
            .map(|p| p.offset)
            .collect::<Vec<_>>(),
        [4]
    );
    // Every channel was re-subscribed: a publication on each one arrives.
    for ch in &channels {
        e.publish(ch, data(9), &opts()).await.unwrap();
    }
    sink.rec
        .wait_for("a delivery on every channel after the restart", |r| {
            channels
                .iter()
                .all(|ch| r.for_channel(ch).last().is_some_and(|p| p.data == data(9)))
        })
        .await;
    assert_eq!(sink.offsets("aof:c0"), [1, 2, 3, 4, 5]);
    // reconnected() is called once per outage.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sink.reconnects(), 1);
    assert_eq!(e.reconnects(), 1);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_without_persistence_changes_the_epoch() {
    let plain = ServerOpts::default();
    let dir = temp_dir("plain");
    let server = RedisServer::start_at(crate::harness::free_port(), &dir, &plain);
    let port = server.port;
    let e = RedisEngine::connect(config(server.url())).await.unwrap();
    let sink = start(&e).await;
    e.subscribe("gone:c").await.unwrap();
    let epoch = publish_three(&e, &sink, "gone:c").await;

    server.kill();
    let server = RedisServer::start_at(port, &dir, &plain);
    eventually("reconnected()", 15, || sink.reconnects() >= 1).await;

    match e.history("gone:c", &since(3, &epoch)).await {
        Err(EngineError::Unrecoverable { position }) => {
            assert_eq!(position.offset, 0);
            assert_ne!(position.epoch, epoch);
        }
        other => panic!("expected Unrecoverable, got {other:?}"),
    }
    let out = e.publish("gone:c", data(1), &opts()).await.unwrap();
    assert_eq!(out.position.offset, 1);
    assert_ne!(out.position.epoch, epoch);
    // Still subscribed after the restart.
    sink.rec
        .wait_for("delivery in the new epoch", |r| {
            r.for_channel("gone:c").len() == 4
        })
        .await;
    let last = sink.rec.publications.lock().last().cloned().unwrap();
    assert_eq!(last.1, out.position.epoch);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_fast_and_recovers() {
    let plain = ServerOpts::default();
    let dir = temp_dir("down");
    let server = RedisServer::start_at(crate::harness::free_port(), &dir, &plain);
    let port = server.port;
    let e = RedisEngine::connect(config(server.url())).await.unwrap();
    let sink = start(&e).await;
    e.subscribe("down:c").await.unwrap();
    assert!(e.ready().await);
    e.publish("down:c", data(1), &opts()).await.unwrap();
    sink.rec
        .wait_for("delivery before the outage", |r| {
            r.for_channel("down:c").len() == 1
        })
        .await;

    server.kill();
    for attempt in 0..3 {
        let t = Instant::now();
        let r = e.publish("down:c", data(2), &opts()).await;
        let took = t.elapsed();
        assert!(
            matches!(r, Err(EngineError::Unavailable(_))),
            "attempt {attempt}: {r:?}"
        );
        assert!(took < Duration::from_millis(2500), "publish took {took:?}");
        eprintln!(
            "publish while redis is down failed after {} ms",
            took.as_millis()
        );
    }
    let t = Instant::now();
    assert!(matches!(
        e.history("down:c", &HistoryQuery::default()).await,
        Err(EngineError::Unavailable(_))
    ));
    assert!(matches!(
        e.subscribe("down:other").await,
        Err(EngineError::Unavailable(_))
    ));
    assert!(t.elapsed() < Duration::from_secs(5));
    let t = Instant::now();
    assert!(!e.ready().await);
    assert!(t.elapsed() < Duration::from_millis(2500));

    // Down for a while: longer than one reconnect cycle of the connection manager.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let restarted_at = Instant::now();
    let server = RedisServer::start_at(port, &dir, &plain);
    let mut ready = false;
    for _ in 0..100 {
        if e.ready().await {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "ready() after the restart");
    eprintln!(
        "ready() again {} ms after redis restarted",
        restarted_at.elapsed().as_millis()
    );
    eventually("reconnected()", 15, || sink.reconnects() >= 1).await;
    let out = e.publish("down:c", data(3), &opts()).await.unwrap();
    assert_eq!(out.position.offset, 1, "no persistence: a new epoch");
    sink.rec
        .wait_for("delivery after recovery", |r| {
            r.for_channel("down:c").len() == 2
        })
        .await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_fails_fast_when_redis_is_down() {
    let port = crate::harness::free_port();
    let t = Instant::now();
    let r = RedisEngine::connect(config(format!("redis://127.0.0.1:{port}"))).await;
    assert!(matches!(r, Err(EngineError::Unavailable(_))));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}
