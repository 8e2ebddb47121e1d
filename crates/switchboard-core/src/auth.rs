//! Token verification: JWT with algorithms pinned per key.
//!
//! The header is read only to pick the key whose pinned algorithm it names; nothing else in the
//! token is trusted before the signature verifies. `alg: none`, unknown algorithms and
//! algorithm confusion (an HMAC token signed with an RSA public key) all fail because each key
//! accepts exactly one algorithm.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::JwtConfig;

/// Claims Switchboard reads from a token.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    #[serde(default)]
    pub sub: String,
    /// Expiry (seconds since the epoch). Required.
    pub exp: u64,
    /// Channel patterns the client may subscribe to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    /// Channel patterns the client may publish to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish: Vec<String>,
    /// JSON attached to the client in presence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<serde_json::Value>,
}

/// What a verified token grants.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Credentials {
    /// User id (empty for anonymous).
    pub user: String,
    /// Expiry in seconds since the Unix epoch; `None` never expires (anonymous sessions).
    pub expires_at: Option<u64>,
    /// Subscribe patterns.
    pub channels: Vec<String>,
    /// Publish patterns.
    pub publish: Vec<String>,
    /// Presence info.
    pub info: Option<serde_json::Value>,
}

impl Credentials {
    /// Anonymous credentials.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// Whether the session is anonymous.
    pub fn is_anonymous(&self) -> bool {
        self.user.is_empty() && self.expires_at.is_none()
    }

    /// Seconds until expiry, saturating at 0.
    pub fn expires_in(&self) -> Option<u64> {
        self.expires_at.map(|e| e.saturating_sub(unix_now()))
    }
}

/// Why a token was refused. The messages are short, stable and safe to send to clients: they
/// never include the token, and never the parser's details (accepted algorithms, byte offsets,
/// serde messages), which are only logged at debug level as a category.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No key is configured that accepts this token's algorithm.
    #[error("token algorithm is not accepted")]
    Algorithm,
    /// Not a JWT: bad structure, base64, JSON or claim types.
    #[error("malformed token")]
    Malformed,
    /// The signature does not verify with the configured key.
    #[error("invalid token signature")]
    Signature,
    /// A claim was refused: missing `exp`, wrong `aud` or `iss`.
    #[error("token claims rejected")]
    Claims,
    /// The token's `nbf` is still in the future.
    #[error("token not valid yet")]
    NotYetValid,
    /// The token has expired.
    #[error("token expired")]
    Expired,
    /// No key is configured at all.
    #[error("no token verification key is configured")]
    NoKey,
}

impl AuthError {
    fn from_jwt(e: &jsonwebtoken::errors::Error) -> Self {
        use jsonwebtoken::errors::ErrorKind as K;
        let refused = match e.kind() {
            K::ExpiredSignature => Self::Expired,
            K::ImmatureSignature => Self::NotYetValid,
            K::InvalidAlgorithm | K::MissingAlgorithm => Self::Algorithm,
            K::InvalidSignature => Self::Signature,
            K::InvalidAudience
            | K::InvalidIssuer
            | K::InvalidSubject
            | K::MissingRequiredClaim(_) => Self::Claims,
            _ => Self::Malformed,
        };
        // The category only: the library's message can quote parts of the token.
        tracing::debug!(refused = %refused, "token refused");
        refused
    }
}

/// Errors building a [`Verifier`] from configuration.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// An algorithm name is unknown or does not fit the key.
    #[error("jwt.{0}: {1}")]
    Config(&'static str, String),
}

struct Key {
    key: DecodingKey,
    validation: Validation,
}

/// Verifies tokens against the configured keys.
pub struct Verifier {
    keys: Vec<Key>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.keys.len())
            .finish()
    }
}

fn parse_alg(field: &'static str, s: &str) -> Result<Algorithm, KeyError> {
    s.parse::<Algorithm>()
        .map_err(|_| KeyError::Config(field, format!("unknown algorithm {s:?}")))
}

