//! The nesting limit of publication data.
//!
//! Publication data is validated once, when it is published, and from then on embedded
//! byte-for-byte in every envelope (WebSocket push, SSE event, poll body, history reply): no
//! path parses it again. The one limit that makes every envelope readable by common JSON parsers
//! is its nesting depth: serde_json refuses more than 128 levels, and our envelopes add at most
//! three around the data.

/// Deepest nesting of arrays and objects accepted in publication data (`{}` and `[]` are one
/// level, a scalar none).
pub const MAX_DATA_DEPTH: usize = 64;

/// The nesting depth of a JSON text (arrays and objects outside strings), stopping early once it
/// passes `limit`. Meant for text already known to be valid JSON; on other input it returns a
/// number without meaning, never panics.
pub fn json_depth(text: &[u8], limit: usize) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in text {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    max = depth;
                    if max > limit {
                        return max;
                    }
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::json_depth;

    #[test]
    fn counts_containers_outside_strings() {
        assert_eq!(json_depth(b"1", 64), 0);
        assert_eq!(json_depth(b"[]", 64), 1);
        assert_eq!(json_depth(br#"{"a":[1,{"b":2}]}"#, 64), 3);
        assert_eq!(json_depth(br#"{"a":"[[[{{{\"[["}"#, 64), 1);
        assert_eq!(json_depth(br#"["\\",[]]"#, 64), 2);
    }

    #[test]
    fn stops_past_the_limit() {
        let deep = "[".repeat(100_000);
        assert_eq!(json_depth(deep.as_bytes(), 64), 65);
    }
}
