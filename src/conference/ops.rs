//! What the application asks of a room (through the API), checked against the room's state.
//! Each operation changes the room and says what to tell the node; FreeSWITCH's confirmation
//! arrives later as a fact.

use uuid::Uuid;

use super::apply::{Applied, Step, member_data, remove_member};
use super::events::EventKind;
use super::model::{
    LeaveReason, Member, MemberStatus, Micros, Room, RoomStatus, RoomType, Session,
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
    RoomFull,
    #[error("member is already {0}")]
    AlreadyInState(&'static str),
}

/// `join`: the member is `joining` until add-member confirms it.
pub fn request_join(
    room: &mut Room,
    session: &Session,
    command_uid: Option<String>,
    now: Micros,
) -> Result<Applied, OpError> {
    if room.status != RoomStatus::Progressing {
        return Err(OpError::RoomNotActive(room.status.as_str()));
    }
    if let Some(m) = room.members.get(session.id.channel()) {
        return Err(match m.status {
            MemberStatus::Joining => OpError::StillJoining,
            _ => OpError::AlreadyJoined,
        });
    }
    if room.kind == RoomType::Connect && room.members.len() >= 2 {
        return Err(OpError::RoomFull);
    }
    let member = Member {
        conferencecall_id: Uuid::new_v4(),
        session: session.id.clone(),
        channel: session.id.channel().to_owned(),
        member_id: None,
        status: MemberStatus::Joining,
        muted: true,
        did: session.did.clone(),
        caller_id: session.caller_id.clone(),
        command_uid,
        requested_at: now,
        joined_at: None,
        left_at: None,
        leave_reason: None,
        hangup_cause: None,
        kicked: false,
        updated_at: now,
    };
    let data = member_data(room, &member);
    room.members.insert(member.channel.clone(), member);
    let mut step = Step::new(room, now);
    step.emit(EventKind::MemberJoining, data);
    Ok(step.finish())
}

/// `leave`: `leaving` until del-member confirms it.
pub fn request_leave(room: &mut Room, channel: &str, now: Micros) -> Result<Applied, OpError> {
    let m = room.members.get_mut(channel).ok_or(OpError::NotInRoom)?;
    match m.status {
        MemberStatus::Joining => return Err(OpError::StillJoining),
        MemberStatus::Leaving => return Err(OpError::AlreadyInState("leaving")),
        _ => {}
    }
    m.status = MemberStatus::Leaving;
    m.updated_at = now;
    let data = member_data(room, &room.members[channel]);
    let mut step = Step::new(room, now);
    step.emit(EventKind::MemberLeaving, data);
    Ok(step.finish())
}

/// Joins requested before `deadline` that FreeSWITCH never confirmed fail, and say so.
pub fn expire_joins(room: &mut Room, deadline: Micros, now: Micros) -> Applied {
    let stale: Vec<String> = room
        .members
        .values()
        .filter(|m| m.status == MemberStatus::Joining && m.requested_at < deadline)
        .map(|m| m.channel.clone())
        .collect();
    let mut step = Step::new(room, now);
    for channel in &stale {
        remove_member(&mut step, channel, LeaveReason::JoinFailed, None);
    }
    step.finish()
}

/// The room is being deleted: `terminating` until its conference is gone on the node.
pub fn request_terminate(room: &mut Room, now: Micros) -> Applied {
    let mut step = Step::new(room, now);
    if step.room.status < RoomStatus::Terminating {
        step.set_status(RoomStatus::Terminating);
    }
    step.finish()
}

/// The room's conference is already gone from the node (or never existed): it is over.
pub fn finish_terminate(room: &mut Room, now: Micros) -> Applied {
    let mut step = Step::new(room, now);
    step.set_status(RoomStatus::Terminated);
    step.finish()
}
