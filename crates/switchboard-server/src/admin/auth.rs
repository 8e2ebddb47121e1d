//! Console logins: the password check, the session cookie, CSRF defences and the login rate
//! limit.
//!
//! - **Password**: compared as HMACs under a per-process random key, so the comparison takes
//!   the same time whatever the length or the first differing byte of the guess.
//! - **Sessions**: a random 256-bit id (base64url) in the cookie `sb_admin`, `HttpOnly` (no
//!   script reads it), `SameSite=Strict` (no other site's page sends it), `Path=/admin`, and
//!   `Secure` when the node serves TLS or the proxy says `X-Forwarded-Proto: https`. The node
//!   keeps only an HMAC of the id, with an absolute expiry; at most [`MAX_SESSIONS`] at once.
//! - **CSRF**: besides `SameSite=Strict`, every state-changing request must carry the login's
//!   CSRF token in `X-CSRF-Token` (a cross-site form cannot set a header, and a cross-site
//!   script cannot read the token), an `Origin` whose host is this request's host when the
//!   browser sends one, and no `Sec-Fetch-Site: cross-site`/`same-site`.
//! - **Rate limit**: [`LOGIN_BURST`] failed logins per client address, then one more every
//!   [`LOGIN_REFILL`]; beyond that 429 with `Retry-After`, before the password is looked at.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use parking_lot::Mutex;
use rand::RngCore;
use sha1::{Digest, Sha1};
use switchboard_protocol::ErrorCode;
use tokio::time::Instant;

use super::AdminApp;
use crate::error::ApiError;

/// The session cookie's name.
pub const COOKIE: &str = "sb_admin";
/// The header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Console logins held at once. A new login beyond it ends the one closest to expiry: memory
/// stays bounded however often someone logs in.
pub const MAX_SESSIONS: usize = 64;
/// Failed logins a client address may make in a row before it must wait.
pub const LOGIN_BURST: f64 = 5.0;
/// One more failed login is allowed per this interval (five a minute).
pub const LOGIN_REFILL: Duration = Duration::from_secs(12);
/// Client addresses the limiter remembers; beyond, new addresses share one bucket.
const MAX_TRACKED: usize = 10_000;
/// A login body is a password, not a document.
const MAX_LOGIN_BODY: usize = 4096;

/// HMAC-SHA1 (RFC 2104).
pub fn hmac_sha1(key: &[u8], msg: &[u8]) -> [u8; 20] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..20].copy_from_slice(&Sha1::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let (mut ipad, mut opad) = ([0x36u8; 64], [0x5cu8; 64]);
    for i in 0..64 {
        ipad[i] ^= k[i];
        opad[i] ^= k[i];
    }
    let inner = Sha1::new().chain_update(ipad).chain_update(msg).finalize();
    Sha1::new()
        .chain_update(opad)
        .chain_update(inner)
        .finalize()
        .into()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    rand::rng().fill_bytes(&mut k);
    k
}

fn random_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_key())
}

/// A secret compared in constant time.
pub struct Secret {
    key: [u8; 32],
    mac: [u8; 20],
}

impl Secret {
    /// Holds `secret` as an HMAC under a fresh random key.
    pub fn new(secret: &[u8]) -> Self {
        let key = random_key();
        Self {
            mac: hmac_sha1(&key, secret),
            key,
        }
    }

    /// Whether `given` is the secret.
    pub fn matches(&self, given: &[u8]) -> bool {
        constant_time_eq(&hmac_sha1(&self.key, given), &self.mac)
    }
}

/// One console login.
#[derive(Clone, Debug)]
pub struct Login {
    /// The CSRF token of this login.
    pub csrf: String,
    /// When it ends.
    pub expires: Instant,
    /// When it ends, in Unix seconds (the console's tickets end with it).
    pub expires_unix: u64,
}

impl Login {
    /// Seconds left.
    pub fn expires_in(&self) -> u64 {
        self.expires
            .saturating_duration_since(Instant::now())
            .as_secs()
    }
}

