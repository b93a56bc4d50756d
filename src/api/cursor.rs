//! Opaque, tamper-evident pagination cursors: the position, bound to its listing and app,
//! signed with HMAC-SHA256 under a per-process (or configured) secret. A forged, foreign or
//! stale cursor is refused, never followed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::conference::Micros;

/// Bytes of the HMAC tag kept in a cursor.
const TAG_LEN: usize = 16;

#[derive(Clone)]
pub struct Cursors {
    key: Vec<u8>,
}

impl std::fmt::Debug for Cursors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cursors(..)")
    }
}

/// Why a cursor was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor")]
pub struct BadCursor;

impl Cursors {
    pub fn new(secret: &[u8]) -> Cursors {
        Cursors {
            key: secret.to_vec(),
        }
    }

    /// A secret for this process only: its cursors mean nothing to another one.
    pub fn random() -> Cursors {
        let mut key = Vec::with_capacity(32);
        key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        Cursors { key }
    }

    fn tag(&self, payload: &[u8]) -> Vec<u8> {
        // HMAC takes keys of any length.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => return Vec::new(),
        };
        mac.update(payload);
        mac.finalize().into_bytes()[..TAG_LEN].to_vec()
    }

    /// A cursor for `position` in the listing `scope` (which names the app and the resource).
    pub fn encode(&self, scope: &str, position: &str) -> String {
        let payload = format!("v1\n{scope}\n{position}");
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload.as_bytes()),
            URL_SAFE_NO_PAD.encode(self.tag(payload.as_bytes()))
        )
    }

    /// The position a cursor of `scope` carries.
    pub fn decode(&self, scope: &str, cursor: &str) -> Result<String, BadCursor> {
        let (payload, tag) = cursor.split_once('.').ok_or(BadCursor)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| BadCursor)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| BadCursor)?;
        let expected = self.tag(&payload);
        if tag.len() != TAG_LEN || !bool::from(tag.ct_eq(&expected)) {
            return Err(BadCursor);
        }
        let payload = String::from_utf8(payload).map_err(|_| BadCursor)?;
        let rest = payload
            .strip_prefix("v1\n")
            .and_then(|p| p.strip_prefix(scope))
            .and_then(|p| p.strip_prefix('\n'))
            .ok_or(BadCursor)?;
        Ok(rest.to_owned())
    }

    /// A cursor for a (created_at, id) position.
    pub fn encode_at(&self, scope: &str, (at, id): &(Micros, String)) -> String {
        self.encode(scope, &format!("{at} {id}"))
    }

    pub fn decode_at(&self, scope: &str, cursor: &str) -> Result<(Micros, String), BadCursor> {
        let position = self.decode(scope, cursor)?;
        let (at, id) = position.split_once(' ').ok_or(BadCursor)?;
        Ok((at.parse().map_err(|_| BadCursor)?, id.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_tampering() {
        let c = Cursors::random();
        let cur = c.encode_at("rooms app1", &(17, "abc".into()));
        assert_eq!(c.decode_at("rooms app1", &cur), Ok((17, "abc".into())));
        assert_eq!(c.decode_at("rooms app2", &cur), Err(BadCursor));
        assert_eq!(
            Cursors::random().decode_at("rooms app1", &cur),
            Err(BadCursor)
        );
        let forged = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode("v1\nrooms app1\n18 abc"),
            cur.split_once('.').unwrap().1
        );
        assert_eq!(c.decode_at("rooms app1", &forged), Err(BadCursor));
        for junk in ["", ".", "x", "a.b", "%%%.###"] {
            assert_eq!(c.decode("rooms app1", junk), Err(BadCursor));
        }
    }
}
