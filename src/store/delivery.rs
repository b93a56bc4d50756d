//! What the stores keep about webhook delivery: attempts, dead letters, and the order of outbox
//! entry ids.

use crate::conference::{DomainEvent, Micros, RoomId};

/// How many dead letters a store keeps per app.
pub const DEAD_LETTERS_KEPT: usize = 10_000;

/// How many delivery attempts a store keeps per app.
pub const DELIVERY_LOG_KEPT: usize = 10_000;

/// One attempt to deliver a webhook message.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeliveryAttempt {
    /// The `webhook-id` of the message.
    pub message_id: String,
    #[serde(rename = "type")]
    pub kind: crate::conference::EventKind,
    pub room: RoomId,
    pub seq: u64,
    /// 1 for the first attempt of the message.
    pub attempt: u32,
    /// `delivered`, `retry` (another attempt follows) or `dead_letter`.
    pub outcome: String,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    pub error: Option<String>,
    pub at: Micros,
    pub duration_ms: u64,
}

/// A webhook message given up on: after its last attempt, or refused by the receiver.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeadLetter {
    /// The outbox entry (the `webhook-id` is derived from it).
    pub outbox_id: String,
    pub event: DomainEvent,
    pub attempts: u32,
    /// The last HTTP status, if the receiver answered.
    pub status: Option<u16>,
    pub last_error: String,
    pub at: Micros,
}

/// The order of outbox ids (`<ms>-<seq>`, as Redis streams number entries); `None` if malformed.
pub fn outbox_order(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}
