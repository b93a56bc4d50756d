//! Members carried from another node (issue 18), in the domain: the room's node leg is tied to
//! the member by its tag only when the room is joining that session; any other leg is hung up;
//! the leg's conference facts are the member's; the bridge's end fails a join still on its way;
//! a lost node takes its carried members out. The event orders are the ones recorded on two
//! real nodes (`fixtures/esl/10_cross_node.md`, sections 4, 6, 7); `tests/live/cross_node.rs`
//! proves the whole on real nodes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use switchyard::conference::apply::{
    bridge_ended, call_node_failed, channel_parked, node_leg, room_node_failed,
};
use switchyard::conference::ops::{self, JoinAs};
use switchyard::conference::{
    AppId, ChannelFact, ConferenceFact, Effect, EventKind, Exit, Ignored, LeaveReason,
    MemberStatus, NodePrefix, Room, RoomId, RoomStatus, RoomType, Session, SessionId, SessionState,
    apply_event,
};

/// The room's node (A) and the call's node (B).
const CORE_A: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const CALL: &str = "0b3c2a54-6f7e-4f4c-9a51-2d3f4b5c6d7e";
const OUT: &str = "1c4d3b65-7a8f-4a5d-8b62-3e4f5c6d7e8f";
const LEG: &str = "3bc21fce-5d1a-4b7e-9c2d-6e4f5a6b7c8d";

fn node(p: &str) -> NodePrefix {
    NodePrefix::parse(p).unwrap()
}

fn caller() -> Session {
    Session {
        id: SessionId::new(&node("nodeb"), CALL),
        app: AppId::parse("app1").unwrap(),
        did: "15551230000".into(),
        caller_id: "3004".into(),
        caller_name: "CallerD1".into(),
        state: SessionState::Parked,
        core_uuid: "bbbbbbbb-0000-4000-8000-000000000002".into(),
        created_at: 0,
        answered_at: Some(0),
        ended_at: None,
        hangup_cause: None,
        seq: 1,
    }
}

