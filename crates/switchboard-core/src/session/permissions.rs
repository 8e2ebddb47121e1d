//! Who may subscribe and publish where (see `docs/protocol.md`, "Channels and permissions").

use switchboard_protocol::channel::pattern_matches;
use switchboard_protocol::{ChannelName, ErrorCode, ProtocolError};

use crate::auth::Credentials;
use crate::config::NamespaceConfig;

fn denied(what: &str) -> ProtocolError {
    ProtocolError::new(
        ErrorCode::PermissionDenied,
        format!("not allowed to {what} this channel"),
    )
}

/// Subscribe (and history/presence) permission.
pub(crate) fn can_subscribe(
    c: &Credentials,
    ch: &ChannelName<'_>,
    ns: &NamespaceConfig,
) -> Result<(), ProtocolError> {
    if let Some(allowed) = ch.user_allowed(&c.user) {
        return if allowed {
            Ok(())
        } else {
            Err(denied("subscribe to"))
        };
    }
    let anonymous = c.is_anonymous();
    let ok = c.channels.iter().any(|p| pattern_matches(p, ch.as_str()))
        || (!anonymous && ns.allow_subscribe)
        || (anonymous && ns.allow_anonymous);
    if ok {
        Ok(())
    } else {
        Err(denied("subscribe to"))
    }
}

/// Publish permission.
pub(crate) fn can_publish(
    c: &Credentials,
    ch: &ChannelName<'_>,
    ns: &NamespaceConfig,
) -> Result<(), ProtocolError> {
    if ch.user_allowed(&c.user) == Some(false) {
        return Err(denied("publish to"));
    }
    let ok = c.publish.iter().any(|p| pattern_matches(p, ch.as_str()))
        || (!c.is_anonymous() && ns.allow_publish);
    if ok {
        Ok(())
    } else {
        Err(denied("publish to"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(user: &str, channels: &[&str], publish: &[&str]) -> Credentials {
        Credentials {
            user: user.into(),
            expires_at: Some(u64::MAX),
            channels: channels.iter().map(|s| s.to_string()).collect(),
            publish: publish.iter().map(|s| s.to_string()).collect(),
            info: None,
        }
    }

    #[test]
    fn user_channels_only_for_listed_users() {
        let ns = NamespaceConfig::default();
        let ch = ChannelName::parse("notifications:inbox#42", 255).unwrap();
        assert!(can_subscribe(&creds("42", &[], &[]), &ch, &ns).is_ok());
        assert!(can_subscribe(&creds("7", &["*"], &[]), &ch, &ns).is_err());
        assert!(
            can_subscribe(
                &Credentials::anonymous(),
                &ch,
                &NamespaceConfig {
                    allow_anonymous: true,
                    ..ns
                }
            )
            .is_err()
        );
    }

    #[test]
    fn claims_and_namespace_policy() {
        let closed = NamespaceConfig {
            allow_subscribe: false,
            ..Default::default()
        };
        let ch = ChannelName::parse("chat:lobby", 255).unwrap();
        assert!(can_subscribe(&creds("1", &["chat:*"], &[]), &ch, &closed).is_ok());
        assert!(can_subscribe(&creds("1", &["news:*"], &[]), &ch, &closed).is_err());
        assert!(can_subscribe(&creds("1", &[], &[]), &ch, &NamespaceConfig::default()).is_ok());
        assert!(
            can_subscribe(&Credentials::anonymous(), &ch, &NamespaceConfig::default()).is_err()
        );
        assert!(can_publish(&creds("1", &[], &[]), &ch, &NamespaceConfig::default()).is_err());
        assert!(
            can_publish(
                &creds("1", &[], &["chat:*"]),
                &ch,
                &NamespaceConfig::default()
            )
            .is_ok()
        );
        let open = NamespaceConfig {
            allow_publish: true,
            ..Default::default()
        };
        assert!(can_publish(&creds("1", &[], &[]), &ch, &open).is_ok());
        assert!(can_publish(&Credentials::anonymous(), &ch, &open).is_err());
    }
}
