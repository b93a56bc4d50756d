//! Room changes: the guarded load → change → save loop every room write goes through, batches
//! of room changes, and what a write changes in the indexes beside the room.

use uuid::Uuid;

use super::{Saved, Store, StoreError};
use crate::conference::{
    AppId, DomainEvent, Member, MemberStatus, Room, RoomId, RoomStatus, SessionId,
};

/// How the session → room index and the name index change with a room write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexDelta {
    pub add_sessions: Vec<SessionId>,
    pub remove_sessions: Vec<SessionId>,
    /// The room ended: its name is free again and it leaves its node's set.
    pub release: bool,
    /// Conferencecall and recording ids new in this version (looked up by [`Store::ref_owner`]).
    pub add_refs: Vec<Uuid>,
    /// Ids the room no longer holds: its oldest past participations (past
    /// [`crate::conference::PAST_MEMBERS_KEPT`]) and deleted recordings. They expire with the
    /// room retention.
    pub drop_refs: Vec<Uuid>,
    /// A new time at which the room's lifetime rules end it (everybody left a room with a
    /// departure timeout): the store schedules its end then.
    pub ends_at: Option<crate::conference::Micros>,
    /// The room began (`Some(true)`) or stopped (`Some(false)`) recording or carrying a live
    /// stream ([`Room::has_media`]): it goes in or out of the store's media index.
    pub media: Option<bool>,
}

impl IndexDelta {
    /// What changes between two versions of a room.
    pub fn between(old: &Room, new: &Room) -> IndexDelta {
        IndexDelta {
            add_sessions: live_sessions_missing(new, old),
            remove_sessions: live_sessions_missing(old, new),
            release: old.status != RoomStatus::Terminated && new.status == RoomStatus::Terminated,
            add_refs: new
                .members
                .iter()
                .filter(|(ch, m)| {
                    old.members.get(*ch).map(|o| o.conferencecall_id) != Some(m.conferencecall_id)
                })
                .map(|(_, m)| m.conferencecall_id)
                .chain(
                    new.recordings
                        .iter()
                        .skip(old.recordings.len())
                        .map(|r| r.id),
                )
                .collect(),
            drop_refs: dropped_participations(old, new)
                .into_iter()
                .chain(
                    old.recordings
                        .iter()
                        .filter(|r| new.recording_by_id(r.id).is_none())
                        .map(|r| r.id),
                )
                .collect(),
            ends_at: match new.lifetime_end() {
                Some((at, _)) if old.lifetime_end().map(|(at, _)| at) != Some(at) => Some(at),
                _ => None,
            },
            media: (old.has_media() != new.has_media()).then(|| new.has_media()),
        }
    }
}

/// The conferencecall ids of `old`'s past participations that `new` no longer holds (only
/// when `old` was at the cap: nothing else drops one).
fn dropped_participations(old: &Room, new: &Room) -> Vec<Uuid> {
    if old.past_members.len() < crate::conference::PAST_MEMBERS_KEPT {
        return Vec::new();
    }
    let kept: std::collections::HashSet<Uuid> = new
        .members
        .values()
        .chain(new.past_members.iter())
        .map(|m| m.conferencecall_id)
        .collect();
    old.past_members
        .iter()
        .map(|m| m.conferencecall_id)
        .filter(|id| !kept.contains(id))
        .collect()
}

/// The sessions of `room`'s live (not leaved) members that are not live members of `other`, in
/// `room`'s member order. Members are keyed by channel, so a member's session is looked for under
/// its own channel first, and only then among all of `other`'s members.
fn live_sessions_missing(room: &Room, other: &Room) -> Vec<SessionId> {
    let live = |m: &&Member| m.status != MemberStatus::Leaved;
    room.members
        .iter()
        .filter(|(_, m)| live(m))
        .filter(|(channel, m)| {
            let same_slot = other
                .members
                .get(*channel)
                .filter(live)
                .is_some_and(|o| o.session == m.session);
            !same_slot
                && !other
                    .members
                    .values()
                    .filter(live)
                    .any(|o| o.session == m.session)
        })
        .map(|(_, m)| m.session.clone())
        .collect()
}

/// What [`update_room`] returns: `None` when the room does not exist, the change's own error
/// when it refused, else the saved room and the change's value.
pub type Updated<T, E> = Result<Option<Result<(Room, T), E>>, StoreError>;

/// What [`modify_room`] returns: `None` when the room does not exist, the change's own error
/// when it refused, else the change's value.
pub type Modified<T, E> = Result<Option<Result<T, E>>, StoreError>;

/// How many times [`update_room`] retries a lost race before giving up.
const MAX_ATTEMPTS: u32 = 64;

/// Loads a room, lets `change` modify it (returning its events, or an error to abort), and saves
/// it atomically; a lost race reloads and runs `change` again. Returns the saved room and the
/// value `change` returned, or `None` when the room does not exist.
pub async fn update_room<S, T, E, F>(
    store: &S,
    app: &AppId,
    id: &RoomId,
    change: F,
) -> Result<Option<Result<(Room, T), E>>, StoreError>
where
    S: Store,
    T: Send,
    E: Send,
    F: FnMut(&mut Room) -> Result<(T, Vec<DomainEvent>), E> + Send,
{
    store.change_room(app, id, change).await
}

