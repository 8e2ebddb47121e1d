//! Prometheus metrics: one recorder per process, rendered at `/metrics`.
//!
//! The core records sessions, subscriptions, channels, publications, deliveries, disconnects,
//! command latency and gaps (`switchboard_core::metrics`). This module adds the HTTP layer's
//! own (connections, rejections, slowloris timeouts, TLS handshakes, request latency), engine
//! latency through [`Instrumented`], and outbound queue bytes measured at scrape time. Labels
//! stay low-cardinality: never a channel, a user or a raw path.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use switchboard_core::engine::{
    Control, EventSink, HistoryPage, HistoryQuery, NodeInfo, PublishOptions, PublishOutcome,
};
use switchboard_core::{Engine, EngineError};
use switchboard_protocol::ClientInfo;

/// TCP (or TLS) connections open on the listener, WebSocket ones included.
pub const CONNECTIONS_OPEN: &str = "switchboard_connections_open";
/// WebSocket/SSE handshakes refused by a connection limit, by limit (`total`, `ip`, `user`).
pub const CONNECTIONS_REJECTED: &str = "switchboard_connections_rejected_total";
/// Connections closed because no complete request head arrived within `header_timeout`
/// (slowloris, or an idle keep-alive connection).
pub const HEADER_TIMEOUTS: &str = "switchboard_header_timeouts_total";
/// Failed TLS handshakes, by reason (`error`, `timeout`).
pub const TLS_HANDSHAKE_FAILURES: &str = "switchboard_tls_handshake_failures_total";
/// HTTP responses, by route (the matched route pattern) and status.
pub const HTTP_RESPONSES: &str = "switchboard_http_responses_total";
/// Time to produce an HTTP response head, by route.
pub const HTTP_SECONDS: &str = "switchboard_http_request_duration_seconds";
/// Engine call latency, by operation.
pub const ENGINE_SECONDS: &str = "switchboard_engine_duration_seconds";
/// Engine calls that failed (backend unavailable), by operation.
pub const ENGINE_FAILURES: &str = "switchboard_engine_failures_total";
/// WebSocket handshakes accepted, by HTTP version (`1.1`: Upgrade, `2`: extended CONNECT) and
/// compression (`deflate`, `none`).
pub const WS_HANDSHAKES: &str = "switchboard_websocket_handshakes_total";
/// Bytes waiting in every session's outbound queue, measured at scrape time.
pub const QUEUE_BYTES: &str = "switchboard_outbound_queue_bytes";
/// The largest single session queue, measured at scrape time.
pub const QUEUE_BYTES_MAX: &str = "switchboard_outbound_queue_bytes_max";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder once (later calls are no-ops; another recorder installed by the
/// embedding application wins and `/metrics` then renders nothing).
pub fn install() {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("_seconds".into()),
                &[
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    0.5, 1.0, 2.5, 5.0, 30.0,
                ],
            )
            .ok()?;
        let handle = builder.install_recorder().ok()?;
        describe();
        let upkeep = handle.clone();
        // Without the exporter's own listener, histograms must be drained periodically.
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                upkeep.run_upkeep();
            }
        });
        Some(handle)
    });
}

