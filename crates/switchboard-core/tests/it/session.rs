//! Sessions driven in-process (issue 9): recovery racing live publications, token expiry and
//! refresh, presence TTL, slow-consumer cut-off and cleanup of dropped sessions.

use std::time::Duration;

use serde_json::json;
use switchboard_core::Capabilities;
use switchboard_protocol::{Disconnect, StreamPosition};

use crate::support::*;

/// Subscribers that resume from an older position while a publisher runs flat out each see
/// every publication after their position exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_racing_live_publications_has_no_gap_and_no_duplicate() {
    let node = node_with(|c| {
        c.namespaces.get_mut("default").unwrap().history_size = 10_000;
    })
    .await;
    const N: u64 = 2000;
    let publisher = {
        let node = node.clone();
        tokio::spawn(async move {
            for i in 1..=N {
                node.publish_json("race", &json!(i), None).await.unwrap();
                if i % 50 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    let mut subscribers = Vec::new();
    for k in 0..20u64 {
        let node = node.clone();
        subscribers.push(tokio::spawn(async move {
            // Join at different moments, resuming a little behind the live position.
            for _ in 0..k * 3 {
                tokio::task::yield_now().await;
            }
            let now = node.history("race", None, Some(0), false).await.unwrap();
            let since =
                StreamPosition::new(now.position.offset.saturating_sub(5), now.position.epoch);
            let mut s = session(&node, &format!("r{k}"));
            let r = s
                .subscribe_stream("race", Some(since.clone()))
                .await
                .unwrap();
            assert!(r.recovered);
            let mut expect = since.offset + 1;
            while expect <= N {
                let (pubs, closed) = drain(&s);
                assert_eq!(closed, None);
                for p in pubs {
                    assert_eq!(p.offset, expect, "subscriber {k}: gap or duplicate");
                    expect += 1;
                }
                if expect <= N {
                    s.handle().outbox.wait().await;
                }
            }
        }));
    }
    publisher.await.unwrap();
    for s in subscribers {
        tokio::time::timeout(Duration::from_secs(30), s)
            .await
            .expect("subscriber finishes")
            .unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn token_expiry_is_announced_refresh_extends_and_expiry_closes() {
    let node = node_with(|_| {}).await;
    let t = token("u1", Duration::from_secs(60));
    let connect = format!(r#"{{"id":1,"op":"connect","token":"{t}"}}"#);
    let mut refreshed = node.session(DUPLEX);
    refreshed.handle_frame(&connect).await.unwrap();
    let mut lapsed = node.session(DUPLEX);
    lapsed.handle_frame(&connect).await.unwrap();
    let (replies, _) = drain_json(&refreshed);
    assert_eq!(replies[0]["ok"]["user"], "u1");
    drain_json(&lapsed);

    // 30 s before expiry both are told.
    quiet_for(Duration::from_secs(35)).await;
    for s in [&refreshed, &lapsed] {
        let (msgs, closed) = drain_json(s);
        assert_eq!(closed, None);
        assert!(msgs.iter().any(|m| m["op"] == "expiring"), "{msgs:?}");
    }
    let fresh = token("u1", Duration::from_secs(3600));
    refreshed
        .handle_frame(&format!(r#"{{"id":2,"op":"refresh","token":"{fresh}"}}"#))
        .await
        .unwrap();
    let (msgs, _) = drain_json(&refreshed);
    assert_eq!(msgs[0]["id"], 2);
    assert!(msgs[0]["ok"]["expires_in"].as_u64().unwrap() > 3000);

    // Past the first token's expiry: only the session that did not refresh is closed.
    quiet_for(Duration::from_secs(30)).await;
    assert_eq!(drain_json(&lapsed).1, Some(Disconnect::EXPIRED));
    assert_eq!(drain_json(&refreshed).1, None);

    // A refresh for another user is refused and changes nothing.
    let other = token("u2", Duration::from_secs(3600));
    refreshed
        .handle_frame(&format!(r#"{{"id":3,"op":"refresh","token":"{other}"}}"#))
        .await
        .unwrap();
    assert_eq!(
        drain_json(&refreshed).0[0]["error"]["code"],
        "permission_denied"
    );
}

#[tokio::test(start_paused = true)]
async fn presence_lives_while_the_session_does_and_expires_without_it() {
    let node = node_with(|_| {}).await;
    let mut s = session(&node, "p1");
    s.subscribe_stream("room", None).await.unwrap();
    // Many presence TTLs (60 s): the housekeeper keeps refreshing the entry.
    quiet_for(Duration::from_secs(600)).await;
    let present = node.presence("room").await.unwrap();
    assert_eq!(present.len(), 1);
    assert_eq!(present[0].user, "p1");

    // An entry nobody refreshes (its node is gone) expires after the TTL.
    let ghost = switchboard_protocol::ClientInfo {
        client: "ghost".into(),
        user: "g".into(),
        info: None,
    };
    node.engine()
        .presence_add("room", &[ghost], Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(node.presence("room").await.unwrap().len(), 2);
    quiet_for(Duration::from_secs(61)).await;
    assert_eq!(node.presence("room").await.unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_slow_consumer_is_cut_off_and_others_are_not() {
    let node = node_with(|c| {
        c.limits.max_message_size = 1024;
        c.limits.outbound_queue_bytes = 4096;
    })
    .await;
    let mut slow = session(&node, "slow");
    let mut fast = session(&node, "fast");
    slow.subscribe_stream("feed", None).await.unwrap();
    fast.subscribe_stream("feed", None).await.unwrap();
    let mut seen = 0;
    for i in 0..200 {
        node.publish_json("feed", &json!({"i": i, "pad": "x".repeat(100)}), None)
            .await
            .unwrap();
        let (pubs, closed) = drain(&fast);
        assert_eq!(closed, None);
        seen += pubs.len();
    }
    assert_eq!(seen, 200, "the healthy subscriber got everything");
    assert_eq!(slow.handle().outbox.closed(), Some(Disconnect::SLOW));
    assert_eq!(
        slow.handle().outbox.queued_bytes(),
        0,
        "its queue was freed at once"
    );
    let (pubs, closed) = drain(&slow);
    assert!(pubs.is_empty());
    assert_eq!(closed, Some(Disconnect::SLOW));
}

/// A connection future that is dropped mid-flight (its task aborted) leaves no hub slot,
/// registry entry or presence entry behind.
#[tokio::test(start_paused = true)]
async fn a_dropped_connection_future_cleans_up() {
    let node = node_with(|_| {}).await;
    let mut watcher = session(&node, "watcher");
    watcher.subscribe_stream("chat:room", None).await.unwrap();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let conn = {
        let node = node.clone();
        tokio::spawn(async move {
            let mut s = node.session(Capabilities::SSE);
            s.connect_with(user("gone")).unwrap();
            s.subscribe_stream("chat:room", None).await.unwrap();
            s.subscribe_stream("other", None).await.unwrap();
            ready_tx.send(()).unwrap();
            std::future::pending::<()>().await;
        })
    };
    ready_rx.await.unwrap();
    assert_eq!(node.registry().len(), 2);
    assert_eq!(
        node.channels(None),
        vec![("chat:room".to_owned(), 2), ("other".to_owned(), 1)]
    );
    assert_eq!(node.presence("chat:room").await.unwrap().len(), 2);

    conn.abort();
    let _ = conn.await;
    // The registry entry and hub slots go in `drop`; the engine side in a spawned task.
    assert_eq!(node.registry().len(), 1);
    let mut yields = 0;
    loop {
        let present = node.presence("chat:room").await.unwrap();
        let channels = node.channels(None);
        if present.len() == 1 && channels == vec![("chat:room".to_owned(), 1)] {
            assert_eq!(present[0].user, "watcher");
            break;
        }
        yields += 1;
        assert!(yields < 1000, "not cleaned up: {present:?} {channels:?}");
        tokio::task::yield_now().await;
    }
    let (msgs, _) = drain_json(&watcher);
    assert!(
        msgs.iter()
            .any(|m| m["op"] == "leave" && m["client"]["user"] == "gone"),
        "the others were told: {msgs:?}"
    );
}
