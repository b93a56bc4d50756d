//! What the application asks of a room (through the API), checked against the room's state.
//! Each operation changes the room and says what to tell the node; FreeSWITCH's confirmation
//! arrives later as a fact. Members (join, leave, mute), the room's end and its recordings are
//! here; playback is in [`playback`].

mod announce;
mod coach;
mod dialout;
mod moving;
mod playback;
mod recording;
mod streams;

pub use announce::{MAX_ANNOUNCEMENTS, announce_not_sent, request_announce};
pub use coach::{Coaching, coach_not_sent, coaching_sent, request_coach, request_uncoach};
pub use dialout::{
    DIALOUT_GRACE_SECS, MAX_DIALOUTS, dialout_lost, dialout_not_sent, request_dialout,
};
pub use moving::{movable, move_in_not_sent, move_out_not_sent, request_move_in, request_move_out};
pub use playback::{
    check_pause, play_not_sent, request_play, restore_playback, set_volume, stop_playback,
    toggle_pause,
};
pub use recording::{pause_not_sent, request_pause};
pub(crate) use streams::end_where as end_streams_where;
pub use streams::{
    MAX_STREAMS_PER_ROOM, adopt_stream, end_stream, member_target, request_stream, stream_data,
    stream_legs, stream_started,
};

use serde_json::json;
use uuid::Uuid;

use super::apply::{
    Applied, Step, end_recording, expire_dialouts, member_data, remove_member, terminate,
};
use super::events::EventKind;
use super::model::{
    Bridge, Exit, LeaveReason, Member, MemberStatus, Micros, Recording, RecordingStatus, Room,
    RoomStatus, RoomType, Session, Switch,
};

