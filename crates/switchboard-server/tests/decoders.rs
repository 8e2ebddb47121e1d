//! Bounded property tests of the server's decoders of untrusted input (WebSocket frames and
//! message assembly, permessage-deflate, the `/sse` and `/poll` query with `Last-Event-ID`,
//! tickets), against the contracts in `contract/mod.rs` that the fuzz targets (`fuzz/`,
//! `scripts/fuzz.sh`) check too. Also replays the committed fuzz seeds and the regressions the
//! fuzzers found.

mod contract;

use proptest::prelude::*;
use switchboard_protocol::{Cursor, StreamPosition};
use switchboard_server::decoders::{Assembler, Opcode, StreamQuery, codec, deflate};

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target);
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert!(!files.is_empty(), "{}", dir.display());
    files
}

#[test]
fn fuzz_seeds_replay() {
    seeds("ws_frame")
        .iter()
        .for_each(|s| contract::fuzz_ws_frame(s));
    seeds("ws_inflate")
        .iter()
        .for_each(|s| contract::fuzz_ws_inflate(s));
    seeds("ws_extensions")
        .iter()
        .for_each(|s| contract::fuzz_ws_extensions(s));
    seeds("sse_query")
        .iter()
        .for_each(|s| contract::fuzz_sse_query(s));
    let desk = contract::TicketDesk::new();
    seeds("ticket")
        .iter()
        .for_each(|s| contract::fuzz_ticket(&desk, s));
    desk.redeem_issued_once();
}

// ---------------------------------------------------------------------------------------------
// Frames

/// How a frame's length is written: the minimal form, or a longer one (RFC 6455 asks senders
/// for the minimal one; the node accepts the others).
#[derive(Clone, Copy, Debug)]
enum LenForm {
    Minimal,
    Sixteen,
    SixtyFour,
    /// A 64-bit length with the most significant bit set (forbidden).
    TopBit,
}

#[derive(Clone, Debug)]
struct RawFrame {
    fin: bool,
    rsv: u8,
    opcode: u8,
    masked: bool,
    mask: [u8; 4],
    form: LenForm,
    payload: Vec<u8>,
}

fn encode(f: &RawFrame) -> Vec<u8> {
    let mut out = vec![u8::from(f.fin) << 7 | (f.rsv & 7) << 4 | (f.opcode & 15)];
    let m = if f.masked { 0x80 } else { 0 };
    let n = f.payload.len();
    match f.form {
        LenForm::Minimal if n < 126 => out.push(m | n as u8),
        LenForm::Minimal | LenForm::Sixteen if n <= 0xffff => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        LenForm::TopBit => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64 | 1 << 63).to_be_bytes());
        }
        _ => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if f.masked {
        out.extend_from_slice(&f.mask);
    }
    out.extend(
        f.payload
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ if f.masked { f.mask[i % 4] } else { 0 }),
    );
    out
}

fn frame() -> impl Strategy<Value = RawFrame> {
    let opcode = prop_oneof![
        6 => prop_oneof![Just(0u8), Just(1), Just(2), Just(8), Just(9), Just(10)],
        1 => 0u8..16,
    ];
    let rsv = prop_oneof![8 => Just(0u8), 2 => Just(4u8), 1 => 0u8..8];
    let form = prop_oneof![
        12 => Just(LenForm::Minimal),
        2 => Just(LenForm::Sixteen),
        2 => Just(LenForm::SixtyFour),
        1 => Just(LenForm::TopBit),
    ];
    let payload = prop_oneof![
        6 => proptest::collection::vec(any::<u8>(), 0..40),
        2 => "[a-zé€ {}\":]{0,40}".prop_map(String::into_bytes),
        1 => proptest::collection::vec(any::<u8>(), 120..400),
    ];
    (
        prop::bool::weighted(0.7),
        rsv,
        opcode,
        prop::bool::weighted(0.97),
        any::<[u8; 4]>(),
        form,
        payload,
    )
        .prop_map(|(fin, rsv, opcode, masked, mask, form, payload)| RawFrame {
            fin,
            rsv,
            opcode,
            masked,
            mask,
            form,
            payload,
        })
}

/// A compressed text frame (RSV1), possibly damaged.
fn compressed_frame() -> impl Strategy<Value = RawFrame> {
    ("[a-c{}\":]{0,300}", any::<[u8; 4]>(), any::<Option<u8>>()).prop_map(|(text, mask, damage)| {
        let mut payload =
            deflate::compress(text.as_bytes(), 6).unwrap_or_else(|| text.clone().into_bytes());
        if let (Some(d), false) = (damage, payload.is_empty()) {
            let i = usize::from(d) % payload.len();
            payload[i] ^= d | 1;
        }
        RawFrame {
            fin: true,
            rsv: 4,
            opcode: 1,
            masked: true,
            mask,
            form: LenForm::Minimal,
            payload,
        }
    })
}

