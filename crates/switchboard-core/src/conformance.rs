//! The engine conformance suite: one set of checks every [`Engine`] must pass.
//!
//! Engines run it with [`engine_conformance!`](crate::engine_conformance), giving an async
//! expression that builds a fresh, not yet started engine. Each check uses its own channel
//! names (random per run) so a shared backend (one Redis) serves all of them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use switchboard_protocol::{ClientInfo, Publication, StreamPosition};
use tokio::sync::Notify;

use crate::engine::{Control, Engine, EngineError, EventSink, HistoryQuery, PublishOptions};

/// A sink that records what an engine delivers.
#[derive(Default)]
pub struct Recorder {
    /// `(channel, epoch, publication)` in delivery order.
    pub publications: Mutex<Vec<(String, String, Publication)>>,
    /// `(channel, join, client id)`.
    pub join_leave: Mutex<Vec<(String, bool, String)>>,
    /// Control messages.
    pub controls: Mutex<Vec<Control>>,
    notify: Notify,
}

impl EventSink for Recorder {
    fn publication(&self, channel: &str, epoch: &str, publication: Publication) {
        self.publications
            .lock()
            .push((channel.to_owned(), epoch.to_owned(), publication));
        self.notify.notify_waiters();
    }
    fn join_leave(&self, channel: &str, join: bool, client: ClientInfo) {
        self.join_leave
            .lock()
            .push((channel.to_owned(), join, client.client));
        self.notify.notify_waiters();
    }
    fn control(&self, control: Control) {
        self.controls.lock().push(control);
        self.notify.notify_waiters();
    }
    fn reconnected(&self) {}
}

impl Recorder {
    /// Publications delivered for `channel`.
    pub fn for_channel(&self, channel: &str) -> Vec<Publication> {
        self.publications
            .lock()
            .iter()
            .filter(|(c, _, _)| c == channel)
            .map(|(_, _, p)| p.clone())
            .collect()
    }

    /// Waits (up to 10 s) until `cond` holds.
    ///
    /// # Panics
    /// When the condition does not hold in time.
    pub async fn wait_for(&self, what: &str, cond: impl Fn(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let notified = self.notify.notified();
            if cond(self) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                assert!(cond(self), "timed out waiting for {what}");
                return;
            }
        }
    }
}

/// Starts `engine` with a fresh recorder.
///
/// # Panics
/// When the engine fails to start.
pub async fn started(engine: Arc<dyn Engine>) -> (Arc<dyn Engine>, Arc<Recorder>) {
    let rec = Arc::new(Recorder::default());
    engine.start(rec.clone()).await.expect("engine starts");
    (engine, rec)
}

fn channel(name: &str) -> String {
    format!("conf-{}:{name}", crate::engine::memory::new_epoch())
}

fn opts(history_size: usize) -> PublishOptions {
    PublishOptions {
        history_size,
        history_ttl: Duration::from_secs(60),
        idempotency_ttl: Duration::from_secs(60),
        ..Default::default()
    }
}

