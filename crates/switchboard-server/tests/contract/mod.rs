//! The documented contracts of the server's decoders of untrusted input, as checks that panic
//! on a violation: WebSocket frames (`ws/codec.rs`), message assembly with fragmentation and
//! UTF-8 (`ws/conn.rs`), permessage-deflate inflate and offers (`ws/deflate.rs`), the `/sse`
//! and `/poll` query with `Last-Event-ID`, tickets. One copy serves the bounded property tests
//! (`tests/decoders.rs`) and the fuzz targets (`fuzz/fuzz_targets/*.rs` include this file).

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use flate2::{Decompress, FlushDecompress, Status};
use http::{HeaderMap, HeaderValue, StatusCode};
use switchboard_protocol::{Cursor, ErrorCode};
use switchboard_server::decoders::{
    Assembler, Opcode, StreamQuery, Tickets, codec, deflate, random_secret, ticket_well_formed,
};

// ---------------------------------------------------------------------------------------------
// Frames

/// How a byte stream ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// More bytes are needed.
    Incomplete,
    /// The connection is closed with this code.
    Close(u16),
}

/// A frame as the model sees it: FIN, opcode, RSV1, unmasked payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelFrame {
    pub fin: bool,
    pub opcode: u8,
    pub rsv1: bool,
    pub payload: Vec<u8>,
}

pub fn opcode_u8(op: Opcode) -> u8 {
    match op {
        Opcode::Continuation => 0,
        Opcode::Text => 1,
        Opcode::Binary => 2,
        Opcode::Close => 8,
        Opcode::Ping => 9,
        Opcode::Pong => 10,
    }
}

/// RFC 6455 §5.2 (and RFC 7692 §6 for RSV1) read straight from the spec, on a byte slice:
/// the frames a client stream holds and how it ends. The checks are in the order the server
/// documents (the RFC does not order them): opcode, RSV bits, mask, length form, control frame
/// rules, size limit. Non-minimal length encodings are accepted (the RFC's "minimal number of
/// bytes MUST be used" binds the sender; the node does not fail a connection for it).
pub fn model_frames(mut data: &[u8], max: usize, deflate: bool) -> (Vec<ModelFrame>, End) {
    let mut frames = Vec::new();
    loop {
        if data.len() < 2 {
            return (frames, End::Incomplete);
        }
        let fin = data[0] & 0x80 != 0;
        let rsv1 = data[0] & 0x40 != 0;
        let rsv23 = data[0] & 0x30 != 0;
        let opcode = data[0] & 0x0f;
        let control = opcode & 0x08 != 0;
        if ![0, 1, 2, 8, 9, 10].contains(&opcode) {
            return (frames, End::Close(1002));
        }
        if rsv23 || (rsv1 && !(deflate && (opcode == 1 || opcode == 2))) {
            return (frames, End::Close(1002));
        }
        if data[1] & 0x80 == 0 {
            return (frames, End::Close(1002));
        }
        let (len, at): (u64, usize) = match data[1] & 0x7f {
            126 if data.len() < 4 => return (frames, End::Incomplete),
            126 => (u64::from(u16::from_be_bytes([data[2], data[3]])), 4),
            127 if data.len() < 10 => return (frames, End::Incomplete),
            127 => {
                let n = u64::from_be_bytes(data[2..10].try_into().unwrap());
                if n >= 1 << 63 {
                    return (frames, End::Close(1002));
                }
                (n, 10)
            }
            n => (u64::from(n), 2),
        };
        if control && (!fin || len > 125) {
            return (frames, End::Close(1002));
        }
        if len > max as u64 {
            return (frames, End::Close(4504));
        }
        let len = len as usize;
        if data.len() < at + 4 + len {
            return (frames, End::Incomplete);
        }
        let mask = &data[at..at + 4];
        let payload = data[at + 4..at + 4 + len]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        frames.push(ModelFrame {
            fin,
            opcode,
            rsv1,
            payload,
        });
        data = &data[at + 4 + len..];
    }
}

