//! The console's JSON endpoints under `/admin/api`. They reuse the node's server-side
//! operations (the same ones as the server API), behind the login cookie instead of the API key.

use std::collections::{BTreeMap, HashMap};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::{Extension, Json};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_core::Credentials;

use super::auth::Login;
use super::stats::{self, Snapshot};
use super::{AdminApp, NAMESPACE};
use crate::api::types::{ApiPublication, ChannelInfo, PublishRequest, PublishResponse};
use crate::error::ApiError;

type Reply = Result<Json<Value>, ApiError>;

/// Channels one ticket may grant (the console tails one at a time).
const MAX_TICKET_CHANNELS: usize = 16;
/// Channels listed at most; the search narrows the rest.
const MAX_CHANNELS: usize = 1000;
/// Sessions listed at most for one user.
const MAX_SESSIONS_LISTED: usize = 1000;
/// Stats snapshots read back to find each node's latest.
const NODES_LOOKBACK: u32 = 200;

fn body<T>(r: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    r.map(|Json(v)| v).map_err(ApiError::from)
}

/// A channel the console may act on: valid, and not one of the console's own.
fn operator_channel(app: &AdminApp, channel: &str) -> Result<(), ApiError> {
    let parsed = app.app.node.channel(channel)?;
    if parsed.namespace() == NAMESPACE {
        return Err(ApiError::forbidden(
            "the console's own channels are internal",
        ));
    }
    Ok(())
}

/// `GET /admin/api/session`: the login and what the page needs to connect.
pub async fn session(State(s): State<AdminApp>, Extension(login): Extension<Login>) -> Reply {
    let node = &s.app.node;
    Ok(Json(json!({
        "csrf": login.csrf,
        "expires_in": login.expires_in(),
        "node": node.name(),
        "version": stats::VERSION,
        "engine": node.engine().name(),
        "stats_channel": s.admin.channel,
        "user": s.admin.user,
    })))
}

