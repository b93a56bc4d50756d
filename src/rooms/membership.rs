//! Sessions in rooms: join (muted), leave (the call lives on, parked), mute, unmute; and the
//! session basics: list, hang up.

use uuid::Uuid;

use super::{CooldownGroup, JoinOutcome, Rooms, ServiceError, invalid};
use crate::conference::apply::farewell;
use crate::conference::ops;
use crate::conference::{
    AppId, Member, MemberStatus, Micros, Room, RoomId, Session, SessionId, Switch,
};
use crate::node::NodeError;
use crate::node::bridge::{NodeBridge, bridge_to_node};
use crate::node::commands::{self, HOLD_MUSIC};
use crate::node::supervisor::now_micros;
use crate::store::{Page, Store, update_room};

/// Seconds a room's node has to answer a node-to-node bridge before the join fails (the SIP
/// transaction would take 32 s; answered in 3–7 ms on a LAN).
const BRIDGE_ANSWER_SECS: u32 = 5;
/// Milliseconds without media after which a bridge gives up a dead room's node (the room's node
/// sends RTP all the time; the `nodes` profile's RTP timer makes this fire).
const BRIDGE_MEDIA_TIMEOUT_MS: u32 = 5000;

impl<S: Store> Rooms<S> {
    /// Joins a session (muted) into a room of the same app, on whatever node each is;
    /// confirmed by add-member.
    pub async fn join(
        &self,
        app: &AppId,
        session: &SessionId,
        room_id: &RoomId,
        command_uid: Option<String>,
        join_as: ops::JoinAs,
    ) -> Result<JoinOutcome, ServiceError> {
        let s = self.live_session(app, session).await?;
        let mut room = self.room(app, room_id).await?;
        self.with_intents(&mut room);
        if let Some(current) = self.store.room_of_session(app, session).await? {
            if &current != room_id {
                return Err(ServiceError::Conflict("Session is already in a different conference room. Use conference/leave first.".into()));
            }
            return Ok(JoinOutcome::AlreadyJoined);
        }
        if room.node != session.prefix() {
            return self.join_across(app, &s, &room, command_uid, join_as).await;
        }
        let node = self.node_for_command(&room.node)?;
        let cmd = commands::join(
            session.channel(),
            room_id,
            &node.config.profile,
            join_as.moderator,
        )
        .map_err(invalid)?;
        // Every check the state change makes, before the cooldown is spent.
        ops::request_join_as(&mut room.clone(), &s, None, join_as.clone(), now_micros())?;
        self.cool(app, CooldownGroup::Conference, session.as_str())
            .await?;
        let now = now_micros();
        let intent = move |r: &mut Room| {
            ops::request_join_as(r, &s, command_uid.clone(), join_as.clone(), now)
        };
        let not_sent = |r: &mut Room| ops::join_not_sent(r, session.channel(), now_micros());
        self.send_with_intent(app, room_id, &node, &cmd, true, intent, not_sent)
            .await?;
        Ok(JoinOutcome::Joining)
    }

    /// Joins a call into a room another node hosts: the call's node bridges it over SIP to the
    /// room's node-to-node profile, which puts the leg into the room muted (`node::bridge`);
    /// confirmed, as a local join, by the room node's add-member (of the leg, tied to the session
    /// by its tag).
    async fn join_across(
        &self,
        app: &AppId,
        s: &Session,
        room: &Room,
        command_uid: Option<String>,
        join_as: ops::JoinAs,
    ) -> Result<JoinOutcome, ServiceError> {
        let session = &s.id;
        let (cmd, call_node, out) = self.bridge_plan(session, room)?;
        let now = now_micros();
        ops::request_bridged_join(&mut room.clone(), s, None, join_as.clone(), out, now)?;
        self.cool(app, CooldownGroup::Conference, session.as_str())
            .await?;
        self.change(app, &room.id, |r| {
            ops::request_bridged_join(
                r,
                s,
                command_uid.clone(),
                join_as.clone(),
                out,
                now_micros(),
            )
        })
        .await?;
        if let Err(e) = call_node.expect_ok(&cmd, true).await {
            self.change(app, &room.id, |r| {
                Ok(ops::join_not_sent(r, session.channel(), now_micros()))
            })
            .await?;
            return Err(e.into());
        }
        Ok(JoinOutcome::Joining)
    }

