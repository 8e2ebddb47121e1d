//! Issue 10: CORS for the browser-facing endpoints. An allowed origin gets its own origin back
//! (never a wildcard) on preflights and responses, on both SSE paths; other origins get no CORS
//! header; the server API stays server-to-server.

use reqwest::Method;

use crate::harness::*;

const APP: &str = "http://app.example.test";
const EVIL: &str = "http://evil.example.test";

async fn server() -> TestServer {
    TestServer::with(|c| c.cors.allowed_origins = Some(vec![APP.into()])).await
}

fn acao(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn preflights_answer_allowed_origins_only() {
    let s = server().await;
    for path in ["/auth/ticket", "/cmd", "/poll", "/sse"] {
        let r = s
            .http
            .request(Method::OPTIONS, format!("{}{path}", s.base))
            .header("Origin", APP)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{path}");
        assert_eq!(acao(&r).as_deref(), Some(APP), "{path}");
        let h = r.headers();
        assert!(
            h["access-control-allow-headers"]
                .to_str()
                .unwrap()
                .contains("authorization")
        );
        assert!(
            h["access-control-allow-methods"]
                .to_str()
                .unwrap()
                .contains("POST")
        );
        assert!(h.get("access-control-allow-credentials").is_none());

        let r = s
            .http
            .request(Method::OPTIONS, format!("{}{path}", s.base))
            .header("Origin", EVIL)
            .header("Access-Control-Request-Method", "POST")
            .send()
            .await
            .unwrap();
        assert_eq!(
            acao(&r),
            None,
            "{path}: a refused origin gets no CORS header"
        );
        assert!(r.headers().get("access-control-allow-methods").is_none());
    }
}

#[tokio::test]
async fn responses_carry_the_origin_on_every_browser_facing_path() {
    let s = server().await;
    let t = token("c", &[], &[], 3600);
    let get = |path: &str, origin: &str| {
        s.http
            .get(format!("{}{path}", s.base))
            .header("Origin", origin)
            .bearer_auth(&t)
    };
    let r = get("/poll?channel=chat:c", APP).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(acao(&r).as_deref(), Some(APP));
    assert_eq!(r.headers()["vary"], "origin");
    let r = get("/poll?channel=chat:c", EVIL).send().await.unwrap();
    assert_eq!(acao(&r), None);
    let r = s
        .http
        .post(format!("{}/auth/ticket", s.base))
        .header("Origin", APP)
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(acao(&r).as_deref(), Some(APP));
    // The taken-over SSE path writes its own head: the same policy applies.
    let r = get("/sse?channel=chat:c", APP).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(acao(&r).as_deref(), Some(APP));
    let r = get("/sse?channel=chat:c", EVIL).send().await.unwrap();
    assert_eq!(acao(&r), None);
    // Errors are readable by the allowed page too (a 401 it can act on).
    let r = s
        .http
        .get(format!("{}/sse?channel=chat:c", s.base))
        .header("Origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(acao(&r).as_deref(), Some(APP));
}

/// `POST /api/publish` as a page on `APP` would send it.
async fn api_publish_from_app(s: &TestServer) -> reqwest::Response {
    s.http
        .post(format!("{}/api/publish", s.base))
        .header("Origin", APP)
        .header("X-API-Key", API_KEY)
        .json(&serde_json::json!({"channel": "a", "data": 1}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_server_api_stays_server_to_server_unless_configured() {
    let s = server().await;
    let r = api_publish_from_app(&s).await;
    assert_eq!(r.status(), 200);
    assert_eq!(acao(&r), None);

    let open = TestServer::with(|c| {
        c.cors.allowed_origins = Some(vec![APP.into()]);
        c.cors.api = true;
        c.cors.allow_credentials = true;
    })
    .await;
    let r = api_publish_from_app(&open).await;
    assert_eq!(acao(&r).as_deref(), Some(APP));
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
}

#[tokio::test]
async fn without_configuration_nothing_is_cross_origin() {
    let s = TestServer::start().await;
    let r = s
        .http
        .request(Method::OPTIONS, format!("{}/cmd", s.base))
        .header("Origin", APP)
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(acao(&r), None);
}
