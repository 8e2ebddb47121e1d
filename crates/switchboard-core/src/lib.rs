//! Switchboard core: the node, its hub of channels and sessions, the engine contract and the
//! embedded memory engine.
//!
//! The core knows no HTTP framework and no Redis: transports (in `switchboard-server`) adapt
//! sockets to [`Session`]s, and engines (memory here, Redis in `switchboard-redis`) implement
//! [`Engine`].

pub mod auth;
pub mod capabilities;
pub mod clock;
pub mod config;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod engine;
pub mod handle;
mod housekeeper;
pub mod hub;
pub mod metrics;
pub mod node;
pub mod outbox;
pub mod registry;
pub mod session;
mod shared;

pub use auth::{Claims, Credentials};
pub use capabilities::Capabilities;
pub use config::{NamespaceConfig, NodeConfig};
pub use engine::memory::MemoryEngine;
pub use engine::{Engine, EngineError};
pub use handle::SessionHandle;
pub use node::{Node, NodeError};
pub use outbox::{EventKind, Outbound, PubItem};
pub use session::{Resumed, Session, Subscribed};
