//! Switchboard core: the node, its hub of channels and sessions, the engine contract and the
//! embedded memory engine.
//!
//! The core knows no HTTP framework and no Redis: transports (in `switchboard-server`) adapt
//! sockets to [`Session`]s, and engines (memory here, Redis in `switchboard-redis`) implement
//! [`Engine`].

pub mod auth;
pub mod clock;
pub mod config;
pub mod conformance;
pub mod engine;
mod housekeeper;
pub mod hub;
pub mod metrics;
pub mod node;
pub mod registry;
pub mod session;

pub use auth::{Claims, Credentials};
pub use config::{NamespaceConfig, NodeConfig};
pub use engine::memory::MemoryEngine;
pub use engine::{Engine, EngineError};
pub use node::{Node, NodeError};
pub use session::Session;
pub use session::handle::{SessionHandle, Transport};
pub use session::outbox::{EventKind, Outbound, PubItem};
