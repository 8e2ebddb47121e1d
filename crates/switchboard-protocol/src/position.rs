//! Stream positions: where a client stands in a channel's history.

use serde::{Deserialize, Serialize};

/// A position in a channel's stream.
///
/// `offset` grows by one per publication. `epoch` names the stream's incarnation: when it
/// changes, offsets from the old epoch say nothing about the new stream (history may have been
/// lost), so a client presenting an old epoch cannot be resumed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StreamPosition {
    /// Offset of the last publication seen (0 = none yet).
    pub offset: u64,
    /// Incarnation of the stream.
    pub epoch: String,
}

impl StreamPosition {
    /// Creates a position.
    pub fn new(offset: u64, epoch: impl Into<String>) -> Self {
        Self {
            offset,
            epoch: epoch.into(),
        }
    }
}
