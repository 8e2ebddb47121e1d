//! Server → client pushes (messages without an `id`) and the shared shapes they carry.
//!
//! Publication pushes are the hot path: [`encode_pub`] writes the JSON by hand once per
//! publication so the bytes can be shared by every subscriber.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize, Serializer};

use crate::Disconnect;

/// Who a client is, as shown in presence and join/leave pushes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// Session id, unique per connection.
    pub client: String,
    /// User id from the token's `sub` (empty for anonymous).
    pub user: String,
    /// The token's `info` claim, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<serde_json::Value>,
}

/// A message in a channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Publication {
    /// Position in the channel's stream (see [`crate::StreamPosition`]).
    pub offset: u64,
    /// The payload: raw JSON exactly as published.
    pub data: Bytes,
    /// The publishing client, when a client (not the server API) published.
    pub info: Option<ClientInfo>,
}

/// Serializes bytes known to hold valid JSON (publication data, validated once at publish) as
/// that JSON, embedded byte for byte: never parsed again, so no depth or size limit of a parser
/// applies on the way out. Bytes that are not UTF-8 (which publish never lets through) come out
/// as `null`.
///
/// Works with serde_json's serializers (the only ones the protocol uses) through the token its
/// own `RawValue` serializes with; a test below pins that behaviour.
#[derive(Clone, Copy, Debug)]
pub struct RawJson<'a>(pub &'a [u8]);

/// serde_json's marker for "write this string as raw JSON" (what `RawValue` serializes as).
const RAW_JSON_TOKEN: &str = "$serde_json::private::RawValue";

impl Serialize for RawJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(self.0) {
            Ok(text) => {
                use serde::ser::SerializeStruct;
                let mut raw = s.serialize_struct(RAW_JSON_TOKEN, 1)?;
                raw.serialize_field(RAW_JSON_TOKEN, text)?;
                raw.end()
            }
            Err(_) => s.serialize_unit(),
        }
    }
}

/// Owned [`RawJson`]: publication data as the server API returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonData(pub Bytes);

impl Serialize for JsonData {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RawJson(&self.0).serialize(s)
    }
}

impl Serialize for Publication {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("offset", &self.offset)?;
        m.serialize_entry("data", &RawJson(&self.data))?;
        if let Some(info) = &self.info {
            m.serialize_entry("info", info)?;
        }
        m.end()
    }
}

fn put_json_str(buf: &mut BytesMut, s: &str) {
    // serde_json escaping into a small Vec is cheap; channel names rarely need escaping.
    let v = serde_json::to_vec(s).unwrap_or_else(|_| b"\"\"".to_vec());
    buf.put_slice(&v);
}

/// Encodes `{"op":"pub","channel":..,"offset":..,"data":..[,"info":..]}`.
pub fn encode_pub(channel: &str, publication: &Publication) -> Bytes {
    let mut buf = BytesMut::with_capacity(48 + channel.len() + publication.data.len());
    buf.put_slice(br#"{"op":"pub","channel":"#);
    put_json_str(&mut buf, channel);
    buf.put_slice(br#","offset":"#);
    buf.put_slice(publication.offset.to_string().as_bytes());
    buf.put_slice(br#","data":"#);
    buf.put_slice(&publication.data);
    if let Some(info) = &publication.info {
        buf.put_slice(br#","info":"#);
        buf.put_slice(&serde_json::to_vec(info).unwrap_or_else(|_| b"null".to_vec()));
    }
    buf.put_u8(b'}');
    buf.freeze()
}

#[derive(Serialize)]
struct JoinLeave<'a> {
    op: &'a str,
    channel: &'a str,
    client: &'a ClientInfo,
}

/// Encodes a `join` or `leave` push.
pub fn encode_join_leave(join: bool, channel: &str, client: &ClientInfo) -> Bytes {
    let op = if join { "join" } else { "leave" };
    to_bytes(&JoinLeave {
        op,
        channel,
        client,
    })
}

/// The application-level ping push.
pub const PING: &[u8] = br#"{"op":"ping"}"#;

/// Encodes `{"op":"expiring","in":secs}`.
pub fn encode_expiring(secs: u64) -> Bytes {
    Bytes::from(format!(r#"{{"op":"expiring","in":{secs}}}"#))
}

#[derive(Serialize)]
struct DisconnectPush<'a> {
    op: &'static str,
    code: u16,
    reason: &'a str,
    reconnect: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    delay_ms: Option<u64>,
}

/// Encodes the `disconnect` push sent before closing. `delay_ms` asks the client to wait that
/// long before reconnecting (a drain spreads its clients' return this way).
pub fn encode_disconnect(d: &Disconnect, delay_ms: Option<u64>) -> Bytes {
    to_bytes(&DisconnectPush {
        op: "disconnect",
        code: d.code,
        reason: &d.reason,
        reconnect: d.reconnect,
        delay_ms,
    })
}

pub(crate) fn to_bytes<T: Serialize>(v: &T) -> Bytes {
    // Serializing our own types to a Vec cannot fail (no maps with non-string keys, no IO, raw
    // data falls back to null); should it ever, `null` is still valid JSON for the peer.
    serde_json::to_vec(v).map_or_else(|_| Bytes::from_static(b"null"), Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pub_push_is_valid_json() {
        let p = Publication {
            offset: 46,
            data: Bytes::from_static(br#"{"text":"hi"}"#),
            info: None,
        };
        let b = encode_pub("chat:lobby", &p);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"op":"pub","channel":"chat:lobby","offset":46,"data":{"text":"hi"}})
        );
        let p = Publication {
            info: Some(ClientInfo {
                client: "c1".into(),
                user: "42".into(),
                info: None,
            }),
            ..p
        };
        let v: serde_json::Value = serde_json::from_slice(&encode_pub("a", &p)).unwrap();
        assert_eq!(v["info"]["user"], "42");
    }

    #[test]
    fn data_is_embedded_without_parsing() {
        // Deeper than serde_json would parse: embedding must not go through a parser.
        let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
        let p = Publication {
            offset: 1,
            data: Bytes::from(deep.clone()),
            info: None,
        };
        let text = String::from_utf8(to_bytes(&p).to_vec()).unwrap();
        assert_eq!(text, format!(r#"{{"offset":1,"data":{deep}}}"#));
        let bad = Publication {
            data: Bytes::from_static(b"\xff"),
            ..p
        };
        assert_eq!(&to_bytes(&bad)[..], br#"{"offset":1,"data":null}"#);
    }

    #[test]
    fn disconnect_push() {
        let v: serde_json::Value =
            serde_json::from_slice(&encode_disconnect(&Disconnect::EXPIRED, None)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"op":"disconnect","code":4004,"reason":"token expired","reconnect":true})
        );
    }
}
