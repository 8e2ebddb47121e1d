//! Client → server commands and their decoding from WebSocket text frames.
//!
//! A frame holds one JSON object, or a JSON array of objects to batch several commands. Every
//! command carries an `id` that its reply echoes. Decoding never panics: each malformed command
//! yields a [`CommandError`] carrying the `id` when it could be read, so the transport can reply
//! with an error and keep the connection.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::{ErrorCode, ProtocolError, StreamPosition};

/// Most commands accepted in one batched frame; more is treated as abuse of a single frame.
pub const MAX_BATCH: usize = 100;

/// A decoded command.
#[derive(Clone, Debug, PartialEq)]
pub struct Command {
    /// Echoed in the reply.
    pub id: u64,
    /// What to do.
    pub op: Op,
}

/// The operations a client can ask for.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Authenticate; must be the first command. `token` may be absent for anonymous access
    /// where the node allows it.
    Connect {
        /// The JWT.
        token: Option<String>,
    },
    /// Subscribe to a channel, optionally resuming from a position.
    Subscribe {
        /// Channel name (not yet validated).
        channel: String,
        /// Last position the client saw, to receive what it missed.
        since: Option<StreamPosition>,
    },
    /// Stop receiving a channel.
    Unsubscribe {
        /// Channel name.
        channel: String,
    },
    /// Publish `data` (any JSON value) to a channel.
    Publish {
        /// Channel name.
        channel: String,
        /// The raw JSON payload, exactly as sent.
        data: Bytes,
    },
    /// Read a channel's history.
    History {
        /// Channel name.
        channel: String,
        /// Return publications after this position.
        since: Option<StreamPosition>,
        /// Most publications to return.
        limit: Option<u32>,
        /// Newest first.
        reverse: bool,
    },
    /// List the clients present in a channel.
    Presence {
        /// Channel name.
        channel: String,
    },
    /// Replace the session's token with a fresh one.
    Refresh {
        /// The new JWT.
        token: String,
    },
}

impl Op {
    /// The wire name of the operation.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Connect { .. } => "connect",
            Op::Subscribe { .. } => "subscribe",
            Op::Unsubscribe { .. } => "unsubscribe",
            Op::Publish { .. } => "publish",
            Op::History { .. } => "history",
            Op::Presence { .. } => "presence",
            Op::Refresh { .. } => "refresh",
        }
    }
}

/// A command that could not be decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct CommandError {
    /// The command's id, when it could be read.
    pub id: Option<u64>,
    /// What was wrong.
    pub error: ProtocolError,
}

#[derive(Deserialize)]
struct Wire<'a> {
    id: Option<u64>,
    #[serde(borrow)]
    op: Option<Cow<'a, str>>,
    token: Option<String>,
    #[serde(borrow)]
    channel: Option<Cow<'a, str>>,
    since: Option<StreamPosition>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    limit: Option<u32>,
    reverse: Option<bool>,
}

#[derive(Deserialize)]
struct IdOnly {
    id: Option<u64>,
}

fn bad(id: Option<u64>, message: impl Into<String>) -> CommandError {
    CommandError {
        id,
        error: ProtocolError::new(ErrorCode::BadRequest, message),
    }
}

/// Decodes one text frame into commands, in order.
///
/// A frame that is not JSON at all yields one error without an id.
pub fn decode_frame(text: &str) -> Vec<Result<Command, CommandError>> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let items: Vec<&RawValue> = match serde_json::from_str(text) {
            Ok(items) => items,
            Err(e) => return vec![Err(bad(None, format!("invalid JSON: {e}")))],
        };
        if items.is_empty() {
            return vec![Err(bad(None, "empty batch"))];
        }
        if items.len() > MAX_BATCH {
            return vec![Err(bad(
                None,
                format!("batch holds more than {MAX_BATCH} commands"),
            ))];
        }
        items.into_iter().map(|raw| decode_one(raw.get())).collect()
    } else {
        vec![decode_one(text)]
    }
}

