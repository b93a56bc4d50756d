//! Rooms read from Redis, kept in this process and invalidated by Redis itself
//! (server-assisted client-side caching, `CLIENT TRACKING ON OPTOUT NOLOOP` on a RESP3
//! connection).
//!
//! Reads and writes of room records go through one tracked connection. Redis remembers the keys
//! every command on it reads (OPTOUT: no `CLIENT CACHING` round before a read) and pushes an
//! `invalidate` message when anybody else changes one (another controller, an expiry, a
//! flush); the connection's reader hands each push to [`Entries::invalidate`] synchronously,
//! before any later reply, so a reply is never taken for current after the push that outdated
//! it. Our own writes (NOLOOP: Redis sends us no push for them, and forgets that we track the
//! key) store the room we wrote. A script that reads has Redis track every key it *declares*
//! (checked on redis 7.0), so the room scripts declare one key: the room's *notice key* for a
//! room this process keeps, which the script reads and leaves alone while every other writer
//! sets it (`store/lua/save_room.lua`), so Redis goes on tracking the room for us through it
//! with no read after the write; else the room itself, which the script reads and then writes,
//! so its write leaves nothing tracked. Nothing else is: not the outbox, nor the session and
//! name lookups a write checks (one checked when already gone would stay in Redis's tracking
//! table for good). A push for a notice key is a push for its room.
//!
//! Races are settled with tokens: before a read the key holds `Pending(token)`, before this
//! process's own write `Writing(token)`; a push removes whatever the key holds; the answer is
//! kept only if the key still holds that token. A read begun while an own write is in flight is
//! answered but not kept: tasks on other threads reach the connection in any order, so it may be
//! sent before the write and find the version before it, and no push would ever say so (NOLOOP).
//! The write's answer settles the key.
//! A lost connection forgets everything (Redis forgot what we track), and the next operation
//! connects again.
//!
//! On a Redis Cluster, Redis tracks keys per server, so there is one tracked connection per
//! master, and each key's reads and writes go to the master of its slot ([`masters`]: the slot
//! map, asked of the cluster at the start and again when a master is lost or answers `MOVED`,
//! which also forgets everything). The entries are shared: a key lives on one master at a time,
//! and a slot that moves away is deleted there, which pushes its invalidations.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use redis::{PushInfo, PushKind, Value};

mod masters;
mod tracked;
mod values;

pub use tracked::{FindMaster, Tracked};

use crate::conference::{Member, NodePrefix, Room};

/// Past participations as a version of a room record's `past` field holds them
/// (`store/redis/room_record.rs`): a version is never written with other contents, so a list
/// kept under it needs no second reading.
pub type KnownPast = (u64, Arc<Vec<Member>>);

/// How many rooms one controller keeps by default.
pub const DEFAULT_CAPACITY: usize = 16_384;

enum Slot {
    /// A read is in flight; its answer may be kept if the key still holds this token.
    Pending(u64),
    /// This process's write is in flight; its answer may be kept if the key still holds this
    /// token. Reads begun meanwhile leave it in place (see the module's comment).
    Writing(u64),
    /// Tracked: Redis tells us when it changes. Shared, so a reader copies it after letting go
    /// of the lock. With the version of the record's `past` field if it holds the room's past
    /// participations as they are here (see [`Entries::past_saved`]).
    Ready(Arc<Room>, Option<u64>),
    /// Changed elsewhere since (an invalidation): no answer and no base, but its past
    /// participations under their version, which the next read uses instead of parsing the
    /// field again when the version is still the record's ([`Entries::known_past`]).
    Stale(KnownPast),
}

/// The token of a read that is answered but not kept (tokens handed out start at 1).
const NOT_KEPT: u64 = 0;

/// What a command on the tracked connection does to the keys it names: a read begun while this
/// process writes the key is answered but not kept (see the module's comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

#[derive(Default)]
struct State {
    slots: HashMap<String, Slot>,
    /// Small values read on the same connection (a session's record, its room lookup):
    /// [`values`].
    values: HashMap<String, values::Kept>,
    next_token: u64,
}

impl State {
    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }
}

