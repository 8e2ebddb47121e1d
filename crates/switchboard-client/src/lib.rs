//! A Rust client for Switchboard's WebSocket protocol: connects with a token, subscribes,
//! reconnects with full-jitter exponential backoff and resumes every channel from its last
//! position. Terminal close codes (4500–4999) stop it.

pub mod backoff;

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use switchboard_protocol::{Disconnect, StreamPosition};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub use backoff::Backoff;

/// What the client reports.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Connected (again); `client` is the session id.
    Connected {
        /// Session id.
        client: String,
    },
    /// A publication, in order, without duplicates.
    Publication {
        /// Channel.
        channel: String,
        /// Offset.
        offset: u64,
        /// Payload.
        data: serde_json::Value,
    },
    /// The channel could not be resumed; reload its state.
    Reset {
        /// Channel.
        channel: String,
    },
    /// The connection ended.
    Disconnected {
        /// Close code (1006 when the link just dropped).
        code: u16,
        /// Whether the client will reconnect.
        reconnect: bool,
    },
}

/// Client settings.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `ws://host:port/ws`.
    pub url: String,
    /// Returns a fresh token for each (re)connect.
    pub token: String,
    /// Channels to subscribe.
    pub channels: Vec<String>,
    /// First backoff ceiling.
    pub min_backoff: Duration,
    /// Backoff cap.
    pub max_backoff: Duration,
}

/// Errors that end the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server closed with a terminal code.
    #[error("closed by server with terminal code {0}")]
    Terminal(u16),
}

#[derive(Deserialize)]
struct Incoming {
    id: Option<u64>,
    op: Option<String>,
    channel: Option<String>,
    offset: Option<u64>,
    data: Option<serde_json::Value>,
    ok: Option<serde_json::Value>,
    error: Option<serde_json::Value>,
    code: Option<u16>,
}

#[derive(Deserialize)]
struct SubReply {
    position: StreamPosition,
    recovered: bool,
    publications: Vec<PubEntry>,
}

#[derive(Deserialize)]
struct PubEntry {
    offset: u64,
    data: serde_json::Value,
}

/// Runs the client until a terminal close or until the receiver is dropped. Events go to `tx`.
///
/// # Errors
/// [`ClientError::Terminal`] when the server refuses the client for good.
pub async fn run(config: ClientConfig, tx: mpsc::Sender<Event>) -> Result<(), ClientError> {
    let mut positions: HashMap<String, StreamPosition> = HashMap::new();
    let mut backoff = Backoff::new(config.min_backoff, config.max_backoff);
    loop {
        let code = match session(&config, &mut positions, &tx, &mut backoff).await {
            Ok(code) => code,
            Err(()) => return Ok(()), // receiver gone
        };
        let reconnect = Disconnect::code_reconnects(code);
        if tx
            .send(Event::Disconnected { code, reconnect })
            .await
            .is_err()
        {
            return Ok(());
        }
        if !reconnect {
            return Err(ClientError::Terminal(code));
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// One connection; returns the close code. `Err` when the event receiver is gone.
async fn session(
    config: &ClientConfig,
    positions: &mut HashMap<String, StreamPosition>,
    tx: &mpsc::Sender<Event>,
    backoff: &mut Backoff,
) -> Result<u16, ()> {
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(8192)
        .write_buffer_size(0);
    let Ok((mut ws, _)) =
        tokio_tungstenite::connect_async_with_config(&config.url, Some(ws_config), true).await
    else {
        return Ok(1006);
    };
    let connect = serde_json::json!({"id": 1, "op": "connect", "token": config.token});
    if ws.send(Message::text(connect.to_string())).await.is_err() {
        return Ok(1006);
    }
    let mut next_id = 2u64;
    let mut pending: HashMap<u64, String> = HashMap::new();
    let mut disconnect_code = None;
    while let Some(msg) = ws.next().await {
        let text = match msg {
            Ok(Message::Text(t)) => t,
            Ok(Message::Close(frame)) => return Ok(frame.map_or(1005, |f| u16::from(f.code))),
            Ok(_) => continue,
            Err(_) => break,
        };
        let Ok(m) = serde_json::from_str::<Incoming>(&text) else {
            continue;
        };
        match (m.id, m.op.as_deref()) {
            (Some(1), _) => {
                if m.error.is_some() {
                    continue; // the close frame follows with the reason
                }
                backoff.reset();
                let client =
                    m.ok.as_ref()
                        .and_then(|o| o["client"].as_str())
                        .unwrap_or_default()
                        .to_owned();
                tx.send(Event::Connected { client }).await.map_err(|_| ())?;
                for ch in &config.channels {
                    let mut cmd =
                        serde_json::json!({"id": next_id, "op": "subscribe", "channel": ch});
                    if let Some(p) = positions.get(ch) {
                        cmd["since"] = serde_json::json!(p);
                    }
                    pending.insert(next_id, ch.clone());
                    next_id += 1;
                    if ws.send(Message::text(cmd.to_string())).await.is_err() {
                        return Ok(1006);
                    }
                }
            }
            (Some(id), _) => {
                let Some(channel) = pending.remove(&id) else {
                    continue;
                };
                let Some(ok) = m.ok else { continue };
                let Ok(reply) = serde_json::from_value::<SubReply>(ok) else {
                    continue;
                };
                let had_position = positions.contains_key(&channel);
                if had_position && !reply.recovered {
                    tx.send(Event::Reset {
                        channel: channel.clone(),
                    })
                    .await
                    .map_err(|_| ())?;
                }
                for p in reply.publications {
                    tx.send(Event::Publication {
                        channel: channel.clone(),
                        offset: p.offset,
                        data: p.data,
                    })
                    .await
                    .map_err(|_| ())?;
                }
                positions.insert(channel, reply.position);
            }
            (None, Some("pub")) => {
                let (Some(channel), Some(offset)) = (m.channel, m.offset) else {
                    continue;
                };
                let Some(pos) = positions.get_mut(&channel) else {
                    continue;
                };
                if offset <= pos.offset {
                    continue; // never a duplicate
                }
                pos.offset = offset;
                tx.send(Event::Publication {
                    channel,
                    offset,
                    data: m.data.unwrap_or_default(),
                })
                .await
                .map_err(|_| ())?;
            }
            (None, Some("disconnect")) => disconnect_code = m.code,
            _ => {}
        }
    }
    Ok(disconnect_code.unwrap_or(1006))
}
