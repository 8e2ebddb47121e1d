//! Several nodes on one real `redis-server`: shared channels, resume across nodes, disconnect
//! across nodes, node discovery, Redis outages.

use serde_json::json;
use switchboard_server::EngineKind;

use crate::harness::*;
use crate::redis_harness::{RedisServer, ServerOpts, unique_prefix};

async fn node(url: &str, prefix: &str, name: &str) -> TestServer {
    let (url, prefix, name) = (url.to_owned(), prefix.to_owned(), name.to_owned());
    TestServer::with(move |c| {
        c.engine = EngineKind::Redis;
        c.redis_url = url;
        c.redis_prefix = prefix;
        c.name = name;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_share_channels_and_resume_across_nodes() {
    let redis = RedisServer::start(&ServerOpts::default());
    let prefix = unique_prefix();
    let a = node(&redis.url(), &prefix, "node-a").await;
    let b = node(&redis.url(), &prefix, "node-b").await;

    let mut on_a = a.client("u1").await;
    let sub = on_a
        .request(json!({"op": "subscribe", "channel": "chat:x"}))
        .await;
    let epoch = sub["ok"]["position"]["epoch"].clone();
    for i in 1..=5 {
        b.publish("chat:x", json!({"n": i})).await;
    }
    for i in 1..=5 {
        let p = on_a.push("pub").await;
        assert_eq!(
            (p["offset"].as_u64(), p["data"]["n"].as_u64()),
            (Some(i), Some(i))
        );
    }
    // Leave A, miss some, come back on B.
    drop(on_a);
    for i in 6..=9 {
        a.publish("chat:x", json!({"n": i})).await;
    }
    let mut on_b = b.client("u1").await;
    let r = on_b
        .request(
            json!({"op": "subscribe", "channel": "chat:x", "since": {"offset": 5, "epoch": epoch}}),
        )
        .await;
    assert_eq!(r["ok"]["recovered"], true, "{r}");
    let got: Vec<u64> = r["ok"]["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(got, [6, 7, 8, 9]);
    a.publish("chat:x", json!({"n": 10})).await;
    assert_eq!(on_b.push("pub").await["offset"], 10);

    // Presence and join/leave are cluster-wide.
    let mut watcher = a.client("w").await;
    watcher
        .request(json!({"op": "subscribe", "channel": "chat:x"}))
        .await;
    let p = watcher
        .request(json!({"op": "presence", "channel": "chat:x"}))
        .await;
    let mut users: Vec<String> = p["ok"]["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["user"].as_str().unwrap().to_owned())
        .collect();
    users.sort();
    assert_eq!(users, ["u1", "w"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_reaches_users_on_other_nodes_and_info_lists_nodes() {
    let redis = RedisServer::start(&ServerOpts::default());
    let prefix = unique_prefix();
    let a = node(&redis.url(), &prefix, "node-a").await;
    let b = node(&redis.url(), &prefix, "node-b").await;
    let mut victim = a.client("victim").await;
    let (st, _) = b
        .api(
            "/api/disconnect",
            json!({"user": "victim", "reconnect": true}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(victim.closed().await, 4006);
    eventually("both nodes in /api/info", || async {
        let r = b
            .http
            .get(format!("{}/api/info", b.base))
            .header("X-API-Key", API_KEY)
            .send()
            .await
            .unwrap();
        let info: serde_json::Value = r.json().await.unwrap();
        let mut names: Vec<String> = info["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names == ["node-a", "node-b"]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_fails_fast_keeps_sessions_and_recovers() {
    let redis = RedisServer::start(&ServerOpts {
        aof: true,
        ..Default::default()
    });
    let (port, dir) = (redis.port, redis.dir.clone());
    let prefix = unique_prefix();
    let a = node(&redis.url(), &prefix, "node-a").await;
    let mut ws = a.client("u").await;
    let sub = ws
        .request(json!({"op": "subscribe", "channel": "chat:o"}))
        .await;
    assert_eq!(sub["ok"]["recovered"], true);
    a.publish("chat:o", json!({"n": 1})).await;
    assert_eq!(ws.push("pub").await["offset"], 1);

    redis.kill();
    let started = std::time::Instant::now();
    let (st, body) = a
        .api(
            "/api/publish",
            json!({"channel": "chat:o", "data": {"n": 2}}),
        )
        .await;
    assert_eq!(st, 503, "{body}");
    assert_eq!(body["error"]["code"], "internal");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "publish fails fast"
    );
    eventually("/ready to report not ready", || async {
        a.http
            .get(format!("{}/ready", a.base))
            .send()
            .await
            .unwrap()
            .status()
            == 503
    })
    .await;

    // Back, with its AOF: same epoch, nothing lost, the session (still connected) goes on.
    let _redis = RedisServer::start_at(
        port,
        &dir,
        &ServerOpts {
            aof: true,
            ..Default::default()
        },
    );
    eventually("/ready again", || async {
        a.http
            .get(format!("{}/ready", a.base))
            .send()
            .await
            .unwrap()
            .status()
            == 200
    })
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let published = loop {
        let (st, body) = a
            .api(
                "/api/publish",
                json!({"channel": "chat:o", "data": {"n": 2}}),
            )
            .await;
        if st == 200 {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "publish never succeeded: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(published["offset"], 2, "offsets continue in the same epoch");
    let p = ws.push("pub").await;
    assert_eq!(p["offset"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_data_loss_is_never_a_silent_gap() {
    let redis = RedisServer::start(&ServerOpts::default());
    let (port, dir) = (redis.port, redis.dir.clone());
    let prefix = unique_prefix();
    let a = node(&redis.url(), &prefix, "node-a").await;
    let mut ws = a.client("u").await;
    let sub = ws
        .request(json!({"op": "subscribe", "channel": "chat:loss"}))
        .await;
    let epoch = sub["ok"]["position"]["epoch"].clone();
    for i in 1..=3 {
        a.publish("chat:loss", json!({"n": i})).await;
        ws.push("pub").await;
    }
    // Restart without persistence: every stream is gone.
    redis.kill();
    let _redis = RedisServer::start_at(port, &dir, &ServerOpts::default());
    eventually("publish to succeed", || async {
        a.api(
            "/api/publish",
            json!({"channel": "chat:loss", "data": {"n": 4}}),
        )
        .await
        .0 == 200
    })
    .await;
    // The session either is told its state is gone (4003) ...
    let mut next = None;
    while let Some(v) = ws.recv().await {
        if v["op"] == "pub" {
            next = Some(v);
            break;
        }
    }
    match next {
        Some(p) => panic!("a publication from a new epoch must not look contiguous: {p}"),
        None => assert_eq!(ws.close.as_ref().unwrap().0, 4003),
    }
    // ... and resubscribing from its old position says plainly that it cannot be recovered.
    let mut again = a.client("u").await;
    let r = again.request(json!({"op": "subscribe", "channel": "chat:loss", "since": {"offset": 3, "epoch": epoch}})).await;
    assert_eq!(r["ok"]["recovered"], false, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_a_stopped_node_resume_on_another() {
    let redis = RedisServer::start(&ServerOpts::default());
    let prefix = unique_prefix();
    let mut a = node(&redis.url(), &prefix, "node-a").await;
    let b = node(&redis.url(), &prefix, "node-b").await;
    let mut clients = Vec::new();
    for i in 0..5 {
        let mut ws = a.client(&format!("c{i}")).await;
        let r = ws
            .request(json!({"op": "subscribe", "channel": "chat:failover"}))
            .await;
        clients.push((ws, r["ok"]["position"]["epoch"].clone()));
    }
    b.publish("chat:failover", json!({"n": 1})).await;
    for (ws, _) in &mut clients {
        assert_eq!(ws.push("pub").await["offset"], 1);
    }
    // Node A goes away: its sessions are told to reconnect.
    let running = a.running.take().unwrap();
    let stopping = tokio::spawn(running.shutdown());
    for (ws, _) in &mut clients {
        assert_eq!(ws.closed().await, 4000);
    }
    stopping.await.unwrap();
    for i in 2..=4 {
        b.publish("chat:failover", json!({"n": i})).await;
    }
    for (i, (_, epoch)) in clients.into_iter().enumerate() {
        let mut ws = b.client(&format!("c{i}")).await;
        let r = ws.request(json!({"op": "subscribe", "channel": "chat:failover", "since": {"offset": 1, "epoch": epoch}})).await;
        assert_eq!(r["ok"]["recovered"], true, "{r}");
        let got: Vec<u64> = r["ok"]["publications"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["offset"].as_u64().unwrap())
            .collect();
        assert_eq!(got, [2, 3, 4]);
    }
}

/// Issue 10: a ticket minted on one node is accepted once on another (and refused everywhere
/// after), and a bare EventSource whose node goes away resumes on the other node with its
/// `Last-Event-ID`: no gap, no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_and_sse_resume_work_on_any_node() {
    use crate::sse::Sse;
    let redis = RedisServer::start(&ServerOpts::default());
    let prefix = unique_prefix();
    let a = node(&redis.url(), &prefix, "node-a").await;
    let mut b = node(&redis.url(), &prefix, "node-b").await;
    let t = token("roamer", &[], &[], 3600);
    let ticket = a.ticket(&t).await;
    let query = format!("channel=feed:roam&ticket={ticket}");

    // Minted on A, redeemed on B.
    let mut stream = Sse::open(&b, &query, None, None).await.unwrap();
    stream.next_of("welcome").await;
    // Replayed: refused on both nodes.
    for n in [&a, &b] {
        let (status, _) = Sse::open(n, &query, None, None).await.err().unwrap();
        assert_eq!(status, 401);
    }
    for i in 1..=3 {
        a.publish("feed:roam", json!({"n": i})).await;
    }
    let mut last_id = String::new();
    for i in 1..=3 {
        let e = stream.next_of("message").await;
        assert_eq!(e.json()["data"]["n"], i);
        last_id = e.id.unwrap();
    }

    // B goes away; the stream ends with a reconnect hint, as a browser would see it.
    let running = b.running.take().unwrap();
    let stopping = tokio::spawn(running.shutdown());
    assert_eq!(stream.next_of("disconnect").await.json()["code"], 4000);
    stopping.await.unwrap();
    for i in 4..=5 {
        a.publish("feed:roam", json!({"n": i})).await;
    }
    // The browser's automatic reconnect: same URL (its used ticket), plus Last-Event-ID.
    let mut resumed = Sse::open(&a, &query, None, Some(&last_id)).await.unwrap();
    resumed.next_of("welcome").await;
    for i in 4..=5 {
        assert_eq!(resumed.next_of("message").await.json()["data"]["n"], i);
    }
    a.publish("feed:roam", json!({"n": 6})).await;
    assert_eq!(
        resumed.next_of("message").await.json()["data"]["n"],
        6,
        "no duplicate, no gap"
    );
    // The resume secret was single-use too.
    let (status, _) = Sse::open(&a, &query, None, Some(&last_id))
        .await
        .err()
        .unwrap();
    assert_eq!(status, 401);
}