/// What the tracked connection tells beyond the rooms it keeps: the outbox bells follow it
/// (`store/redis/outbox_bells.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracking<'a> {
    /// Redis says this key changed (it was read on this connection).
    Changed(&'a str),
    /// Every key may have changed (the database was flushed).
    Everything,
    /// A connection is up, with tracking on: changes are heard from now on.
    Connected,
    /// The connection is lost: changes go unheard until one is up again.
    Lost,
}

/// Told every [`Tracking`] news, synchronously, from the connection's reader.
pub type Watcher = Arc<dyn Fn(Tracking<'_>) + Send + Sync>;

/// Told the key of each room kept here that another process changed, and the node the room was
/// on as last kept (`None`: being read or written here then), synchronously, from the
/// connection's reader ([`Entries::on_changed`]).
pub type ChangedRooms = Arc<dyn Fn(&str, Option<&NodePrefix>) + Send + Sync>;

/// The cached rooms, shared by the store and the connection's push handler.
#[derive(Clone)]
pub struct Entries {
    state: Arc<Mutex<State>>,
    capacity: usize,
    /// Set once, by the store whose bells follow the connection.
    watcher: Arc<OnceLock<Watcher>>,
    /// Set once, by the store told of rooms changed elsewhere.
    changed: Arc<OnceLock<ChangedRooms>>,
}

impl Entries {
    pub fn new(capacity: usize) -> Entries {
        Entries {
            state: Arc::default(),
            capacity,
            watcher: Arc::default(),
            changed: Arc::default(),
        }
    }

    /// Tells `changed` from now on of each room kept here (read, or written and read back)
    /// that another process changes: the first one set (a later one changes nothing).
    pub fn on_changed(&self, changed: ChangedRooms) {
        let _ = self.changed.set(changed);
    }

    /// Tells `watcher` from now on what the connection hears ([`Tracking`]): one watcher per
    /// cache, the first (a later one changes nothing).
    pub fn watch(&self, watcher: Watcher) {
        let _ = self.watcher.set(watcher);
    }

    /// Tells the watcher, if any.
    pub(super) fn notify(&self, news: Tracking<'_>) {
        if let Some(w) = self.watcher.get() {
            w(news);
        }
    }

    /// The connection was lost: everything goes (Redis forgot what we track), and the watcher
    /// is told.
    pub(super) fn lost(&self) {
        self.clear();
        self.notify(Tracking::Lost);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The room, if this process holds its current version.
    pub fn get(&self, key: &str) -> Option<Room> {
        let room = match self.lock().slots.get(key) {
            Some(Slot::Ready(room, _)) => Arc::clone(room),
            _ => return None,
        };
        Some(Room::clone(&room))
    }

    /// The version of the room this process last read or wrote, to change and write back
    /// guarded by its `seq`.
    pub fn base(&self, key: &str) -> Option<Arc<Room>> {
        match self.lock().slots.get(key) {
            Some(Slot::Ready(room, _)) => Some(Arc::clone(room)),
            _ => None,
        }
    }

    /// The version of the `past` field of the room at `key`, as stored at `seq`, if it holds
    /// exactly the past participations of the version kept here: then a write that does not
    /// change them need not send them. Unknown (not kept, or kept at another `seq`): `None`.
    pub fn past_saved(&self, key: &str, seq: u64) -> Option<u64> {
        match self.lock().slots.get(key) {
            Some(Slot::Ready(room, saved)) if room.seq == seq => *saved,
            _ => None,
        }
    }

    /// The past participations kept for `key` under the version of the `past` field that holds
    /// them, current or not.
    pub fn known_past(&self, key: &str) -> Option<KnownPast> {
        match self.lock().slots.get(key)? {
            Slot::Ready(room, Some(v)) => Some((*v, Arc::clone(&room.past_members))),
            Slot::Stale(known) => Some(known.clone()),
            _ => None,
        }
    }

    /// Marks `key` as being read or written by this process (before the command is sent);
    /// returns the token that [`Entries::fill`] needs, one that keeps nothing for a read while
    /// this process writes the key.
    pub fn begin(&self, key: &str, access: Access) -> u64 {
        let mut state = self.lock();
        let slot = match access {
            Access::Read if matches!(state.slots.get(key), Some(Slot::Writing(_))) => {
                return NOT_KEPT;
            }
            Access::Read => Slot::Pending,
            Access::Write => Slot::Writing,
        };
        let token = state.token();
        make_room(&mut state.slots, self.capacity, key);
        state.slots.insert(key.to_owned(), slot(token));
        token
    }

    /// Keeps `room` as the current version of `key` if nothing changed it since `begin`;
    /// `past_saved`: see [`Entries::past_saved`].
    pub fn fill(&self, key: &str, token: u64, room: Arc<Room>, past_saved: Option<u64>) {
        self.settle(key, token, Slot::Ready(room, past_saved));
    }

    fn settle(&self, key: &str, token: u64, settled: Slot) {
        let mut state = self.lock();
        if let Some(slot) = state.slots.get_mut(key)
            && matches!(slot, Slot::Pending(t) | Slot::Writing(t) if *t == token)
        {
            *slot = settled;
        }
    }

    /// This process's write of `key` is answered but Redis does not track the key for it (no
    /// read after the write): nothing current is kept, only `past`, the past participations
    /// under the version of the record's field that holds them, if nothing changed the key
    /// since `begin`.
    pub fn untracked(&self, key: &str, token: u64, past: Option<KnownPast>) {
        match past {
            Some(past) => self.settle(key, token, Slot::Stale(past)),
            None => {
                let mut state = self.lock();
                if matches!(state.slots.get(key), Some(Slot::Writing(t)) if *t == token) {
                    state.slots.remove(key);
                }
            }
        }
    }

    /// Forgets `key` (its read or write failed, or it changed).
    pub fn forget(&self, key: &str) {
        self.lock().slots.remove(key);
    }

    /// Forgets everything (the connection was lost, or Redis was flushed).
    pub fn clear(&self) {
        let mut state = self.lock();
        state.slots.clear();
        state.values.clear();
    }

    /// The rooms kept (not the histories kept of rooms changed elsewhere).
    pub fn len(&self) -> usize {
        let state = self.lock();
        state
            .slots
            .values()
            .filter(|s| !matches!(s, Slot::Stale(_)))
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A push from the tracked connection.
    pub(super) fn on_push(&self, push: &PushInfo) {
        match push.kind {
            PushKind::Invalidate => match push.data.first() {
                Some(Value::Array(keys)) => {
                    let changed = keys.iter().filter_map(|key| match key {
                        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
                        _ => None,
                    });
                    // The rooms among them, with the node each was on, told after the lock is
                    // let go (gathered only when someone is to be told). A room's notice key
                    // stands for the room (`store::keys::room_notice`): what a room this
                    // process writes and keeps is tracked under.
                    let told = self.changed.get();
                    let mut rooms: Vec<(String, Option<NodePrefix>)> = Vec::new();
                    {
                        let mut state = self.lock();
                        for key in changed.clone() {
                            let room = crate::store::keys::room_of_notice(key);
                            let slot_key = room.as_deref().unwrap_or(key);
                            if told.is_some()
                                && let Some(slot) = state.slots.get(slot_key)
                            {
                                let node = match slot {
                                    Slot::Ready(room, _) => Some(room.node.clone()),
                                    _ => None,
                                };
                                rooms.push((slot_key.to_owned(), node));
                            }
                            stale(&mut state.slots, slot_key);
                            state.values.remove(key);
                        }
                    }
                    if let Some(told) = told {
                        for (key, node) in &rooms {
                            told(key, node.as_ref());
                        }
                    }
                    if let Some(w) = self.watcher.get() {
                        changed.for_each(|key| w(Tracking::Changed(key)));
                    }
                }
                // A nil key list: the whole database was flushed.
                _ => {
                    self.clear();
                    self.notify(Tracking::Everything);
                }
            },
            PushKind::Disconnection => self.lost(),
            _ => {}
        }
    }
}

/// What an invalidation leaves of a key: its past participations under their version, if
/// known; nothing else.
fn stale(slots: &mut HashMap<String, Slot>, key: &str) {
    let Some(slot) = slots.get_mut(key) else {
        return;
    };
    match slot {
        Slot::Ready(room, Some(v)) => {
            *slot = Slot::Stale((*v, Arc::clone(&room.past_members)));
        }
        Slot::Stale(_) => {}
        _ => {
            slots.remove(key);
        }
    }
}

/// Before `key` goes into a full map: forgets an eighth of it (whichever come first), not one
/// at a time.
fn make_room<V>(map: &mut HashMap<String, V>, capacity: usize, key: &str) {
    if map.len() >= capacity && !map.contains_key(key) {
        let drop = (capacity / 8).max(1);
        let victims: Vec<String> = map.keys().take(drop).cloned().collect();
        for victim in victims {
            map.remove(&victim);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::conference::{AppId, NodePrefix, RoomId, RoomType};

    fn room(seq: u64) -> Arc<Room> {
        let id = RoomId::new(&NodePrefix::parse("abcde").unwrap(), uuid::Uuid::nil());
        let app = AppId::parse("app-a").unwrap();
        let mut room = Room::new(id, app, "r".into(), RoomType::Conference, "c".into(), 1);
        room.seq = seq;
        Arc::new(room)
    }

    fn served(entries: &Entries) -> Option<u64> {
        entries.get("k").map(|r| r.seq)
    }

    /// This process writes version 2 while one of its reads is sent ahead of the write and
    /// finds version 1. No push follows its own write (NOLOOP), so keeping that read would
    /// serve version 1 until another controller changed the room. Whichever answer is handled
    /// first, the write's is kept. (Before 2026-11-27 a write took a plain read's token: the read
    /// begun after it replaced it, and version 1 stayed.)
    #[test]
    fn a_read_begun_during_this_processs_write_is_answered_but_never_kept() {
        for read_first in [true, false] {
            let entries = Entries::new(16);
            let write = entries.begin("k", Access::Write);
            let read = entries.begin("k", Access::Read);
            assert_eq!(served(&entries), None, "in flight: read from Redis");
            if read_first {
                entries.fill("k", read, room(1), None);
                entries.fill("k", write, room(2), None);
            } else {
                entries.fill("k", write, room(2), None);
                entries.fill("k", read, room(1), None);
            }
            assert_eq!(
                served(&entries),
                Some(2),
                "read answered first: {read_first}"
            );
        }
    }

    /// A read begun before the write may be answered with either version: it is not kept; the
    /// write's answer is. A push (another controller changed the room) drops both.
    #[test]
    fn a_write_settles_its_key_unless_a_push_came_meanwhile() {
        let entries = Entries::new(16);
        let read = entries.begin("k", Access::Read);
        let write = entries.begin("k", Access::Write);
        entries.fill("k", read, room(1), None);
        assert_eq!(served(&entries), None);
        entries.fill("k", write, room(2), None);
        assert_eq!(served(&entries), Some(2));

        let write = entries.begin("k", Access::Write);
        entries.on_push(&invalidate("k"));
        entries.fill("k", write, room(3), None);
        assert_eq!(served(&entries), None, "changed elsewhere meanwhile");
        // Reads go back to being kept once no write is in flight.
        let read = entries.begin("k", Access::Read);
        entries.fill("k", read, room(4), None);
        assert_eq!(served(&entries), Some(4));
    }

    /// The same for the small values a write reads back (a session's room lookup).
    #[test]
    fn a_value_read_during_this_processs_write_never_replaces_its_read_back() {
        let entries = Entries::new(16);
        let written = entries.begin_value("in", Access::Write);
        let read = entries.begin_value("in", Access::Read);
        entries.fill_value("in", read, None);
        entries.fill_value("in", written, Some("room".into()));
        assert_eq!(entries.value("in"), Some(Some("room".into())));
    }

    fn invalidate(key: &str) -> PushInfo {
        PushInfo {
            kind: PushKind::Invalidate,
            data: vec![Value::Array(vec![Value::BulkString(
                key.as_bytes().to_vec(),
            )])],
        }
    }
}
