//! One app's keys over several hash tags, so that on a Redis Cluster one app's rooms spread over
//! several masters (the layout is explained in [`crate::store::keys`]).
//!
//! Shard 0 of an app is tagged `{app}`, as every key was before shards existed, so a store
//! that goes on with one shard reads its data as it was. Shard k ≥ 1 is tagged `{app#j}`, with
//! `j` the first number whose tag's cluster slot lies in the k-th of `n` equal ranges of the
//! slot space counted from shard 0's range: `redis-cli --cluster create` gives each master one
//! equal, contiguous range, so `n` shards over `n` masters put one shard on each (and `n` a
//! multiple of the masters spreads them evenly). `#` is not in an app id, so no two apps'
//! tags can meet.
//!
//! A room's shard follows from its id (a hash of the id's uuid), so it is found without a
//! lookup; a named room's id is drawn so that it lands in its name's shard, where its
//! name's uniqueness is kept in the same atomic script as the room. A session's shard follows
//! from its id. The number of shards is part of the data's layout: change it only with no live
//! rooms (see docs/operations.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use crate::conference::{AppId, RoomId, SessionId};

/// The slots of a Redis Cluster.
const SLOTS: u32 = 16384;

pub(crate) struct Shards {
    n: usize,
    /// Each app's tags, shard by shard (computed once).
    tags: Mutex<HashMap<AppId, Arc<[String]>>>,
}

impl Shards {
    /// `n` shards per app (at least one).
    pub(crate) fn new(n: usize) -> Shards {
        Shards {
            n: n.max(1),
            tags: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.n
    }

    /// The hash tags of the app's shards, shard 0 first.
    pub(crate) fn tags(&self, app: &AppId) -> Arc<[String]> {
        let mut cache = self.tags.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tags) = cache.get(app) {
            return tags.clone();
        }
        let tags: Arc<[String]> = spread_tags(app.as_str(), self.n).into();
        cache.insert(app.clone(), tags.clone());
        tags
    }

    /// The tag of shard `k` of the app.
    pub(crate) fn tag(&self, app: &AppId, k: usize) -> String {
        if self.n == 1 {
            return app.as_str().to_owned();
        }
        self.tags(app)[k % self.n].clone()
    }

    /// The shard that holds the room.
    pub(crate) fn of_room(&self, id: &RoomId) -> usize {
        self.bucket(room_uuid_part(id.as_str()).as_bytes())
    }

    /// The shard that holds the session.
    pub(crate) fn of_session(&self, id: &SessionId) -> usize {
        self.bucket(id.as_str().as_bytes())
    }

    /// The shard a named room must be in (where its name is claimed).
    pub(crate) fn of_name(&self, name: &str) -> usize {
        self.bucket(name.as_bytes())
    }

    pub(crate) fn room_tag(&self, app: &AppId, id: &RoomId) -> String {
        self.tag(app, self.of_room(id))
    }

    pub(crate) fn session_tag(&self, app: &AppId, id: &SessionId) -> String {
        self.tag(app, self.of_session(id))
    }

    /// The tag of an arbitrary key of the app (a cooldown, a remembered command): spread too.
    pub(crate) fn key_tag(&self, app: &AppId, key: &str) -> String {
        self.tag(app, self.bucket(key.as_bytes()))
    }

    /// A uuid for a new room named `name`: random, drawn again until the room's shard is the
    /// name's (one draw in `n` on average), so the name's claim and the room share a slot.
    pub(crate) fn room_uuid(&self, name: &str) -> Uuid {
        if self.n == 1 || name.is_empty() {
            return Uuid::new_v4();
        }
        let want = self.bucket(name.as_bytes());
        loop {
            let uuid = Uuid::new_v4();
            let text = uuid.hyphenated().to_string();
            if self.bucket(text.as_bytes()) == want {
                return uuid;
            }
        }
    }

    fn bucket(&self, bytes: &[u8]) -> usize {
        if self.n == 1 {
            return 0;
        }
        (fnv1a(bytes) % self.n as u64) as usize
    }
}

/// The uuid of a room id (`prefix-room-uuid`): what its shard is drawn from, so that the
/// uuid alone (before the node is chosen) decides it.
fn room_uuid_part(id: &str) -> &str {
    id.rsplit_once("-room-").map_or(id, |(_, uuid)| uuid)
}

/// FNV-1a, 64 bits: a fixed hash, the same in every process and version (std's is neither).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The tags of `n` shards of `app`: `app` first, then for each next shard the first `app#j`
/// whose slot is in that shard's range.
fn spread_tags(app: &str, n: usize) -> Vec<String> {
    let n32 = n as u32;
    let range = |tag: &str| slot(tag) * n32 / SLOTS;
    let first = range(app);
    let mut tags = vec![app.to_owned()];
    let mut j = 1u32;
    for k in 1..n32 {
        let want = (first + k) % n32;
        loop {
            let tag = format!("{app}#{j}");
            j += 1;
            if range(&tag) == want {
                tags.push(tag);
                break;
            }
        }
    }
    tags
}

/// The Redis Cluster slot of a hash tag's content: CRC16 (XMODEM) mod 16384.
pub(crate) fn slot(tag: &str) -> u32 {
    let mut crc: u16 = 0;
    for &b in tag.as_bytes() {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    u32::from(crc) % SLOTS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_redis_cluster_slots() {
        // From the Redis Cluster specification's examples (CLUSTER KEYSLOT).
        assert_eq!(slot("123456789"), 0x31C3 % SLOTS);
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("bar"), 5061);
    }

    #[test]
    fn one_shard_is_the_app_tag() {
        let shards = Shards::new(1);
        let app = AppId::parse("app1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&*shards.tags(&app), &["app1".to_owned()]);
        assert_eq!(shards.key_tag(&app, "anything"), "app1");
    }

    #[test]
    fn shards_spread_over_the_slot_ranges() {
        for n in [2usize, 3, 6] {
            let shards = Shards::new(n);
            let app = AppId::parse("some-app").unwrap_or_else(|e| panic!("{e}"));
            let tags = shards.tags(&app);
            assert_eq!(tags[0], "some-app");
            let mut ranges: Vec<u32> = tags.iter().map(|t| slot(t) * n as u32 / SLOTS).collect();
            ranges.sort_unstable();
            ranges.dedup();
            assert_eq!(ranges.len(), n, "{tags:?}");
        }
    }

    #[test]
    fn a_named_room_lands_in_its_names_shard() {
        let shards = Shards::new(4);
        for name in ["alpha", "beta", "gamma", "delta", "ε"] {
            let uuid = shards.room_uuid(name);
            let id = format!("abcde-room-{}", uuid.hyphenated());
            assert_eq!(
                shards.bucket(room_uuid_part(&id).as_bytes()),
                shards.bucket(name.as_bytes())
            );
        }
    }
}
