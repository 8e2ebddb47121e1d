//! Resume cursors for SSE (`id:` / `Last-Event-ID`) and poll (`since=` / `cursor`).
//!
//! A cursor records the position of every channel of a stream. It is untrusted input: it is
//! versioned, size-limited and bound to channel names by a hash, so a cursor made for other
//! channels is rejected instead of replaying anything.
//!
//! Text form: `1` (version) followed by base64url (no padding) of, per channel:
//! `fnv1a32(channel name)` (4 bytes, big-endian), the offset as LEB128, the epoch length (1 byte)
//! and the epoch bytes (ASCII).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::StreamPosition;

/// Longest cursor accepted, in characters.
pub const MAX_CURSOR_LEN: usize = 2048;
/// Longest epoch a cursor may carry.
pub const MAX_EPOCH_LEN: usize = 32;
const VERSION: char = '1';

/// Why a cursor was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// Longer than [`MAX_CURSOR_LEN`].
    #[error("cursor is too long")]
    TooLong,
    /// Not a cursor of a version this node understands.
    #[error("cursor has an unknown version")]
    Version,
    /// Damaged encoding.
    #[error("cursor is malformed")]
    Malformed,
    /// The cursor names channels this stream does not have.
    #[error("cursor does not belong to these channels")]
    Foreign,
}

/// Positions of a stream's channels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    entries: Vec<(u32, StreamPosition)>,
}

