//! Moving a member to another room of the application (`conference/move`): the room it goes to
//! takes it as a join that tells nothing until the node has it there (then one
//! `conference.member.moved`), and the room it leaves lets it go without a word.

use uuid::Uuid;

use super::{JoinAs, OpError, request_join_as, require_steady};
use crate::conference::apply::{Applied, Step};
use crate::conference::events::EventKind;
use crate::conference::model::{Bridge, Carried, Member, MemberStatus, Micros, Room, Session};

/// The member of `channel` in `from`, if it may move: joined, not moving already, not held (a
/// held member hears music of its room's node; unhold it first).
pub fn movable<'r>(from: &'r Room, channel: &str) -> Result<&'r Member, OpError> {
    require_steady(from)?;
    let m = from.members.get(channel).ok_or(OpError::NotInRoom)?;
    match m.status {
        MemberStatus::Joining => Err(OpError::StillJoining),
        MemberStatus::Leaving | MemberStatus::Leaved => Err(OpError::AlreadyInState("leaving")),
        MemberStatus::Joined if m.held => Err(OpError::AlreadyInState("held")),
        MemberStatus::Joined => Ok(m),
    }
}

/// Into `to`: `member` (of another room) joins, as itself (moderator, end on exit, its data),
/// with what it carries; `bridge` when a node-to-node leg will carry it. Nothing is told yet.
#[allow(clippy::too_many_arguments)]
pub fn request_move_in(
    to: &mut Room,
    session: &Session,
    member: &Member,
    from: &Room,
    muted: bool,
    command_uid: Option<String>,
    bridge: Option<Uuid>,
    now: Micros,
) -> Result<Applied, OpError> {
    let join_as = JoinAs {
        moderator: member.moderator,
        end_on_exit: member.end_on_exit,
        metadata: member.metadata.clone(),
    };
    let mut applied = request_join_as(to, session, command_uid, join_as, now)?;
    applied
        .events
        .retain(|e| e.kind != EventKind::MemberJoining);
    if let Some(m) = to.members.get_mut(session.id.channel()) {
        m.bridge = bridge.map(|out| Bridge { out, leg: None });
        m.carried = Some(Box::new(Carried {
            from: from.id.clone(),
            unmute: !muted,
            deaf: member.deaf,
            levels: member.set_levels(),
        }));
    }
    Ok(applied)
}

/// Out of `from`, towards `to`: leaving, silently (see [`movable`]).
pub fn request_move_out(
    from: &mut Room,
    channel: &str,
    to: &Room,
    now: Micros,
) -> Result<Applied, OpError> {
    movable(from, channel)?;
    let mut step = Step::new(from, now);
    if let Some(m) = step.room.members.get_mut(channel) {
        m.status = MemberStatus::Leaving;
        m.moving_to = Some(to.id.clone());
        m.updated_at = now;
    }
    step.touch();
    Ok(step.finish())
}

/// A move whose command never reached the node: the member stays where it was.
pub fn move_out_not_sent(from: &mut Room, channel: &str, now: Micros) -> Applied {
    let mut step = Step::new(from, now);
    if let Some(m) = step
        .room
        .members
        .get_mut(channel)
        .filter(|m| m.moving_to.is_some() && m.status == MemberStatus::Leaving)
    {
        m.status = MemberStatus::Joined;
        m.moving_to = None;
        m.updated_at = now;
        step.touch();
    }
    step.finish()
}

/// …and the room it was going to forgets it, telling nothing.
pub fn move_in_not_sent(to: &mut Room, channel: &str, now: Micros) -> Applied {
    let mut step = Step::new(to, now);
    if step
        .room
        .members
        .get(channel)
        .is_some_and(|m| m.carried.is_some() && m.status == MemberStatus::Joining)
    {
        step.room.members.remove(channel);
        step.touch();
    }
    step.finish()
}
