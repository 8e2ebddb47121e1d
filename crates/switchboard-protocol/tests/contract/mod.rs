//! The documented contracts of the protocol's decoders of untrusted input, as checks that panic
//! on a violation. One copy serves the bounded property tests (`tests/decoders.rs`, in the
//! normal test suite) and the coverage-guided fuzz targets (`fuzz/fuzz_targets/*.rs` include
//! this file), so both hold the decoders to the same rules.
//!
//! Every check takes arbitrary input; "no panic" is implied by calling the decoder at all.

use serde_json::Value;
use switchboard_protocol::channel::pattern_matches;
use switchboard_protocol::command::{MAX_BATCH, decode_frame};
use switchboard_protocol::cursor::{MAX_CURSOR_LEN, MAX_EPOCH_LEN, channel_hash};
use switchboard_protocol::depth::json_depth;
use switchboard_protocol::{
    ChannelError, ChannelName, Command, Cursor, CursorError, ErrorCode, Op,
};

// ---------------------------------------------------------------------------------------------
// Channel names

/// The grammar of `docs/protocol.md`, written independently of `ChannelName::parse`: the parts
/// (namespace, name, users) or the error `parse` must return.
fn channel_model(s: &str, max: usize) -> Result<(&str, &str, Option<Vec<&str>>), ChannelError> {
    if s.is_empty() {
        return Err(ChannelError::Empty);
    }
    if s.len() > max {
        return Err(ChannelError::TooLong(max));
    }
    let ns_char = |c: char| c.is_ascii_alphanumeric() || "_-".contains(c);
    let name_char = |c: char| c.is_ascii_alphanumeric() || "_-.=@/+".contains(c);
    let user_char = |c: char| c.is_ascii_alphanumeric() || "_-.@".contains(c);
    let (head, users) = match s.split_once('#') {
        Some((h, u)) => (h, Some(u)),
        None => (s, None),
    };
    let (ns, name) = match head.split_once(':') {
        Some((ns, name)) => {
            if !(1..=64).contains(&ns.len()) || !ns.chars().all(ns_char) {
                return Err(ChannelError::Invalid("namespace"));
            }
            (ns, name)
        }
        None => ("", head),
    };
    if name.is_empty() || !name.chars().all(name_char) {
        return Err(ChannelError::Invalid("name"));
    }
    let users = match users {
        None => None,
        Some(list) => {
            let ids: Vec<&str> = list.split(',').collect();
            if ids
                .iter()
                .any(|u| u.is_empty() || !u.chars().all(user_char))
            {
                return Err(ChannelError::Invalid("user list"));
            }
            Some(ids)
        }
    };
    Ok((ns, name, users))
}

/// `ChannelName::parse` accepts exactly the documented grammar within `max` bytes, and the
/// parts it reports are the parts of the name.
pub fn channel(s: &str, max: usize) {
    let got = ChannelName::parse(s, max);
    let want = channel_model(s, max);
    match (&got, &want) {
        (Ok(c), Ok((ns, _, users))) => {
            assert_eq!(c.as_str(), s);
            assert_eq!(c.to_string(), s);
            assert!(s.len() <= max);
            assert_eq!(c.namespace(), *ns, "{s:?}");
            let got_users: Option<Vec<&str>> = c.users().map(Iterator::collect);
            assert_eq!(&got_users, users, "{s:?}");
            match users {
                Some(ids) => {
                    assert_eq!(c.user_allowed(""), Some(false));
                    for id in ids {
                        assert_eq!(c.user_allowed(id), Some(true));
                    }
                }
                None => assert_eq!(c.user_allowed("anyone"), None),
            }
        }
        (Err(g), Err(w)) => assert_eq!(g, w, "{s:?}"),
        _ => panic!("{s:?} (max {max}): parse {got:?}, grammar {want:?}"),
    }
    // The limit only ever turns a valid name into TooLong.
    if let Ok(c) = ChannelName::parse(s, usize::MAX)
        && s.len() <= max
    {
        assert_eq!(got.as_ref().ok(), Some(&c));
    }
}

