//! Request and response bodies of the server API, with their OpenAPI schemas.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use switchboard_protocol::push::JsonData;
use switchboard_protocol::{ClientInfo, Publication, StreamPosition};
use utoipa::ToSchema;

/// A position in a channel's stream.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Position {
    /// Offset of the last publication.
    pub offset: u64,
    /// Stream incarnation.
    pub epoch: String,
}

impl From<StreamPosition> for Position {
    fn from(p: StreamPosition) -> Self {
        Self {
            offset: p.offset,
            epoch: p.epoch,
        }
    }
}

impl From<Position> for StreamPosition {
    fn from(p: Position) -> Self {
        Self {
            offset: p.offset,
            epoch: p.epoch,
        }
    }
}

/// A client as seen in presence.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Client {
    /// Session id.
    pub client: String,
    /// User id.
    pub user: String,
    /// The token's `info` claim.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub info: Option<serde_json::Value>,
}

impl From<ClientInfo> for Client {
    fn from(c: ClientInfo) -> Self {
        Self {
            client: c.client,
            user: c.user,
            info: c.info,
        }
    }
}

/// A publication from history.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiPublication {
    /// Offset in the channel.
    pub offset: u64,
    /// The published JSON, embedded as stored (never parsed again).
    #[schema(value_type = Object)]
    pub data: JsonData,
    /// The publishing client, if a client published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<Client>,
}

impl From<Publication> for ApiPublication {
    fn from(p: Publication) -> Self {
        Self {
            offset: p.offset,
            data: JsonData(p.data),
            info: p.info.map(Client::from),
        }
    }
}

/// `POST /api/publish`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// Channel name.
    pub channel: String,
    /// Any JSON value.
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
    /// Retry-safe key: a second publish with the same key returns the first result.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// Result of a publish.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublishResponse {
    /// Offset assigned.
    pub offset: u64,
    /// Epoch of the stream.
    pub epoch: String,
}

/// `POST /api/broadcast`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BroadcastRequest {
    /// Channel names (at most 1000).
    pub channels: Vec<String>,
    /// Any JSON value.
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
    /// Retry-safe key, applied per channel.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// One channel's broadcast result.
#[derive(Debug, Serialize, ToSchema)]
pub struct BroadcastResult {
    /// Channel.
    pub channel: String,
    /// Offset, when published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Epoch, when published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
    /// Error, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub error: Option<switchboard_protocol::ProtocolError>,
}

/// Result of a broadcast.
#[derive(Debug, Serialize, ToSchema)]
pub struct BroadcastResponse {
    /// Per channel, in request order.
    pub results: Vec<BroadcastResult>,
}

/// `POST /api/history`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryRequest {
    /// Channel.
    pub channel: String,
    /// Publications after this position.
    #[serde(default)]
    pub since: Option<Position>,
    /// Most publications to return.
    #[serde(default)]
    pub limit: Option<u32>,
    /// Newest first.
    #[serde(default)]
    pub reverse: bool,
}

/// Result of a history read.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryResponse {
    /// Publications.
    pub publications: Vec<ApiPublication>,
    /// Current position.
    pub position: Position,
}

/// `POST /api/presence`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PresenceRequest {
    /// Channel.
    pub channel: String,
}

/// Result of a presence query.
#[derive(Debug, Serialize, ToSchema)]
pub struct PresenceResponse {
    /// Present clients.
    pub clients: Vec<Client>,
}

/// Query of `GET /api/channels`.
#[derive(Debug, Deserialize, ToSchema, utoipa::IntoParams)]
pub struct ChannelsQuery {
    /// Only channels matching this pattern (`*` wildcard).
    pub pattern: Option<String>,
}

/// An active channel.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelInfo {
    /// Name.
    pub channel: String,
    /// Local subscribers.
    pub subscribers: usize,
}

/// Result of `GET /api/channels`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelsResponse {
    /// Channels with subscribers on this node.
    pub channels: Vec<ChannelInfo>,
}

/// `POST /api/disconnect`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisconnectRequest {
    /// User id whose sessions to close.
    pub user: String,
    /// Ask the sessions to reconnect (4006) instead of staying away (4503).
    #[serde(default)]
    pub reconnect: bool,
}

/// Result of a disconnect.
#[derive(Debug, Serialize, ToSchema)]
pub struct DisconnectResponse {
    /// Sessions closed on this node (other nodes close theirs too).
    pub disconnected: usize,
}

/// A node of the cluster.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeSummary {
    /// Name.
    pub name: String,
    /// Sessions.
    pub sessions: u64,
    /// Uptime.
    pub uptime_secs: u64,
}

/// Result of `GET /api/info`.
#[derive(Debug, Serialize, ToSchema)]
pub struct InfoResponse {
    /// This node's name.
    pub node: String,
    /// Switchboard version.
    pub version: String,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// Sessions connected to this node.
    pub sessions: usize,
    /// Engine name.
    pub engine: String,
    /// Live nodes.
    pub nodes: Vec<NodeSummary>,
}

/// An error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    #[schema(value_type = Object)]
    pub error: switchboard_protocol::ProtocolError,
}