/// Help texts, and zero values for the counters that alerts watch, so that they exist before
/// the first event (an absent series cannot be told from a broken scrape).
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    use switchboard_core::metrics as core;
    describe_gauge!(core::SESSIONS, "Sessions connected, by transport.");
    describe_gauge!(core::SUBSCRIPTIONS, "Subscriptions held on this node.");
    describe_gauge!(core::CHANNELS, "Channels with local subscribers.");
    describe_counter!(core::PUBLICATIONS, "Publications accepted by this node.");
    describe_counter!(core::DELIVERIES, "Publications queued to sessions.");
    describe_counter!(
        core::DISCONNECTS,
        "Sessions closed by the server, by close code."
    );
    describe_histogram!(
        core::COMMAND_SECONDS,
        "Client command handling time, by op."
    );
    describe_counter!(
        core::ENGINE_ERRORS,
        "Engine failures seen by the node, by operation."
    );
    describe_counter!(core::GAPS, "Stream gaps detected, by outcome.");
    describe_gauge!(
        CONNECTIONS_OPEN,
        "TCP/TLS connections open, WebSocket included."
    );
    describe_counter!(
        CONNECTIONS_REJECTED,
        "Handshakes refused by a connection limit."
    );
    describe_counter!(
        HEADER_TIMEOUTS,
        "Connections closed for not sending a request head in time."
    );
    describe_counter!(TLS_HANDSHAKE_FAILURES, "Failed TLS handshakes.");
    describe_counter!(HTTP_RESPONSES, "HTTP responses, by route and status.");
    describe_counter!(
        WS_HANDSHAKES,
        "WebSocket handshakes accepted, by HTTP version and compression."
    );
    describe_histogram!(
        HTTP_SECONDS,
        "Time to produce an HTTP response head, by route."
    );
    describe_histogram!(ENGINE_SECONDS, "Engine call latency, by operation.");
    describe_counter!(ENGINE_FAILURES, "Engine calls that failed, by operation.");
    describe_gauge!(QUEUE_BYTES, "Bytes waiting in session outbound queues.");
    describe_gauge!(
        QUEUE_BYTES_MAX,
        "The largest session outbound queue, bytes."
    );
    for code in ["4000", "4001", "4002", "4004", "4005"] {
        counter!(core::DISCONNECTS, "code" => code).increment(0);
    }
    for op in ["publish", "history", "subscribe"] {
        counter!(ENGINE_FAILURES, "op" => op).increment(0);
        counter!(core::ENGINE_ERRORS, "op" => op).increment(0);
    }
    for limit in ["total", "ip", "user"] {
        counter!(CONNECTIONS_REJECTED, "limit" => limit).increment(0);
    }
    counter!(HEADER_TIMEOUTS).increment(0);
    counter!(core::PUBLICATIONS).increment(0);
    counter!(core::DELIVERIES).increment(0);
}

/// The Prometheus text of every metric, after refreshing the queue gauges from `registry`.
pub fn render(registry: &switchboard_core::registry::Registry) -> String {
    let (mut total, mut max) = (0usize, 0usize);
    registry.for_each(|s| {
        let b = s.outbox.queued_bytes();
        total += b;
        max = max.max(b);
    });
    gauge!(QUEUE_BYTES).set(total as f64);
    gauge!(QUEUE_BYTES_MAX).set(max as f64);
    HANDLE
        .get()
        .and_then(|h| h.as_ref())
        .map(PrometheusHandle::render)
        .unwrap_or_default()
}

/// The process's running totals of publications accepted and deliveries queued, read back
/// from this recorder (the admin console turns them into rates); `None` when the embedding
/// application installed a recorder of its own.
pub fn totals() -> Option<(u64, u64)> {
    use switchboard_core::metrics as core;
    let text = HANDLE.get()?.as_ref()?.render();
    Some((
        sum_of(&text, core::PUBLICATIONS),
        sum_of(&text, core::DELIVERIES),
    ))
}

/// The sum of every series of the metric `name` in Prometheus text.
fn sum_of(text: &str, name: &str) -> u64 {
    let total: f64 = text
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            if !(rest.starts_with(' ') || rest.starts_with('{')) {
                return None;
            }
            rest.rsplit(' ').next()?.parse::<f64>().ok()
        })
        .sum();
    total as u64
}

/// Counts an open connection for as long as it lives.
pub(crate) struct ConnectionOpen;

impl ConnectionOpen {
    pub(crate) fn new() -> Self {
        gauge!(CONNECTIONS_OPEN).increment(1.0);
        Self
    }
}

impl Drop for ConnectionOpen {
    fn drop(&mut self) {
        gauge!(CONNECTIONS_OPEN).decrement(1.0);
    }
}

pub(crate) fn ws_handshake(http2: bool, deflate: bool) {
    let http = if http2 { "2" } else { "1.1" };
    let compression = if deflate { "deflate" } else { "none" };
    counter!(WS_HANDSHAKES, "http" => http, "compression" => compression).increment(1);
}

