//! Rooms themselves: create (placed on a node, held open by a control leg), list, read the
//! members, end them (deleted or timed out).

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use super::quotas;
use super::{Rooms, ServiceError, invalid};
use crate::conference::actions;
use crate::conference::apply::{Effect, Step, farewell};
use crate::conference::ops;
use crate::conference::{
    Action, AppId, Beep, EventKind, Member, Micros, Room, RoomId, RoomStatus, RoomType,
};
use crate::node::commands;
use crate::node::reconciler::RoomEffect;
use crate::node::supervisor::now_micros;
use crate::store::{Created, Page, Store, update_room};

/// What a new room is made of.
#[derive(Debug, Clone)]
pub struct NewRoom {
    pub name: String,
    pub kind: RoomType,
    pub detail: String,
    pub data: Value,
    /// Seconds after creation at which the room ends; 0 = never.
    pub timeout: u64,
    /// Seconds after creation at which the room ends if nobody joined; 0 = never; `None`: the
    /// application's default.
    pub empty_timeout: Option<u64>,
    /// Seconds after the last member left at which the room ends; 0 = never; `None`: the
    /// application's default.
    pub departure_timeout: Option<u64>,
    /// Most participants at once; 0 = no limit.
    pub max_participants: u64,
    /// Members wait with hold music until a moderator joins.
    pub wait_for_moderator: bool,
    pub beep: Beep,
    pub pre_actions: Vec<Action>,
    pub post_actions: Vec<Action>,
    /// The application's own data about the room.
    pub metadata: Option<crate::conference::Metadata>,
}

impl NewRoom {
    /// A plain `conference` room with only a name.
    pub fn named(name: &str) -> NewRoom {
        NewRoom {
            name: name.to_owned(),
            kind: RoomType::Conference,
            detail: String::new(),
            data: json!({}),
            timeout: 0,
            empty_timeout: None,
            departure_timeout: None,
            max_participants: 0,
            wait_for_moderator: false,
            beep: Beep::None,
            pre_actions: Vec::new(),
            post_actions: Vec::new(),
            metadata: None,
        }
    }
}

/// How long one controller holds a due timeout before another may take it over.
const TIMEOUT_LEASE: Duration = Duration::from_secs(30);

/// How often a room with lifetime rules and nothing due is looked at again. Its end is
/// scheduled as its write empties it (`IndexDelta::ends_at`); this only bounds how late it ends
/// when that schedule was lost (the store failed right after the room's write).
const LIFETIME_RECHECK: Duration = Duration::from_secs(600);

