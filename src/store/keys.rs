//! The Redis key schema, in one place.
//!
//! Every key of an application's rooms and sessions carries the application's hash tag
//! (`{app}`), so one room's write — the room, the app's indexes and the app's outbox stream —
//! touches a single Redis Cluster slot and runs as one atomic script. (Tagging by room id would
//! split a room from its app's indexes across slots.) The few global keys are write-once
//! lookups, written before the records they point to, and sets and zsets that are only ever
//! touched one key per command (or per single-key script), so each lives in whatever slot its
//! name hashes to.
//!
//! On a Redis Cluster (`redis+cluster://`, see `redis/failover.rs`) this layout works as it is:
//! every script and transaction names one app's keys (one slot), and a pipeline that mixes
//! slots (a room write and its global lookups) goes out as one request per command. What it
//! does not do yet is spread ONE app over several masters: an app's rooms all hash to the slot
//! of `{app}` (issue 19 asks for a per-app shard number in the tag, chosen from the room id,
//! with per-shard indexes, outbox and dispatcher lease, and listings merged across shards).
//!
//! | key | type | holds |
//! |---|---|---|
//! | `sy:{app}:room:<room_id>` | hash `seq`, `json` | the room |
//! | `sy:{app}:rooms` | zset score created_at µs | the app's rooms |
//! | `sy:{app}:name:<name>` | string | room_id of the live room with that name |
//! | `sy:{app}:sess:<session_id>` | hash `seq`, `json` | the session |
//! | `sy:{app}:sessions` | zset score created_at µs | the app's live sessions |
//! | `sy:{app}:in:<session_id>` | string | room_id the session is in |
//! | `sy:{app}:outbox` | stream, field `event` (JSON) | domain events for webhooks |
//! | `sy:{app}:outbox:appended` | Pub/Sub channel (not a key) | the id of the newest entry, published with each append (wakes the outbox's readers) |
//! | `sy:{app}:cd:<key>` | string with PX | a cooldown |
//! | `sy:{app}:cmd:<key>` | string with EX | a remembered command answer |
//! | `sy:{app}:wh:pos` | string | the webhook dispatcher's outbox position (a stream id) |
//! | `sy:{app}:wh:acked` | set of stream ids | entries delivered ahead of the position |
//! | `sy:{app}:lease:<name>` | string with PX | who holds a lease (`webhooks`: the app's dispatcher) |
//! | `sy:{app}:wh:log` | stream, field `attempt` (JSON), capped | the delivery log, one entry per attempt |
//! | `sy:{app}:wh:dead` | list of JSON `DeadLetter` | undeliverable webhooks, oldest first |
//! | `sy:roomapp:<room_id>` | string | the room's app (global, write-once) |
//! | `sy:sessapp:<session_id>` | string | the session's app (global, write-once) |
//! | `sy:ref:<uuid>` | string `app room_id` | the room of a conferencecall or recording id (global, write-once) |
//! | `sy:timeouts` | zset `app room_id`, score due µs | rooms to end at their timeout (global; a claim pushes the score out by a lease) |
//! | `sy:node:<prefix>:rooms` | set of `app room_id` | live rooms on a node (global) |
//! | `sy:node:<prefix>:sessions` | set of `app session_id` | live sessions on a node (global) |
//! | `sy:fleet:instances` | zset of instance ids, score expiry ms (Redis's clock) | live controller instances (global, [`super::fleet`]) |
//! | `sy:fleet:node:<prefix>` | string with PX | the instance applying the node's events (global, [`super::fleet`]) |

use crate::conference::{AppId, NodePrefix, RoomId, SessionId};

pub fn room(app: &AppId, id: &RoomId) -> String {
    format!("sy:{{{app}}}:room:{id}")
}

pub fn rooms(app: &AppId) -> String {
    format!("sy:{{{app}}}:rooms")
}

pub fn name(app: &AppId, name: &str) -> String {
    format!("sy:{{{app}}}:name:{name}")
}

pub fn session(app: &AppId, id: &SessionId) -> String {
    format!("sy:{{{app}}}:sess:{id}")
}

pub fn sessions(app: &AppId) -> String {
    format!("sy:{{{app}}}:sessions")
}

pub fn session_room(app: &AppId, id: &SessionId) -> String {
    format!("sy:{{{app}}}:in:{id}")
}

pub fn outbox(app: &AppId) -> String {
    format!("sy:{{{app}}}:outbox")
}

/// The channel an append to the app's outbox is announced on: the stream's name and
/// `:appended` (the scripts derive it from the stream key they are given).
pub fn appended(app: &AppId) -> String {
    format!("sy:{{{app}}}:outbox:appended")
}

/// Every app's [`appended`] channel.
pub const APPENDED_PATTERN: &str = "sy:{*}:outbox:appended";

/// The app an [`appended`] channel belongs to.
pub fn appended_app(channel: &str) -> Option<&str> {
    channel
        .strip_prefix("sy:{")?
        .strip_suffix("}:outbox:appended")
}

pub fn cooldown(app: &AppId, key: &str) -> String {
    format!("sy:{{{app}}}:cd:{key}")
}

pub fn command(app: &AppId, key: &str) -> String {
    format!("sy:{{{app}}}:cmd:{key}")
}

pub fn room_app(id: &RoomId) -> String {
    format!("sy:roomapp:{id}")
}

pub fn session_app(id: &SessionId) -> String {
    format!("sy:sessapp:{id}")
}

pub fn reference(id: &uuid::Uuid) -> String {
    format!("sy:ref:{id}")
}

pub const TIMEOUTS: &str = "sy:timeouts";

pub fn node_rooms(node: &NodePrefix) -> String {
    format!("sy:node:{node}:rooms")
}

pub fn node_sessions(node: &NodePrefix) -> String {
    format!("sy:node:{node}:sessions")
}

pub fn webhook_position(app: &AppId) -> String {
    format!("sy:{{{app}}}:wh:pos")
}

pub fn webhook_acked(app: &AppId) -> String {
    format!("sy:{{{app}}}:wh:acked")
}

pub fn lease(app: &AppId, name: &str) -> String {
    format!("sy:{{{app}}}:lease:{name}")
}

pub fn webhook_log(app: &AppId) -> String {
    format!("sy:{{{app}}}:wh:log")
}

pub fn webhook_dead(app: &AppId) -> String {
    format!("sy:{{{app}}}:wh:dead")
}