proptest! {
    #![proptest_config(cases(3000))]

    #[test]
    fn frame_streams_decode_as_rfc_6455_says(
        frames in proptest::collection::vec(prop_oneof![8 => frame(), 1 => compressed_frame()], 0..6),
        cut in 0usize..4,
        max in prop_oneof![Just(65_536usize), Just(128), 0usize..300, Just(usize::MAX)],
        deflate in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut data: Vec<u8> = frames.iter().flat_map(encode).collect();
        data.truncate(data.len().saturating_sub(cut));
        contract::ws_messages(&data, max, deflate, seed);
    }

    #[test]
    fn random_bytes_are_safe_frames(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        contract::fuzz_ws_frame(&data);
    }
}

/// Masked frames of `text` cut at `cuts` (byte positions, even inside a character), with a
/// ping between every two fragments.
fn fragmented(text: &[u8], cuts: &[usize], op: u8) -> Vec<u8> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (text.len() + 1)).collect();
    points.sort_unstable();
    points.dedup();
    points.retain(|&p| p > 0 && p < text.len());
    let mut bounds = vec![0];
    bounds.extend(points);
    bounds.push(text.len());
    let n = bounds.len() - 1;
    let mut out = Vec::new();
    for i in 0..n {
        let frame = RawFrame {
            fin: i == n - 1,
            rsv: 0,
            opcode: if i == 0 { op } else { 0 },
            masked: true,
            mask: [i as u8, 0x5a, 0xa5, 0x33],
            form: LenForm::Minimal,
            payload: text[bounds[i]..bounds[i + 1]].to_vec(),
        };
        out.extend(encode(&frame));
        if i + 1 < n {
            out.extend(encode(&RawFrame {
                fin: true,
                opcode: 9,
                payload: vec![i as u8],
                ..frame.clone()
            }));
        }
    }
    out
}

proptest! {
    #![proptest_config(cases(2000))]

    /// RFC 6455 §5.6/§8.1: text is UTF-8 as a whole message, so a character split between
    /// fragments is fine, and control frames between fragments are answered in between.
    #[test]
    fn utf8_split_across_fragments_is_one_valid_message(
        text in "[a-zé€😀 ]{1,40}", cuts in proptest::collection::vec(any::<usize>(), 0..6), seed in any::<u64>()
    ) {
        let data = fragmented(text.as_bytes(), &cuts, 1);
        contract::ws_messages(&data, 65_536, false, seed);
        let (frames, end) = contract::model_frames(&data, 65_536, false);
        prop_assert_eq!(end, contract::End::Incomplete);
        let (messages, close) = contract::model_messages(&frames, 65_536);
        prop_assert_eq!(close, None);
        prop_assert_eq!(messages.last(), Some(&contract::Message::Text(text.clone())));
        prop_assert_eq!(messages.len(), frames.len() / 2 + 1);
    }

    /// Invalid UTF-8 anywhere in a fragmented text message closes with 1007.
    #[test]
    fn invalid_utf8_in_any_fragment_is_1007(
        text in "[a-zé]{0,20}", at in any::<usize>(), bad in prop_oneof![Just(vec![0xffu8]), Just(vec![0xc3]), Just(vec![0xed, 0xa0, 0x80])],
        cuts in proptest::collection::vec(any::<usize>(), 0..4)
    ) {
        let mut bytes = text.into_bytes();
        let mut at = at % (bytes.len() + 1);
        while at < bytes.len() && (bytes[at] & 0xc0) == 0x80 {
            at += 1;
        }
        bytes.splice(at..at, bad);
        let data = fragmented(&bytes, &cuts, 1);
        let mut buf = bytes::BytesMut::from(&data[..]);
        let mut assembler = Assembler::new(65_536);
        let mut text = None;
        while let Some(f) = codec::parse(&mut buf, 65_536, false).unwrap() {
            if let Some((Opcode::Text, m)) = assembler.push(f).unwrap() {
                text = Some(m);
            }
        }
        prop_assert!(std::str::from_utf8(&text.expect("a message")).is_err());
        contract::ws_messages(&data, 65_536, false, 7);
    }
}

#[test]
fn close_payloads_are_answered_by_the_table() {
    for code in 0..=u16::MAX {
        for reason in [&b""[..], b"bye", &[0xff]] {
            let payload = [&code.to_be_bytes()[..], reason].concat();
            assert_eq!(
                codec::close_reply_code(&payload),
                contract::close_model(&payload),
                "{code} {reason:?}"
            );
        }
    }
    assert_eq!(codec::close_reply_code(&[3]), 1002);
}

