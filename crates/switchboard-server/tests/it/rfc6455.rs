//! RFC 6455 conformance of the node's own frame codec (`ws/codec.rs`, `ws/conn.rs`) beyond the
//! happy path, as tables over the RFC's sections. Every row writes raw client bytes on a fresh
//! connection and asserts what the node answers, and for every failure the close code it sends
//! (RFC 6455 §7.1.7: _Fail the WebSocket Connection_ sends a close frame, then the TCP
//! connection ends). The codes are the ones `docs/protocol.md` documents.
//!
//! Non-minimal length encodings (a 5-byte payload in the 16- or 64-bit form): RFC 6455 §5.2
//! says "the minimal number of bytes MUST be used to encode the length" — a rule for the
//! sender; the RFC lists no receiver action for it and does not ask receivers to fail the
//! connection. The node accepts such frames (as tungstenite and the browsers' peers do), and
//! `docs/protocol.md` says so; the `lengths` table pins that down.

use serde_json::json;

use switchboard_server::decoders::deflate;

use crate::harness::{TestServer, token};
use crate::ops::raw::{Frame, RawWs};

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// How a frame writes its payload length.
#[derive(Clone, Copy)]
enum Len {
    /// The minimal form.
    Min,
    /// The 16-bit form (126).
    U16,
    /// The 64-bit form (127).
    U64,
    /// The 64-bit form with this value, whatever the payload.
    Claim(u64),
}

/// One client frame: FIN, RSV bits (`0b100` = RSV1), opcode, mask, payload.
#[derive(Clone)]
struct F {
    fin: bool,
    rsv: u8,
    op: u8,
    masked: bool,
    len: Len,
    payload: Vec<u8>,
}