/// [`update_room`] without the saved room: `None` when the room does not exist, the change's own
/// error when it refused, else the change's value.
pub async fn modify_room<S, T, E, F>(
    store: &S,
    app: &AppId,
    id: &RoomId,
    change: F,
) -> Result<Option<Result<T, E>>, StoreError>
where
    S: Store,
    T: Send,
    E: Send,
    F: FnMut(&mut Room) -> Result<(T, Vec<DomainEvent>), E> + Send,
{
    store.change_room_value(app, id, change).await
}

/// One room's change in a batch ([`modify_rooms`]).
pub struct RoomChange<'a, F> {
    pub app: &'a AppId,
    pub room: &'a RoomId,
    pub change: F,
}

/// [`modify_room`] for several rooms at once: each result is what [`modify_room`] would return
/// for that room, in the order of `changes`.
pub async fn modify_rooms<'a, S, T, E, F>(
    store: &'a S,
    changes: Vec<RoomChange<'a, F>>,
) -> Vec<Modified<T, E>>
where
    S: Store,
    T: Send + 'a,
    E: Send + 'a,
    F: FnMut(&mut Room) -> Result<(T, Vec<DomainEvent>), E> + Send + 'a,
{
    store.change_rooms(changes).await
}

/// The generic [`Store::change_room`]: load, change a copy, save guarded by `seq`, retry.
pub async fn load_apply_save<S, T, E>(
    store: &S,
    app: &AppId,
    id: &RoomId,
    mut change: impl FnMut(&mut Room) -> Result<(T, Vec<DomainEvent>), E>,
) -> Result<Option<Result<(Room, T), E>>, StoreError>
where
    S: Store,
{
    for attempt in 0..MAX_ATTEMPTS {
        if attempt > 0 {
            // Losers of a race spread out instead of colliding again at once.
            let spread = u64::from(attempt.min(10)) * 500;
            tokio::time::sleep(std::time::Duration::from_micros(fastrand::u64(0..=spread))).await;
        }
        let Some(old) = store.room(app, id).await? else {
            return Ok(None);
        };
        let mut new = old.clone();
        let (value, events) = match change(&mut new) {
            Ok(v) => v,
            Err(e) => return Ok(Some(Err(e))),
        };
        if new == old {
            return Ok(Some(Ok((new, value))));
        }
        match store.save_room(&old, &new, &events).await? {
            Saved::Saved => return Ok(Some(Ok((new, value)))),
            Saved::Conflict => continue,
        }
    }
    Err(StoreError::Contention(id.to_string()))
}

/// The name a room is unique by within its app: its name, or for a nameless room (the conference
/// resource allows them) its id, so nameless rooms never collide.
pub fn unique_name(room: &Room) -> String {
    if room.name.is_empty() {
        format!("#{}", room.id)
    } else {
        room.name.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conference::{NodePrefix, PAST_MEMBERS_KEPT, RoomType};

    fn past(n: usize) -> Member {
        let prefix = NodePrefix::parse("abcde").unwrap();
        let session = SessionId::new(&prefix, &uuid::Uuid::new_v4().to_string());
        let mut m = Member::new(session, "100".into(), format!("{n}"), None, 0);
        m.status = MemberStatus::Leaved;
        m
    }

    #[test]
    fn a_room_keeps_its_newest_past_participations_and_lets_the_others_ids_go() {
        let id = RoomId::parse("abcde-room-550e8400-e29b-41d4-a716-446655440000").unwrap();
        let app = AppId::parse("app").unwrap();
        let mut room = Room::new(id, app, "r".into(), RoomType::Conference, "ctl".into(), 0);
        for n in 0..PAST_MEMBERS_KEPT {
            room.retire(past(n));
        }
        let before = room.clone();
        assert_eq!(
            IndexDelta::between(&before, &room).drop_refs,
            Vec::<Uuid>::new()
        );
        let oldest = room.past_members[0].conferencecall_id;
        room.retire(past(PAST_MEMBERS_KEPT));
        assert_eq!(room.past_members.len(), PAST_MEMBERS_KEPT);
        assert_eq!(room.past_members[PAST_MEMBERS_KEPT - 1].caller_id, "100");
        assert!(room.conferencecall(oldest).is_none());
        assert_eq!(IndexDelta::between(&before, &room).drop_refs, vec![oldest]);
    }

    /// A deleted recording's id is let go (the soak found one lookup left behind for every
    /// recording deleted, for good).
    #[test]
    fn a_deleted_recordings_id_is_let_go() {
        let id = RoomId::parse("abcde-room-550e8400-e29b-41d4-a716-446655440000").unwrap();
        let app = AppId::parse("app").unwrap();
        let mut room = Room::new(id, app, "r".into(), RoomType::Conference, "ctl".into(), 0);
        room.status = crate::conference::RoomStatus::Progressing;
        let (kept, deleted) = (Uuid::new_v4(), Uuid::new_v4());
        for rec in [kept, deleted] {
            crate::conference::ops::request_recording(&mut room, rec, "/r.wav", 1).unwrap();
            room.recording = None;
        }
        let before = room.clone();
        room.recordings.retain(|r| r.id != deleted);
        assert_eq!(IndexDelta::between(&before, &room).drop_refs, vec![deleted]);
    }
}
