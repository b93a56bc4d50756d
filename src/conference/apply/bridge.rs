//! Members carried from another node (rooms that span media nodes; `node::bridge`, recorded in
//! `fixtures/esl/10_cross_node.md`). The room's node knows such a member by a SIP leg of its
//! own, tagged with the call's session (`X-Switchyard-Session`); the call's node knows the call
//! and the bridge's outbound leg, whose uuid the controller chose. The member stays keyed by its
//! call: a fact the room's node tells about the leg is told about the call
//! ([`Room::member_key`]).

use super::members::{remove_member, why_left};
use super::{Applied, Effect, Ignored, Step, guarded};
use crate::conference::facts::ChannelFact;
use crate::conference::ids::{NodePrefix, SessionId};
use crate::conference::model::{Bridge, LeaveReason, MemberStatus, Micros, Room, RoomStatus};

/// What the room's node says of a node-to-node leg (one of its CHANNEL events, tagged
/// `session`). The leg's first event ties it to the member the room is joining for that session;
/// a leg the room does not expect (no such join, another leg already carries it) is hung up. A
/// leg gone before its member was in, or while it was on its way out, takes the member out (a
/// joined member leaves by its del-member).
pub fn node_leg(
    room: &mut Room,
    core_uuid: &str,
    session: &SessionId,
    channel: &str,
    kind: ChannelFact,
    cause: Option<&str>,
    now: Micros,
) -> Applied {
    guarded(room, core_uuid, now, |step| {
        leg_event(step, session, channel, kind, cause)
    })
}

fn leg_event(
    step: &mut Step<'_>,
    session: &SessionId,
    channel: &str,
    kind: ChannelFact,
    cause: Option<&str>,
) {
    let gone = kind == ChannelFact::HungUp;
    // A leg of a participation that is over (the session joined again since).
    if step
        .room
        .past_members
        .iter()
        .any(|m| m.leg() == Some(channel))
    {
        step.out.ignored = Some(Ignored::Superseded);
        return;
    }
    let key = step
        .room
        .members
        .values()
        .find(|m| &m.session == session && m.bridge.is_some())
        .map(|m| m.channel().to_owned());
    let Some(key) = key else {
        refuse(step, channel, gone);
        return;
    };
    let Some(m) = step.room.members.get_mut(&key) else {
        return;
    };
    match m.bridge.as_mut() {
        Some(Bridge { leg: Some(leg), .. }) if leg != channel => {
            refuse(step, channel, gone);
            return;
        }
        Some(Bridge {
            leg: leg @ None, ..
        }) if !gone => {
            *leg = Some(channel.to_owned());
            m.updated_at = step.now;
            step.touch();
            // Ending: nobody joins any more (the member was not in yet to be moved out).
            if step.room.status >= RoomStatus::Terminating {
                step.out.effects.push(Effect::Cancel {
                    channel: channel.to_owned(),
                });
            }
        }
        _ => {}
    }
    let status = step.room.members.get(&key).map(|m| m.status);
    if gone && status.is_some_and(|s| s != MemberStatus::Joined) {
        let reason = step
            .room
            .members
            .get(&key)
            .map_or(LeaveReason::Hangup, |m| why_left(m, LeaveReason::Hangup));
        remove_member(step, &key, reason, cause);
    }
}

/// A leg the room does not expect: hung up (it is already in the room, muted, or on its way).
fn refuse(step: &mut Step<'_>, channel: &str, gone: bool) {
    if !gone {
        step.out.effects.push(Effect::Cancel {
            channel: channel.to_owned(),
        });
    }
    step.out.ignored = Some(Ignored::UnknownMember);
}

/// The bridge's outbound leg `out` on the call's node ended (its hangup, told by that node):
/// a member still joining never got in (the room's node refused the leg, or could not be
/// reached) and the call is parked again on its node. A joined one leaves by the room's node's
/// del-member.
pub fn bridge_ended(room: &mut Room, out: &str, cause: Option<&str>, now: Micros) -> Applied {
    let mut step = Step::new(room, now);
    if step.room.status == RoomStatus::Terminated {
        step.out.ignored = Some(Ignored::Terminated);
        return step.finish();
    }
    let joining = step
        .room
        .members
        .values()
        .find(|m| {
            m.status == MemberStatus::Joining
                && m.bridge.as_ref().is_some_and(|b| b.out.to_string() == out)
        })
        .map(|m| m.channel().to_owned());
    match joining {
        Some(key) => remove_member(&mut step, &key, LeaveReason::JoinFailed, cause),
        None => step.out.ignored = Some(Ignored::UnknownMember),
    }
    step.finish()
}

/// The room's node stopped answering: every member carried from another node is out
/// (`node_failed`). Returns their calls, to be parked again on their own nodes (the bridge to a
/// dead node would otherwise hold them until its media timeout).
pub fn room_node_failed(room: &mut Room, now: Micros) -> (Applied, Vec<SessionId>) {
    let mut step = Step::new(room, now);
    if step.room.status == RoomStatus::Terminated {
        return (step.finish(), Vec::new());
    }
    let carried: Vec<(String, SessionId)> = step
        .room
        .members
        .values()
        .filter(|m| m.bridge.is_some())
        .map(|m| (m.channel().to_owned(), m.session.clone()))
        .collect();
    for (key, _) in &carried {
        remove_member(&mut step, key, LeaveReason::NodeFailed, None);
    }
    (step.finish(), carried.into_iter().map(|(_, s)| s).collect())
}

/// A node whose calls the room carries stopped answering: those members are out
/// (`node_failed`), and their legs on the room's node are hung up (effects).
pub fn call_node_failed(room: &mut Room, node: &NodePrefix, now: Micros) -> Applied {
    let mut step = Step::new(room, now);
    if step.room.status == RoomStatus::Terminated {
        return step.finish();
    }
    let carried: Vec<(String, Option<String>)> = step
        .room
        .members
        .values()
        .filter(|m| m.bridge.is_some() && &m.session.prefix() == node)
        .map(|m| (m.channel().to_owned(), m.leg().map(str::to_owned)))
        .collect();
    for (key, leg) in carried {
        remove_member(&mut step, &key, LeaveReason::NodeFailed, None);
        if let Some(channel) = leg {
            step.out.effects.push(Effect::Cancel { channel });
        }
    }
    step.finish()
}
