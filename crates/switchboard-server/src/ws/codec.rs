//! A minimal server-side WebSocket frame codec (RFC 6455), IO-free.
//!
//! Why not tungstenite for this part: a server pushes the same publication to thousands of
//! sockets. Server frames are unmasked, so one publication is framed **once** (`Bytes` with
//! header and payload) and the same bytes are written to every subscriber with vectored
//! writes; tungstenite copies every message into a per-connection buffer that keeps its peak
//! size. Reading is simple for a server (masked frames; RSV1 only for permessage-deflate), and this
//! parser is checked against tungstenite's client in the integration tests.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use switchboard_protocol::Disconnect;

/// Frame opcodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    /// Continuation of a fragmented message.
    Continuation,
    /// UTF-8 text.
    Text,
    /// Binary data.
    Binary,
    /// Close.
    Close,
    /// Ping.
    Ping,
    /// Pong.
    Pong,
}

impl Opcode {
    fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0 => Self::Continuation,
            1 => Self::Text,
            2 => Self::Binary,
            8 => Self::Close,
            9 => Self::Ping,
            10 => Self::Pong,
            _ => return None,
        })
    }

    fn as_u8(self) -> u8 {
        match self {
            Self::Continuation => 0,
            Self::Text => 1,
            Self::Binary => 2,
            Self::Close => 8,
            Self::Ping => 9,
            Self::Pong => 10,
        }
    }

    fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// A decoded client frame with its payload unmasked.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    /// Final fragment.
    pub fin: bool,
    /// Opcode.
    pub opcode: Opcode,
    /// RSV1: the message this frame starts is compressed (permessage-deflate).
    pub compressed: bool,
    /// Unmasked payload.
    pub payload: BytesMut,
}

/// Most buffer space reserved ahead of a frame's payload on the strength of its header.
const MAX_RESERVE: usize = 1 << 20;

/// Parses one client frame from the front of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed. `max_payload` bounds a single frame's payload
/// before it is buffered, so an oversized frame is refused from its header alone. `deflate`:
/// permessage-deflate was negotiated, so RSV1 may mark the first frame of a data message.
///
/// # Errors
/// The disconnect to close with: protocol errors (1002) and oversized frames (4504).
pub fn parse(
    buf: &mut BytesMut,
    max_payload: usize,
    deflate: bool,
) -> Result<Option<Frame>, Disconnect> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let b0 = buf[0];
    let b1 = buf[1];
    let fin = b0 & 0x80 != 0;
    let opcode = Opcode::from_u8(b0 & 0x0f).ok_or(Disconnect::PROTOCOL_ERROR)?;
    let compressed = b0 & 0x40 != 0;
    // RSV bits need a negotiated extension; permessage-deflate uses RSV1, and only on the
    // first frame of a data message (RFC 7692 §6).
    let rsv1_ok = deflate && matches!(opcode, Opcode::Text | Opcode::Binary);
    if b0 & 0x30 != 0 || (compressed && !rsv1_ok) {
        return Err(Disconnect::PROTOCOL_ERROR);
    }
    if b1 & 0x80 == 0 {
        return Err(Disconnect::PROTOCOL_ERROR); // clients must mask
    }
    let (len, header) = match b1 & 0x7f {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            let len = u64::from_be_bytes(b);
            if len >> 63 != 0 {
                return Err(Disconnect::PROTOCOL_ERROR);
            }
            (len, 10)
        }
        n => (u64::from(n), 2),
    };
    if opcode.is_control() && (!fin || len > 125) {
        return Err(Disconnect::PROTOCOL_ERROR);
    }
    if len > max_payload as u64 {
        return Err(Disconnect::TOO_LARGE);
    }
    let len = len as usize;
    let Some(total) = (header + 4usize).checked_add(len) else {
        return Err(Disconnect::TOO_LARGE);
    };
    if buf.len() < total {
        // The length is only the peer's claim: make room for the rest of the frame up to a
        // bound, so a header alone never reserves a large limit (a huge reservation aborts the
        // process); a longer payload grows the buffer as it arrives.
        buf.reserve((total - buf.len()).min(MAX_RESERVE));
        return Ok(None);
    }
    let mut mask = [0u8; 4];
    mask.copy_from_slice(&buf[header..header + 4]);
    buf.advance(header + 4);
    let mut payload = buf.split_to(len);
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
    Ok(Some(Frame {
        fin,
        opcode,
        compressed,
        payload,
    }))
}

