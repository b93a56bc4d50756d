//! The room service: what an application can ask of its rooms and sessions. It checks
//! ownership and state, records the pending operation in the store, sends the command to the
//! room's node, and leaves confirmation to the node's event stream. It knows the store and the
//! node pool, not HTTP.

use std::sync::Arc;

use serde_json::json;
use uuid::Uuid;

use crate::conference::apply::{Effect, Step};
use crate::conference::ops::{self, OpError};
use crate::conference::{
    AppId, DomainEvent, EventKind, Member, MemberStatus, Room, RoomId, RoomStatus, RoomType,
    SessionId, SessionState,
};
use crate::node::reconciler::RoomEffect;
use crate::node::supervisor::now_micros;
use crate::node::{NodeError, NodePool, commands};
use crate::store::{Created, Store, StoreError, update_room};

/// Why a request could not be carried out; the API maps each to a status code.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServiceError {
    #[error("{0} not found")]
    NotFound(&'static str),
    /// It exists but belongs to another application.
    #[error("{0} belongs to a different application")]
    Forbidden(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("conference name already taken for this application")]
    NameTaken(RoomId),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<OpError> for ServiceError {
    fn from(e: OpError) -> ServiceError {
        ServiceError::Conflict(e.to_string())
    }
}

/// What `join` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinOutcome {
    Joining,
    AlreadyJoined,
}

pub struct Rooms<S> {
    store: Arc<S>,
    pool: NodePool,
}