// ---------------------------------------------------------------------------------------------
// permessage-deflate

proptest! {
    #![proptest_config(cases(2000))]

    #[test]
    fn random_bytes_inflate_by_contract(data in proptest::collection::vec(any::<u8>(), 0..200), max in 0usize..400) {
        contract::inflate(&data, max);
        contract::inflate(&data, usize::MAX);
    }

    #[test]
    fn damaged_deflate_streams_inflate_by_contract(
        text in "[a-d]{0,600}", level in 0u32..10, at in any::<usize>(), x in any::<u8>(), cut in 0usize..6,
        max in prop_oneof![Just(usize::MAX), 0usize..700],
    ) {
        contract::deflate_round_trip(text.as_bytes(), level);
        let mut c = deflate::compress(text.as_bytes(), level).unwrap_or_default();
        if !c.is_empty() {
            let i = at % c.len();
            c[i] ^= x;
        }
        c.truncate(c.len().saturating_sub(cut));
        contract::inflate(&c, max);
    }
}

proptest! {
    #![proptest_config(cases(48))]

    /// Messages across the 32 KiB window edges (the inflate loop once dropped output pending
    /// there): built from runs and random pieces so matches reach far back and cross the edges.
    #[test]
    fn large_messages_round_trip(
        pieces in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 1..40), 1usize..3000), 1..60),
        level in 0u32..10,
    ) {
        let mut message = Vec::new();
        for (piece, times) in &pieces {
            for _ in 0..*times % 97 + 1 {
                message.extend_from_slice(piece);
            }
            message.resize(message.len() + times % 5000, b' ');
        }
        message.truncate(200_000);
        contract::deflate_round_trip(&message, level);
        if let Some(c) = deflate::compress(&message, level) {
            contract::inflate(&c, message.len());
        }
    }
}

#[test]
fn deflate_edge_cases() {
    // A final block, then bytes after it (ignored); an empty stored block; a lone final empty
    // fixed block.
    contract::inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 5);
    contract::inflate(&[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0xff, 0xff], 100);
    contract::inflate(&[0x03, 0x00], 0);
    contract::inflate(&[0x00, 0x00, 0x00, 0xff, 0xff], 0);
    // A highly compressible message right at and around the limit.
    let zeros = vec![0u8; 5000];
    let c = deflate::compress(&zeros, 9).unwrap();
    for max in [0, 4999, 5000, 5001] {
        contract::inflate(&c, max);
    }
}

