//! Request and response bodies of the server API, with their OpenAPI schemas.

use std::fmt;

use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use switchboard_protocol::channel::MAX_CHANNEL_LEN;
use switchboard_protocol::push::JsonData;
use switchboard_protocol::{ClientInfo, ErrorCode, Publication, StreamPosition};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{Object, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::{Number, PartialSchema, ToSchema};

/// The channel grammar of `docs/protocol.md` ("Channels and permissions") as an ECMA-262
/// pattern: `[namespace:]name[#user1,user2]`.
pub const CHANNEL_PATTERN: &str =
    r"^(?:[A-Za-z0-9_-]{1,64}:)?[A-Za-z0-9_.=@/+-]+(?:#[A-Za-z0-9_.@-]+(?:,[A-Za-z0-9_.@-]+)*)?$";

/// Longest `idempotency_key`, in characters (printable ASCII, so also in bytes).
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 256;

/// Schema of a channel name. `maxLength` is the default `limits.max_channel_length`; the
/// document a node serves carries its own limit (see `api::router`).
pub struct Channel;

impl PartialSchema for Channel {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "A channel name: `[namespace:]name[#user1,user2]` (docs/protocol.md, Channels).",
            ))
            .min_length(Some(1))
            .max_length(Some(MAX_CHANNEL_LEN))
            .pattern(Some(CHANNEL_PATTERN))
            .into()
    }
}

impl ToSchema for Channel {}

/// Schema of an error: a stable `code` and a human-readable `message`.
pub struct ErrorDetail;

impl PartialSchema for ErrorDetail {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .description(Some("An error: a stable code and a message for humans."))
            .property(
                "code",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(ErrorCode::ALL.iter().map(|c| c.as_str()))),
            )
            .required("code")
            .property("message", ObjectBuilder::new().schema_type(Type::String))
            .required("message")
            .into()
    }
}

impl ToSchema for ErrorDetail {}

/// A non-negative integer as JSON Schema counts one (`type: integer` holds `7` and `7.0`
/// alike), up to `u64::MAX`.
struct JsonUint(u64);

impl<'de> Deserialize<'de> for JsonUint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = JsonUint;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative integer")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<JsonUint, E> {
                Ok(JsonUint(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<JsonUint, E> {
                u64::try_from(v)
                    .map(JsonUint)
                    .map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<JsonUint, E> {
                // 2^64: every integral f64 in [0, 2^64) converts to u64 exactly.
                const LIMIT: f64 = 18_446_744_073_709_551_616.0;
                if v.fract() == 0.0 && (0.0..LIMIT).contains(&v) {
                    Ok(JsonUint(v as u64))
                } else {
                    Err(E::invalid_value(Unexpected::Float(v), &self))
                }
            }
        }
        d.deserialize_any(V)
    }
}

fn de_offset<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    JsonUint::deserialize(d).map(|n| n.0)
}

fn de_limit<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    match Option::<JsonUint>::deserialize(d)? {
        None => Ok(None),
        Some(JsonUint(n)) => u32::try_from(n)
            .map(Some)
            .map_err(|_| de::Error::invalid_value(Unexpected::Unsigned(n), &"at most 4294967295")),
    }
}

/// `u64` as the request parser reads it: 0 to `u64::MAX` (no `format`: `int64` would cap it
/// at `i64::MAX`).
fn offset_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(Number::UInt(0)))
        .maximum(Some(Number::UInt(
            usize::try_from(u64::MAX).unwrap_or(usize::MAX),
        )))
        .description(Some("Offset of the last publication."))
        .build()
}

/// `Option<u32>`: null, or 0 to `u32::MAX`.
fn limit_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .minimum(Some(Number::UInt(0)))
        .maximum(Some(Number::UInt(u32::MAX as usize)))
        .description(Some(
            "Most publications to return (default and cap: the channel's history size).",
        ))
        .build()
}

/// A position in a channel's stream.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Position {
    /// Offset of the last publication.
    #[serde(deserialize_with = "de_offset")]
    #[schema(schema_with = offset_schema)]
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
    /// The token's `info` claim (any JSON value).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = serde_json::Value)]
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
    /// The published JSON value, embedded as stored (never parsed again).
    #[schema(value_type = serde_json::Value)]
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
    #[schema(value_type = Channel)]
    pub channel: String,
    /// Any JSON value, at most `limits.max_message_size` bytes (64 KiB) and 64 levels deep.
    #[schema(value_type = serde_json::Value)]
    pub data: Box<RawValue>,
    /// Retry-safe key: a second publish with the same key returns the first result.
    /// 1–256 printable ASCII characters.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256, pattern = r"^[\x20-\x7E]*$")]
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
    /// Channel names (1 to 1000). A name that is not a valid channel gets its own error in
    /// `results`; the other channels are still published to.
    #[schema(min_items = 1, max_items = 1000)]
    pub channels: Vec<String>,
    /// Any JSON value, at most `limits.max_message_size` bytes (64 KiB) and 64 levels deep.
    #[schema(value_type = serde_json::Value)]
    pub data: Box<RawValue>,
    /// Retry-safe key, applied per channel. 1–256 printable ASCII characters.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256, pattern = r"^[\x20-\x7E]*$")]
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
    #[schema(value_type = Option<ErrorDetail>)]
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
    #[schema(value_type = Channel)]
    pub channel: String,
    /// Publications after this position.
    #[serde(default)]
    pub since: Option<Position>,
    /// Most publications to return.
    #[serde(default, deserialize_with = "de_limit")]
    #[schema(schema_with = limit_schema)]
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
    #[schema(value_type = Channel)]
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
#[into_params(parameter_in = Query)]
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
    #[schema(min_length = 1)]
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
    #[schema(value_type = ErrorDetail)]
    pub error: switchboard_protocol::ProtocolError,
}
