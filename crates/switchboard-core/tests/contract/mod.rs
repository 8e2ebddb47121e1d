//! The documented contract of token verification on untrusted strings, as checks that panic on
//! a violation. Shared by the bounded property tests (`tests/decoders.rs`) and the fuzz target
//! `jwt` (`fuzz/fuzz_targets/jwt.rs` includes this file).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::Value;
use switchboard_core::auth::{AuthError, Verifier, unix_now};
use switchboard_core::config::JwtConfig;

/// The HMAC secret of the verifier under test.
pub const SECRET: &str = "fuzz-secret";
/// Leeway of the verifier under test, in seconds.
pub const LEEWAY: u64 = 5;
/// A P-256 public key, so that `ES256` tokens reach signature parsing (no token can verify:
/// its private key is not kept anywhere).
const EC_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEz7NI4C7k6eCi4cbKgsnSgYvWAmUr
CDbJgqjpob8tVAuR4zKFkaVcr9xQjCiv0B08C9xhRrkCbTCsc776eqn3KA==
-----END PUBLIC KEY-----
";

/// A verifier with an HS256 secret and an ES256 public key, as a node is configured.
pub fn verifier() -> Verifier {
    Verifier::from_config(&JwtConfig {
        secret: Some(SECRET.into()),
        public_key_pem: Some(EC_PUBLIC_KEY.into()),
        public_key_algorithm: Some("ES256".into()),
        leeway: Duration::from_secs(LEEWAY),
        ..Default::default()
    })
    .expect("the test keys load")
}

/// A token with exactly these header and claims bytes, signed with [`SECRET`] (HS256).
pub fn signed(header: &[u8], claims: &[u8]) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let sig = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(SECRET.as_bytes()),
        Algorithm::HS256,
    )
    .expect("HMAC signs");
    format!("{message}.{sig}")
}

/// `Verifier::verify` on any string: a refusal is one of the documented categories with its
/// short, stable message (never `NoKey` with keys configured); an acceptance only for a token
/// whose header names HS256, whose signature is ours, and whose claims are what the credentials
/// say, with `exp` not past (and `nbf` not ahead) by more than the leeway.
pub fn token(v: &Verifier, token: &str) {
    let now = unix_now();
    match v.verify(token) {
        Ok(creds) => {
            let parts: Vec<&str> = token.split('.').collect();
            assert_eq!(parts.len(), 3, "{token:?}");
            // Only the fields checked, read as leniently as jsonwebtoken reads them: serde
            // skips the fields nobody reads without checking them, so a signed token may carry
            // invalid UTF-8 or a number past f64 (`1e400`) in a claim nobody reads.
            let bytes = |p: &str| URL_SAFE_NO_PAD.decode(p).expect("base64url");
            let header: Header = serde_json::from_slice(&bytes(parts[0])).expect("header");
            let claims: Seen = serde_json::from_slice(&bytes(parts[1])).expect("claims");
            assert_eq!(header.alg, "HS256", "{token:?}");
            assert_eq!(signed_part(parts[0], parts[1]), parts[2], "{token:?}");
            assert_eq!(Some(claims.exp), creds.expires_at, "{token:?}");
            assert!(
                claims.exp + LEEWAY >= now,
                "expired token accepted: {token:?}"
            );
            if let Some(nbf) = claims.nbf {
                assert!(nbf <= (now + LEEWAY + 1) as f64, "nbf ahead: {token:?}");
            }
            assert_eq!(claims.sub.unwrap_or_default(), creds.user);
            assert_eq!(claims.info.filter(|i| !i.is_null()), creds.info);
        }
        Err(e) => {
            let documented = [
                (AuthError::Algorithm, "token algorithm is not accepted"),
                (AuthError::Malformed, "malformed token"),
                (AuthError::Signature, "invalid token signature"),
                (AuthError::Claims, "token claims rejected"),
                (AuthError::NotYetValid, "token not valid yet"),
                (AuthError::Expired, "token expired"),
            ];
            assert!(
                documented.contains(&(e, e.to_string().as_str())),
                "{e:?} ({e}) for {token:?}"
            );
        }
    }
}

#[derive(serde::Deserialize)]
struct Header {
    alg: String,
}

/// The claims the check compares with the credentials.
#[derive(serde::Deserialize)]
struct Seen {
    exp: u64,
    nbf: Option<f64>,
    sub: Option<String>,
    info: Option<Value>,
}

fn signed_part(header: &str, claims: &str) -> String {
    jsonwebtoken::crypto::sign(
        format!("{header}.{claims}").as_bytes(),
        &EncodingKey::from_secret(SECRET.as_bytes()),
        Algorithm::HS256,
    )
    .expect("HMAC signs")
}

/// `jwt` target. First byte: 0 the rest is a token string; 1 the rest is header and claims
/// (split at the first NUL), signed with the secret, so the claims are checked past the
/// signature; 2 the rest is the claims under an `HS256` header, signed.
pub fn fuzz_jwt(v: &Verifier, data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => token(v, &String::from_utf8_lossy(rest)),
        1 => {
            let at = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            let claims = rest.get(at + 1..).unwrap_or_default();
            token(v, &signed(&rest[..at], claims));
        }
        _ => token(v, &signed(br#"{"alg":"HS256","typ":"JWT"}"#, rest)),
    }
}
