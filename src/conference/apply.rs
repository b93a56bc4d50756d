//! `apply`: folds one FreeSWITCH conference fact into a room. Pure: no I/O, no clock (the caller
//! passes `now`). Applying the same fact twice changes nothing the second time; facts about
//! members the room does not know, or from a FreeSWITCH process the room does not live in, are
//! ignored and say why.

use std::sync::LazyLock;

use serde_json::json;
use uuid::Uuid;

use super::actions::{self, Talk};
use super::events::{DomainEvent, EventKind};
use super::facts::ConferenceFact;
use super::model::{
    LeaveReason, Member, MemberStatus, Micros, PlaybackStatus, RecordingStatus, Room, RoomStatus,
    RoomType, Session,
};

/// Why a fact changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// The room is terminated; nothing more happens to it.
    Terminated,
    /// The fact came from another FreeSWITCH process than the one the room lives in.
    StaleCore,
    /// A member the room does not know (or a stale member id).
    UnknownMember,
    /// A playback or recording the room is not running.
    UnknownOperation,
    /// The fact restates what the room already holds.
    NoChange,
}

/// Work the node must do because of a fact (the domain decides, the node layer acts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// The control leg is gone while the room should live: originate it again.
    EstablishControlLeg,
    /// Take this channel out of the room (a `connect` partner left), saying the room's
    /// post-actions to it on its way out.
    Eject { channel: String, talks: Vec<Talk> },
    /// Say the room's pre-actions to a member who has just joined.
    Greet { member_id: u32, talks: Vec<Talk> },
    /// The room is over on our side: hang up the control leg.
    ReleaseControlLeg,
}

/// What applying a fact did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Applied {
    pub events: Vec<DomainEvent>,
    pub effects: Vec<Effect>,
    pub ignored: Option<Ignored>,
    /// The room changed (its `seq` moved).
    pub changed: bool,
}

impl Applied {
    fn ignored(why: Ignored) -> Applied {
        Applied {
            ignored: Some(why),
            ..Applied::default()
        }
    }
}

/// Context of one apply step.
pub struct Step<'a> {
    pub room: &'a mut Room,
    pub now: Micros,
    pub out: Applied,
}

