//! Members: add-member, del-member, mute-member/unmute-member, kick-member, and the evidence a
//! member's own channel gives (its call ended, or it parked after we moved it out).

use super::data::member_data;
use super::ending::settle;
use super::{Applied, Effect, Ignored, Step};
use crate::conference::actions::{self, Talk};
use crate::conference::events::EventKind;
use crate::conference::model::{
    LeaveReason, Member, MemberStatus, Micros, Room, RoomStatus, RoomType, Session, Switch,
};

/// A member is in (add-member, or a snapshot listing it). `moderator` is what the node says of
/// it (`Member-Type`, json_list's `is_moderator`).
pub(super) fn member_added(
    step: &mut Step<'_>,
    channel: &str,
    member_id: u32,
    speak: bool,
    moderator: bool,
    session: Option<&Session>,
) {
    if channel == step.room.control.channel {
        control_added(step, member_id);
        return;
    }
    // The node lets a waiting room start as a moderator joins, with no event of its own
    // (mod_conference clears `wait-mod` in `conference_member_add`), whoever joined it: an
    // operator's moderator, or one whose join the controller lost.
    if moderator && step.room.waiting_for_moderator {
        step.room.waiting_for_moderator = false;
        step.touch();
    }
    let now = step.now;
    if super::migration::arrived(step, channel, member_id) {
        return;
    }
    if let Some(m) = step.room.members.get_mut(channel) {
        if m.member_id == Some(member_id) && m.status != MemberStatus::Joining {
            return;
        }
        let first_confirmation = m.status == MemberStatus::Joining;
        m.member_id = Some(member_id);
        m.muted = !speak;
        m.moderator |= moderator;
        m.updated_at = now;
        if first_confirmation {
            m.status = MemberStatus::Joined;
            m.joined_at = Some(now);
            let carried = m.carried.take();
            // Moved here: its state as it was (set again on the node by the restore below,
            // whose reports then restate it and tell nothing).
            if let Some(c) = &carried {
                m.muted = !c.unmute;
                m.deaf = c.deaf;
                for (level, value) in &c.levels {
                    m.set_level(*level, *value);
                }
            }
            // The controller's own moderator (its join asked for the flag).
            if m.moderator {
                step.room.waiting_for_moderator = false;
            }
            let mut data = member_data(step.room, &step.room.members[channel]);
            match carried {
                // Moved here: told once, and set as it was.
                Some(c) => {
                    if let Some(d) = data.as_object_mut() {
                        d.insert("from_room".into(), c.from.as_str().into());
                        d.insert("to_room".into(), step.room.id.as_str().into());
                    }
                    step.emit(EventKind::MemberMoved, data);
                    step.out.effects.push(Effect::Restore {
                        member_id,
                        unmute: c.unmute,
                        deaf: c.deaf,
                        hold: false,
                        hold_music: None,
                        levels: c.levels,
                    });
                }
                None => step.emit(EventKind::MemberJoined, data),
            }
            greet(step, member_id);
            keep_coaches_private(step, channel, member_id);
        } else {
            step.touch();
        }
        return;
    }
    // A call the room placed, answered.
    if let Some(member) = super::dialout::dialout_joined(step, channel, member_id, speak, session) {
        let data = member_data(step.room, &member);
        step.room.members.insert(channel.to_owned(), member);
        if step.room.members[channel].moderator {
            step.room.waiting_for_moderator = false;
        }
        step.emit(EventKind::MemberJoined, data);
        greet(step, member_id);
        keep_coaches_private(step, channel, member_id);
        return;
    }
    // A member the controller did not add (an operator, or a join whose request state was
    // lost): recognised when the session belongs to the room's application.
    match session.filter(|s| s.app == step.room.app) {
        Some(session) => {
            let member = Member {
                member_id: Some(member_id),
                status: MemberStatus::Joined,
                muted: !speak,
                moderator,
                joined_at: Some(now),
                ..Member::requested(session, None, now)
            };
            let data = member_data(step.room, &member);
            step.room.members.insert(channel.to_owned(), member);
            step.emit(EventKind::MemberJoined, data);
            greet(step, member_id);
            keep_coaches_private(step, channel, member_id);
        }
        None => step.out.ignored = Some(Ignored::UnknownMember),
    }
}