fn micros(d: Duration) -> Micros {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl<S: Store> Rooms<S> {
    /// Creates a room on the least-loaded healthy node; it is `starting` until its control leg
    /// is in the FreeSWITCH conference. Actions a node cannot perform are refused here.
    pub async fn create(&self, app: &AppId, spec: NewRoom) -> Result<Room, ServiceError> {
        for (list, which) in [
            (&spec.pre_actions, "pre_actions"),
            (&spec.post_actions, "post_actions"),
        ] {
            actions::talks(list).map_err(|e| ServiceError::Invalid(format!("{which}: {e}")))?;
        }
        let quota = self.quota(app);
        let mut spec = spec;
        if quota.members_per_room > 0 {
            match spec.max_participants {
                0 => spec.max_participants = quota.members_per_room,
                n if n > quota.members_per_room => {
                    return Err(quotas::Reached::MembersPerRoom(quota.members_per_room).into());
                }
                _ => {}
            }
        }
        // Counted among the app's live rooms from here until the store counts it.
        let creating = self.room_place(app).await?;
        // Draining nodes take no new rooms.
        let draining = self.store.draining().await?;
        // Held until the store counts the room on the node (its create, below).
        let placed = self
            .place_room(|n| n.is_up() && !draining.contains_key(&n.config.prefix))
            .await?;
        let node = &placed.node;
        self.sessions_to_spare(node).await?;
        let id = RoomId::new(&node.config.prefix, self.store.new_room_uuid(&spec.name));
        let now = now_micros();
        let mut room = Room::new(
            id,
            app.clone(),
            spec.name,
            spec.kind,
            Uuid::new_v4().to_string(),
            now,
        );
        room.detail = spec.detail;
        room.data = spec.data;
        room.timeout = spec.timeout;
        let (empty, departure) = self.directory.room_lifetime(app);
        room.empty_timeout = spec.empty_timeout.unwrap_or(empty);
        room.departure_timeout = spec.departure_timeout.unwrap_or(departure);
        room.max_participants = spec.max_participants;
        room.wait_for_moderator = spec.wait_for_moderator;
        room.waiting_for_moderator = spec.wait_for_moderator;
        room.beep = spec.beep;
        room.pre_actions = spec.pre_actions;
        room.post_actions = spec.post_actions;
        room.metadata = spec.metadata;
        room.core_uuid = node.core_uuid();
        let mut step = Step::new(&mut room, now);
        let data =
            json!({ "room_id": step.room.id, "name": step.room.name, "type": step.room.kind });
        step.emit(EventKind::Created, data);
        let events = step.finish().events;
        if room.has_lifetime_rules() {
            let at = room
                .lifetime_end()
                .map_or(now.saturating_add(micros(LIFETIME_RECHECK)), |(at, _)| at);
            self.store.schedule_timeout(app, &room.id, at).await?;
        }
        match self.store.create_room(&room, &events).await? {
            Created::NameTaken(existing) => return Err(ServiceError::NameTaken(existing)),
            Created::Created => drop(creating),
        }
        node.request(RoomEffect {
            app: app.clone(),
            room: room.id.clone(),
            node: room.node.clone(),
            effect: Effect::EstablishControlLeg,
        });
        Ok(room)
    }

    /// The app's rooms by creation time, after `after`; with `live_only`, only those that have
    /// not ended (from the store's live index: the ended ones cost nothing).
    pub async fn list(
        &self,
        app: &AppId,
        mut after: Option<(Micros, String)>,
        limit: usize,
        live_only: bool,
    ) -> Result<Page<Room>, ServiceError> {
        let mut items = Vec::new();
        loop {
            let want = limit - items.len();
            let page = match live_only {
                true => self.store.live_rooms_of_app(app, after, want).await?,
                false => self.store.rooms_of_app(app, after, want).await?,
            };
            items.extend(
                page.items
                    .into_iter()
                    .filter(|r| !live_only || r.status < RoomStatus::Terminating),
            );
            match page.next {
                Some(next) if items.len() < limit => after = Some(next),
                next => return Ok(Page { items, next }),
            }
        }
    }

    /// The members FreeSWITCH has confirmed, by channel uuid, after `after` (exclusive).
    pub async fn members(
        &self,
        app: &AppId,
        id: &RoomId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Member>, Option<String>), ServiceError> {
        let room = self.room(app, id).await?;
        let mut members: Vec<Member> = room
            .confirmed_members()
            .filter(|m| after.is_none_or(|a| m.channel() > a))
            .take(limit + 1)
            .cloned()
            .collect();
        let more = members.len() > limit;
        members.truncate(limit);
        let next = more
            .then(|| members.last().map(|m| m.channel().to_owned()))
            .flatten();
        Ok((members, next))
    }

    /// Locks (`locked`) or unlocks a room (see [`ops::set_lock`]); the room as it is now. The
    /// lock is the controller's: members in the room stay, a move to another node carries it.
    pub async fn set_lock(
        &self,
        app: &AppId,
        id: &RoomId,
        locked: bool,
    ) -> Result<Room, ServiceError> {
        self.room(app, id).await?;
        self.change(app, id, |r| ops::set_lock(r, locked, now_micros()))
            .await?;
        self.room(app, id).await
    }

    /// Replaces the application's data about a room (see [`ops::set_room_metadata`]); the room
    /// as it is now.
    pub async fn set_room_metadata(
        &self,
        app: &AppId,
        id: &RoomId,
        metadata: Option<crate::conference::Metadata>,
    ) -> Result<Room, ServiceError> {
        self.room(app, id).await?;
        self.change(app, id, |r| {
            ops::set_room_metadata(r, metadata.clone(), now_micros())
        })
        .await?;
        self.room(app, id).await
    }

    /// Replaces the application's data about a session's participation in a room (see
    /// [`ops::set_member_metadata`]); the member as it is now.
    pub async fn set_member_metadata(
        &self,
        app: &AppId,
        id: &RoomId,
        session: &crate::conference::SessionId,
        metadata: Option<crate::conference::Metadata>,
    ) -> Result<crate::conference::Member, ServiceError> {
        if self
            .room(app, id)
            .await?
            .member_by_session(session)
            .is_none()
        {
            return Err(ServiceError::NotFound("member"));
        }
        self.change(app, id, |r| {
            ops::set_member_metadata(r, session.channel(), metadata.clone(), now_micros())
        })
        .await?;
        self.room(app, id)
            .await?
            .member_by_session(session)
            .cloned()
            .ok_or(ServiceError::NotFound("member"))
    }

    /// Deletes a live room (see [`Rooms::end`]); it is gone from `/api/v1` at once.
    pub async fn delete(&self, app: &AppId, id: &RoomId) -> Result<Room, ServiceError> {
        let room = self.room(app, id).await?;
        self.end(app, room, "deleted").await
    }

    /// Ends a room: `terminating` at once; recording stops, members are moved out hearing the
    /// post-actions (their calls live on, parked), the control leg is released, and the room is
    /// `terminated` once the node has let the control leg and every member go, in whatever order
    /// it reports them (see `conference::apply::ending`).
    /// `reason` (`deleted`, `timeout`, `empty_timeout`, `departure_timeout`) goes with
    /// `conference.destroyed`.
    pub async fn end(&self, app: &AppId, room: Room, reason: &str) -> Result<Room, ServiceError> {
        let id = &room.id;
        let node = self.pool.get(&room.node)?;
        let kill = commands::kill(&room.control.channel).map_err(invalid)?;
        let ended = update_room(&*self.store, app, id, |r| {
            // A room moving to another node ends once it is there (a second or so).
            ops::require_steady(r)?;
            let (applied, leaving) = ops::request_terminate(r, reason, now_micros());
            // Calls the room was still placing are cancelled.
            let cancels: Vec<String> = applied
                .effects
                .iter()
                .filter_map(|e| match e {
                    Effect::Cancel { channel } => Some(channel.clone()),
                    _ => None,
                })
                .collect();
            if r.conference_uuid.is_none() {
                // Never on the node (or already gone there): nothing to wait for.
                let done = ops::finish_terminate(r, now_micros());
                let events = applied.events.into_iter().chain(done.events).collect();
                return Ok::<_, ServiceError>(((leaving, cancels), events));
            }
            Ok(((leaving, cancels), applied.events))
        })
        .await?;
        let (room, (leaving, cancels)) = match ended {
            None => return Err(ServiceError::NotFound("room")),
            Some(Err(e)) => return Err(e),
            Some(Ok(done)) => done,
        };
        for channel in &cancels {
            if let Ok(cmd) = commands::cancel(channel) {
                let _ = node.api(&cmd).await;
            }
        }
        if room.has_lifetime_rules() {
            self.store.clear_timeout(app, id).await?;
        }
        if let Some(rec) = room.active_recording()
            && let Ok(cmd) = commands::norecord(id, &rec.path)
        {
            let _ = node.api(&cmd).await;
        }
        let talks = farewell(&room);
        for exit in &leaving {
            if let Ok(cmd) = commands::take_out(exit, &talks) {
                let _ = node.api(&cmd).await;
            }
        }
        // The control leg may already be gone; its conference-destroy ends the room.
        node.api(&kill).await?;
        Ok(room)
    }

    /// Ends the rooms whose lifetime rules end them now (`timeout`, `empty_timeout`,
    /// `departure_timeout`; each room handed to one controller instance); returns how many
    /// were ended. A room claimed that nothing ends yet (someone joined since) is scheduled
    /// again, at its next end or a recheck.
    pub async fn end_timed_out(&self, now: Micros, limit: usize) -> Result<usize, ServiceError> {
        let due = self.store.claim_timeouts(now, TIMEOUT_LEASE, limit).await?;
        let mut ended = 0;
        for (app, id) in due {
            let room = match self.store.room(&app, &id).await? {
                Some(room) if room.status < RoomStatus::Terminating => room,
                // Gone, or already ending: nothing left to do.
                _ => {
                    self.store.clear_timeout(&app, &id).await?;
                    continue;
                }
            };
            let rule = match room.lifetime_end() {
                Some((at, rule)) if at <= now => rule,
                next => {
                    let recheck = now.saturating_add(micros(LIFETIME_RECHECK));
                    let at = next.map_or(recheck, |(at, _)| at.min(recheck));
                    self.store.schedule_timeout(&app, &id, at).await?;
                    continue;
                }
            };
            match self.end(&app, room, rule.as_str()).await {
                Ok(_) => ended += 1,
                // The claim lapses and the next sweep tries again.
                Err(e) => tracing::warn!(room = %id, error = %e, "could not end a timed-out room"),
            }
        }
        Ok(ended)
    }
}