/// Glob semantics written as the obvious dynamic program: `*` matches any run of bytes.
fn glob_model(p: &[u8], c: &[u8]) -> bool {
    // m[j]: pattern prefix p[..i] matches c[..j].
    let mut m = vec![false; c.len() + 1];
    m[0] = true;
    for &pc in p {
        let mut next = vec![false; c.len() + 1];
        if pc == b'*' {
            let mut any = false;
            for j in 0..=c.len() {
                any |= m[j];
                next[j] = any;
            }
        } else {
            for j in 1..=c.len() {
                next[j] = m[j - 1] && c[j - 1] == pc;
            }
        }
        m = next;
    }
    m[c.len()]
}

/// `pattern_matches` agrees with the glob model (and a pattern without `*` matches only itself).
pub fn pattern(p: &str, c: &str) {
    let got = pattern_matches(p, c);
    assert_eq!(
        got,
        glob_model(p.as_bytes(), c.as_bytes()),
        "pattern {p:?} on {c:?}"
    );
    if !p.contains('*') {
        assert_eq!(got, p == c);
    }
}

// ---------------------------------------------------------------------------------------------
// Cursors

/// `Cursor::decode`: oversized text is `TooLong`; a cursor that decodes names only the given
/// channels and is canonical (it re-encodes to exactly the text it came from, so one position
/// has one cursor); decoding does not depend on channels the cursor does not name.
pub fn cursor(text: &str, channels: &[&str]) {
    let got = Cursor::decode(text, channels);
    if text.len() > MAX_CURSOR_LEN {
        assert_eq!(got, Err(CursorError::TooLong));
        return;
    }
    let Ok(c) = got else { return };
    assert_eq!(c.encode(), text, "a decoded cursor re-encodes to itself");
    let mut out = Vec::new();
    c.encode_to(&mut out);
    assert_eq!(out, text.as_bytes());
    // At least 6 bytes (hash, a 1-byte offset, the epoch length) per entry.
    assert!(c.len() * 6 <= (text.len() - 1) * 6 / 8);
    let mut named = Vec::new();
    for ch in channels {
        if let Some(pos) = c.get(ch) {
            assert!(pos.epoch.len() <= MAX_EPOCH_LEN);
            assert!(pos.epoch.bytes().all(|b| b.is_ascii_graphic()));
            named.push(*ch);
        }
    }
    // Every entry belongs to one of the channels (distinct hashes: at most one per entry).
    let mut hashes: Vec<u32> = named.iter().map(|c| channel_hash(c)).collect();
    hashes.sort_unstable();
    hashes.dedup();
    assert_eq!(hashes.len(), c.len(), "{text:?}");
    assert_eq!(Cursor::decode(text, &named), Ok(c.clone()));
    assert_eq!(Cursor::decode(&c.encode(), channels), Ok(c));
}

// ---------------------------------------------------------------------------------------------
// Commands

/// Writes a command back in the wire format, for the round trip below.
pub fn encode_command(c: &Command) -> String {
    let pos = |p: &switchboard_protocol::StreamPosition| serde_json::json!({"offset": p.offset, "epoch": p.epoch});
    let mut v = serde_json::json!({"id": c.id, "op": c.op.name()});
    match &c.op {
        Op::Connect { token } => {
            if let Some(t) = token {
                v["token"] = t.clone().into();
            }
        }
        Op::Subscribe { channel, since } => {
            v["channel"] = channel.clone().into();
            if let Some(s) = since {
                v["since"] = pos(s);
            }
        }
        Op::Unsubscribe { channel } | Op::Presence { channel } => {
            v["channel"] = channel.clone().into();
        }
        Op::Publish { channel, .. } => v["channel"] = channel.clone().into(),
        Op::History {
            channel,
            since,
            limit,
            reverse,
        } => {
            v["channel"] = channel.clone().into();
            if let Some(s) = since {
                v["since"] = pos(s);
            }
            if let Some(l) = limit {
                v["limit"] = (*l).into();
            }
            v["reverse"] = (*reverse).into();
        }
        Op::Refresh { token } => v["token"] = token.clone().into(),
    }
    let mut text = v.to_string();
    if let Op::Publish { data, .. } = &c.op {
        // The raw data, byte for byte, as the last field.
        text.pop();
        text.push_str(",\"data\":");
        text.push_str(std::str::from_utf8(data).expect("data is JSON text"));
        text.push('}');
    }
    text
}

/// The `id` a command object carries, when the text is one JSON object with a numeric id.
fn wire_id(v: &Value) -> Option<u64> {
    v.as_object()?.get("id")?.as_u64()
}

