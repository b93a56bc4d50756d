//! The embedded store: everything in one process, behind one `std::sync::Mutex` that is never
//! held across an `.await`. Same semantics as the Redis store (the conformance suite checks it);
//! state is lost when the process ends.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt::Write;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

mod deliveries;

use super::bell::{Bells, OutboxWatch};
use super::{
    Created, DeadLetter, DeliveryAttempt, IndexDelta, OutboxEntry, Page, Position, Saved, Store,
    StoreError, Updated, outbox_order,
};
use crate::conference::{
    AppId, DomainEvent, Micros, NodePrefix, Room, RoomId, RoomStatus, Session, SessionId,
    SessionState,
};

#[derive(Default)]
struct Inner {
    rooms: HashMap<RoomId, Room>,
    room_app: HashMap<RoomId, AppId>,
    rooms_by_app: HashMap<AppId, BTreeSet<(Micros, String)>>,
    /// The rooms of `rooms_by_app` that have not ended.
    live_by_app: HashMap<AppId, BTreeSet<(Micros, String)>>,
    names: HashMap<(AppId, String), RoomId>,
    sessions: HashMap<SessionId, Session>,
    sessions_by_app: HashMap<AppId, BTreeSet<(Micros, String)>>,
    session_room: HashMap<SessionId, RoomId>,
    cooldowns: HashMap<(AppId, String), Instant>,
    remembered: HashMap<(AppId, String), (String, Instant)>,
    outbox: HashMap<AppId, Vec<(String, DomainEvent)>>,
    next_event: u64,
    last_ms: u64,
    next_in_ms: u64,
    outbox_position: HashMap<AppId, String>,
    outbox_acked: HashMap<AppId, BTreeSet<String>>,
    dead_letters: HashMap<AppId, VecDeque<DeadLetter>>,
    refs: HashMap<uuid::Uuid, (AppId, RoomId)>,
    delivery_log: HashMap<AppId, VecDeque<(String, DeliveryAttempt)>>,
    leases: HashMap<(AppId, String), (String, Instant)>,
    timeouts: HashMap<(AppId, RoomId), Micros>,
    /// Rung on every append, for the outbox's readers.
    bells: Bells,
}

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    fleet: super::fleet::MemoryFleet,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn fleet(&self) -> &super::fleet::MemoryFleet {
        &self.fleet
    }
}