/// The logins of this node, by HMAC of their cookie id.
pub struct Sessions {
    key: [u8; 32],
    map: Mutex<HashMap<[u8; 20], Login>>,
}

impl Default for Sessions {
    fn default() -> Self {
        Self {
            key: random_key(),
            map: Mutex::default(),
        }
    }
}

impl Sessions {
    /// A new login for `ttl`: its cookie id and the login.
    pub fn create(&self, ttl: Duration) -> (String, Login) {
        let id = random_token();
        let login = Login {
            csrf: random_token(),
            expires: Instant::now() + ttl,
            expires_unix: switchboard_core::auth::unix_now() + ttl.as_secs(),
        };
        let mut map = self.map.lock();
        let now = Instant::now();
        map.retain(|_, l| l.expires > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map.iter().min_by_key(|(_, l)| l.expires).map(|(k, _)| *k)
        {
            map.remove(&oldest);
        }
        map.insert(hmac_sha1(&self.key, id.as_bytes()), login.clone());
        (id, login)
    }

    /// The unexpired login of cookie id `id`.
    pub fn get(&self, id: &str) -> Option<Login> {
        let k = hmac_sha1(&self.key, id.as_bytes());
        let mut map = self.map.lock();
        match map.get(&k) {
            Some(l) if l.expires > Instant::now() => Some(l.clone()),
            Some(_) => {
                map.remove(&k);
                None
            }
            None => None,
        }
    }

    /// Ends the login of cookie id `id`.
    pub fn remove(&self, id: &str) {
        self.map.lock().remove(&hmac_sha1(&self.key, id.as_bytes()));
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let earned = now.duration_since(self.at).as_secs_f64() / LOGIN_REFILL.as_secs_f64();
        self.tokens = (self.tokens + earned).min(LOGIN_BURST);
        self.at = now;
    }
}

/// Failed logins per client address (`None`: unknown address, or the shared overflow bucket).
#[derive(Default)]
pub struct LoginLimiter {
    buckets: Mutex<HashMap<Option<IpAddr>, Bucket>>,
}

impl LoginLimiter {
    /// `Err(wait)` when `ip` has no failed login left.
    pub fn check(&self, ip: Option<IpAddr>) -> Result<(), Duration> {
        self.check_at(ip, Instant::now())
    }

    fn check_at(&self, ip: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let mut m = self.buckets.lock();
        match m.get_mut(&ip) {
            Some(b) => {
                b.refill(now);
                if b.tokens >= 1.0 {
                    Ok(())
                } else {
                    Err(LOGIN_REFILL.mul_f64(1.0 - b.tokens))
                }
            }
            None => Ok(()),
        }
    }

    /// Records a failed login from `ip`.
    pub fn failed(&self, ip: Option<IpAddr>) {
        self.failed_at(ip, Instant::now());
    }

