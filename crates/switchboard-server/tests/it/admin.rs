//! The admin console's HTTP side: off by default, login, the session cookie, CSRF defences,
//! the login rate limit, and what its endpoints and tickets allow. (The page itself is tested
//! in Chromium: `clients/js/test/admin.test.js`.)

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::harness::*;

const PASSWORD: &str = "correct horse battery staple";

async fn console() -> TestServer {
    TestServer::with(|c| {
        c.admin.enabled = true;
        c.admin.password = Some(PASSWORD.into());
    })
    .await
}

/// A logged-in console: its cookie header value and CSRF token.
struct Login {
    cookie: String,
    csrf: String,
}

fn cookie_of(r: &Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("sb_admin="))
        .map(str::to_owned)
}

fn form_body(password: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("password", password)
        .finish()
}

async fn post_login(s: &TestServer, password: &str) -> Response {
    s.http
        .post(format!("{}/admin/login", s.base))
        .json(&json!({ "password": password }))
        .send()
        .await
        .unwrap()
}

async fn login(s: &TestServer) -> Login {
    let r = post_login(s, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let set = cookie_of(&r).expect("a session cookie");
    let cookie = set.split(';').next().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    Login {
        cookie,
        csrf: body["csrf"].as_str().unwrap().to_owned(),
    }
}

impl Login {
    async fn get(&self, s: &TestServer, path: &str) -> (StatusCode, Value) {
        let r = s
            .http
            .get(format!("{}{path}", s.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, s: &TestServer, path: &str, body: Value) -> (StatusCode, Value) {
        let r = s
            .http
            .post(format!("{}{path}", s.base))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .header("origin", &s.base)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }
}

/// Every endpoint behind the login, as (method, path).
const PRIVATE: &[(&str, &str)] = &[
    ("GET", "/admin/api/session"),
    ("GET", "/admin/api/nodes"),
    ("GET", "/admin/api/channels"),
    ("GET", "/admin/api/channels?q=chat"),
    ("GET", "/admin/api/history?channel=chat:a"),
    ("GET", "/admin/api/sessions?user=u1"),
    ("POST", "/admin/api/publish"),
    ("POST", "/admin/api/disconnect"),
    ("POST", "/admin/api/ticket"),
    ("POST", "/admin/logout"),
    ("GET", "/admin/api/no-such-call"),
    ("DELETE", "/admin/api/nodes"),
];

#[tokio::test]
async fn admin_console_is_off_by_default_and_everything_under_admin_is_404() {
    let s = TestServer::start().await;
    for (method, path) in PRIVATE.iter().chain(&[
        ("GET", "/admin"),
        ("GET", "/admin/"),
        ("GET", "/admin/assets/admin.js"),
        ("POST", "/admin/login"),
    ]) {
        let r = s
            .http
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", s.base),
            )
            .json(&json!({"password": API_KEY}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{method} {path}");
        assert!(cookie_of(&r).is_none());
    }
}

#[tokio::test]
async fn no_admin_endpoint_answers_without_the_login_cookie() {
    let s = console().await;
    let bogus = format!("sb_admin={}", "A".repeat(43));
    for cookie in [None, Some(bogus.as_str()), Some("sb_admin=")] {
        for (method, path) in PRIVATE {
            let mut req = s
                .http
                .request(
                    Method::from_bytes(method.as_bytes()).unwrap(),
                    format!("{}{path}", s.base),
                )
                .header("origin", &s.base)
                .header("x-csrf-token", "whatever")
                .json(&json!({"channel": "chat:a", "data": 1, "user": "u1", "channels": []}));
            if let Some(c) = cookie {
                req = req.header("cookie", c);
            }
            let r = req.send().await.unwrap();
            assert_eq!(
                r.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} {cookie:?}"
            );
            assert_eq!(
                r.headers()["content-type"],
                "application/json",
                "{method} {path}"
            );
            assert_eq!(r.headers()["cache-control"], "no-store");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "unauthorized", "{method} {path}");
        }
    }
    // The login page and its assets are public (they hold nothing), with strict headers.
    for path in [
        "/admin",
        "/admin/assets/admin.js",
        "/admin/assets/admin.css",
    ] {
        let r = s
            .http
            .get(format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let csp = r.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(r.headers()["x-frame-options"], "DENY");
    }
}

#[tokio::test]
async fn wrong_password_is_refused_and_the_right_one_sets_a_strict_http_only_cookie() {
    let s = console().await;
    for wrong in ["", "correct horse", API_KEY, &format!("{PASSWORD}!")] {
        let r = post_login(&s, wrong).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{wrong:?}");
        assert!(cookie_of(&r).is_none());
    }
    let r = post_login(&s, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let set = cookie_of(&r).unwrap();
    let attrs: Vec<&str> = set.split("; ").collect();
    let id = attrs[0].strip_prefix("sb_admin=").unwrap();
    assert_eq!(id.len(), 43, "32 random bytes in base64url: {id}");
    for a in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/admin",
        "Max-Age=28800",
    ] {
        assert!(attrs.contains(&a), "{a} missing from {set}");
    }
    assert!(!attrs.contains(&"Secure"), "plain http: {set}");
    let body: Value = r.json().await.unwrap();
    assert!(body["csrf"].as_str().unwrap().len() >= 43);

    // Behind a TLS-terminating proxy the cookie is Secure.
    let r = s
        .http
        .post(format!("{}/admin/login", s.base))
        .header("x-forwarded-proto", "https")
        .json(&json!({ "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert!(cookie_of(&r).unwrap().ends_with("; Secure"));

    // The form fallback (no script): a redirect, never the password in a URL.
    let form = s
        .http
        .post(format!("{}/admin/login", s.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(PASSWORD));
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirects.execute(form.build().unwrap()).await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/admin");
    assert!(cookie_of(&r).is_some());

    // Without admin.password, the API key is the password.
    let t = TestServer::with(|c| c.admin.enabled = true).await;
    assert_eq!(post_login(&t, API_KEY).await.status(), StatusCode::OK);
    assert_eq!(
        post_login(&t, PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn state_changing_requests_need_the_csrf_token_and_this_origin() {
    let s = console().await;
    let l = login(&s).await;
    let publish = |token: Option<&str>, origin: Option<&str>, site: Option<&str>| {
        let mut req = s
            .http
            .post(format!("{}/admin/api/publish", s.base))
            .header("cookie", &l.cookie)
            .json(&json!({"channel": "chat:csrf", "data": {"n": 1}}));
        if let Some(t) = token {
            req = req.header("x-csrf-token", t);
        }
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(f) = site {
            req = req.header("sec-fetch-site", f);
        }
        req.send()
    };
    let evil = Some("http://evil.example");
    for (token, origin, site) in [
        (None, Some(s.base.as_str()), None),
        (Some("not-the-token"), Some(s.base.as_str()), None),
        (Some(""), None, None),
        (Some(l.csrf.as_str()), evil, None),
        (Some(l.csrf.as_str()), Some("null"), None),
        (Some(l.csrf.as_str()), None, Some("cross-site")),
        (Some(l.csrf.as_str()), None, Some("same-site")),
    ] {
        let r = publish(token, origin, site).await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::FORBIDDEN,
            "{token:?} {origin:?} {site:?}"
        );
    }
    let (_, h) = l.get(&s, "/admin/api/history?channel=chat:csrf").await;
    assert_eq!(h["publications"], json!([]), "nothing was published");
    let r = publish(Some(&l.csrf), Some(&s.base), Some("same-origin"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Login CSRF: a cross-site page cannot log a browser in either.
    let r = s
        .http
        .post(format!("{}/admin/login", s.base))
        .header("origin", "http://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Logout is state-changing too; afterwards the cookie is worthless.
    let r = s
        .http
        .post(format!("{}/admin/logout", s.base))
        .header("cookie", &l.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (st, _) = l.post(&s, "/admin/logout", json!({})).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = l.get(&s, "/admin/api/session").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn failed_logins_are_rate_limited() {
    let s = console().await;
    for i in 0..5 {
        assert_eq!(
            post_login(&s, "guess").await.status(),
            StatusCode::UNAUTHORIZED,
            "attempt {i}"
        );
    }
    // Now even the right password waits: the limit is checked before the password.
    let r = post_login(&s, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=13).contains(&wait), "{wait}");
    assert!(cookie_of(&r).is_none());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
}

#[tokio::test]
async fn console_endpoints_show_nodes_channels_history_and_sessions_and_act_on_them() {
    let s = console().await;
    let l = login(&s).await;
    let mut ws = s.client("u1").await;
    let r = ws
        .request(json!({"op": "subscribe", "channel": "chat:admin-a"}))
        .await;
    assert!(r.get("ok").is_some(), "{r}");

    let (st, session) = l.get(&s, "/admin/api/session").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(session["csrf"], l.csrf.as_str());
    assert_eq!(session["node"], s.node().name());

    let (_, nodes) = l.get(&s, "/admin/api/nodes").await;
    let me = &nodes["nodes"][0];
    assert_eq!(me["name"], s.node().name());
    assert_eq!(me["this"], true);
    assert_eq!(me["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(me["transports"]["ws"], 1);
    assert!(me["uptime_secs"].is_u64());

    let (_, ch) = l.get(&s, "/admin/api/channels?q=ADMIN-A").await;
    assert_eq!(
        ch,
        json!({"channels": [{"channel": "chat:admin-a", "subscribers": 1}], "total": 1})
    );
    let (_, none) = l.get(&s, "/admin/api/channels?q=sb-admin").await;
    assert_eq!(
        none["total"], 0,
        "the console's own channels are not listed"
    );

    let (st, p) = l
        .post(
            &s,
            "/admin/api/publish",
            json!({"channel": "chat:admin-a", "data": {"from": "console"}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{p}");
    assert_eq!(ws.push("pub").await["data"], json!({"from": "console"}));
    let (_, h) = l
        .get(&s, "/admin/api/history?channel=chat:admin-a&limit=5")
        .await;
    assert_eq!(h["publications"][0]["data"], json!({"from": "console"}));
    let (st, _) = l
        .post(
            &s,
            "/admin/api/publish",
            json!({"channel": format!("sb-admin:stats#{}", session["user"].as_str().unwrap()), "data": {}}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "no fake stats");

    let (_, u) = l.get(&s, "/admin/api/sessions?user=u1").await;
    assert_eq!(u["sessions"].as_array().unwrap().len(), 1, "{u}");
    assert_eq!(u["sessions"][0]["transport"], "ws");
    let (_, d) = l
        .post(
            &s,
            "/admin/api/disconnect",
            json!({"user": "u1", "reconnect": true}),
        )
        .await;
    assert_eq!(d["disconnected"], 1);
    assert_eq!(ws.closed().await, 4006, "told to reconnect");
}

#[tokio::test]
async fn console_tickets_reach_the_stats_stream_and_only_the_chosen_channels() {
    let s = console().await;
    let l = login(&s).await;
    let (_, session) = l.get(&s, "/admin/api/session").await;
    let stats = session["stats_channel"].as_str().unwrap().to_owned();

    let (st, t) = l
        .post(&s, "/admin/api/ticket", json!({"channels": ["chat:tail"]}))
        .await;
    assert_eq!(st, StatusCode::OK, "{t}");
    let mut ws = Ws::open(&format!(
        "{}?ticket={}",
        s.ws_url(),
        t["ticket"].as_str().unwrap()
    ))
    .await;
    let r = ws.request(json!({"op": "connect"})).await;
    assert_eq!(r["ok"]["user"], session["user"]);
    let r = ws
        .request(json!({"op": "subscribe", "channel": stats}))
        .await;
    assert!(r.get("ok").is_some(), "{r}");
    let snap = ws.push("pub").await;
    assert_eq!(snap["channel"], stats.as_str());
    assert_eq!(snap["data"]["node"], s.node().name());
    assert!(snap["data"]["transports"]["ws"].as_u64().unwrap() >= 1);
    assert!(snap["data"]["publications_per_sec"].is_number());
    let r = ws
        .request(json!({"op": "subscribe", "channel": "chat:tail"}))
        .await;
    assert!(r.get("ok").is_some(), "{r}");
    for cmd in [
        json!({"op": "subscribe", "channel": "closed:other"}),
        json!({"op": "publish", "channel": "chat:tail", "data": 1}),
    ] {
        let r = ws.request(cmd.clone()).await;
        assert_eq!(r["error"]["code"], "permission_denied", "{cmd} {r}");
    }

    // An application's client, even one whose token grants every channel, cannot read it.
    let mut other = s.ws().await;
    let token = token("someone", &["*"], &["*"], 60);
    other.connect(&token).await;
    let r = other
        .request(json!({"op": "subscribe", "channel": stats}))
        .await;
    assert_eq!(r["error"]["code"], "permission_denied", "{r}");

    // Tickets never grant the console's own namespace or a wildcard.
    for channels in [json!(["sb-admin:anything"]), json!(["chat:*"])] {
        let (st, _) = l
            .post(&s, "/admin/api/ticket", json!({ "channels": channels }))
            .await;
        assert!(st.is_client_error(), "{channels} {st}");
    }
}

#[tokio::test]
async fn a_login_ends_after_session_ttl_and_its_tickets_with_it() {
    let s = TestServer::with(|c| {
        c.admin.enabled = true;
        c.admin.password = Some(PASSWORD.into());
        c.admin.session_ttl = std::time::Duration::from_secs(1);
    })
    .await;
    let l = login(&s).await;
    let (st, t) = l
        .post(&s, "/admin/api/ticket", json!({"channels": []}))
        .await;
    assert_eq!(st, StatusCode::OK);
    assert!(t["expires_in"].as_u64().unwrap() <= 1, "{t}");
    eventually("the login to expire", || async {
        l.get(&s, "/admin/api/session").await.0 == StatusCode::UNAUTHORIZED
    })
    .await;
    let (st, _) = l
        .post(&s, "/admin/api/ticket", json!({"channels": []}))
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}
