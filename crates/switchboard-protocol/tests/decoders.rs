//! Bounded property tests of the protocol's decoders of untrusted input (channel names and
//! permission patterns, resume cursors, command frames, JSON depth), against the contracts in
//! `contract/mod.rs` that the fuzz targets (`fuzz/`, `scripts/fuzz.sh`) check too. They also
//! replay the committed fuzz seeds and every regression the fuzzers found.

mod contract;

use base64::Engine as _;
use proptest::prelude::*;
use switchboard_protocol::{Cursor, CursorError, StreamPosition};

/// Cases per property: a few thousand per decoder keeps the whole file around a second in debug.
fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Replays `fuzz/seeds/<target>/*` through the target's input mapping.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        check(&std::fs::read(&path).unwrap());
        n += 1;
    }
    n
}

#[test]
fn fuzz_seeds_replay() {
    assert!(replay("channel", contract::fuzz_channel) > 0);
    assert!(replay("cursor", contract::fuzz_cursor) > 0);
    assert!(replay("command", contract::fuzz_command) > 0);
}

/// Strings over the characters the channel grammar cares about (separators, allowed and
/// forbidden bytes, a multi-byte character).
fn channelish() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-zA-Z0-9_:#,.=@/+* é\\-]{0,70}").unwrap()
}

/// Names the grammar allows.
fn valid_channel() -> impl Strategy<Value = String> {
    (
        proptest::option::of("[A-Za-z0-9_-]{1,64}"),
        "[A-Za-z0-9_.=@/+-]{1,40}",
        proptest::option::of(proptest::collection::vec("[A-Za-z0-9_.@-]{1,8}", 1..4)),
    )
        .prop_map(|(ns, name, users)| {
            let mut s = ns.map(|n| format!("{n}:")).unwrap_or_default();
            s.push_str(&name);
            if let Some(u) = users {
                s.push('#');
                s.push_str(&u.join(","));
            }
            s
        })
}

proptest! {
    #![proptest_config(cases(3000))]

    #[test]
    fn channel_names_follow_the_grammar(s in channelish(), max in prop_oneof![Just(255usize), 0usize..80]) {
        contract::channel(&s, max);
    }

    #[test]
    fn any_string_is_safe_as_a_channel_name(s in any::<String>()) {
        contract::channel(&s, 255);
    }

    #[test]
    fn grammatical_names_parse(s in valid_channel()) {
        prop_assert!(switchboard_protocol::ChannelName::parse(&s, usize::MAX).is_ok(), "{s:?}");
        contract::channel(&s, usize::MAX);
    }

    #[test]
    fn patterns_are_globs(p in "[ab*:]{0,12}", c in "[ab:]{0,14}") {
        contract::pattern(&p, &c);
    }
}

/// Cursor bytes: entries for the known channels and for foreign ones, with LEB128 offsets of
/// every length (including non-minimal and overflowing forms) and epochs of any bytes.
fn cursor_bytes() -> impl Strategy<Value = Vec<u8>> {
    let hash = prop_oneof![
        (0..contract::CURSOR_CHANNELS.len())
            .prop_map(|i| switchboard_protocol::cursor::channel_hash(contract::CURSOR_CHANNELS[i])),
        any::<u32>(),
    ];
    let leb = proptest::collection::vec(any::<u8>(), 1..11).prop_map(|mut v| {
        let last = v.len() - 1;
        for b in &mut v[..last] {
            *b |= 0x80;
        }
        v[last] &= 0x7f;
        v
    });
    let epoch = prop_oneof![
        "[a-z0-9]{0,33}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..4),
    ];
    let entry = (hash, leb, epoch, any::<bool>()).prop_map(|(h, leb, epoch, honest_len)| {
        let mut out = h.to_be_bytes().to_vec();
        out.extend(leb);
        out.push(if honest_len { epoch.len() as u8 } else { 7 });
        out.extend(epoch);
        out
    });
    (proptest::collection::vec(entry, 0..4), 0usize..4).prop_map(|(entries, cut)| {
        let mut bin = entries.concat();
        bin.truncate(bin.len().saturating_sub(cut % 2));
        bin
    })
}

