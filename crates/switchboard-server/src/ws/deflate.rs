//! permessage-deflate (RFC 7692) without per-session compression state.
//!
//! The server always answers with `server_no_context_takeover` and `client_no_context_takeover`:
//! every message is compressed and decompressed on its own, so
//! - a publication is compressed **once** and the same frame is written to every subscriber
//!   that negotiated the extension (the parameters are the same for all of them);
//! - a session holds no zlib context (a deflate window is 32 KiB, a compressor several hundred);
//!   the compressor and decompressor are per worker thread and reset before each message.
//!
//! Offers the server cannot honour that way are declined one by one (RFC 7692 §5): an offer
//! with an unknown or repeated parameter, or with `server_max_window_bits` below 15 (the
//! compressor always uses a 32 KiB window). Declining every offer leaves the connection
//! uncompressed; it never fails the handshake.

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use switchboard_protocol::Disconnect;

/// The extension as the server accepts it.
pub const RESPONSE: &str =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// The empty stored block that ends a sync flush; stripped from each compressed message and
/// appended again before decompressing (RFC 7692 §7.2.1, §7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Whether one of the client's `Sec-WebSocket-Extensions` offers (all header lines, in order)
/// can be accepted.
pub fn accepts<'a>(offers: impl IntoIterator<Item = &'a str>) -> bool {
    offers
        .into_iter()
        .flat_map(|line| line.split(','))
        .any(acceptable)
}

/// One offer: `permessage-deflate` followed by `; name[=value]` parameters.
fn acceptable(offer: &str) -> bool {
    let mut parts = offer.split(';').map(str::trim);
    if !parts
        .next()
        .is_some_and(|n| n.eq_ignore_ascii_case("permessage-deflate"))
    {
        return false;
    }
    let mut seen: Vec<&str> = Vec::new();
    for p in parts {
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (n.trim(), Some(unquote(v.trim()))),
            None => (p, None),
        };
        if seen.iter().any(|s| s.eq_ignore_ascii_case(name)) {
            return false; // RFC 7692 §7: a parameter may appear once
        }
        seen.push(name);
        let ok = match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" | "client_no_context_takeover" => value.is_none(),
            // Our compressor's window is always 15 bits: only an offer that allows it works.
            "server_max_window_bits" => value == Some("15"),
            // The client tells us it supports the parameter (no value) or caps its own window:
            // any window up to 15 bits decompresses with ours, so we leave it out of the reply.
            "client_max_window_bits" => value.is_none_or(window_bits),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// A parameter value: a token or a quoted string (RFC 7692 §7.1: the same rules either way).
fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
}

/// A window size as RFC 7692 §7.1.2 writes it: a decimal 8–15 without leading zeros or sign.
fn window_bits(v: &str) -> bool {
    matches!(v, "8" | "9" | "10" | "11" | "12" | "13" | "14" | "15")
}

thread_local! {
    static COMPRESSOR: RefCell<Option<(u32, Compress)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<Decompress>> = const { RefCell::new(None) };
}

/// Compresses one message (no context takeover). `None` when compression does not make it
/// smaller; the caller then sends it uncompressed.
pub fn compress(payload: &[u8], level: u32) -> Option<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let c = match &mut *slot {
            Some((l, c)) if *l == level => {
                c.reset();
                c
            }
            other => {
                &mut other
                    .insert((level, Compress::new(Compression::new(level), false)))
                    .1
            }
        };
        let mut out = Vec::with_capacity(payload.len() / 2 + 64);
        loop {
            let consumed = usize::try_from(c.total_in()).ok()?;
            let rest = payload.get(consumed..)?;
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(64));
            }
            c.compress_vec(rest, &mut out, FlushCompress::Sync).ok()?;
            let done = usize::try_from(c.total_in()).ok()? == payload.len();
            // A sync flush has completed once it could end the output with its empty block
            // and room was left over (a full buffer may hold more pending output).
            if done && out.ends_with(&TAIL) && out.len() < out.capacity() {
                break;
            }
        }
        out.truncate(out.len() - TAIL.len());
        (out.len() < payload.len()).then_some(out)
    })
}

