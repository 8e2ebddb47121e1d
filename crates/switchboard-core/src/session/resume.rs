//! Resume from a cursor: the one operation behind SSE's `Last-Event-ID`, poll's `since` and a
//! stream opened without a position. (A WebSocket `subscribe` with `since` is the same
//! subscription, one channel at a time.)

use switchboard_protocol::{Cursor, ProtocolError};

use super::Session;

/// Result of [`Session::resume`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resumed {
    /// Where the stream stands: for a channel that was recovered, the position the client
    /// presented (the queued publications advance it); otherwise the channel's current one.
    pub cursor: Cursor,
    /// Channels whose position could not be recovered: the client must reload their state.
    pub reset: Vec<String>,
}

impl Session {
    /// Subscribes to every channel in order, each from its position in `cursor` (if any).
    /// Recovered publications are queued as publications, followed by live ones.
    ///
    /// # Errors
    /// The first channel's error (invalid name, permission, engine); the channels subscribed
    /// before it stay subscribed until the session is dropped or closed.
    pub async fn resume(
        &mut self,
        channels: &[String],
        cursor: Option<&Cursor>,
    ) -> Result<Resumed, ProtocolError> {
        let mut out = Resumed::default();
        for ch in channels {
            let since = cursor.and_then(|c| c.get(ch)).cloned();
            let r = self.subscribe_stream(ch, since.clone()).await?;
            match since {
                // Recovered: the queued publications will advance the cursor from `since`.
                Some(s) if r.recovered => out.cursor.set(ch, s),
                Some(_) => {
                    out.reset.push(ch.clone());
                    out.cursor.set(ch, r.position);
                }
                None => out.cursor.set(ch, r.position),
            }
        }
        Ok(out)
    }
}
