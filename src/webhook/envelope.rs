//! The body of a webhook: one domain event in the envelope applications parse,
//! `{"id", "type", "timestamp", "app_id", "room_id", "seq", "data"}`.
//!
//! `id` is also the `webhook-id` header. It is derived from the outbox entry, so every retry of
//! a message (and a re-delivery after a restart) carries the same id and receivers can
//! de-duplicate on it; `seq` is the room's sequence number, for ordering.

use serde::Serialize;
use serde_json::Value;

use crate::conference::{DomainEvent, EventKind};

/// What is sent for one outbox entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Envelope<'a> {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// When the event happened, RFC 3339 UTC.
    pub timestamp: String,
    pub app_id: &'a str,
    pub room_id: &'a str,
    pub seq: u64,
    pub data: &'a Value,
}

/// The message id of an outbox entry: stable across retries and restarts.
pub fn message_id(outbox_id: &str) -> String {
    format!("msg_{outbox_id}")
}

impl<'a> Envelope<'a> {
    pub fn new(outbox_id: &str, event: &'a DomainEvent) -> Envelope<'a> {
        Envelope {
            id: event
                .redelivers
                .clone()
                .unwrap_or_else(|| message_id(outbox_id)),
            kind: event.kind,
            timestamp: crate::api::extract::iso8601(event.at),
            app_id: event.app.as_str(),
            room_id: event.room.as_str(),
            seq: event.seq,
            data: &event.data,
        }
    }

    /// The JSON body, byte for byte what is signed.
    pub fn body(&self) -> Vec<u8> {
        // A struct of strings, numbers and a JSON value always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::conference::{AppId, NodePrefix, RoomId};
    use serde_json::json;

    #[test]
    fn the_envelope_has_the_documented_fields_in_order() {
        let room = RoomId::new(&NodePrefix::parse("abcde").unwrap(), uuid::Uuid::nil());
        let event = DomainEvent {
            kind: EventKind::MemberMuted,
            app: AppId::parse("app1").unwrap(),
            room: room.clone(),
            seq: 7,
            at: 1_778_070_896_123_456,
            data: json!({"member_id": "12"}),
            redelivers: None,
        };
        let body = Envelope::new("1700000000000-3", &event).body();
        let text = String::from_utf8(body).unwrap();
        assert_eq!(
            text,
            format!(
                "{{\"id\":\"msg_1700000000000-3\",\"type\":\"conference.member.muted\",\
                 \"timestamp\":\"2026-05-06T12:34:56Z\",\"app_id\":\"app1\",\"room_id\":\"{room}\",\
                 \"seq\":7,\"data\":{{\"member_id\":\"12\"}}}}"
            )
        );
    }
}
