//! Integration tests of the Redis engine against real `redis-server` processes.

mod cluster;
mod harness;
mod hub;
mod lifetime;
mod nodes;
mod outage;
mod sink;

/// The core conformance suite, unchanged, on one shared standalone server.
mod conformance {
    switchboard_core::engine_conformance!(async { crate::harness::make_engine().await });
}