/// Decompresses one client message of at most `max` bytes.
///
/// # Errors
/// 4504 (too large) past `max`, 1002 for data that is not a valid deflate stream.
pub fn decompress(payload: &[u8], max: usize) -> Result<BytesMut, Disconnect> {
    let limit = max.saturating_add(1);
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let d = slot.get_or_insert_with(|| Decompress::new(false));
        d.reset(false);
        let first = payload.len().saturating_mul(4).clamp(64, 64 * 1024);
        let mut out: Vec<u8> = Vec::with_capacity(first.min(limit));
        'input: for input in [payload, &TAIL[..]] {
            let mut pos = 0;
            loop {
                if out.len() == out.capacity() {
                    if out.len() >= limit {
                        return Err(Disconnect::TOO_LARGE);
                    }
                    out.reserve(out.capacity().max(256).min(limit - out.len()));
                }
                let (in_before, out_before) = (d.total_in(), d.total_out());
                let rest = input.get(pos..).unwrap_or_default();
                let status = d
                    .decompress_vec(rest, &mut out, FlushDecompress::Sync)
                    .map_err(|_| Disconnect::PROTOCOL_ERROR)?;
                let used = usize::try_from(d.total_in() - in_before).unwrap_or(usize::MAX);
                pos = pos.saturating_add(used);
                if out.len() > max {
                    return Err(Disconnect::TOO_LARGE);
                }
                if status == Status::StreamEnd {
                    break 'input; // a final block (RFC 7692 §7.2.3.4): the message is complete
                }
                // Done with this input only when a call with room to spare makes no progress:
                // miniz_oxide can return with output still pending although `out` has room and
                // the input is used up (at the edges of its 32 KiB window), so "input consumed"
                // alone would cut the message short.
                let idle = used == 0 && d.total_out() == out_before;
                if idle && out.len() < out.capacity() {
                    if pos < input.len() {
                        return Err(Disconnect::PROTOCOL_ERROR); // stuck on invalid data
                    }
                    break;
                }
            }
        }
        Ok(BytesMut::from(Bytes::from(out)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers() {
        assert!(accepts(["permessage-deflate; client_max_window_bits"]));
        assert!(accepts(["permessage-deflate"]));
        assert!(accepts([
            "permessage-deflate; server_max_window_bits=10, permessage-deflate"
        ]));
        assert!(accepts([
            "x-webkit-deflate-frame",
            "permessage-deflate; client_max_window_bits=12; server_no_context_takeover"
        ]));
        assert!(!accepts(["permessage-deflate; server_max_window_bits=10"]));
        assert!(!accepts(["permessage-deflate; foo"]));
        assert!(!accepts([
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover"
        ]));
        assert!(!accepts(["permessage-deflate; client_max_window_bits=16"]));
        assert!(!accepts([
            "permessage-deflate; server_no_context_takeover=1"
        ]));
        assert!(!accepts([""]));
    }

    #[test]
    fn round_trip_and_rfc_example() {
        // RFC 7692 §7.2.3.1: "Hello" compressed without context takeover.
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(&decompress(&hello, 100).unwrap()[..], b"Hello");
        let json = br#"{"op":"pub","channel":"prices:BTC-USD","data":{"symbol":"BTC-USD","bid":64123.5,"ask":64124.0,"ts":1764670000000}}"#.repeat(20);
        let c = compress(&json, 6).unwrap();
        assert!(c.len() * 5 < json.len());
        assert_eq!(&decompress(&c, json.len()).unwrap()[..], &json[..]);
        // Same input, same output: the compressor is reset between messages.
        assert_eq!(compress(&json, 6).unwrap(), c);
        assert!(compress(b"ab", 6).is_none());
    }

    /// Regression (found by the `ws_inflate` fuzz target): a valid 79-byte message that
    /// inflates to 65,568 bytes came back as its first 65,536: miniz_oxide stopped at its window
    /// edge with output pending, and the loop took "input used up, room left" for the end.
    #[test]
    fn output_pending_at_a_window_edge_is_not_dropped() {
        let payload = [
            0xec, 0xc1, 0x01, 0x0d, 0x00, 0x00, 0x00, 0xc2, 0xa0, 0xf7, 0x4f, 0x6d, 0x0e, 0x37,
            0xa0, 0x00, 0x14, 0x14, 0x14, 0x04, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x14, 0x00,
            0x00, 0x00, 0x14, 0x14, 0x14, 0x14, 0x14, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0xe0, 0x00, 0x94, 0x00, 0x00, 0xdf, 0x00,
        ];
        let out = decompress(&payload, 1 << 20).unwrap();
        assert_eq!(out.len(), 65_568);
        assert_eq!(decompress(&payload, 65_568).unwrap().len(), 65_568);
        assert_eq!(
            decompress(&payload, 65_567).unwrap_err(),
            Disconnect::TOO_LARGE
        );
    }

    #[test]
    fn bounded_and_invalid_input() {
        let zeros = vec![0u8; 1 << 20];
        let c = compress(&zeros, 9).unwrap();
        assert_eq!(decompress(&c, 1000).unwrap_err(), Disconnect::TOO_LARGE);
        assert_eq!(decompress(&c, zeros.len()).unwrap().len(), zeros.len());
        assert_eq!(
            decompress(&[0xff, 0xff, 0xff], 100).unwrap_err(),
            Disconnect::PROTOCOL_ERROR
        );
        assert_eq!(decompress(&[], 100).unwrap().len(), 0);
    }
}
