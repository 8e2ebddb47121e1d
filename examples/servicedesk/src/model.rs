//! The domain: service requests, their statuses and the moves between them.

use serde::{Deserialize, Serialize};

/// Where a request stands. New requests start in review; the only moves are forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Submitted, waiting for triage.
    InReview,
    /// Someone is working on it.
    InProgress,
    /// Done.
    Completed,
}

impl Status {
    /// Every status, in workflow order.
    pub const ALL: [Status; 3] = [Status::InReview, Status::InProgress, Status::Completed];

    /// The name used in JSON and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::InReview => "in_review",
            Status::InProgress => "in_progress",
            Status::Completed => "completed",
        }
    }

    /// Parses [`Status::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// For people.
    pub fn label(self) -> &'static str {
        match self {
            Status::InReview => "In Review",
            Status::InProgress => "In Progress",
            Status::Completed => "Completed",
        }
    }

    /// Whether a request may move from `self` to `to`: one step forward at a time.
    pub fn can_move_to(self, to: Status) -> bool {
        matches!(
            (self, to),
            (Status::InReview, Status::InProgress) | (Status::InProgress, Status::Completed)
        )
    }

    /// Still needs work.
    pub fn is_open(self) -> bool {
        self != Status::Completed
    }
}

/// What a request is about.
pub const CATEGORIES: [&str; 4] = ["it", "facilities", "access", "hr"];

/// How urgent it is.
pub const PRIORITIES: [&str; 3] = ["low", "normal", "high"];

/// A service request as stored and as sent to clients (REST replies and pushes alike).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Row id.
    pub id: i64,
    /// The customer who asked.
    pub customer: String,
    /// One line.
    pub title: String,
    /// Details (may be empty).
    pub description: String,
    /// One of [`CATEGORIES`].
    pub category: String,
    /// One of [`PRIORITIES`].
    pub priority: String,
    /// Where it stands.
    pub status: Status,
    /// The employee working on it.
    pub assignee: Option<String>,
    /// Grows by one on every change, so clients can drop stale copies (a REST reply and a push
    /// may arrive in either order).
    pub version: i64,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

/// The body of `POST /api/requests`.
#[derive(Clone, Debug, Deserialize)]
pub struct NewRequest {
    /// One line, 3 to 120 characters.
    pub title: String,
    /// Up to 2000 characters.
    #[serde(default)]
    pub description: String,
    /// One of [`CATEGORIES`] (default `it`).
    #[serde(default = "default_category")]
    pub category: String,
    /// One of [`PRIORITIES`] (default `normal`).
    #[serde(default = "default_priority")]
    pub priority: String,
}

fn default_category() -> String {
    "it".into()
}

fn default_priority() -> String {
    "normal".into()
}

impl NewRequest {
    /// Trims the text fields and checks every field; the error names the field.
    ///
    /// # Errors
    /// A message for the customer.
    pub fn validate(mut self) -> Result<Self, String> {
        self.title = self.title.trim().to_owned();
        self.description = self.description.trim().to_owned();
        let title_len = self.title.chars().count();
        if !(3..=120).contains(&title_len) {
            return Err("title: between 3 and 120 characters, please".into());
        }
        if self.description.chars().count() > 2000 {
            return Err("description: at most 2000 characters".into());
        }
        if !CATEGORIES.contains(&self.category.as_str()) {
            return Err(format!("category: one of {}", CATEGORIES.join(", ")));
        }
        if !PRIORITIES.contains(&self.priority.as_str()) {
            return Err(format!("priority: one of {}", PRIORITIES.join(", ")));
        }
        Ok(self)
    }
}

/// Live numbers for the dashboard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Not completed yet.
    pub open: i64,
    /// Waiting for triage.
    pub in_review: i64,
    /// Being worked on.
    pub in_progress: i64,
    /// Done.
    pub completed: i64,
    /// Open and nobody assigned.
    pub unassigned: i64,
    /// Grows with every change to any request (the sum of their versions), so a client keeps
    /// the newest numbers whichever of a REST reply and a push arrives last.
    pub rev: i64,
}

/// A message in an employee's (or anyone's) inbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Row id.
    pub id: i64,
    /// The request it is about.
    pub request_id: i64,
    /// For people.
    pub text: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Seen by its owner.
    pub read: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_forward_single_steps() {
        use Status::*;
        assert!(InReview.can_move_to(InProgress));
        assert!(InProgress.can_move_to(Completed));
        for (a, b) in [
            (InReview, Completed),
            (InProgress, InReview),
            (Completed, InProgress),
            (Completed, Completed),
            (InReview, InReview),
        ] {
            assert!(!a.can_move_to(b), "{a:?} -> {b:?}");
        }
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn validation_names_the_field() {
        let r = |title: &str, category: &str| NewRequest {
            title: title.into(),
            description: String::new(),
            category: category.into(),
            priority: "normal".into(),
        };
        assert!(r("  Laptop  ", "it").validate().unwrap().title == "Laptop");
        assert!(r("x", "it").validate().unwrap_err().starts_with("title"));
        assert!(
            r("Laptop", "cars")
                .validate()
                .unwrap_err()
                .starts_with("category")
        );
    }
}
