//! The embedded store: everything in one process, behind one `std::sync::Mutex` that is never
//! held across an `.await`. Same semantics as the Redis store (the conformance suite checks it);
//! state is lost when the process ends.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

mod deliveries;
mod state;

use state::{Inner, page};

use super::bell::OutboxWatch;
use super::{
    Created, IndexDelta, OutboxEntry, Page, Position, Saved, Store, StoreError, Updated,
    outbox_order,
};
use crate::conference::{
    AppId, DomainEvent, Micros, NodePrefix, Room, RoomId, RoomStatus, Session, SessionId,
    SessionState,
};

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
        Ok(self.lock().room_page(false, app, after, limit))
    }

    async fn live_rooms_of_app(
        &self,
        app: &AppId,
        after: Option<(Micros, String)>,
        limit: usize,
    ) -> Result<Page<Room>, StoreError> {
        Ok(self.lock().room_page(true, app, after, limit))
    }

    async fn live_room_count(&self, app: &AppId) -> Result<usize, StoreError> {
        Ok(self
            .lock()
            .live_by_app
            .get(app)
            .map_or(0, |live| live.len()))
    }

    async fn rooms_on_node(&self, node: &NodePrefix) -> Result<Vec<(AppId, RoomId)>, StoreError> {
        let s = self.lock();
        let mut rooms: Vec<(AppId, RoomId)> = s
            .rooms
            .values()
            .filter(|r| r.touches(node) && r.status != RoomStatus::Terminated)
            .map(|r| (r.app.clone(), r.id.clone()))
            .collect();
        rooms.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(rooms)
    }

    async fn set_upload_pending(
        &self,
        app: &AppId,
        room: &RoomId,
        recording: uuid::Uuid,
        pending: bool,
    ) -> Result<(), StoreError> {
        let entry = (app.clone(), room.clone(), recording);
        let mut s = self.lock();
        match pending {
            true => s.uploads.insert(entry),
            false => s.uploads.remove(&entry),
        };
        Ok(())
    }

    async fn uploads_pending(&self) -> Result<Vec<(AppId, RoomId, uuid::Uuid)>, StoreError> {
        Ok(self.lock().uploads.iter().cloned().collect())
    }

    async fn expire_recording_at(
        &self,
        app: &AppId,
        room: &RoomId,
        recording: uuid::Uuid,
        at: Micros,
    ) -> Result<(), StoreError> {
        self.lock()
            .recording_expiry
            .insert((app.clone(), room.clone(), recording), at);
        Ok(())
    }

    async fn claim_expired_recordings(
        &self,
        now: Micros,
        limit: usize,
    ) -> Result<Vec<(AppId, RoomId, uuid::Uuid)>, StoreError> {
        let mut s = self.lock();
        let due: Vec<_> = s
            .recording_expiry
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .take(limit)
            .collect();
        for k in &due {
            s.recording_expiry.remove(k);
        }
        Ok(due)
    }

    async fn set_draining(
        &self,
        node: &NodePrefix,
        drain: Option<&super::Drain>,
    ) -> Result<(), StoreError> {
        let mut s = self.lock();
        match drain {
            Some(d) => s.draining.insert(node.clone(), d.clone()),
            None => s.draining.remove(node),
        };
        Ok(())
    }

    async fn draining(
        &self,
    ) -> Result<std::collections::BTreeMap<NodePrefix, super::Drain>, StoreError> {
        Ok(self.lock().draining.clone())
    }

    async fn node_room_count(&self, node: &NodePrefix) -> Result<usize, StoreError> {
        Ok(self
            .lock()
            .rooms
            .values()
            .filter(|r| r.touches(node) && r.status != RoomStatus::Terminated)
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
mod tests;
