//! Key and pubsub channel names.
//!
//! Every key of a channel carries the channel name as its hash tag (`{channel}`), so a channel's
//! keys and its sharded pubsub channel live in one cluster slot and one Lua script may touch them
//! all. Channel names never contain `{` or `}` (the protocol's grammar forbids them), so the tag
//! ends where the channel name ends and no two channels' keys can collide. Node-wide names use the
//! prefix itself as the tag (`{sb}:...`), so they can never collide with channel keys
//! (`sb:{...}`).

/// Builds names under one prefix.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    prefix: String,
    control: String,
    nodes: String,
    nodes_info: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            control: format!("{{{prefix}}}:control"),
            nodes: format!("{{{prefix}}}:nodes"),
            nodes_info: format!("{{{prefix}}}:nodes:info"),
        }
    }

    fn channel_key(&self, channel: &str, suffix: &str) -> String {
        let mut s = String::with_capacity(self.prefix.len() + channel.len() + suffix.len() + 4);
        s.push_str(&self.prefix);
        s.push_str(":{");
        s.push_str(channel);
        s.push_str("}:");
        s.push_str(suffix);
        s
    }

    /// The history stream (entry id `<offset>-0`, fields `d` data, `x` expiry ms, `i` info).
    pub(crate) fn stream(&self, channel: &str) -> String {
        self.channel_key(channel, "s")
    }

    /// The stream's meta hash: `e` epoch, `o` top offset.
    pub(crate) fn meta(&self, channel: &str) -> String {
        self.channel_key(channel, "m")
    }

    /// A stored idempotent publish result (`<offset>:<epoch>`).
    pub(crate) fn idempotency(&self, channel: &str, key: &str) -> String {
        self.channel_key(channel, &format!("i:{key}"))
    }

    /// Presence hash: client id → `ClientInfo` JSON.
    pub(crate) fn presence(&self, channel: &str) -> String {
        self.channel_key(channel, "p")
    }

    /// Presence expiry zset: client id → expiry time (ms).
    pub(crate) fn presence_expiry(&self, channel: &str) -> String {
        self.channel_key(channel, "pz")
    }

    /// The pubsub channel carrying the channel's publications and join/leave events.
    pub(crate) fn pubsub(&self, channel: &str) -> String {
        self.channel_key(channel, "ps")
    }

    /// The channel name from a pubsub channel name, if it is one of ours.
    pub(crate) fn channel_of_pubsub<'a>(&self, pubsub: &'a str) -> Option<&'a str> {
        pubsub
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(":{")?
            .strip_suffix("}:ps")
    }

    /// A single-use value (ticket, SSE resume secret). Keyed by its own name, so values spread
    /// over a cluster's slots.
    pub(crate) fn once(&self, key: &str) -> String {
        format!("{}:o:{{{key}}}", self.prefix)
    }

    /// The node-wide control pubsub channel.
    pub(crate) fn control(&self) -> &str {
        &self.control
    }

    /// Zset of node name → last heartbeat (ms).
    pub(crate) fn nodes(&self) -> &str {
        &self.nodes
    }

    /// Hash of node name → `NodeInfo` JSON.
    pub(crate) fn nodes_info(&self) -> &str {
        &self.nodes_info
    }
}

#[cfg(test)]
mod tests {
    use super::Keys;

    #[test]
    fn layout() {
        let k = Keys::new("sb");
        assert_eq!(k.stream("chat:lobby"), "sb:{chat:lobby}:s");
        assert_eq!(k.meta("chat:lobby"), "sb:{chat:lobby}:m");
        assert_eq!(k.idempotency("c", "k1"), "sb:{c}:i:k1");
        assert_eq!(k.pubsub("chat:lobby"), "sb:{chat:lobby}:ps");
        assert_eq!(
            k.channel_of_pubsub("sb:{chat:lobby}:ps"),
            Some("chat:lobby")
        );
        assert_eq!(k.channel_of_pubsub("sb:{chat:lobby}:s"), None);
        assert_eq!(k.channel_of_pubsub("xx:{chat:lobby}:ps"), None);
        assert_eq!(k.control(), "{sb}:control");
        assert_eq!(k.nodes(), "{sb}:nodes");
    }
}
