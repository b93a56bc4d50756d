//! Moving a live room to another node (a drain with `migrate: true`): the room keeps its id,
//! members, switches and recording; each member's call is carried to the new node over the
//! node-to-node bridge (or, on that node, put into the room there). The steps and what each
//! write holds are in `conference::apply::migration`; this file sends the commands between them.
//!
//! Every step is written before its command is sent, so a driver that dies (SIGKILL) leaves a
//! room another one can take over: a room moving is held by one driver at a time (a lease in
//! the store), and the next one resumes where the room's record says it is. A move that never
//! switched is given up; one that switched is carried through (a member that cannot be carried
//! in time is parked on its own node and told as a leave). The instance that applies the
//! drained node's events drives: a fleet hands the node, and its rooms' moves, on when that
//! instance dies.

use std::time::Duration;

use uuid::Uuid;

use super::{Rooms, ServiceError, invalid};
use crate::conference::apply::migration;
use crate::conference::{AppId, Bridge, Member, NodePrefix, Room, RoomId};
use crate::node::bridge::{NodeBridge, bridge_to_node};
use crate::node::supervisor::now_micros;
use crate::node::{NodeError, NodeHandle, Placed, commands};
use crate::store::{Store, update_room};

/// How long one driver holds a room's move before another may take it over (the instance
/// that applies the drained node's events drives its rooms' moves; this guards the moment two
/// instances both think so, at a handover).
const LEASE: Duration = Duration::from_secs(5);
/// How long the new node has to open the room (its control leg in) before the move is given up.
const SWITCH_WAIT: Duration = Duration::from_secs(5);
/// How long a carried member has to arrive, per attempt.
const ARRIVAL_WAIT: Duration = Duration::from_secs(4);
/// Attempts to carry a member before it is parked on its own node.
const ATTEMPTS: usize = 2;
/// How often the driver reads the room while it waits for the nodes.
const POLL: Duration = Duration::from_millis(15);
/// As for a join across nodes (`membership.rs`).
const BRIDGE_ANSWER_SECS: u32 = 5;
const BRIDGE_MEDIA_TIMEOUT_MS: u32 = 5000;

/// What a move did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moved {
    /// The room lives on `to` now, with every member that could be carried.
    Done { from: NodePrefix, to: NodePrefix },
    /// The room cannot move yet (a join, a switch… on its way), or another driver holds it.
    NotNow(&'static str),
    /// The new node never opened the room: it stays where it was.
    GivenUp,
}

impl<S: Store> Rooms<S> {
    /// Moves every room off `node` (draining with `migrate`), one at a time; rooms that cannot
    /// move yet are left for the next call. Returns how many moved.
    pub async fn migrate_node(&self, node: &NodePrefix) -> Result<usize, ServiceError> {
        // The instance that applies the node's events drives its rooms' moves: when it dies,
        // the fleet hands the node, and with it the moves, to another one.
        if !self.pool.get(node)?.applies_events() {
            return Ok(0);
        }
        let mut moved = 0;
        for (app, id) in self.store.rooms_on_node(node).await? {
            let Some(room) = self.store.room(&app, &id).await? else {
                continue;
            };
            // Listed here still, though it lives elsewhere and is not moving (a move that ended
            // before its driver took it off the list).
            if &room.node != node && room.migration.is_none() {
                self.store.list_on_node(node, &app, &id, false).await?;
                continue;
            }
            match self.migrate_room(&app, &id).await {
                Ok(Moved::Done { from, to }) => {
                    tracing::info!(room = %id, %from, %to, "room moved");
                    moved += 1;
                }
                Ok(Moved::NotNow(why)) => {
                    tracing::debug!(room = %id, why, "room not moved yet")
                }
                Ok(Moved::GivenUp) => tracing::warn!(room = %id, "room move given up"),
                Err(e) => tracing::warn!(room = %id, error = %e, "room move failed"),
            }
        }
        Ok(moved)
    }

    /// Moves one room to the least-loaded other healthy node that is not draining, or carries
    /// on with its move under way.
    pub async fn migrate_room(&self, app: &AppId, id: &RoomId) -> Result<Moved, ServiceError> {
        let key = format!("migrate:{id}");
        if !self.store.take_cooldown(app, &key, LEASE).await? {
            return Ok(Moved::NotNow("another driver holds the room"));
        }
        let room = self.room(app, id).await?;
        let room = match &room.migration {
            Some(_) => room,
            None => match self.begin(app, &room).await? {
                Ok(room) => room,
                Err(why) => return Ok(Moved::NotNow(why)),
            },
        };
        let Some(m) = room.migration.clone() else {
            return Ok(Moved::NotNow("the room is not moving"));
        };
        let to = self.pool.get(&m.to)?;
        if !m.switched {
            let waited = Duration::from_micros((now_micros() - m.started_at).max(0) as u64);
            let switched = match SWITCH_WAIT.checked_sub(waited) {
                Some(left) => self.until(app, id, left, switched).await?,
                None => false,
            };
            if !switched {
                self.abandon(app, id, &to).await?;
                return Ok(Moved::GivenUp);
            }
        }
        self.move_media(app, id, &to).await?;
        for attempt in 1..=ATTEMPTS {
            let room = self.room_any(app, id).await?;
            let moving: Vec<Member> = room
                .members
                .values()
                .filter(|m| m.moving)
                .cloned()
                .collect();
            if moving.is_empty() {
                break;
            }
            for member in &moving {
                if let Err(e) = self.carry(app, &room, member, &to).await {
                    tracing::warn!(room = %id, session = %member.session, attempt, error = %e, "a member could not be carried to the room's new node");
                }
            }
            if self.until(app, id, ARRIVAL_WAIT, none_moving).await? {
                break;
            }
        }
        self.strand_the_rest(app, id).await?;
        self.finish(app, id).await
    }