/// Cuts `len` bytes into chunk sizes from `seed` (a socket delivers frames in any pieces).
fn chunks(len: usize, mut seed: u64) -> Vec<usize> {
    let mut out = Vec::new();
    let mut left = len;
    while left > 0 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let n = match seed % 4 {
            0 => 1,
            1 => (seed >> 8) as usize % 8 + 1,
            2 => (seed >> 8) as usize % 200 + 1,
            _ => left,
        }
        .min(left);
        out.push(n);
        left -= n;
    }
    out
}

/// Runs `codec::parse` over `data` delivered in `pieces`, as the connection loop does.
fn run_parser(
    data: &[u8],
    pieces: &[usize],
    max: usize,
    deflate: bool,
) -> (Vec<codec::Frame>, End) {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut at = 0;
    for &n in pieces {
        buf.extend_from_slice(&data[at..at + n]);
        at += n;
        loop {
            let before = buf.clone();
            match codec::parse(&mut buf, max, deflate) {
                Ok(Some(f)) => {
                    // A frame never carries more than the limit, a control frame never more
                    // than 125 bytes nor fragmented, RSV1 only where negotiated.
                    assert!(f.payload.len() <= max);
                    let op = opcode_u8(f.opcode);
                    if op >= 8 {
                        assert!(f.fin && f.payload.len() <= 125);
                    }
                    assert!(!f.compressed || (deflate && (op == 1 || op == 2)));
                    assert!(buf.len() < before.len(), "a frame consumes bytes");
                    assert_eq!(&before[before.len() - buf.len()..], &buf[..]);
                    frames.push(f);
                }
                Ok(None) => {
                    assert_eq!(buf, before, "waiting for more keeps the bytes");
                    break;
                }
                Err(d) => {
                    assert!(
                        [1002, 4504].contains(&d.code),
                        "undocumented close {}",
                        d.code
                    );
                    return (frames, End::Close(d.code));
                }
            }
        }
    }
    (frames, End::Incomplete)
}

/// `codec::parse` decodes exactly the frames of [`model_frames`], however the bytes arrive.
pub fn ws_frames(data: &[u8], max: usize, deflate: bool, seed: u64) -> Vec<codec::Frame> {
    let (want, want_end) = model_frames(data, max, deflate);
    let as_model = |frames: &[codec::Frame]| -> Vec<ModelFrame> {
        frames
            .iter()
            .map(|f| ModelFrame {
                fin: f.fin,
                opcode: opcode_u8(f.opcode),
                rsv1: f.compressed,
                payload: f.payload.to_vec(),
            })
            .collect()
    };
    let (whole, end) = run_parser(data, &[data.len()], max, deflate);
    assert_eq!(as_model(&whole), want);
    assert_eq!(end, want_end);
    let (pieces, end) = run_parser(data, &chunks(data.len(), seed | 1), max, deflate);
    assert_eq!(as_model(&pieces), want, "the same frames in pieces");
    assert_eq!(end, want_end, "the same end in pieces");
    whole
}

/// What the connection does with a complete message or control frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message that is UTF-8: handed to the session.
    Text(String),
    /// A pong with this payload is sent.
    Ping(Vec<u8>),
    /// Ignored.
    Pong,
    /// Answered with a close frame with this code, then the connection ends.
    Close(u16),
}

