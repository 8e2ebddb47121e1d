//! Issue 15, item 3: what an outside probe found at the edges of the protocol. Close frames are
//! answered as RFC 6455 §7.4 requires, an absurdly long request URI gets `414` (not a reset),
//! and token errors give a short stable reason without the parser's details.

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::raw::{RawWs, masked};
use crate::harness::*;

async fn close_reply(s: &TestServer, payload: &[u8]) -> u16 {
    let mut ws = RawWs::open(s.running().addr, "/ws", None, None)
        .await
        .unwrap();
    ws.tcp.write_all(&masked(8, payload)).await.unwrap();
    loop {
        let f = ws
            .frame()
            .await
            .expect("a close frame before the socket ends");
        if let Some(code) = f.close_code() {
            return code;
        }
    }
}

#[tokio::test]
async fn close_frames_are_answered_with_the_code_rfc_6455_requires() {
    let s = TestServer::start().await;
    assert_eq!(close_reply(&s, &[]).await, 1000);
    assert_eq!(close_reply(&s, &[0x03]).await, 1002, "one-byte payload");
    for bad in [999u16, 1004, 1005, 1006, 1015, 2999, 5000] {
        assert_eq!(close_reply(&s, &bad.to_be_bytes()).await, 1002, "{bad}");
    }
    let mut bad_reason = 1000u16.to_be_bytes().to_vec();
    bad_reason.extend_from_slice(&[0xc3, 0x28]);
    assert_eq!(close_reply(&s, &bad_reason).await, 1007);
    assert_eq!(close_reply(&s, &4000u16.to_be_bytes()).await, 4000);
}

async fn raw_get(s: &TestServer, path: &str) -> (u16, Value) {
    let mut tcp = tokio::net::TcpStream::connect(s.running().addr)
        .await
        .unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    // The server may answer before it has read the whole request: write in the background.
    let (mut rd, mut wr) = tcp.split();
    let write = async {
        let _ = wr.write_all(req.as_bytes()).await;
    };
    // Reads one response (head and a content-length body); the connection may stay open.
    let read = async {
        let mut out = Vec::new();
        let _ = tokio::time::timeout(WAIT, async {
            let mut chunk = [0u8; 4096];
            loop {
                if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if out.len() >= end + 4 + len {
                        return;
                    }
                }
                match rd.read(&mut chunk).await {
                    Ok(n) if n > 0 => out.extend_from_slice(&chunk[..n]),
                    _ => return,
                }
            }
        })
        .await;
        out
    };
    let ((), out) = tokio::join!(write, read);
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP response for {}…: {text:?}", &path[..20]));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_overlong_uri_gets_414_on_every_endpoint() {
    let s = TestServer::start().await;
    let ticket = "A".repeat(100_000);
    for path in [
        "/sse?channel=chat:a&ticket=",
        "/ws?ticket=",
        "/poll?channel=a&x=",
    ] {
        let (status, body) = raw_get(&s, &format!("{path}{ticket}")).await;
        assert_eq!(status, 414, "{path}: {body}");
    }
    // The node still serves.
    let (status, _) = raw_get(&s, "/health").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn token_errors_are_short_and_stable() {
    let s = TestServer::start().await;
    let bad = [
        "garbage",
        "eyJhbGciOiJIUzI1NiJ9.@@@.sig",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOjF9.c2ln",
        "eyJhbGciOiJub25lIn0.e30.",
    ];
    for t in bad {
        let mut ws = s.ws().await;
        let r = ws.connect(t).await;
        assert_eq!(r["error"]["code"], "unauthorized", "{r}");
        let msg = r["error"]["message"].as_str().unwrap();
        assert!(
            [
                "malformed token",
                "invalid token signature",
                "token algorithm is not accepted"
            ]
            .contains(&msg),
            "{t}: {msg}"
        );
        let r = s
            .http
            .post(format!("{}/auth/ticket", s.base))
            .bearer_auth(t)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["message"], json!(msg));
    }
}
