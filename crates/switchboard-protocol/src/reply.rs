//! Replies to commands: `{"id":N,"ok":{..}}` or `{"id":N,"error":{"code":..,"message":..}}`.

use bytes::Bytes;
use serde::Serialize;

use crate::push::to_bytes;
use crate::{ClientInfo, ProtocolError, Publication, StreamPosition};

#[derive(Serialize)]
struct OkReply<'a, T: Serialize> {
    id: u64,
    ok: &'a T,
}

#[derive(Serialize)]
struct ErrReply<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
    error: &'a ProtocolError,
}

/// Encodes a success reply.
pub fn encode_ok<T: Serialize>(id: u64, result: &T) -> Bytes {
    to_bytes(&OkReply { id, ok: result })
}

/// Encodes an error reply; without an id when the command's id could not be read.
pub fn encode_error(id: Option<u64>, error: &ProtocolError) -> Bytes {
    to_bytes(&ErrReply { id, error })
}

/// Result of `connect`.
#[derive(Clone, Debug, Serialize)]
pub struct ConnectResult {
    /// Session id.
    pub client: String,
    /// User id (empty for anonymous).
    pub user: String,
    /// Seconds until the token expires, if it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// Seconds between server `ping` pushes.
    pub ping_interval: u64,
}

/// Result of `subscribe`.
#[derive(Clone, Debug, Serialize)]
pub struct SubscribeResult {
    /// The channel's current position; resume from here next time.
    pub position: StreamPosition,
    /// Whether every publication after `since` is in `publications` (always true when the
    /// client did not ask to resume).
    pub recovered: bool,
    /// The publications the client missed, oldest first.
    pub publications: Vec<Publication>,
}

/// Result of `publish`.
#[derive(Clone, Debug, Serialize)]
pub struct PublishResult {
    /// Offset assigned to the publication.
    pub offset: u64,
    /// Epoch of the stream it went into.
    pub epoch: String,
}

/// Result of `history`.
#[derive(Clone, Debug, Serialize)]
pub struct HistoryResult {
    /// Publications in the requested order.
    pub publications: Vec<Publication>,
    /// The channel's current position.
    pub position: StreamPosition,
}

/// Result of `presence`.
#[derive(Clone, Debug, Serialize)]
pub struct PresenceResult {
    /// Clients currently subscribed.
    pub clients: Vec<ClientInfo>,
}

/// Result of `refresh`.
#[derive(Clone, Debug, Serialize)]
pub struct RefreshResult {
    /// Seconds until the new token expires, if it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
}

/// An empty success (`{}`), e.g. for `unsubscribe`.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Empty {}