/// Encodes a server frame header for a final frame (`rsv1`: a compressed message).
fn put_header(out: &mut BytesMut, opcode: Opcode, rsv1: bool, len: usize) {
    out.put_u8(0x80 | if rsv1 { 0x40 } else { 0 } | opcode.as_u8());
    if len < 126 {
        out.put_u8(len as u8);
    } else if len <= 0xffff {
        out.put_u8(126);
        out.put_u16(len as u16);
    } else {
        out.put_u8(127);
        out.put_u64(len as u64);
    }
}

/// Frames `payload` as one unmasked server frame.
pub fn frame(opcode: Opcode, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 10);
    put_header(&mut out, opcode, false, payload.len());
    out.put_slice(payload);
    out.freeze()
}

/// Frames an already compressed data message (RSV1 set, permessage-deflate).
pub fn frame_compressed(opcode: Opcode, compressed: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(compressed.len() + 10);
    put_header(&mut out, opcode, true, compressed.len());
    out.put_slice(compressed);
    out.freeze()
}

/// Whether a peer may send `code` in a close frame (RFC 6455 §7.4): the registered codes
/// 1000–1003 and 1007–1014, and the ranges for libraries (3000–3999) and applications
/// (4000–4999). 1004–1006 and 1015 are reserved and must never appear on the wire.
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// The code to answer a client's close frame with: the client's own code when it is valid,
/// 1000 when it gave none, 1002 for a one-byte payload or a code that may not be sent, 1007 for
/// a reason that is not UTF-8 (RFC 6455 §5.5.1, §7.4, §8.1).
pub fn close_reply_code(payload: &[u8]) -> u16 {
    match payload {
        [] => 1000,
        [_] => 1002,
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !is_valid_close_code(code) {
                1002
            } else if std::str::from_utf8(reason).is_err() {
                1007
            } else {
                code
            }
        }
    }
}

