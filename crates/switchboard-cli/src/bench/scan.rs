//! Cheap byte scans used on the hot receive path instead of full JSON parsing.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch (the clock shared by the publisher and the clients).
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let last_start = hay.len().checked_sub(needle.len())?;
    let mut i = 0;
    while i <= last_start {
        // Skip quickly to the next candidate first byte.
        match hay[i..=last_start].iter().position(|&b| b == first) {
            None => return None,
            Some(off) => i += off,
        }
        if &hay[i..i + needle.len()] == needle {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Calls `f` with every `"ts":<digits>` value in `hay`, in order.
pub fn each_ts(mut hay: &[u8], mut f: impl FnMut(u64)) {
    const KEY: &[u8] = br#""ts":"#;
    while let Some(p) = find(hay, KEY) {
        let rest = &hay[p + KEY.len()..];
        let mut v: u64 = 0;
        let mut n = 0;
        for &b in rest.iter().skip_while(|b| **b == b' ') {
            if !b.is_ascii_digit() {
                break;
            }
            v = v.saturating_mul(10).saturating_add(u64::from(b - b'0'));
            n += 1;
        }
        if n > 0 {
            f(v);
        }
        hay = rest;
    }
}

/// The first `"ts":` value in `hay`.
pub fn first_ts(hay: &[u8]) -> Option<u64> {
    let mut out = None;
    each_ts(hay, |v| {
        if out.is_none() {
            out = Some(v);
        }
    });
    out
}

/// The string value of `"key":"..."` (no escapes expected: cursors are base64url).
pub fn string_field<'a>(hay: &'a [u8], key: &[u8]) -> Option<&'a str> {
    let p = find(hay, key)?;
    let rest = &hay[p + key.len()..];
    let rest = rest.strip_prefix(b":")?.strip_prefix(b"\"")?;
    let end = rest.iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&rest[..end]).ok()
}

/// Percent-encodes everything outside RFC 3986's unreserved set (and `:`).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A short, single-line excerpt of a server reply for error summaries.
pub fn excerpt(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(160)]);
    s.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans() {
        let m = br#"{"op":"pub","channel":"bench:x","offset":3,"data":{"seq":1,"ts":1700000000123456,"pad":"xx"}}"#;
        assert_eq!(first_ts(m), Some(1_700_000_000_123_456));
        let mut v = vec![];
        each_ts(br#"[{"ts":1},{"ts":22},{"ts": 333}]"#, |t| v.push(t));
        assert_eq!(v, vec![1, 22, 333]);
        assert_eq!(first_ts(b"nothing"), None);
        assert_eq!(
            string_field(br#"{"publications":[],"cursor":"1abc-_"}"#, br#""cursor""#),
            Some("1abc-_")
        );
        assert_eq!(find(b"abcabd", b"abd"), Some(3));
        assert_eq!(find(b"ab", b"abc"), None);
        assert_eq!(url_encode("bench:a b/c"), "bench:a%20b%2Fc");
    }
}