    /// Step 1: the room names its new node, which is asked to open it (its control leg).
    async fn begin(
        &self,
        app: &AppId,
        room: &Room,
    ) -> Result<Result<Room, &'static str>, ServiceError> {
        if let Some(why) = migration::unsettled(room) {
            return Ok(Err(why));
        }
        // Held until the store lists the room on its new node (below).
        let placed = self.target(room).await?;
        let to = &placed.node;
        let Some(core) = to.core_uuid() else {
            return Err(NodeError::Unavailable(to.config.prefix.to_string()).into());
        };
        let control = Uuid::new_v4().to_string();
        let prefix = to.config.prefix.clone();
        let begun = update_room(&*self.store, app, &room.id, |r| {
            let applied = migration::begin(r, &prefix, &core, &control, now_micros())?;
            Ok::<_, &'static str>(((), applied.events))
        })
        .await?;
        let room = match begun {
            None => return Err(ServiceError::NotFound("room")),
            Some(Err(why)) => return Ok(Err(why)),
            Some(Ok((room, ()))) => room,
        };
        self.store
            .list_on_node(&prefix, app, &room.id, true)
            .await?;
        let cmd = commands::originate_control_leg(
            &room.id,
            &control,
            &to.config.control_endpoint,
            &to.config.profile,
            room.waiting_for_moderator,
        )
        .map_err(invalid)?;
        if let Err(e) = to.bgapi(&cmd).await.and_then(|r| {
            r.expect_ok(false)
                .map(drop)
                .map_err(|e| NodeError::Rejected(e.to_string()))
        }) {
            tracing::warn!(room = %room.id, node = %prefix, error = %e, "the new node did not open the room");
        }
        Ok(Ok(room))
    }

    /// The node a room goes to: the least-loaded healthy one that is not draining, not its
    /// own, and reachable over the node-to-node link when a member's call must be carried.
    async fn target(&self, room: &Room) -> Result<Placed, ServiceError> {
        let draining = self.store.draining().await?;
        self.place_room(|node| {
            let prefix = &node.config.prefix;
            let carries = room.members.values().any(|m| &m.session.prefix() != prefix);
            prefix != &room.node
                && !draining.contains_key(prefix)
                && (!carries || node.config.node_sip.is_some())
        })
        .await
    }

    /// Waits up to `limit` for the room's record to satisfy `done`; whether it did.
    async fn until(
        &self,
        app: &AppId,
        id: &RoomId,
        limit: Duration,
        done: impl Fn(&Room) -> bool,
    ) -> Result<bool, ServiceError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let room = self.room_any(app, id).await?;
            if done(&room) {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The new node never opened the room: it stays, and the leg that would have opened it
    /// there is let go.
    async fn abandon(&self, app: &AppId, id: &RoomId, to: &NodeHandle) -> Result<(), ServiceError> {
        let given_up = update_room(&*self.store, app, id, |r| {
            Ok::<_, ServiceError>((migration::abandon(r, now_micros()), Vec::new()))
        })
        .await?;
        if let Some(Ok((_, Some(m)))) = given_up {
            if let Ok(cmd) = commands::kill(&m.control) {
                let _ = to.api(&cmd).await;
            }
            self.store.list_on_node(&m.to, app, id, false).await?;
        }
        Ok(())
    }

    /// The room's recording and playback carry on on its new node (asked once): the
    /// recording in a new file there, the files still to play played again.
    async fn move_media(
        &self,
        app: &AppId,
        id: &RoomId,
        to: &NodeHandle,
    ) -> Result<(), ServiceError> {
        let path = to.config.recording_path(&Uuid::new_v4());
        let moved = update_room(&*self.store, app, id, |r| {
            Ok::<_, ServiceError>((migration::move_media(r, &path, now_micros()), Vec::new()))
        })
        .await?;
        let Some(Ok((_, Some((old_file, replay))))) = moved else {
            return Ok(());
        };
        if old_file.is_some() {
            let cmd = commands::record(id, &path).map_err(invalid)?;
            if let Err(e) = to.expect_ok(&cmd, false).await {
                tracing::warn!(room = %id, error = %e, "the recording could not go on on the room's new node");
            }
        }
        if let Some((op, urls)) = replay {
            for url in &urls {
                for cmd in
                    commands::play_tagged(id, &op, url, None, to.speech()).map_err(invalid)?
                {
                    if let Err(e) = to.expect_ok(&cmd, false).await {
                        tracing::warn!(room = %id, error = %e, "a file could not be played again on the room's new node");
                    }
                }
            }
        }
        Ok(())
    }

    /// Step 3 for one member: its call is carried to the new node (named in the room before it
    /// is sent, so the new node's leg is recognised), or, on that node, put into the room.
    async fn carry(
        &self,
        app: &AppId,
        room: &Room,
        member: &Member,
        to: &NodeHandle,
    ) -> Result<(), ServiceError> {
        let channel = member.channel();
        if member.session.prefix() == to.config.prefix {
            let cmd =
                commands::join(channel, &room.id, &to.config.profile, false).map_err(invalid)?;
            to.expect_ok(&cmd, true).await?;
            return Ok(());
        }
        let Some(addr) = to.config.node_sip else {
            return Err(ServiceError::Conflict(format!(
                "media node {} has no node-to-node SIP address (node_sip)",
                to.config.prefix
            )));
        };
        let call_node = self.pool.get(&member.session.prefix())?;
        let caller = Uuid::parse_str(channel)
            .map_err(|_| ServiceError::Invalid("session is not a channel uuid".into()))?;
        let out = Uuid::new_v4();
        update_room(&*self.store, app, &room.id, |r| {
            if let Some(m) = r.members.get_mut(channel).filter(|m| m.moving) {
                m.bridge = Some(Bridge { out, leg: None });
                r.seq += 1;
            }
            Ok::<_, ServiceError>(((), Vec::new()))
        })
        .await?;
        let cmd = bridge_to_node(&NodeBridge {
            caller: &caller,
            out: &out,
            session: &member.session,
            room: &room.id,
            node: addr,
            answer_timeout_secs: BRIDGE_ANSWER_SECS,
            media_timeout_ms: BRIDGE_MEDIA_TIMEOUT_MS,
        })
        .map_err(invalid)?;
        call_node.expect_ok(&cmd, true).await?;
        Ok(())
    }

    /// Members that could not be carried leave (`not_on_node`), their calls parked on their
    /// own nodes.
    async fn strand_the_rest(&self, app: &AppId, id: &RoomId) -> Result<(), ServiceError> {
        let room = self.room_any(app, id).await?;
        for m in room.members.values().filter(|m| m.moving) {
            tracing::warn!(room = %id, session = %m.session, "a member could not be carried to the room's new node: parked on its own node");
            let channel = m.channel().to_owned();
            update_room(&*self.store, app, id, |r| {
                let applied = migration::stranded(r, &channel, now_micros());
                Ok::<_, ServiceError>(((), applied.events))
            })
            .await?;
            if let (Ok(node), Ok(cmd)) =
                (self.pool.get(&m.session.prefix()), commands::park(&channel))
            {
                let _ = node.api(&cmd).await;
            }
        }
        Ok(())
    }

    /// Step 4: the old node's recording and control leg are let go, and the move is told.
    async fn finish(&self, app: &AppId, id: &RoomId) -> Result<Moved, ServiceError> {
        let room = self.room_any(app, id).await?;
        let Some(m) = room.migration.clone() else {
            return Ok(Moved::NotNow("the room is not moving"));
        };
        if let Ok(from) = self.pool.get(&m.from) {
            let old_file = room
                .active_recording()
                .and_then(|r| r.segments.last())
                .filter(|s| s.node == m.from)
                .map(|s| s.path.clone());
            if let Some(cmd) = old_file.and_then(|path| commands::norecord(id, &path).ok()) {
                let _ = from.api(&cmd).await;
            }
            if let Ok(cmd) = commands::kill(&m.control) {
                let _ = from.api(&cmd).await;
            }
            // The room's streams' legs are in the old conference: let go with it (each stream's
            // carrier makes new ones on the new node when they stop sending).
            let legs = room.streams.iter().filter(|s| s.is_live());
            for leg in legs.flat_map(|s| s.legs.iter()) {
                if let Ok(cmd) = commands::kill(leg) {
                    let _ = from.api(&cmd).await;
                }
            }
        }
        let finished = update_room(&*self.store, app, id, |r| {
            let (applied, _) = migration::finish(r, now_micros())?;
            Ok::<_, &'static str>(((), applied.events))
        })
        .await?;
        match finished {
            Some(Ok(_)) => {
                self.store.list_on_node(&m.from, app, id, false).await?;
                Ok(Moved::Done {
                    from: m.from,
                    to: m.to,
                })
            }
            Some(Err(why)) => Ok(Moved::NotNow(why)),
            None => Err(ServiceError::NotFound("room")),
        }
    }
}

fn switched(room: &Room) -> bool {
    room.migration.as_ref().is_none_or(|m| m.switched)
}

fn none_moving(room: &Room) -> bool {
    !room.members.values().any(|m| m.moving)
}
