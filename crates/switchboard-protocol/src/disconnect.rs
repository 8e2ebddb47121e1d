//! Why a session ended: a code, a reason and whether the client should reconnect.
//!
//! Application codes live in two ranges: 4000–4499 ask the client to reconnect (with jittered
//! backoff) and resume; 4500–4999 are terminal (reconnecting would fail the same way). RFC 6455
//! codes are used for WebSocket protocol faults. `docs/protocol.md` holds the same table; a test
//! checks the two agree.

use std::borrow::Cow;

/// A disconnect: sent as a `disconnect` push and as the WebSocket close frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disconnect {
    /// Close code.
    pub code: u16,
    /// Short reason (fits a close frame: at most 123 bytes).
    pub reason: Cow<'static, str>,
    /// Whether the client should reconnect.
    pub reconnect: bool,
}

macro_rules! codes {
    ($( $(#[$doc:meta])* $name:ident = $code:literal, $reason:literal, $reconnect:literal; )*) => {
        impl Disconnect {
            $( $(#[$doc])* pub const $name: Disconnect = Disconnect {
                code: $code, reason: Cow::Borrowed($reason), reconnect: $reconnect,
            }; )*
            /// Every defined disconnect, for documentation and tests.
            pub const ALL: &'static [Disconnect] = &[$( Disconnect::$name ),*];
        }
    };
}

codes! {
    /// The node is shutting down or restarting; reconnect (to another node) and resume.
    SHUTDOWN = 4000, "shutdown", true;
    /// No pong arrived in time; the link is presumed dead.
    STALE = 4001, "stale", true;
    /// The client read too slowly and its outbound queue overflowed.
    SLOW = 4002, "slow consumer", true;
    /// The node lost track of a channel's stream (a gap it could not repair); resubscribe
    /// from the last position.
    INSUFFICIENT_STATE = 4003, "insufficient state", true;
    /// The token expired without a refresh; reconnect with a fresh token.
    EXPIRED = 4004, "token expired", true;
    /// The client sent commands faster than allowed.
    RATE_LIMITED = 4005, "rate limited", true;
    /// The server asked the client to reconnect (API call, rebalancing).
    FORCE_RECONNECT = 4006, "force reconnect", true;
    /// The node is at a connection limit; try again later.
    CONNECTION_LIMIT = 4007, "connection limit", true;
    /// The client broke the protocol repeatedly or before connecting.
    BAD_REQUEST = 4500, "bad request", false;
    /// The token is invalid (signature, algorithm, claims).
    INVALID_TOKEN = 4501, "invalid token", false;
    /// No `connect` command arrived within the auth timeout.
    AUTH_TIMEOUT = 4502, "auth timeout", false;
    /// The server disconnected the user and does not want them back now.
    FORBIDDEN = 4503, "forbidden", false;
    /// A frame exceeded the message size limit.
    TOO_LARGE = 4504, "message too large", false;
    /// The client sent a binary frame; only JSON text frames are spoken.
    UNSUPPORTED_DATA = 1003, "binary frames are not supported", false;
    /// The WebSocket framing was broken (unmasked frame, bad opcode, ...).
    PROTOCOL_ERROR = 1002, "protocol error", false;
    /// A text frame was not valid UTF-8.
    INVALID_UTF8 = 1007, "invalid utf-8", false;
    /// The node failed internally.
    INTERNAL = 1011, "internal error", true;
}

impl Disconnect {
    /// Looks up a defined disconnect by code.
    pub fn from_code(code: u16) -> Option<&'static Disconnect> {
        Self::ALL.iter().find(|d| d.code == code)
    }

    /// Whether `code` asks the client to reconnect: the 4000–4499 range and the RFC codes that
    /// are not protocol faults.
    pub fn code_reconnects(code: u16) -> bool {
        match code {
            4000..=4499 => true,
            4500..=4999 => false,
            1002 | 1003 | 1007 | 1009 => false,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_agree_with_flags() {
        for d in Disconnect::ALL {
            assert_eq!(Disconnect::code_reconnects(d.code), d.reconnect, "{d:?}");
            assert!(d.reason.len() <= 123);
        }
        let mut codes: Vec<u16> = Disconnect::ALL.iter().map(|d| d.code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Disconnect::ALL.len(), "duplicate code");
    }
}
