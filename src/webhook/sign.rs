//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{ts}.{body}")>`,
//! made by the `standardwebhooks` crate (the scheme's reference library for Rust).
//!
//! Secrets are `whsec_<base64>` of at least 24 bytes. During a rotation an application has two
//! active secrets (configured space-separated); every message then carries one signature per
//! secret, space-separated, and a receiver holding either secret accepts it. Key bytes never
//! appear in `Debug` output or errors.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use standardwebhooks::Webhook;
use subtle::ConstantTimeEq;

/// The secret prefix the scheme uses.
pub const SECRET_PREFIX: &str = "whsec_";
/// The shortest key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 24;
/// How many secrets may be active at once (the old and the new one during a rotation).
pub const MAX_SECRETS: usize = 2;
/// How far a `webhook-timestamp` may be from now for [`verify`] to accept it.
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// Why a configured secret was refused. Never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("no webhook secret given")]
    Empty,
    #[error("a webhook secret must start with \"whsec_\"")]
    MissingPrefix,
    #[error("a webhook secret must be base64 after \"whsec_\"")]
    NotBase64,
    #[error("a webhook secret must decode to at least {MIN_KEY_BYTES} bytes, this one has {0}")]
    TooShort(usize),
    #[error("at most {MAX_SECRETS} webhook secrets may be active at once, {0} given")]
    TooMany(usize),
}

/// Why a message could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The scheme signs text: a webhook body is JSON, so UTF-8.
    #[error("a webhook body must be UTF-8 to be signed")]
    NotUtf8,
}

/// Why a received message was refused by [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("webhook-timestamp is not a number of seconds")]
    BadTimestamp,
    #[error("webhook-timestamp is more than {TOLERANCE_SECS} s away from now")]
    OutOfTolerance,
    #[error("no signature matches")]
    NoMatch,
}

/// One signing key (shared, not copied, between clones).
#[derive(Clone)]
pub struct Secret {
    webhook: Arc<Webhook>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    /// Parses `whsec_<base64>`; the key must be at least [`MIN_KEY_BYTES`] long.
    pub fn parse(text: &str) -> Result<Secret, SecretError> {
        let encoded = text
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::MissingPrefix)?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::NotBase64)?;
        if key.len() < MIN_KEY_BYTES {
            return Err(SecretError::TooShort(key.len()));
        }
        // `from_bytes` takes any key; its error case is never produced for raw bytes.
        let webhook = Webhook::from_bytes(key).map_err(|_| SecretError::NotBase64)?;
        Ok(Secret {
            webhook: Arc::new(webhook),
        })
    }

    /// A fresh random secret of 32 bytes, as `whsec_…` text.
    pub fn generate() -> String {
        // Two v4 uuids: 32 bytes from the operating system's CSPRNG, of which 244 bits random.
        let key: Vec<u8> = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
            .iter()
            .flat_map(|u| *u.as_bytes())
            .collect();
        format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
    }

    /// `v1,<base64 signature>` of one message.
    fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> Result<String, SignError> {
        // The crate's only failure is a body that is not UTF-8.
        self.webhook
            .sign(id, timestamp, body)
            .map_err(|_| SignError::NotUtf8)
    }
}

/// The active secrets of one application: one, or two during a rotation.
#[derive(Debug, Clone)]
pub struct Signer {
    secrets: Vec<Secret>,
}

impl Signer {
    /// Parses one secret, or two separated by whitespace (`"whsec_new whsec_old"`).
    pub fn parse(text: &str) -> Result<Signer, SecretError> {
        let secrets = text
            .split_whitespace()
            .map(Secret::parse)
            .collect::<Result<Vec<_>, _>>()?;
        match secrets.len() {
            0 => Err(SecretError::Empty),
            n if n > MAX_SECRETS => Err(SecretError::TooMany(n)),
            _ => Ok(Signer { secrets }),
        }
    }

    /// The `webhook-signature` value: one `v1,…` per active secret, space-separated.
    pub fn signature(&self, id: &str, timestamp: i64, body: &[u8]) -> Result<String, SignError> {
        let signatures = self
            .secrets
            .iter()
            .map(|s| s.sign(id, timestamp, body))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(signatures.join(" "))
    }
}

