//! Dial-outs: a call the room places rings, is answered and enters the room (its add-member
//! makes it a member, in [`super::members`]), or fails. Each step only moves a dial-out forward
//! (dialing → ringing → answered), so a step that arrives late or twice changes nothing.

use serde_json::{Value, json};

use super::{Effect, Ignored, Step};
use crate::conference::events::EventKind;
use crate::conference::model::{
    Dialout, DialoutFailure, DialoutState, Member, MemberStatus, Micros, Room, Session,
};

/// How long an answered dial-out may take to show up in the room before it is given up.
pub const ANSWERED_GRACE: Micros = 10_000_000;

/// What the node said of a dial-out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialoutStep {
    Ringing,
    Answered,
    /// The call ended, or never began (`cause`: FreeSWITCH's; `None`: given up by us).
    Failed {
        failure: DialoutFailure,
        cause: Option<String>,
    },
}

impl DialoutStep {
    /// A failure with FreeSWITCH's cause.
    pub fn failed(cause: &str) -> DialoutStep {
        DialoutStep::Failed {
            failure: DialoutFailure::of_cause(cause),
            cause: Some(cause.to_owned()),
        }
    }
}

/// The webhook data of a dial-out event.
pub fn dialout_data(room: &Room, d: &Dialout) -> Value {
    json!({
        "room_id": room.id,
        "participant_id": d.id,
        "uuid": d.session,
        "to": d.to,
        "state": d.state.as_str(),
        "muted": d.muted,
        "moderator": d.moderator,
        "end_on_exit": d.end_on_exit,
        "command_uid": d.command_uid,
        "metadata": d.metadata,
    })
}

/// Applies a step of the dial-out on `channel`; a channel the room is not dialing changes
/// nothing.
pub(super) fn dialout_step(step: &mut Step<'_>, channel: &str, what: &DialoutStep) {
    let Some(pos) = step
        .room
        .dialouts
        .iter()
        .position(|d| d.channel() == channel)
    else {
        step.out.ignored = Some(Ignored::UnknownMember);
        return;
    };
    let now = step.now;
    let d = &mut step.room.dialouts[pos];
    match what {
        DialoutStep::Ringing if d.state == DialoutState::Dialing => {
            d.state = DialoutState::Ringing;
            d.updated_at = now;
            let data = dialout_data(step.room, &step.room.dialouts[pos]);
            step.emit(EventKind::ParticipantRinging, data);
        }
        DialoutStep::Answered if d.state != DialoutState::Answered => {
            answered(step, pos);
        }
        // A call that ends after its answer is the member's to report (its add-member and
        // del-member follow); if it never shows up in the room the deadline gives it up.
        DialoutStep::Failed { .. } if d.state == DialoutState::Answered => {}
        DialoutStep::Failed { failure, cause } => {
            fail(step, pos, *failure, cause.as_deref());
        }
        _ => step.out.ignored = Some(Ignored::NoChange),
    }
}

fn answered(step: &mut Step<'_>, pos: usize) {
    let now = step.now;
    let d = &mut step.room.dialouts[pos];
    d.state = DialoutState::Answered;
    d.updated_at = now;
    d.deadline = d.deadline.min(now + ANSWERED_GRACE);
    let data = dialout_data(step.room, &step.room.dialouts[pos]);
    step.emit(EventKind::ParticipantAnswered, data);
}

/// The dial-out on `channel` failed: it is dropped and `conference.participant.failed` says
/// why.
pub fn fail_dialout(
    step: &mut Step<'_>,
    channel: &str,
    failure: DialoutFailure,
    cause: Option<&str>,
) {
    if let Some(pos) = step
        .room
        .dialouts
        .iter()
        .position(|d| d.channel() == channel)
    {
        fail(step, pos, failure, cause);
    }
}

fn fail(step: &mut Step<'_>, pos: usize, failure: DialoutFailure, cause: Option<&str>) {
    let d = step.room.dialouts.remove(pos);
    let mut data = dialout_data(step.room, &d);
    data["state"] = "failed".into();
    data["reason"] = failure.as_str().into();
    data["hangup_cause"] = cause.into();
    step.emit(EventKind::ParticipantFailed, data);
}

/// The dial-out on `channel` entered the room (its add-member): it is a member now, as it asked
/// to join (muted or not, moderator, end_on_exit). Returns the member, or `None` when the room
/// is not dialing that channel.
pub(super) fn dialout_joined(
    step: &mut Step<'_>,
    channel: &str,
    member_id: u32,
    speak: bool,
    session: Option<&Session>,
) -> Option<Member> {
    let pos = step
        .room
        .dialouts
        .iter()
        .position(|d| d.channel() == channel)?;
    if step.room.dialouts[pos].state != DialoutState::Answered {
        // Its CHANNEL_ANSWER was missed or is behind: the answer is told first.
        answered(step, pos);
    }
    let d = step.room.dialouts.remove(pos);
    let now = step.now;
    let caller_id = session.map(|s| s.caller_id.clone()).unwrap_or_default();
    // `did`: the destination dialed; `caller_id`: what the callee was shown.
    let base = Member::new(
        d.session.clone(),
        d.to.clone(),
        caller_id,
        d.command_uid.clone(),
        d.requested_at,
    );
    Some(Member {
        conferencecall_id: d.id,
        member_id: Some(member_id),
        status: MemberStatus::Joined,
        muted: !speak,
        joined_at: Some(now),
        moderator: d.moderator,
        end_on_exit: d.end_on_exit,
        metadata: d.metadata.clone(),
        updated_at: now,
        ..base
    })
}

/// Dial-outs past their deadline that the node never settled are given up (`timeout`). A call
/// still unanswered is hung up; an answered one is left alone (if it is in the room after all,
/// the next resync makes it a member; if not, it is a parked session of the app).
pub fn expire_dialouts(step: &mut Step<'_>, now: Micros) {
    while let Some(pos) = step.room.dialouts.iter().position(|d| d.deadline < now) {
        let answered = step.room.dialouts[pos].state == DialoutState::Answered;
        let channel = step.room.dialouts[pos].channel().to_owned();
        fail(step, pos, DialoutFailure::Timeout, None);
        if !answered {
            step.out.effects.push(Effect::Cancel { channel });
        }
    }
}

/// The room ends: every call it is still placing is cancelled.
pub(super) fn cancel_dialouts(step: &mut Step<'_>) {
    while !step.room.dialouts.is_empty() {
        let channel = step.room.dialouts[0].channel().to_owned();
        fail(step, 0, DialoutFailure::Cancelled, None);
        step.out.effects.push(Effect::Cancel { channel });
    }
}