fn data(i: u64) -> Bytes {
    Bytes::from(format!(r#"{{"n":{i}}}"#))
}

async fn waits_until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Offsets start at 1, grow by one, share an epoch, and are delivered in order.
pub async fn offsets_are_sequential(engine: Arc<dyn Engine>) {
    let (e, rec) = started(engine).await;
    let ch = channel("seq");
    e.subscribe(&ch).await.unwrap();
    let mut epoch = None;
    for i in 1..=50 {
        let out = e.publish(&ch, data(i), &opts(100)).await.unwrap();
        assert_eq!(out.position.offset, i);
        assert!(!out.duplicate);
        let ep = epoch.get_or_insert_with(|| out.position.epoch.clone());
        assert_eq!(*ep, out.position.epoch);
    }
    rec.wait_for("50 deliveries", |r| r.for_channel(&ch).len() == 50)
        .await;
    let offsets: Vec<u64> = rec.for_channel(&ch).iter().map(|p| p.offset).collect();
    assert_eq!(offsets, (1..=50).collect::<Vec<_>>());
    let epochs: Vec<String> = rec
        .publications
        .lock()
        .iter()
        .filter(|(c, _, _)| *c == ch)
        .map(|(_, e, _)| e.clone())
        .collect();
    assert!(epochs.iter().all(|x| Some(x) == epoch.as_ref()));
}

/// Concurrent publishers to one channel still produce one gap-free, ordered stream.
pub async fn concurrent_publishes_are_totally_ordered(engine: Arc<dyn Engine>) {
    let (e, rec) = started(engine).await;
    let ch = channel("conc");
    e.subscribe(&ch).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..4u64 {
        let e = e.clone();
        let ch = ch.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                e.publish(&ch, data(t * 1000 + i), &opts(500))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    rec.wait_for("200 deliveries", |r| r.for_channel(&ch).len() == 200)
        .await;
    let delivered: Vec<Publication> = rec.for_channel(&ch);
    let offsets: Vec<u64> = delivered.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, (1..=200).collect::<Vec<_>>());
    let page = e
        .history(
            &ch,
            &HistoryQuery {
                since: None,
                limit: 500,
                reverse: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        page.publications, delivered,
        "history and delivery disagree"
    );
}

/// History keeps at most `history_size` publications and serves `since` exactly or refuses.
pub async fn history_size_limits_and_since(engine: Arc<dyn Engine>) {
    let (e, _rec) = started(engine).await;
    let ch = channel("hist");
    let mut epoch = String::new();
    for i in 1..=25 {
        epoch = e
            .publish(&ch, data(i), &opts(10))
            .await
            .unwrap()
            .position
            .epoch;
    }
    let page = e
        .history(
            &ch,
            &HistoryQuery {
                since: None,
                limit: 100,
                reverse: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.position, StreamPosition::new(25, epoch.clone()));
    assert_eq!(
        page.publications
            .iter()
            .map(|p| p.offset)
            .collect::<Vec<_>>(),
        (16..=25).collect::<Vec<_>>()
    );
    assert_eq!(page.publications[0].data, data(16));

    let since = |o| HistoryQuery {
        since: Some(StreamPosition::new(o, epoch.clone())),
        limit: 100,
        reverse: false,
    };
    let page = e.history(&ch, &since(20)).await.unwrap();
    assert_eq!(
        page.publications
            .iter()
            .map(|p| p.offset)
            .collect::<Vec<_>>(),
        [21, 22, 23, 24, 25]
    );
    // The oldest kept is 16, so since=15 is still complete; since=14 is not.
    assert_eq!(
        e.history(&ch, &since(15)).await.unwrap().publications.len(),
        10
    );
    assert_eq!(
        e.history(&ch, &since(14)).await,
        Err(EngineError::Unrecoverable {
            position: StreamPosition::new(25, epoch.clone())
        })
    );
    assert!(
        e.history(&ch, &since(25))
            .await
            .unwrap()
            .publications
            .is_empty()
    );
    assert!(matches!(
        e.history(&ch, &since(26)).await,
        Err(EngineError::Unrecoverable { .. })
    ));

    let rev = e
        .history(
            &ch,
            &HistoryQuery {
                since: None,
                limit: 3,
                reverse: true,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        rev.publications
            .iter()
            .map(|p| p.offset)
            .collect::<Vec<_>>(),
        [25, 24, 23]
    );
    let limited = e
        .history(
            &ch,
            &HistoryQuery {
                since: Some(StreamPosition::new(18, epoch.clone())),
                limit: 2,
                reverse: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        limited
            .publications
            .iter()
            .map(|p| p.offset)
            .collect::<Vec<_>>(),
        [19, 20]
    );
    let pos_only = e.history(&ch, &HistoryQuery::default()).await.unwrap();
    assert!(pos_only.publications.is_empty());
    assert_eq!(pos_only.position.offset, 25);
}

/// A position from another epoch is never resumed.
pub async fn foreign_epoch_is_unrecoverable(engine: Arc<dyn Engine>) {
    let (e, _rec) = started(engine).await;
    let ch = channel("epoch");
    let out = e.publish(&ch, data(1), &opts(10)).await.unwrap();
    let q = HistoryQuery {
        since: Some(StreamPosition::new(0, "not-the-epoch")),
        limit: 10,
        reverse: false,
    };
    assert_eq!(
        e.history(&ch, &q).await,
        Err(EngineError::Unrecoverable {
            position: out.position.clone()
        })
    );
    let q = HistoryQuery {
        since: Some(StreamPosition::new(0, out.position.epoch.clone())),
        limit: 10,
        reverse: false,
    };
    assert_eq!(e.history(&ch, &q).await.unwrap().publications.len(), 1);
}

/// A channel without history still counts offsets but cannot resume.
pub async fn channel_without_history_counts_offsets(engine: Arc<dyn Engine>) {
    let (e, _rec) = started(engine).await;
    let ch = channel("nohist");
    e.publish(&ch, data(1), &opts(0)).await.unwrap();
    let out = e.publish(&ch, data(2), &opts(0)).await.unwrap();
    assert_eq!(out.position.offset, 2);
    let page = e
        .history(
            &ch,
            &HistoryQuery {
                since: None,
                limit: 10,
                reverse: false,
            },
        )
        .await
        .unwrap();
    assert!(page.publications.is_empty());
    assert_eq!(page.position, out.position);
    let q = HistoryQuery {
        since: Some(StreamPosition::new(1, out.position.epoch.clone())),
        limit: 10,
        reverse: false,
    };
    assert!(matches!(
        e.history(&ch, &q).await,
        Err(EngineError::Unrecoverable { .. })
    ));
}

/// Publications expire after `history_ttl`.
pub async fn history_ttl_expires_publications(engine: Arc<dyn Engine>) {
    let (e, _rec) = started(engine).await;
    let ch = channel("ttl");
    let o = PublishOptions {
        history_ttl: Duration::from_millis(300),
        ..opts(10)
    };
    e.publish(&ch, data(1), &o).await.unwrap();
    let q = HistoryQuery {
        since: None,
        limit: 10,
        reverse: false,
    };
    assert_eq!(e.history(&ch, &q).await.unwrap().publications.len(), 1);
    waits_until("history to expire", || async {
        e.history(&ch, &q).await.unwrap().publications.is_empty()
    })
    .await;
}

/// A retried publish with the same idempotency key stores and delivers nothing twice.
pub async fn idempotent_publish(engine: Arc<dyn Engine>) {
    let (e, rec) = started(engine).await;
    let ch = channel("idem");
    e.subscribe(&ch).await.unwrap();
    let o = PublishOptions {
        idempotency_key: Some("k1".into()),
        ..opts(10)
    };
    let first = e.publish(&ch, data(1), &o).await.unwrap();
    let again = e.publish(&ch, data(1), &o).await.unwrap();
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(first.position, again.position);
    let other = e
        .publish(
            &ch,
            data(2),
            &PublishOptions {
                idempotency_key: Some("k2".into()),
                ..opts(10)
            },
        )
        .await
        .unwrap();
    assert_eq!(other.position.offset, 2);
    rec.wait_for("2 deliveries", |r| r.for_channel(&ch).len() >= 2)
        .await;
    let page = e
        .history(
            &ch,
            &HistoryQuery {
                since: None,
                limit: 10,
                reverse: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.publications.len(), 2);
    assert_eq!(rec.for_channel(&ch).len(), 2);
}

/// Presence entries appear, refresh, expire and can be removed.
pub async fn presence_with_ttl(engine: Arc<dyn Engine>) {
    let (e, _rec) = started(engine).await;
    let ch = channel("pres");
    let a = ClientInfo {
        client: "a".into(),
        user: "1".into(),
        info: Some(serde_json::json!({"name": "A"})),
    };
    let b = ClientInfo {
        client: "b".into(),
        user: "2".into(),
        info: None,
    };
    e.presence_add(&ch, std::slice::from_ref(&a), Duration::from_secs(60))
        .await
        .unwrap();
    e.presence_add(&ch, std::slice::from_ref(&b), Duration::from_millis(300))
        .await
        .unwrap();
    let mut p = e.presence(&ch).await.unwrap();
    p.sort_by(|x, y| x.client.cmp(&y.client));
    assert_eq!(p, vec![a.clone(), b.clone()]);
    waits_until("b's presence to expire", || async {
        e.presence(&ch).await.unwrap() == vec![a.clone()]
    })
    .await;
    e.presence_remove(&ch, "a").await.unwrap();
    assert!(e.presence(&ch).await.unwrap().is_empty());
}

/// Single-use values: taken once, by one of many concurrent takers; gone after their TTL.
pub async fn single_use_values(engine: Arc<dyn Engine>) {
    let (e, _rec) = started(engine).await;
    let key = channel("once");
    e.put_once(&key, Bytes::from_static(b"v1"), Duration::from_secs(60))
        .await
        .unwrap();
    let takers: Vec<_> = (0..8)
        .map(|_| {
            let e = e.clone();
            let key = key.clone();
            tokio::spawn(async move { e.take_once(&key).await.unwrap() })
        })
        .collect();
    let mut got = Vec::new();
    for t in takers {
        got.extend(t.await.unwrap());
    }
    assert_eq!(got, vec![Bytes::from_static(b"v1")], "exactly one taker");
    assert_eq!(e.take_once(&key).await.unwrap(), None);
    assert_eq!(e.take_once(&channel("never")).await.unwrap(), None);

    let short = channel("short");
    e.put_once(&short, Bytes::from_static(b"x"), Duration::from_millis(100))
        .await
        .unwrap();
    // Expiry is what is tested: let the TTL pass.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(e.take_once(&short).await.unwrap(), None, "expired");
}

/// Join/leave and control messages reach the sink; channels do not leak into each other.
pub async fn events_reach_the_sink_and_channels_are_isolated(engine: Arc<dyn Engine>) {
    let (e, rec) = started(engine).await;
    let (a, b) = (channel("iso-a"), channel("iso-b"));
    e.subscribe(&a).await.unwrap();
    e.subscribe(&b).await.unwrap();
    let who = ClientInfo {
        client: "c1".into(),
        user: "u".into(),
        info: None,
    };
    e.publish_join_leave(&a, true, &who).await.unwrap();
    e.publish_join_leave(&a, false, &who).await.unwrap();
    e.publish(&a, data(1), &opts(10)).await.unwrap();
    let c = Control::DisconnectUser {
        user: "u".into(),
        reconnect: true,
    };
    e.publish_control(&c).await.unwrap();
    rec.wait_for("join, leave, publication and control", |r| {
        r.join_leave
            .lock()
            .iter()
            .filter(|(ch, _, _)| *ch == a)
            .count()
            == 2
            && r.for_channel(&a).len() == 1
            && r.controls.lock().contains(&c)
    })
    .await;
    assert_eq!(
        rec.join_leave
            .lock()
            .iter()
            .filter(|(ch, _, _)| *ch == a)
            .map(|(_, j, _)| *j)
            .collect::<Vec<_>>(),
        [true, false]
    );
    assert!(rec.for_channel(&b).is_empty());
    let hb = e
        .history(
            &b,
            &HistoryQuery {
                since: None,
                limit: 10,
                reverse: false,
            },
        )
        .await
        .unwrap();
    assert!(hb.publications.is_empty());
    assert_eq!(hb.position.offset, 0);
}

/// Generates one `#[tokio::test]` per conformance check for an engine.
///
/// `$make` is an async expression returning a fresh engine (not yet started).
#[macro_export]
macro_rules! engine_conformance {
    ($make:expr) => {
        $crate::engine_conformance!(@tests $make;
            offsets_are_sequential,
            concurrent_publishes_are_totally_ordered,
            history_size_limits_and_since,
            foreign_epoch_is_unrecoverable,
            channel_without_history_counts_offsets,
            history_ttl_expires_publications,
            idempotent_publish,
            presence_with_ttl,
            events_reach_the_sink_and_channels_are_isolated,
            single_use_values,
        );
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let engine = $make.await;
                $crate::conformance::$name(::std::sync::Arc::new(engine)).await;
            }
        )*
    };
}
