//! Redis Cluster: three masters started by the test (no replicas), sharded pubsub.

use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchboard_core::engine::{Engine, HistoryQuery, PublishOptions};
use switchboard_redis::{RedisConfig, RedisEngine};

use crate::harness::{RedisServer, ServerOpts, raw_command, redis_cli_bin, unique_prefix};
use crate::sink::start;

/// Three cluster-enabled servers joined into one cluster covering all slots.
pub struct Cluster {
    pub servers: Vec<RedisServer>,
}

impl Cluster {
    pub fn start(opts: &ServerOpts) -> Self {
        let opts = ServerOpts {
            cluster: true,
            ..opts.clone()
        };
        let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start(&opts)).collect();
        let addrs: Vec<String> = servers
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        let out = Command::new(redis_cli_bin())
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = Self { servers };
        cluster.wait_ok();
        cluster
    }

    /// Waits until every node reports `cluster_state:ok`.
    pub fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for s in &self.servers {
            loop {
                let info = raw_command(s.port, "CLUSTER INFO").unwrap_or_default();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "cluster not ok: {info}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    pub fn url(&self) -> String {
        self.servers
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn shared_cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        Cluster::start(&ServerOpts {
            remove_dir_on_exit: true,
            ..ServerOpts::default()
        })
    })
}

pub fn cluster_config() -> RedisConfig {
    RedisConfig {
        url: shared_cluster().url(),
        prefix: unique_prefix(),
        cluster: true,
        ..RedisConfig::default()
    }
}

pub async fn make_cluster_engine() -> RedisEngine {
    RedisEngine::connect(cluster_config())
        .await
        .expect("connects to the cluster")
}

/// The core conformance suite, unchanged, on the cluster.
mod conformance {
    switchboard_core::engine_conformance!(async { super::make_cluster_engine().await });
}

/// Channels spread over every master; two nodes; SPUBLISH from the script reaches the other
/// node in order on each shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_the_cluster() {
    let cfg = cluster_config();
    let a = RedisEngine::connect(cfg.clone()).await.unwrap();
    let b = RedisEngine::connect(cfg).await.unwrap();
    let _sa = start(&a).await;
    let sb = start(&b).await;
    // 30 channels hash to slots on all three masters.
    let channels: Vec<String> = (0..30).map(|i| format!("cl:c{i}")).collect();
    for ch in &channels {
        b.subscribe(ch).await.unwrap();
    }
    let opts = PublishOptions {
        history_size: 100,
        history_ttl: Duration::from_secs(60),
        ..Default::default()
    };
    for i in 1..=20u64 {
        for ch in &channels {
            let out = a
                .publish(ch, Bytes::from(i.to_string()), &opts)
                .await
                .unwrap();
            assert_eq!(out.position.offset, i);
        }
    }
    sb.rec
        .wait_for("20 publications on each of 30 channels", |r| {
            channels.iter().all(|ch| r.for_channel(ch).len() == 20)
        })
        .await;
    for ch in &channels {
        assert_eq!(sb.offsets(ch), (1..=20).collect::<Vec<_>>());
        let page = b
            .history(
                ch,
                &HistoryQuery {
                    since: None,
                    limit: 100,
                    reverse: false,
                },
            )
            .await
            .unwrap();
        assert_eq!(page.publications.len(), 20);
    }
    // The channels really are spread over the three masters.
    for s in &shared_cluster().servers {
        let n = raw_command(s.port, "DBSIZE").unwrap_or_default();
        assert!(n.starts_with(':') && n.trim() != ":0", "empty shard: {n}");
    }
    let ctl = switchboard_core::engine::Control::DisconnectUser {
        user: "u".into(),
        reconnect: true,
    };
    a.publish_control(&ctl).await.unwrap();
    sb.rec
        .wait_for("control on the cluster", |r| {
            r.controls.lock().contains(&ctl)
        })
        .await;
    let me = switchboard_core::engine::NodeInfo {
        name: "a".into(),
        sessions: 1,
        uptime_secs: 1,
    };
    assert_eq!(a.nodes(&me).await.unwrap(), vec![me]);
}