/// Checks a received message as a receiver would: the timestamp within [`TOLERANCE_SECS`] of
/// `now` (unix seconds) and one of the `v1` signatures made by one of `secrets`.
///
/// The signatures expected are the crate's; the crate's own `Webhook::verify` is not used
/// because it reads the clock itself, and `switchyard webhook verify --ignore-time` and tests
/// need to say what "now" is.
pub fn verify(
    secrets: &[Secret],
    id: &str,
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: i64,
) -> Result<(), VerifyError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    if (now - ts).abs() > TOLERANCE_SECS {
        return Err(VerifyError::OutOfTolerance);
    }
    let offered: Vec<&str> = signature
        .split_whitespace()
        .filter(|s| s.starts_with("v1,"))
        .collect();
    let matches = secrets
        .iter()
        .filter_map(|secret| secret.sign(id, ts, body).ok())
        .any(|expected| {
            offered
                .iter()
                .any(|o| bool::from(o.as_bytes().ct_eq(expected.as_bytes())))
        });
    if matches {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn secret_of(bytes: &[u8]) -> String {
        format!("whsec_{}", STANDARD.encode(bytes))
    }

    #[test]
    fn short_unprefixed_and_garbled_secrets_are_refused() {
        assert_eq!(
            Secret::parse(&secret_of(&[1; 23])).unwrap_err(),
            SecretError::TooShort(23)
        );
        assert!(Secret::parse(&secret_of(&[1; 24])).is_ok());
        assert_eq!(
            Secret::parse(&STANDARD.encode([1; 32])).unwrap_err(),
            SecretError::MissingPrefix
        );
        assert_eq!(
            Secret::parse("whsec_!!!").unwrap_err(),
            SecretError::NotBase64
        );
        assert_eq!(Signer::parse("  ").unwrap_err(), SecretError::Empty);
        let three = [
            secret_of(&[1; 32]),
            secret_of(&[2; 32]),
            secret_of(&[3; 32]),
        ]
        .join(" ");
        assert_eq!(Signer::parse(&three).unwrap_err(), SecretError::TooMany(3));
        let err = SecretError::TooShort(3).to_string();
        assert!(err.contains("24"), "{err}");
    }

    #[test]
    fn the_secret_never_shows_in_debug() {
        let text = Secret::generate();
        let signer = Signer::parse(&text).unwrap();
        let shown = format!("{signer:?}");
        assert!(!shown.contains(&text[6..]), "{shown}");
    }

    #[test]
    fn known_vector_from_the_standard_webhooks_spec() {
        // The example of the Standard Webhooks reference libraries.
        let signer = Signer::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let sig = signer
            .signature("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
            .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn two_active_secrets_each_verify_and_a_stranger_does_not() {
        let (old, new) = (Secret::generate(), Secret::generate());
        let signer = Signer::parse(&format!("{new} {old}")).unwrap();
        let sig = signer.signature("msg_1", 1000, b"{}").unwrap();
        assert_eq!(sig.split(' ').count(), 2);
        for s in [&old, &new] {
            let key = Secret::parse(s).unwrap();
            assert_eq!(verify(&[key], "msg_1", "1000", &sig, b"{}", 1000), Ok(()));
        }
        let stranger = Secret::parse(&Secret::generate()).unwrap();
        assert_eq!(
            verify(&[stranger], "msg_1", "1000", &sig, b"{}", 1000),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn verify_refuses_tampering_and_stale_timestamps() {
        let text = Secret::generate();
        let key = || vec![Secret::parse(&text).unwrap()];
        let sig = Signer::parse(&text)
            .unwrap()
            .signature("m", 1000, b"body")
            .unwrap();
        assert_eq!(verify(&key(), "m", "1000", &sig, b"body", 1299), Ok(()));
        assert_eq!(
            verify(&key(), "m", "1000", &sig, b"bodx", 1000),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(&key(), "n", "1000", &sig, b"body", 1000),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(&key(), "m", "1000", &sig, b"body", 1301),
            Err(VerifyError::OutOfTolerance)
        );
        assert_eq!(
            verify(&key(), "m", "x", &sig, b"body", 1000),
            Err(VerifyError::BadTimestamp)
        );
    }

    #[test]
    fn a_body_that_is_not_utf8_is_not_signed_and_never_verifies() {
        let text = Secret::generate();
        let signer = Signer::parse(&text).unwrap();
        assert_eq!(
            signer.signature("m", 1000, b"\xff\xfe"),
            Err(SignError::NotUtf8)
        );
        let sig = signer.signature("m", 1000, b"{}").unwrap();
        let key = vec![Secret::parse(&text).unwrap()];
        assert_eq!(
            verify(&key, "m", "1000", &sig, b"\xff{}", 1000),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn the_crates_verifier_accepts_both_signatures_of_a_rotation() {
        let (old, new) = (Secret::generate(), Secret::generate());
        let signer = Signer::parse(&format!("{new} {old}")).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let body = br#"{"type":"conference.created"}"#;
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("webhook-id", "msg_1".parse().unwrap());
        headers.insert("webhook-timestamp", now.to_string().parse().unwrap());
        let sig = signer.signature("msg_1", now, body).unwrap();
        headers.insert("webhook-signature", sig.parse().unwrap());
        for s in [&old, &new] {
            let wh = Webhook::new(s).unwrap();
            assert!(wh.verify(body, &headers).is_ok(), "{s:?}");
            assert!(wh.verify(b"{}", &headers).is_err());
        }
    }
}
