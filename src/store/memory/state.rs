//! The memory store's state behind its lock, and the steps every write takes under it: a room
//! change with its index changes, the outbox appends, a page of an index.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt::Write;
use std::time::Instant;

use super::super::bell::Bells;
use super::super::{DeadLetter, DeliveryAttempt, IndexDelta, Page};
use crate::conference::{AppId, DomainEvent, Micros, Room, RoomId, Session, SessionId};

#[derive(Default)]
pub(super) struct Inner {
    pub(super) rooms: HashMap<RoomId, Room>,
    pub(super) room_app: HashMap<RoomId, AppId>,
    pub(super) rooms_by_app: HashMap<AppId, BTreeSet<(Micros, String)>>,
    /// The rooms of `rooms_by_app` that have not ended.
    pub(super) live_by_app: HashMap<AppId, BTreeSet<(Micros, String)>>,
    pub(super) names: HashMap<(AppId, String), RoomId>,
    pub(super) sessions: HashMap<SessionId, Session>,
    pub(super) sessions_by_app: HashMap<AppId, BTreeSet<(Micros, String)>>,
    pub(super) session_room: HashMap<SessionId, RoomId>,
    pub(super) cooldowns: HashMap<(AppId, String), Instant>,
    pub(super) remembered: HashMap<(AppId, String), (String, Instant)>,
    pub(super) outbox: HashMap<AppId, Vec<(String, DomainEvent)>>,
    pub(super) next_event: u64,
    pub(super) last_ms: u64,
    pub(super) next_in_ms: u64,
    pub(super) outbox_position: HashMap<AppId, String>,
    pub(super) outbox_acked: HashMap<AppId, BTreeSet<String>>,
    pub(super) dead_letters: HashMap<AppId, VecDeque<DeadLetter>>,
    pub(super) refs: HashMap<uuid::Uuid, (AppId, RoomId)>,
    pub(super) delivery_log: HashMap<AppId, VecDeque<(String, DeliveryAttempt)>>,
    pub(super) leases: HashMap<(AppId, String), (String, Instant)>,
    pub(super) timeouts: HashMap<(AppId, RoomId), Micros>,
    /// Recordings with a copy to make in the object store.
    pub(super) uploads: std::collections::BTreeSet<(AppId, RoomId, uuid::Uuid)>,
    /// Recordings to delete, and when.
    pub(super) recording_expiry: HashMap<(AppId, RoomId, uuid::Uuid), Micros>,
    pub(super) draining:
        std::collections::BTreeMap<crate::conference::NodePrefix, super::super::Drain>,
    /// Rung on every append, for the outbox's readers.
    pub(super) bells: Bells,
}

impl Inner {
    /// A page of the app's rooms by creation time; `live`: only those not ended.
    pub(super) fn room_page(
        &self,
        live: bool,
        app: &AppId,
        after: Option<(Micros, String)>,
        limit: usize,
    ) -> Page<Room> {
        let index = match live {
            true => &self.live_by_app,
            false => &self.rooms_by_app,
        };
        page(index.get(app), after, limit, |id| {
            RoomId::parse(id)
                .ok()
                .and_then(|id| self.rooms.get(&id).cloned())
        })
    }

    /// Updates the indexes for a write of room `id` of `app`; `name` is the room's unique name
    /// when the delta releases it.
    pub(super) fn apply_delta(
        &mut self,
        app: &AppId,
        id: &RoomId,
        name: Option<String>,
        delta: IndexDelta,
    ) {
        for r in &delta.add_refs {
            self.refs.insert(*r, (app.clone(), id.clone()));
        }
        for r in &delta.drop_refs {
            self.refs.remove(r);
        }
        if let Some(at) = delta.ends_at {
            self.timeouts.insert((app.clone(), id.clone()), at);
        }
        if delta.release {
            self.timeouts.remove(&(app.clone(), id.clone()));
            // The room's creation time never changes: the stored version's is the one indexed.
            if let (Some(live), Some(room)) = (self.live_by_app.get_mut(app), self.rooms.get(id)) {
                live.remove(&(room.created_at, id.to_string()));
            }
        }
        for session in &delta.remove_sessions {
            if self.session_room.get(session) == Some(id) {
                self.session_room.remove(session);
            }
        }
        for session in delta.add_sessions {
            self.session_room.insert(session, id.clone());
        }
        if let Some(name) = name {
            let key = (app.clone(), name);
            if self.names.get(&key) == Some(id) {
                self.names.remove(&key);
            }
        }
    }

    /// Appends with ids like a Redis stream's, `<ms>-<n>`, increasing.
    pub(super) fn append(&mut self, events: impl IntoIterator<Item = DomainEvent>) {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let mut rung: Option<AppId> = None;
        for event in events {
            // Events come grouped by app (one room's): ring each app once.
            if rung.as_ref() != Some(&event.app) {
                self.bells.ring(&event.app);
                rung = Some(event.app.clone());
            }
            if ms > self.last_ms {
                self.last_ms = ms;
                self.next_in_ms = 0;
            } else {
                self.next_in_ms += 1;
            }
            let mut id = String::with_capacity(24);
            let _ = write!(id, "{}-{}", self.last_ms, self.next_in_ms);
            match self.outbox.get_mut(&event.app) {
                Some(entries) => entries.push((id, event)),
                None => {
                    self.outbox.insert(event.app.clone(), vec![(id, event)]);
                }
            }
        }
    }

    /// One atomic room change under the lock: `change` works on a copy of the stored room, which
    /// replaces it (with its index changes and events) only if `change` succeeded and the room
    /// differs; the stored room is never seen half-changed, even if `change` panics. `keep` makes
    /// what is handed back of the resulting room (a copy, or nothing).
    pub(super) fn change_room<T, E, R>(
        &mut self,
        app: &AppId,
        id: &RoomId,
        keep: impl FnOnce(&Room) -> R,
        change: impl FnOnce(&mut Room) -> Result<(T, Vec<DomainEvent>), E>,
    ) -> Option<Result<(R, T), E>> {
        let stored = self.rooms.get_mut(id).filter(|r| &r.app == app)?;
        let mut new = stored.clone();
        let (value, events) = match change(&mut new) {
            Ok(v) => v,
            Err(e) => return Some(Err(e)),
        };
        // Every domain change moves `seq`; the full comparison is for changes that did not.
        if new.seq == stored.seq && new == *stored {
            return Some(Ok((keep(&new), value)));
        }
        let delta = IndexDelta::between(stored, &new);
        let name = delta.release.then(|| crate::store::unique_name(&new));
        let kept = keep(&new);
        *stored = new;
        self.apply_delta(app, id, name, delta);
        self.append(events);
        Some(Ok((kept, value)))
    }
}

pub(super) fn page<T: Clone>(
    index: Option<&BTreeSet<(Micros, String)>>,
    after: Option<(Micros, String)>,
    limit: usize,
    get: impl Fn(&str) -> Option<T>,
) -> Page<T> {
    let Some(index) = index else {
        return Page {
            items: Vec::new(),
            next: None,
        };
    };
    let start = match &after {
        Some(a) => std::ops::Bound::Excluded(a.clone()),
        None => std::ops::Bound::Unbounded,
    };
    let keys: Vec<(Micros, String)> = index
        .range((start, std::ops::Bound::Unbounded))
        .take(limit + 1)
        .cloned()
        .collect();
    let more = keys.len() > limit;
    let keys = &keys[..keys.len().min(limit)];
    Page {
        items: keys.iter().filter_map(|(_, id)| get(id)).collect(),
        next: if more { keys.last().cloned() } else { None },
    }
}