/// RFC 6455 §5.4 and §5.6 assembly, written from the spec: data frames of one message are
/// concatenated (control frames may come between them), then inflated when the first frame
/// had RSV1; text must be UTF-8 as a whole message (1007), binary is refused (1003).
pub fn model_messages(frames: &[ModelFrame], max: usize) -> (Vec<Message>, Option<u16>) {
    let mut out = Vec::new();
    let mut partial: Option<(u8, bool, Vec<u8>)> = None;
    for f in frames {
        let (op, rsv1, bytes) = match f.opcode {
            9 => {
                out.push(Message::Ping(f.payload.clone()));
                continue;
            }
            10 => {
                out.push(Message::Pong);
                continue;
            }
            8 => {
                out.push(Message::Close(close_model(&f.payload)));
                return (out, None);
            }
            0 => match partial.take() {
                None => return (out, Some(1002)),
                Some((op, rsv1, mut bytes)) => {
                    if bytes.len() + f.payload.len() > max {
                        return (out, Some(4504));
                    }
                    bytes.extend_from_slice(&f.payload);
                    if !f.fin {
                        partial = Some((op, rsv1, bytes));
                        continue;
                    }
                    (op, rsv1, bytes)
                }
            },
            op => {
                if partial.is_some() {
                    return (out, Some(1002));
                }
                if !f.fin {
                    partial = Some((op, f.rsv1, f.payload.clone()));
                    continue;
                }
                (op, f.rsv1, f.payload.clone())
            }
        };
        let bytes = if rsv1 {
            // `inflate` holds `decompress` to its contract; its answer is then the model's.
            inflate(&bytes, max);
            match deflate::decompress(&bytes, max) {
                Ok(b) => b.to_vec(),
                Err(d) => return (out, Some(d.code)),
            }
        } else {
            bytes
        };
        if op == 2 {
            return (out, Some(1003));
        }
        match String::from_utf8(bytes) {
            Ok(s) => out.push(Message::Text(s)),
            Err(_) => return (out, Some(1007)),
        }
    }
    (out, None)
}

/// The close code a client's close payload is answered with (RFC 6455 §5.5.1, §7.4, and the
/// table in `docs/protocol.md`).
pub fn close_model(payload: &[u8]) -> u16 {
    if payload.is_empty() {
        return 1000;
    }
    if payload.len() == 1 {
        return 1002;
    }
    let code = u16::from_be_bytes([payload[0], payload[1]]);
    let may_be_sent = (1000..=1003).contains(&code)
        || (1007..=1014).contains(&code)
        || (3000..=4999).contains(&code);
    if !may_be_sent {
        1002
    } else if std::str::from_utf8(&payload[2..]).is_err() {
        1007
    } else {
        code
    }
}

/// The connection's handling of the frames, through the real `Assembler` (and the UTF-8 check
/// and close answer the connection loop applies), agrees with [`model_messages`].
pub fn ws_messages(data: &[u8], max: usize, deflate: bool, seed: u64) {
    let frames = ws_frames(data, max, deflate, seed);
    let model: Vec<ModelFrame> = frames
        .iter()
        .map(|f| ModelFrame {
            fin: f.fin,
            opcode: opcode_u8(f.opcode),
            rsv1: f.compressed,
            payload: f.payload.to_vec(),
        })
        .collect();
    let (want, want_end) = model_messages(&model, max);
    let mut got = Vec::new();
    let mut end = None;
    let mut assembler = Assembler::new(max);
    for f in frames {
        match assembler.push(f) {
            Ok(None) => {}
            Ok(Some((op, payload))) => {
                assert!(payload.len() <= max, "a message never exceeds the limit");
                match op {
                    Opcode::Text => match std::str::from_utf8(&payload) {
                        Ok(s) => got.push(Message::Text(s.to_owned())),
                        Err(_) => {
                            end = Some(1007);
                            break;
                        }
                    },
                    Opcode::Binary => {
                        end = Some(1003);
                        break;
                    }
                    Opcode::Ping => got.push(Message::Ping(payload.to_vec())),
                    Opcode::Pong => got.push(Message::Pong),
                    Opcode::Close => {
                        let code = codec::close_reply_code(&payload);
                        let reply = codec::close_frame(code, "");
                        assert_eq!(&reply[..], &[0x88, 2, (code >> 8) as u8, code as u8]);
                        got.push(Message::Close(code));
                        break;
                    }
                    Opcode::Continuation => panic!("a continuation is never a message"),
                }
            }
            Err(d) => {
                assert!([1002, 4504].contains(&d.code), "undocumented {}", d.code);
                end = Some(d.code);
                break;
            }
        }
    }
    assert_eq!(got, want);
    assert_eq!(end, want_end);
}

