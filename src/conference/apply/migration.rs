//! A room moving to another node while it lives (`rooms::migrate`). The room keeps its id, its
//! members and their switches; only its node changes. The steps, each one atomic write:
//! 1. [`begin`]: the room names the node it goes to, that node's FreeSWITCH process and the
//!    control leg that will open it there. Commands wait (503) until the move is over.
//! 2. The new node's add-member of that control leg switches the room ([`before_switch`]): the
//!    new node's facts are the room's from then on, the old node's are stale (their
//!    `Core-UUID` is not the room's). Every member is `moving` until the new node reports it.
//! 3. Each member's call is carried to the new node (or, on it, put into the room there); its
//!    add-member there is its arrival ([`arrived`]): no `joined` is told, and its switches are
//!    set again on the new node (it arrives muted, as every join does).
//! 4. [`finish`]: none is moving; `conference.migrated` is told, once, and the old
//!    conference's control leg is let go.
//!
//! A move that never switched is [`abandon`]ed: the room stays where it was.

use serde_json::json;

use super::members::remove_member;
use super::{Applied, Effect, Ignored, Step};
use crate::conference::events::EventKind;
use crate::conference::facts::ConferenceFact;
use crate::conference::ids::NodePrefix;
use crate::conference::model::{
    ControlLeg, LeaveReason, MemberStatus, Micros, Migration, PlaybackStatus, RecordingStatus,
    Room, RoomStatus, Segment, Upload, UploadStatus,
};

/// How long after its node was told to stop it a recording's part is taken as closed (the node's
/// recording thread writes the file's end and closes it a moment after `recording stop`).
const PART_CLOSED_AFTER: Micros = 2_000_000;

/// Whether the room can move now; else what it waits for (a join, a pending switch…), which
/// a move would lose.
pub fn unsettled(room: &Room) -> Option<&'static str> {
    if room.status != RoomStatus::Progressing || room.control.member_id.is_none() {
        return Some("the room is not live");
    }
    if room.migration.is_some() {
        return Some("the room is moving already");
    }
    if !room.dialouts.is_empty() {
        return Some("a call the room places is on its way");
    }
    if room.playback.status == PlaybackStatus::Paused {
        return Some("its playback is paused");
    }
    for m in room.members.values() {
        if m.status != MemberStatus::Joined || (m.bridge.is_some() && m.leg().is_none()) {
            return Some("a member is joining or leaving");
        }
        if m.mute_requested.is_some() || m.deaf_requested.is_some() || m.hold_requested.is_some() {
            return Some("a member's switch is on its way");
        }
        if !m.announcements.is_empty() {
            return Some("an announcement to a member is playing");
        }
    }
    match room.active_recording() {
        Some(r) if r.pause_requested.is_some() => Some("a recording pause is on its way"),
        Some(r) if !matches!(r.status, RecordingStatus::Recording) => {
            Some("the recording is starting, paused or stopping")
        }
        _ => None,
    }
}

/// Step 1: the room will move to `to`, whose FreeSWITCH process is `core_uuid`, opened there by
/// the control leg `control`. Refused (with what it waits for) unless the room is settled.
pub fn begin(
    room: &mut Room,
    to: &NodePrefix,
    core_uuid: &str,
    control: &str,
    now: Micros,
) -> Result<Applied, &'static str> {
    if let Some(why) = unsettled(room) {
        return Err(why);
    }
    if &room.node == to {
        return Err("the room is on that node already");
    }
    room.migration = Some(Migration {
        from: room.node.clone(),
        to: to.clone(),
        core_uuid: core_uuid.to_owned(),
        control: control.to_owned(),
        switched: false,
        media_moved: false,
        started_at: now,
    });
    let mut step = Step::new(room, now);
    step.touch();
    Ok(step.finish())
}

/// Whether `core_uuid` is the node the room is moving to, before the room lives there.
pub(super) fn is_target(room: &Room, core_uuid: &str) -> bool {
    room.migration
        .as_ref()
        .is_some_and(|m| !m.switched && m.core_uuid == core_uuid)
        && room.core_uuid.as_deref() != Some(core_uuid)
}