/// What RFC 7692 allows in an offer the server (always `no_context_takeover`, a 15-bit
/// window) can accept.
fn offer_model(params: &[(String, Option<String>)]) -> bool {
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in params {
        let name = name.to_ascii_lowercase();
        if seen.contains(&name) {
            return false;
        }
        seen.push(name.clone());
        let value = value.as_deref().map(|v| {
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v)
        });
        let bits = |v: &str| (8..=15).map(|b| b.to_string()).any(|b| b == v);
        let ok = match name.as_str() {
            "server_no_context_takeover" | "client_no_context_takeover" => value.is_none(),
            "server_max_window_bits" => value == Some("15"),
            "client_max_window_bits" => value.is_none_or(bits),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

fn offer() -> impl Strategy<Value = (String, bool)> {
    let name = prop_oneof![
        Just("server_no_context_takeover"),
        Just("client_no_context_takeover"),
        Just("server_max_window_bits"),
        Just("client_max_window_bits"),
        Just("Client_Max_Window_Bits"),
        Just("x_custom"),
    ];
    let value = proptest::option::of(prop_oneof![
        Just("15"),
        Just("8"),
        Just("10"),
        Just("16"),
        Just("7"),
        Just("08"),
        Just("+9"),
        Just("\"12\""),
        Just("\"15"),
        Just(""),
    ]);
    let param = (name, value, prop::bool::ANY).prop_map(|(n, v, spaced)| {
        let v: Option<String> = v.map(str::to_owned);
        let text = match (&v, spaced) {
            (None, _) => n.to_owned(),
            (Some(v), false) => format!("{n}={v}"),
            (Some(v), true) => format!("{n} = {v}"),
        };
        ((n.to_owned(), v), text)
    });
    (
        prop_oneof![
            4 => Just("permessage-deflate"),
            1 => Just("PerMessage-Deflate"),
            1 => Just("x-webkit-deflate-frame")
        ],
        proptest::collection::vec(param, 0..4),
    )
        .prop_map(|(ext, params)| {
            let accepted = !ext.starts_with('x')
                && offer_model(&params.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>());
            let mut text = ext.to_owned();
            for (_, t) in &params {
                text.push_str("; ");
                text.push_str(t);
            }
            (text, accepted)
        })
}

proptest! {
    #![proptest_config(cases(2000))]

    #[test]
    fn extension_offers_are_accepted_as_rfc_7692_allows(offers in proptest::collection::vec(offer(), 1..4), split in any::<bool>()) {
        for (text, accepted) in &offers {
            prop_assert_eq!(deflate::accepts([text.as_str()]), *accepted, "{}", text);
        }
        // One header line per offer, or all in one line.
        let texts: Vec<&str> = offers.iter().map(|(t, _)| t.as_str()).collect();
        let joined = texts.join(", ");
        let lines = if split { texts } else { vec![joined.as_str()] };
        prop_assert_eq!(deflate::accepts(lines.iter().copied()), offers.iter().any(|(_, a)| *a));
        contract::extensions(&lines);
    }

    #[test]
    fn any_extension_header_is_safe(s in "[a-z_ ;,=\"0-9-]{0,80}") {
        contract::fuzz_ws_extensions(s.as_bytes());
    }
}

/// Regressions: RFC 7692 §7.1.2 asks for a window size "without leading zeros" and §5 to
/// decline an offer with an invalid value; `08`, `+9` and an unbalanced quote were accepted.
#[test]
fn window_bits_must_be_plain_decimals() {
    for bad in [
        "permessage-deflate; client_max_window_bits=08",
        "permessage-deflate; client_max_window_bits=+9",
        "permessage-deflate; server_max_window_bits=\"15",
        "permessage-deflate; client_max_window_bits=12\"",
    ] {
        assert!(!deflate::accepts([bad]), "{bad}");
    }
    for good in [
        "permessage-deflate; client_max_window_bits=8",
        "permessage-deflate; client_max_window_bits=\"15\"",
        "permessage-deflate; server_max_window_bits=\"15\"",
    ] {
        assert!(deflate::accepts([good]), "{good}");
    }
}

// ---------------------------------------------------------------------------------------------
// `/sse` and `/poll` query, `Last-Event-ID`

fn cursor_text() -> impl Strategy<Value = String> {
    let names = ["a", "b:x", "chat:lobby", "other"];
    prop_oneof![
        3 => proptest::collection::vec((0..names.len(), any::<u64>(), "[a-z0-9]{0,5}"), 0..4).prop_map(
            move |entries| {
                let mut c = Cursor::new();
                for (i, o, e) in entries {
                    c.set(names[i], StreamPosition::new(o, e));
                }
                c.encode()
            }
        ),
        1 => "[0-9A-Za-z_=.-]{0,30}",
    ]
}

proptest! {
    #![proptest_config(cases(2000))]

    #[test]
    fn stream_queries_follow_the_contract(
        params in proptest::collection::vec((
            prop_oneof![Just("channel"), Just("since"), Just("last_event_id"), Just("ticket"), Just("timeout"), Just("x")],
            prop_oneof![
                Just("a".to_owned()), Just("b:x".to_owned()), Just("chat:lobby".to_owned()),
                cursor_text(), "[ -~]{0,10}"
            ],
        ), 0..8),
        header in proptest::option::of((cursor_text(), proptest::option::of("[A-Za-z0-9_-]{0,32}"))),
        raw_header in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
    ) {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        let header = header.map(|(c, secret)| match secret {
            Some(s) => format!("{c}.{s}").into_bytes(),
            None => c.into_bytes(),
        });
        contract::stream_query(&query, header.as_deref());
        contract::stream_query(&query, raw_header.as_deref());
    }
}

/// Regression: every `channel=` was compared with every channel kept before the count was
/// checked, so one long query (tens of thousands of distinct channels) cost quadratic time;
/// now the first channel past the limit ends the parse.
#[test]
fn many_channels_are_refused_without_quadratic_work() {
    let query: String = (0..200_000).map(|i| format!("channel=c{i}&")).collect();
    let started = std::time::Instant::now();
    let e = StreamQuery::parse(Some(&query), 64).unwrap_err();
    assert_eq!(e.status, 429);
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    // Repeats of the channels kept are not "more channels".
    let repeats = "channel=a&channel=b&".repeat(50_000);
    assert_eq!(
        StreamQuery::parse(Some(&repeats), 2).unwrap().channels,
        ["a", "b"]
    );
}

// ---------------------------------------------------------------------------------------------
// Tickets

proptest! {
    #![proptest_config(cases(2000))]

    #[test]
    fn only_issued_tickets_redeem(s in prop_oneof![
        "[A-Za-z0-9_-]{32}",
        "[A-Za-z0-9_+/=-]{30,34}",
        any::<String>(),
    ]) {
        thread_local! {
            static DESK: contract::TicketDesk = contract::TicketDesk::new();
        }
        DESK.with(|d| d.check(&s));
    }
}
