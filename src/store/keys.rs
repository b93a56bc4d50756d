//! The Redis key schema, in one place.
//!
//! Every key of an application's rooms and sessions carries a hash tag of the application —
//! one of its *shards* — so one room's write (the room, its shard's indexes and its shard's
//! outbox stream) touches a single Redis Cluster slot and runs as one atomic script. The few
//! global keys are write-once lookups, written before the records they point to, and sets and
//! zsets that are only ever touched one key per command (or per single-key script), so each
//! lives in whatever slot its name hashes to.
//!
//! **Shards** (`redis_shards`, default 1; `redis/shards.rs`). An app has `n` tags: shard 0 is
//! `{app}` — every key as it was before shards existed, so a single-Redis deployment's data is
//! read as it is, with no migration — and shard k ≥ 1 is `{app#j}`, `j` chosen so that the
//! shards' slots fall in `n` different equal ranges of the slot space (one per master of a
//! cluster `redis-cli --cluster create` made with `n` masters). What lives in which shard:
//! - a room, in the shard its id hashes to (FNV-1a of the id's uuid, mod n), so any instance
//!   finds it from its id alone; a named room's uuid is drawn until it hashes to the shard its
//!   name hashes to, so the name's claim (`name:`) sits in the room's slot and is taken and
//!   released in the room's own scripts — uniqueness per app stays atomic;
//! - the room's `in:<session>` lookups and its outbox entries, with the room: per-room order
//!   is one stream's order;
//! - a session (and the app's `sessions` index entry), in the shard its id hashes to;
//! - cooldowns and remembered commands, in the shard their key hashes to (single-key);
//! - the webhook bookkeeping (`wh:*`, `lease:*`), in shard 0: one dispatcher per app reads
//!   every shard's outbox under one position (`store/position.rs`: per shard, the last entry
//!   taken), so webhooks and the event feed resume exactly whatever the masters' clocks.
//!
//! Listings read every shard's index and merge by (created_at, id) — the cursor was already
//! that pair, so it needs no shard. A room found by session reads `in:` in every shard (one
//! pipelined round trip). The shard count is part of the layout: a room is looked for in the
//! shard its id hashes to under the current count, so change it only when the app has no live
//! rooms (ended rooms it no longer finds just expire).
//!
//! `{shard}` below is one of the app's shard tags (`{app}` or `{app#j}`); `{app}` is shard 0.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `sy:{shard}:room:<room_id>` | hash `seq`, `json`, `past`, `k` | the room; `past`: its past participations, `<seq>\|<JSON list>`, written only when they change (`redis/room_record.rs`; records of before hold them in `json`); `k`: the controller process that keeps it in memory, as its last write by one said (`lua/save_room.lua`) |
//! | `sy:{shard}:notice:<room_id>` | string (the room's `seq` when set; with EX once the room has ended, as its record) | what the process that keeps the room has Redis track instead of the room, so its own writes leave it tracked: set by a new keeper and by every other writer of the room (`lua/save_room.lua`) |
//! | `sy:{shard}:rooms` | zset score created_at µs | the shard's rooms of the app |
//! | `sy:{shard}:rooms:live` | zset score created_at µs | the shard's rooms not ended yet (live listings) |
//! | `sy:{shard}:rooms:media` | zset score created_at µs | the shard's live rooms recording or carrying a live stream (the streams' takeover look, the recording and stream quotas) |
//! | `sy:{shard}:rooms:ended` | zset score expiry (Unix s, Redis's clock) | the shard's ended rooms, until their record expired and the sweep dropped them from `rooms` |
//! | `sy:{shard}:name:<name>` | string | room_id of the live room with that name |
//! | `sy:{shard}:sess:<session_id>` | hash `seq`, `json` | the session |
//! | `sy:{shard}:sessions` | zset score created_at µs | the shard's live sessions of the app |
//! | `sy:{shard}:in:<session_id>` | string | room_id the session is in (in the room's shard) |
//! | `sy:{shard}:outbox` | stream, field `event` (JSON) | domain events for webhooks, of the shard's rooms |
//! | `sy:{shard}:outbox:appended` | Pub/Sub channel (not a key) | published after each batch of appends to the shard's outbox (wakes the outbox's readers; on a cluster a sharded `SPUBLISH`: the channel's slot is the outbox's) |
//! | `sy:{shard}:cd:<key>` | string with PX | a cooldown |
//! | `sy:{shard}:cmd:<key>` | string with EX | a remembered command answer |
//! | `sy:{app}:wh:pos` | string | the webhook dispatcher's outbox position (a stream id per shard) |
//! | `sy:{app}:wh:acked` | set of entry ids | entries delivered ahead of the position |
//! | `sy:{app}:lease:<name>` | string with PX | who holds a lease (`webhooks`: the app's dispatcher) |
//! | `sy:{app}:lease:<name>:gen` | string (integer) | the lease's generation, its fencing token: one more each time a holder that did not hold it takes it; the webhook writes refuse another |
//! | `sy:{app}:wh:log` | stream, field `attempt` (JSON), capped | the delivery log, one entry per attempt |
//! | `sy:{app}:wh:dead` | list of JSON `DeadLetter` | undeliverable webhooks, oldest first |
//! | `sy:roomapp:<room_id>` | string | the room's app (global, write-once) |
//! | `sy:sessapp:<session_id>` | string | the session's app (global, write-once) |
//! | `sy:ref:<uuid>` | string `app room_id` | the room of a conferencecall or recording id (global, write-once) |
//! | `sy:layout:shards` | string | the shard count the data is laid out with (global; none: 1) |
//! | `sy:timeouts` | zset `app room_id`, score due µs | rooms to end at their timeout (global; a claim pushes the score out by a lease) |
//! | `sy:node:<prefix>:rooms` | set of `app room_id` | live rooms on a node (global) |
//! | `sy:node:<prefix>:sessions` | set of `app session_id` | live sessions on a node (global) |
//! | `sy:fleet:instances` | zset of instance ids, score expiry ms (Redis's clock) | live controller instances (global, [`super::fleet`]) |
//! | `sy:fleet:node:<prefix>` | string with PX | the instance applying the node's events (global, [`super::fleet`]) |

