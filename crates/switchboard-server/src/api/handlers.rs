//! Handlers of the server API.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use bytes::Bytes;

use super::types::*;
use crate::error::ApiError;
use crate::state::AppState;

type ApiResult<T> = Result<Json<T>, ApiError>;

fn body<T>(r: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    r.map(|Json(v)| v).map_err(ApiError::from)
}

/// An `idempotency_key` is 1–256 printable ASCII characters, as the OpenAPI document says (a
/// length in characters is then also one in bytes, which is what the node stores).
fn check_idempotency_key(key: Option<&str>) -> Result<(), ApiError> {
    match key {
        Some(k)
            if k.is_empty()
                || k.len() > MAX_IDEMPOTENCY_KEY_LEN
                || !k.bytes().all(|b| (0x20..=0x7e).contains(&b)) =>
        {
            Err(ApiError::bad_request(
                "idempotency_key must be 1–256 printable ASCII characters",
            ))
        }
        _ => Ok(()),
    }
}

/// Publish to a channel.
#[utoipa::path(post, path = "/api/publish", request_body = PublishRequest,
    responses((status = 200, description = "Published (or the first result of this idempotency key)", body = PublishResponse),
        (status = 503, description = "The engine failed; retrying may help", body = ErrorBody)))]
pub async fn publish(
    State(app): State<AppState>,
    req: Result<Json<PublishRequest>, JsonRejection>,
) -> ApiResult<PublishResponse> {
    let req = body(req)?;
    check_idempotency_key(req.idempotency_key.as_deref())?;
    let data = Bytes::from(req.data.get().to_owned());
    let r = app
        .node
        .publish(&req.channel, data, req.idempotency_key)
        .await?;
    Ok(Json(PublishResponse {
        offset: r.offset,
        epoch: r.epoch,
    }))
}

/// Publish the same data to several channels.
#[utoipa::path(post, path = "/api/broadcast", request_body = BroadcastRequest,
    responses((status = 200, description = "One result per channel, in request order", body = BroadcastResponse)))]
pub async fn broadcast(
    State(app): State<AppState>,
    req: Result<Json<BroadcastRequest>, JsonRejection>,
) -> ApiResult<BroadcastResponse> {
    let req = body(req)?;
    if req.channels.is_empty() || req.channels.len() > 1000 {
        return Err(ApiError::bad_request("channels must hold 1 to 1000 names"));
    }
    check_idempotency_key(req.idempotency_key.as_deref())?;
    let data = Bytes::from(req.data.get().to_owned());
    let mut results = Vec::with_capacity(req.channels.len());
    for channel in req.channels {
        let r = app
            .node
            .publish(&channel, data.clone(), req.idempotency_key.clone())
            .await;
        results.push(match r {
            Ok(p) => BroadcastResult {
                channel,
                offset: Some(p.offset),
                epoch: Some(p.epoch),
                error: None,
            },
            Err(e) => BroadcastResult {
                channel,
                offset: None,
                epoch: None,
                error: Some(e),
            },
        });
    }
    Ok(Json(BroadcastResponse { results }))
}

/// Read a channel's history.
#[utoipa::path(post, path = "/api/history", request_body = HistoryRequest,
    responses((status = 200, description = "Publications and the current position", body = HistoryResponse),
        (status = 409, description = "`unrecoverable_position`: history cannot serve `since`", body = ErrorBody),
        (status = 503, description = "The engine failed; retrying may help", body = ErrorBody)))]
pub async fn history(
    State(app): State<AppState>,
    req: Result<Json<HistoryRequest>, JsonRejection>,
) -> ApiResult<HistoryResponse> {
    let req = body(req)?;
    let r = app
        .node
        .history(
            &req.channel,
            req.since.map(Into::into),
            req.limit,
            req.reverse,
        )
        .await?;
    Ok(Json(HistoryResponse {
        publications: r
            .publications
            .into_iter()
            .map(ApiPublication::from)
            .collect(),
        position: r.position.into(),
    }))
}

/// List clients present in a channel.
#[utoipa::path(post, path = "/api/presence", request_body = PresenceRequest,
    responses((status = 200, description = "Present clients", body = PresenceResponse),
        (status = 503, description = "The engine failed; retrying may help", body = ErrorBody)))]
pub async fn presence(
    State(app): State<AppState>,
    req: Result<Json<PresenceRequest>, JsonRejection>,
) -> ApiResult<PresenceResponse> {
    let req = body(req)?;
    let clients = app.node.presence(&req.channel).await?;
    Ok(Json(PresenceResponse {
        clients: clients.into_iter().map(Client::from).collect(),
    }))
}

/// This node's active channels with subscriber counts.
#[utoipa::path(get, path = "/api/channels", params(ChannelsQuery),
    responses((status = 200, description = "Active channels", body = ChannelsResponse),
        (status = 400, description = "`bad_request`: the query string cannot be read", body = ErrorBody)))]
pub async fn channels(
    State(app): State<AppState>,
    q: Result<Query<ChannelsQuery>, QueryRejection>,
) -> ApiResult<ChannelsResponse> {
    let Query(q) = q?;
    let channels = app
        .node
        .channels(q.pattern.as_deref())
        .into_iter()
        .map(|(channel, subscribers)| ChannelInfo {
            channel,
            subscribers,
        })
        .collect();
    Ok(Json(ChannelsResponse { channels }))
}

/// Disconnect every session of a user, on every node.
#[utoipa::path(post, path = "/api/disconnect", request_body = DisconnectRequest,
    responses((status = 200, description = "Sessions closed on this node", body = DisconnectResponse),
        (status = 503, description = "The engine failed; retrying may help", body = ErrorBody)))]
pub async fn disconnect(
    State(app): State<AppState>,
    req: Result<Json<DisconnectRequest>, JsonRejection>,
) -> ApiResult<DisconnectResponse> {
    let req = body(req)?;
    if req.user.is_empty() {
        return Err(ApiError::bad_request("user must not be empty"));
    }
    let disconnected = app.node.disconnect_user(&req.user, req.reconnect).await?;
    Ok(Json(DisconnectResponse { disconnected }))
}

/// Node information.
#[utoipa::path(get, path = "/api/info",
    responses((status = 200, description = "This node and the live nodes", body = InfoResponse)))]
pub async fn info(State(app): State<AppState>) -> ApiResult<InfoResponse> {
    let node = &app.node;
    Ok(Json(InfoResponse {
        node: node.name().to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_secs: node.uptime_secs(),
        sessions: node.registry().len(),
        engine: node.engine().name().to_owned(),
        nodes: node
            .nodes()
            .into_iter()
            .map(|n| NodeSummary {
                name: n.name,
                sessions: n.sessions,
                uptime_secs: n.uptime_secs,
            })
            .collect(),
    }))
}
