//! `switchboard-chaos`: a chaos checker that proves "nothing lost" under faults.
//!
//! A run starts its own `redis-server` and three `switchboard` nodes on it, puts an
//! in-process TCP proxy in front of each node, and runs WebSocket, SSE and long-poll
//! subscribers that reconnect with backoff to random nodes and resume from their last position,
//! and publishers that publish through random nodes with idempotency keys and retry on error.
//! A nemesis injects faults one at a time (`kill -9` and restart of a node, drain, SIGSTOP,
//! Redis restarts with and without data, abrupt connection cuts). Every acknowledgement and
//! every delivery goes to the [`checker`], which reports per transport what was lost,
//! duplicated, reordered or unexpected, the discontinuities announced and how fast, and
//! latency in calm periods. See `docs/benchmarks.md` ("Chaos checker") for how to run it.
//!
//! Modules, one concern each: [`procs`] (processes), [`proxy`], [`nemesis`], [`ws`], [`sse`],
//! [`poll`] and [`subscribers`] (the clients), [`publishers`], [`checker`] (pure, unit-tested),
//! [`report`], [`run`] (the whole run).

pub mod checker;
pub mod ctx;
pub mod nemesis;
pub mod options;
pub mod poll;
pub mod procs;
pub mod proxy;
pub mod publishers;
pub mod ranges;
pub mod report;
pub mod run;
pub mod sse;
pub mod subscribers;
pub mod ws;

pub use options::Options;
pub use report::Report;
pub use run::run;