// ---------------------------------------------------------------------------------------------
// permessage-deflate

/// The outcome of inflating a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Inflated {
    Ok(Vec<u8>),
    TooLarge,
    Invalid,
}

impl Inflated {
    fn describe(&self) -> String {
        match self {
            Self::Ok(b) => format!("Ok({} bytes)", b.len()),
            other => format!("{other:?}"),
        }
    }

    fn bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Ok(b) => Some(b),
            _ => None,
        }
    }
}

/// Inflates `payload` + the sync-flush tail (RFC 7692 §7.2.2) with room for `max + 1` bytes:
/// the reference the streaming `deflate::decompress` is compared with. `step`: how many input
/// bytes each call sees (1 = no look-ahead: output appears as early as it can).
pub fn reference_inflate(payload: &[u8], max: usize, step: usize) -> Inflated {
    let input = [payload, &[0x00, 0x00, 0xff, 0xff]].concat();
    // Deflate expands at most ~1032:1: `room` covers any output up to `max + 1`.
    let room = max
        .saturating_add(1)
        .min((payload.len() + 4).saturating_mul(1100) + 64);
    let mut d = Decompress::new(false);
    let mut out = Vec::with_capacity(room);
    let mut fed = 0;
    loop {
        let (i, o) = (d.total_in(), d.total_out());
        let at = d.total_in() as usize;
        fed = fed.max(at).max(at.saturating_add(step).min(input.len()));
        match d.decompress_vec(&input[at..fed], &mut out, FlushDecompress::Sync) {
            Err(_) => return Inflated::Invalid,
            Ok(Status::StreamEnd) => break,
            Ok(_) => {}
        }
        if out.len() > max || out.len() == out.capacity() {
            return Inflated::TooLarge;
        }
        if d.total_in() == i && d.total_out() == o {
            if fed == input.len() {
                break;
            }
            fed += 1;
        }
    }
    if out.len() > max {
        return Inflated::TooLarge; // the final block ended past the limit
    }
    Inflated::Ok(out)
}

/// `deflate::decompress` never returns more than `max` bytes, refuses with 4504 past it and
/// 1002 for invalid data, and otherwise returns what a one-shot inflate returns. For data that
/// is too large *and* invalid further on, which refusal comes first depends on how far the
/// inflater reads ahead: 1002 needs the data to be invalid somewhere, 4504 needs more than
/// `max` bytes of output before the first error.
pub fn inflate(payload: &[u8], max: usize) {
    let got = deflate::decompress(payload, max);
    let one_shot = reference_inflate(payload, max, usize::MAX);
    let bytewise = reference_inflate(payload, max, 1);
    match &got {
        Ok(b) => {
            assert!(b.len() <= max);
            for (how, r) in [("one-shot", &one_shot), ("byte-wise", &bytewise)] {
                // Lengths and the first difference only: messages may be megabytes.
                let same = matches!(r, Inflated::Ok(w) if w[..] == b[..]);
                assert!(
                    same,
                    "decompress: {} bytes; {how}: {} (max {max}, first difference at {:?})",
                    b.len(),
                    r.describe(),
                    r.bytes()
                        .and_then(|w| w.iter().zip(b.iter()).position(|(x, y)| x != y)),
                );
            }
        }
        Err(d) if d.code == 4504 => assert!(
            bytewise == Inflated::TooLarge,
            "4504 without more than {max} bytes of output: {}",
            bytewise.describe()
        ),
        Err(d) => {
            assert_eq!(d.code, 1002, "undocumented refusal");
            let unbounded = reference_inflate(payload, usize::MAX, usize::MAX);
            assert!(
                unbounded == Inflated::Invalid,
                "1002 for valid data (max {max}): {}",
                unbounded.describe()
            );
        }
    }
}

/// Compressing and inflating gives the message back; one byte less room is 4504.
pub fn deflate_round_trip(message: &[u8], level: u32) {
    let Some(c) = deflate::compress(message, level) else {
        return;
    };
    assert!(c.len() < message.len());
    assert_eq!(
        &deflate::decompress(&c, message.len()).unwrap()[..],
        message
    );
    if !message.is_empty() {
        assert_eq!(
            deflate::decompress(&c, message.len() - 1).unwrap_err().code,
            4504
        );
    }
}