/// A fact of the node the room is moving to, before the switch: the add-member of the control
/// leg that opens the room there switches it; nothing else there is the room's yet.
pub(super) fn before_switch(
    room: &mut Room,
    conference_uuid: &str,
    fact: &ConferenceFact,
    now: Micros,
) -> Applied {
    let control = room.migration.as_ref().map(|m| m.control.clone());
    match fact {
        ConferenceFact::MemberAdded {
            channel, member_id, ..
        } if Some(channel) == control.as_ref() && room.status == RoomStatus::Progressing => {
            let mut step = Step::new(room, now);
            switch(&mut step, conference_uuid, *member_id);
            step.finish()
        }
        _ => Applied::ignored(Ignored::StaleCore),
    }
}

/// Step 2: the room lives on the new node from now on.
fn switch(step: &mut Step<'_>, conference_uuid: &str, member_id: u32) {
    let room = &mut *step.room;
    let Some(m) = room.migration.as_mut() else {
        return;
    };
    m.switched = true;
    let new_control = ControlLeg {
        channel: std::mem::take(&mut m.control),
        member_id: Some(member_id),
    };
    m.control = std::mem::replace(&mut room.control, new_control).channel;
    room.node = m.to.clone();
    room.core_uuid = Some(m.core_uuid.clone());
    room.conference_uuid = Some(conference_uuid.to_owned());
    // The new process numbers its events afresh.
    room.fact_seqs.clear();
    let to = m.to.clone();
    for member in room.members.values_mut() {
        member.moving = true;
        member.event_seq = 0;
        member.talking_seq = 0;
        // Carried again (the driver names the new bridge before it sends it), or, for a call
        // on the new node, not carried at all.
        if member.session.prefix() == to {
            member.bridge = None;
        } else if let Some(b) = member.bridge.as_mut() {
            b.leg = None;
        }
    }
    for past in std::sync::Arc::make_mut(&mut room.past_members).iter_mut() {
        past.event_seq = 0;
    }
    if !room.beep.is_none() {
        let beep = room.beep;
        step.out.effects.push(Effect::Beeps {
            enter: beep.on_enter(),
            exit: beep.on_exit(),
        });
    }
    step.touch();
}

/// Step 3: a moving member is in the room on its new node (its add-member there). It came in
/// muted, as every join does: its switches are set again as the room knows them (the node's
/// reports of them then restate what the room holds, and tell nothing).
pub(super) fn arrived(step: &mut Step<'_>, channel: &str, member_id: u32) -> bool {
    let Some(m) = step.room.members.get_mut(channel).filter(|m| m.moving) else {
        return false;
    };
    m.moving = false;
    m.member_id = Some(member_id);
    m.updated_at = step.now;
    let restore = Effect::Restore {
        member_id,
        unmute: !m.muted,
        deaf: m.deaf,
        hold: m.held,
        hold_music: m.hold_music.clone().filter(|_| m.held),
        levels: m.set_levels(),
    };
    let coaching = m.coaching.clone();
    step.out.effects.push(restore);
    // Coaching holds again between each pair, once both are in: the coaches already here stay
    // unheard by this member, and, if it coaches, it stays unheard by the others here.
    super::members::keep_coaches_private(step, channel, member_id);
    if let Some(coached) = coaching {
        let others: Vec<u32> = step
            .room
            .members
            .values()
            .filter(|o| o.channel() != channel && !o.moving && o.session != coached)
            .filter_map(|o| o.member_id)
            .collect();
        for other in others {
            step.out.effects.push(Effect::Unhear {
                coach: member_id,
                member_id: other,
            });
        }
    }
    step.touch();
    true
}

/// A moving member that did not arrive (its call could not be carried): out of the room, its
/// call parked on its own node by the driver. Told as a leave (`not_on_node`).
pub fn stranded(room: &mut Room, channel: &str, now: Micros) -> Applied {
    let mut step = Step::new(room, now);
    if step.room.members.get(channel).is_some_and(|m| m.moving) {
        remove_member(&mut step, channel, LeaveReason::NotOnNode, None);
    }
    step.finish()
}