impl<'a> Step<'a> {
    pub fn new(room: &'a mut Room, now: Micros) -> Step<'a> {
        Step {
            room,
            now,
            out: Applied::default(),
        }
    }

    /// Records a change: `seq` grows by one.
    pub fn touch(&mut self) {
        self.room.seq += 1;
        self.room.updated_at = self.now;
        self.out.changed = true;
    }

    /// Records a change that the application hears about.
    pub fn emit(&mut self, kind: EventKind, data: serde_json::Value) {
        self.touch();
        self.out.events.push(DomainEvent {
            kind,
            app: self.room.app.clone(),
            room: self.room.id.clone(),
            seq: self.room.seq,
            at: self.now,
            data,
            redelivers: None,
        });
    }

    pub fn set_status(&mut self, status: RoomStatus) {
        if status <= self.room.status {
            return;
        }
        self.room.status = status;
        if status == RoomStatus::Terminated {
            self.room.deleted_at = Some(self.now);
        }
        let kind = match status {
            RoomStatus::Starting => return,
            RoomStatus::Progressing => EventKind::Progressing,
            RoomStatus::Terminating => EventKind::Terminating,
            RoomStatus::Terminated => EventKind::Terminated,
        };
        self.emit(
            kind,
            json!({ "room_id": self.room.id, "status": status.as_str() }),
        );
    }

    pub fn finish(self) -> Applied {
        self.out
    }
}

/// The keys of [`member_data`], in order.
const MEMBER_KEYS: [&str; 11] = [
    "room_id",
    "uuid",
    "conferencecall_id",
    "member_id",
    "did",
    "caller_id",
    "muted",
    "status",
    "command_uid",
    "reason",
    "hangup_cause",
];

/// [`MEMBER_KEYS`] as a map of nulls: a copy of it has its keys hashed and placed already.
static MEMBER_TEMPLATE: LazyLock<serde_json::Map<String, serde_json::Value>> =
    LazyLock::new(|| {
        MEMBER_KEYS
            .iter()
            .map(|k| ((*k).to_owned(), serde_json::Value::Null))
            .collect()
    });

/// The webhook data of a member event: what `json!` would build (the same keys, values and
/// order), made from a copy of a template of its keys since it is made for nearly every event.
pub fn member_data(room: &Room, m: &Member) -> serde_json::Value {
    let mut uuid = Uuid::encode_buffer();
    let values: [serde_json::Value; 11] = [
        room.id.as_str().into(),
        m.session.as_str().into(),
        (&*m.conferencecall_id.hyphenated().encode_lower(&mut uuid)).into(),
        m.member_id.into(),
        m.did.as_str().into(),
        m.caller_id.as_str().into(),
        m.muted.into(),
        value(m.status),
        m.command_uid.as_deref().into(),
        value(m.leave_reason),
        m.hangup_cause.as_deref().into(),
    ];
    let mut data = MEMBER_TEMPLATE.clone();
    for (slot, v) in data.values_mut().zip(values) {
        *slot = v;
    }
    serde_json::Value::Object(data)
}

/// A value as `json!` writes it (these serialize infallibly).
fn value(x: impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(x).unwrap_or(serde_json::Value::Null)
}

/// Applies one conference fact. `session` is the session record of the channel the fact is
/// about, when there is one (it lets a member the controller did not add be recognised).
pub fn apply(
    room: &mut Room,
    core_uuid: &str,
    conference_uuid: &str,
    fact: &ConferenceFact,
    session: Option<&Session>,
    now: Micros,
) -> Applied {
    if room.status == RoomStatus::Terminated {
        return Applied::ignored(Ignored::Terminated);
    }
    if room.core_uuid.as_deref().is_some_and(|c| c != core_uuid) {
        return Applied::ignored(Ignored::StaleCore);
    }
    let mut step = Step::new(room, now);
    match fact {
        ConferenceFact::Created => conference_created(&mut step, core_uuid, conference_uuid),
        ConferenceFact::Destroyed => conference_destroyed(&mut step, conference_uuid),
        ConferenceFact::MemberAdded {
            channel,
            member_id,
            speak,
        } => member_added(&mut step, channel, *member_id, *speak, session),
        ConferenceFact::MemberDeleted {
            channel,
            member_id,
            cause,
        } => member_deleted(&mut step, channel, *member_id, cause.as_deref()),
        ConferenceFact::MemberMuted { channel, member_id } => {
            set_muted(&mut step, channel, *member_id, true)
        }
        ConferenceFact::MemberUnmuted { channel, member_id } => {
            set_muted(&mut step, channel, *member_id, false)
        }
        ConferenceFact::MemberKicked { channel, member_id } => {
            kicked(&mut step, channel, *member_id)
        }
        ConferenceFact::PlayFile {
            error: Some(_),
            op,
            file,
        } => file_done(&mut step, op.as_deref(), file, true),
        ConferenceFact::PlayFile { .. } => step.out.ignored = Some(Ignored::NoChange),
        ConferenceFact::PlayFileDone { op, file } => {
            file_done(&mut step, op.as_deref(), file, false)
        }
        ConferenceFact::RecordingStarted { path, error } => {
            recording_started(&mut step, path, error.as_deref())
        }
        ConferenceFact::RecordingStopped { path, millis } => {
            recording_stopped(&mut step, path, *millis)
        }
    }
    let mut out = step.finish();
    if !out.changed && out.ignored.is_none() {
        out.ignored = Some(Ignored::NoChange);
    }
    out
}

fn conference_created(step: &mut Step<'_>, core_uuid: &str, conference_uuid: &str) {
    if step.room.conference_uuid.as_deref() == Some(conference_uuid)
        && step.room.core_uuid.as_deref() == Some(core_uuid)
    {
        return;
    }
    step.room.conference_uuid = Some(conference_uuid.to_owned());
    step.room.core_uuid = Some(core_uuid.to_owned());
    step.touch();
}

fn conference_destroyed(step: &mut Step<'_>, conference_uuid: &str) {
    if step.room.conference_uuid.as_deref() != Some(conference_uuid) {
        step.out.ignored = Some(Ignored::NoChange);
        return;
    }
    step.room.conference_uuid = None;
    step.room.control.member_id = None;
    step.touch();
    let channels: Vec<String> = step.room.members.keys().cloned().collect();
    for channel in channels {
        remove_member(step, &channel, LeaveReason::RoomEnded, None);
    }
    lose_conference(step);
}

/// The FreeSWITCH conference (or its control leg) is gone: a live room gets a new control leg,
/// a terminating room is over.
pub fn lose_conference(step: &mut Step<'_>) {
    if let Some(id) = step.room.recording {
        let now = step.now;
        end_recording(
            step,
            id,
            None,
            Some("the conference ended on the node"),
            now,
        );
    }
    match step.room.status {
        RoomStatus::Starting | RoomStatus::Progressing => {
            step.out.effects.push(Effect::EstablishControlLeg)
        }
        RoomStatus::Terminating => step.set_status(RoomStatus::Terminated),
        RoomStatus::Terminated => {}
    }
    step.touch();
}

fn member_added(
    step: &mut Step<'_>,
    channel: &str,
    member_id: u32,
    speak: bool,
    session: Option<&Session>,
) {
    if channel == step.room.control.channel {
        if step.room.control.member_id != Some(member_id) {
            step.room.control.member_id = Some(member_id);
            step.touch();
        }
        if step.room.status == RoomStatus::Starting {
            step.set_status(RoomStatus::Progressing);
        }
        return;
    }
    let now = step.now;
    if let Some(m) = step.room.members.get_mut(channel) {
        if m.member_id == Some(member_id) && m.status != MemberStatus::Joining {
            return;
        }
        let first_confirmation = m.status == MemberStatus::Joining;
        m.member_id = Some(member_id);
        m.muted = !speak;
        m.updated_at = now;
        if first_confirmation {
            m.status = MemberStatus::Joined;
            m.joined_at = Some(now);
            let data = member_data(step.room, &step.room.members[channel]);
            step.emit(EventKind::MemberJoined, data);
            greet(step, member_id);
        } else {
            step.touch();
        }
        return;
    }
    // A member the controller did not add (an operator, or a join whose request state was
    // lost): recognised when the session belongs to the room's application.
    match session.filter(|s| s.app == step.room.app) {
        Some(session) => {
            let member = Member {
                conferencecall_id: uuid::Uuid::new_v4(),
                session: session.id.clone(),
                member_id: Some(member_id),
                status: MemberStatus::Joined,
                muted: !speak,
                did: session.did.clone(),
                caller_id: session.caller_id.clone(),
                command_uid: None,
                requested_at: now,
                joined_at: Some(now),
                left_at: None,
                leave_reason: None,
                hangup_cause: None,
                kicked: false,
                updated_at: now,
            };
            let data = member_data(step.room, &member);
            step.room.members.insert(channel.to_owned(), member);
            step.emit(EventKind::MemberJoined, data);
            greet(step, member_id);
        }
        None => step.out.ignored = Some(Ignored::UnknownMember),
    }
}

/// A member who has just joined hears the room's pre-actions.
fn greet(step: &mut Step<'_>, member_id: u32) {
    let talks = actions::talks(&step.room.pre_actions).unwrap_or_default();
    if !talks.is_empty() {
        step.out.effects.push(Effect::Greet { member_id, talks });
    }
}

/// What a member leaving the room hears: the room's post-actions.
pub fn farewell(room: &Room) -> Vec<Talk> {
    actions::talks(&room.post_actions).unwrap_or_default()
}

/// The confirmed member with this channel and member id, if any.
fn confirmed<'r>(room: &'r mut Room, channel: &str, member_id: u32) -> Option<&'r mut Member> {
    room.members
        .get_mut(channel)
        .filter(|m| m.member_id == Some(member_id) && m.status != MemberStatus::Joining)
}

