//! What travels over pubsub, and parsing of script replies.
//!
//! A channel's pubsub messages start with one tag byte:
//! - `p<offset>,<epoch>,<info length>,<info JSON><data>`: a publication (built by the publish
//!   script; the data is the raw JSON payload, never re-encoded);
//! - `j<ClientInfo JSON>` / `l<ClientInfo JSON>`: a join or leave event.
//!
//! Control messages are JSON: `{"type":"disconnect_user","user":"42","reconnect":true}`.

use bytes::Bytes;
use redis::Value;
use serde_json::json;
use switchboard_core::engine::Control;
use switchboard_protocol::{ClientInfo, Publication};

/// A decoded message of a channel's pubsub channel.
#[derive(Debug, PartialEq)]
pub(crate) enum ChannelEvent {
    Publication {
        epoch: String,
        publication: Publication,
    },
    JoinLeave {
        join: bool,
        client: ClientInfo,
    },
}

fn split_at_comma(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = b.iter().position(|&c| c == b',')?;
    Some((&b[..i], &b[i + 1..]))
}

fn parse_u64(b: &[u8]) -> Option<u64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Decodes a channel pubsub payload. `None` for anything malformed.
pub(crate) fn decode_channel_event(payload: Bytes) -> Option<ChannelEvent> {
    let (&tag, rest) = payload.split_first()?;
    match tag {
        b'p' => {
            let (offset, rest) = split_at_comma(rest)?;
            let (epoch, rest) = split_at_comma(rest)?;
            let (info_len, rest) = split_at_comma(rest)?;
            let offset = parse_u64(offset)?;
            let epoch = std::str::from_utf8(epoch).ok()?.to_owned();
            let info_len = usize::try_from(parse_u64(info_len)?).ok()?;
            if rest.len() < info_len {
                return None;
            }
            let info = if info_len == 0 {
                None
            } else {
                Some(serde_json::from_slice(&rest[..info_len]).ok()?)
            };
            let data_start = payload.len() - (rest.len() - info_len);
            Some(ChannelEvent::Publication {
                epoch,
                publication: Publication {
                    offset,
                    data: payload.slice(data_start..),
                    info,
                },
            })
        }
        b'j' | b'l' => Some(ChannelEvent::JoinLeave {
            join: tag == b'j',
            client: serde_json::from_slice(rest).ok()?,
        }),
        _ => None,
    }
}

/// Encodes a join/leave event.
pub(crate) fn encode_join_leave(join: bool, client: &ClientInfo) -> Vec<u8> {
    let mut v = vec![if join { b'j' } else { b'l' }];
    serde_json::to_writer(&mut v, client).expect("ClientInfo serializes");
    v
}

/// Encodes a control message.
pub(crate) fn encode_control(control: &Control) -> Vec<u8> {
    let v = match control {
        Control::DisconnectUser { user, reconnect } => {
            json!({"type": "disconnect_user", "user": user, "reconnect": reconnect})
        }
    };
    serde_json::to_vec(&v).expect("JSON serializes")
}

/// Decodes a control message; `None` for unknown or malformed ones (newer nodes may send kinds
/// this one does not know).
pub(crate) fn decode_control(payload: &[u8]) -> Option<Control> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    match v.get("type")?.as_str()? {
        "disconnect_user" => Some(Control::DisconnectUser {
            user: v.get("user")?.as_str()?.to_owned(),
            reconnect: v.get("reconnect")?.as_bool()?,
        }),
        _ => None,
    }
}

/// Error for a reply of an unexpected shape.
pub(crate) fn bad_reply(what: &str) -> switchboard_core::engine::EngineError {
    switchboard_core::engine::EngineError::Unavailable(format!("unexpected redis reply: {what}"))
}

/// The bytes of a string-like reply.
pub(crate) fn bytes_of(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        Value::VerbatimString { text, .. } => Some(text.into_bytes()),
        _ => None,
    }
}

/// An integer reply (also accepts integers sent as strings).
pub(crate) fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

/// The elements of an array-like reply.
pub(crate) fn array_of(v: Value) -> Option<Vec<Value>> {
    match v {
        Value::Array(a) | Value::Set(a) => Some(a),
        Value::Nil => Some(Vec::new()),
        _ => None,
    }
}

/// Parses one stream entry `[id, [field, value, ...]]` into a publication.
pub(crate) fn parse_entry(entry: Value) -> Option<Publication> {
    let mut parts = array_of(entry)?.into_iter();
    let id = bytes_of(parts.next()?)?;
    let fields = parts.next()?;
    let id = std::str::from_utf8(&id).ok()?;
    let offset: u64 = id.split('-').next()?.parse().ok()?;
    let mut data = None;
    let mut info = None;
    let mut it = match fields {
        Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect::<Vec<_>>(),
        other => array_of(other)?,
    }
    .into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        match bytes_of(k)?.as_slice() {
            b"d" => data = Some(Bytes::from(bytes_of(v)?)),
            b"i" => info = Some(serde_json::from_slice(&bytes_of(v)?).ok()?),
            _ => {}
        }
    }
    Some(Publication {
        offset,
        data: data?,
        info,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publication_round_trip() {
        let info = r#"{"client":"c","user":"u"}"#;
        let payload = format!("p42,Ep0ch,{},{info}{{\"n\":1}}", info.len());
        let ev = decode_channel_event(Bytes::from(payload)).unwrap();
        assert_eq!(
            ev,
            ChannelEvent::Publication {
                epoch: "Ep0ch".into(),
                publication: Publication {
                    offset: 42,
                    data: Bytes::from_static(br#"{"n":1}"#),
                    info: Some(ClientInfo {
                        client: "c".into(),
                        user: "u".into(),
                        info: None
                    }),
                },
            }
        );
        let ev = decode_channel_event(Bytes::from_static(b"p1,e,0,[1,2]")).unwrap();
        assert!(matches!(ev, ChannelEvent::Publication { publication, .. }
            if publication.data == "[1,2]" && publication.info.is_none()));
        assert!(decode_channel_event(Bytes::from_static(b"p1,e,9,{}")).is_none());
        assert!(decode_channel_event(Bytes::from_static(b"x")).is_none());
        assert!(decode_channel_event(Bytes::new()).is_none());
    }

    #[test]
    fn join_leave_and_control_round_trip() {
        let c = ClientInfo {
            client: "c".into(),
            user: "u".into(),
            info: Some(json!({"a": 1})),
        };
        assert_eq!(
            decode_channel_event(Bytes::from(encode_join_leave(false, &c))),
            Some(ChannelEvent::JoinLeave {
                join: false,
                client: c
            })
        );
        let ctl = Control::DisconnectUser {
            user: "42".into(),
            reconnect: true,
        };
        assert_eq!(decode_control(&encode_control(&ctl)), Some(ctl));
        assert_eq!(decode_control(br#"{"type":"future"}"#), None);
    }
}
