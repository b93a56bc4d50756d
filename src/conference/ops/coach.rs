//! Coaching (whisper): a member heard by one other member alone, as Twilio's `coaching` and
//! jambonz's `speakOnlyTo`. FreeSWITCH has no event for it (`relate` answers, nothing more), so
//! it is asked here before the command is sent (a member who joins meanwhile is kept from
//! hearing the coach by the join's effect), told once the node accepted it, and undone if not.

use serde_json::Value;

use super::{OpError, require_active};
use crate::conference::SessionId;
use crate::conference::apply::{Applied, Step, member_data};
use crate::conference::events::EventKind;
use crate::conference::model::{MemberStatus, Micros, Room};

/// What a coach command addresses on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coaching {
    /// The coach's member id.
    pub coach: u32,
    /// The members that must not hear it: everyone in the room but the coached member (the
    /// control leg too), by member id.
    pub unheard: Vec<u32>,
}

fn joined_id(room: &Room, channel: &str) -> Result<u32, OpError> {
    let m = room.members.get(channel).ok_or(OpError::NotInRoom)?;
    m.member_id
        .filter(|_| m.status == MemberStatus::Joined)
        .ok_or(OpError::StillJoining)
}

/// The member of `coach` is to be heard by the member of `target` alone.
pub fn request_coach(
    room: &mut Room,
    coach: &str,
    target: &SessionId,
    now: Micros,
) -> Result<(Applied, Coaching), OpError> {
    require_active(room)?;
    let coach_id = joined_id(room, coach)?;
    let target_id = match joined_id(room, target.channel()) {
        Ok(id) => id,
        Err(_) => return Err(OpError::NotAMember(target.to_string())),
    };
    if coach == target.channel() {
        return Err(OpError::CoachSelf);
    }
    let mut unheard: Vec<u32> = room
        .members
        .values()
        .filter_map(|m| m.member_id)
        .filter(|id| *id != coach_id && *id != target_id)
        .collect();
    unheard.extend(room.control.member_id);
    unheard.sort_unstable();
    let m = room.members.get_mut(coach).ok_or(OpError::NotInRoom)?;
    if m.coaching.as_ref() == Some(target) {
        return Err(OpError::AlreadyInState("coaching that member"));
    }
    m.coaching = Some(target.clone());
    m.updated_at = now;
    let mut step = Step::new(room, now);
    step.touch();
    Ok((
        step.finish(),
        Coaching {
            coach: coach_id,
            unheard,
        },
    ))
}

/// The coach is to be heard by everyone again; returns its member id.
pub fn request_uncoach(
    room: &mut Room,
    coach: &str,
    now: Micros,
) -> Result<(Applied, u32), OpError> {
    require_active(room)?;
    let coach_id = joined_id(room, coach)?;
    let m = room.members.get_mut(coach).ok_or(OpError::NotInRoom)?;
    if m.coaching.take().is_none() {
        return Err(OpError::NotCoaching);
    }
    m.updated_at = now;
    let mut step = Step::new(room, now);
    step.touch();
    Ok((step.finish(), coach_id))
}

/// The node accepted the command: `conference.member.coaching`, with whom the member coaches
/// now (`null`: heard by everyone).
pub fn coaching_sent(room: &mut Room, coach: &str, now: Micros) -> Applied {
    let mut step = Step::new(room, now);
    let Some(m) = step.room.members.get(coach) else {
        return step.finish();
    };
    let mut data = member_data(step.room, m);
    data["coaching"] = m
        .coaching
        .as_ref()
        .map_or(Value::Null, |s| s.as_str().into());
    step.emit(EventKind::MemberCoaching, data);
    step.finish()
}

/// The node refused it, or never heard of it: the member coaches as before (`previous`).
pub fn coach_not_sent(
    room: &mut Room,
    coach: &str,
    previous: Option<SessionId>,
    now: Micros,
) -> Applied {
    let mut step = Step::new(room, now);
    if let Some(m) = step.room.members.get_mut(coach) {
        m.coaching = previous;
        m.updated_at = now;
        step.touch();
    }
    step.finish()
}