    fn failed_at(&self, ip: Option<IpAddr>, now: Instant) {
        let mut m = self.buckets.lock();
        let mut key = ip;
        if !m.contains_key(&key) && m.len() >= MAX_TRACKED {
            // Forget addresses that have waited long enough to be back at a full bucket.
            m.retain(|_, b| {
                b.refill(now);
                b.tokens < LOGIN_BURST
            });
            if m.len() >= MAX_TRACKED {
                key = None;
            }
        }
        let b = m.entry(key).or_insert(Bucket {
            tokens: LOGIN_BURST,
            at: now,
        });
        b.refill(now);
        b.tokens = (b.tokens - 1.0).max(0.0);
    }
}

/// The value of the session cookie, if the request has one.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

fn set_cookie(value: &str, max_age: u64, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/admin; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .ok()
}

/// The cookie is `Secure` when the browser reached us over https: the node's own TLS, or a
/// proxy in front saying so.
fn secure(app: &AdminApp, headers: &HeaderMap) -> bool {
    app.admin.tls
        || headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// Whether a state-changing request comes from a page of this origin, as far as the browser
/// says: no cross-site fetch metadata, and an `Origin` (when sent) naming this host. Clients
/// that are not browsers send neither and pass; they still need the cookie and CSRF token.
fn same_origin(headers: &HeaderMap, uri: &Uri) -> bool {
    let site = headers
        .get("sec-fetch-site")
        .map(|v| v.as_bytes().to_ascii_lowercase());
    if matches!(site.as_deref(), Some(b"cross-site" | b"same-site")) {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(origin_host) = origin.to_str().ok().and_then(|o| {
        o.strip_prefix("https://")
            .or_else(|| o.strip_prefix("http://"))
    }) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()));
    let forwarded = headers
        .get("x-forwarded-host")
        .and_then(|h| h.to_str().ok());
    [host, forwarded]
        .into_iter()
        .flatten()
        .any(|h| h.eq_ignore_ascii_case(origin_host))
}

fn csrf_refused() -> Response {
    ApiError::forbidden("cross-site request refused (Origin or X-CSRF-Token)").into_response()
}

fn login_required() -> Response {
    ApiError::unauthorized("log in to the admin console first").into_response()
}

/// Every private admin route: the login cookie, and for state-changing methods the CSRF checks.
/// The login is handed to the handler as a request extension.
pub async fn require_login(State(s): State<AdminApp>, mut req: Request, next: Next) -> Response {
    let Some(login) = cookie(req.headers()).and_then(|id| s.admin.sessions.get(id)) else {
        return login_required();
    };
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let token = req
            .headers()
            .get(CSRF_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !same_origin(req.headers(), req.uri()) || !constant_time_eq(token, login.csrf.as_bytes())
        {
            return csrf_refused();
        }
    }
    req.extensions_mut().insert(login);
    next.run(req).await
}

/// What a login body says.
fn password_from(headers: &HeaderMap, body: &[u8]) -> Result<(String, bool), ApiError> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if form {
        let password = form_urlencoded::parse(body)
            .find(|(k, _)| k == "password")
            .map(|(_, v)| v.into_owned())
            .ok_or_else(|| ApiError::bad_request("the form has no password field"))?;
        return Ok((password, true));
    }
    #[derive(serde::Deserialize)]
    struct LoginBody {
        password: String,
    }
    let b: LoginBody = serde_json::from_slice(body)
        .map_err(|_| ApiError::bad_request("expected {\"password\": \"...\"}"))?;
    Ok((b.password, false))
}

/// `POST /admin/login` with `{"password": "..."}` (or the form-encoded login form): sets the
/// session cookie and answers `{csrf, expires_in}` (a form gets a redirect to `/admin`).
pub async fn login(State(s): State<AdminApp>, req: Request) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let (parts, body) = req.into_parts();
    if !same_origin(&parts.headers, &parts.uri) {
        return csrf_refused();
    }
    if let Err(wait) = s.admin.limiter.check(ip) {
        tracing::info!("admin login refused: too many failed attempts");
        let mut res = ApiError::new(
            ErrorCode::RateLimited,
            "too many failed logins; try again later",
        )
        .into_response();
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs() + 1));
        return res;
    }
    let Ok(body) = axum::body::to_bytes(body, MAX_LOGIN_BODY).await else {
        return ApiError::new(ErrorCode::TooLarge, "login body too large").into_response();
    };
    let (password, form) = match password_from(&parts.headers, &body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if !s.admin.password.matches(password.as_bytes()) {
        s.admin.limiter.failed(ip);
        tracing::info!("admin login refused: wrong password");
        if form {
            return see_other("/admin?login=failed", None);
        }
        return ApiError::unauthorized("wrong password").into_response();
    }
    let (id, login) = s.admin.sessions.create(s.admin.ttl);
    tracing::info!("admin login");
    let cookie = set_cookie(&id, s.admin.ttl.as_secs(), secure(&s, &parts.headers));
    if form {
        return see_other("/admin", cookie);
    }
    let mut res = Json(serde_json::json!({
        "csrf": login.csrf,
        "expires_in": login.expires_in(),
    }))
    .into_response();
    if let Some(c) = cookie {
        res.headers_mut().insert(header::SET_COOKIE, c);
    }
    res
}

