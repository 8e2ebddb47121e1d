//! HTML pages and their assets (compiled into the binary), and the demo login.

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::app::AppState;
use crate::users::{self, COOKIE, Role, USERS, User};

const LAYOUT: &str = include_str!("../assets/layout.html");
const LOGIN: &str = include_str!("../assets/login.html");
const CUSTOMER: &str = include_str!("../assets/customer.html");
const ADMIN: &str = include_str!("../assets/admin.html");
const EMPLOYEE: &str = include_str!("../assets/employee.html");

/// Static files under `/assets/`: name, content type, body.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../assets/app.css"),
    ),
    (
        "common.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/common.js"),
    ),
    (
        "customer.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/customer.js"),
    ),
    (
        "admin.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/admin.js"),
    ),
    (
        "employee.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/employee.js"),
    ),
    (
        "logo.svg",
        "image/svg+xml",
        include_str!("../assets/logo.svg"),
    ),
];

/// Pages, assets, `/login` and `/logout`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(start))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/customer", get(|h: HeaderMap| page(h, Role::Customer)))
        .route("/admin", get(|h: HeaderMap| page(h, Role::Admin)))
        .route("/employee", get(|h: HeaderMap| page(h, Role::Employee)))
        .route("/assets/{name}", get(asset))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn initials(name: &str) -> String {
    name.split_whitespace()
        .filter_map(|w| w.chars().next())
        .take(2)
        .collect()
}

fn no_cache(html: String) -> Response {
    ([(header::CACHE_CONTROL, "no-cache")], Html(html)).into_response()
}

/// `GET /`: pick a demo user.
async fn start(headers: HeaderMap) -> Response {
    let current = users::from_headers(&headers);
    let cards: String = USERS
        .iter()
        .map(|u| {
            let role = u.role.as_str();
            let here = if current.is_some_and(|c| c.id == u.id) {
                r#"<span class="tag">signed in</span>"#
            } else {
                ""
            };
            format!(
                r#"<li><button class="user-card" name="user" value="{id}" data-user="{id}">
  <span class="avatar avatar-{role}">{initials}</span>
  <span class="who"><span class="name">{name} {here}</span><span class="blurb">{blurb}</span></span>
  <span class="role-pill role-{role}">{role_label}</span>
</button></li>"#,
                id = escape(u.id),
                initials = escape(&initials(u.name)),
                name = escape(u.name),
                blurb = escape(u.blurb),
                role_label = u.role.label(),
            )
        })
        .collect();
    no_cache(LOGIN.replace("{{USERS}}", &cards))
}

/// `POST /login` (form field `user`): sets the demo cookie and goes to the user's page.
async fn login(body: Bytes) -> Response {
    let user = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "user")
        .and_then(|(_, v)| users::find(&v));
    let Some(user) = user else {
        return (StatusCode::BAD_REQUEST, "unknown user").into_response();
    };
    (
        [(
            header::SET_COOKIE,
            format!(
                "{COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age=2592000",
                user.id
            ),
        )],
        Redirect::to(users::home(user.role)),
    )
        .into_response()
}

/// `POST /logout`.
async fn logout() -> Response {
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
        )],
        Redirect::to("/"),
    )
        .into_response()
}

fn render(user: &User) -> String {
    let (title, body, script) = match user.role {
        Role::Customer => ("My requests", CUSTOMER, "customer.js"),
        Role::Admin => ("Admin", ADMIN, "admin.js"),
        Role::Employee => ("My work", EMPLOYEE, "employee.js"),
    };
    LAYOUT
        .replace("{{BODY}}", body)
        .replace("{{TITLE}}", title)
        .replace("{{SCRIPT}}", script)
        .replace("{{USER}}", &escape(user.id))
        .replace("{{NAME}}", &escape(user.name))
        .replace("{{INITIALS}}", &escape(&initials(user.name)))
        .replace("{{ROLE}}", user.role.as_str())
        .replace("{{ROLE_LABEL}}", user.role.label())
}

/// A role's page; anyone else is sent to their own page (or to the start page).
async fn page(headers: HeaderMap, role: Role) -> Response {
    match users::from_headers(&headers) {
        None => Redirect::to("/").into_response(),
        Some(u) if u.role != role => Redirect::to(users::home(u.role)).into_response(),
        Some(u) => no_cache(render(u)),
    }
}

async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, mime, body)) => (
            [
                (header::CONTENT_TYPE, *mime),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
