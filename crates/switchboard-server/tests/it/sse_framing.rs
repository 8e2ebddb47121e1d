//! Issue 10: SSE framing every HTTP client handles. A taken-over HTTP/1.1 stream is chunked,
//! one event per chunk, so a client that reads in blocks (Python `requests`) sees each event
//! as it is published; HTTP/1.0 clients get a close-delimited stream.

use std::process::Stdio;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::harness::*;

#[tokio::test]
async fn a_block_buffered_python_client_sees_each_event_promptly() {
    let s = TestServer::start().await;
    let t = token("py", &[], &[], 3600);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/it/fixtures/sse_requests.py"
    );
    let mut child = tokio::process::Command::new("python3")
        .arg(script)
        .arg(format!("{}/sse?channel=feed:py", s.base))
        .arg(&t)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs (./scripts/test.sh installs requests)");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let welcome = next(&mut lines).await;
    assert_eq!(welcome["user"], "py", "{welcome}");
    // One at a time: each must arrive on its own, with nothing after it to push it through.
    for n in 1..=3 {
        s.publish("feed:py", json!({"n": n})).await;
        let ev = next(&mut lines).await;
        assert_eq!(ev["op"], "pub");
        assert_eq!(ev["data"]["n"], n);
    }
}

async fn next<R: tokio::io::AsyncBufRead + Unpin>(lines: &mut tokio::io::Lines<R>) -> Value {
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("the event reached the block-buffered client in time")
        .unwrap()
        .expect("a line");
    serde_json::from_str(&line).unwrap()
}

async fn raw_stream_head(s: &TestServer, version: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(s.running().addr)
        .await
        .unwrap();
    let t = token("raw", &[], &[], 3600);
    let req = format!(
        "GET /sse?channel=chat:raw {version}\r\nHost: x\r\nAuthorization: Bearer {t}\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    tokio::time::timeout(WAIT, async {
        while !out.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tcp.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            out.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("a response head");
    String::from_utf8_lossy(&out).to_ascii_lowercase()
}

#[tokio::test]
async fn http11_streams_are_chunked_and_http10_ones_close_delimited() {
    let s = TestServer::start().await;
    let h11 = raw_stream_head(&s, "HTTP/1.1").await;
    assert!(h11.contains("transfer-encoding: chunked"), "{h11}");
    let h10 = raw_stream_head(&s, "HTTP/1.0").await;
    assert!(!h10.contains("transfer-encoding"), "{h10}");
    assert!(h10.contains("text/event-stream"));
}