/// Why an operation is refused (the API turns these into status codes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    #[error("the room is {0}")]
    RoomNotActive(&'static str),
    #[error("session already joined this room")]
    AlreadyJoined,
    #[error("session is still joining this room")]
    StillJoining,
    #[error("session is not in this room")]
    NotInRoom,
    #[error("a connect room takes two participants")]
    ConnectFull,
    #[error("the room is full (max_participants {0})")]
    RoomFull(u64),
    #[error("member is already {0}")]
    AlreadyInState(&'static str),
    #[error("nothing is playing in this room")]
    NothingPlaying,
    #[error("the room is already recording")]
    AlreadyRecording,
    #[error("the room is not recording")]
    NotRecording,
    #[error("the recording is already stopping")]
    RecordingStopping,
    #[error("the recording is already {0}")]
    RecordingAlready(&'static str),
    #[error("the recording has not started yet")]
    RecordingStarting,
    #[error("the member already has {0} announcements on their way")]
    TooManyAnnouncements(usize),
    #[error("session {0} is not a member of this room")]
    NotAMember(String),
    #[error("a member cannot coach itself")]
    CoachSelf,
    #[error("member is not coaching")]
    NotCoaching,
    #[error("the room is already placing {0} calls")]
    TooManyDialouts(usize),
    /// The room is moving to another node (a second or so): asked again, it is served there.
    #[error("the room is moving to another media node")]
    Moving,
    #[error("Room is locked")]
    Locked,
    #[error("the room already has {0} live streams")]
    TooManyStreams(usize),
}

/// How a member joins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinAs {
    /// A moderator (the node's `moderator` flag): releases a room waiting for one.
    pub moderator: bool,
    /// The room ends when this member leaves.
    pub end_on_exit: bool,
    /// The application's data about the participation.
    pub metadata: Option<crate::conference::Metadata>,
}

/// `join`: the member is `joining` until add-member confirms it.
pub fn request_join(
    room: &mut Room,
    session: &Session,
    command_uid: Option<String>,
    now: Micros,
) -> Result<Applied, OpError> {
    request_join_as(room, session, command_uid, JoinAs::default(), now)
}

/// [`request_join`] as a moderator, or a member that ends the room on leaving.
pub fn request_join_as(
    room: &mut Room,
    session: &Session,
    command_uid: Option<String>,
    join_as: JoinAs,
    now: Micros,
) -> Result<Applied, OpError> {
    require_active(room)?;
    if room.locked {
        return Err(OpError::Locked);
    }
    if let Some(m) = room.members.get(session.id.channel()) {
        return Err(match m.status {
            MemberStatus::Joining => OpError::StillJoining,
            _ => OpError::AlreadyJoined,
        });
    }
    // Every participation counts until it has left: a leaving member still holds its place, and
    // so does a call the room is placing.
    let held = (room.members.len() + room.dialouts.len()) as u64;
    if room.kind == RoomType::Connect && held >= 2 {
        return Err(OpError::ConnectFull);
    }
    if room.max_participants > 0 && held >= room.max_participants {
        return Err(OpError::RoomFull(room.max_participants));
    }
    let member = Member {
        moderator: join_as.moderator,
        end_on_exit: join_as.end_on_exit,
        metadata: join_as.metadata,
        ..Member::requested(session, command_uid, now)
    };
    let data = member_data(room, &member);
    room.members.insert(member.channel().to_owned(), member);
    let mut step = Step::new(room, now);
    step.emit(EventKind::MemberJoining, data);
    Ok(step.finish())
}

/// [`request_join_as`] of a call on another node than the room, carried to the room's node by
/// a node-to-node bridge whose outbound leg (on the call's node) is `out`.
pub fn request_bridged_join(
    room: &mut Room,
    session: &Session,
    command_uid: Option<String>,
    join_as: JoinAs,
    out: Uuid,
    now: Micros,
) -> Result<Applied, OpError> {
    let applied = request_join_as(room, session, command_uid, join_as, now)?;
    if let Some(m) = room.members.get_mut(session.id.channel()) {
        m.bridge = Some(Bridge { out, leg: None });
    }
    Ok(applied)
}

/// `leave` (or, with `kick`, the application removing a conferencecall): `leaving` until
/// del-member confirms it.
pub fn request_leave(
    room: &mut Room,
    channel: &str,
    kick: bool,
    now: Micros,
) -> Result<Applied, OpError> {
    require_steady(room)?;
    let m = room.members.get_mut(channel).ok_or(OpError::NotInRoom)?;
    match m.status {
        MemberStatus::Joining => return Err(OpError::StillJoining),
        MemberStatus::Leaving => return Err(OpError::AlreadyInState("leaving")),
        _ => {}
    }
    m.kicked = kick;
    m.status = MemberStatus::Leaving;
    m.updated_at = now;
    let data = member_data(room, &room.members[channel]);
    let mut step = Step::new(room, now);
    step.emit(EventKind::MemberLeaving, data);
    Ok(step.finish())
}

/// A switch turned on (`on`) or off (mute, deaf, hold): judged against the last command
/// asked, not only what the node has reported, so a mute right after an unmute is a change
/// (the unmute is on its way) and a repeat of a pending mute is not. Pending until the node
/// reports the member so. Returns the member id to address on the node.
pub fn request_switch(
    room: &mut Room,
    channel: &str,
    switch: Switch,
    on: bool,
    now: Micros,
) -> Result<(Applied, u32), OpError> {
    request_switch_by(room, channel, switch, on, None, now).map(|(a, id, _)| (a, id))
}

/// [`request_switch`] asked with a `command_uid`, which the member keeps with the request. The
/// same uid asked again when the member is already as it asks (a retry of a command whose
/// answer was lost, though it took effect: another instance may answer the retry) is a repeat,
/// not a conflict: `true`, and nothing changes (sending it again does no harm).
pub fn request_switch_by(
    room: &mut Room,
    channel: &str,
    switch: Switch,
    on: bool,
    uid: Option<&str>,
    now: Micros,
) -> Result<(Applied, u32, bool), OpError> {
    require_steady(room)?;
    let m = room.members.get_mut(channel).ok_or(OpError::NotInRoom)?;
    let Some(member_id) = m.member_id.filter(|_| m.status == MemberStatus::Joined) else {
        return Err(OpError::StillJoining);
    };
    if m.as_asked(switch) == on {
        if uid.is_some() && m.switch_uid.as_deref() == uid {
            return Ok((Applied::default(), member_id, true));
        }
        return Err(OpError::AlreadyInState(switch.state(on)));
    }
    *m.switch_mut(switch).1 = Some(on);
    let asks = m.asks_mut(switch);
    *asks = asks.saturating_add(1);
    m.switch_uid = uid.map(str::to_owned);
    m.updated_at = now;
    let mut step = Step::new(room, now);
    step.touch();
    Ok((step.finish(), member_id, false))
}

/// A switch command (`on`) that never reached the node: the member is as asked before it (the
/// opposite: only a change is sent).
pub fn switch_not_sent(
    room: &mut Room,
    channel: &str,
    switch: Switch,
    on: bool,
    now: Micros,
) -> Applied {
    let mut step = Step::new(room, now);
    if let Some(m) = step
        .room
        .members
        .get_mut(channel)
        .filter(|m| m.pending(switch) == Some(on))
    {
        let asks = m.asks_mut(switch);
        *asks = asks.saturating_sub(1);
        let (state, pending) = m.switch_mut(switch);
        *pending = (*state == on).then_some(!on);
        m.updated_at = now;
        step.touch();
    }
    step.finish()
}

/// Joins requested before `deadline` that FreeSWITCH never confirmed fail, and say so; so do
/// dial-outs past their own deadline.
pub fn expire_joins(room: &mut Room, deadline: Micros, now: Micros) -> Applied {
    let stale: Vec<String> = room
        .members
        .values()
        .filter(|m| m.status == MemberStatus::Joining && m.requested_at < deadline)
        .map(|m| m.channel().to_owned())
        .collect();
    let mut step = Step::new(room, now);
    for channel in &stale {
        remove_member(&mut step, channel, LeaveReason::JoinFailed, None);
    }
    expire_dialouts(&mut step, now);
    step.finish()
}

/// The room is being deleted (or timed out): `terminating` until its conference is gone on the
/// node. Its joined members are on their way out (kicked); the channels to move out are returned.
/// `reason` (`deleted`, `timeout`) goes with `conference.destroyed`.
pub fn request_terminate(room: &mut Room, reason: &str, now: Micros) -> (Applied, Vec<Exit>) {
    let mut step = Step::new(room, now);
    let mut leaving = Vec::new();
    if step.room.status < RoomStatus::Terminating {
        let data = json!({ "room_id": step.room.id, "name": step.room.name, "reason": reason });
        step.emit(EventKind::Destroyed, data);
        step.set_status(RoomStatus::Terminating);
        let channels: Vec<String> = step.room.members.keys().cloned().collect();
        for channel in channels {
            let Some(m) = step.room.members.get_mut(&channel) else {
                continue;
            };
            leaving.extend(m.exit());
            if m.status != MemberStatus::Joined {
                continue;
            }
            m.status = MemberStatus::Leaving;
            m.kicked = true;
            m.updated_at = now;
            let data = member_data(step.room, &step.room.members[&channel]);
            step.emit(EventKind::MemberLeaving, data);
        }
    }
    (step.finish(), leaving)
}

/// Starts a recording of the room into `path` (on the node); `initiating` until the node's
/// start-recording confirms it.
pub fn request_recording(
    room: &mut Room,
    id: Uuid,
    path: &str,
    now: Micros,
) -> Result<Applied, OpError> {
    require_active(room)?;
    if room.recording.is_some() {
        return Err(OpError::AlreadyRecording);
    }
    room.recordings.push(Recording {
        id,
        path: path.to_owned(),
        node: Some(room.node.clone()),
        format: "wav".into(),
        status: RecordingStatus::Initiating,
        requested_at: now,
        started_at: None,
        ended_at: None,
        duration_ms: None,
        error: None,
        pause_requested: None,
        size_bytes: None,
        upload: None,
        segments: Vec::new(),
        updated_at: now,
    });
    room.recording = Some(id);
    let mut step = Step::new(room, now);
    step.touch();
    Ok(step.finish())
}

/// Asks the active recording to stop; returns its path. `stopping` until stop-recording.
pub fn request_recording_stop(room: &mut Room, now: Micros) -> Result<(Applied, String), OpError> {
    let id = room.recording.ok_or(OpError::NotRecording)?;
    let rec = room
        .recordings
        .iter_mut()
        .find(|r| r.id == id)
        .ok_or(OpError::NotRecording)?;
    // A stop already sent and not yet confirmed: the node has let the file go, and a second
    // `norecord` would only be refused by it.
    if rec.status == RecordingStatus::Stopping {
        return Err(OpError::RecordingStopping);
    }
    let path = rec.path.clone();
    rec.status = RecordingStatus::Stopping;
    rec.updated_at = now;
    let mut step = Step::new(room, now);
    step.touch();
    Ok((step.finish(), path))
}

/// A recording the node refused (or never got): it ends with the error.
pub fn recording_failed(room: &mut Room, id: Uuid, error: &str, now: Micros) -> Applied {
    let mut step = Step::new(room, now);
    end_recording(&mut step, id, None, Some(error), now);
    step.finish()
}

/// The room's conference is already gone from the node (or never existed): it is over, and
/// any member still listed (a join on its way) leaves first.
pub fn finish_terminate(room: &mut Room, now: Micros) -> Applied {
    let mut step = Step::new(room, now);
    terminate(&mut step, LeaveReason::RoomEnded);
    step.finish()
}

/// A join whose command never reached the node: the member is removed as `join_failed`.
pub fn join_not_sent(room: &mut Room, channel: &str, now: Micros) -> Applied {
    let mut step = Step::new(room, now);
    if step
        .room
        .members
        .get(channel)
        .is_some_and(|m| m.status == MemberStatus::Joining)
    {
        remove_member(&mut step, channel, LeaveReason::JoinFailed, None);
    }
    step.finish()
}

/// A leave whose command never reached the node: the member is joined again.
pub fn leave_not_sent(room: &mut Room, channel: &str, now: Micros) -> Applied {
    let mut step = Step::new(room, now);
    if let Some(m) = step
        .room
        .members
        .get_mut(channel)
        .filter(|m| m.status == MemberStatus::Leaving)
    {
        m.status = MemberStatus::Joined;
        m.kicked = false;
        m.updated_at = now;
        step.touch();
    }
    step.finish()
}

/// Room playback needs a live room (its control leg holds the FreeSWITCH conference open).
pub(super) fn require_active(room: &Room) -> Result<(), OpError> {
    if room.status != RoomStatus::Progressing {
        return Err(OpError::RoomNotActive(room.status.as_str()));
    }
    require_steady(room)
}

/// Locks (`locked`) or unlocks the room: a locked room takes no joins or dial-outs, and its
/// members stay. Told once (`conference.locked` / `conference.unlocked`); asking for what the
/// room already is changes nothing.
pub fn set_lock(room: &mut Room, locked: bool, now: Micros) -> Result<Applied, OpError> {
    if matches!(
        room.status,
        RoomStatus::Terminating | RoomStatus::Terminated
    ) {
        return Err(OpError::RoomNotActive(room.status.as_str()));
    }
    let mut step = Step::new(room, now);
    if step.room.locked == locked {
        return Ok(step.finish());
    }
    step.room.locked = locked;
    let data = serde_json::json!({ "room_id": step.room.id, "locked": locked });
    let kind = match locked {
        true => EventKind::Locked,
        false => EventKind::Unlocked,
    };
    step.emit(kind, data);
    Ok(step.finish())
}

/// Replaces the application's data about the room (`None`: clears it); told once with
/// `conference.metadata.updated` when it changed.
pub fn set_room_metadata(
    room: &mut Room,
    metadata: Option<crate::conference::Metadata>,
    now: Micros,
) -> Result<Applied, OpError> {
    if room.status == RoomStatus::Terminated {
        return Err(OpError::RoomNotActive(room.status.as_str()));
    }
    let mut step = Step::new(room, now);
    if step.room.metadata == metadata {
        return Ok(step.finish());
    }
    step.room.metadata = metadata;
    let data = serde_json::json!({
        "room_id": step.room.id,
        "uuid": null,
        "metadata": step.room.metadata,
    });
    step.emit(EventKind::MetadataUpdated, data);
    Ok(step.finish())
}

/// Replaces the application's data about a member (the session's participation in the
/// room); told once with `conference.metadata.updated` (the member's data) when it changed.
pub fn set_member_metadata(
    room: &mut Room,
    channel: &str,
    metadata: Option<crate::conference::Metadata>,
    now: Micros,
) -> Result<Applied, OpError> {
    if room.status == RoomStatus::Terminated {
        return Err(OpError::RoomNotActive(room.status.as_str()));
    }
    let m = room.members.get_mut(channel).ok_or(OpError::NotInRoom)?;
    if m.metadata == metadata {
        return Ok(Step::new(room, now).finish());
    }
    m.metadata = metadata;
    m.updated_at = now;
    let data = member_data(room, &room.members[channel]);
    let mut step = Step::new(room, now);
    step.emit(EventKind::MetadataUpdated, data);
    Ok(step.finish())
}

/// Refuses a command while the room moves to another node: its member ids and node are
/// changing under it.
pub fn require_steady(room: &Room) -> Result<(), OpError> {
    match room.migration {
        Some(_) => Err(OpError::Moving),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conference::{AppId, ConferenceFact, NodePrefix, RoomId, SessionId, apply};

    const CH: &str = "28ec5c5e-0cdb-4582-983d-48f16177e7f7";

    /// A live room with one member, joined muted (member id 7).
    fn room() -> Room {
        let prefix = NodePrefix::parse("abcde").unwrap();
        let app = AppId::parse("app").unwrap();
        let mut r = Room::new(
            RoomId::new(&prefix, Uuid::new_v4()),
            app.clone(),
            "r".into(),
            RoomType::Conference,
            Uuid::new_v4().to_string(),
            1,
        );
        r.status = RoomStatus::Progressing;
        let session = Session {
            id: SessionId::new(&prefix, CH),
            app,
            did: "100".into(),
            caller_id: "1001".into(),
            caller_name: "A".into(),
            state: crate::conference::SessionState::Parked,
            core_uuid: "core".into(),
            created_at: 1,
            answered_at: Some(1),
            ended_at: None,
            hangup_cause: None,
            seq: 1,
        };
        request_join(&mut r, &session, None, 1).unwrap();
        let added = ConferenceFact::MemberAdded {
            channel: CH.into(),
            member_id: 7,
            speak: false,
            moderator: false,
        };
        apply(&mut r, "core", "c", &added, None, 2);
        r
    }

    fn report(r: &mut Room, muted: bool) {
        let (channel, member_id) = (CH.to_owned(), 7);
        let fact = if muted {
            ConferenceFact::MemberMuted { channel, member_id }
        } else {
            ConferenceFact::MemberUnmuted { channel, member_id }
        };
        apply(r, "core", "c", &fact, None, 9);
    }

    #[test]
    fn a_retried_command_whose_answer_was_lost_is_accepted_again_not_refused_as_done() {
        let mut r = room();
        // The unmute is asked under a uid; its sender gives up on it (not sent, it thinks)…
        request_switch_by(&mut r, CH, Switch::Mute, false, Some("u1"), 3).unwrap();
        switch_not_sent(&mut r, CH, Switch::Mute, false, 3);
        // …but the node took it and reports it.
        report(&mut r, false);
        assert!(!r.members[CH].muted);
        // The retry of that uid is accepted again; another uid asking the same is refused.
        let (_, member_id, repeat) =
            request_switch_by(&mut r, CH, Switch::Mute, false, Some("u1"), 4).unwrap();
        assert_eq!((member_id, repeat), (7, true));
        assert_eq!(
            request_switch_by(&mut r, CH, Switch::Mute, false, Some("u2"), 4).map(|x| x.2),
            Err(OpError::AlreadyInState("unmuted"))
        );
        assert_eq!(
            request_switch_by(&mut r, CH, Switch::Mute, false, None, 4).map(|x| x.2),
            Err(OpError::AlreadyInState("unmuted"))
        );
    }

    #[test]
    fn an_older_commands_report_does_not_settle_a_newer_one_of_the_same_value() {
        let mut r = room();
        // Unmute, mute, unmute, each accepted before the node's reports are applied (they
        // wait for a new owner of the node's events).
        for on in [false, true, false] {
            request_switch(&mut r, CH, Switch::Mute, on, 3).unwrap();
        }
        // The first unmute's report: the last unmute is still on its way.
        report(&mut r, false);
        assert_eq!(r.members[CH].mute_requested, Some(false));
        // The mute's report shows the member muted, but what was last asked stands: a mute
        // now is a change, not "already muted".
        report(&mut r, true);
        assert!(r.members[CH].muted);
        assert!(request_switch(&mut r.clone(), CH, Switch::Mute, true, 4).is_ok());
        // The last report settles it.
        report(&mut r, false);
        assert_eq!(r.members[CH].mute_requested, None);
        assert!(!r.members[CH].muted);
    }

    #[test]
    fn a_mute_is_judged_against_the_last_command_asked() {
        let mut r = room();
        let already = |m: &'static str| Err(OpError::AlreadyInState(m));
        assert_eq!(
            request_switch(&mut r, CH, Switch::Mute, true, 3).map(|x| x.1),
            already("muted")
        );
        assert_eq!(
            request_switch(&mut r, CH, Switch::Mute, false, 3)
                .unwrap()
                .1,
            7
        );
        // The unmute is on its way: a mute is a change, another unmute is not.
        assert_eq!(
            request_switch(&mut r, CH, Switch::Mute, false, 4).map(|x| x.1),
            already("unmuted")
        );
        request_switch(&mut r, CH, Switch::Mute, true, 4).unwrap();
        assert_eq!(
            request_switch(&mut r, CH, Switch::Mute, true, 5).map(|x| x.1),
            already("muted")
        );
        // The node reports the unmute, then the mute: the member is as last asked.
        report(&mut r, false);
        assert!(
            r.members[CH].as_asked(Switch::Mute),
            "the mute is still on its way"
        );
        report(&mut r, true);
        assert_eq!(r.members[CH].mute_requested, None);
        assert!(r.members[CH].muted);
        assert_eq!(
            request_switch(&mut r, CH, Switch::Mute, true, 6).map(|x| x.1),
            already("muted")
        );
    }

    #[test]
    fn a_mute_that_never_reached_the_node_is_forgotten() {
        let mut r = room();
        request_switch(&mut r, CH, Switch::Mute, false, 3).unwrap();
        switch_not_sent(&mut r, CH, Switch::Mute, false, 4);
        assert_eq!(r.members[CH].mute_requested, None);
        // After a pending unmute, a mute not sent leaves the unmute pending.
        request_switch(&mut r, CH, Switch::Mute, false, 5).unwrap();
        request_switch(&mut r, CH, Switch::Mute, true, 6).unwrap();
        switch_not_sent(&mut r, CH, Switch::Mute, true, 7);
        assert_eq!(r.members[CH].mute_requested, Some(false));
        assert!(!r.members[CH].as_asked(Switch::Mute));
    }
}