/// A master crashes and comes back from its AOF: the engine resubscribes its shard, tells the
/// sink, and the channels on that shard continue in the same epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_master_restart_with_aof() {
    let aof = ServerOpts {
        aof: true,
        ..Default::default()
    };
    let mut cluster = Cluster::start(&aof);
    let e = RedisEngine::connect(RedisConfig {
        url: cluster.url(),
        prefix: unique_prefix(),
        cluster: true,
        ..RedisConfig::default()
    })
    .await
    .unwrap();
    let sink = start(&e).await;
    let channels: Vec<String> = (0..30).map(|i| format!("clr:c{i}")).collect();
    let opts = PublishOptions {
        history_size: 100,
        history_ttl: Duration::from_secs(60),
        ..Default::default()
    };
    let mut epochs = Vec::new();
    for ch in &channels {
        e.subscribe(ch).await.unwrap();
        epochs.push(
            e.publish(ch, Bytes::from_static(b"1"), &opts)
                .await
                .unwrap()
                .position
                .epoch,
        );
    }
    sink.rec
        .wait_for("first round", |r| {
            channels.iter().all(|ch| r.for_channel(ch).len() == 1)
        })
        .await;

    let victim = cluster.servers.remove(0);
    let (port, dir) = (victim.port, victim.dir.clone());
    victim.kill();
    let t = Instant::now();
    let back = RedisServer::start_at(
        port,
        &dir,
        &ServerOpts {
            cluster: true,
            ..aof.clone()
        },
    );
    cluster.servers.insert(0, back);
    cluster.wait_ok();
    crate::sink::eventually("reconnected()", 30, || sink.reconnects() >= 1).await;
    eprintln!(
        "cluster master restart: reconnected() {} ms after the kill",
        t.elapsed().as_millis()
    );
    let mut published_at = Vec::new();
    for (ch, epoch) in channels.iter().zip(&epochs) {
        let mut out = None;
        for _ in 0..50 {
            match e.publish(ch, Bytes::from_static(b"2"), &opts).await {
                Ok(o) => {
                    out = Some(o);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let out = out.expect("publish after the restart");
        assert_eq!(out.position.offset, 2, "{ch}");
        assert_eq!(&out.position.epoch, epoch, "{ch}");
        published_at.push(Instant::now());
    }
    // Never a silent gap: each publication is delivered live, or the sink is told to
    // resynchronise after it was published (the hub then reads it from history).
    crate::sink::eventually("delivery or resync for every channel", 20, || {
        let resyncs = sink.reconnected_at.lock().clone();
        channels
            .iter()
            .zip(&published_at)
            .all(|(ch, at)| sink.offsets(ch).contains(&2) || resyncs.iter().any(|r| r > at))
    })
    .await;
    let live = channels
        .iter()
        .filter(|ch| sink.offsets(ch).contains(&2))
        .count();
    eprintln!("cluster master restart: {live}/30 delivered live, the rest via resync");
    for (ch, epoch) in channels.iter().zip(&epochs) {
        let page = e
            .history(
                ch,
                &HistoryQuery {
                    since: Some(switchboard_protocol::StreamPosition::new(1, epoch.clone())),
                    limit: 10,
                    reverse: false,
                },
            )
            .await
            .unwrap();
        assert_eq!(page.publications.len(), 1, "{ch}");
    }
    // And live delivery works on every shard afterwards.
    crate::sink::eventually("pubsub healthy", 10, || e.is_connected()).await;
    for ch in &channels {
        e.publish(ch, Bytes::from_static(b"3"), &opts)
            .await
            .unwrap();
    }
    sink.rec
        .wait_for("third round on every shard", |r| {
            channels
                .iter()
                .all(|ch| r.for_channel(ch).iter().any(|p| p.offset == 3))
        })
        .await;
}
