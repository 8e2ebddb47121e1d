//! SSE: welcome, publications with cursor ids, resume by `Last-Event-ID`, resets, tickets,
//! expiry and bad cursors.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;

#[derive(Debug, Default, Clone)]
pub struct Event {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

impl Event {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap()
    }
}

/// A minimal EventSource reader over reqwest.
pub struct Sse {
    resp: reqwest::Response,
    buf: String,
    pub retry: Option<u64>,
}

impl Sse {
    pub async fn open(
        s: &TestServer,
        query: &str,
        auth: Option<&str>,
        last_event_id: Option<&str>,
    ) -> Result<Sse, (u16, Value)> {
        let mut req = s.http.get(format!("{}/sse?{query}", s.base));
        if let Some(t) = auth {
            req = req.bearer_auth(t);
        }
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let resp = req.send().await.unwrap();
        if resp.status() != 200 {
            let st = resp.status().as_u16();
            return Err((st, resp.json().await.unwrap_or(Value::Null)));
        }
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        assert_eq!(resp.headers()["cache-control"], "no-cache");
        if s.running.is_some() {
            // A proxy in front (nginx) consumes this header; the node itself always sends it.
            assert_eq!(resp.headers()["x-accel-buffering"], "no");
        }
        Ok(Sse {
            resp,
            buf: String::new(),
            retry: None,
        })
    }

    /// The next event (comments skipped); `None` at end of stream.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(i) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..i + 2).collect();
                let mut ev = Event {
                    event: "message".into(),
                    ..Default::default()
                };
                let mut has_data = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("data: ") {
                        if has_data {
                            ev.data.push('\n');
                        }
                        ev.data.push_str(v);
                        has_data = true;
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        ev.id = Some(v.into());
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        ev.event = v.into();
                    } else if let Some(v) = line.strip_prefix("retry: ") {
                        self.retry = v.parse().ok();
                    }
                }
                if has_data {
                    return Some(ev);
                }
                continue;
            }
            let chunk = tokio::time::timeout(WAIT, self.resp.chunk())
                .await
                .expect("timed out reading SSE")
                .ok()??;
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    pub async fn next_of(&mut self, kind: &str) -> Event {
        loop {
            let e = self
                .next()
                .await
                .unwrap_or_else(|| panic!("stream ended waiting for {kind}"));
            if e.event == kind {
                return e;
            }
        }
    }
}

#[tokio::test]
async fn stream_welcome_publications_and_resume_by_last_event_id() {
    let s = TestServer::start().await;
    let t = token("s1", &[], &[], 3600);
    let mut sse = Sse::open(&s, "channel=chat:a&channel=chat:b", Some(&t), None)
        .await
        .unwrap();
    let welcome = sse.next().await.unwrap();
    assert_eq!(welcome.event, "welcome");
    assert_eq!(welcome.json()["user"], "s1");
    let retry = sse.retry.expect("retry line");
    assert!((2000..5000).contains(&retry));
    s.publish("chat:a", json!({"n": 1})).await;
    s.publish("chat:b", json!({"n": 2})).await;
    let e1 = sse.next_of("message").await;
    assert_eq!(
        e1.json(),
        json!({"op": "pub", "channel": "chat:a", "offset": 1, "data": {"n": 1}})
    );
    let e2 = sse.next_of("message").await;
    assert_eq!(e2.json()["channel"], "chat:b");
    let cursor = e2.id.clone().unwrap();
    drop(sse);
    // Missed while disconnected:
    s.publish("chat:a", json!({"n": 3})).await;
    s.publish("chat:b", json!({"n": 4})).await;
    s.publish("chat:a", json!({"n": 5})).await;
    let mut again = Sse::open(&s, "channel=chat:a&channel=chat:b", Some(&t), Some(&cursor))
        .await
        .unwrap();
    again.next_of("welcome").await;
    // Order holds per channel (not across channels).
    let mut per_channel = std::collections::BTreeMap::<String, Vec<i64>>::new();
    for _ in 0..3 {
        let e = again.next_of("message").await.json();
        per_channel
            .entry(e["channel"].as_str().unwrap().into())
            .or_default()
            .push(e["data"]["n"].as_i64().unwrap());
    }
    assert_eq!(per_channel["chat:a"], [3, 5]);
    assert_eq!(per_channel["chat:b"], [4]);
    s.publish("chat:b", json!({"n": 6})).await;
    assert_eq!(again.next_of("message").await.json()["data"]["n"], 6);
}