/// `decode_frame`: at least one result and at most `MAX_BATCH`; every error is `bad_request`;
/// an id is never invented (a result's id is the id its object carries); publication data is
/// the raw JSON text of the `data` field; every command re-encodes and decodes to itself.
pub fn command_frame(text: &str) {
    let out = decode_frame(text);
    assert!(
        !out.is_empty() && out.len() <= MAX_BATCH,
        "{} results",
        out.len()
    );
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    // The object each result came from, when the frame is plain JSON.
    let objects: Option<Vec<&Value>> = match &parsed {
        Some(Value::Array(items)) if items.len() == out.len() => Some(items.iter().collect()),
        Some(v @ Value::Object(_)) => Some(vec![v]),
        _ => None,
    };
    for (i, r) in out.iter().enumerate() {
        let source = objects.as_ref().map(|o| o[i]);
        match r {
            Ok(cmd) => {
                if let Some(obj) = source {
                    assert_eq!(wire_id(obj), Some(cmd.id), "{text:?}");
                }
                if let Op::Publish { data, .. } = &cmd.op {
                    let data = std::str::from_utf8(data).expect("data is UTF-8");
                    // JSON by its grammar; a number past f64 (`1e400`) is JSON too, which
                    // `Value` refuses: the data is kept byte for byte, never converted.
                    serde_json::from_str::<serde::de::IgnoredAny>(data).expect("data is JSON");
                    if let (Ok(value), Some(obj)) = (serde_json::from_str::<Value>(data), source) {
                        assert_eq!(Some(&value), obj.get("data"));
                    }
                }
                let again = encode_command(cmd);
                let back = decode_frame(&again);
                assert_eq!(back.len(), 1);
                assert_eq!(back[0].as_ref(), Ok(cmd), "{again}");
            }
            Err(e) => {
                assert_eq!(e.error.code, ErrorCode::BadRequest, "{e:?}");
                if let (Some(id), Some(obj)) = (e.id, source) {
                    assert_eq!(wire_id(obj), Some(id), "{text:?}");
                }
            }
        }
    }
}

fn depth_model(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth_model).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth_model).max().unwrap_or(0),
        _ => 0,
    }
}

/// `json_depth` of valid JSON is its nesting depth, capped at `limit + 1`; any input is safe.
pub fn depth(text: &[u8], limit: usize) {
    let got = json_depth(text, limit);
    if let Ok(v) = serde_json::from_slice::<Value>(text) {
        assert_eq!(
            got,
            depth_model(&v).min(limit.saturating_add(1)),
            "{:?}",
            String::from_utf8_lossy(text)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Fuzz inputs: how one byte string drives each check. The fuzz targets call these, and the
// tests replay the committed seeds (`fuzz/seeds/<target>/`) through them.

/// Channel names the cursor inputs are checked against.
pub const CURSOR_CHANNELS: [&str; 4] = ["a", "b:x", "chat:lobby", "orders:42#7,8"];

/// `channel` target: the first byte picks the length limit; the rest is a name, and, split at
/// the first NUL, a permission pattern and a channel.
pub fn fuzz_channel(data: &[u8]) {
    let Some((&b, rest)) = data.split_first() else {
        return;
    };
    let max = [255, 16, 64, usize::MAX][usize::from(b & 3)];
    let text = String::from_utf8_lossy(rest);
    channel(&text, max);
    let (p, c) = text.split_once('\0').unwrap_or((&text, "chat:lobby"));
    if p.len() <= 512 && c.len() <= 512 {
        pattern(p, c);
    }
}

/// `cursor` target: the first byte picks the form: the text as it comes (an SSE event id or a
/// `since=`), or `1` + base64url of the rest (the binary layout, past the base64 layer).
pub fn fuzz_cursor(data: &[u8]) {
    use base64::Engine as _;
    let Some((&b, rest)) = data.split_first() else {
        return;
    };
    let text = if b & 1 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        format!(
            "1{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rest)
        )
    };
    // An SSE id is `<cursor>.<resume secret>`: the transports decode the part before the dot.
    let cursor_part = text.split_once('.').map_or(text.as_str(), |(c, _)| c);
    cursor(cursor_part, &CURSOR_CHANNELS);
    cursor(&text, &CURSOR_CHANNELS[..1]);
}

/// `command` target: the bytes as a text frame, and as publication data for `json_depth`.
pub fn fuzz_command(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    command_frame(&text);
    depth(data, 64);
    depth(data, 2);
}