fn see_other(to: &'static str, cookie: Option<HeaderValue>) -> Response {
    let mut res = (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
    if let Some(c) = cookie {
        res.headers_mut().insert(header::SET_COOKIE, c);
    }
    res
}

/// `POST /admin/logout`: ends the login and clears the cookie.
pub async fn logout(State(s): State<AdminApp>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie(&headers) {
        s.admin.sessions.remove(id);
    }
    let mut res = Json(serde_json::json!({})).into_response();
    if let Some(c) = set_cookie("", 0, secure(&s, &headers)) {
        res.headers_mut().insert(header::SET_COOKIE, c);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha1_matches_rfc_2202() {
        let hex = |b: [u8; 20]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(
            hex(hmac_sha1(b"Jefe", b"what do ya want for nothing?")),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        assert_eq!(
            hex(hmac_sha1(
                &[0xaa; 80],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "aa4ae5e15272d00e95705637ce8a3b55ed402112"
        );
    }

    #[test]
    fn secret_matches_only_itself() {
        let s = Secret::new(b"hunter2");
        assert!(s.matches(b"hunter2"));
        assert!(!s.matches(b"hunter"));
        assert!(!s.matches(b"hunter22"));
        assert!(!s.matches(b""));
    }

    #[test]
    fn cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; sb_admin2=x"));
        h.append(
            header::COOKIE,
            HeaderValue::from_static("b=2;  sb_admin=abc ; c=3"),
        );
        assert_eq!(cookie(&h), Some("abc"));
    }

    #[test]
    fn same_origin_rules() {
        let uri: Uri = "/admin/api/publish".parse().unwrap();
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        assert!(same_origin(&h(&[("host", "a.example:8000")]), &uri));
        assert!(same_origin(
            &h(&[
                ("host", "a.example:8000"),
                ("origin", "http://a.example:8000")
            ]),
            &uri
        ));
        assert!(!same_origin(
            &h(&[
                ("host", "a.example:8000"),
                ("origin", "http://evil.example")
            ]),
            &uri
        ));
        assert!(!same_origin(
            &h(&[("host", "a.example"), ("origin", "null")]),
            &uri
        ));
        assert!(!same_origin(
            &h(&[("host", "a.example"), ("sec-fetch-site", "cross-site")]),
            &uri
        ));
        assert!(same_origin(
            &h(&[
                ("host", "127.0.0.1:8000"),
                ("x-forwarded-host", "admin.example"),
                ("origin", "https://admin.example")
            ]),
            &uri
        ));
    }

    #[test]
    fn limiter_allows_a_burst_then_one_per_interval() {
        let l = LoginLimiter::default();
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        let t0 = Instant::now();
        for _ in 0..LOGIN_BURST as usize {
            assert!(l.check_at(ip, t0).is_ok());
            l.failed_at(ip, t0);
        }
        let wait = l.check_at(ip, t0).unwrap_err();
        assert!(wait <= LOGIN_REFILL, "{wait:?}");
        assert!(l.check_at(Some(IpAddr::from([10, 0, 0, 2])), t0).is_ok());
        let later = t0 + LOGIN_REFILL;
        assert!(l.check_at(ip, later).is_ok());
        l.failed_at(ip, later);
        assert!(l.check_at(ip, later).is_err());
    }

    #[test]
    fn sessions_expire_and_stay_bounded() {
        let s = Sessions::default();
        let (id, login) = s.create(Duration::from_secs(60));
        assert_eq!(s.get(&id).map(|l| l.csrf), Some(login.csrf));
        assert!(s.get("nope").is_none());
        let (expired, _) = s.create(Duration::ZERO);
        assert!(s.get(&expired).is_none());
        let first = s.create(Duration::from_secs(10)).0;
        for _ in 0..MAX_SESSIONS {
            s.create(Duration::from_secs(60));
        }
        assert!(s.get(&first).is_none(), "the oldest login gave way");
        assert!(s.map.lock().len() <= MAX_SESSIONS);
        let (id, _) = s.create(Duration::from_secs(60));
        s.remove(&id);
        assert!(s.get(&id).is_none());
    }
}
