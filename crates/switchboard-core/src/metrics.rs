//! Metric names and the few recording helpers the core uses. Labels stay low-cardinality:
//! never a channel or a user.

use metrics::{counter, gauge, histogram};

/// Publications accepted by this node (server API, in-process or client publish).
pub const PUBLICATIONS: &str = "switchboard_publications_total";
/// Publications delivered into session queues.
pub const DELIVERIES: &str = "switchboard_deliveries_total";
/// Sessions closed, by code.
pub const DISCONNECTS: &str = "switchboard_disconnects_total";
/// Sessions connected, by transport.
pub const SESSIONS: &str = "switchboard_sessions";
/// Subscriptions held on this node.
pub const SUBSCRIPTIONS: &str = "switchboard_subscriptions";
/// Channels with local subscribers.
pub const CHANNELS: &str = "switchboard_channels";
/// Command handling time, by op.
pub const COMMAND_SECONDS: &str = "switchboard_command_duration_seconds";
/// Engine call failures, by operation.
pub const ENGINE_ERRORS: &str = "switchboard_engine_errors_total";
/// Gaps detected in a channel's stream, and how they ended.
pub const GAPS: &str = "switchboard_stream_gaps_total";

pub(crate) fn slow_consumer() {
    counter!(DISCONNECTS, "code" => "4002").increment(1);
}

pub(crate) fn delivered(n: usize) {
    counter!(DELIVERIES).increment(n as u64);
}

pub(crate) fn published() {
    counter!(PUBLICATIONS).increment(1);
}

pub(crate) fn disconnect(code: u16) {
    if code != 4002 {
        counter!(DISCONNECTS, "code" => code.to_string()).increment(1);
    }
}

pub(crate) fn session_gauge(transport: &'static str, delta: f64) {
    gauge!(SESSIONS, "transport" => transport).increment(delta);
}

pub(crate) fn subscriptions(delta: f64) {
    gauge!(SUBSCRIPTIONS).increment(delta);
}

pub(crate) fn channels(delta: f64) {
    gauge!(CHANNELS).increment(delta);
}

pub(crate) fn command(op: &'static str, seconds: f64) {
    histogram!(COMMAND_SECONDS, "op" => op).record(seconds);
}

pub(crate) fn engine_error(op: &'static str) {
    counter!(ENGINE_ERRORS, "op" => op).increment(1);
}

pub(crate) fn gap(outcome: &'static str) {
    counter!(GAPS, "outcome" => outcome).increment(1);
}
