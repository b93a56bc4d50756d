//! The room's FreeSWITCH conference itself: created, destroyed, its control leg lost; and how a
//! room ends.
//!
//! # How a room ends
//!
//! A room ends in two steps. **`terminating`**: the controller decided (DELETE, a timeout, a
//! `connect` partner left), said `conference.destroyed`, and asked the node to move every member
//! out (`uuid_transfer … park`) and to hang up the control leg, back to back. **`terminated`**:
//! the node holds nothing of the room any more. Every member out is one `conference.member.left`,
//! and `conference.terminated` is the last event of a room: nothing happens to it afterwards.
//!
//! FreeSWITCH reports each leave with a del-member fired from that channel's own thread, so the
//! del-members of one teardown come in no fixed order: on FreeSWITCH 1.11 the control leg's came
//! before some member's in 17 of 30 teardowns of a room of four. What FreeSWITCH does guarantee
//! is conference-destroy after the last of them (it is fired when the member count reaches zero;
//! seen last in 45 of 45 teardowns). So a terminating room does not end on the control leg's
//! del-member; it ends on whichever comes first of:
//!
//! - the leave that empties it: the control leg is out and no member is left, each member having
//!   left by its del-member, its call's hangup ([`super::channel_gone`]), or its channel parking
//!   after we moved it out ([`super::channel_parked`]: a parked channel runs no conference);
//! - conference-destroy (or a snapshot without the conference): proof that nobody is in it. A
//!   member still listed leaves then, with the reason its own del-member would have given
//!   (`kicked` for a member moved out by the room's end, `join_failed` for a join still on its
//!   way); a del-member that straggles in after is ignored, the room being terminated.
//!
//! Until then the members stay listed (leaving), so their sessions are still in the room: a join
//! elsewhere waits the few milliseconds FreeSWITCH takes to let them go. A member the node keeps
//! (a lost command) is moved out again by the next audit (`snapshot`).

use super::media::end_recording;
use super::members::{remove_member, why_left};
use super::{Effect, Ignored, Step};
use crate::conference::model::{LeaveReason, RoomStatus};

pub(super) fn conference_created(step: &mut Step<'_>, core_uuid: &str, conference_uuid: &str) {
    if step.room.conference_uuid.as_deref() == Some(conference_uuid)
        && step.room.core_uuid.as_deref() == Some(core_uuid)
    {
        return;
    }
    step.room.conference_uuid = Some(conference_uuid.to_owned());
    if step.room.core_uuid.as_deref() != Some(core_uuid) {
        // Another process numbers its events afresh.
        step.room.fact_seqs.clear();
    }
    step.room.core_uuid = Some(core_uuid.to_owned());
    step.touch();
}

/// conference-destroy: nobody is in the conference any more, whatever we heard before. A live
/// room's members are out (`room_ended`) and it gets a new control leg; a terminating room ends.
pub(super) fn conference_destroyed(step: &mut Step<'_>, conference_uuid: &str) {
    if step.room.conference_uuid.as_deref() != Some(conference_uuid) {
        step.out.ignored = Some(Ignored::NoChange);
        return;
    }
    step.room.conference_uuid = None;
    step.room.control.member_id = None;
    step.touch();
    let channels: Vec<String> = step.room.members.keys().cloned().collect();
    for channel in channels {
        if let Some(m) = step.room.members.get(&channel) {
            let reason = why_left(m, LeaveReason::RoomEnded);
            remove_member(step, &channel, reason, None);
        }
    }
    lose_conference(step);
}

/// The FreeSWITCH conference (or its control leg) is gone: a live room gets a new control leg,
/// a terminating room is over once its members are out too.
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
        RoomStatus::Terminating => settle(step),
        RoomStatus::Terminated => {}
    }
    step.touch();
}

/// A terminating room whose control leg and members are all out is terminated.
pub(super) fn settle(step: &mut Step<'_>) {
    if step.room.status == RoomStatus::Terminating
        && step.room.control.member_id.is_none()
        && step.room.members.is_empty()
    {
        step.set_status(RoomStatus::Terminated);
    }
}

/// Ends the room now: the node holds nothing of it (its conference is gone, or never was).
/// Members still listed leave first, each with the reason its own del-member would have given
/// (`otherwise` for one that was not on its way out), so `conference.terminated` comes last.
pub fn terminate(step: &mut Step<'_>, otherwise: LeaveReason) {
    step.room.control.member_id = None;
    let channels: Vec<String> = step.room.members.keys().cloned().collect();
    for channel in channels {
        if let Some(m) = step.room.members.get(&channel) {
            let reason = why_left(m, otherwise);
            remove_member(step, &channel, reason, None);
        }
    }
    if let Some(id) = step.room.recording {
        let now = step.now;
        end_recording(step, id, None, Some("the room ended"), now);
    }
    step.set_status(RoomStatus::Terminated);
}