/// `deflate::accepts`: header lines and comma-separated offers are the same list; adding an
/// offer never withdraws an acceptance; an accepted offer names the extension.
pub fn extensions(lines: &[&str]) {
    let got = deflate::accepts(lines.iter().copied());
    let offers: Vec<&str> = lines.iter().flat_map(|l| l.split(',')).collect();
    let any = offers.iter().any(|o| deflate::accepts([*o]));
    assert_eq!(got, any, "{lines:?}");
    assert_eq!(
        got,
        deflate::accepts([lines.join(",").as_str()]),
        "{lines:?}"
    );
    for o in offers.iter().filter(|o| deflate::accepts([**o])) {
        let name = o.split(';').next().unwrap_or("").trim();
        assert!(name.eq_ignore_ascii_case("permessage-deflate"), "{o:?}");
        // The server always answers with both no_context_takeover parameters: an offer it
        // accepts may not pin a server window below 15 bits.
        let lower = o.to_ascii_lowercase();
        if let Some(v) = lower.split(';').find_map(|p| {
            p.trim()
                .strip_prefix("server_max_window_bits")
                .map(|v| v.trim().trim_start_matches('=').trim().trim_matches('"'))
        }) {
            assert_eq!(v, "15", "{o:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// `/sse` and `/poll` query, `Last-Event-ID`

/// Most channels the query check allows.
pub const MAX_CHANNELS: usize = 4;

/// `StreamQuery::parse` and `cursor`: the channels are the query's `channel=` values without
/// duplicates (1 to the limit, else 400 / 429); the cursor comes from `Last-Event-ID` (its
/// part before the first `.`) or `since`, and is either absent, a cursor for exactly these
/// channels that re-encodes to its text, or 400 `bad_request`.
pub fn stream_query(query: &str, last_event_id: Option<&[u8]>) {
    let q = match StreamQuery::parse(Some(query), MAX_CHANNELS) {
        Ok(q) => q,
        Err(e) => {
            assert!(
                [
                    (StatusCode::BAD_REQUEST, ErrorCode::BadRequest),
                    (StatusCode::TOO_MANY_REQUESTS, ErrorCode::LimitExceeded),
                ]
                .contains(&(e.status, e.error.code)),
                "{e:?}"
            );
            return;
        }
    };
    assert!(!q.channels.is_empty() && q.channels.len() <= MAX_CHANNELS);
    for (i, c) in q.channels.iter().enumerate() {
        assert!(!q.channels[..i].contains(c), "duplicate channel {c:?}");
    }
    let mut headers = HeaderMap::new();
    let header = last_event_id.and_then(|v| HeaderValue::from_bytes(v).ok());
    if let Some(v) = &header {
        headers.insert("last-event-id", v.clone());
    }
    // A header that is not visible ASCII, or empty, does not count: `since` is used then.
    let text = header
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .or_else(|| q.since.clone().filter(|s| !s.is_empty()));
    match q.cursor(&headers) {
        Ok(None) => assert!(text.is_none()),
        Ok(Some(c)) => {
            let text = text.expect("a cursor came from somewhere");
            let cursor_text = text.split_once('.').map_or(text.as_str(), |(c, _)| c);
            assert_eq!(c.encode(), cursor_text);
            let names: Vec<&str> = q.channels.iter().map(String::as_str).collect();
            assert_eq!(Cursor::decode(cursor_text, &names), Ok(c));
        }
        Err(e) => {
            assert!(text.is_some());
            assert_eq!(
                (e.status, e.error.code),
                (StatusCode::BAD_REQUEST, ErrorCode::BadRequest)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tickets

/// A ticket store on the memory engine with one issued ticket.
pub struct TicketDesk {
    rt: tokio::runtime::Runtime,
    tickets: Tickets,
    issued: String,
}

impl TicketDesk {
    pub fn new() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let engine = Arc::new(switchboard_core::MemoryEngine::new());
        let tickets = Tickets::new(Duration::from_secs(600), engine);
        let creds = switchboard_core::Credentials {
            user: "42".into(),
            expires_at: Some(switchboard_core::auth::unix_now() + 3600),
            ..Default::default()
        };
        let (issued, _) = rt.block_on(tickets.issue(creds)).unwrap();
        Self {
            rt,
            tickets,
            issued,
        }
    }

    /// A string is well-formed exactly when it is 32 base64url characters (what
    /// `random_secret` makes); anything but the issued ticket is refused with 401, before or
    /// after the lookup; the issued ticket works once.
    pub fn check(&self, s: &str) {
        let b64url = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        assert_eq!(
            ticket_well_formed(s),
            s.len() == 32 && s.bytes().all(b64url),
            "{s:?}"
        );
        let fresh = random_secret();
        assert!(ticket_well_formed(&fresh), "{fresh:?}");
        if s == self.issued {
            return;
        }
        let r = self.rt.block_on(self.tickets.redeem(s));
        let e = r.expect_err("only the issued ticket redeems");
        assert_eq!(
            (e.status, e.error.code),
            (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized)
        );
        let r = self.rt.block_on(self.tickets.redeem_resume(s));
        assert_eq!(r.expect_err("no resume secret issued").status, 401);
    }

    /// The issued ticket redeems once, then never again.
    pub fn redeem_issued_once(&self) {
        let c = self.rt.block_on(self.tickets.redeem(&self.issued)).unwrap();
        assert_eq!(c.user, "42");
        assert!(self.rt.block_on(self.tickets.redeem(&self.issued)).is_err());
    }
}

impl Default for TicketDesk {
    fn default() -> Self {
        Self::new()
    }
}

// ---------------------------------------------------------------------------------------------
// Fuzz inputs: how one byte string drives each check. The fuzz targets call these, and the
// tests replay the committed seeds (`fuzz/seeds/<target>/`) through them.

/// Message size limits the frame inputs pick from (the configured minimum is 128; smaller ones
/// exercise the edges).
pub const LIMITS: [usize; 8] = [0, 1, 125, 128, 300, 65_536, 1 << 20, usize::MAX];

/// `ws_frame` target: the first byte picks permessage-deflate (bit 0), the limit (bits 1–3)
/// and how the stream is cut into reads (bits 4–7); the rest is the client's byte stream.
pub fn fuzz_ws_frame(data: &[u8]) {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let deflate = ctl & 1 != 0;
    let max = LIMITS[usize::from(ctl >> 1) & 7];
    ws_messages(rest, max, deflate, u64::from(ctl >> 4) * 0x9e37_79b9 + 1);
}

/// `ws_inflate` target: the first byte picks the limit (bits 0–2) and a compression level
/// (bits 3–6); the rest is a compressed message, and a message to round-trip.
pub fn fuzz_ws_inflate(data: &[u8]) {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let max = [0, 1, 16, 128, 4096, 65_536, 1 << 20, usize::MAX][usize::from(ctl & 7)];
    inflate(rest, max);
    deflate_round_trip(rest, u32::from(ctl >> 3) % 10);
}

/// `ws_extensions` target: `Sec-WebSocket-Extensions` header lines, one per input line.
pub fn fuzz_ws_extensions(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<&str> = text.split('\n').collect();
    extensions(&lines);
}

/// `sse_query` target: a query string and, after the first NUL, a `Last-Event-ID` value.
pub fn fuzz_sse_query(data: &[u8]) {
    let at = data.iter().position(|&b| b == 0);
    let (query, header) = match at {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    stream_query(&String::from_utf8_lossy(query), header);
}

/// `ticket` target: the bytes as a ticket (`?ticket=`) and resume secret.
pub fn fuzz_ticket(desk: &TicketDesk, data: &[u8]) {
    desk.check(&String::from_utf8_lossy(data));
}
