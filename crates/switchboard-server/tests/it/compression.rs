//! Issue 10: permessage-deflate (RFC 7692). A session that negotiated it receives the same data
//! as one that did not, compressed where configured; a session that did not negotiate it never
//! sees a compressed frame; compressed client frames are inflated within the message limit.

use std::process::Stdio;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use serde_json::{Value, json};
use switchboard_core::NamespaceConfig;
use switchboard_server::Config;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::harness::*;
use crate::ops::raw::{RawWs, masked};

const OFFER: &str = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";
const ACCEPTED: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// `ticker` publications are compressed; the server-wide setting stays off.
fn ticker_namespace(c: &mut Config) {
    c.namespaces.insert(
        "ticker".into(),
        NamespaceConfig {
            compression: Some(true),
            ..NamespaceConfig::development()
        },
    );
}

/// A realistic ticker update (~700 bytes of JSON).
fn quote(n: u64) -> Value {
    let levels: Vec<Value> = (0..8)
        .map(|i| json!({"price": 64_120.5 + f64::from(i) * 0.5, "size": 0.25 * f64::from(i + 1)}))
        .collect();
    json!({
        "symbol": "BTC-USD", "seq": n, "bid": 64_123.5, "ask": 64_124.0,
        "last": {"price": 64_123.75, "size": 0.042, "side": "buy"},
        "bids": levels, "asks": levels, "ts": 1_764_670_000_000u64 + n,
    })
}

fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(1 << 20);
    Decompress::new(false)
        .decompress_vec(&input, &mut out, FlushDecompress::Sync)
        .expect("valid deflate data");
    out
}

fn deflate(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 64);
    Compress::new(Compression::default(), false)
        .compress_vec(payload, &mut out, FlushCompress::Sync)
        .unwrap();
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

/// A masked client text frame carrying `payload` compressed (RSV1).
fn compressed_frame(payload: &[u8]) -> Vec<u8> {
    let mut f = masked(1, &deflate(payload));
    f[0] |= 0x40;
    f
}

/// The next JSON message (inflated when compressed) and whether it came compressed; pings
/// skipped. `None` at a close frame or the end.
async fn next(ws: &mut RawWs) -> Option<(bool, Value)> {
    loop {
        let f = ws.frame().await?;
        match f.opcode {
            8 => return None,
            1 => {
                let text = if f.rsv1 {
                    inflate(&f.payload)
                } else {
                    f.payload
                };
                let v: Value = serde_json::from_slice(&text).expect("JSON text");
                if v["op"] != "ping" {
                    return Some((f.rsv1, v));
                }
            }
            _ => {}
        }
    }
}

/// Sends a command (compressed when `compress`) and returns its reply, dropping pushes.
async fn request(ws: &mut RawWs, compress: bool, cmd: Value) -> (bool, Value) {
    let text = cmd.to_string();
    if compress {
        ws.tcp
            .write_all(&compressed_frame(text.as_bytes()))
            .await
            .unwrap();
    } else {
        ws.send_text(&text).await;
    }
    loop {
        let (c, v) = next(ws).await.expect("reply before close");
        if v["id"] == cmd["id"] {
            return (c, v);
        }
    }
}

async fn open(s: &TestServer, offer: bool) -> RawWs {
    RawWs::open_with(
        s.running().addr,
        "/ws",
        None,
        None,
        if offer { OFFER } else { "" },
    )
    .await
    .expect("handshake")
}

/// Opens a session, connects (the command compressed when the extension was negotiated) and
/// subscribes to `channels`.
async fn session(s: &TestServer, offer: bool, user: &str, channels: &[&str]) -> RawWs {
    let mut ws = open(s, offer).await;
    let negotiated = ws.head.to_ascii_lowercase().contains("permessage-deflate");
    let t = token(user, &[], &[], 3600);
    let (_, r) = request(
        &mut ws,
        negotiated,
        json!({"id": 1, "op": "connect", "token": t}),
    )
    .await;
    assert!(r.get("error").is_none(), "{r}");
    for (i, ch) in channels.iter().enumerate() {
        let (_, r) = request(
            &mut ws,
            false,
            json!({"id": 10 + i, "op": "subscribe", "channel": ch}),
        )
        .await;
        assert!(r.get("error").is_none(), "{r}");
    }
    ws
}

async fn pubs(ws: &mut RawWs, n: usize) -> Vec<(bool, Value)> {
    let mut out = Vec::new();
    while out.len() < n {
        let (c, v) = next(ws).await.expect("publication before close");
        if v["op"] == "pub" {
            out.push((c, v));
        }
    }
    out
}

#[tokio::test]
async fn compressed_and_plain_sessions_receive_the_same_publications() {
    let s = TestServer::with(ticker_namespace).await;
    let mut a = session(&s, true, "deflate", &["ticker:btc", "live:btc"]).await;
    let mut b = session(&s, false, "plain", &["ticker:btc", "live:btc"]).await;
    let head = a.head.to_ascii_lowercase();
    assert!(
        head.contains(&format!("sec-websocket-extensions: {ACCEPTED}")),
        "{head}"
    );
    assert!(
        !b.head
            .to_ascii_lowercase()
            .contains("sec-websocket-extensions")
    );

    for n in 1..=5 {
        s.publish("ticker:btc", quote(n)).await;
    }
    s.publish("ticker:btc", json!({"n": 6})).await; // too small to compress
    s.publish("live:btc", quote(7)).await; // a namespace without compression
    let got_a = pubs(&mut a, 7).await;
    let got_b = pubs(&mut b, 7).await;
    let compressed: Vec<bool> = got_a.iter().map(|(c, _)| *c).collect();
    assert_eq!(compressed, [true, true, true, true, true, false, false]);
    assert!(
        got_b.iter().all(|(c, _)| !c),
        "plain session got a compressed frame"
    );
    let values = |v: &[(bool, Value)]| v.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>();
    assert_eq!(values(&got_a), values(&got_b));
    assert_eq!(got_a[4].1["data"]["seq"], 5);
}

