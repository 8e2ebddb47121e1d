//! A few example requests so a fresh database does not start empty.

use crate::model::{NewRequest, Status};
use crate::store::{Store, StoreError, now_ms};

struct Example {
    customer: &'static str,
    title: &'static str,
    description: &'static str,
    category: &'static str,
    priority: &'static str,
    hours_ago: i64,
    status: Status,
    assignee: Option<&'static str>,
}

const EXAMPLES: [Example; 4] = [
    Example {
        customer: "dave",
        title: "Badge does not open the 3rd floor",
        description: "Since Monday my badge is refused at the east door of the 3rd floor.",
        category: "access",
        priority: "normal",
        hours_ago: 30,
        status: Status::Completed,
        assignee: Some("carol"),
    },
    Example {
        customer: "alice",
        title: "Second monitor for my desk",
        description: "A 27\" monitor with a USB-C cable, if possible.",
        category: "it",
        priority: "low",
        hours_ago: 26,
        status: Status::InProgress,
        assignee: Some("bob"),
    },
    Example {
        customer: "dave",
        title: "Meeting room B2 projector flickers",
        description: "The image flickers every few seconds on HDMI.",
        category: "facilities",
        priority: "high",
        hours_ago: 5,
        status: Status::InReview,
        assignee: None,
    },
    Example {
        customer: "alice",
        title: "VPN drops every hour",
        description: "The VPN disconnects roughly every 60 minutes and asks for the password again.",
        category: "it",
        priority: "normal",
        hours_ago: 2,
        status: Status::InReview,
        assignee: None,
    },
];

/// Fills an empty database: requests in every state, from both customers.
///
/// # Errors
/// SQLite failed.
pub fn seed_if_empty(s: &mut Store) -> Result<(), StoreError> {
    if !s.is_empty()? {
        return Ok(());
    }
    let hour = 3_600_000;
    let now = now_ms();
    for e in &EXAMPLES {
        let at = now - e.hours_ago * hour;
        let new = NewRequest {
            title: e.title.into(),
            description: e.description.into(),
            category: e.category.into(),
            priority: e.priority.into(),
        };
        let r = s.insert(e.customer, &new, at)?;
        if let Some(a) = e.assignee {
            s.assign(r.id, a, at + hour / 2)?;
        }
        if e.status != Status::InReview {
            s.set_status(r.id, Status::InProgress, at + hour)?;
        }
        if e.status == Status::Completed {
            s.set_status(r.id, Status::Completed, at + 2 * hour)?;
        }
    }
    Ok(())
}