#[tokio::test]
async fn unrecoverable_channels_get_a_reset_event() {
    let s = TestServer::start().await;
    let t = token("s2", &[], &[], 3600);
    let mut cursor = switchboard_protocol::Cursor::new();
    cursor.set(
        "chat:r",
        switchboard_protocol::StreamPosition::new(5, "gone"),
    );
    let mut sse = Sse::open(
        &s,
        &format!("channel=chat:r&since={}", cursor.encode()),
        Some(&t),
        None,
    )
    .await
    .unwrap();
    // The new position travels on the reset only: a client cut before it resumes from its
    // old position and is told again, never past the reset unaware.
    assert!(sse.next_of("welcome").await.id.is_none());
    let reset = sse.next_of("reset").await;
    assert_eq!(reset.json()["channels"], json!(["chat:r"]));
    assert!(reset.id.is_some());
}

#[tokio::test]
async fn bad_cursors_and_requests_get_400_or_401() {
    let s = TestServer::start().await;
    let t = token("s3", &[], &[], 3600);
    let mut foreign = switchboard_protocol::Cursor::new();
    foreign.set(
        "chat:other",
        switchboard_protocol::StreamPosition::new(1, "x"),
    );
    for (q, status) in [
        ("channel=chat:a&since=garbage".to_owned(), 400u16),
        (format!("channel=chat:a&since=1{}", "A".repeat(3000)), 400),
        (format!("channel=chat:a&since={}", foreign.encode()), 400),
        ("".to_owned(), 400),
        ("channel=bad%20name".to_owned(), 400),
        ("channel=closed:x".to_owned(), 403),
    ] {
        let Err((st, body)) = Sse::open(&s, &q, Some(&t), None).await else {
            panic!("{q} accepted")
        };
        assert_eq!(st, status, "{q}: {body}");
        assert!(body["error"]["code"].is_string(), "{body}");
    }
    let Err((st, _)) = Sse::open(&s, "channel=chat:a", None, None).await else {
        panic!()
    };
    assert_eq!(st, 401);
    let Err((st, _)) = Sse::open(&s, "channel=chat:a", Some("bad"), None).await else {
        panic!()
    };
    assert_eq!(st, 401);
}

#[tokio::test]
async fn tickets_are_single_use_and_stream_ends_at_expiry() {
    let s = TestServer::start().await;
    let t = token("s4", &[], &[], 2);
    let ticket = s.ticket(&t).await;
    let mut sse = Sse::open(&s, &format!("channel=chat:t&ticket={ticket}"), None, None)
        .await
        .unwrap();
    sse.next_of("welcome").await;
    let Err((st, _)) = Sse::open(&s, &format!("channel=chat:t&ticket={ticket}"), None, None).await
    else {
        panic!("replay accepted")
    };
    assert_eq!(st, 401);
    let d = sse.next_of("disconnect").await;
    assert_eq!(d.json()["code"], 4004);
    assert!(
        sse.next().await.is_none(),
        "the stream ends after the disconnect event"
    );
}