#[tokio::test]
async fn server_wide_compression_never_reaches_a_client_that_did_not_offer_it() {
    let s = TestServer::with(|c| {
        c.websocket.compression = true;
        c.websocket.compression_min_size = 64;
    })
    .await;
    for n in 1..=20 {
        s.publish("feed:hist", quote(n)).await;
    }
    let history = json!({"id": 5, "op": "history", "channel": "feed:hist", "limit": 20});
    // Offered: the large history reply and publications come compressed.
    let mut a = session(&s, true, "a", &["feed:hist"]).await;
    let (c, reply) = request(&mut a, false, history.clone()).await;
    assert!(c, "a large reply is compressed");
    let count = reply["ok"]["publications"].as_array().map(Vec::len);
    assert_eq!(count, Some(20), "{}", reply["error"]);
    // Not offered: nothing compressed, the same data.
    let mut b = session(&s, false, "b", &["feed:hist"]).await;
    let (c, reply_b) = request(&mut b, false, history).await;
    assert!(!c);
    assert_eq!(reply["ok"], reply_b["ok"]);
    s.publish("feed:hist", quote(21)).await;
    let (ca, pa) = pubs(&mut a, 1).await.remove(0);
    let (cb, pb) = pubs(&mut b, 1).await.remove(0);
    assert!(ca && !cb);
    assert_eq!(pa, pb);
}

#[tokio::test]
async fn compression_is_not_negotiated_unless_configured() {
    let s = TestServer::start().await;
    let ws = open(&s, true).await;
    assert!(
        !ws.head
            .to_ascii_lowercase()
            .contains("sec-websocket-extensions")
    );
    // An offer the server cannot honour without a per-session window is declined.
    let s = TestServer::with(|c| c.websocket.compression = true).await;
    let ws = RawWs::open_with(
        s.running().addr,
        "/ws",
        None,
        None,
        "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n",
    )
    .await
    .unwrap();
    assert!(
        !ws.head
            .to_ascii_lowercase()
            .contains("sec-websocket-extensions")
    );
}

/// The code of the close frame the server sends, reading past anything before it.
async fn close_code(ws: &mut RawWs) -> Option<u16> {
    loop {
        let f = ws.frame().await?;
        if f.opcode == 8 {
            return f.close_code();
        }
    }
}

/// Bad compressed input closes that session with the documented code; others go on.
#[tokio::test]
async fn bad_compressed_frames_close_with_documented_codes() {
    let s = TestServer::with(|c| c.websocket.compression = true).await;
    let mut bystander = session(&s, true, "ok", &["feed:bad"]).await;
    let cases: [(Vec<u8>, u16); 4] = [
        // Not a deflate stream.
        (
            {
                let mut f = masked(1, &[0xff, 0xff, 0xff, 0xff]);
                f[0] |= 0x40;
                f
            },
            1002,
        ),
        // RSV1 on a control frame.
        (
            {
                let mut f = masked(9, b"x");
                f[0] |= 0x40;
                f
            },
            1002,
        ),
        // Inflates past limits.max_message_size (64 KiB): refused while inflating.
        (compressed_frame(&vec![b' '; 1 << 20]), 4504),
        // RSV2 is never allowed.
        (
            {
                let mut f = masked(1, b"{}");
                f[0] |= 0x20;
                f
            },
            1002,
        ),
    ];
    for (frame, code) in cases {
        let mut ws = session(&s, true, "bad", &[]).await;
        ws.tcp.write_all(&frame).await.unwrap();
        assert_eq!(close_code(&mut ws).await, Some(code));
    }
    // Without the extension negotiated, RSV1 is a protocol error too.
    let mut plain = session(&s, false, "plain", &[]).await;
    plain.tcp.write_all(&compressed_frame(b"{}")).await.unwrap();
    assert_eq!(close_code(&mut plain).await, Some(1002));
    s.publish("feed:bad", quote(1)).await;
    assert_eq!(pubs(&mut bystander, 1).await[0].1["data"]["seq"], 1);
}

/// Python's `websockets` (which offers permessage-deflate by default) and the same library
/// with compression off receive the same publications.
#[tokio::test]
async fn python_websockets_with_and_without_compression_receive_the_same_data() {
    let s = TestServer::with(|c| c.websocket.compression = true).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/it/fixtures/ws_deflate.py"
    );
    let t = token("py", &[], &[], 3600);
    let spawn = |mode: &str| {
        tokio::process::Command::new("python3")
            .args([script, &s.ws_url(), &t, "feed:py", "3", mode])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs (./scripts/test.sh installs websockets)")
    };
    let mut out = Vec::new();
    for mode in ["deflate", "none"] {
        let mut child = spawn(mode);
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut line = async || -> Value {
            let l = tokio::time::timeout(WAIT, lines.next_line())
                .await
                .expect("python client output in time")
                .unwrap()
                .expect("a line");
            serde_json::from_str(&l).unwrap()
        };
        let ext = line().await;
        if mode == "deflate" {
            assert_eq!(ext["extensions"], ACCEPTED);
        } else {
            assert!(ext["extensions"].is_null(), "{ext}");
        }
        assert_eq!(line().await["subscribed"], true);
        let mut got = Vec::new();
        for n in 1..=3 {
            s.publish("feed:py", quote(n)).await;
            got.push(line().await["data"].clone());
        }
        out.push(got);
        child.wait().await.unwrap();
    }
    assert_eq!(out[0], out[1]);
    assert_eq!(out[0][2]["seq"], 3);
}