impl Verifier {
    /// Builds a verifier from configuration.
    ///
    /// # Errors
    /// [`KeyError`] naming the bad setting (unknown algorithm, unreadable key).
    pub fn from_config(cfg: &JwtConfig) -> Result<Self, KeyError> {
        let mut keys = Vec::new();
        let base = |alg: Algorithm| {
            let mut v = Validation::new(alg);
            v.leeway = cfg.leeway.as_secs();
            v.validate_nbf = true;
            v.required_spec_claims = ["exp".to_owned()].into_iter().collect();
            match &cfg.audience {
                Some(aud) => v.set_audience(&[aud]),
                None => v.validate_aud = false,
            }
            if let Some(iss) = &cfg.issuer {
                v.set_issuer(&[iss]);
                v.required_spec_claims.insert("iss".into());
            }
            v
        };
        if let Some(secret) = &cfg.secret {
            let alg = parse_alg(
                "secret_algorithm",
                cfg.secret_algorithm.as_deref().unwrap_or("HS256"),
            )?;
            if !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
                return Err(KeyError::Config(
                    "secret_algorithm",
                    "a secret needs HS256, HS384 or HS512".into(),
                ));
            }
            keys.push(Key {
                key: DecodingKey::from_secret(secret.as_bytes()),
                validation: base(alg),
            });
        }
        let pem = match (&cfg.public_key_pem, &cfg.public_key_file) {
            (Some(p), _) => Some(p.clone().into_bytes()),
            (None, Some(path)) => Some(
                std::fs::read(path)
                    .map_err(|e| KeyError::Config("public_key_file", format!("{path}: {e}")))?,
            ),
            (None, None) => None,
        };
        if let Some(pem) = pem {
            let alg = parse_alg(
                "public_key_algorithm",
                cfg.public_key_algorithm.as_deref().unwrap_or("RS256"),
            )?;
            let bad =
                |e: jsonwebtoken::errors::Error| KeyError::Config("public_key_pem", e.to_string());
            let key = match alg {
                Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512 => DecodingKey::from_rsa_pem(&pem).map_err(bad)?,
                Algorithm::ES256 | Algorithm::ES384 => {
                    DecodingKey::from_ec_pem(&pem).map_err(bad)?
                }
                Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem).map_err(bad)?,
                _ => {
                    return Err(KeyError::Config(
                        "public_key_algorithm",
                        "a public key needs RS*, PS*, ES* or EdDSA".into(),
                    ));
                }
            };
            keys.push(Key {
                key,
                validation: base(alg),
            });
        }
        Ok(Self { keys })
    }

    /// Whether any key is configured.
    pub fn has_keys(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Verifies `token` and returns what it grants.
    ///
    /// # Errors
    /// [`AuthError`]; expired tokens are [`AuthError::Expired`].
    pub fn verify(&self, token: &str) -> Result<Credentials, AuthError> {
        if self.keys.is_empty() {
            return Err(AuthError::NoKey);
        }
        // The header is untrusted; it only selects which pinned key to try.
        let header = jsonwebtoken::decode_header(token).map_err(|e| AuthError::from_jwt(&e))?;
        let key = self
            .keys
            .iter()
            .find(|k| k.validation.algorithms.contains(&header.alg))
            .ok_or(AuthError::Algorithm)?;
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &key.validation)
            .map_err(|e| AuthError::from_jwt(&e))?;
        let c = data.claims;
        Ok(Credentials {
            user: c.sub,
            expires_at: Some(c.exp),
            channels: c.channels,
            publish: c.publish,
            info: c.info,
        })
    }
}

pub use crate::clock::unix_now;

/// Signs `claims` with an HMAC secret (HS256). For development tokens (`switchboard token`) and
/// tests; production tokens come from the application's auth service.
///
/// # Errors
/// Only if signing itself fails.
pub fn mint_hs256(secret: &str, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
}

/// Builds claims for `user` valid for `ttl` from now.
pub fn claims_for(
    user: &str,
    ttl: Duration,
    channels: Vec<String>,
    publish: Vec<String>,
) -> Claims {
    Claims {
        sub: user.to_owned(),
        exp: unix_now() + ttl.as_secs(),
        channels,
        publish,
        info: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(secret: &str) -> Verifier {
        Verifier::from_config(&JwtConfig {
            secret: Some(secret.into()),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn accepts_valid_and_rejects_bad_tokens() {
        let v = verifier("s3cret");
        let t = mint_hs256(
            "s3cret",
            &claims_for("42", Duration::from_secs(60), vec!["chat:*".into()], vec![]),
        )
        .unwrap();
        let c = v.verify(&t).unwrap();
        assert_eq!(c.user, "42");
        assert_eq!(c.channels, ["chat:*"]);
        let wrong = mint_hs256(
            "other",
            &claims_for("42", Duration::from_secs(60), vec![], vec![]),
        )
        .unwrap();
        assert_eq!(v.verify(&wrong), Err(AuthError::Signature));
        let mut old = claims_for("42", Duration::ZERO, vec![], vec![]);
        old.exp -= 3600;
        assert_eq!(
            v.verify(&mint_hs256("s3cret", &old).unwrap()),
            Err(AuthError::Expired)
        );
        assert_eq!(v.verify("garbage"), Err(AuthError::Malformed));
    }

    #[test]
    fn refusals_do_not_echo_parser_details() {
        let v = verifier("s3cret");
        let bad_b64 = "eyJhbGciOiJIUzI1NiJ9.@@@.sig";
        let bad_json = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOjF9.c2ln";
        for t in [bad_b64, bad_json, "a.b", "", "eyJ9.e30.x"] {
            let e = v.verify(t).unwrap_err();
            assert!(
                [
                    AuthError::Malformed,
                    AuthError::Signature,
                    AuthError::Algorithm
                ]
                .contains(&e),
                "{t}: {e:?}"
            );
            let msg = e.to_string();
            assert!(
                msg.len() < 40 && !msg.contains("Base64") && !msg.contains("line"),
                "{msg}"
            );
        }
    }

    #[test]
    fn rejects_alg_none_and_other_algorithms() {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let v = verifier("s3cret");
        let none = format!(
            "{}.{}.",
            b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
            b64.encode(format!(r#"{{"sub":"1","exp":{}}}"#, unix_now() + 60))
        );
        assert!(v.verify(&none).is_err());
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims_for("1", Duration::from_secs(60), vec![], vec![]),
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap();
        assert_eq!(v.verify(&hs512), Err(AuthError::Algorithm));
    }

    #[test]
    fn missing_exp_is_rejected() {
        let v = verifier("s3cret");
        let t = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "1"}),
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap();
        // `exp` is a required field of the claims: the payload does not deserialize.
        assert_eq!(v.verify(&t), Err(AuthError::Malformed));
    }
}
