//! Switchboard wire protocol: the JSON shapes clients and servers exchange, channel names,
//! stream positions, resume cursors and disconnect codes.
//!
//! This crate does no IO and knows no runtime: it turns bytes into typed commands and typed
//! replies into bytes. Transports (WebSocket, SSE, poll) and the core build on it.

pub mod channel;
pub mod command;
pub mod cursor;
pub mod depth;
pub mod disconnect;
pub mod error;
pub mod position;
pub mod push;
pub mod reply;

pub use channel::{ChannelError, ChannelName};
pub use command::{Command, CommandError, Op, decode_frame};
pub use cursor::{Cursor, CursorError};
pub use depth::MAX_DATA_DEPTH;
pub use disconnect::Disconnect;
pub use error::{ErrorCode, ProtocolError};
pub use position::StreamPosition;
pub use push::{ClientInfo, Publication};