proptest! {
    #![proptest_config(cases(3000))]

    #[test]
    fn cursors_that_decode_are_canonical(bin in cursor_bytes()) {
        let text = format!("1{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bin));
        contract::cursor(&text, &contract::CURSOR_CHANNELS);
    }

    #[test]
    fn cursor_text_is_untrusted(s in "[1-2]?[A-Za-z0-9_.=-]{0,120}") {
        contract::fuzz_cursor(&[&[0u8][..], s.as_bytes()].concat());
    }

    #[test]
    fn cursors_round_trip(
        entries in proptest::collection::vec((0..contract::CURSOR_CHANNELS.len(), any::<u64>(), "[!-~]{0,32}"), 0..6)
    ) {
        let mut c = Cursor::new();
        for (i, offset, epoch) in entries {
            c.set(contract::CURSOR_CHANNELS[i], StreamPosition::new(offset, epoch));
        }
        let text = c.encode();
        prop_assert_eq!(Cursor::decode(&text, &contract::CURSOR_CHANNELS), Ok(c));
        contract::cursor(&text, &contract::CURSOR_CHANNELS);
    }
}

/// Regressions: non-canonical offsets decoded to a position whose cursor is a different text
/// (a zero-padded LEB128 offset; a tenth byte whose high bits fell off a u64).
#[test]
fn cursor_offsets_must_be_canonical_leb128() {
    let b64 = |bin: &[u8]| {
        format!(
            "1{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bin)
        )
    };
    let h = switchboard_protocol::cursor::channel_hash("a").to_be_bytes();
    let entry = |leb: &[u8]| [&h[..], leb, &[1, b'e']].concat();
    // Offset 5 as `0x85 0x00` instead of `0x05`.
    assert_eq!(
        Cursor::decode(&b64(&entry(&[0x85, 0x00])), &["a"]),
        Err(CursorError::Malformed)
    );
    // u64::MAX is nine 0xff and 0x01; a tenth byte of 0x7f would overflow.
    let mut max = vec![0xffu8; 9];
    max.push(0x01);
    let c = Cursor::decode(&b64(&entry(&max)), &["a"]).unwrap();
    assert_eq!(c.get("a"), Some(&StreamPosition::new(u64::MAX, "e")));
    max[9] = 0x7f;
    assert_eq!(
        Cursor::decode(&b64(&entry(&max)), &["a"]),
        Err(CursorError::Malformed)
    );
    // Zero is the single byte 0x00.
    let zero = Cursor::decode(&b64(&entry(&[0x00])), &["a"]).unwrap();
    assert_eq!(zero.get("a"), Some(&StreamPosition::new(0, "e")));
    assert_eq!(
        Cursor::decode(&b64(&entry(&[0x80, 0x00])), &["a"]),
        Err(CursorError::Malformed)
    );
}

/// A JSON value of bounded size whose strings use awkward characters.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[a-z\"\\\\é\\[\\]{}\u{0}]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 40, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z\\[{]{0,3}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A command object: the fields the wire format knows, each absent, well-typed or of another
/// type, plus a stray field.
fn command_object() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{Value, json};
    let id = prop_oneof![
        4 => any::<u64>().prop_map(Value::from),
        1 => Just(json!(-1)),
        1 => Just(json!("7")),
        1 => Just(json!(1.5)),
    ];
    let op = prop_oneof![
        Just("connect"),
        Just("subscribe"),
        Just("unsubscribe"),
        Just("publish"),
        Just("history"),
        Just("presence"),
        Just("refresh"),
        Just("nope"),
    ]
    .prop_map(Value::from);
    let text = "[a-z:#é\"]{0,8}".prop_map(Value::String);
    let since = prop_oneof![
        (any::<u64>(), "[a-z0-9]{0,4}").prop_map(|(o, e)| json!({"offset": o, "epoch": e})),
        Just(json!({"offset": -1})),
    ];
    let field = |s: BoxedStrategy<Value>| {
        proptest::option::weighted(0.6, prop_oneof![4 => s, 1 => json_value()])
    };
    (
        proptest::option::weighted(0.95, id),
        proptest::option::weighted(0.95, op),
        field(text.clone().boxed()),
        field(text.boxed()),
        field(since.boxed()),
        field(json_value().boxed()),
        field(any::<u32>().prop_map(Value::from).boxed()),
        field(any::<bool>().prop_map(Value::from).boxed()),
    )
        .prop_map(|(id, op, token, channel, since, data, limit, reverse)| {
            let mut m = serde_json::Map::new();
            for (k, v) in [
                ("id", id),
                ("op", op),
                ("token", token),
                ("channel", channel),
                ("since", since),
                ("data", data),
                ("limit", limit),
                ("reverse", reverse),
            ] {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            Value::Object(m)
        })
}

proptest! {
    #![proptest_config(cases(3000))]

    #[test]
    fn command_objects_decode_by_contract(cmd in command_object()) {
        contract::command_frame(&cmd.to_string());
    }

    #[test]
    fn command_batches_decode_by_contract(cmds in proptest::collection::vec(command_object(), 0..5)) {
        contract::command_frame(&serde_json::Value::Array(cmds).to_string());
    }

    #[test]
    fn damaged_command_frames_are_errors_not_panics(
        cmd in command_object(), cut in any::<prop::sample::Index>(), byte in any::<u8>()
    ) {
        let mut text = cmd.to_string().into_bytes();
        let at = cut.index(text.len() + 1);
        if at < text.len() && byte.is_ascii() {
            text[at] = byte;
        } else {
            text.truncate(at);
        }
        contract::fuzz_command(&text);
    }

    #[test]
    fn json_depth_is_the_nesting_depth(v in json_value(), limit in 0usize..8) {
        contract::depth(v.to_string().as_bytes(), limit);
    }
}

#[test]
fn json_depth_handles_deep_and_broken_input() {
    let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
    contract::depth(deep.as_bytes(), 64);
    contract::depth(b"]]]]}}\"\\", 3);
    contract::fuzz_command(&[b'['; 5000]);
}