fn member_deleted(step: &mut Step<'_>, channel: &str, member_id: u32, cause: Option<&str>) {
    if channel == step.room.control.channel {
        if step.room.control.member_id == Some(member_id) {
            step.room.control.member_id = None;
            step.touch();
            lose_conference(step);
        }
        return;
    }
    let Some(m) = confirmed(step.room, channel, member_id) else {
        step.out.ignored = Some(Ignored::UnknownMember);
        return;
    };
    let reason = match (m.status, m.kicked, cause) {
        (_, true, _) => LeaveReason::Kicked,
        (MemberStatus::Leaving, _, _) => LeaveReason::Left,
        (_, _, Some(_)) => LeaveReason::Hangup,
        _ => LeaveReason::Kicked,
    };
    remove_member(step, channel, reason, cause);
}

/// Moves a member out of the room with a reason and tells the application; for a `connect`
/// room the partner is ejected and the room ends.
pub fn remove_member(step: &mut Step<'_>, channel: &str, reason: LeaveReason, cause: Option<&str>) {
    let Some(mut m) = step.room.members.remove(channel) else {
        return;
    };
    let was_confirmed = m.status != MemberStatus::Joining;
    m.status = MemberStatus::Leaved;
    m.left_at = Some(step.now);
    m.updated_at = step.now;
    m.leave_reason = Some(reason);
    m.hangup_cause = cause.map(str::to_owned);
    let data = member_data(step.room, &m);
    let kind = if was_confirmed {
        EventKind::MemberLeft
    } else {
        EventKind::MemberJoinFailed
    };
    step.room.past_members.push(m);
    step.emit(kind, data);
    if step.room.kind == RoomType::Connect
        && was_confirmed
        && step.room.status == RoomStatus::Progressing
    {
        let data =
            json!({ "room_id": step.room.id, "name": step.room.name, "reason": "partner_left" });
        step.emit(EventKind::Destroyed, data);
        step.set_status(RoomStatus::Terminating);
        let talks = farewell(step.room);
        for partner in step.room.members.values_mut() {
            if partner.status == MemberStatus::Joined {
                partner.status = MemberStatus::Leaving;
                partner.kicked = true;
                partner.updated_at = step.now;
            }
            step.out.effects.push(Effect::Eject {
                channel: partner.channel().to_owned(),
                talks: talks.clone(),
            });
        }
        step.out.effects.push(Effect::ReleaseControlLeg);
    }
}