/// Decodes a single command object.
pub fn decode_one(text: &str) -> Result<Command, CommandError> {
    // Only an object: serde would also read a struct from a JSON array by position, so
    // `[7]` had an id and an eight-element array was a command.
    if !text.trim_start().starts_with('{') {
        let what = match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => "invalid command: a command is a JSON object".to_owned(),
            Err(e) => format!("invalid JSON: {e}"),
        };
        return Err(bad(None, what));
    }
    let wire: Wire<'_> = match serde_json::from_str(text) {
        Ok(w) => w,
        Err(e) => {
            let id = serde_json::from_str::<IdOnly>(text).ok().and_then(|i| i.id);
            let what = if e.is_syntax() || e.is_eof() {
                "invalid JSON"
            } else {
                "invalid command"
            };
            return Err(bad(id, format!("{what}: {e}")));
        }
    };
    let Some(id) = wire.id else {
        return Err(bad(None, "missing field `id`"));
    };
    let Some(op) = wire.op.as_deref() else {
        return Err(bad(Some(id), "missing field `op`"));
    };
    let channel = |w: &Wire<'_>| -> Result<String, CommandError> {
        w.channel
            .as_deref()
            .map(str::to_owned)
            .ok_or_else(|| bad(Some(id), format!("`{op}` needs a `channel`")))
    };
    let op = match op {
        "connect" => Op::Connect { token: wire.token },
        "subscribe" => Op::Subscribe {
            channel: channel(&wire)?,
            since: wire.since,
        },
        "unsubscribe" => Op::Unsubscribe {
            channel: channel(&wire)?,
        },
        "publish" => {
            let channel = channel(&wire)?;
            let data = wire
                .data
                .ok_or_else(|| bad(Some(id), "`publish` needs `data`"))?;
            Op::Publish {
                channel,
                data: Bytes::copy_from_slice(data.get().as_bytes()),
            }
        }
        "history" => Op::History {
            channel: channel(&wire)?,
            since: wire.since,
            limit: wire.limit,
            reverse: wire.reverse.unwrap_or(false),
        },
        "presence" => Op::Presence {
            channel: channel(&wire)?,
        },
        "refresh" => Op::Refresh {
            token: wire
                .token
                .ok_or_else(|| bad(Some(id), "`refresh` needs a `token`"))?,
        },
        other => {
            let shown: String = other.chars().take(32).collect();
            return Err(bad(Some(id), format!("unknown op `{shown}`")));
        }
    };
    Ok(Command { id, op })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_commands() {
        let c = decode_one(r#"{"id":2,"op":"subscribe","channel":"chat:lobby","since":{"offset":41,"epoch":"x7"}}"#).unwrap();
        assert_eq!(
            c,
            Command {
                id: 2,
                op: Op::Subscribe {
                    channel: "chat:lobby".into(),
                    since: Some(StreamPosition::new(41, "x7"))
                }
            }
        );
        let c =
            decode_one(r#"{"id":4,"op":"publish","channel":"a","data":{"text":"hi"}}"#).unwrap();
        assert_eq!(
            c.op,
            Op::Publish {
                channel: "a".into(),
                data: Bytes::from_static(br#"{"text":"hi"}"#)
            }
        );
    }

    #[test]
    fn batch_keeps_good_commands_next_to_bad_ones() {
        let out = decode_frame(
            r#"[{"id":1,"op":"presence","channel":"a"},{"id":2,"op":"nope"},{"id":"x"}]"#,
        );
        assert!(out[0].is_ok());
        assert_eq!(out[1].as_ref().unwrap_err().id, Some(2));
        assert_eq!(out[2].as_ref().unwrap_err().id, None);
    }

    /// Regression (found by the `command` fuzz target): serde reads a struct from a JSON
    /// array by position, so `[[7]]` got an error reply with `id: 7` and a positional array
    /// was accepted as a command.
    #[test]
    fn only_objects_are_commands() {
        let out = decode_frame("[[7]]");
        assert_eq!(out[0].as_ref().unwrap_err().id, None);
        let positional = r#"[[1,"presence",null,"chat:lobby",null,null,null,null]]"#;
        assert_eq!(decode_frame(positional)[0].as_ref().unwrap_err().id, None);
        for text in ["7", "\"x\"", "null", " [1]"] {
            let e = decode_one(text).unwrap_err();
            assert_eq!(
                (e.id, e.error.code),
                (None, ErrorCode::BadRequest),
                "{text}"
            );
        }
        assert!(decode_one(r#" {"id":1,"op":"connect"}"#).is_ok());
    }

    #[test]
    fn errors_keep_the_id_when_readable() {
        let e = decode_one(r#"{"id":9,"op":"subscribe","channel":5}"#).unwrap_err();
        assert_eq!(e.id, Some(9));
        assert_eq!(e.error.code, ErrorCode::BadRequest);
        let e = decode_one("not json").unwrap_err();
        assert_eq!(e.id, None);
        let e = decode_one(r#"{"id":3,"op":"publish","channel":"a"}"#).unwrap_err();
        assert_eq!(e.id, Some(3));
    }
}