/// `GET /admin/api/nodes`: the live nodes (as announced through the engine) with their latest
/// stats snapshot (transports, version), this node first.
pub async fn nodes(State(s): State<AdminApp>) -> Reply {
    let node = &s.app.node;
    let mut latest: HashMap<String, Snapshot> = HashMap::new();
    // Newest first: the first snapshot seen of each node is its latest. History may be
    // unavailable for a moment (engine down); the announcements still list the nodes.
    if let Ok(h) = node
        .history(&s.admin.channel, None, Some(NODES_LOOKBACK), true)
        .await
    {
        for p in h.publications {
            if let Ok(snap) = serde_json::from_slice::<Snapshot>(&p.data) {
                latest.entry(snap.node.clone()).or_insert(snap);
            }
        }
    }
    let here = stats::snapshot(node, 0.0, 0.0);
    let mut rows: BTreeMap<String, Value> = BTreeMap::new();
    for n in node.nodes() {
        let snap = latest.remove(&n.name);
        rows.insert(
            n.name.clone(),
            json!({
                "name": n.name,
                "sessions": n.sessions,
                "uptime_secs": n.uptime_secs,
                "version": snap.as_ref().map(|s| s.version.clone()),
                "transports": snap.as_ref().map(|s| s.transports.clone()),
                "this": false,
            }),
        );
    }
    // Nodes that published stats lately but whose announcement is not in yet.
    for (name, snap) in latest {
        rows.entry(name).or_insert_with(|| {
            json!({
                "name": snap.node,
                "sessions": snap.sessions,
                "uptime_secs": snap.uptime_secs,
                "version": snap.version,
                "transports": snap.transports,
                "this": false,
            })
        });
    }
    rows.insert(
        here.node.clone(),
        json!({
            "name": here.node,
            "sessions": here.sessions,
            "uptime_secs": here.uptime_secs,
            "version": here.version,
            "transports": here.transports,
            "this": true,
        }),
    );
    let mut nodes: Vec<Value> = rows.into_values().collect();
    nodes.sort_by_key(|n| !n["this"].as_bool().unwrap_or(false));
    Ok(Json(json!({
        "this": node.name(),
        "engine": node.engine().name(),
        "nodes": nodes,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelsQuery {
    /// Case-insensitive part of the name.
    #[serde(default)]
    q: String,
    limit: Option<usize>,
}

/// `GET /admin/api/channels?q=chat&limit=100`: this node's active channels with local
/// subscriber counts, most subscribed first; `total` counts every match.
pub async fn channels(
    State(s): State<AdminApp>,
    q: Result<Query<ChannelsQuery>, QueryRejection>,
) -> Reply {
    let Query(q) = q?;
    let needle = q.q.trim().to_lowercase();
    let internal = format!("{NAMESPACE}:");
    let mut found: Vec<(String, usize)> = s
        .app
        .node
        .channels(None)
        .into_iter()
        .filter(|(c, _)| !c.starts_with(&internal))
        .filter(|(c, _)| needle.is_empty() || c.to_lowercase().contains(&needle))
        .collect();
    let total = found.len();
    found.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    found.truncate(q.limit.unwrap_or(100).min(MAX_CHANNELS));
    let channels: Vec<ChannelInfo> = found
        .into_iter()
        .map(|(channel, subscribers)| ChannelInfo {
            channel,
            subscribers,
        })
        .collect();
    Ok(Json(json!({"channels": channels, "total": total})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    channel: String,
    limit: Option<u32>,
}

/// `GET /admin/api/history?channel=chat:lobby&limit=50`: the latest publications, oldest
/// first, and the channel's position.
pub async fn history(
    State(s): State<AdminApp>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> Reply {
    let Query(q) = q?;
    operator_channel(&s, &q.channel)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let h = s
        .app
        .node
        .history(&q.channel, None, Some(limit), true)
        .await?;
    let mut publications: Vec<ApiPublication> = h
        .publications
        .into_iter()
        .map(ApiPublication::from)
        .collect();
    publications.reverse();
    Ok(Json(json!({
        "channel": q.channel,
        "publications": publications,
        "position": {"offset": h.position.offset, "epoch": h.position.epoch},
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsQuery {
    user: String,
}

/// `GET /admin/api/sessions?user=42`: the user's sessions on this node.
pub async fn sessions(
    State(s): State<AdminApp>,
    q: Result<Query<SessionsQuery>, QueryRejection>,
) -> Reply {
    let Query(q) = q?;
    if q.user.is_empty() || q.user.len() > 256 {
        return Err(ApiError::bad_request("user must be 1–256 bytes"));
    }
    let mut list = Vec::new();
    s.app.node.registry().for_each(|h| {
        if list.len() < MAX_SESSIONS_LISTED {
            let info = h.info();
            if info.user == q.user {
                list.push(json!({
                    "client": info.client,
                    "transport": h.caps.label,
                    "info": info.info,
                }));
            }
        }
    });
    Ok(Json(json!({
        "user": q.user,
        "node": s.app.node.name(),
        "sessions": list,
    })))
}

/// `POST /admin/api/publish` `{channel, data}`: publishes as the server.
pub async fn publish(
    State(s): State<AdminApp>,
    req: Result<Json<PublishRequest>, JsonRejection>,
) -> Result<Json<PublishResponse>, ApiError> {
    let req = body(req)?;
    operator_channel(&s, &req.channel)?;
    let data = Bytes::from(req.data.get().to_owned());
    let r = s.app.node.publish(&req.channel, data, None).await?;
    tracing::info!(channel = %req.channel, offset = r.offset, "admin console published");
    Ok(Json(PublishResponse {
        offset: r.offset,
        epoch: r.epoch,
    }))
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisconnectRequest {
    user: String,
    /// Let the sessions reconnect (4006, the default) or not (4503).
    #[serde(default = "yes")]
    reconnect: bool,
}

/// `POST /admin/api/disconnect` `{user, reconnect}`: closes the user's sessions on every node.
pub async fn disconnect(
    State(s): State<AdminApp>,
    req: Result<Json<DisconnectRequest>, JsonRejection>,
) -> Reply {
    let req = body(req)?;
    if req.user.is_empty() || req.user.len() > 256 {
        return Err(ApiError::bad_request("user must be 1–256 bytes"));
    }
    let n = s.app.node.disconnect_user(&req.user, req.reconnect).await?;
    tracing::info!(user = %req.user, reconnect = req.reconnect, "admin console disconnected a user");
    Ok(Json(json!({"disconnected": n})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketRequest {
    /// Channels to tail, by exact name.
    #[serde(default)]
    channels: Vec<String>,
}

/// `POST /admin/api/ticket` `{channels}`: a single-use connection ticket for the page's live
/// views. Its user is the console's id (which alone may read the stats channel); its claims
/// name exactly `channels` (namespace policy applies as to any signed-in client), grant no
/// publishing, and end with the login.
pub async fn ticket(
    State(s): State<AdminApp>,
    Extension(login): Extension<Login>,
    req: Result<Json<TicketRequest>, JsonRejection>,
) -> Reply {
    let req = body(req)?;
    if req.channels.len() > MAX_TICKET_CHANNELS {
        return Err(ApiError::bad_request("at most 16 channels per ticket"));
    }
    for c in &req.channels {
        operator_channel(&s, c)?;
    }
    let creds = Credentials {
        user: s.admin.user.clone(),
        expires_at: Some(login.expires_unix),
        channels: req.channels,
        publish: Vec::new(),
        info: Some(json!({"admin_console": true})),
    };
    let (ticket, expires_in) = s.app.tickets.issue(creds).await?;
    Ok(Json(json!({"ticket": ticket, "expires_in": expires_in})))
}