/// The call of a member ended without its del-member reaching us (missed while disconnected).
pub fn channel_gone(room: &mut Room, channel: &str, cause: Option<&str>, now: Micros) -> Applied {
    let mut step = Step::new(room, now);
    if step.room.members.contains_key(channel) {
        remove_member(&mut step, channel, LeaveReason::Hangup, cause);
    } else {
        step.out.ignored = Some(Ignored::UnknownMember);
    }
    step.finish()
}

fn set_muted(step: &mut Step<'_>, channel: &str, member_id: u32, muted: bool) {
    let now = step.now;
    let Some(m) = confirmed(step.room, channel, member_id) else {
        step.out.ignored = Some(Ignored::UnknownMember);
        return;
    };
    if m.muted == muted {
        return;
    }
    m.muted = muted;
    m.updated_at = now;
    let data = member_data(step.room, &step.room.members[channel]);
    step.emit(
        if muted {
            EventKind::MemberMuted
        } else {
            EventKind::MemberUnmuted
        },
        data,
    );
}

fn kicked(step: &mut Step<'_>, channel: &str, member_id: u32) {
    match confirmed(step.room, channel, member_id) {
        Some(m) if !m.kicked => {
            m.kicked = true;
            step.touch();
        }
        Some(_) => {}
        None => step.out.ignored = Some(Ignored::UnknownMember),
    }
}

fn file_done(step: &mut Step<'_>, op: Option<&str>, file: &str, failed: bool) {
    let playback = &mut step.room.playback;
    let ours = playback
        .operation_id
        .is_some_and(|id| op == Some(id.to_string().as_str()));
    if !ours || playback.status == PlaybackStatus::Stopped || playback.pending == 0 {
        step.out.ignored = Some(Ignored::UnknownOperation);
        return;
    }
    playback.pending -= 1;
    if failed {
        playback.failed.push(file.to_owned());
    }
    if playback.pending > 0 {
        step.touch();
        return;
    }
    playback.status = PlaybackStatus::Stopped;
    let data = json!({
        "room_id": step.room.id,
        "operation_id": playback.operation_id,
        "urls": playback.urls,
        "failed_urls": playback.failed,
        "command_uid": playback.command_uid,
    });
    step.emit(EventKind::PlayFinished, data);
}