/// The room's media carries on on the new node, asked once (`media_moved`): the active
/// recording goes on in a new file there (`path`), the old node's file becoming its finished
/// part; the files still to play are played again there. Returns the old recording file and
/// the files to play again (the operation they belong to, and its URLs), or `None` if this was
/// asked already.
#[allow(clippy::type_complexity)]
pub fn move_media(
    room: &mut Room,
    path: &str,
    now: Micros,
) -> Option<(Option<String>, Option<(uuid::Uuid, Vec<String>)>)> {
    let m = room
        .migration
        .as_mut()
        .filter(|m| m.switched && !m.media_moved)?;
    m.media_moved = true;
    let (from, m_to) = (m.from.clone(), m.to.clone());
    room.seq += 1;
    room.updated_at = now;
    let mut old_file = None;
    if let Some(rec) = room
        .recording
        .and_then(|id| room.recordings.iter_mut().find(|r| r.id == id))
    {
        let old = std::mem::replace(&mut rec.path, path.to_owned());
        rec.node = Some(m_to.clone());
        let upload = rec
            .upload
            .as_ref()
            .map(|u| Upload::waiting(u.part_key(rec.segments.len() + 1)));
        rec.segments.push(Segment {
            node: from,
            path: old.clone(),
            ended_at: now,
            upload,
        });
        rec.updated_at = now;
        old_file = Some(old);
    }
    let p = &room.playback;
    let replay = match (p.status, p.operation_id) {
        (PlaybackStatus::Playing, Some(op)) if p.pending > 0 => {
            let pending = (p.pending as usize).min(p.urls.len());
            Some((op, p.urls[p.urls.len() - pending..].to_vec()))
        }
        _ => None,
    };
    Some((old_file, replay))
}

/// Step 4: every member is in on the new node (or gone): the move is over, and told once.
/// Returns what the move was (its `control` is the old conference's control leg, to let go).
pub fn finish(room: &mut Room, now: Micros) -> Result<(Applied, Migration), &'static str> {
    match &room.migration {
        None => return Err("the room is not moving"),
        Some(m) if !m.switched => return Err("the room has not switched yet"),
        Some(_) => {}
    }
    if room.members.values().any(|m| m.moving) {
        return Err("a member is still moving");
    }
    let Some(m) = room.migration.take() else {
        return Err("the room is not moving");
    };
    let mut step = Step::new(room, now);
    // The old node was told to stop its part, and its conference let go (`rooms::migrate`):
    // the part's copy can be made once the node has closed the file.
    for rec in step.room.recordings.iter_mut() {
        for part in rec.segments.iter_mut().filter(|s| s.node == m.from) {
            if let Some(u) = part
                .upload
                .as_mut()
                .filter(|u| u.status == UploadStatus::Waiting)
            {
                u.status = UploadStatus::Uploading;
                u.next_at = now + PART_CLOSED_AFTER;
            }
        }
    }
    let data = json!({
        "room_id": step.room.id,
        "from_node": m.from,
        "to_node": m.to,
        "members": step.room.members.len(),
    });
    step.emit(EventKind::Migrated, data);
    Ok((step.finish(), m))
}