/// A close frame with `code` and `reason` (cut at a character boundary to fit 125 bytes).
pub fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let r = &reason.as_bytes()[..end];
    let mut p = Vec::with_capacity(2 + r.len());
    p.extend_from_slice(&code.to_be_bytes());
    p.extend_from_slice(r);
    frame(Opcode::Close, &p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(fin: bool, op: u8, payload: &[u8]) -> BytesMut {
        let mask = [1u8, 2, 3, 4];
        let mut b = BytesMut::new();
        b.put_u8(if fin { 0x80 } else { 0 } | op);
        if payload.len() < 126 {
            b.put_u8(0x80 | payload.len() as u8);
        } else if payload.len() <= 0xffff {
            b.put_u8(0x80 | 126);
            b.put_u16(payload.len() as u16);
        } else {
            b.put_u8(0x80 | 127);
            b.put_u64(payload.len() as u64);
        }
        b.put_slice(&mask);
        b.extend(payload.iter().enumerate().map(|(i, x)| x ^ mask[i % 4]));
        b
    }

    #[test]
    fn parses_all_length_forms_incrementally() {
        for n in [0usize, 5, 125, 126, 1000, 70_000] {
            let payload: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            let full = masked(true, 1, &payload);
            let mut buf = BytesMut::new();
            let mut got = None;
            for chunk in full.chunks(777) {
                assert!(got.is_none());
                buf.extend_from_slice(chunk);
                got = parse(&mut buf, 100_000, false).unwrap();
            }
            let f = got.unwrap();
            assert_eq!(&f.payload[..], &payload[..]);
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn rejects_protocol_violations() {
        let mut unmasked = BytesMut::from(&[0x81u8, 0x01, b'x'][..]);
        assert_eq!(
            parse(&mut unmasked, 100, false),
            Err(Disconnect::PROTOCOL_ERROR)
        );
        let with_rsv = |op: u8, bit: u8| {
            let mut f = masked(true, op, b"x");
            f[0] |= bit;
            f
        };
        // RSV1 without the extension; RSV2/RSV3 always.
        assert_eq!(
            parse(&mut with_rsv(1, 0x40), 100, false),
            Err(Disconnect::PROTOCOL_ERROR)
        );
        for bit in [0x20, 0x10] {
            assert_eq!(
                parse(&mut with_rsv(1, bit), 100, true),
                Err(Disconnect::PROTOCOL_ERROR)
            );
        }
        assert_eq!(
            parse(&mut masked(true, 3, b"x"), 100, false),
            Err(Disconnect::PROTOCOL_ERROR)
        );
        assert_eq!(
            parse(&mut masked(false, 9, b"x"), 100, false),
            Err(Disconnect::PROTOCOL_ERROR)
        );
        assert_eq!(
            parse(&mut masked(true, 1, &[0; 200]), 100, false),
            Err(Disconnect::TOO_LARGE)
        );
    }

    /// Regression (the `ws_frame` fuzz contract: no panic for any limit): the length in a
    /// frame header is the peer's claim. Reserving all of it before the payload arrived
    /// panicked ("capacity overflow") or aborted the process (allocation failure) under a large
    /// `limits.max_message_size`; now the reservation is bounded.
    #[test]
    fn claimed_length_does_not_reserve_unbounded_memory() {
        for claim in [1u64 << 40, (1u64 << 62) + 3, (1 << 63) - 1] {
            let mut b = BytesMut::new();
            b.put_u8(0x81);
            b.put_u8(0x80 | 127);
            b.put_u64(claim);
            b.put_slice(&[1, 2, 3, 4, 0xaa]);
            assert_eq!(parse(&mut b, usize::MAX, false), Ok(None), "{claim}");
            assert!(b.capacity() <= 2 << 20, "{claim}: {}", b.capacity());
            assert_eq!(b.len(), 15);
        }
    }

    #[test]
    fn rsv1_marks_compressed_messages_only_where_rfc_7692_allows() {
        let mut text = masked(true, 1, b"x");
        text[0] |= 0x40;
        assert!(parse(&mut text, 100, true).unwrap().unwrap().compressed);
        // Not on a continuation frame, not on a control frame.
        for op in [0u8, 9, 10] {
            let mut f = masked(true, op, b"x");
            f[0] |= 0x40;
            assert_eq!(
                parse(&mut f, 100, true),
                Err(Disconnect::PROTOCOL_ERROR),
                "{op}"
            );
        }
        assert_eq!(
            &frame_compressed(Opcode::Text, b"ab")[..],
            &[0xc1, 2, b'a', b'b']
        );
    }

    #[test]
    fn answers_close_frames_as_rfc_6455_requires() {
        let close = |code: u16, reason: &[u8]| {
            let mut p = code.to_be_bytes().to_vec();
            p.extend_from_slice(reason);
            close_reply_code(&p)
        };
        assert_eq!(close_reply_code(b""), 1000);
        assert_eq!(close_reply_code(b"x"), 1002);
        for ok in [1000, 1001, 1003, 1007, 1011, 1014, 3000, 3999, 4000, 4999] {
            assert_eq!(close(ok, b"bye"), ok, "{ok}");
        }
        for bad in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
        ] {
            assert_eq!(close(bad, b""), 1002, "{bad}");
        }
        assert_eq!(close(1000, &[0xff, 0xfe]), 1007);
    }

    #[test]
    fn close_reason_is_cut_at_a_char_boundary() {
        let long = "é".repeat(100);
        let c = close_frame(1000, &long);
        assert!(c.len() <= 2 + 125);
        assert!(std::str::from_utf8(&c[4..]).is_ok());
    }

    #[test]
    fn frames_server_messages() {
        assert_eq!(&frame(Opcode::Text, b"hi")[..], &[0x81, 2, b'h', b'i']);
        assert_eq!(&frame(Opcode::Text, &[0; 300])[..4], &[0x81, 126, 1, 44]);
        let c = close_frame(4004, "token expired");
        assert_eq!(&c[..4], &[0x88, 15, 0x0f, 0xa4]);
    }
}