impl Inner {
    /// Updates the indexes for a write of room `id` of `app`; `name` is the room's unique name
    /// when the delta releases it.
    fn apply_delta(&mut self, app: &AppId, id: &RoomId, name: Option<String>, delta: IndexDelta) {
        for r in &delta.add_refs {
            self.refs.insert(*r, (app.clone(), id.clone()));
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
    fn append(&mut self, events: impl IntoIterator<Item = DomainEvent>) {
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
    fn change_room<T, E, R>(
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
        let name = delta.release.then(|| super::unique_name(&new));
        let kept = keep(&new);
        *stored = new;
        self.apply_delta(app, id, name, delta);
        self.append(events);
        Some(Ok((kept, value)))
    }
}

fn page<T: Clone>(
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

impl Store for MemoryStore {
    async fn create_room(
        &self,
        room: &Room,
        events: &[DomainEvent],
    ) -> Result<Created, StoreError> {
        let mut s = self.lock();
        let name_key = (room.app.clone(), super::unique_name(room));
        if let Some(existing) = s.names.get(&name_key) {
            return Ok(Created::NameTaken(existing.clone()));
        }
        s.names.insert(name_key, room.id.clone());
        s.room_app.insert(room.id.clone(), room.app.clone());
        let inner = &mut *s;
        for index in [&mut inner.rooms_by_app, &mut inner.live_by_app] {
            index
                .entry(room.app.clone())
                .or_default()
                .insert((room.created_at, room.id.to_string()));
        }
        s.rooms.insert(room.id.clone(), room.clone());
        s.append(events.iter().cloned());
        Ok(Created::Created)
    }

    async fn room(&self, app: &AppId, id: &RoomId) -> Result<Option<Room>, StoreError> {
        Ok(self.lock().rooms.get(id).filter(|r| &r.app == app).cloned())
    }

    async fn room_app(&self, id: &RoomId) -> Result<Option<AppId>, StoreError> {
        Ok(self.lock().room_app.get(id).cloned())
    }

    async fn save_room(
        &self,
        old: &Room,
        new: &Room,
        events: &[DomainEvent],
    ) -> Result<Saved, StoreError> {
        let mut s = self.lock();
        match s.rooms.get(&new.id) {
            Some(stored) if stored.seq == old.seq => {}
            _ => return Ok(Saved::Conflict),
        }
        let delta = IndexDelta::between(old, new);
        let name = delta.release.then(|| super::unique_name(new));
        s.apply_delta(&new.app, &new.id, name, delta);
        s.rooms.insert(new.id.clone(), new.clone());
        s.append(events.iter().cloned());
        Ok(Saved::Saved)
    }

    async fn change_room<T, E, F>(&self, app: &AppId, id: &RoomId, change: F) -> Updated<T, E>
    where
        T: Send,
        E: Send,
        F: FnMut(&mut Room) -> Result<(T, Vec<DomainEvent>), E> + Send,
    {
        Ok(self.lock().change_room(app, id, Room::clone, change))
    }

    async fn change_room_value<T, E, F>(
        &self,
        app: &AppId,
        id: &RoomId,
        change: F,
    ) -> Result<Option<Result<T, E>>, StoreError>
    where
        T: Send,
        E: Send,
        F: FnMut(&mut Room) -> Result<(T, Vec<DomainEvent>), E> + Send,
    {
        let changed = self.lock().change_room(app, id, |_| (), change);
        Ok(changed.map(|r| r.map(|((), value)| value)))
    }

    async fn ref_owner(&self, id: uuid::Uuid) -> Result<Option<(AppId, RoomId)>, StoreError> {
        Ok(self.lock().refs.get(&id).cloned())
    }

    async fn schedule_timeout(
        &self,
        app: &AppId,
        id: &RoomId,
        at: Micros,
    ) -> Result<(), StoreError> {
        self.lock().timeouts.insert((app.clone(), id.clone()), at);
        Ok(())
    }

    async fn claim_timeouts(
        &self,
        now: Micros,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<(AppId, RoomId)>, StoreError> {
        let lease_end = now.saturating_add(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX));
        let mut s = self.lock();
        let mut due: Vec<(Micros, (AppId, RoomId))> = s
            .timeouts
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, at)| (*at, k.clone()))
            .collect();
        due.sort();
        due.truncate(limit);
        for (_, key) in &due {
            s.timeouts.insert(key.clone(), lease_end);
        }
        Ok(due.into_iter().map(|(_, k)| k).collect())
    }

    async fn clear_timeout(&self, app: &AppId, id: &RoomId) -> Result<(), StoreError> {
        self.lock().timeouts.remove(&(app.clone(), id.clone()));
        Ok(())
    }

    async fn rooms_of_app(
        &self,
        app: &AppId,
        after: Option<(Micros, String)>,
        limit: usize,
    ) -> Result<Page<Room>, StoreError> {
        let s = self.lock();
        Ok(page(s.rooms_by_app.get(app), after, limit, |id| {
            RoomId::parse(id)
                .ok()
                .and_then(|id| s.rooms.get(&id).cloned())
        }))
    }

    async fn live_rooms_of_app(
        &self,
        app: &AppId,
        after: Option<(Micros, String)>,
        limit: usize,
    ) -> Result<Page<Room>, StoreError> {
        let s = self.lock();
        Ok(page(s.live_by_app.get(app), after, limit, |id| {
            RoomId::parse(id)
                .ok()
                .and_then(|id| s.rooms.get(&id).cloned())
        }))
    }

    async fn rooms_on_node(&self, node: &NodePrefix) -> Result<Vec<(AppId, RoomId)>, StoreError> {
        let s = self.lock();
        let mut rooms: Vec<(AppId, RoomId)> = s
            .rooms
            .values()
            .filter(|r| &r.node == node && r.status != RoomStatus::Terminated)
            .map(|r| (r.app.clone(), r.id.clone()))
            .collect();
        rooms.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(rooms)
    }

    async fn node_room_count(&self, node: &NodePrefix) -> Result<usize, StoreError> {
        Ok(self
            .lock()
            .rooms
            .values()
            .filter(|r| &r.node == node && r.status != RoomStatus::Terminated)
            .count())
    }

    async fn session(&self, app: &AppId, id: &SessionId) -> Result<Option<Session>, StoreError> {
        Ok(self
            .lock()
            .sessions
            .get(id)
            .filter(|s| &s.app == app)
            .cloned())
    }

    async fn session_app(&self, id: &SessionId) -> Result<Option<AppId>, StoreError> {
        Ok(self.lock().sessions.get(id).map(|s| s.app.clone()))
    }

    async fn save_session(&self, session: &Session) -> Result<(), StoreError> {
        let mut s = self.lock();
        if s.sessions
            .get(&session.id)
            .is_some_and(|old| old.seq >= session.seq)
        {
            return Ok(());
        }
        let key = (session.created_at, session.id.to_string());
        let index = s.sessions_by_app.entry(session.app.clone()).or_default();
        if session.state == SessionState::Ended {
            index.remove(&key);
        } else {
            index.insert(key);
        }
        s.sessions.insert(session.id.clone(), session.clone());
        Ok(())
    }

    async fn sessions_of_app(
        &self,
        app: &AppId,
        after: Option<(Micros, String)>,
        limit: usize,
    ) -> Result<Page<Session>, StoreError> {
        let s = self.lock();
        Ok(page(s.sessions_by_app.get(app), after, limit, |id| {
            SessionId::parse(id)
                .ok()
                .and_then(|id| s.sessions.get(&id).cloned())
        }))
    }

    async fn sessions_on_node(&self, node: &NodePrefix) -> Result<Vec<Session>, StoreError> {
        let s = self.lock();
        let mut out: Vec<Session> = s
            .sessions
            .values()
            .filter(|x| &x.id.prefix() == node && x.state != SessionState::Ended)
            .cloned()
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn room_of_session(
        &self,
        app: &AppId,
        id: &SessionId,
    ) -> Result<Option<RoomId>, StoreError> {
        let s = self.lock();
        Ok(s.session_room
            .get(id)
            .filter(|r| s.room_app.get(*r) == Some(app))
            .cloned())
    }

    async fn take_cooldown(
        &self,
        app: &AppId,
        key: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut s = self.lock();
        let now = Instant::now();
        let slot = (app.clone(), key.to_owned());
        if s.cooldowns.get(&slot).is_some_and(|until| *until > now) {
            return Ok(false);
        }
        s.cooldowns.retain(|_, until| *until > now);
        s.cooldowns.insert(slot, now + ttl);
        Ok(true)
    }

    async fn cooldown_left(&self, app: &AppId, key: &str) -> Result<Option<Duration>, StoreError> {
        let s = self.lock();
        let now = Instant::now();
        Ok(s.cooldowns
            .get(&(app.clone(), key.to_owned()))
            .filter(|until| **until > now)
            .map(|until| *until - now))
    }

    async fn recall(&self, app: &AppId, key: &str) -> Result<Option<String>, StoreError> {
        let s = self.lock();
        let now = Instant::now();
        Ok(s.remembered
            .get(&(app.clone(), key.to_owned()))
            .filter(|(_, until)| *until > now)
            .map(|(answer, _)| answer.clone()))
    }

    async fn remember(
        &self,
        app: &AppId,
        key: &str,
        answer: &str,
        ttl: Duration,
    ) -> Result<Option<String>, StoreError> {
        let mut s = self.lock();
        let now = Instant::now();
        let slot = (app.clone(), key.to_owned());
        if let Some((earlier, until)) = s.remembered.get(&slot)
            && *until > now
        {
            return Ok(Some(earlier.clone()));
        }
        s.remembered.retain(|_, (_, until)| *until > now);
        s.remembered.insert(slot, (answer.to_owned(), now + ttl));
        Ok(None)
    }

    async fn settle(
        &self,
        app: &AppId,
        key: &str,
        answer: Option<&str>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut s = self.lock();
        let slot = (app.clone(), key.to_owned());
        match answer {
            Some(answer) => {
                s.remembered
                    .insert(slot, (answer.to_owned(), Instant::now() + ttl));
            }
            None => {
                s.remembered.remove(&slot);
            }
        }
        Ok(())
    }

    async fn outbox(
        &self,
        app: &AppId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let s = self.lock();
        // One shard: a position is an entry id.
        let after = after.and_then(Position::parse).map(|p| p.of(0));
        Ok(s.outbox
            .get(app)
            .map(|v| {
                v.iter()
                    .filter(|(id, _)| after.is_none_or(|a| outbox_order(id).is_some_and(|o| o > a)))
                    .take(limit)
                    .map(|(id, event)| OutboxEntry {
                        id: id.clone(),
                        position: id.clone(),
                        event: event.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    fn outbox_watch(&self, app: &AppId) -> OutboxWatch {
        self.lock().bells.watch(app)
    }

    async fn trim_outbox(&self, app: &AppId, before: &str) -> Result<(), StoreError> {
        let Some(before) = Position::parse(before).map(|p| p.of(0)) else {
            return Ok(());
        };
        if let Some(entries) = self.lock().outbox.get_mut(app) {
            entries.retain(|(id, _)| outbox_order(id).is_none_or(|o| o >= before));
        }
        Ok(())
    }

    async fn append_outbox(&self, _app: &AppId, events: &[DomainEvent]) -> Result<(), StoreError> {
        self.lock().append(events.iter().cloned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conference::{EventKind, RoomType};
    use crate::store::{modify_room, update_room};

    fn setup() -> (MemoryStore, Room) {
        let prefix = NodePrefix::parse("abcde").unwrap();
        let app = AppId::parse("app").unwrap();
        let id = RoomId::new(&prefix, uuid::Uuid::new_v4());
        let room = Room::new(id, app, "r".into(), RoomType::Conference, "ctl".into(), 1);
        let store = MemoryStore::new();
        store.lock().rooms.insert(room.id.clone(), room.clone());
        (store, room)
    }

    fn event(room: &Room) -> DomainEvent {
        DomainEvent {
            kind: EventKind::Progressing,
            app: room.app.clone(),
            room: room.id.clone(),
            seq: room.seq,
            at: 1,
            data: serde_json::Value::Null,
            redelivers: None,
        }
    }

    /// A change that refuses or panics half-way leaves the stored room and the outbox as they were.
    #[tokio::test]
    async fn a_change_that_fails_half_way_leaves_nothing_behind() {
        let (store, room) = setup();
        let refused = modify_room(&store, &room.app, &room.id, |r| {
            r.seq += 1;
            r.detail = "half".into();
            Err::<((), Vec<DomainEvent>), _>("no")
        })
        .await
        .unwrap();
        assert_eq!(refused, Some(Err("no")));
        let panicked =
            std::panic::AssertUnwindSafe(update_room(&store, &room.app, &room.id, |r| {
                r.seq += 1;
                r.detail = "half".into();
                if r.seq > 0 {
                    panic!("a bug in a change");
                }
                Ok::<_, ()>(((), Vec::new()))
            }));
        assert!(
            futures_util::FutureExt::catch_unwind(panicked)
                .await
                .is_err()
        );
        assert_eq!(
            store.room(&room.app, &room.id).await.unwrap(),
            Some(room.clone())
        );
        assert!(store.outbox(&room.app, None, 10).await.unwrap().is_empty());
    }

    /// Both ways of changing a room store the same thing: the room, its seq and its events.
    #[tokio::test]
    async fn change_room_and_change_room_value_store_the_same() {
        let (store, room) = setup();
        let change = |r: &mut Room| {
            r.seq += 1;
            r.detail.push('x');
            Ok::<_, ()>((r.seq, vec![event(r)]))
        };
        let (saved, seq) = update_room(&store, &room.app, &room.id, change)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!((saved.seq, seq), (1, 1));
        let seq = modify_room(&store, &room.app, &room.id, change)
            .await
            .unwrap();
        assert_eq!(seq, Some(Ok(2)));
        let stored = store.room(&room.app, &room.id).await.unwrap().unwrap();
        assert_eq!((stored.seq, stored.detail.as_str()), (2, "xx"));
        let outbox = store.outbox(&room.app, None, 10).await.unwrap();
        let seqs: Vec<u64> = outbox.iter().map(|e| e.event.seq).collect();
        assert_eq!(seqs, [1, 2]);
        // An unchanged room saves nothing, not even the change's events.
        let same = modify_room(&store, &room.app, &room.id, |r| {
            Ok::<_, ()>(((), vec![event(r)]))
        });
        assert_eq!(same.await.unwrap(), Some(Ok(())));
        assert_eq!(store.outbox(&room.app, None, 10).await.unwrap().len(), 2);
        let other = AppId::parse("other").unwrap();
        assert_eq!(
            modify_room(&store, &other, &room.id, change).await.unwrap(),
            None
        );
    }
}