/// The control leg is in: the room is live. One that comes in after the room began to end (an
/// originate that crossed the room's end) is hung up.
fn control_added(step: &mut Step<'_>, member_id: u32) {
    if step.room.control.member_id != Some(member_id) {
        step.room.control.member_id = Some(member_id);
        step.touch();
        if step.room.status == RoomStatus::Terminating {
            step.out.effects.push(Effect::ReleaseControlLeg);
        } else if !step.room.beep.is_none() {
            let beep = step.room.beep;
            step.out.effects.push(Effect::Beeps {
                enter: beep.on_enter(),
                exit: beep.on_exit(),
            });
        }
    }
    if step.room.status == RoomStatus::Starting {
        step.set_status(RoomStatus::Progressing);
    }
}

/// A member who has just joined a live room hears the room's pre-actions.
fn greet(step: &mut Step<'_>, member_id: u32) {
    if step.room.status >= RoomStatus::Terminating {
        return;
    }
    let talks = actions::talks(&step.room.pre_actions).unwrap_or_default();
    if !talks.is_empty() {
        step.out.effects.push(Effect::Greet { member_id, talks });
    }
}

/// A member who has just joined must not hear the room's coaches, but for the one each coaches
/// (coaches still moving to the room's new node are related once they arrive).
pub(super) fn keep_coaches_private(step: &mut Step<'_>, channel: &str, member_id: u32) {
    let Some(session) = step.room.members.get(channel).map(|m| m.session.clone()) else {
        return;
    };
    let coaches: Vec<u32> = step
        .room
        .members
        .values()
        .filter(|m| m.channel() != channel && !m.moving)
        .filter(|m| m.coaching.as_ref().is_some_and(|c| *c != session))
        .filter_map(|m| m.member_id)
        .collect();
    for coach in coaches {
        step.out.effects.push(Effect::Unhear { coach, member_id });
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

/// Why a member is out when the node says so: what it was asked (`kicked` for a kick or the
/// room's end, `left` for a leave), `join_failed` for a join never confirmed, else `otherwise`.
pub fn why_left(m: &Member, otherwise: LeaveReason) -> LeaveReason {
    if m.moving_to.is_some() {
        // However it went, the room it was moving to tells what became of it.
        return LeaveReason::Moved;
    }
    match m.status {
        MemberStatus::Joining => LeaveReason::JoinFailed,
        _ if m.kicked => LeaveReason::Kicked,
        MemberStatus::Leaving => LeaveReason::Left,
        _ => otherwise,
    }
}

pub(super) fn member_deleted(
    step: &mut Step<'_>,
    channel: &str,
    member_id: u32,
    cause: Option<&str>,
) {
    if channel == step.room.control.channel {
        if step.room.control.member_id == Some(member_id) {
            step.room.control.member_id = None;
            step.touch();
            super::lose_conference(step);
        }
        return;
    }
    let Some(m) = confirmed(step.room, channel, member_id) else {
        step.out.ignored = Some(Ignored::UnknownMember);
        return;
    };
    // Unasked: its call ended (a cause), or someone on the node took it out.
    let unasked = match cause {
        Some(_) => LeaveReason::Hangup,
        None => LeaveReason::Kicked,
    };
    // A member moving to another room is out of this one however it went (a node-to-node
    // leg hangs up): see `why_left`.
    let reason = why_left(m, unasked);
    remove_member(step, channel, reason, cause);
}

/// Moves a member out of the room with a reason and tells the application; for a `connect`
/// room the partner is ejected and the room ends. The last one out of a terminating room ends it.
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
    m.mute_requested = None;
    m.talking = false;
    let cut = std::mem::take(&mut m.announcements);
    let data = member_data(step.room, &m);
    let kind = if was_confirmed {
        EventKind::MemberLeft
    } else {
        EventKind::MemberJoinFailed
    };
    let ends_room = m.end_on_exit && was_confirmed;
    step.room.retire(m);
    crate::conference::ops::end_streams_where(
        step,
        |s| s.channel.as_deref() == Some(channel),
        crate::conference::StreamStatus::Stopped,
        "member_left",
    );
    for op in cut {
        announcement_finished(step, channel, op, false);
    }
    match reason {
        LeaveReason::Moved => step.touch(),
        _ => step.emit(kind, data),
    }
    if ends_room && step.room.status == RoomStatus::Progressing {
        end_on_exit(step);
    }
    if step.room.kind == RoomType::Connect
        && was_confirmed
        && step.room.status == RoomStatus::Progressing
    {
        end_connect(step);
    }
    settle(step);
}

/// A member who ends the room on leaving has left: the room ends as a delete ends it; the
/// others are moved out (hearing the post-actions; their calls live on, parked) and the control
/// leg is released. (FreeSWITCH's own `endconf` would hang every call up.)
fn end_on_exit(step: &mut Step<'_>) {
    let data = serde_json::json!({
        "room_id": step.room.id,
        "name": step.room.name,
        "reason": "end_on_exit",
    });
    step.emit(EventKind::Destroyed, data);
    step.set_status(RoomStatus::Terminating);
    let talks = farewell(step.room);
    let channels: Vec<String> = step.room.members.keys().cloned().collect();
    for channel in channels {
        let Some(m) = step.room.members.get_mut(&channel) else {
            continue;
        };
        if m.status == MemberStatus::Joined {
            m.status = MemberStatus::Leaving;
            m.kicked = true;
            m.updated_at = step.now;
            let data = member_data(step.room, &step.room.members[&channel]);
            step.emit(EventKind::MemberLeaving, data);
        }
        if let Some(exit) = step.room.members.get(&channel).and_then(Member::exit) {
            step.out.effects.push(Effect::Eject {
                exit,
                talks: talks.clone(),
            });
        }
    }
    step.out.effects.push(Effect::ReleaseControlLeg);
}

/// A `connect` room whose partner left: the other is ejected and the room ends.
fn end_connect(step: &mut Step<'_>) {
    let data = serde_json::json!({
        "room_id": step.room.id,
        "name": step.room.name,
        "reason": "partner_left",
    });
    step.emit(EventKind::Destroyed, data);
    step.set_status(RoomStatus::Terminating);
    let talks = farewell(step.room);
    for partner in step.room.members.values_mut() {
        if partner.status == MemberStatus::Joined {
            partner.status = MemberStatus::Leaving;
            partner.kicked = true;
            partner.updated_at = step.now;
        }
        if let Some(exit) = partner.exit() {
            step.out.effects.push(Effect::Eject {
                exit,
                talks: talks.clone(),
            });
        }
    }
    step.out.effects.push(Effect::ReleaseControlLeg);
}

/// The call of a member ended (its del-member, if any, is not here yet or was missed while
/// disconnected): the member is out.
pub fn channel_gone(room: &mut Room, channel: &str, cause: Option<&str>, now: Micros) -> Applied {
    let mut step = Step::new(room, now);
    if step.room.status == RoomStatus::Terminated {
        release_stranded(&mut step, channel, LeaveReason::Hangup, cause);
    } else if step.room.members.contains_key(channel) {
        remove_member(&mut step, channel, LeaveReason::Hangup, cause);
    } else {
        step.out.ignored = Some(Ignored::UnknownMember);
    }
    step.finish()
}

/// A member's channel parked. One we moved out (leaving) is out of the conference: a parked
/// channel runs no conference app. FreeSWITCH fires CHANNEL_PARK after the member's del-member,
/// from the same thread; the reconciler may apply it first, and then the del-member is ignored.
pub fn channel_parked(room: &mut Room, channel: &str, now: Micros) -> Applied {
    let mut step = Step::new(room, now);
    let leaving = step
        .room
        .members
        .get(channel)
        .filter(|m| m.status == MemberStatus::Leaving)
        .map(|m| why_left(m, LeaveReason::Left));
    match leaving {
        Some(_) if step.room.status == RoomStatus::Terminated => {
            release_stranded(&mut step, channel, LeaveReason::Kicked, None)
        }
        Some(reason) => remove_member(&mut step, channel, reason, None),
        None => step.out.ignored = Some(Ignored::UnknownMember),
    }
    step.finish()
}

/// A room terminated before its members were all out (stored by a controller that ended rooms on
/// the control leg's del-member) may still list one: its session is freed without an event, the
/// room's story having ended with `conference.terminated`.
fn release_stranded(step: &mut Step<'_>, channel: &str, reason: LeaveReason, cause: Option<&str>) {
    let Some(mut m) = step.room.members.remove(channel) else {
        step.out.ignored = Some(Ignored::Terminated);
        return;
    };
    m.status = MemberStatus::Leaved;
    m.left_at = Some(step.now);
    m.updated_at = step.now;
    m.leave_reason = Some(reason);
    m.hangup_cause = cause.map(str::to_owned);
    step.room.retire(m);
    step.touch();
}

/// mute-member or unmute-member: the member's state on the node. It settles a pending mute or
/// unmute that asked for this state. (FreeSWITCH reports every command, in order; commands to one
/// member are a cooldown apart, so only reports lagging more than that could settle an unmute
/// that a later mute and unmute repeated, for the moment between their reports.)
pub(super) fn set_switch(
    step: &mut Step<'_>,
    channel: &str,
    member_id: u32,
    switch: Switch,
    on: bool,
) {
    let now = step.now;
    let Some(m) = confirmed(step.room, channel, member_id) else {
        step.out.ignored = Some(Ignored::UnknownMember);
        return;
    };
    // A report of this switch: one command fewer on its way (see `Member::asks`); the last
    // one's report settles what it asked.
    let asks = m.asks_mut(switch);
    *asks = asks.saturating_sub(1);
    let last = *asks == 0;
    let (state, pending) = m.switch_mut(switch);
    let settles = *pending == Some(on) && last;
    if settles {
        *pending = None;
    }
    if *state == on {
        if settles {
            step.touch();
        }
        return;
    }
    *state = on;
    if switch == Switch::Hold && !on {
        m.hold_music = None;
    }
    // A mute or a hold ends a spurt with no stop-talking from the node.
    let silenced = on && switch != Switch::Deaf && std::mem::take(&mut m.talking);
    m.updated_at = now;
    let data = member_data(step.room, &step.room.members[channel]);
    step.emit(EventKind::switched(switch, on), data);
    if silenced {
        let data = member_data(step.room, &step.room.members[channel]);
        step.emit(EventKind::MemberTalking, data);
    }
}

/// volume-in-member, volume-out-member, energy-level-member: the member's level, announced
/// (`conference.member.audio`, with the three levels and which one changed) when it changed.
pub(super) fn set_level(
    step: &mut Step<'_>,
    channel: &str,
    member_id: u32,
    level: crate::conference::Level,
    value: i32,
) {
    let now = step.now;
    let Some(m) = confirmed(step.room, channel, member_id) else {
        step.out.ignored = Some(Ignored::UnknownMember);
        return;
    };
    if !m.set_level(level, value) {
        step.out.ignored = Some(Ignored::NoChange);
        return;
    }
    m.updated_at = now;
    let mut data = member_data(step.room, &step.room.members[channel]);
    if let Some(d) = data.as_object_mut() {
        let m = &step.room.members[channel];
        for l in crate::conference::Level::ALL {
            d.insert(l.verb().into(), m.level(l).into());
        }
        d.insert("changed".into(), level.verb().into());
    }
    step.emit(EventKind::MemberAudio, data);
}

/// start-talking / stop-talking (numbered `sequence`): the member's `talking` flag, announced
/// when it changes. Its order is kept apart from the member's state events (as a digit's is),
/// but a state event newer than it wins: a mute or hold after the start ended that spurt.
pub(super) fn talking(
    step: &mut Step<'_>,
    channel: &str,
    member_id: u32,
    talking: bool,
    sequence: u64,
) {
    let now = step.now;
    let Some(m) = confirmed(step.room, channel, member_id) else {
        step.out.ignored = Some(Ignored::UnknownMember);
        return;
    };
    if sequence > 0 && (sequence <= m.talking_seq || sequence <= m.event_seq) {
        step.out.ignored = Some(Ignored::Superseded);
        return;
    }
    // A muted or held member's audio is not heard: FreeSWITCH reports no talking for it.
    let talking = talking && !m.muted && !m.held;
    m.talking_seq = m.talking_seq.max(sequence);
    if m.talking == talking {
        return;
    }
    m.talking = talking;
    m.updated_at = now;
    let data = member_data(step.room, &step.room.members[channel]);
    step.emit(EventKind::MemberTalking, data);
}

/// A member still talking by a talking event older than `sequence`, an unmute or unhold: that
/// spurt ended (at the mute before it), and says so.
pub(super) fn spurt_ended(step: &mut Step<'_>, channel: &str, sequence: u64) {
    let now = step.now;
    match step.room.members.get_mut(channel) {
        Some(m) if m.talking && (sequence == 0 || m.talking_seq < sequence) => {
            m.talking = false;
            m.talking_seq = m.talking_seq.max(sequence);
            m.updated_at = now;
            let data = member_data(step.room, &step.room.members[channel]);
            step.emit(EventKind::MemberTalking, data);
        }
        _ => {}
    }
}

/// The member pressed a key (the node numbered its event `sequence`): announced with the
/// member's data and the digit, once. The digit's own order is kept apart from the member's
/// state events (`event_seq`): FreeSWITCH numbers events when they are fired, and a digit fired
/// on the call's thread may arrive before a mute fired just before it on another thread.
pub fn dtmf(room: &mut Room, channel: &str, digit: &str, sequence: u64, now: Micros) -> Applied {
    let mut step = Step::new(room, now);
    match step.room.members.get_mut(channel) {
        Some(m) if m.status == MemberStatus::Joined => {
            if sequence > 0 && sequence <= m.dtmf_seq {
                step.out.ignored = Some(Ignored::Superseded);
                return step.finish();
            }
            m.dtmf_seq = sequence;
            let mut data = member_data(step.room, &step.room.members[channel]);
            data["digit"] = digit.into();
            step.emit(EventKind::MemberDtmf, data);
        }
        _ => step.out.ignored = Some(Ignored::UnknownMember),
    }
    step.finish()
}

/// A file played to the member alone ended: an announcement (told, with its operation id), or
/// a held member's music, played again while it is held and no unhold is on its way (an unhold
/// stops it, and its end comes after).
pub(super) fn file_done(step: &mut Step<'_>, channel: &str, member_id: u32, op: Option<&str>) {
    let Some(m) = confirmed(step.room, channel, member_id) else {
        step.out.ignored = Some(Ignored::UnknownMember);
        return;
    };
    let announced = op
        .and_then(|op| uuid::Uuid::try_parse(op).ok())
        .and_then(|op| m.announcements.iter().position(|a| *a == op));
    if let Some(i) = announced {
        let op = m.announcements.remove(i);
        announcement_finished(step, channel, op, true);
        return;
    }
    let again = m.held && m.hold_requested.is_none();
    match m.hold_music.clone().filter(|_| again) {
        Some(file) => step.out.effects.push(Effect::HoldMusic { member_id, file }),
        None => step.out.ignored = Some(Ignored::NoChange),
    }
}

/// `conference.member.announcement.finished`: played to its end (`completed`), or cut short
/// (the member left, or the node refused it).
pub(crate) fn announcement_finished(
    step: &mut Step<'_>,
    channel: &str,
    op: uuid::Uuid,
    completed: bool,
) {
    let member = step.room.members.get(channel).or_else(|| {
        step.room
            .past_members
            .iter()
            .rev()
            .find(|m| m.channel() == channel)
    });
    let Some(m) = member else {
        return;
    };
    let mut data = member_data(step.room, m);
    data["operation_id"] = op.to_string().into();
    data["completed"] = completed.into();
    step.emit(EventKind::MemberAnnouncementFinished, data);
}

pub(super) fn kicked(step: &mut Step<'_>, channel: &str, member_id: u32) {
    match confirmed(step.room, channel, member_id) {
        Some(m) if !m.kicked => {
            m.kicked = true;
            step.touch();
        }
        Some(_) => {}
        None => step.out.ignored = Some(Ignored::UnknownMember),
    }
}

#[cfg(test)]
mod tests {
    use crate::conference::apply::{Applied, Ignored, apply_event, channel_parked, in_order};
    use crate::conference::ops;
    use crate::conference::{
        AppId, ConferenceFact, EventKind, MemberStatus, NodePrefix, Room, RoomId, RoomStatus,
        RoomType, Session, SessionId, SessionState, Switch,
    };

    const CORE: &str = "core";
    const CH: &str = "28ec5c5e-0cdb-4582-983d-48f16177e7f7";

    /// A live room of node `CORE` with one member, joined unmuted (member id 7) by an event
    /// numbered 5.
    fn room() -> Room {
        let prefix = NodePrefix::parse("abcde").unwrap();
        let app = AppId::parse("app").unwrap();
        let mut r = Room::new(
            RoomId::new(&prefix, uuid::Uuid::new_v4()),
            app.clone(),
            "r".into(),
            RoomType::Conference,
            uuid::Uuid::new_v4().to_string(),
            1,
        );
        r.status = RoomStatus::Progressing;
        r.core_uuid = Some(CORE.into());
        let session = Session {
            id: SessionId::new(&prefix, CH),
            app,
            did: "100".into(),
            caller_id: "1001".into(),
            caller_name: "A".into(),
            state: SessionState::Parked,
            core_uuid: CORE.into(),
            created_at: 1,
            answered_at: Some(1),
            ended_at: None,
            hangup_cause: None,
            seq: 1,
        };
        ops::request_join(&mut r, &session, None, 1).unwrap();
        let added = ConferenceFact::MemberAdded {
            channel: CH.into(),
            member_id: 7,
            speak: true,
            moderator: false,
        };
        apply_event(&mut r, CORE, "c", &added, None, 2, 5);
        r
    }

    fn switched(muted: bool) -> ConferenceFact {
        let (channel, member_id) = (CH.to_owned(), 7);
        match muted {
            true => ConferenceFact::MemberMuted { channel, member_id },
            false => ConferenceFact::MemberUnmuted { channel, member_id },
        }
    }

    fn kinds(a: &Applied) -> Vec<EventKind> {
        a.events.iter().map(|e| e.kind).collect()
    }

    /// Mutes and unmutes answered 202, then a leave answered 202 and stored, all before the
    /// node's reports of them are applied (they waited for a new owner of the node's events):
    /// the reports are applied in the node's order while the member is `leaving`, each told
    /// once, and settle what was asked; then the member leaves, and a report older than its
    /// exit is superseded. (The reconciler must hand them over in that order, see
    /// `node::reconciler::tests`.)
    #[test]
    fn switches_reported_after_a_stored_leave_are_told_in_the_nodes_order() {
        let mut r = room();
        for on in [true, false, true] {
            ops::request_switch(&mut r, CH, Switch::Mute, on, 3).unwrap();
        }
        ops::request_leave(&mut r, CH, false, 4).unwrap();
        assert_eq!(r.members[CH].status, MemberStatus::Leaving);
        let mut told = Vec::new();
        for (muted, seq) in [(true, 10), (false, 11), (true, 12)] {
            told.extend(kinds(&apply_event(
                &mut r,
                CORE,
                "c",
                &switched(muted),
                None,
                5,
                seq,
            )));
        }
        assert_eq!(
            told,
            [
                EventKind::MemberMuted,
                EventKind::MemberUnmuted,
                EventKind::MemberMuted
            ]
        );
        let m = &r.members[CH];
        assert!(m.muted);
        assert_eq!((m.mute_requested, m.asks[0]), (None, 0));
        // Heard again (a replay): nothing more.
        let again = apply_event(&mut r, CORE, "c", &switched(true), None, 6, 12);
        assert_eq!(again.ignored, Some(Ignored::Superseded));
        let deleted = ConferenceFact::MemberDeleted {
            channel: CH.into(),
            member_id: 7,
            cause: None,
        };
        let left = apply_event(&mut r, CORE, "c", &deleted, None, 7, 13);
        assert_eq!(kinds(&left), [EventKind::MemberLeft]);
        let parked = in_order(&mut r, CORE, CH, 14, |r| channel_parked(r, CH, 8));
        assert!(parked.events.is_empty(), "{parked:?}");
        // A report older than the member's leaving, delivered after it: it is gone.
        let late = apply_event(&mut r, CORE, "c", &switched(false), None, 9, 12);
        assert_eq!(late.ignored, Some(Ignored::Superseded));
    }
}