/// A move that never switched is given up (the new node refused the control leg, or is gone):
/// the room stays where it was. Returns the move, whose control leg may need letting go.
pub fn abandon(room: &mut Room, now: Micros) -> Option<Migration> {
    if room.migration.as_ref().is_none_or(|m| m.switched) {
        return None;
    }
    let m = room.migration.take();
    room.seq += 1;
    room.updated_at = now;
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conference::apply::apply_event;
    use crate::conference::ids::{AppId, RoomId, SessionId};
    use crate::conference::model::{Member, RoomType};

    const A_CORE: &str = "core-a";
    const C_CORE: &str = "core-c";
    const CALL_A: &str = "0b3c2a54-6f7e-4f4c-9a51-2d3f4b5c6d7e";
    const CALL_B: &str = "1c4d3b65-7a8f-4a5d-8b62-3e4f5c6d7e8f";
    const LEG_C: &str = "2d5e4c76-8b9a-4b6e-9c73-4f5a6d7e8f9a";
    const NEW_CONTROL: &str = "3e6f5d87-9cab-4c7f-8d84-5a6b7e8f9a0b";

    fn prefix(s: &str) -> NodePrefix {
        NodePrefix::parse(s).unwrap()
    }

    /// A live room on node `nodea` with a muted member whose call is on `nodea`, and an unmuted,
    /// deaf one carried from `nodeb`.
    fn live_room() -> Room {
        let id = RoomId::new(&prefix("nodea"), uuid::Uuid::new_v4());
        let mut room = Room::new(
            id,
            AppId::parse("app").unwrap(),
            "r".into(),
            RoomType::Conference,
            "control-a".into(),
            1,
        );
        room.status = RoomStatus::Progressing;
        room.core_uuid = Some(A_CORE.into());
        room.control.member_id = Some(1);
        for (call, node, member_id) in [(CALL_A, "nodea", 2), (CALL_B, "nodeb", 3)] {
            let session = SessionId::new(&prefix(node), call);
            let mut m = Member::new(session, "did".into(), "cid".into(), None, 1);
            m.status = MemberStatus::Joined;
            m.member_id = Some(member_id);
            m.event_seq = 900;
            room.members.insert(call.into(), m);
        }
        let carried = room.members.get_mut(CALL_B).unwrap();
        carried.muted = false;
        carried.deaf = true;
        carried.bridge = Some(crate::conference::model::Bridge {
            out: uuid::Uuid::new_v4(),
            leg: Some("leg-on-a".into()),
        });
        room
    }

    fn added(channel: &str, member_id: u32) -> ConferenceFact {
        ConferenceFact::MemberAdded {
            channel: channel.into(),
            member_id,
            speak: false,
            moderator: false,
        }
    }

    #[test]
    fn a_room_moves_whole_and_tells_one_migrated_instead_of_left_and_joined() {
        let mut room = live_room();
        let to = prefix("nodec");
        begin(&mut room, &to, C_CORE, NEW_CONTROL, 2).unwrap();
        assert_eq!(
            room.node.as_str(),
            "nodea",
            "not switched before the control leg is in"
        );
        // Another member's add-member on the new node before the switch is not the room's.
        let early = apply_event(&mut room, C_CORE, "conf-c", &added(LEG_C, 7), None, 3, 5);
        assert_eq!(early.ignored, Some(Ignored::StaleCore));

        let switched = apply_event(
            &mut room,
            C_CORE,
            "conf-c",
            &added(NEW_CONTROL, 1),
            None,
            4,
            6,
        );
        assert!(
            switched.changed && switched.events.is_empty(),
            "{switched:?}"
        );
        assert_eq!(room.node, to);
        assert_eq!(room.core_uuid.as_deref(), Some(C_CORE));
        assert!(room.members.values().all(|m| m.moving && m.event_seq == 0));
        assert_eq!(room.migration.as_ref().unwrap().control, "control-a");

        // The old node's facts are stale now: its del-members tell nothing.
        let gone = ConferenceFact::MemberDeleted {
            channel: CALL_A.into(),
            member_id: 2,
            cause: None,
        };
        let stale = apply_event(&mut room, A_CORE, "conf-a", &gone, None, 5, 950);
        assert_eq!(stale.ignored, Some(Ignored::StaleCore));

        // The local call arrives carried; the carried one's leg on the new node arrives too.
        room.members.get_mut(CALL_A).unwrap().bridge = Some(crate::conference::model::Bridge {
            out: uuid::Uuid::new_v4(),
            leg: Some(LEG_C.into()),
        });
        let a = apply_event(&mut room, C_CORE, "conf-c", &added(LEG_C, 2), None, 6, 10);
        assert!(a.events.is_empty(), "no joined: {a:?}");
        assert_eq!(
            a.effects,
            vec![Effect::Restore {
                member_id: 2,
                unmute: false,
                deaf: false,
                hold: false,
                hold_music: None,
                levels: Vec::new(),
            }]
        );
        assert!(finish(&mut room, 7).is_err(), "one is still moving");
        let leg_b = "4f7a6e98-adbc-4d8a-9e95-6b7c8f9a0b1c";
        room.members
            .get_mut(CALL_B)
            .unwrap()
            .bridge
            .as_mut()
            .unwrap()
            .leg = Some(leg_b.into());
        let b = apply_event(&mut room, C_CORE, "conf-c", &added(leg_b, 3), None, 8, 11);
        assert_eq!(
            b.effects,
            vec![Effect::Restore {
                member_id: 3,
                unmute: true,
                deaf: true,
                hold: false,
                hold_music: None,
                levels: Vec::new(),
            }]
        );
        // Its unmute and deaf as the new node reports them restate the room: nothing told.
        let unmuted = ConferenceFact::MemberUnmuted {
            channel: leg_b.into(),
            member_id: 3,
        };
        let told = apply_event(&mut room, C_CORE, "conf-c", &unmuted, None, 9, 12);
        assert!(told.events.is_empty(), "{told:?}");

        let (done, m) = finish(&mut room, 10).unwrap();
        assert_eq!(m.from.as_str(), "nodea");
        let kinds: Vec<EventKind> = done.events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, vec![EventKind::Migrated]);
        assert_eq!(done.events[0].data["to_node"], "nodec");
        assert!(room.migration.is_none());
        assert!(finish(&mut room, 11).is_err(), "told once");
        assert_eq!(room.members.len(), 2);
    }

    #[test]
    fn a_coach_stays_unheard_by_all_but_its_member_whichever_arrives_first() {
        const CALL_C: &str = "5a8b7fa9-becd-4e9b-8fa6-7c8d9e0a1b2c";
        for coach_first in [true, false] {
            let mut room = live_room();
            let c = SessionId::new(&prefix("nodea"), CALL_C);
            let mut third = Member::new(c, "did".into(), "cid".into(), None, 1);
            third.status = MemberStatus::Joined;
            third.member_id = Some(4);
            room.members.insert(CALL_C.into(), third);
            // A coaches B: C must not hear A.
            let b = room.members[CALL_B].session.clone();
            room.members.get_mut(CALL_A).unwrap().coaching = Some(b);
            begin(&mut room, &prefix("nodec"), C_CORE, NEW_CONTROL, 2).unwrap();
            apply_event(
                &mut room,
                C_CORE,
                "conf-c",
                &added(NEW_CONTROL, 1),
                None,
                3,
                1,
            );
            let order = match coach_first {
                true => [(CALL_A, 20), (CALL_C, 40), (CALL_B, 30)],
                false => [(CALL_C, 40), (CALL_B, 30), (CALL_A, 20)],
            };
            let mut unheard = Vec::new();
            for (seq, (call, id)) in order.into_iter().enumerate() {
                // Every call arrives on the new node as itself (its leg tied already).
                room.members.get_mut(call).unwrap().bridge = None;
                let fact = added(call, id);
                let out = apply_event(&mut room, C_CORE, "conf-c", &fact, None, 4, seq as u64 + 2);
                unheard.extend(out.effects.into_iter().filter_map(|e| match e {
                    Effect::Unhear { coach, member_id } => Some((coach, member_id)),
                    _ => None,
                }));
            }
            assert_eq!(unheard, vec![(20, 40)], "coach first: {coach_first}");
        }
    }

    #[test]
    fn a_room_waiting_for_a_join_or_a_switch_does_not_move() {
        let mut room = live_room();
        room.members.get_mut(CALL_A).unwrap().mute_requested = Some(false);
        assert!(begin(&mut room, &prefix("nodec"), C_CORE, NEW_CONTROL, 2).is_err());
        assert!(room.migration.is_none());
    }

    #[test]
    fn commands_wait_while_the_room_moves() {
        use crate::conference::model::Switch;
        use crate::conference::ops::{self, OpError};
        let mut room = live_room();
        begin(&mut room, &prefix("nodec"), C_CORE, NEW_CONTROL, 2).unwrap();
        assert_eq!(
            ops::request_switch(&mut room, CALL_A, Switch::Mute, false, 3).map(|_| ()),
            Err(OpError::Moving)
        );
        assert_eq!(
            ops::request_leave(&mut room, CALL_A, false, 3).map(|_| ()),
            Err(OpError::Moving)
        );
        assert_eq!(ops::require_steady(&room), Err(OpError::Moving));
        abandon(&mut room, 4);
        assert!(ops::request_switch(&mut room, CALL_A, Switch::Mute, false, 5).is_ok());
    }

    #[test]
    fn a_move_that_never_switched_is_given_up_and_the_room_stays() {
        let mut room = live_room();
        begin(&mut room, &prefix("nodec"), C_CORE, NEW_CONTROL, 2).unwrap();
        let m = abandon(&mut room, 3).unwrap();
        assert_eq!(m.control, NEW_CONTROL);
        assert_eq!(room.node.as_str(), "nodea");
        assert!(room.members.values().all(|m| !m.moving));
    }
}