impl<S: Store> Rooms<S> {
    pub fn new(store: Arc<S>, pool: NodePool) -> Rooms<S> {
        Rooms { store, pool }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Creates a room on the least-loaded healthy node; it is `starting` until its control leg
    /// is in the FreeSWITCH conference.
    pub async fn create(
        &self,
        app: &AppId,
        name: &str,
        kind: RoomType,
    ) -> Result<Room, ServiceError> {
        let node = self.pool.place()?;
        let id = RoomId::new(&node.config.prefix, Uuid::new_v4());
        let now = now_micros();
        let mut room = Room::new(
            id,
            app.clone(),
            name.to_owned(),
            kind,
            Uuid::new_v4().to_string(),
            now,
        );
        room.core_uuid = node.core_uuid();
        let mut step = Step::new(&mut room, now);
        let data = json!({ "room_id": step.room.id, "name": name });
        step.emit(EventKind::Created, data);
        let events = step.finish().events;
        match self.store.create_room(&room, &events).await? {
            Created::NameTaken(existing) => return Err(ServiceError::NameTaken(existing)),
            Created::Created => {}
        }
        node.request(RoomEffect {
            app: app.clone(),
            room: room.id.clone(),
            effect: Effect::EstablishControlLeg,
        });
        Ok(room)
    }

    /// A room of this app; another app's room is `Forbidden`, an unknown one `NotFound`.
    pub async fn room(&self, app: &AppId, id: &RoomId) -> Result<Room, ServiceError> {
        if let Some(room) = self.store.room(app, id).await? {
            return Ok(room);
        }
        match self.store.room_app(id).await? {
            Some(_) => Err(ServiceError::Forbidden("room")),
            None => Err(ServiceError::NotFound("room")),
        }
    }

    async fn live_session(
        &self,
        app: &AppId,
        id: &SessionId,
    ) -> Result<crate::conference::Session, ServiceError> {
        match self.store.session(app, id).await? {
            Some(s) if s.state != SessionState::Ended => Ok(s),
            Some(_) => Err(ServiceError::NotFound("session")),
            None => match self.store.session_app(id).await? {
                Some(_) => Err(ServiceError::Forbidden("session")),
                None => Err(ServiceError::NotFound("session")),
            },
        }
    }

    /// Joins a session (muted) into a room of the same app and node.
    pub async fn join(
        &self,
        app: &AppId,
        session: &SessionId,
        room_id: &RoomId,
        command_uid: Option<String>,
    ) -> Result<JoinOutcome, ServiceError> {
        let s = self.live_session(app, session).await?;
        let room = self.room(app, room_id).await?;
        if let Some(current) = self.store.room_of_session(app, session).await? {
            if &current != room_id {
                return Err(ServiceError::Conflict("Session is already in a different conference room. Use conference/leave first.".into()));
            }
            return Ok(JoinOutcome::AlreadyJoined);
        }
        if room.node != session.prefix() {
            return Err(ServiceError::Conflict(
                "session and room are on different media nodes".into(),
            ));
        }
        let node = self.pool.get(&room.node)?;
        let cmd = commands::join(session.channel(), room_id, &node.config.profile)
            .map_err(|e| ServiceError::Conflict(e.to_string()))?;
        self.change(app, room_id, |r| {
            ops::request_join(r, &s, command_uid.clone(), now_micros())
        })
        .await?;
        if let Err(e) = node.expect_ok(&cmd, true).await {
            // Undo: the join never reached the call.
            self.change(app, room_id, |r| {
                Ok(ops::expire_joins(r, Micros::MAX, now_micros()))
            })
            .await?;
            return Err(e.into());
        }
        Ok(JoinOutcome::Joining)
    }

    /// The room a session is in, and its member entry.
    async fn membership(
        &self,
        app: &AppId,
        session: &SessionId,
    ) -> Result<(Room, Member), ServiceError> {
        self.live_session(app, session).await?;
        let Some(room_id) = self.store.room_of_session(app, session).await? else {
            return Err(ServiceError::NotFound("session in a conference"));
        };
        let room = self.room(app, &room_id).await?;
        let member = room
            .member_by_session(session)
            .cloned()
            .ok_or(ServiceError::NotFound("session in a conference"))?;
        Ok((room, member))
    }

    /// Moves a session out of its room; the call is parked and lives on.
    pub async fn leave(&self, app: &AppId, session: &SessionId) -> Result<RoomId, ServiceError> {
        let (room, member) = self.membership(app, session).await?;
        if member.status == MemberStatus::Joining {
            return Err(OpError::StillJoining.into());
        }
        let node = self.pool.get(&room.node)?;
        let cmd =
            commands::park(&member.channel).map_err(|e| ServiceError::Conflict(e.to_string()))?;
        self.change(app, &room.id, |r| {
            ops::request_leave(r, &member.channel, now_micros())
        })
        .await?;
        node.expect_ok(&cmd, true).await?;
        Ok(room.id)
    }

    /// Mutes or unmutes a joined member; the state changes when FreeSWITCH confirms.
    pub async fn set_muted(
        &self,
        app: &AppId,
        session: &SessionId,
        muted: bool,
    ) -> Result<RoomId, ServiceError> {
        let (room, member) = self.membership(app, session).await?;
        let Some(member_id) = member
            .member_id
            .filter(|_| member.status == MemberStatus::Joined)
        else {
            return Err(OpError::StillJoining.into());
        };
        if member.muted == muted {
            return Err(OpError::AlreadyInState(if muted { "muted" } else { "unmuted" }).into());
        }
        let node = self.pool.get(&room.node)?;
        let verb = if muted { "mute" } else { "unmute" };
        let cmd = commands::member(&room.id, verb, member_id)
            .map_err(|e| ServiceError::Conflict(e.to_string()))?;
        node.expect_ok(&cmd, false).await?;
        Ok(room.id)
    }

    /// Ends a room: members are moved out (their calls live on), the control leg is released.
    pub async fn delete(&self, app: &AppId, id: &RoomId) -> Result<(), ServiceError> {
        let room = self.room(app, id).await?;
        if room.status == RoomStatus::Terminated {
            return Err(ServiceError::NotFound("room"));
        }
        self.change(app, id, |r| Ok(ops::request_terminate(r, now_micros())))
            .await?;
        if room.conference_uuid.is_none() {
            self.change(app, id, |r| Ok(ops::finish_terminate(r, now_micros())))
                .await?;
        }
        let node = self.pool.get(&room.node)?;
        for m in room.members.values() {
            if let Ok(cmd) = commands::park(&m.channel) {
                let _ = node.api(&cmd).await;
            }
        }
        match commands::kill(&room.control.channel) {
            // The control leg may already be gone; its conference-destroy ends the room.
            Ok(cmd) => drop(node.api(&cmd).await?),
            Err(e) => return Err(ServiceError::Conflict(e.to_string())),
        }
        Ok(())
    }

    /// One atomic room change through a domain operation.
    async fn change(
        &self,
        app: &AppId,
        id: &RoomId,
        mut op: impl FnMut(&mut Room) -> Result<crate::conference::Applied, OpError> + Send,
    ) -> Result<Vec<DomainEvent>, ServiceError> {
        let result = update_room(&*self.store, app, id, |r| {
            let applied = op(r)?;
            Ok::<_, OpError>((applied.events.clone(), applied.events))
        })
        .await?;
        match result {
            None => Err(ServiceError::NotFound("room")),
            Some(Err(e)) => Err(e.into()),
            Some(Ok((_, events))) => Ok(events),
        }
    }
}

use crate::conference::Micros;
