//! Identifiers, parsed once at the edge. A room or session id names the media node that hosts it:
//! `room_id = {prefix}-room-{uuid}`, `session id = {prefix}-{channel uuid}`, where `prefix` is the
//! node's 5-character id. The FreeSWITCH conference name is the room id.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why an id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {value:?} ({why})")]
pub struct IdError {
    pub kind: &'static str,
    pub value: String,
    pub why: &'static str,
}

fn err(kind: &'static str, value: &str, why: &'static str) -> IdError {
    IdError {
        kind,
        value: value.chars().take(80).collect(),
        why,
    }
}

/// Whether `text` is `uuid` written lowercase and hyphenated (without allocating).
fn is_canonical(uuid: Uuid, text: &str) -> bool {
    uuid.hyphenated().encode_lower(&mut Uuid::encode_buffer()) == text
}

/// The 5-character id of a media node (`[A-Za-z0-9]{5}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct NodePrefix(String);

impl NodePrefix {
    pub fn parse(s: &str) -> Result<NodePrefix, IdError> {
        if s.len() == 5 && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(NodePrefix(s.to_owned()))
        } else {
            Err(err("node prefix", s, "expected 5 characters [A-Za-z0-9]"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A room: `{prefix}-room-{uuid}` (lowercase hyphenated uuid).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct RoomId(String);

impl RoomId {
    pub fn new(prefix: &NodePrefix, uuid: Uuid) -> RoomId {
        RoomId(format!("{}-room-{}", prefix.as_str(), uuid.hyphenated()))
    }

    pub fn parse(s: &str) -> Result<RoomId, IdError> {
        let (prefix, rest) = s
            .split_at_checked(5)
            .ok_or_else(|| err("room_id", s, "too short"))?;
        NodePrefix::parse(prefix).map_err(|_| err("room_id", s, "bad node prefix"))?;
        let uuid = rest
            .strip_prefix("-room-")
            .ok_or_else(|| err("room_id", s, "expected {prefix}-room-{uuid}"))?;
        match Uuid::try_parse(uuid) {
            Ok(u) if is_canonical(u, uuid) => Ok(RoomId(s.to_owned())),
            _ => Err(err("room_id", s, "expected a lowercase hyphenated uuid")),
        }
    }

    /// The node that hosts the room.
    pub fn prefix(&self) -> NodePrefix {
        NodePrefix(self.0[..5].to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A call session: `{prefix}-{channel uuid}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct SessionId(String);

impl SessionId {
    pub fn new(prefix: &NodePrefix, channel: &str) -> SessionId {
        SessionId(format!("{}-{}", prefix.as_str(), channel))
    }

    pub fn parse(s: &str) -> Result<SessionId, IdError> {
        let (prefix, rest) = s
            .split_at_checked(5)
            .ok_or_else(|| err("session id", s, "too short"))?;
        NodePrefix::parse(prefix).map_err(|_| err("session id", s, "bad node prefix"))?;
        let uuid = rest
            .strip_prefix('-')
            .ok_or_else(|| err("session id", s, "expected {prefix}-{uuid}"))?;
        match Uuid::try_parse(uuid) {
            Ok(u) if is_canonical(u, uuid) => Ok(SessionId(s.to_owned())),
            _ => Err(err(
                "session id",
                s,
                "expected a lowercase hyphenated channel uuid",
            )),
        }
    }

    pub fn prefix(&self) -> NodePrefix {
        NodePrefix(self.0[..5].to_owned())
    }

    /// The FreeSWITCH channel uuid.
    pub fn channel(&self) -> &str {
        &self.0[6..]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An application (tenant) id, as configured: `[A-Za-z0-9_-]{1,64}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct AppId(String);

impl AppId {
    pub fn parse(s: &str) -> Result<AppId, IdError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(AppId(s.to_owned()))
        } else {
            Err(err("app id", s, "expected 1-64 characters [A-Za-z0-9_-]"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_newtype_impls {
    ($($t:ident),*) => {$(
        impl TryFrom<String> for $t {
            type Error = IdError;
            fn try_from(s: String) -> Result<$t, IdError> {
                $t::parse(&s)
            }
        }
        impl From<$t> for String {
            fn from(id: $t) -> String {
                id.0
            }
        }
        /// Written as its string, without a copy.
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}

string_newtype_impls!(NodePrefix, RoomId, SessionId, AppId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_ids_name_their_node_and_refuse_anything_else() {
        let id = RoomId::parse("acW68-room-550e8400-e29b-41d4-a716-446655440000").unwrap();
        assert_eq!(id.prefix().as_str(), "acW68");
        for bad in [
            "acW6-room-550e8400-e29b-41d4-a716-446655440000",
            "acW68-room-550E8400-E29B-41D4-A716-446655440000",
            "acW68-room-nope",
            "ac W6-room-550e8400-e29b-41d4-a716-446655440000",
            "acW68-room-550e8400-e29b-41d4-a716-446655440000 kick all",
            "",
            "é",
        ] {
            assert!(RoomId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn session_ids_carry_the_channel_uuid() {
        let s = SessionId::parse("acW68-28ec5c5e-0cdb-4582-983d-48f16177e7f7").unwrap();
        assert_eq!(s.channel(), "28ec5c5e-0cdb-4582-983d-48f16177e7f7");
        assert_eq!(s.prefix().as_str(), "acW68");
        assert!(SessionId::parse("acW68-28ec5c5e").is_err());
    }
}