    /// What carries a call on another node into `room`: the command for the call's node (a
    /// bridge to the room node's node-to-node profile), that node, and the outbound leg's uuid.
    pub(super) fn bridge_plan(
        &self,
        session: &SessionId,
        room: &Room,
    ) -> Result<(crate::esl::ApiCommand, crate::node::NodeHandle, Uuid), ServiceError> {
        let room_node = self.pool.get(&room.node)?;
        let call_node = self.pool.get(&session.prefix())?;
        let Some(addr) = room_node.config.node_sip else {
            return Err(ServiceError::Conflict(format!(
                "the room's media node {} has no node-to-node SIP address (node_sip), so calls on other nodes cannot join it",
                room.node
            )));
        };
        // A room's node that is down would refuse the bridge only after the call left park.
        if !room_node.is_up() {
            return Err(NodeError::Unavailable(room.node.to_string()).into());
        }
        let caller = Uuid::parse_str(session.channel())
            .map_err(|_| ServiceError::Invalid("session is not a channel uuid".into()))?;
        let out = Uuid::new_v4();
        let cmd = bridge_to_node(&NodeBridge {
            caller: &caller,
            out: &out,
            session,
            room: &room.id,
            node: addr,
            answer_timeout_secs: BRIDGE_ANSWER_SECS,
            media_timeout_ms: BRIDGE_MEDIA_TIMEOUT_MS,
        })
        .map_err(invalid)?;
        Ok((cmd, call_node, out))
    }

    /// The room a session is in, and its member entry.
    pub(super) async fn membership(
        &self,
        app: &AppId,
        session: &SessionId,
    ) -> Result<(Room, Member), ServiceError> {
        // Both read at once (a round trip saved on every member command); the session's
        // answer is judged first.
        let (live, room_id) = tokio::join!(
            self.live_session(app, session),
            self.store.room_of_session(app, session)
        );
        live?;
        let Some(room_id) = room_id? else {
            return Err(ServiceError::NotFound("session in a conference"));
        };
        let mut room = self
            .room(app, &room_id)
            .await
            .map_err(|_| ServiceError::NotFound("session in a conference"))?;
        self.with_intents(&mut room);
        let member = room
            .member_by_session(session)
            .cloned()
            .ok_or(ServiceError::NotFound("session in a conference"))?;
        Ok((room, member))
    }

    /// Moves a session out of its room; it hears the room's post-actions, then the call is
    /// parked and lives on. Confirmed by del-member.
    pub async fn leave(&self, app: &AppId, session: &SessionId) -> Result<RoomId, ServiceError> {
        let (room, member) = self.membership(app, session).await?;
        ops::request_leave(&mut room.clone(), member.channel(), false, now_micros())?;
        let (node, cmd) = self.take_out(&room, &member)?;
        self.cool(app, CooldownGroup::Conference, session.as_str())
            .await?;
        let (channel, now) = (member.channel().to_owned(), now_micros());
        let intent = move |r: &mut Room| ops::request_leave(r, &channel, false, now);
        let not_sent = |r: &mut Room| ops::leave_not_sent(r, member.channel(), now_micros());
        self.send_with_intent(app, &room.id, &node, &cmd, true, intent, not_sent)
            .await?;
        Ok(room.id)
    }

