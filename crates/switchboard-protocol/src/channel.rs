//! Channel names: `[namespace:]name[#user1,user2]`.
//!
//! Grammar (bytes, ASCII only):
//! - `namespace`: 1–64 of `[A-Za-z0-9_-]`, followed by `:`; absent means the default namespace.
//! - `name`: 1 or more of `[A-Za-z0-9_\-.=@/+]`.
//! - `#users`: optional; a comma-separated list of 1 or more user ids, each 1 or more of
//!   `[A-Za-z0-9_\-.@]`. Only the listed users may subscribe (personal channels).
//!
//! The whole name is limited to [`MAX_CHANNEL_LEN`] bytes by default; nodes may configure a
//! smaller limit.

use std::fmt;

/// Default upper bound on a channel name's length in bytes. Long enough for a namespace, a
/// UUID-like name and a couple of user ids; short enough that names are cheap map keys.
pub const MAX_CHANNEL_LEN: usize = 255;

/// Why a channel name was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// The name is empty.
    #[error("channel name is empty")]
    Empty,
    /// The name is longer than the limit.
    #[error("channel name is longer than {0} bytes")]
    TooLong(usize),
    /// A part of the name is empty or has a character the grammar does not allow.
    #[error(
        "channel name has an invalid {0}: use [namespace:]name[#user,...] with letters, digits and _-.=@/+"
    )]
    Invalid(&'static str),
}

/// A validated channel name with its parts located.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ChannelName<'a> {
    full: &'a str,
    ns_end: Option<usize>,
    users_start: Option<usize>,
}

fn ns_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}
fn name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'=' | b'@' | b'/' | b'+')
}
fn user_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@')
}

impl<'a> ChannelName<'a> {
    /// Parses and validates `s` with a maximum length of `max_len` bytes.
    ///
    /// # Errors
    /// [`ChannelError`] when the name does not follow the grammar.
    pub fn parse(s: &'a str, max_len: usize) -> Result<Self, ChannelError> {
        if s.is_empty() {
            return Err(ChannelError::Empty);
        }
        if s.len() > max_len {
            return Err(ChannelError::TooLong(max_len));
        }
        let bytes = s.as_bytes();
        let users_start = s.find('#');
        let head_end = users_start.unwrap_or(s.len());
        let ns_end = s[..head_end].find(':');
        let name_start = match ns_end {
            Some(i) => {
                let ns = &bytes[..i];
                if ns.is_empty() || ns.len() > 64 || !ns.iter().all(|&b| ns_byte(b)) {
                    return Err(ChannelError::Invalid("namespace"));
                }
                i + 1
            }
            None => 0,
        };
        let name = &bytes[name_start..head_end];
        if name.is_empty() || !name.iter().all(|&b| name_byte(b)) {
            return Err(ChannelError::Invalid("name"));
        }
        if let Some(u) = users_start {
            let users = &s[u + 1..];
            if users.is_empty() {
                return Err(ChannelError::Invalid("user list"));
            }
            for user in users.split(',') {
                if user.is_empty() || !user.bytes().all(user_byte) {
                    return Err(ChannelError::Invalid("user list"));
                }
            }
        }
        Ok(Self {
            full: s,
            ns_end,
            users_start,
        })
    }

    /// The whole name.
    pub fn as_str(&self) -> &'a str {
        self.full
    }

    /// The namespace, or `""` for the default namespace.
    pub fn namespace(&self) -> &'a str {
        self.ns_end.map_or("", |i| &self.full[..i])
    }

    /// The user ids after `#`, if the channel is limited to users.
    pub fn users(&self) -> Option<impl Iterator<Item = &'a str>> {
        self.users_start.map(|u| self.full[u + 1..].split(','))
    }

    /// Whether `user` may subscribe according to the `#users` part. `None` when the channel has
    /// no user part (the namespace and token decide).
    pub fn user_allowed(&self, user: &str) -> Option<bool> {
        let mut users = self.users()?;
        Some(!user.is_empty() && users.any(|u| u == user))
    }
}

impl fmt::Debug for ChannelName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.full, f)
    }
}

impl fmt::Display for ChannelName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.full)
    }
}

/// Matches a channel name against a permission pattern from a token claim.
///
/// A pattern is a channel name in which `*` matches any run of characters (including none),
/// e.g. `chat:*` or `orders:eu-*`. A pattern without `*` matches only itself.
pub fn pattern_matches(pattern: &str, channel: &str) -> bool {
    let p = pattern.as_bytes();
    let c = channel.as_bytes();
    // Classic linear-time glob with backtracking to the last star.
    let (mut pi, mut ci) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ci < c.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ci;
            pi += 1;
        } else if pi < p.len() && p[pi] == c[ci] {
            pi += 1;
            ci += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ci = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_parts() {
        let c = ChannelName::parse("notifications:inbox#42,7", 255).unwrap();
        assert_eq!(c.namespace(), "notifications");
        assert_eq!(c.users().unwrap().collect::<Vec<_>>(), ["42", "7"]);
        assert_eq!(c.user_allowed("42"), Some(true));
        assert_eq!(c.user_allowed("4"), Some(false));
        assert_eq!(c.user_allowed(""), Some(false));
        let c = ChannelName::parse("lobby", 255).unwrap();
        assert_eq!(c.namespace(), "");
        assert!(c.user_allowed("1").is_none());
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "", ":x", "a:", "a b", "a:b:c", "x#", "x#1,,2", "x#a b", "ns:na*me", "é", "a\n", "#1",
        ] {
            assert!(ChannelName::parse(bad, 255).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            ChannelName::parse(&"a".repeat(256), 255),
            Err(ChannelError::TooLong(255))
        );
        assert!(ChannelName::parse(&"a".repeat(255), 255).is_ok());
    }

    #[test]
    fn patterns() {
        assert!(pattern_matches("chat:*", "chat:lobby"));
        assert!(pattern_matches("chat:*", "chat:"));
        assert!(!pattern_matches("chat:*", "chatx:lobby"));
        assert!(pattern_matches("*", "anything"));
        assert!(pattern_matches("a*b*c", "aXXbYYc"));
        assert!(!pattern_matches("a*b*c", "aXXbYY"));
        assert!(pattern_matches("exact", "exact"));
        assert!(!pattern_matches("exact", "exact2"));
    }
}