fn recording_started(step: &mut Step<'_>, path: &str, error: Option<&str>) {
    let Some(rec) = step
        .room
        .recordings
        .iter_mut()
        .find(|r| r.path == path && r.is_active())
    else {
        step.out.ignored = Some(Ignored::UnknownOperation);
        return;
    };
    let id = rec.id;
    if let Some(error) = error {
        let now = step.now;
        end_recording(step, id, None, Some(error), now);
        return;
    }
    if rec.status != RecordingStatus::Initiating {
        return;
    }
    rec.status = RecordingStatus::Recording;
    rec.started_at = Some(step.now);
    rec.updated_at = step.now;
    let data = recording_data(step.room, id);
    step.emit(EventKind::RecordingStarted, data);
}

fn recording_stopped(step: &mut Step<'_>, path: &str, millis: u64) {
    let Some(id) = step
        .room
        .recordings
        .iter()
        .find(|r| r.path == path && r.is_active())
        .map(|r| r.id)
    else {
        step.out.ignored = Some(Ignored::UnknownOperation);
        return;
    };
    let now = step.now;
    end_recording(step, id, Some(millis), None, now);
}

/// A recording is over: stopped (with the node's duration), failed, or its conference is gone.
pub fn end_recording(
    step: &mut Step<'_>,
    id: Uuid,
    millis: Option<u64>,
    error: Option<&str>,
    now: Micros,
) {
    let Some(rec) = step
        .room
        .recordings
        .iter_mut()
        .find(|r| r.id == id && r.is_active())
    else {
        return;
    };
    rec.status = RecordingStatus::Ended;
    rec.ended_at = Some(now);
    rec.updated_at = now;
    rec.error = error.map(str::to_owned);
    rec.duration_ms = millis.or_else(|| {
        rec.started_at
            .filter(|_| error.is_none() || millis.is_some())
            .map(|s| u64::try_from((now - s) / 1000).unwrap_or(0))
    });
    if step.room.recording == Some(id) {
        step.room.recording = None;
    }
    let data = recording_data(step.room, id);
    step.emit(EventKind::RecordingFinished, data);
}

/// The webhook data of a recording event.
pub fn recording_data(room: &Room, id: Uuid) -> serde_json::Value {
    let rec = room.recording_by_id(id);
    json!({
        "room_id": room.id,
        "recording_id": id,
        "status": rec.map(|r| r.status),
        "format": rec.map(|r| r.format.as_str()),
        "duration_ms": rec.and_then(|r| r.duration_ms),
        "error": rec.and_then(|r| r.error.as_deref()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conference::{AppId, LeaveReason, NodePrefix, RoomId, SessionId};

    /// `member_data` as it was written with `json!`: the same keys, values and order.
    #[test]
    fn member_data_is_what_json_would_build() {
        let prefix = NodePrefix::parse("abcde").unwrap_or_else(|e| panic!("{e}"));
        let app = AppId::parse("app").unwrap_or_else(|e| panic!("{e}"));
        let room = Room::new(
            RoomId::new(&prefix, Uuid::new_v4()),
            app,
            "r".into(),
            RoomType::Conference,
            "ctl".into(),
            1,
        );
        let channel = Uuid::new_v4().to_string();
        let mut m = Member {
            conferencecall_id: Uuid::new_v4(),
            session: SessionId::new(&prefix, &channel),
            member_id: None,
            status: MemberStatus::Joining,
            muted: false,
            did: "100".into(),
            caller_id: "1001".into(),
            command_uid: None,
            requested_at: 1,
            joined_at: None,
            left_at: None,
            leave_reason: None,
            hangup_cause: None,
            kicked: false,
            updated_at: 1,
        };
        for step in 0..2 {
            if step == 1 {
                m.member_id = Some(7);
                m.status = MemberStatus::Leaved;
                m.muted = true;
                m.command_uid = Some("uid".into());
                m.leave_reason = Some(LeaveReason::JoinFailed);
                m.hangup_cause = Some("NORMAL_CLEARING".into());
            }
            let expected = json!({
                "room_id": room.id,
                "uuid": m.session,
                "conferencecall_id": m.conferencecall_id,
                "member_id": m.member_id,
                "did": m.did,
                "caller_id": m.caller_id,
                "muted": m.muted,
                "status": m.status,
                "command_uid": m.command_uid,
                "reason": m.leave_reason,
                "hangup_cause": m.hangup_cause,
            });
            let data = member_data(&room, &m);
            assert_eq!(data, expected);
            assert_eq!(data.to_string(), expected.to_string());
        }
    }
}
