//! Demo identities. **This is a demo login**: whoever picks a name on the start page becomes that
//! user (a plain cookie, no password). A real app would use its own sessions; what matters here
//! is that the app, which knows who the user is, mints the Switchboard token for them.

use axum::http::HeaderMap;
use axum::http::header;
use serde::Serialize;

/// What a user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Submits requests and follows their own.
    Customer,
    /// Works on requests assigned to them.
    Employee,
    /// Sees everything, moves and assigns requests.
    Admin,
}

impl Role {
    /// Lower-case name, as in JSON and CSS classes.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Employee => "employee",
            Role::Admin => "admin",
        }
    }

    /// For people.
    pub fn label(self) -> &'static str {
        match self {
            Role::Customer => "Customer",
            Role::Employee => "Employee",
            Role::Admin => "Admin",
        }
    }
}

/// A demo user.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct User {
    /// Id, also the Switchboard `sub`.
    pub id: &'static str,
    /// Display name.
    pub name: &'static str,
    /// Role.
    pub role: Role,
    /// One line for the start page.
    pub blurb: &'static str,
}

/// Everyone who can log in.
pub const USERS: [User; 5] = [
    User {
        id: "alice",
        name: "Alice Martin",
        role: Role::Customer,
        blurb: "Customer: files requests and follows them live",
    },
    User {
        id: "dave",
        name: "Dave Okafor",
        role: Role::Customer,
        blurb: "Another customer: sees only his own requests",
    },
    User {
        id: "admin",
        name: "Ada Admin",
        role: Role::Admin,
        blurb: "Service desk admin: triages, assigns, moves requests",
    },
    User {
        id: "bob",
        name: "Bob Chen",
        role: Role::Employee,
        blurb: "Employee (IT): notified when assigned a request",
    },
    User {
        id: "carol",
        name: "Carol Diaz",
        role: Role::Employee,
        blurb: "Employee (facilities): notified when assigned",
    },
];

/// Name of the demo identity cookie.
pub const COOKIE: &str = "sd_user";

/// Looks a user up by id.
pub fn find(id: &str) -> Option<&'static User> {
    USERS.iter().find(|u| u.id == id)
}

/// The user named by the request's demo cookie.
pub fn from_headers(headers: &HeaderMap) -> Option<&'static User> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .and_then(|(_, v)| find(v))
}

/// The page each role lands on.
pub fn home(role: Role) -> &'static str {
    match role {
        Role::Customer => "/customer",
        Role::Employee => "/employee",
        Role::Admin => "/admin",
    }
}

/// The logged-in demo user, as a handler argument; answers 401 JSON without one.
#[derive(Clone, Copy, Debug)]
pub struct CurrentUser(pub &'static User);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for CurrentUser {
    type Rejection = crate::error::AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        from_headers(&parts.headers)
            .map(CurrentUser)
            .ok_or_else(crate::error::AppError::unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_cookie_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; sd_user=bob; b=2".parse().unwrap());
        assert_eq!(from_headers(&h).map(|u| u.id), Some("bob"));
        h.insert(header::COOKIE, "sd_user=mallory".parse().unwrap());
        assert!(from_headers(&h).is_none());
    }
}
