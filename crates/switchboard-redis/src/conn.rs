//! The two connections an engine holds: one multiplexed connection for commands and scripts, and
//! one for pubsub, each either standalone (`ConnectionManager`) or cluster (`ClusterConnection`).

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
use redis::{Cmd, IntoConnectionInfo, Pipeline, ProtocolVersion, PushInfo, RedisFuture, Value};

use switchboard_core::engine::EngineError;

use crate::RedisConfig;

/// Where pushes go: must never fail (redis-rs#1610), must never block.
pub(crate) type PushFn =
    Box<dyn Fn(PushInfo) -> Result<(), std::convert::Infallible> + Send + Sync>;

/// The command connection.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

fn manager_config(cfg: &RedisConfig) -> ConnectionManagerConfig {
    // A short reconnect cycle: when it gives up, the next command (or the supervisor's ping)
    // starts a new one, so the connection comes back soon after Redis does.
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(cfg.connect_timeout))
        .set_response_timeout(Some(cfg.command_timeout))
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500))
        .set_exponent_base(2.0)
        .set_number_of_retries(3)
}

fn single_client(url: &str) -> redis::RedisResult<redis::Client> {
    let info = url.into_connection_info()?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    redis::Client::open(info.set_redis_settings(settings))
}

fn cluster_builder(cfg: &RedisConfig) -> ClusterClientBuilder {
    let nodes: Vec<String> = cfg
        .url
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    ClusterClientBuilder::new(nodes)
        .use_protocol(ProtocolVersion::RESP3)
        .connection_timeout(cfg.connect_timeout)
        .response_timeout(cfg.command_timeout)
        .retries(2)
        .min_retry_wait(20)
        .max_retry_wait(300)
}

/// Opens the command connection.
pub(crate) async fn connect_commands(cfg: &RedisConfig) -> redis::RedisResult<Conn> {
    if cfg.cluster {
        let client = cluster_builder(cfg).build()?;
        Ok(Conn::Cluster(client.get_async_connection().await?))
    } else {
        let client = single_client(&cfg.url)?;
        Ok(Conn::Single(
            client
                .get_connection_manager_with_config(manager_config(cfg))
                .await?,
        ))
    }
}

/// The pubsub connection: receives pushes through `push`.
#[derive(Clone)]
pub(crate) enum SubConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// Opens the pubsub connection with automatic resubscription after reconnects.
pub(crate) async fn connect_pubsub(cfg: &RedisConfig, push: PushFn) -> redis::RedisResult<SubConn> {
    if cfg.cluster {
        let client = cluster_builder(cfg).push_sender(push).build()?;
        Ok(SubConn::Cluster(client.get_async_connection().await?))
    } else {
        let client = single_client(&cfg.url)?;
        let config = manager_config(cfg)
            .set_push_sender(push)
            .set_automatic_resubscription();
        Ok(SubConn::Single(
            client.get_connection_manager_with_config(config).await?,
        ))
    }
}

impl SubConn {
    /// Subscribes (sharded pubsub in a cluster); returns once Redis confirmed.
    pub(crate) async fn subscribe(&mut self, channels: &[&str]) -> redis::RedisResult<()> {
        match self {
            SubConn::Single(c) => c.subscribe(channels).await,
            SubConn::Cluster(c) => {
                // SSUBSCRIBE of several channels must stay within one slot: one call each.
                for ch in channels {
                    c.ssubscribe(*ch).await?;
                }
                Ok(())
            }
        }
    }

    /// Unsubscribes.
    pub(crate) async fn unsubscribe(&mut self, channels: &[&str]) -> redis::RedisResult<()> {
        match self {
            SubConn::Single(c) => c.unsubscribe(channels).await,
            SubConn::Cluster(c) => {
                for ch in channels {
                    c.sunsubscribe(*ch).await?;
                }
                Ok(())
            }
        }
    }

    /// Subscribes again to channels that may already be subscribed (after a reconnect), in
    /// batches; returns the first failure.
    pub(crate) async fn resubscribe(&mut self, channels: &[String]) -> redis::RedisResult<()> {
        use futures_util::StreamExt;
        match self {
            SubConn::Single(c) => {
                for chunk in channels.chunks(512) {
                    c.subscribe(chunk).await?;
                }
                Ok(())
            }
            SubConn::Cluster(c) => {
                let futures: Vec<_> = channels
                    .iter()
                    .map(|ch| {
                        let (mut c, ch) = (c.clone(), ch.clone());
                        async move { c.ssubscribe(ch).await }
                    })
                    .collect();
                let mut results = futures_util::stream::iter(futures).buffer_unordered(64);
                while let Some(r) = results.next().await {
                    r?;
                }
                Ok(())
            }
        }
    }

    /// Checks the connection (every master in a cluster).
    pub(crate) async fn ping(&mut self) -> redis::RedisResult<()> {
        let mut cmd = redis::cmd("PING");
        cmd.arg("sb");
        match self {
            SubConn::Single(c) => cmd.query_async::<()>(c).await,
            SubConn::Cluster(c) => c
                .route_command(
                    cmd,
                    RoutingInfo::MultiNode((
                        MultipleNodeRoutingInfo::AllMasters,
                        Some(ResponsePolicy::AllSucceeded),
                    )),
                )
                .await
                .map(drop),
        }
    }
}

pub(crate) fn unavailable(e: &redis::RedisError) -> EngineError {
    EngineError::Unavailable(format!("redis: {e}"))
}

/// Runs a command with `timeout`; failures and timeouts become `Unavailable`.
pub(crate) async fn run<T>(
    timeout: Duration,
    fut: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, EngineError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(unavailable(&e)),
        Err(_) => Err(EngineError::Unavailable(format!(
            "redis: no answer within {timeout:?}"
        ))),
    }
}