pub(crate) fn rejected(limit: &'static str) {
    counter!(CONNECTIONS_REJECTED, "limit" => limit).increment(1);
}

pub(crate) fn header_timeout() {
    counter!(HEADER_TIMEOUTS).increment(1);
}

pub(crate) fn tls_handshake_failed(reason: &'static str) {
    counter!(TLS_HANDSHAKE_FAILURES, "reason" => reason).increment(1);
}

pub(crate) fn http_response(route: String, status: u16, seconds: f64) {
    histogram!(HTTP_SECONDS, "route" => route.clone()).record(seconds);
    counter!(HTTP_RESPONSES, "route" => route, "status" => status.to_string()).increment(1);
}

/// An [`Engine`] that records the latency of every call and counts failures.
/// [`crate::Switchboard::start`] wraps the engine it builds; an application that starts its own
/// [`switchboard_core::Node`] can wrap its engine the same way.
pub struct Instrumented(pub Arc<dyn Engine>);

impl Instrumented {
    /// Wraps `engine`.
    pub fn wrap(engine: Arc<dyn Engine>) -> Arc<dyn Engine> {
        Arc::new(Self(engine))
    }
}

async fn timed<T>(
    op: &'static str,
    f: impl Future<Output = Result<T, EngineError>>,
) -> Result<T, EngineError> {
    let started = Instant::now();
    let r = f.await;
    histogram!(ENGINE_SECONDS, "op" => op).record(started.elapsed().as_secs_f64());
    if let Err(EngineError::Unavailable(_)) = &r {
        counter!(ENGINE_FAILURES, "op" => op).increment(1);
    }
    r
}

#[async_trait]
impl Engine for Instrumented {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    async fn start(&self, sink: Arc<dyn EventSink>) -> Result<(), EngineError> {
        timed("start", self.0.start(sink)).await
    }

    async fn publish(
        &self,
        channel: &str,
        data: Bytes,
        opts: &PublishOptions,
    ) -> Result<PublishOutcome, EngineError> {
        timed("publish", self.0.publish(channel, data, opts)).await
    }

    async fn history(
        &self,
        channel: &str,
        query: &HistoryQuery,
    ) -> Result<HistoryPage, EngineError> {
        timed("history", self.0.history(channel, query)).await
    }

    async fn subscribe(&self, channel: &str) -> Result<(), EngineError> {
        timed("subscribe", self.0.subscribe(channel)).await
    }

    async fn unsubscribe(&self, channel: &str) -> Result<(), EngineError> {
        timed("unsubscribe", self.0.unsubscribe(channel)).await
    }

    async fn publish_join_leave(
        &self,
        channel: &str,
        join: bool,
        client: &ClientInfo,
    ) -> Result<(), EngineError> {
        timed(
            "join_leave",
            self.0.publish_join_leave(channel, join, client),
        )
        .await
    }

    async fn presence_add(
        &self,
        channel: &str,
        clients: &[ClientInfo],
        ttl: Duration,
    ) -> Result<(), EngineError> {
        timed("presence_add", self.0.presence_add(channel, clients, ttl)).await
    }

    async fn presence_remove(&self, channel: &str, client: &str) -> Result<(), EngineError> {
        timed("presence_remove", self.0.presence_remove(channel, client)).await
    }

    async fn presence(&self, channel: &str) -> Result<Vec<ClientInfo>, EngineError> {
        timed("presence", self.0.presence(channel)).await
    }

    async fn publish_control(&self, control: &Control) -> Result<(), EngineError> {
        timed("control", self.0.publish_control(control)).await
    }

    async fn nodes(&self, me: &NodeInfo) -> Result<Vec<NodeInfo>, EngineError> {
        timed("nodes", self.0.nodes(me)).await
    }

    async fn ready(&self) -> bool {
        self.0.ready().await
    }

    async fn put_once(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), EngineError> {
        timed("put_once", self.0.put_once(key, value, ttl)).await
    }

    async fn take_once(&self, key: &str) -> Result<Option<Bytes>, EngineError> {
        timed("take_once", self.0.take_once(key)).await
    }
}