#[tokio::test]
async fn keepalive_comments_flow_on_idle_streams() {
    let s = TestServer::with(|c| c.sse_keepalive = Duration::from_secs(1)).await;
    let t = token("s5", &[], &[], 3600);
    let mut resp = s
        .http
        .get(format!("{}/sse?channel=chat:k", s.base))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    while !seen.contains(": ping") {
        let chunk = tokio::time::timeout(WAIT, resp.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

/// A stream on a fresh connection is taken over from hyper; one on a reused keep-alive
/// connection stays in hyper. Both must behave the same.
#[tokio::test]
async fn taken_over_and_hyper_streams_behave_the_same() {
    let s = TestServer::start().await;
    let t = token("s6", &[], &[], 3600);
    let reused = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    assert_eq!(
        reused
            .get(format!("{}/health", s.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut streams = Vec::new();
    for client in [&fresh, &reused] {
        let resp = client
            .get(format!("{}/sse?channel=chat:both", s.base))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let mut sse = Sse {
            resp,
            buf: String::new(),
            retry: None,
        };
        sse.next_of("welcome").await;
        streams.push(sse);
    }
    s.publish("chat:both", json!({"n": 1})).await;
    for sse in &mut streams {
        let e = sse.next_of("message").await;
        assert_eq!(e.json()["data"], json!({"n": 1}));
        assert!(e.id.is_some());
    }
}

/// A bare EventSource reconnects to the same URL (with its used ticket) and `Last-Event-ID`:
/// the resume secret in the id lets it back in exactly once, never without it.
#[tokio::test]
async fn browser_style_reconnect_resumes_with_a_used_ticket() {
    let s = TestServer::start().await;
    let t = token("eventsource", &[], &[], 3600);
    let r: Value = s
        .http
        .post(format!("{}/auth/ticket", s.base))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let query = format!("channel=chat:es&ticket={}", r["ticket"].as_str().unwrap());
    let mut sse = Sse::open(&s, &query, None, None).await.unwrap();
    sse.next_of("welcome").await;
    s.publish("chat:es", json!({"n": 1})).await;
    let last = sse.next_of("message").await.id.unwrap();
    assert!(last.contains('.'), "ids carry the resume secret");
    // The server drops the stream (reconnect allowed); more is published meanwhile.
    s.api(
        "/api/disconnect",
        json!({"user": "eventsource", "reconnect": true}),
    )
    .await;
    assert_eq!(sse.next_of("disconnect").await.json()["code"], 4006);
    s.publish("chat:es", json!({"n": 2})).await;
    // Used ticket alone: refused.
    let Err((st, _)) = Sse::open(&s, &query, None, None).await else {
        panic!("used ticket accepted")
    };
    assert_eq!(st, 401);
    // Forged secret: refused.
    let forged = format!("{}.{}", last.split('.').next().unwrap(), "A".repeat(32));
    let Err((st, _)) = Sse::open(&s, &query, None, Some(&forged)).await else {
        panic!("forged secret accepted")
    };
    assert_eq!(st, 401);
    // The browser's reconnect: same URL + Last-Event-ID.
    let mut again = Sse::open(&s, &query, None, Some(&last)).await.unwrap();
    assert_eq!(again.next_of("welcome").await.json()["user"], "eventsource");
    assert_eq!(
        again.next_of("message").await.json()["data"],
        json!({"n": 2})
    );
    // Once only.
    let Err((st, _)) = Sse::open(&s, &query, None, Some(&last)).await else {
        panic!("resume secret reused")
    };
    assert_eq!(st, 401);
    // A terminal disconnect revokes the current secret.
    s.publish("chat:es", json!({"n": 3})).await;
    let latest = again.next_of("message").await.id.unwrap();
    s.api("/api/disconnect", json!({"user": "eventsource"}))
        .await;
    assert_eq!(again.next_of("disconnect").await.json()["code"], 4503);
    let Err((st, _)) = Sse::open(&s, &query, None, Some(&latest)).await else {
        panic!("revoked secret accepted")
    };
    assert_eq!(st, 401);
}

/// A backlog larger than one write batch (64) is delivered at once, not one batch per
/// keep-alive: the stream drains until its queue is empty before it waits.
#[tokio::test]
async fn a_backlog_larger_than_a_batch_is_delivered_without_waiting() {
    let s = TestServer::with(|c| c.sse_keepalive = Duration::from_secs(60)).await;
    let t = token("s7", &[], &[], 3600);
    let mut sse = Sse::open(&s, "channel=big:backlog", Some(&t), None)
        .await
        .unwrap();
    sse.next_of("welcome").await;
    let node = s.node().clone();
    for i in 1..=300 {
        node.publish_json("big:backlog", &json!({"n": i}), None)
            .await
            .unwrap();
    }
    for i in 1..=300u64 {
        assert_eq!(sse.next_of("message").await.json()["offset"], i);
    }
}
