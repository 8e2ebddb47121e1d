//! The Switchboard side: channel names, who may subscribe to what (token claims), the
//! namespaces' policies, and the in-process publishes that follow each change.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use switchboard_core::{NamespaceConfig, Node};
use switchboard_server::Config;

use crate::model::{Counts, Notification, Request};
use crate::settings::Settings;
use crate::users::{Role, User};

/// Every request, for admins (granted by the token's `channels` claim only).
pub const ALL_REQUESTS: &str = "requests:all";
/// Live dashboard numbers.
pub const DASHBOARD: &str = "dashboard:counts";

/// A customer's own requests. The `#user` suffix means only that user may subscribe.
pub fn customer_requests(user: &str) -> String {
    format!("requests:customer#{user}")
}

/// Requests assigned to an employee.
pub fn assigned_requests(user: &str) -> String {
    format!("requests:assigned#{user}")
}

/// A user's notification inbox.
pub fn inbox(user: &str) -> String {
    format!("notifications:inbox#{user}")
}

/// The channels a user's token lets them subscribe to: their own personal channels and the
/// dashboard, nothing else.
pub fn channels_for(user: &User) -> Vec<String> {
    let requests = match user.role {
        Role::Customer => customer_requests(user.id),
        Role::Employee => assigned_requests(user.id),
        Role::Admin => ALL_REQUESTS.to_owned(),
    };
    vec![requests, inbox(user.id), DASHBOARD.to_owned()]
}

/// The embedded node's configuration: our secrets, no demo routes, and per-namespace policies
/// where only token claims (or the `#user` suffix) grant a subscription. Every namespace keeps
/// some history so a browser that reconnects resumes without missing a push.
pub fn switchboard_config(s: &Settings) -> Config {
    let ns = |history_size, ttl_secs| NamespaceConfig {
        history_size,
        history_ttl: Duration::from_secs(ttl_secs),
        allow_subscribe: false,
        ..NamespaceConfig::default()
    };
    let mut namespaces = BTreeMap::new();
    namespaces.insert("requests".into(), ns(200, 15 * 60));
    namespaces.insert("notifications".into(), ns(50, 60 * 60));
    namespaces.insert("dashboard".into(), ns(20, 15 * 60));
    namespaces.insert("default".into(), ns(0, 60));
    let mut config = Config {
        listen: s.listen.clone(),
        api_key: Some(s.api_key.clone()),
        demo: Some(false),
        allowed_origins: s.allowed_origins.clone(),
        namespaces,
        ..Config::default()
    };
    config.jwt.secret = Some(s.jwt_secret.clone());
    config
}

/// Publishes changes to the channels that care, in-process.
#[derive(Clone)]
pub struct Pusher {
    node: Node,
}

impl Pusher {
    /// Publishes through `node`.
    pub fn new(node: Node) -> Self {
        Self { node }
    }

    async fn publish(&self, channel: &str, data: &impl Serialize) {
        // The database is the source of truth: a failed push is logged, and clients that miss
        // it reload over REST when the node tells them it cannot resume.
        if let Err(e) = self.node.publish_json(channel, data, None).await {
            tracing::warn!(channel, "publish failed: {e}");
        }
    }

    /// A request was created or changed (`event`: `created`, `status` or `assigned`).
    /// `previous_assignee` also hears about it, so the request leaves their list.
    pub async fn request(
        &self,
        event: &str,
        request: &Request,
        actor: &str,
        previous_assignee: Option<&str>,
    ) {
        let data = json!({"type": "request", "event": event, "request": request, "actor": actor});
        self.publish(&customer_requests(&request.customer), &data)
            .await;
        self.publish(ALL_REQUESTS, &data).await;
        if let Some(a) = &request.assignee {
            self.publish(&assigned_requests(a), &data).await;
        }
        if let Some(prev) = previous_assignee.filter(|p| Some(*p) != request.assignee.as_deref()) {
            self.publish(&assigned_requests(prev), &data).await;
        }
    }

    /// New dashboard numbers.
    pub async fn counts(&self, counts: &Counts) {
        self.publish(DASHBOARD, &json!({"type": "counts", "counts": counts}))
            .await;
    }

    /// A new notification for `user`, with their unread count.
    pub async fn notification(&self, user: &str, notification: &Notification, unread: i64) {
        let data = json!({"type": "notification", "notification": notification, "unread": unread});
        self.publish(&inbox(user), &data).await;
    }

    /// The user read their notifications (other tabs clear their badge).
    pub async fn inbox_read(&self, user: &str) {
        self.publish(&inbox(user), &json!({"type": "read", "unread": 0}))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_personal() {
        let bob = crate::users::find("bob").unwrap();
        assert_eq!(
            channels_for(bob),
            [
                "requests:assigned#bob",
                "notifications:inbox#bob",
                "dashboard:counts"
            ]
        );
        let admin = crate::users::find("admin").unwrap();
        assert!(channels_for(admin).contains(&ALL_REQUESTS.to_owned()));
    }

    #[test]
    fn config_is_valid() {
        let c = switchboard_config(&Settings::for_tests());
        c.node_config().validate().unwrap();
        assert_eq!(c.demo, Some(false));
    }
}