    /// Kicks a conferencecall out of its room (as leave, reported as `kicked`). A participation
    /// that is over already is answered as it is.
    pub async fn kick(
        &self,
        app: &AppId,
        conferencecall: Uuid,
    ) -> Result<(Room, Member), ServiceError> {
        let room = self
            .room_of_ref(app, conferencecall, "conferencecall")
            .await?;
        let member = room
            .conferencecall(conferencecall)
            .cloned()
            .ok_or(ServiceError::NotFound("conferencecall"))?;
        if member.status == MemberStatus::Leaved || member.status == MemberStatus::Leaving {
            return Ok((room, member));
        }
        ops::request_leave(&mut room.clone(), member.channel(), true, now_micros())?;
        let room = self.move_out(app, &room, &member, true).await?;
        let member = room
            .conferencecall(conferencecall)
            .cloned()
            .ok_or(ServiceError::NotFound("conferencecall"))?;
        Ok((room, member))
    }

    /// The room holding a conferencecall or recording id, for this app.
    pub async fn room_of_ref(
        &self,
        app: &AppId,
        id: Uuid,
        what: &'static str,
    ) -> Result<Room, ServiceError> {
        let Some((owner, room_id)) = self.store.ref_owner(id).await? else {
            return Err(ServiceError::NotFound(what));
        };
        if &owner != app {
            return Err(ServiceError::Forbidden(what));
        }
        self.store
            .room(app, &room_id)
            .await?
            .ok_or(ServiceError::NotFound(what))
    }

    /// The node and the command that take a joined member out of its room, with the room's
    /// post-actions (leave and kick).
    fn take_out(
        &self,
        room: &Room,
        member: &Member,
    ) -> Result<(crate::node::NodeHandle, crate::esl::ApiCommand), ServiceError> {
        let node = self.node_for_command(&room.node)?;
        let exit = member
            .exit()
            .ok_or_else(|| ServiceError::from(ops::OpError::StillJoining))?;
        let cmd = commands::take_out(&exit, &farewell(room)).map_err(invalid)?;
        Ok((node, cmd))
    }

    /// Marks a member `leaving` and sends the command that takes it out with the room's
    /// post-actions; a command the node never took undoes the mark.
    async fn move_out(
        &self,
        app: &AppId,
        room: &Room,
        member: &Member,
        kick: bool,
    ) -> Result<Room, ServiceError> {
        let (node, cmd) = self.take_out(room, member)?;
        let updated = update_room(&*self.store, app, &room.id, |r| {
            let applied = ops::request_leave(r, member.channel(), kick, now_micros())?;
            Ok::<_, ServiceError>(((), applied.events))
        })
        .await?;
        let updated = match updated {
            None => return Err(ServiceError::NotFound("room")),
            Some(Err(e)) => return Err(e),
            Some(Ok((r, ()))) => r,
        };
        if let Err(e) = node.expect_ok(&cmd, true).await {
            self.change(app, &room.id, |r| {
                Ok(ops::leave_not_sent(r, member.channel(), now_micros()))
            })
            .await?;
            return Err(e.into());
        }
        Ok(updated)
    }