use crate::conference::{AppId, NodePrefix, RoomId, SessionId};

pub fn room(tag: &str, id: &RoomId) -> String {
    format!("sy:{{{tag}}}:room:{id}")
}

/// The room id in a room record's key ([`room`]), if `key` is one.
pub fn room_id_of(key: &str) -> Option<&str> {
    let (_, id) = key.strip_prefix("sy:{")?.split_once("}:room:")?;
    Some(id)
}

/// The room's notice key: the key Redis tracks for the process that keeps the room, which
/// its own writes of the room leave alone and every other writer sets (`lua/save_room.lua`).
pub fn room_notice(tag: &str, id: &RoomId) -> String {
    format!("sy:{{{tag}}}:notice:{id}")
}

/// The room key a notice key ([`room_notice`]) stands for, if `key` is one.
pub fn room_of_notice(key: &str) -> Option<String> {
    let (tag, id) = key.strip_prefix("sy:{")?.split_once("}:notice:")?;
    Some(format!("sy:{{{tag}}}:room:{id}"))
}

pub fn rooms(tag: &str) -> String {
    format!("sy:{{{tag}}}:rooms")
}

/// The shard's rooms that have not ended, by creation time: what live listings page through
/// (the full index also holds the ended rooms of the retention, often far more).
pub fn live_rooms(tag: &str) -> String {
    format!("sy:{{{tag}}}:rooms:live")
}

/// The shard's live rooms that record or carry a live stream ([`crate::conference::Room::has_media`]),
/// by creation time: what the streams' takeover look and the recording and stream quotas page
/// through, instead of every live room.
pub fn media_rooms(tag: &str) -> String {
    format!("sy:{{{tag}}}:rooms:media")
}

/// The shard's ended rooms by when their record expires: the sweep's work list
/// (`redis/sweep.rs`), so the listing index does not keep every room ever made.
pub fn rooms_ended(tag: &str) -> String {
    format!("sy:{{{tag}}}:rooms:ended")
}

pub fn name(tag: &str, name: &str) -> String {
    format!("sy:{{{tag}}}:name:{name}")
}

pub fn session(tag: &str, id: &SessionId) -> String {
    format!("sy:{{{tag}}}:sess:{id}")
}

pub fn sessions(tag: &str) -> String {
    format!("sy:{{{tag}}}:sessions")
}

pub fn session_room(tag: &str, id: &SessionId) -> String {
    format!("sy:{{{tag}}}:in:{id}")
}

pub fn outbox(tag: &str) -> String {
    format!("sy:{{{tag}}}:outbox")
}

/// The channel an append to the app's outbox is announced on: the stream's name and
/// `:appended` (the scripts derive it from the stream key they are given).
pub fn appended(tag: &str) -> String {
    format!("sy:{{{tag}}}:outbox:appended")
}

/// The shard's tag of an [`appended`] channel.
pub fn appended_tag(channel: &str) -> Option<&str> {
    channel
        .strip_prefix("sy:{")?
        .strip_suffix("}:outbox:appended")
}

/// The app an [`appended`] channel belongs to (whichever shard's).
pub fn appended_app(channel: &str) -> Option<&str> {
    let tag = appended_tag(channel)?;
    Some(tag.split_once('#').map_or(tag, |(app, _)| app))
}

/// The app an [`outbox`] key belongs to (whichever shard's).
pub fn outbox_app(key: &str) -> Option<&str> {
    let tag = key.strip_prefix("sy:{")?.strip_suffix("}:outbox")?;
    Some(tag.split_once('#').map_or(tag, |(app, _)| app))
}

pub fn cooldown(tag: &str, key: &str) -> String {
    format!("sy:{{{tag}}}:cd:{key}")
}

pub fn command(tag: &str, key: &str) -> String {
    format!("sy:{{{tag}}}:cmd:{key}")
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

/// The number of shards the data is laid out with (`redis/layout.rs`).
pub const LAYOUT_SHARDS: &str = "sy:layout:shards";

/// Recordings with a copy to make in the object store: `"<app> <room> <recording>"`.
pub const UPLOADS: &str = "sy:uploads";

/// Recordings to delete when their retention ends: `"<app> <room> <recording>"` scored by when.
pub const RECORDING_EXPIRY: &str = "sy:recordings:expiry";

/// The nodes being drained: prefix → JSON `Drain`.
pub const DRAINING: &str = "sy:nodes:draining";

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

/// The generation of the lease `name` (its fencing token), beside the lease in its slot.
pub fn lease_generation(app: &AppId, name: &str) -> String {
    format!("sy:{{{app}}}:lease:{name}:gen")
}

pub fn webhook_log(app: &AppId) -> String {
    format!("sy:{{{app}}}:wh:log")
}

pub fn webhook_dead(app: &AppId) -> String {
    format!("sy:{{{app}}}:wh:dead")
}
