//! The server's decoders of untrusted input, gathered for the fuzz targets (`fuzz/`) and the
//! property tests (`tests/decoders.rs`): WebSocket frames and message assembly,
//! permessage-deflate, the `/sse` and `/poll` query with its cursor, tickets. Hidden from the
//! documentation: not a stable API.

pub use crate::stream_query::StreamQuery;
pub use crate::tickets::{Tickets, random_secret, well_formed as ticket_well_formed};
pub use crate::ws::codec::{self, Frame, Opcode};
pub use crate::ws::conn::Assembler;
pub use crate::ws::deflate;