/// A live room on node A that asked for B's caller to be carried in.
fn joining() -> Room {
    let mut room = Room::new(
        RoomId::new(&node("nodea"), uuid::Uuid::new_v4()),
        AppId::parse("app1").unwrap(),
        "spanning".into(),
        RoomType::Conference,
        "control".into(),
        0,
    );
    room.status = RoomStatus::Progressing;
    room.core_uuid = Some(CORE_A.into());
    let out = uuid::Uuid::parse_str(OUT).unwrap();
    ops::request_bridged_join(&mut room, &caller(), None, JoinAs::default(), out, 1).unwrap();
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

/// The room with B's caller in, through A's leg (member 4).
fn joined() -> Room {
    let mut room = joining();
    let session = caller().id;
    node_leg(
        &mut room,
        CORE_A,
        &session,
        LEG,
        ChannelFact::Created,
        None,
        2,
    );
    apply_event(&mut room, CORE_A, "conf", &added(LEG, 4), None, 3, 556);
    room
}

#[test]
fn the_tagged_leg_is_tied_to_the_joining_member_and_its_add_member_confirms_the_call() {
    let mut room = joining();
    let session = caller().id;
    let tie = node_leg(
        &mut room,
        CORE_A,
        &session,
        LEG,
        ChannelFact::Created,
        None,
        2,
    );
    assert!(tie.changed && tie.effects.is_empty(), "{tie:?}");
    let applied = apply_event(&mut room, CORE_A, "conf", &added(LEG, 4), None, 3, 556);
    let m = &room.members[CALL];
    assert_eq!(m.status, MemberStatus::Joined);
    assert_eq!(m.member_id, Some(4));
    assert_eq!(m.leg(), Some(LEG));
    assert_eq!(room.members.len(), 1, "listed once, under its call");
    let joined: Vec<_> = applied
        .events
        .iter()
        .filter(|e| e.kind == EventKind::MemberJoined)
        .collect();
    assert_eq!(joined.len(), 1);
    assert_eq!(joined[0].data["uuid"], session.as_str());
    assert_eq!(joined[0].data["caller_id"], "3004");
    // Later events of the leg (ANSWER, …) change nothing.
    let again = node_leg(
        &mut room,
        CORE_A,
        &session,
        LEG,
        ChannelFact::Answered,
        None,
        4,
    );
    assert!(!again.changed, "{again:?}");
}

#[test]
fn a_leg_the_room_does_not_expect_is_hung_up_and_never_becomes_a_member() {
    let mut room = joining();
    // Another session's tag: no such join.
    let stranger = SessionId::new(&node("nodeb"), "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b");
    let forged = "6f7a8b9c-0d1e-4f2a-9b3c-4d5e6f7a8b9c";
    let applied = node_leg(
        &mut room,
        CORE_A,
        &stranger,
        forged,
        ChannelFact::Created,
        None,
        2,
    );
    assert_eq!(
        applied.effects,
        vec![Effect::Cancel {
            channel: forged.into()
        }]
    );
    assert_eq!(applied.ignored, Some(Ignored::UnknownMember));
    // Its add-member is nobody's.
    let add = apply_event(&mut room, CORE_A, "conf", &added(forged, 9), None, 3, 560);
    assert_eq!(add.ignored, Some(Ignored::UnknownMember));
    // A second leg with the right tag, once one is tied: hung up too.
    let session = caller().id;
    node_leg(
        &mut room,
        CORE_A,
        &session,
        LEG,
        ChannelFact::Created,
        None,
        4,
    );
    let second = "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d";
    let applied = node_leg(
        &mut room,
        CORE_A,
        &session,
        second,
        ChannelFact::Created,
        None,
        5,
    );
    assert_eq!(
        applied.effects,
        vec![Effect::Cancel {
            channel: second.into()
        }]
    );
    assert_eq!(room.members[CALL].leg(), Some(LEG));
}

#[test]
fn the_legs_mute_kick_and_del_member_are_the_members_and_it_leaves_as_kicked() {
    let mut room = joined();
    let muted = ConferenceFact::MemberUnmuted {
        channel: LEG.into(),
        member_id: 4,
    };
    apply_event(&mut room, CORE_A, "conf", &muted, None, 4, 560);
    assert!(!room.members[CALL].muted);
    // K1: kick on A → kick-member, del-member (A's leg hangs up; B parks the caller).
    let kick = ConferenceFact::MemberKicked {
        channel: LEG.into(),
        member_id: 4,
    };
    apply_event(&mut room, CORE_A, "conf", &kick, None, 5, 570);
    let del = ConferenceFact::MemberDeleted {
        channel: LEG.into(),
        member_id: 4,
        cause: None,
    };
    let out = apply_event(&mut room, CORE_A, "conf", &del, None, 6, 571);
    assert!(room.members.is_empty());
    let left: Vec<_> = out
        .events
        .iter()
        .filter(|e| e.kind == EventKind::MemberLeft)
        .collect();
    assert_eq!(left[0].data["reason"], "kicked");
    // B's CHANNEL_PARK of the caller, after: nothing more.
    let parked = channel_parked(&mut room, CALL, 7);
    assert_eq!(parked.ignored, Some(Ignored::UnknownMember));
}

#[test]
fn a_leave_takes_the_member_out_by_hanging_its_leg_up_on_the_rooms_node() {
    let mut room = joined();
    let applied = ops::request_leave(&mut room, CALL, false, 5).unwrap();
    assert!(
        applied
            .events
            .iter()
            .any(|e| e.kind == EventKind::MemberLeaving)
    );
    assert_eq!(
        room.members[CALL].exit(),
        Some(Exit {
            channel: LEG.into(),
            bridged: true
        })
    );
    // T/D: A's del-member (its leg hung up) or B's park of the caller, whichever comes first.
    let parked = channel_parked(&mut room, CALL, 6);
    assert!(parked.changed);
    assert_eq!(room.past_members[0].leave_reason, Some(LeaveReason::Left));
    let del = ConferenceFact::MemberDeleted {
        channel: LEG.into(),
        member_id: 4,
        cause: Some("NORMAL_CLEARING".into()),
    };
    let late = apply_event(&mut room, CORE_A, "conf", &del, None, 7, 580);
    assert!(!late.changed, "{late:?}");
}

#[test]
fn a_refused_or_unreachable_bridge_fails_the_join() {
    // N: the room's node refuses (its leg hangs up before any add-member).
    let mut room = joining();
    let session = caller().id;
    node_leg(
        &mut room,
        CORE_A,
        &session,
        LEG,
        ChannelFact::Created,
        None,
        2,
    );
    let gone = node_leg(
        &mut room,
        CORE_A,
        &session,
        LEG,
        ChannelFact::HungUp,
        Some("NORMAL_CLEARING"),
        3,
    );
    assert!(
        gone.events
            .iter()
            .any(|e| e.kind == EventKind::MemberJoinFailed)
    );
    assert!(room.members.is_empty());
    // G1d: nothing reached the room's node; the call's node ends the outbound leg.
    let mut room = joining();
    let failed = bridge_ended(&mut room, OUT, Some("NORMAL_TEMPORARY_FAILURE"), 3);
    assert!(
        failed
            .events
            .iter()
            .any(|e| e.kind == EventKind::MemberJoinFailed)
    );
    assert_eq!(
        room.past_members[0].hangup_cause.as_deref(),
        Some("NORMAL_TEMPORARY_FAILURE")
    );
    // Of a joined member, the outbound leg's end is not the word: the room's node tells.
    let mut room = joined();
    let ended = bridge_ended(&mut room, OUT, Some("NORMAL_CLEARING"), 7);
    assert!(!ended.changed);
    assert_eq!(room.members[CALL].status, MemberStatus::Joined);
}

#[test]
fn a_late_event_of_an_old_leg_leaves_the_sessions_new_join_alone() {
    let mut room = joined();
    ops::request_leave(&mut room, CALL, false, 5).unwrap();
    channel_parked(&mut room, CALL, 6);
    let out = uuid::Uuid::new_v4();
    ops::request_bridged_join(&mut room, &caller(), None, JoinAs::default(), out, 7).unwrap();
    let session = caller().id;
    let old = node_leg(
        &mut room,
        CORE_A,
        &session,
        LEG,
        ChannelFact::HungUp,
        Some("NORMAL_CLEARING"),
        8,
    );
    assert_eq!(old.ignored, Some(Ignored::Superseded));
    assert_eq!(room.members[CALL].status, MemberStatus::Joining);
}

#[test]
fn a_lost_node_takes_the_members_carried_across_it_out() {
    // The room's node lost: the carried member leaves, its call to be parked on its node.
    let mut room = joined();
    let (applied, calls) = room_node_failed(&mut room, 9);
    assert_eq!(calls, vec![caller().id]);
    assert_eq!(
        room.past_members[0].leave_reason,
        Some(LeaveReason::NodeFailed)
    );
    assert!(
        applied
            .events
            .iter()
            .any(|e| e.kind == EventKind::MemberLeft)
    );
    // The call's node lost: the member leaves and its leg on the room's node is hung up.
    let mut room = joined();
    let applied = call_node_failed(&mut room, &node("nodeb"), 9);
    assert_eq!(
        applied.effects,
        vec![Effect::Cancel {
            channel: LEG.into()
        }]
    );
    assert_eq!(
        room.past_members[0].leave_reason,
        Some(LeaveReason::NodeFailed)
    );
    // Another node lost: nothing here.
    let mut room = joined();
    let other = call_node_failed(&mut room, &node("nodec"), 9);
    assert!(!other.changed && room.members.len() == 1);
}