/// FNV-1a, 32 bits: a stable, dependency-free hash that binds cursor entries to channel names.
pub fn channel_hash(name: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

impl Cursor {
    /// An empty cursor.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the position of `channel`.
    pub fn set(&mut self, channel: &str, pos: StreamPosition) {
        let h = channel_hash(channel);
        match self.entries.iter_mut().find(|(k, _)| *k == h) {
            Some(e) => e.1 = pos,
            None => self.entries.push((h, pos)),
        }
    }

    /// Moves `channel` to `offset` in `epoch`, allocating only when the epoch changes (SSE
    /// calls this once per event per stream).
    pub fn advance(&mut self, channel: &str, offset: u64, epoch: &str) {
        let h = channel_hash(channel);
        match self.entries.iter_mut().find(|(k, _)| *k == h) {
            Some((_, pos)) if pos.epoch == epoch => pos.offset = offset,
            Some((_, pos)) => *pos = StreamPosition::new(offset, epoch),
            None => self.entries.push((h, StreamPosition::new(offset, epoch))),
        }
    }

    /// The position recorded for `channel`.
    pub fn get(&self, channel: &str) -> Option<&StreamPosition> {
        let h = channel_hash(channel);
        self.entries.iter().find(|(k, _)| *k == h).map(|(_, p)| p)
    }

    /// Number of channels recorded.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no channel is recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Encodes to the text form.
    pub fn encode(&self) -> String {
        let mut out = Vec::with_capacity(1 + self.entries.len() * 24);
        self.encode_to(&mut out);
        // The text form is ASCII (a digit and base64url).
        String::from_utf8(out).unwrap_or_default()
    }

    /// Appends the text form to `out`, without intermediate strings (SSE writes one per event).
    pub fn encode_to(&self, out: &mut Vec<u8>) {
        let mut bin = Vec::with_capacity(self.entries.len() * 16);
        for (h, pos) in &self.entries {
            bin.extend_from_slice(&h.to_be_bytes());
            let mut v = pos.offset;
            loop {
                let byte = (v & 0x7f) as u8;
                v >>= 7;
                if v == 0 {
                    bin.push(byte);
                    break;
                }
                bin.push(byte | 0x80);
            }
            let epoch = &pos.epoch.as_bytes()[..pos.epoch.len().min(MAX_EPOCH_LEN)];
            bin.push(epoch.len() as u8);
            bin.extend_from_slice(epoch);
        }
        out.push(VERSION as u8);
        let start = out.len();
        out.resize(
            start + base64::encoded_len(bin.len(), false).unwrap_or(0),
            0,
        );
        let n = URL_SAFE_NO_PAD
            .encode_slice(&bin, &mut out[start..])
            .unwrap_or(0);
        out.truncate(start + n);
    }

    /// Decodes the text form and checks that every entry belongs to one of `channels`.
    ///
    /// # Errors
    /// [`CursorError`] for anything that is not a cursor this node made for these channels.
    pub fn decode(text: &str, channels: &[&str]) -> Result<Self, CursorError> {
        if text.len() > MAX_CURSOR_LEN {
            return Err(CursorError::TooLong);
        }
        let rest = text.strip_prefix(VERSION).ok_or(CursorError::Version)?;
        let bin = URL_SAFE_NO_PAD
            .decode(rest)
            .map_err(|_| CursorError::Malformed)?;
        let mut entries = Vec::new();
        let mut i = 0;
        while i < bin.len() {
            let h = u32::from_be_bytes(
                bin.get(i..i + 4)
                    .ok_or(CursorError::Malformed)?
                    .try_into()
                    .map_err(|_| CursorError::Malformed)?,
            );
            i += 4;
            let mut offset: u64 = 0;
            let mut shift = 0;
            // Canonical LEB128 only, as `encode_to` writes it, so that one position has one
            // cursor: no bits past the 64th (the tenth byte may only be 0 or 1) and no zero
            // final byte after the first (padding).
            loop {
                let b = *bin.get(i).ok_or(CursorError::Malformed)?;
                i += 1;
                if shift == 63 && b > 1 {
                    return Err(CursorError::Malformed);
                }
                offset |= u64::from(b & 0x7f) << shift;
                if b & 0x80 == 0 {
                    if b == 0 && shift > 0 {
                        return Err(CursorError::Malformed);
                    }
                    break;
                }
                shift += 7;
            }
            let len = usize::from(*bin.get(i).ok_or(CursorError::Malformed)?);
            i += 1;
            if len > MAX_EPOCH_LEN {
                return Err(CursorError::Malformed);
            }
            let epoch = bin.get(i..i + len).ok_or(CursorError::Malformed)?;
            i += len;
            if !epoch.iter().all(|b| b.is_ascii_graphic()) {
                return Err(CursorError::Malformed);
            }
            let epoch = String::from_utf8(epoch.to_vec()).map_err(|_| CursorError::Malformed)?;
            if entries.iter().any(|(k, _)| *k == h) {
                return Err(CursorError::Malformed);
            }
            if !channels.iter().any(|c| channel_hash(c) == h) {
                return Err(CursorError::Foreign);
            }
            entries.push((h, StreamPosition { offset, epoch }));
        }
        Ok(Self { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let mut c = Cursor::new();
        c.set("a", StreamPosition::new(5, "ep1"));
        c.set("b:x", StreamPosition::new(u64::MAX, "zz"));
        let text = c.encode();
        let back = Cursor::decode(&text, &["a", "b:x"]).unwrap();
        assert_eq!(back, c);
        let mut moved = c.clone();
        moved.advance("a", 9, "ep1");
        moved.advance("b:x", 1, "new");
        assert_eq!(moved.get("a"), Some(&StreamPosition::new(9, "ep1")));
        assert_eq!(moved.get("b:x"), Some(&StreamPosition::new(1, "new")));
        assert_eq!(Cursor::decode(&text, &["a"]), Err(CursorError::Foreign));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(Cursor::decode("", &["a"]), Err(CursorError::Version));
        assert_eq!(Cursor::decode("2AAAA", &["a"]), Err(CursorError::Version));
        assert_eq!(Cursor::decode("1!!!", &["a"]), Err(CursorError::Malformed));
        assert_eq!(
            Cursor::decode(&"1".repeat(5000), &["a"]),
            Err(CursorError::TooLong)
        );
        assert!(Cursor::decode("1AAAA", &["a"]).is_err());
    }

    proptest! {
        #[test]
        fn decode_never_panics(s in "1[A-Za-z0-9_-]{0,200}") {
            let _ = Cursor::decode(&s, &["a", "b"]);
        }

        #[test]
        fn round_trips(offsets in proptest::collection::vec(any::<u64>(), 1..5), epoch in "[a-z0-9]{1,32}") {
            let names: Vec<String> = (0..offsets.len()).map(|i| format!("ch{i}")).collect();
            let mut c = Cursor::new();
            for (n, o) in names.iter().zip(&offsets) {
                c.set(n, StreamPosition::new(*o, epoch.clone()));
            }
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            prop_assert_eq!(Cursor::decode(&c.encode(), &refs).unwrap(), c);
        }
    }
}