impl F {
    fn new(op: u8, payload: impl AsRef<[u8]>) -> Self {
        Self {
            fin: true,
            rsv: 0,
            op,
            masked: true,
            len: Len::Min,
            payload: payload.as_ref().to_vec(),
        }
    }
    fn text(payload: impl AsRef<[u8]>) -> Self {
        Self::new(1, payload)
    }
    /// Not the last fragment.
    fn more(mut self) -> Self {
        self.fin = false;
        self
    }
    fn rsv(mut self, bits: u8) -> Self {
        self.rsv = bits;
        self
    }
    fn unmasked(mut self) -> Self {
        self.masked = false;
        self
    }
    fn len(mut self, len: Len) -> Self {
        self.len = len;
        self
    }
    fn bytes(&self) -> Vec<u8> {
        let mut out = vec![u8::from(self.fin) << 7 | self.rsv << 4 | self.op];
        let m = if self.masked { 0x80 } else { 0 };
        let n = self.payload.len();
        match self.len {
            Len::Min if n < 126 => out.push(m | n as u8),
            Len::Min | Len::U16 if n <= 0xffff => {
                out.push(m | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            Len::Min | Len::U16 | Len::U64 => {
                out.push(m | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
            Len::Claim(c) => {
                out.push(m | 127);
                out.extend_from_slice(&c.to_be_bytes());
            }
        }
        if self.masked {
            out.extend_from_slice(&MASK);
        }
        let mask = if self.masked { MASK } else { [0; 4] };
        out.extend(
            self.payload
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4]),
        );
        out
    }
}

/// A close frame with `code` and `reason` bytes.
fn close(code: u16, reason: &[u8]) -> F {
    F::new(8, [&code.to_be_bytes()[..], reason].concat())
}

/// A command the node answers with `ok` once connected, with `pad` in an ignored field (it
/// carries the non-ASCII text and the bulk of the length rows).
fn command(id: u64, pad: &str) -> Vec<u8> {
    json!({"id": id, "op": "presence", "channel": "chat:lobby", "pad": pad})
        .to_string()
        .into_bytes()
}

/// What the node does next.
#[derive(Clone, Debug)]
enum Then {
    /// A pong with this payload.
    Pong(Vec<u8>),
    /// The `ok` reply to the command with this id (the message was accepted).
    Reply(u64),
    /// A close frame with this code, then the end of the connection.
    Close(u16),
}

struct Row {
    /// RFC 6455 section and what the row checks.
    what: String,
    /// Send `connect` first.
    connected: bool,
    /// Offer permessage-deflate (RFC 7692) in the handshake.
    deflate: bool,
    send: Vec<F>,
    then: Vec<Then>,
}

fn row(what: impl Into<String>, send: Vec<F>, then: Vec<Then>) -> Row {
    Row {
        what: what.into(),
        connected: true,
        deflate: false,
        send,
        then,
    }
}

const OFFER: &str = "Sec-WebSocket-Extensions: permessage-deflate\r\n";

/// The JSON of a text frame, inflated when it came compressed (RSV1).
fn json_of(f: &Frame) -> serde_json::Value {
    if f.rsv1 {
        let text = deflate::decompress(&f.payload, 1 << 20).expect("inflates");
        serde_json::from_slice(&text).expect("JSON")
    } else {
        f.json().expect("JSON")
    }
}

/// `message` compressed as permessage-deflate sends it (no sync-flush tail).
fn compressed(message: &[u8]) -> Vec<u8> {
    deflate::compress(message, 6).expect("compressible")
}

async fn run(s: &TestServer, rows: Vec<Row>) {
    for r in rows {
        let what = &r.what;
        let offer = if r.deflate { OFFER } else { "" };
        let mut ws = RawWs::open_with(s.running().addr, "/ws", None, None, offer)
            .await
            .unwrap_or_else(|e| panic!("{what}: handshake {e:?}"));
        assert_eq!(
            ws.head.to_ascii_lowercase().contains("permessage-deflate"),
            r.deflate,
            "{what}: negotiation"
        );
        if r.connected {
            let reply = ws
                .request(json!({"id": 1, "op": "connect", "token": token("u", &["*"], &[], 3600)}))
                .await;
            assert!(reply.get("ok").is_some(), "{what}: {reply}");
        }
        let bytes: Vec<u8> = r.send.iter().flat_map(F::bytes).collect();
        tokio::io::AsyncWriteExt::write_all(&mut ws.tcp, &bytes)
            .await
            .unwrap();
        for then in &r.then {
            loop {
                let f = ws
                    .frame()
                    .await
                    .unwrap_or_else(|| panic!("{what}: connection ended before {then:?}"));
                match (then, f.opcode) {
                    (Then::Pong(p), 10) => {
                        assert_eq!(&f.payload, p, "{what}: pong payload");
                        break;
                    }
                    (Then::Reply(id), 1) => {
                        let v = json_of(&f);
                        if v["id"] == *id {
                            assert!(v.get("ok").is_some(), "{what}: {v}");
                            break;
                        }
                        assert!(v.get("id").is_none(), "{what}: unexpected reply {v}");
                    }
                    (Then::Close(code), 8) => {
                        assert_eq!(f.close_code(), Some(*code), "{what}: close code");
                        assert!(ws.frame().await.is_none(), "{what}: the connection ends");
                        break;
                    }
                    // Pushes (app pings, the disconnect notice before a close) may come first.
                    (_, 1) => {
                        let v = json_of(&f);
                        assert!(v.get("id").is_none(), "{what}: unexpected reply {v}");
                    }
                    (_, 9) => {}
                    _ => panic!("{what}: expected {then:?}, got {f:?}"),
                }
            }
        }
    }
}

/// §5.5 control frames: ping/pong, size and fragmentation rules, interleaving (§5.4).
#[tokio::test]
async fn control_frames() {
    let s = TestServer::start().await;
    use Then::*;
    run(
        &s,
        vec![
            row(
                "§5.5.2 a ping is answered with a pong with the same payload",
                vec![F::new(9, b"hello \x00\xff")],
                vec![Pong(b"hello \x00\xff".to_vec()), Reply(2)],
            )
            .then_send(F::text(command(2, ""))),
            row(
                "§5.5.2 an empty ping gets an empty pong",
                vec![F::new(9, b"")],
                vec![Pong(vec![])],
            ),
            row(
                "§5.5.2 a 125-byte ping (the most a control frame carries)",
                vec![F::new(9, [7u8; 125])],
                vec![Pong(vec![7; 125])],
            ),
            row(
                "§5.5.3 an unsolicited pong is ignored",
                vec![F::new(10, b"x"), F::text(command(2, ""))],
                vec![Reply(2)],
            ),
            row(
                "§5.5 a control frame with a 126-byte payload",
                vec![F::new(9, [0u8; 126])],
                vec![Close(1002)],
            ),
            row(
                "§5.5 a control frame with 125 bytes in the 16-bit length form is still 125",
                vec![F::new(9, [1u8; 125]).len(Len::U16)],
                vec![Pong(vec![1; 125])],
            ),
            row(
                "§5.5 a fragmented ping",
                vec![F::new(9, b"a").more()],
                vec![Close(1002)],
            ),
            row(
                "§5.5 a fragmented close",
                vec![close(1000, b"").more()],
                vec![Close(1002)],
            ),
            row(
                "§5.4 control frames between the fragments of a message are allowed",
                {
                    let c = command(3, "interleaved");
                    vec![
                        F::text(&c[..5]).more(),
                        F::new(9, b"p1"),
                        F::new(0, &c[5..9]).more(),
                        F::new(10, b"unsolicited"),
                        F::new(9, b"p2"),
                        F::new(0, &c[9..]),
                    ]
                },
                vec![Pong(b"p1".to_vec()), Pong(b"p2".to_vec()), Reply(3)],
            ),
            row(
                "§5.4 a close between fragments ends the connection",
                vec![F::text(b"{").more(), close(1000, b"")],
                vec![Close(1000)],
            ),
        ],
    )
    .await;
}

impl Row {
    /// Adds a frame to send after the others.
    fn then_send(mut self, f: F) -> Self {
        self.send.push(f);
        self
    }
}

/// §5.4 fragmentation and §5.6/§8.1 UTF-8 of text messages.
#[tokio::test]
async fn fragmentation_and_utf8() {
    let s = TestServer::start().await;
    use Then::*;
    // "é" is 0xc3 0xa9 and "€" 0xe2 0x82 0xac: cut inside both.
    let text = command(4, "héllo €uro");
    let e_at = text.windows(2).position(|w| w == [0xc3, 0xa9]).unwrap() + 1;
    let euro_at = text
        .windows(3)
        .position(|w| w == [0xe2, 0x82, 0xac])
        .unwrap()
        + 2;
    let mut bad = command(5, "x");
    let x = bad.iter().rposition(|&b| b == b'x').unwrap();
    bad[x] = 0xff;
    let mut truncated = command(6, "é");
    let e = truncated.iter().position(|&b| b == 0xc3).unwrap();
    truncated.remove(e + 1);
    run(
        &s,
        vec![
            row(
                "§5.4 a message in three fragments",
                {
                    let c = command(2, "three");
                    vec![
                        F::text(&c[..3]).more(),
                        F::new(0, &c[3..10]).more(),
                        F::new(0, &c[10..]),
                    ]
                },
                vec![Reply(2)],
            ),
            row(
                "§5.4 empty fragments",
                {
                    let c = command(3, "");
                    vec![F::text(b"").more(), F::new(0, &c).more(), F::new(0, b"")]
                },
                vec![Reply(3)],
            ),
            row(
                "§5.6/§8.1 UTF-8 characters split across fragment boundaries are accepted",
                vec![
                    F::text(&text[..e_at]).more(),
                    F::new(9, b"between"),
                    F::new(0, &text[e_at..euro_at]).more(),
                    F::new(0, &text[euro_at..]),
                ],
                vec![Pong(b"between".to_vec()), Reply(4)],
            ),
            row(
                "§5.4 a continuation frame without a message to continue",
                vec![F::new(0, b"{}")],
                vec![Close(1002)],
            ),
            row(
                "§5.4 a final continuation frame without a message to continue",
                vec![F::new(0, b"{}").more()],
                vec![Close(1002)],
            ),
            row(
                "§5.4 a new text frame while a message is fragmented",
                vec![F::text(b"{").more(), F::text(b"{}")],
                vec![Close(1002)],
            ),
            row(
                "§5.4 a new binary frame while a message is fragmented",
                vec![F::text(b"{").more(), F::new(2, b"x").more()],
                vec![Close(1002)],
            ),
            row(
                "§8.1 invalid UTF-8 in a text message",
                vec![F::text(&bad)],
                vec![Close(1007)],
            ),
            row(
                "§8.1 invalid UTF-8 in the last fragment",
                vec![F::text(&bad[..4]).more(), F::new(0, &bad[4..])],
                vec![Close(1007)],
            ),
            row(
                "§8.1 a character cut short inside a fragmented message",
                vec![
                    F::text(&truncated[..e + 1]).more(),
                    F::new(0, &truncated[e + 1..]),
                ],
                vec![Close(1007)],
            ),
            row(
                "§5.6 a binary message (the protocol speaks JSON text)",
                vec![F::new(2, b"{}")],
                vec![Close(1003)],
            ),
            row(
                "§5.6 a fragmented binary message",
                vec![F::new(2, b"{").more(), F::new(0, b"}")],
                vec![Close(1003)],
            ),
        ],
    )
    .await;
}

/// §5.5.1 and §7.4 close frames: the node answers with the client's code when a peer may send
/// it, 1000 for an empty close, 1002 for a one-byte payload or a code that may not appear on
/// the wire, 1007 for a reason that is not UTF-8.
#[tokio::test]
async fn close_codes_and_reasons() {
    let s = TestServer::start().await;
    let mut rows = Vec::new();
    for code in [
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000,
        4999,
    ] {
        rows.push(row(
            format!("§7.4 a valid close code {code} is echoed"),
            vec![close(code, b"bye")],
            vec![Then::Close(code)],
        ));
    }
    for code in [
        0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
    ] {
        rows.push(row(
            format!("§7.4.1 close code {code} may not be sent: 1002"),
            vec![close(code, b"")],
            vec![Then::Close(1002)],
        ));
    }
    rows.extend([
        row(
            "§5.5.1 a close without a payload is answered with 1000",
            vec![F::new(8, b"")],
            vec![Then::Close(1000)],
        ),
        row(
            "§5.5.1 a one-byte close payload",
            vec![F::new(8, [3])],
            vec![Then::Close(1002)],
        ),
        row(
            "§5.5.1 a reason that is not UTF-8",
            vec![close(1000, &[b'o', 0xff, b'k'])],
            vec![Then::Close(1007)],
        ),
        row(
            "§5.5.1 a UTF-8 reason of the full 123 bytes",
            vec![close(4001, "é".repeat(61).as_bytes()).then_push(b"x")],
            vec![Then::Close(4001)],
        ),
        Row {
            connected: false,
            ..row(
                "§5.5.1 a close before `connect`",
                vec![close(1001, b"")],
                vec![Then::Close(1001)],
            )
        },
    ]);
    run(&s, rows).await;
}

impl F {
    /// Appends bytes to the payload.
    fn then_push(mut self, b: &[u8]) -> Self {
        self.payload.extend_from_slice(b);
        self
    }
}

/// §5.1/§5.3 masking, §5.2 reserved bits and opcodes.
#[tokio::test]
async fn masking_reserved_bits_and_opcodes() {
    let s = TestServer::start().await;
    let mut rows = vec![
        row(
            "§5.1 an unmasked client text frame",
            vec![F::text(command(2, "")).unmasked()],
            vec![Then::Close(1002)],
        ),
        row(
            "§5.1 an unmasked client ping",
            vec![F::new(9, b"x").unmasked()],
            vec![Then::Close(1002)],
        ),
        Row {
            connected: false,
            ..row(
                "§5.1 an unmasked frame before `connect`",
                vec![F::text(b"{}").unmasked()],
                vec![Then::Close(1002)],
            )
        },
    ];
    for (bits, name) in [
        (0b100, "RSV1"),
        (0b010, "RSV2"),
        (0b001, "RSV3"),
        (0b111, "all RSV"),
    ] {
        rows.push(row(
            format!("§5.2 {name} without a negotiated extension"),
            vec![F::text(command(2, "")).rsv(bits)],
            vec![Then::Close(1002)],
        ));
    }
    rows.push(row(
        "§5.2 RSV1 on a ping without a negotiated extension",
        vec![F::new(9, b"x").rsv(0b100)],
        vec![Then::Close(1002)],
    ));
    for op in (3..=7).chain(0xb..=0xf) {
        rows.push(row(
            format!("§5.2 reserved opcode {op:#x}"),
            vec![F::new(op, b"")],
            vec![Then::Close(1002)],
        ));
    }
    rows.push(row(
        "§5.2 a reserved opcode inside a fragmented message",
        vec![F::text(b"{").more(), F::new(0xb, b"")],
        vec![Then::Close(1002)],
    ));
    run(&s, rows).await;
}

/// §5.2 payload length forms, and the message size limit (4504, `docs/protocol.md`).
#[tokio::test]
async fn lengths() {
    let s = TestServer::start().await;
    let max = s.node().config().limits.max_message_size;
    // The biggest command the limit allows, in the 64-bit form (its minimal form: > 65535).
    let at_limit = {
        let c = command(4, "");
        command(4, &"p".repeat(max - c.len()))
    };
    assert_eq!(at_limit.len(), max);
    assert!(max > 0xffff, "the 64-bit form is the minimal one here");
    use Then::*;
    run(
        &s,
        vec![
            row(
                "§5.2 7-bit length",
                vec![F::text(command(2, ""))],
                vec![Reply(2)],
            ),
            row(
                "§5.2 16-bit length (126)",
                vec![F::text(command(3, &"p".repeat(300)))],
                vec![Reply(3)],
            ),
            row(
                "§5.2 64-bit length (127), exactly the size limit",
                vec![F::text(&at_limit)],
                vec![Reply(4)],
            ),
            row(
                "§5.2 non-minimal: a short payload in the 16-bit form is accepted",
                vec![F::text(command(5, "")).len(Len::U16)],
                vec![Reply(5)],
            ),
            row(
                "§5.2 non-minimal: a short payload in the 64-bit form is accepted",
                vec![
                    F::new(9, b"x").len(Len::U64),
                    F::text(command(6, "")).len(Len::U64),
                ],
                vec![Pong(b"x".to_vec()), Reply(6)],
            ),
            row(
                "§5.2 a 64-bit length with the most significant bit set",
                vec![F::text(b"").len(Len::Claim(1 << 63))],
                vec![Close(1002)],
            ),
            row(
                "§5.2 the largest 64-bit length (all bits set)",
                vec![F::text(b"").len(Len::Claim(u64::MAX))],
                vec![Close(1002)],
            ),
            row(
                "§10.4 a frame one byte over the limit, refused from its header",
                vec![F::text(b"").len(Len::Claim(max as u64 + 1))],
                vec![Close(4504)],
            ),
            row(
                "§10.4 a frame claiming 2^62 bytes, refused from its header",
                vec![F::text(b"").len(Len::Claim(1 << 62))],
                vec![Close(4504)],
            ),
            row(
                "§10.4 fragments that add up to more than the limit",
                vec![
                    F::text(vec![b' '; max / 2]).more(),
                    F::new(0, vec![b' '; max / 2]).more(),
                    F::new(0, b" "),
                ],
                vec![Close(4504)],
            ),
            row(
                "§10.4 a control frame over 125 bytes is a protocol error before the limit",
                vec![F::new(9, b"").len(Len::Claim(max as u64 + 1))],
                vec![Close(1002)],
            ),
        ],
    )
    .await;
}

/// RFC 7692 §6 (permessage-deflate negotiated): RSV1 marks the first frame of a compressed
/// data message and nothing else; RSV2/RSV3 stay reserved.
#[tokio::test]
async fn permessage_deflate_bits() {
    let s = TestServer::with(|c| c.websocket.compression = true).await;
    let max = s.node().config().limits.max_message_size;
    let big = command(3, &"p".repeat(4000));
    let c = compressed(&big);
    use Then::*;
    let rows = vec![
        row(
            "RFC 7692 §6 a compressed text message",
            vec![F::text(compressed(&command(2, &"z".repeat(200)))).rsv(0b100)],
            vec![Reply(2)],
        ),
        row(
            "RFC 7692 §6.1 a compressed message in fragments, RSV1 on the first only",
            vec![
                F::text(&c[..4]).rsv(0b100).more(),
                F::new(9, b"mid"),
                F::new(0, &c[4..]),
            ],
            vec![Pong(b"mid".to_vec()), Reply(3)],
        ),
        row(
            "RFC 7692 an uncompressed message on a deflate connection",
            vec![F::text(command(4, ""))],
            vec![Reply(4)],
        ),
        row(
            "RFC 7692 §6.1 RSV1 on a continuation frame",
            vec![F::text(&c[..4]).more(), F::new(0, &c[4..]).rsv(0b100)],
            vec![Close(1002)],
        ),
        row(
            "RFC 7692 §6.1 RSV1 on a ping",
            vec![F::new(9, b"x").rsv(0b100)],
            vec![Close(1002)],
        ),
        row(
            "RFC 7692 §6 RSV2 stays reserved",
            vec![F::text(command(5, "")).rsv(0b010)],
            vec![Close(1002)],
        ),
        row(
            "RFC 7692 §6.2 data that is not a deflate stream",
            vec![F::text([0xff, 0xff, 0xff, 0xff]).rsv(0b100)],
            vec![Close(1002)],
        ),
        row(
            "RFC 7692 §8.1 a message that inflates past the limit",
            vec![F::text(compressed(&vec![b' '; max + 1])).rsv(0b100)],
            vec![Close(4504)],
        ),
    ];
    run(
        &s,
        rows.into_iter()
            .map(|r| Row { deflate: true, ..r })
            .collect(),
    )
    .await;
}
