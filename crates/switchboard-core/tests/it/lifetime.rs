//! Issue 15: a channel's position lives as long as it has subscribers and, after that, as long
//! as a client may still present a position in it (the meta TTL). Epochs change only when
//! history may really have been lost.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

const DAY: Duration = Duration::from_secs(24 * 3600);

#[tokio::test(start_paused = true)]
async fn a_quiet_channel_keeps_its_position_under_subscribers() {
    let node = dev_node().await;
    let mut s = session(&node, "u1");
    let sub = s.subscribe_stream("canary:main", None).await.unwrap();
    assert_eq!(sub.position.offset, 0);

    // Far longer than the history TTL (10 min) and the meta TTL (24 h).
    quiet_for(3 * DAY).await;
    let r = node
        .publish_json("canary:main", &json!({"n": 1}), None)
        .await
        .unwrap();
    assert_eq!(r.offset, 1);
    assert_eq!(r.epoch, sub.position.epoch, "the epoch did not change");
    let (pubs, closed) = drain(&s);
    assert_eq!(closed, None, "the subscriber was not cut off");
    assert_eq!(pubs.len(), 1);
    assert_eq!(pubs[0].offset, 1);
}

#[tokio::test(start_paused = true)]
async fn a_resume_after_a_long_quiet_period_is_recovered() {
    let node = dev_node().await;
    let mut steady = session(&node, "steady");
    steady.subscribe_stream("badge:7", None).await.unwrap();
    node.publish_json("badge:7", &json!(1), None).await.unwrap();

    let mut tab = session(&node, "tab");
    let at = tab
        .subscribe_stream("badge:7", None)
        .await
        .unwrap()
        .position;
    assert_eq!(at.offset, 1);
    tab.close(None).await;

    quiet_for(2 * DAY).await;
    let mut back = session(&node, "tab");
    let r = back.subscribe_stream("badge:7", Some(at)).await.unwrap();
    assert!(r.recovered, "nothing was published, nothing was lost");
    assert_eq!(r.position.offset, 1);
}

#[tokio::test(start_paused = true)]
async fn an_unsubscribed_position_is_kept_for_the_meta_ttl_then_honestly_lost() {
    let node = dev_node().await;
    let mut s = session(&node, "u");
    s.subscribe_stream("orders:1", None).await.unwrap();
    node.publish_json("orders:1", &json!("a"), None)
        .await
        .unwrap();
    let at = drain(&s).0[0].clone();
    s.close(None).await;

    // Nobody subscribed, history (10 min) long gone: the position is still known.
    quiet_for(DAY - Duration::from_secs(600)).await;
    let mut back = session(&node, "u");
    let since = switchboard_protocol::StreamPosition::new(at.offset, &*at.epoch);
    let r = back
        .subscribe_stream("orders:1", Some(since.clone()))
        .await
        .unwrap();
    assert!(r.recovered);
    back.close(None).await;

    // A full meta TTL after the last subscriber left, the stream is forgotten: a resume is
    // told plainly that it cannot be recovered.
    quiet_for(DAY + Duration::from_secs(60)).await;
    let mut late = session(&node, "u");
    let r = late
        .subscribe_stream("orders:1", Some(since))
        .await
        .unwrap();
    assert!(!r.recovered);
    assert_ne!(r.position.epoch, at.epoch.to_string());
}