    /// Turns a joined member's switch on or off (mute, deaf, hold); the state changes when
    /// FreeSWITCH confirms. Judged against the last command accepted (see
    /// [`ops::request_switch`]): a mute right after an unmute is a change, held back only by the
    /// cooldown; a repeat of a pending one is 409. `music`: what a held member hears (a node
    /// URL; hold music by default).
    pub async fn set_switch(
        &self,
        app: &AppId,
        session: &SessionId,
        switch: Switch,
        on: bool,
        music: Option<&str>,
        uid: Option<&str>,
    ) -> Result<RoomId, ServiceError> {
        let (mut room, member) = self.membership(app, session).await?;
        let channel = member.channel();
        // Every check the state change makes, before the cooldown is spent.
        let mut checked =
            ops::request_switch_by(&mut room.clone(), channel, switch, on, uid, now_micros());
        // "Already so" from a cached read may be a moment behind the command before, answered
        // by another instance: judged again on the room as stored.
        if let Err(ops::OpError::AlreadyInState(_)) = checked
            && let Some(mut fresh) = self.store.room_fresh(app, &room.id).await?
        {
            self.with_intents(&mut fresh);
            checked =
                ops::request_switch_by(&mut fresh.clone(), channel, switch, on, uid, now_micros());
            room = fresh;
        }
        let (_, member_id, repeat) = checked?;
        let node = self.node_for_command(&room.node)?;
        let cmd = match (switch, on) {
            (Switch::Hold, true) => {
                commands::hold(&room.id, member_id, music.unwrap_or(HOLD_MUSIC))
            }
            _ => commands::member_switch(&room.id, switch.verb(on), member_id),
        }
        .map_err(invalid)?;
        if repeat {
            // Its first attempt took effect (or is on its way): sent again, which changes
            // nothing on the node, and accepted again.
            node.expect_ok(&cmd, false).await?;
            return Ok(room.id);
        }
        self.cool(app, CooldownGroup::of(switch), session.as_str())
            .await?;
        let (owned, uid) = (channel.to_owned(), uid.map(str::to_owned));
        let music = music.map(str::to_owned);
        let now = now_micros();
        let intent = move |r: &mut Room| {
            let (applied, _, _) =
                ops::request_switch_by(r, &owned, switch, on, uid.as_deref(), now)?;
            if let (Switch::Hold, true, Some(m)) = (switch, on, r.members.get_mut(&owned)) {
                m.hold_music = music.clone();
            }
            Ok(applied)
        };
        let not_sent = |r: &mut Room| ops::switch_not_sent(r, channel, switch, on, now_micros());
        self.send_with_intent(app, &room.id, &node, &cmd, false, intent, not_sent)
            .await?;
        Ok(room.id)
    }

    /// Plays `file` (a URL as the node fetches it, or a `tts://` text) to the session's member
    /// alone; returns its room and the operation id its completion webhook carries.
    pub async fn announce(
        &self,
        app: &AppId,
        session: &SessionId,
        file: &str,
    ) -> Result<(RoomId, Uuid), ServiceError> {
        let (room, member) = self.membership(app, session).await?;
        let channel = member.channel();
        let op = Uuid::new_v4();
        let (_, member_id) = ops::request_announce(&mut room.clone(), channel, op, now_micros())?;
        let node = self.node_for_command(&room.node)?;
        let cmds = commands::play_tagged(&room.id, &op, file, Some(member_id), node.speech())
            .map_err(invalid)?;
        self.cool(app, CooldownGroup::ConferenceAnnounce, session.as_str())
            .await?;
        // Asked before it is sent, so the node's play-file-member-done always finds it.
        self.change(app, &room.id, |r| {
            Ok(ops::request_announce(r, channel, op, now_micros())?.0)
        })
        .await?;
        for cmd in &cmds {
            if let Err(e) = node.expect_ok(cmd, false).await {
                self.change(app, &room.id, |r| {
                    Ok(ops::announce_not_sent(r, channel, op, now_micros()))
                })
                .await?;
                return Err(e.into());
            }
        }
        Ok((room.id, op))
    }

    /// Hangs up a live call (`uuid_kill`); the session ends when the node reports the hangup.
    pub async fn hangup(&self, app: &AppId, session: &SessionId) -> Result<(), ServiceError> {
        self.live_session(app, session).await?;
        let node = self.pool.get(&session.prefix())?;
        let cmd = commands::kill(session.channel()).map_err(invalid)?;
        node.expect_ok(&cmd, true).await?;
        Ok(())
    }

    /// The app's live sessions by creation time, after `after`.
    pub async fn sessions(
        &self,
        app: &AppId,
        after: Option<(Micros, String)>,
        limit: usize,
    ) -> Result<Page<Session>, ServiceError> {
        Ok(self.store.sessions_of_app(app, after, limit).await?)
    }

    /// The room a session is in, if any.
    pub async fn room_of_session(
        &self,
        app: &AppId,
        session: &SessionId,
    ) -> Result<Option<RoomId>, ServiceError> {
        Ok(self.store.room_of_session(app, session).await?)
    }
}
