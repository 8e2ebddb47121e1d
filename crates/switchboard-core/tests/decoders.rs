//! Bounded property tests of token verification on untrusted strings (JWT header, signature and
//! claims), against the contract in `contract/mod.rs` that the `jwt` fuzz target checks too.
//! Also replays the committed fuzz seeds (`fuzz/seeds/jwt`).

mod contract;

use proptest::prelude::*;
use serde_json::{Value, json};
use switchboard_core::auth::{AuthError, unix_now};

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

#[test]
fn fuzz_seeds_replay() {
    let v = contract::verifier();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/jwt");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        contract::fuzz_jwt(&v, &std::fs::read(entry.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n > 0);
}

/// A time relative to now: far past, far future, or near the edges of the leeway.
fn time() -> impl Strategy<Value = i64> {
    prop_oneof![
        -100_000i64..-60,
        60i64..100_000,
        Just(i64::MIN),
        Just(i64::MAX)
    ]
}

/// A claims value of a random type, or the right type.
fn maybe(right: BoxedStrategy<Value>) -> impl Strategy<Value = Option<Value>> {
    let wrong = prop_oneof![
        Just(Value::Null),
        Just(json!("x")),
        Just(json!(-3)),
        Just(json!(1.5)),
        Just(json!([1])),
        Just(json!({"a": 1})),
    ];
    proptest::option::weighted(0.7, prop_oneof![6 => right, 1 => wrong])
}

#[derive(Debug, Clone)]
struct ClaimsCase {
    claims: serde_json::Map<String, Value>,
    alg: Value,
}

fn claims_case() -> impl Strategy<Value = ClaimsCase> {
    let now = unix_now() as i64;
    let at = move |d: i64| json!(now.saturating_add(d).max(0));
    let alg = prop_oneof![
        8 => Just(json!("HS256")),
        1 => Just(json!("HS512")),
        1 => Just(json!("ES256")),
        1 => Just(json!("none")),
        1 => Just(json!("RS256")),
        1 => Just(json!(7)),
    ];
    (
        maybe(time().prop_map(at).boxed()),
        maybe(time().prop_map(at).boxed()),
        maybe("[a-z0-9é]{0,6}".prop_map(Value::from).boxed()),
        maybe(
            proptest::collection::vec("[a-z:*]{0,5}", 0..3)
                .prop_map(Value::from)
                .boxed(),
        ),
        maybe(Just(json!({"name": "n", "n": [1, 2]})).boxed()),
        alg,
    )
        .prop_map(|(exp, nbf, sub, channels, info, alg)| {
            let mut claims = serde_json::Map::new();
            for (k, v) in [
                ("exp", exp),
                ("nbf", nbf),
                ("sub", sub),
                ("channels", channels),
                ("info", info),
            ] {
                if let Some(v) = v {
                    claims.insert(k.into(), v);
                }
            }
            ClaimsCase { claims, alg }
        })
}

/// What the documentation promises for a token signed with the secret: the algorithm must be
/// the pinned one, `exp` is required and checked, `nbf` too, claim types must fit.
fn expected(c: &ClaimsCase) -> Result<(), Vec<AuthError>> {
    let now = unix_now() as i64;
    match c.alg.as_str() {
        Some("HS256") => {}
        Some("HS512" | "RS256") => return Err(vec![AuthError::Algorithm]),
        // ES256 is pinned to the public key: an HMAC signature does not verify with it.
        Some("ES256") => return Err(vec![AuthError::Signature, AuthError::Malformed]),
        _ => return Err(vec![AuthError::Malformed, AuthError::Algorithm]),
    }
    let types_ok = c.claims.get("exp").is_some_and(|e| e.is_u64())
        && c.claims.get("sub").is_none_or(Value::is_string)
        && c.claims.get("channels").is_none_or(|v| {
            v.as_array()
                .is_some_and(|a| a.iter().all(Value::is_string))
        })
        // `nbf` is read as jsonwebtoken's NumericDate: an integer, or a float it rounds.
        && c.claims.get("nbf").is_none_or(|n| n.as_f64().is_some_and(|f| f >= 0.0));
    if !types_ok {
        return Err(vec![AuthError::Malformed, AuthError::Claims]);
    }
    let exp = c.claims["exp"].as_u64().unwrap() as i64;
    let nbf = c
        .claims
        .get("nbf")
        .and_then(Value::as_f64)
        .map(|n| n as i64);
    let leeway = contract::LEEWAY as i64;
    match (
        exp < now - leeway - 2,
        nbf.is_some_and(|n| n > now + leeway + 2),
    ) {
        (false, false) => Ok(()),
        (true, false) => Err(vec![AuthError::Expired]),
        (false, true) => Err(vec![AuthError::NotYetValid]),
        (true, true) => Err(vec![AuthError::Expired, AuthError::NotYetValid]),
    }
}

proptest! {
    #![proptest_config(cases(2000))]

    #[test]
    fn signed_tokens_are_judged_by_their_claims(c in claims_case()) {
        let v = contract::verifier();
        let header = json!({"alg": c.alg, "typ": "JWT"}).to_string();
        let token = contract::signed(header.as_bytes(), Value::Object(c.claims.clone()).to_string().as_bytes());
        contract::token(&v, &token);
        let got = v.verify(&token);
        match expected(&c) {
            Ok(()) => {
                let creds = got.unwrap_or_else(|e| panic!("{e:?} for {c:?}"));
                prop_assert_eq!(creds.expires_at, c.claims["exp"].as_u64());
            }
            Err(allowed) => {
                let e = got.expect_err("refused");
                prop_assert!(allowed.contains(&e), "{:?} not in {:?} for {:?}", e, allowed, c);
            }
        }
    }

    #[test]
    fn any_string_is_refused_safely(s in "[A-Za-z0-9_.=+/-]{0,120}") {
        contract::token(&contract::verifier(), &s);
    }

    #[test]
    fn damaged_tokens_are_refused(c in claims_case(), at in any::<prop::sample::Index>(), b in any::<u8>()) {
        let header = json!({"alg": c.alg}).to_string();
        let mut token = contract::signed(header.as_bytes(), Value::Object(c.claims).to_string().as_bytes()).into_bytes();
        let i = at.index(token.len());
        token[i] = if b.is_ascii() { b } else { b'A' };
        contract::token(&contract::verifier(), &String::from_utf8_lossy(&token));
    }
}
