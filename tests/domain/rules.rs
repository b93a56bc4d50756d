//! The domain against real FreeSWITCH event sequences (capture 01): joins, mutes, kick, hangups,
//! destroy; and its properties under duplication, reordering and resync; rooms ending with
//! members in them, whatever order the node reports the leaves in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use switchyard::conference::apply::{channel_gone, channel_parked, in_order};
use switchyard::conference::snapshot::{
    MemberFlags, SnapshotConference, SnapshotMember, SnapshotRecording, Stale, Taken, reconcile,
    reconcile_at,
};
use switchyard::conference::{
    AppId, ConferenceFact, DomainEvent, Effect, EventKind, Exit, Fact, Ignored, LeaveReason,
    Member, MemberStatus, NodePrefix, Observed, RecordingStatus, Room, RoomId, RoomStatus,
    RoomType, Session, SessionId, SessionState, Switch, apply, apply_event, from_event, ops,
};
use switchyard::esl::{Event, Limits, decode_all};

const ALICE: &str = "28ec5c5e-0cdb-4582-983d-48f16177e7f7";
const BOB: &str = "859a7200-da66-4e0f-9321-2f57ca8d66b2";
const CAROL: &str = "90b13b19-4ffb-4dc6-874c-bcf396200bed";
const CORE: &str = "f7ec4279-8453-4be8-b538-0d420fd03b58";

fn capture_facts() -> Vec<Observed> {
    let bytes = std::fs::read(format!(
        "{}/fixtures/esl/01_event_plain_ALL.recv.raw",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    decode_all(&bytes, Limits::default())
        .unwrap()
        .iter()
        .filter(|f| f.content_type().is_decodable_event())
        .filter_map(|f| from_event(&Event::from_frame(f).unwrap()))
        .collect()
}

/// The conference facts of room1, in arrival order (decoded once per test binary).
fn room_facts() -> Vec<(String, ConferenceFact)> {
    static FACTS: std::sync::OnceLock<Vec<(String, ConferenceFact)>> = std::sync::OnceLock::new();
    FACTS
        .get_or_init(|| {
            numbered_room_facts()
                .into_iter()
                .map(|(_, conf, fact)| (conf, fact))
                .collect()
        })
        .clone()
}

/// room1's facts of the capture with the node's `Event-Sequence` of each.
fn numbered_room_facts() -> Vec<(u64, String, ConferenceFact)> {
    capture_facts()
        .into_iter()
        .filter_map(|o| match o.fact {
            Fact::Conference {
                room,
                conference_uuid,
                fact,
            } if room == "room1" => Some((o.sequence, conference_uuid, fact)),
            _ => None,
        })
        .collect()
}

fn prefix() -> NodePrefix {
    NodePrefix::parse("abcde").unwrap()
}

fn session(channel: &str, caller: &str) -> Session {
    Session {
        id: SessionId::new(&prefix(), channel),
        app: AppId::parse("app1").unwrap(),
        did: "15551230000".into(),
        caller_id: caller.into(),
        caller_name: caller.into(),
        state: SessionState::Parked,
        core_uuid: CORE.into(),
        created_at: 0,
        answered_at: Some(0),
        ended_at: None,
        hangup_cause: None,
        seq: 1,
    }
}

/// room1 of the capture as a progressing room in which Alice, Bob and Carol asked to join.
fn room_with_join_requests() -> Room {
    let id = RoomId::new(&prefix(), uuid::Uuid::nil());
    let mut room = Room::new(
        id,
        AppId::parse("app1").unwrap(),
        "standup".into(),
        RoomType::Conference,
        "control-leg".into(),
        0,
    );
    room.status = RoomStatus::Progressing;
    for (channel, caller) in [(ALICE, "1001"), (BOB, "1002"), (CAROL, "1003")] {
        ops::request_join(
            &mut room,
            &session(channel, caller),
            Some(format!("join-{caller}")),
            1,
        )
        .unwrap();
    }
    room
}

fn kinds(events: &[switchyard::conference::DomainEvent]) -> Vec<EventKind> {
    events.iter().map(|e| e.kind).collect()
}

#[test]
fn the_captured_conference_life_folds_into_the_right_room_state() {
    let mut room = room_with_join_requests();
    let mut events = Vec::new();
    let mut effects = Vec::new();
    for (i, (conf_uuid, fact)) in room_facts().iter().enumerate() {
        let applied = apply(&mut room, CORE, conf_uuid, fact, None, 100 + i as i64);
        events.extend(applied.events);
        effects.extend(applied.effects);
    }
    use EventKind::*;
    // The captured callers echo what they hear, so they talk: each join is followed by its
    // start-talking, the mute ends a talk (told after it) and the unmute's talk starts again.
    assert_eq!(
        kinds(&events),
        [
            MemberJoined,
            MemberTalking,
            MemberJoined,
            MemberTalking,
            MemberJoined,
            MemberTalking,
            MemberMuted,
            MemberTalking,
            MemberUnmuted,
            MemberTalking,
            MemberLeft,
            MemberLeft,
            MemberLeft
        ]
    );
    let joined: Vec<u64> = events
        .iter()
        .filter(|e| e.kind == MemberJoined)
        .map(|e| e.data["member_id"].as_u64().unwrap())
        .collect();
    assert_eq!(joined, [1, 2, 3]);
    let muted = events.iter().find(|e| e.kind == MemberMuted).unwrap();
    assert_eq!(muted.data["uuid"], format!("abcde-{ALICE}"));
    let left: BTreeMap<String, LeaveReason> = room
        .past_members
        .iter()
        .map(|m| (m.channel().to_owned(), m.leave_reason.unwrap()))
        .collect();
    assert_eq!(left[BOB], LeaveReason::Kicked);
    assert_eq!(left[CAROL], LeaveReason::Hangup);
    assert_eq!(left[ALICE], LeaveReason::Hangup);
    assert!(room.members.is_empty());
    // The conference was destroyed under a live room: the controller must re-establish it.
    assert_eq!(effects, [Effect::EstablishControlLeg]);
    // Every event carries the seq of its change, strictly increasing.
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(events[0].data["command_uid"], "join-1001");
}

#[test]
fn facts_about_strangers_or_from_another_process_are_ignored() {
    let mut room = room_with_join_requests();
    let facts = room_facts();
    let (conf, created) = &facts[0];
    apply(&mut room, CORE, conf, created, None, 5);
    let stranger = ConferenceFact::MemberMuted {
        channel: "nobody".into(),
        member_id: 99,
    };
    assert_eq!(
        apply(&mut room, CORE, conf, &stranger, None, 6).ignored,
        Some(Ignored::UnknownMember)
    );
    let add = ConferenceFact::MemberAdded {
        channel: ALICE.into(),
        member_id: 1,
        speak: false,
        moderator: false,
    };
    assert_eq!(
        apply(&mut room, "another-core", conf, &add, None, 7).ignored,
        Some(Ignored::StaleCore)
    );
    assert_eq!(room.members[ALICE].status, MemberStatus::Joining);
}

#[test]
fn a_join_never_confirmed_fails_and_says_so() {
    let mut room = room_with_join_requests();
    let applied = ops::expire_joins(&mut room, 2, 50);
    assert_eq!(kinds(&applied.events), [EventKind::MemberJoinFailed; 3]);
    assert!(
        room.past_members
            .iter()
            .all(|m| m.leave_reason == Some(LeaveReason::JoinFailed))
    );
}

#[test]
fn when_a_connect_partner_leaves_the_other_is_ejected_and_the_room_ends() {
    let mut room = room_with_join_requests();
    room.kind = RoomType::Connect;
    room.members.remove(CAROL);
    let add = |c: &str, id| ConferenceFact::MemberAdded {
        channel: c.into(),
        member_id: id,
        speak: false,
        moderator: false,
    };
    apply(&mut room, CORE, "c", &ConferenceFact::Created, None, 2);
    apply(&mut room, CORE, "c", &add(ALICE, 1), None, 3);
    apply(&mut room, CORE, "c", &add(BOB, 2), None, 4);
    let gone = ConferenceFact::MemberDeleted {
        channel: BOB.into(),
        member_id: 2,
        cause: Some("NORMAL_CLEARING".into()),
    };
    let applied = apply(&mut room, CORE, "c", &gone, None, 5);
    assert_eq!(room.status, RoomStatus::Terminating);
    assert!(applied.effects.contains(&Effect::Eject {
        exit: local_exit(ALICE),
        talks: Vec::new(),
    }));
    assert!(kinds(&applied.events).contains(&EventKind::Terminating));
    assert!(kinds(&applied.events).contains(&EventKind::Destroyed));
    // The partner is on its way out, kicked.
    assert_eq!(room.members[ALICE].status, MemberStatus::Leaving);
    let third = session("3c3c3c3c-0000-4000-8000-000000000000", "1009");
    assert!(ops::request_join(&mut room, &third, None, 6).is_err());
}

/// What the tests compare: the members as FreeSWITCH would list them, and the room status.
type Projection = (Vec<(String, Option<u32>, MemberStatus, bool)>, RoomStatus);

fn projection(room: &Room) -> Projection {
    let members = room
        .members
        .values()
        .map(|m| (m.channel().to_owned(), m.member_id, m.status, m.muted))
        .collect();
    (members, room.status)
}

/// FreeSWITCH's own view after some facts: who is in the room, with which id, muted or not.
fn node_truth(facts: &[(String, ConferenceFact)]) -> Option<SnapshotConference> {
    let mut members: BTreeMap<String, (u32, bool)> = BTreeMap::new();
    let mut conf = None;
    for (uuid, fact) in facts {
        match fact {
            ConferenceFact::Created => conf = Some(uuid.clone()),
            ConferenceFact::Destroyed => conf = None,
            ConferenceFact::MemberAdded {
                channel,
                member_id,
                speak,
                ..
            } => {
                members.insert(channel.clone(), (*member_id, *speak));
            }
            ConferenceFact::MemberDeleted { channel, .. } => {
                members.remove(channel);
            }
            ConferenceFact::MemberMuted { channel, .. } => {
                if let Some(m) = members.get_mut(channel) {
                    m.1 = false;
                }
            }
            ConferenceFact::MemberUnmuted { channel, .. } => {
                if let Some(m) = members.get_mut(channel) {
                    m.1 = true;
                }
            }
            _ => {}
        }
    }
    conf.map(|conference_uuid| SnapshotConference {
        conference_name: "room1".into(),
        conference_uuid,
        wait_mod: None,
        recordings: Vec::new(),
        members: members
            .into_iter()
            .map(|(uuid, (id, speak))| SnapshotMember {
                id,
                uuid,
                flags: MemberFlags {
                    can_speak: speak,
                    ..MemberFlags::default()
                },
                carries: None,
            })
            .collect(),
    })
}

/// A snapshot asked for at room version `version`, with no event position known.
fn taken(version: u64) -> Taken {
    Taken { version, events: 0 }
}

proptest! {
    #[test]
    fn applying_a_fact_twice_changes_nothing_the_second_time(dups in prop::collection::vec(any::<bool>(), 60)) {
        let facts = room_facts();
        let mut once = room_with_join_requests();
        let mut twice = room_with_join_requests();
        for (i, (conf, fact)) in facts.iter().enumerate() {
            apply(&mut once, CORE, conf, fact, None, i as i64);
            apply(&mut twice, CORE, conf, fact, None, i as i64);
            if dups.get(i).copied().unwrap_or(false) {
                let seq = twice.seq;
                let again = apply(&mut twice, CORE, conf, fact, None, i as i64);
                prop_assert!(!again.changed, "fact #{i} {fact:?} changed the room twice");
                prop_assert!(again.events.is_empty());
                prop_assert_eq!(twice.seq, seq);
            }
            prop_assert!(twice.status >= RoomStatus::Progressing);
        }
        prop_assert_eq!(projection(&once), projection(&twice));
    }

    #[test]
    fn the_snapshot_after_any_prefix_gives_the_state_the_events_give(cut in 0usize..40) {
        // Compared: who is in the room, with which id, muted or not, and the status.
        let facts = room_facts();
        let cut = cut.min(facts.len());
        let mut by_events = room_with_join_requests();
        for (i, (conf, fact)) in facts[..cut].iter().enumerate() {
            apply(&mut by_events, CORE, conf, fact, None, i as i64);
        }
        // By the time of the snapshot every join had time to settle; unconfirmed ones failed.
        ops::expire_joins(&mut by_events, 1000, 1000);
        let mut by_snapshot = room_with_join_requests();
        reconcile(&mut by_snapshot, CORE, node_truth(&facts[..cut]).as_ref(), &|_| None, 1000, 1000);
        prop_assert_eq!(projection(&by_events), projection(&by_snapshot), "after {} facts", cut);
    }

    #[test]
    fn a_snapshot_older_than_the_room_never_takes_it_back(cut in 0usize..40, later in 1usize..12) {
        // The snapshot is asked for after `cut` facts; `later` more are applied (by this
        // controller or another) before its write. The write leaves the room as the events made
        // it: refused when it would change it, and never a change announced.
        let facts = room_facts();
        let cut = cut.min(facts.len());
        let end = (cut + later).min(facts.len());
        let mut room = room_with_join_requests();
        for (i, (conf, fact)) in facts[..cut].iter().enumerate() {
            apply(&mut room, CORE, conf, fact, None, i as i64);
        }
        let seen = room.seq;
        for (i, (conf, fact)) in facts[cut..end].iter().enumerate() {
            apply(&mut room, CORE, conf, fact, None, (cut + i) as i64);
        }
        let by_events = room.clone();
        let snapshot = node_truth(&facts[..cut]);
        match reconcile_at(&mut room, taken(seen), CORE, snapshot.as_ref(), &|_| None, 0, 1000) {
            Err(stale) => {
                prop_assert_eq!(stale, Stale { seen, now: by_events.seq });
                prop_assert!(by_events.seq != seen);
            }
            Ok(applied) => {
                prop_assert!(!applied.changed || by_events.seq == seen, "{:?}", applied.events);
                if by_events.seq != seen {
                    prop_assert_eq!(projection(&room), projection(&by_events));
                }
            }
        }
    }
}

proptest! {
    #[test]
    fn a_second_reader_behind_the_first_announces_nothing_again(lag in 1usize..10) {
        // Two controller instances apply one node's events to one stored room, the second
        // `lag` events behind the first: the room announces exactly what one reader would.
        let facts = numbered_room_facts();
        prop_assert!(facts.iter().all(|(seq, ..)| *seq > 0), "the capture numbers its events");
        let told = |events: &[DomainEvent]| -> Vec<(EventKind, u64)> {
            events.iter().map(|e| (e.kind, e.seq)).collect()
        };
        let mut alone = room_with_join_requests();
        let mut once = Vec::new();
        for (i, (seq, conf, fact)) in facts.iter().enumerate() {
            once.extend(apply_event(&mut alone, CORE, conf, fact, None, i as i64, *seq).events);
        }
        let mut shared = room_with_join_requests();
        let mut twice = Vec::new();
        for step in 0..facts.len() + lag {
            for i in [Some(step), step.checked_sub(lag)].into_iter().flatten() {
                if let Some((seq, conf, fact)) = facts.get(i) {
                    twice.extend(apply_event(&mut shared, CORE, conf, fact, None, i as i64, *seq).events);
                }
            }
        }
        prop_assert_eq!(told(&twice), told(&once));
        prop_assert_eq!(projection(&shared), projection(&alone));
    }
}

#[test]
fn a_snapshot_of_an_unmoved_room_is_written() {
    let facts = room_facts();
    let mut room = room_with_join_requests();
    for (i, (conf, fact)) in facts.iter().take(8).enumerate() {
        apply(&mut room, CORE, conf, fact, None, i as i64);
    }
    // The node says the room is gone; nothing moved since the snapshot was asked for.
    let seen = room.seq;
    let applied =
        reconcile_at(&mut room, taken(seen), CORE, None, &|_| None, 0, 1000).expect("not stale");
    assert!(applied.changed);
    assert!(
        room.members.is_empty()
            || room
                .members
                .values()
                .all(|m| m.status != MemberStatus::Joined)
    );
}

#[test]
fn a_node_restart_empties_the_room_and_asks_for_a_new_control_leg() {
    let mut room = room_with_join_requests();
    for (i, (conf, fact)) in room_facts().iter().take(6).enumerate() {
        apply(&mut room, CORE, conf, fact, None, i as i64);
    }
    assert!(
        room.members
            .values()
            .any(|m| m.status == MemberStatus::Joined)
    );
    // Joins requested just now (after t = 0) may still be on their way and are kept.
    let applied = reconcile(&mut room, "new-core", None, &|_| None, 0, 500);
    assert!(
        room.members
            .values()
            .all(|m| m.status == MemberStatus::Joining)
    );
    assert!(
        room.past_members
            .iter()
            .all(|m| m.leave_reason == Some(LeaveReason::NodeRestarted))
    );
    assert!(applied.effects.contains(&Effect::EstablishControlLeg));
    assert_eq!(room.core_uuid.as_deref(), Some("new-core"));
}

/// Rooms are stored as JSON on every change, so the stored form is kept small: members as a
/// list (each one's channel is part of its session, stored once), and no empty fields. It reads
/// back as the same room, and so does a record in the older form (members by channel, each with
/// its channel again, and explicit nulls).
#[test]
fn a_stored_room_reads_back_the_same_in_its_compact_and_older_forms() {
    let mut room = room_with_join_requests();
    // Mid-conference: all three joined, and one left already.
    let facts = room_facts();
    for (conf_uuid, fact) in facts.iter().take(5) {
        apply(&mut room, CORE, conf_uuid, fact, None, 100);
    }
    let bob = room.members[BOB].member_id.unwrap();
    ops::request_leave(&mut room, BOB, false, 200).unwrap();
    let deleted = ConferenceFact::MemberDeleted {
        channel: BOB.into(),
        member_id: bob,
        cause: None,
    };
    apply(&mut room, CORE, &facts[0].0, &deleted, None, 201);
    assert_eq!((room.members.len(), room.past_members.len()), (2, 1));

    // The past participations are stored apart (written only when they change), so the room's
    // JSON leaves them out; each list reads back on its own.
    let json = serde_json::to_string(&room).unwrap();
    let past = serde_json::to_string(&room.past_members).unwrap();
    for channel in [ALICE, CAROL] {
        assert_eq!(json.matches(channel).count(), 1, "{channel} once in {json}");
    }
    assert_eq!(past.matches(BOB).count(), 1, "{BOB} once in {past}");
    assert!(!json.contains(BOB), "{json}");
    assert!(
        !json.contains("null") && !past.contains("null"),
        "{json} {past}"
    );
    let mut back = serde_json::from_str::<Room>(&json).unwrap();
    back.past_members = serde_json::from_str(&past).unwrap();
    assert_eq!(back, room);

    // The older form held the past participations inside the room.
    let mut older: serde_json::Value = serde_json::from_str(&json).unwrap();
    older["past_members"] = serde_json::from_str(&past).unwrap();
    let mut by_channel = serde_json::Map::new();
    for mut member in older["members"].as_array().unwrap().clone() {
        let channel = member["session"].as_str().unwrap()[6..].to_owned();
        member["channel"] = channel.clone().into();
        member["left_at"] = serde_json::Value::Null;
        by_channel.insert(channel, member);
    }
    older["members"] = by_channel.into();
    older["recording"] = serde_json::Value::Null;
    assert_eq!(serde_json::from_value::<Room>(older).unwrap(), room);
}

#[test]
fn a_snapshot_reads_past_the_recording_freeswitch_lists_among_the_members() {
    // `conference <room> json_list` from FreeSWITCH 1.11 while the room records: the recording
    // is a `recording_node` entry with no id, uuid or flags.
    let text = include_str!("../../fixtures/esl/json_list_recording_1.11.json");
    let rooms = switchyard::conference::snapshot::parse_conferences(text).unwrap();
    assert_eq!(rooms.len(), 1);
    assert_eq!(rooms[0].conference_name, "rtest");
    assert_eq!(
        rooms[0].members,
        vec![SnapshotMember {
            id: 1,
            uuid: "ctl-1".into(),
            flags: MemberFlags {
                can_speak: true,
                ..MemberFlags::default()
            },
            carries: None,
        }]
    );
    assert_eq!(
        rooms[0].recordings,
        vec![SnapshotRecording {
            path: "/tmp/rtest.wav".into(),
            paused: false,
        }]
    );
}

/// The room's conference as `json_list` would list it: its members with `flags`, and the
/// control leg.
fn listed(room: &Room, flags: impl Fn(&Member) -> MemberFlags) -> SnapshotConference {
    SnapshotConference {
        conference_name: room.id.to_string(),
        conference_uuid: "c".into(),
        wait_mod: None,
        recordings: Vec::new(),
        members: room
            .members
            .values()
            .map(|m| SnapshotMember {
                id: m.member_id.unwrap(),
                uuid: m.channel().into(),
                flags: flags(m),
                carries: None,
            })
            .chain([SnapshotMember {
                id: CONTROL_ID,
                uuid: CONTROL.into(),
                flags: MemberFlags::default(),
                carries: None,
            }])
            .collect(),
    }
}

/// A recording's start-recording, pause-recording or stop-recording lost while nobody listened
/// (a handover, a reconnect): the resync's `json_list`, which lists running recordings, tells
/// what happened, once; a start or stop asked after the resync's cut-off is left to its event.
#[test]
fn a_snapshot_tells_a_recordings_missed_start_pause_and_stop() {
    let mut room = live_room(RoomType::Conference);
    let rec = uuid::Uuid::new_v4();
    let path = "/rec/r1.wav";
    ops::request_recording(&mut room, rec, path, 10).unwrap();
    let base = listed(&room, |_| MemberFlags::default());
    let snapshot = |recordings: Vec<SnapshotRecording>| SnapshotConference {
        recordings,
        ..base.clone()
    };
    let running = |paused| {
        vec![SnapshotRecording {
            path: path.into(),
            paused,
        }]
    };
    let status = |room: &Room| room.recording_by_id(rec).unwrap().status;
    // What it tells of the recording (the members, listed as they join, unmuted, are not the
    // point here).
    let told = |a: &switchyard::conference::Applied| {
        let mut k = kinds(&a.events);
        k.retain(|k| format!("{k:?}").starts_with("Recording"));
        k
    };

    // Asked after the cut-off and not listed yet: on its way.
    let on_its_way = snapshot(Vec::new());
    let applied = reconcile(&mut room, CORE, Some(&on_its_way), &|_| None, 5, 20);
    assert_eq!(status(&room), RecordingStatus::Initiating);
    assert!(told(&applied).is_empty());

    // Listed: its start-recording was missed.
    let listed = snapshot(running(false));
    let applied = reconcile(&mut room, CORE, Some(&listed), &|_| None, 15, 20);
    assert_eq!(status(&room), RecordingStatus::Recording);
    assert_eq!(told(&applied), [EventKind::RecordingStarted]);
    let again = reconcile(&mut room, CORE, Some(&listed), &|_| None, 15, 21);
    assert!(told(&again).is_empty(), "once");

    // Listed paused: its pause-recording was missed.
    let applied = reconcile(
        &mut room,
        CORE,
        Some(&snapshot(running(true))),
        &|_| None,
        15,
        22,
    );
    assert_eq!(status(&room), RecordingStatus::Paused);
    assert_eq!(told(&applied), [EventKind::RecordingPaused]);

    // Gone: its stop-recording was missed; over, with the time it ran.
    let applied = reconcile(
        &mut room,
        CORE,
        Some(&snapshot(Vec::new())),
        &|_| None,
        15,
        5_000_030,
    );
    let ended = room.recording_by_id(rec).unwrap();
    assert_eq!(ended.status, RecordingStatus::Ended);
    assert!(ended.duration_ms.is_some_and(|d| d >= 4_999), "{ended:?}");
    assert_eq!(room.recording, None);
    assert_eq!(told(&applied), [EventKind::RecordingFinished]);

    // Asked, never started by the node, and the cut-off past it: it failed.
    let second = uuid::Uuid::new_v4();
    ops::request_recording(&mut room, second, "/rec/r2.wav", 6_000_000).unwrap();
    let applied = reconcile(
        &mut room,
        CORE,
        Some(&snapshot(Vec::new())),
        &|_| None,
        6_000_001,
        6_000_002,
    );
    let failed = room.recording_by_id(second).unwrap();
    assert_eq!(failed.status, RecordingStatus::Ended);
    assert!(failed.error.is_some(), "{failed:?}");
    assert_eq!(told(&applied), [EventKind::RecordingFinished]);
}

// ---------------------------------------------------------------------------------------------
// A room ending with members in it (issue 15, item 1).

const CONTROL: &str = "control-leg";
const CONTROL_ID: u32 = 10;

/// How a room came to end.
#[derive(Debug, Clone, Copy)]
enum Ending {
    Deleted,
    TimedOut,
    /// A `connect` room of Alice and Bob whose Alice hung up.
    PartnerLeft,
}

/// A live room (control leg in) whose members joined: Alice, Bob and Carol, or Alice and Bob
/// for a `connect` room.
fn live_room(kind: RoomType) -> Room {
    let mut room = room_with_join_requests();
    room.kind = kind;
    room.control.channel = CONTROL.into();
    if kind == RoomType::Connect {
        room.members.remove(CAROL);
    }
    let channels: Vec<String> = room.members.keys().cloned().collect();
    apply(&mut room, CORE, "c", &ConferenceFact::Created, None, 2);
    apply(&mut room, CORE, "c", &added(CONTROL, CONTROL_ID), None, 3);
    for (i, channel) in channels.iter().enumerate() {
        apply(&mut room, CORE, "c", &added(channel, i as u32 + 1), None, 4);
    }
    assert_eq!(room.confirmed_members().count(), channels.len());
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

fn deleted(room: &Room, channel: &str, cause: Option<&str>) -> ConferenceFact {
    let member_id = if channel == CONTROL {
        CONTROL_ID
    } else {
        room.members
            .get(channel)
            .or_else(|| room.past_members.iter().find(|m| m.channel() == channel))
            .and_then(|m| m.member_id)
            .unwrap()
    };
    ConferenceFact::MemberDeleted {
        channel: channel.into(),
        member_id,
        cause: cause.map(str::to_owned),
    }
}

/// What the node reports, one item at a time, as the reconciler hands it to the domain.
#[derive(Debug, Clone)]
enum Report {
    /// A del-member (the control leg's or a member's).
    Deleted(String),
    /// The member's channel parked (it runs `park` after leaving).
    Parked(String),
    Destroyed,
}

/// How a member whose call is on the room's node is taken out: its channel, parked.
fn local_exit(channel: &str) -> Exit {
    Exit {
        channel: channel.into(),
        bridged: false,
    }
}

/// Ends the room as the controller does; returns the events so far and the channels it moved
/// out (for a connect room: Alice's hangup, which ends it, is applied here).
fn end(room: &mut Room, how: Ending) -> (Vec<DomainEvent>, Vec<String>) {
    match how {
        Ending::Deleted | Ending::TimedOut => {
            let reason = if matches!(how, Ending::Deleted) {
                "deleted"
            } else {
                "timeout"
            };
            let (applied, leaving) = ops::request_terminate(room, reason, 10);
            let channels = leaving.into_iter().map(|exit| exit.channel).collect();
            (applied.events, channels)
        }
        Ending::PartnerLeft => {
            let alice = deleted(room, ALICE, Some("NORMAL_CLEARING"));
            let applied = apply(room, CORE, "c", &alice, None, 10);
            assert!(applied.effects.contains(&Effect::ReleaseControlLeg));
            (applied.events, vec![BOB.to_owned()])
        }
    }
}

/// Folds the node's reports of a teardown into the room, as the reconciler would.
fn fold(room: &mut Room, reports: &[Report], events: &mut Vec<DomainEvent>) {
    for (i, report) in reports.iter().enumerate() {
        let now = 20 + i as i64;
        let applied = match report {
            Report::Deleted(channel) => {
                let fact = deleted(
                    room,
                    channel,
                    (channel == CONTROL).then_some("NORMAL_CLEARING"),
                );
                apply(room, CORE, "c", &fact, None, now)
            }
            Report::Parked(channel) => channel_parked(room, channel, now),
            Report::Destroyed => apply(room, CORE, "c", &ConferenceFact::Destroyed, None, now),
        };
        events.extend(applied.events);
    }
}

/// The room's story once it ended: `conference.destroyed` once, each member out exactly once
/// with `reason`, `conference.terminated` once and last; nobody left in the room.
fn assert_ended(room: &Room, events: &[DomainEvent], out: &[(&str, &str)]) {
    let kinds = kinds(events);
    let count = |kind| kinds.iter().filter(|k| **k == kind).count();
    assert_eq!(count(EventKind::Destroyed), 1, "{kinds:?}");
    assert_eq!(count(EventKind::Terminated), 1, "{kinds:?}");
    assert_eq!(
        kinds.last(),
        Some(&EventKind::Terminated),
        "conference.terminated is not last: {kinds:?}"
    );
    for (channel, reason) in out {
        let session = format!("abcde-{channel}");
        let left: Vec<_> = events
            .iter()
            .filter(|e| e.kind == EventKind::MemberLeft && e.data["uuid"] == session.as_str())
            .collect();
        assert_eq!(
            left.len(),
            1,
            "{channel} left {} times: {kinds:?}",
            left.len()
        );
        assert_eq!(left[0].data["reason"], *reason, "{channel}");
    }
    assert_eq!(room.status, RoomStatus::Terminated);
    assert!(
        room.members.is_empty(),
        "still in the room: {:?}",
        room.members.keys()
    );
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
}

/// The reports of a teardown in the node's order: each channel's del-member (the control leg
/// among them), each moved-out member's CHANNEL_PARK right after its own del-member, and
/// conference-destroy after the last, as FreeSWITCH fires them.
fn teardown(order: &[String], moved_out: &[String]) -> Vec<Report> {
    let mut reports = Vec::new();
    for channel in order {
        reports.push(Report::Deleted(channel.clone()));
        if moved_out.contains(channel) {
            reports.push(Report::Parked(channel.clone()));
        }
    }
    reports.push(Report::Destroyed);
    reports
}

fn expected_out(how: Ending) -> Vec<(&'static str, &'static str)> {
    match how {
        Ending::PartnerLeft => vec![(ALICE, "hangup"), (BOB, "kicked")],
        _ => vec![(ALICE, "kicked"), (BOB, "kicked"), (CAROL, "kicked")],
    }
}

fn room_for(how: Ending) -> Room {
    match how {
        Ending::PartnerLeft => live_room(RoomType::Connect),
        _ => live_room(RoomType::Conference),
    }
}

/// The order a FreeSWITCH 1.11 gave for a room of four torn down the controller's way (members
/// moved out, then the control leg killed): the control leg's del-member first.
#[test]
fn a_room_whose_control_leg_leaves_first_ends_after_its_last_member() {
    for how in [Ending::Deleted, Ending::TimedOut, Ending::PartnerLeft] {
        let mut room = room_for(how);
        let (mut events, moved_out) = end(&mut room, how);
        assert_eq!(room.status, RoomStatus::Terminating, "{how:?}");
        let mut order = vec![CONTROL.to_owned()];
        order.extend(moved_out.iter().cloned());
        let reports = teardown(&order, &moved_out);
        // The control leg is out: the room waits for its members, who are still in it.
        fold(&mut room, &reports[..1], &mut events);
        assert_eq!(room.status, RoomStatus::Terminating, "{how:?}");
        assert_eq!(room.members.len(), moved_out.len(), "{how:?}");
        fold(&mut room, &reports[1..], &mut events);
        assert_ended(&room, &events, &expected_out(how));
        let destroyed = events
            .iter()
            .find(|e| e.kind == EventKind::Destroyed)
            .unwrap();
        let reason = match how {
            Ending::Deleted => "deleted",
            Ending::TimedOut => "timeout",
            Ending::PartnerLeft => "partner_left",
        };
        assert_eq!(destroyed.data["reason"], reason);
    }
}

proptest! {
    /// Whatever order the del-members come in, whether a member's CHANNEL_PARK is applied before
    /// its del-member (the reconciler applies a batch's channel facts first) or a del-member is
    /// missed, and even when conference-destroy overtakes some del-members (FreeSWITCH's dispatch
    /// threads may reorder events): every member leaves once, and the room ends last.
    #[test]
    fn a_room_ends_last_and_every_member_leaves_once_in_any_order(
        how in prop_oneof![Just(Ending::Deleted), Just(Ending::TimedOut), Just(Ending::PartnerLeft)],
        order in Just(vec![0usize, 1, 2, 3]).prop_shuffle(),
        park_first in prop::collection::vec(any::<bool>(), 4),
        missed in prop::collection::vec(any::<bool>(), 8),
        destroy_at in 0usize..12,
    ) {
        let mut room = room_for(how);
        let (mut events, moved_out) = end(&mut room, how);
        let mut channels = vec![CONTROL.to_owned()];
        channels.extend(moved_out.iter().cloned());
        let order: Vec<String> = order
            .into_iter()
            .filter_map(|i| channels.get(i).cloned())
            .collect();
        let mut reports = teardown(&order, &moved_out);
        let destroy = reports.pop().unwrap();
        // The reconciler's batch order: a park before the del-member it follows.
        for (i, channel) in moved_out.iter().enumerate() {
            let del = reports.iter().position(|r| matches!(r, Report::Deleted(c) if c == channel));
            if let (Some(del), true) = (del, park_first[i]) {
                reports.swap(del, del + 1);
            }
        }
        // Events lost on the way (conference-destroy still comes).
        let mut n = 0;
        reports.retain(|_| {
            n += 1;
            !missed[n - 1]
        });
        reports.insert(destroy_at.min(reports.len()), destroy);
        fold(&mut room, &reports, &mut events);
        // Whatever came after the end changed nothing.
        assert_ended(&room, &events, &expected_out(how));
    }
}

#[test]
fn a_terminating_room_whose_conference_is_gone_from_the_node_ends_with_its_members() {
    let mut room = live_room(RoomType::Conference);
    let (mut events, _) = end(&mut room, Ending::Deleted);
    // The controller was disconnected during the teardown; the snapshot has no conference.
    events.extend(reconcile(&mut room, CORE, None, &|_| None, 0, 100).events);
    assert_ended(&room, &events, &expected_out(Ending::Deleted));
}

#[test]
fn an_audit_moves_out_again_the_members_a_terminating_room_still_has_on_the_node() {
    let mut room = live_room(RoomType::Conference);
    end(&mut room, Ending::Deleted);
    // Alice's and Bob's del-members came; Carol's move never reached the node.
    for channel in [ALICE, BOB] {
        let fact = deleted(&room, channel, None);
        apply(&mut room, CORE, "c", &fact, None, 20);
    }
    let carol = room.members[CAROL].member_id.unwrap();
    let on_node = SnapshotConference {
        conference_name: "room1".into(),
        conference_uuid: "c".into(),
        wait_mod: None,
        recordings: Vec::new(),
        members: [(CONTROL, CONTROL_ID), (CAROL, carol)]
            .into_iter()
            .map(|(uuid, id)| SnapshotMember {
                id,
                uuid: uuid.into(),
                flags: MemberFlags {
                    can_speak: false,
                    ..MemberFlags::default()
                },
                carries: None,
            })
            .collect(),
    };
    // Just asked: the move may still be on its way.
    let soon = reconcile(&mut room, CORE, Some(&on_node), &|_| None, 5, 30);
    assert!(
        !soon
            .effects
            .iter()
            .any(|e| matches!(e, Effect::Eject { .. })),
        "{soon:?}"
    );
    // Asked long ago (before the joins-settled point): moved out again, control leg hung up.
    let later = reconcile(&mut room, CORE, Some(&on_node), &|_| None, 50, 60);
    assert!(later.effects.contains(&Effect::Eject {
        exit: local_exit(CAROL),
        talks: Vec::new(),
    }));
    assert!(later.effects.contains(&Effect::ReleaseControlLeg));
    assert_eq!(room.status, RoomStatus::Terminating);
}

#[test]
fn a_member_stranded_in_a_room_ended_by_an_older_controller_is_freed_by_its_hangup_quietly() {
    let mut room = live_room(RoomType::Conference);
    end(&mut room, Ending::Deleted);
    // As an older controller stored it: terminated with Carol still listed.
    room.status = RoomStatus::Terminated;
    let applied = channel_gone(&mut room, CAROL, Some("NORMAL_CLEARING"), 50);
    assert!(applied.changed);
    assert!(applied.events.is_empty(), "{applied:?}");
    assert!(!room.members.contains_key(CAROL));
}

/// A step of a room's life on the node, as the reconciler hands it to the domain.
#[derive(Debug, Clone)]
enum NodeStep {
    Fact(ConferenceFact),
    /// The call's CHANNEL_PARK after it left the room.
    Parked(String),
}

/// A room's life on the node, each step numbered as FreeSWITCH numbers its events (10, 20, …):
/// Alice and Bob join; then each `(bob, leave_or_join)` either mutes or unmutes that caller, or
/// takes it out of the room (a del-member, then its call's CHANNEL_PARK) or joins it again.
fn node_history(ops: &[(bool, bool)]) -> Vec<(u64, NodeStep)> {
    let mut steps = vec![NodeStep::Fact(ConferenceFact::Created)];
    let mut next_id = 10;
    let mut state: BTreeMap<&str, Option<(u32, bool)>> = BTreeMap::new();
    for (bob, moves) in [(false, true), (true, true)].iter().chain(ops) {
        let channel = if *bob { BOB } else { ALICE };
        let now = state.entry(channel).or_insert(None);
        match (*now, moves) {
            (None, _) => {
                next_id += 1;
                *now = Some((next_id, true));
                steps.push(NodeStep::Fact(added(channel, next_id)));
            }
            (Some((member_id, _)), true) => {
                *now = None;
                steps.push(NodeStep::Fact(ConferenceFact::MemberDeleted {
                    channel: channel.into(),
                    member_id,
                    cause: None,
                }));
                steps.push(NodeStep::Parked(channel.into()));
            }
            (Some((member_id, muted)), false) => {
                *now = Some((member_id, !muted));
                let (channel, member_id) = (channel.into(), member_id);
                steps.push(NodeStep::Fact(if muted {
                    ConferenceFact::MemberUnmuted { channel, member_id }
                } else {
                    ConferenceFact::MemberMuted { channel, member_id }
                }));
            }
        }
    }
    (1..).map(|n| n * 10).zip(steps).collect()
}

/// Applies one numbered step as the reconciler does (held to the channel's order).
fn feed(room: &mut Room, sequence: u64, step: &NodeStep) -> Vec<DomainEvent> {
    let caller = |channel: &str| Some(session(channel, "1009"));
    match step {
        NodeStep::Fact(fact) => {
            let channel = fact.member_channel().unwrap_or_default().to_owned();
            apply_event(
                room,
                CORE,
                "c",
                fact,
                caller(&channel).as_ref(),
                5,
                sequence,
            )
            .events
        }
        NodeStep::Parked(channel) => {
            in_order(room, CORE, channel, sequence, |r| {
                channel_parked(r, channel, 5)
            })
            .events
        }
    }
}

/// The members' story as announced: (channel, kind, the node's moment it tells of).
fn told_at(events: &[DomainEvent], moment: u64) -> Vec<(String, EventKind, u64)> {
    events
        .iter()
        .filter(|e| e.data["uuid"].is_string())
        .map(|e| {
            (
                e.data["uuid"].as_str().unwrap_or_default().to_owned(),
                e.kind,
                moment,
            )
        })
        .collect()
}

proptest! {
    #[test]
    fn a_snapshot_holds_the_events_before_it_and_none_of_them_is_told_again(
        ops in prop::collection::vec((any::<bool>(), any::<bool>()), 1..24),
        cut in any::<prop::sample::Index>(),
        lag in any::<prop::sample::Index>(),
    ) {
        // A reader has applied the node's steps up to `applied` when it takes a snapshot after
        // `cut` of them: the steps in between were fired before the snapshot and are still on
        // their way (in its connection, or applied late by a second controller instance). Each
        // member's announced story must only ever move forward in the node's history: a step
        // the written snapshot already holds is never told again (a leave and join replayed
        // over a member the snapshot listed was the fleet test's `left, joined` no command made).
        let history = node_history(&ops);
        let cut = 1 + cut.index(history.len());
        let applied = lag.index(cut + 1);
        let mut room = room_with_join_requests();
        let mut told = Vec::new();
        for (sequence, step) in &history[..applied] {
            told.extend(told_at(&feed(&mut room, *sequence, step), *sequence));
        }
        let facts: Vec<(String, ConferenceFact)> = history[..cut]
            .iter()
            .filter_map(|(_, s)| match s {
                NodeStep::Fact(f) => Some(("c".to_owned(), f.clone())),
                NodeStep::Parked(_) => None,
            })
            .collect();
        let mark = history[cut - 1].0;
        let taken = Taken { version: room.seq, events: mark };
        let lookup = |channel: &str| Some(session(channel, "1009"));
        let written = reconcile_at(&mut room, taken, CORE, node_truth(&facts).as_ref(), &lookup, 0, 7);
        let written = written.expect("the room did not move: the write is taken");
        told.extend(told_at(&written.events, mark));
        for (sequence, step) in &history[applied..] {
            told.extend(told_at(&feed(&mut room, *sequence, step), *sequence));
        }
        let mut moment: BTreeMap<&str, u64> = BTreeMap::new();
        for (channel, kind, at) in &told {
            let last = moment.entry(channel.as_str()).or_default();
            prop_assert!(*at > *last, "{kind:?} of {channel} tells of {at}, after {last}: {told:?}");
            *last = *at;
        }
        // And the room ends as the node is.
        let all: Vec<(String, ConferenceFact)> = history
            .iter()
            .filter_map(|(_, s)| match s {
                NodeStep::Fact(f) => Some(("c".to_owned(), f.clone())),
                NodeStep::Parked(_) => None,
            })
            .collect();
        let on_node: Vec<(String, Option<u32>, bool)> = node_truth(&all)
            .map(|c| c.members.iter().map(|m| (m.uuid.clone(), Some(m.id), !m.flags.can_speak)).collect())
            .unwrap_or_default();
        let ours: Vec<(String, Option<u32>, bool)> = room
            .members
            .values()
            .filter(|m| m.status == MemberStatus::Joined)
            .map(|m| (m.channel().to_owned(), m.member_id, m.muted))
            .collect();
        prop_assert_eq!(ours, on_node);
    }
}

#[test]
fn a_snapshot_of_a_held_member_keeps_its_mute_and_deaf_state() {
    // json_list shows a held member's can_speak and can_hear off, whatever they are.
    let mut room = live_room(RoomType::Conference);
    let member_id = room.members[ALICE].member_id.unwrap();
    for fact in [
        ConferenceFact::MemberUnmuted {
            channel: ALICE.into(),
            member_id,
        },
        ConferenceFact::MemberSwitched {
            channel: ALICE.into(),
            member_id,
            switch: Switch::Hold,
            on: true,
        },
    ] {
        apply(&mut room, CORE, "c", &fact, None, 5);
    }
    // The others as they are: muted, hearing.
    let listed = |id: u32, uuid: &str, hold: bool| SnapshotMember {
        id,
        uuid: uuid.into(),
        flags: MemberFlags {
            can_speak: false,
            can_hear: !hold,
            hold,
            talking: false,
            is_moderator: false,
        },
        carries: None,
    };
    let snapshot = SnapshotConference {
        conference_name: room.id.to_string(),
        conference_uuid: "c".into(),
        wait_mod: None,
        recordings: Vec::new(),
        members: room
            .members
            .values()
            .map(|m| listed(m.member_id.unwrap(), m.channel(), m.channel() == ALICE))
            .chain([listed(CONTROL_ID, CONTROL, false)])
            .collect(),
    };
    let before = room.clone();
    let applied = reconcile(&mut room, CORE, Some(&snapshot), &|_| None, 0, 9);
    let alice = &room.members[ALICE];
    assert!(alice.held && !alice.muted && !alice.deaf, "{alice:?}");
    assert!(
        applied.events.is_empty(),
        "nothing changed: {:?}",
        kinds(&applied.events)
    );
    assert_eq!(room.members[ALICE].muted, before.members[ALICE].muted);
}

#[test]
fn a_held_members_music_plays_again_until_an_unhold_is_on_its_way() {
    let mut room = live_room(RoomType::Conference);
    let member_id = room.members[ALICE].member_id.unwrap();
    let done = ConferenceFact::MemberFileDone {
        channel: ALICE.into(),
        member_id,
        op: None,
    };
    let music = || Effect::HoldMusic {
        member_id,
        file: "https://cdn.example.com/hold.wav".into(),
    };
    // Not held: a member file's end is nothing to act on.
    assert!(
        apply(&mut room, CORE, "c", &done, None, 5)
            .effects
            .is_empty()
    );
    ops::request_switch(&mut room, ALICE, Switch::Hold, true, 6).unwrap();
    room.members.get_mut(ALICE).unwrap().hold_music =
        Some("https://cdn.example.com/hold.wav".into());
    let held = ConferenceFact::MemberSwitched {
        channel: ALICE.into(),
        member_id,
        switch: Switch::Hold,
        on: true,
    };
    apply(&mut room, CORE, "c", &held, None, 7);
    assert!(room.members[ALICE].held);
    assert_eq!(
        apply(&mut room, CORE, "c", &done, None, 8).effects,
        [music()]
    );
    // The node's own hold music loops by itself.
    room.members.get_mut(ALICE).unwrap().hold_music = None;
    assert!(
        apply(&mut room, CORE, "c", &done, None, 9)
            .effects
            .is_empty()
    );
    room.members.get_mut(ALICE).unwrap().hold_music =
        Some("https://cdn.example.com/hold.wav".into());
    // An unhold on its way stops the music; its end is not played again.
    ops::request_switch(&mut room, ALICE, Switch::Hold, false, 10).unwrap();
    assert!(
        apply(&mut room, CORE, "c", &done, None, 11)
            .effects
            .is_empty()
    );
}

#[test]
fn a_digit_is_announced_once_and_does_not_hold_back_the_members_state_events() {
    use switchyard::conference::apply::dtmf;
    let mut room = live_room(RoomType::Conference);
    let member_id = room.members[ALICE].member_id.unwrap();
    // Two controller instances apply the same DTMF event (sequence 50): one announcement.
    let first = dtmf(&mut room, ALICE, "5", 50, 10);
    assert_eq!(kinds(&first.events), [EventKind::MemberDtmf]);
    assert_eq!(first.events[0].data["digit"], "5");
    assert!(dtmf(&mut room, ALICE, "5", 50, 11).events.is_empty());
    // An unmute fired just before the digit (sequence 49) but delivered after it still counts.
    let unmute = ConferenceFact::MemberUnmuted {
        channel: ALICE.into(),
        member_id,
    };
    let applied = apply_event(&mut room, CORE, "c", &unmute, None, 12, 49);
    assert_eq!(kinds(&applied.events), [EventKind::MemberUnmuted]);
    // A stranger's digit is nobody's.
    assert!(
        dtmf(&mut room, "not-a-member", "1", 51, 13)
            .events
            .is_empty()
    );
}

#[test]
fn talking_follows_the_nodes_events_and_a_newer_state_event_ends_it() {
    let mut room = live_room(RoomType::Conference);
    let member_id = room.members[ALICE].member_id.unwrap();
    let talk = |on: bool| ConferenceFact::MemberTalking {
        channel: ALICE.into(),
        member_id,
        talking: on,
    };
    let (mute, unmute) = (
        ConferenceFact::MemberMuted {
            channel: ALICE.into(),
            member_id,
        },
        ConferenceFact::MemberUnmuted {
            channel: ALICE.into(),
            member_id,
        },
    );
    let told = |a: &switchyard::conference::Applied| -> Vec<(EventKind, bool)> {
        a.events
            .iter()
            .map(|e| (e.kind, e.data["talking"] == true))
            .collect()
    };
    apply_event(&mut room, CORE, "c", &unmute, None, 5, 10);
    let on = apply_event(&mut room, CORE, "c", &talk(true), None, 6, 12);
    assert_eq!(told(&on), [(EventKind::MemberTalking, true)]);
    assert!(room.members[ALICE].talking);
    // A second instance applying the same event tells nothing again.
    assert!(
        apply_event(&mut room, CORE, "c", &talk(true), None, 7, 12)
            .events
            .is_empty()
    );
    // A mute ends the spurt (the node sends no stop-talking): told after the mute.
    let muted = apply_event(&mut room, CORE, "c", &mute, None, 8, 13);
    assert_eq!(
        told(&muted),
        [
            (EventKind::MemberMuted, false),
            (EventKind::MemberTalking, false)
        ]
    );
    // A start fired before the mute, applied late, is older than the member's state.
    let late = apply_event(&mut room, CORE, "c", &talk(true), None, 9, 11);
    assert_eq!(late.ignored, Some(Ignored::Superseded));
    // A muted member's voice is not heard, so it does not talk.
    assert!(
        apply_event(&mut room, CORE, "c", &talk(true), None, 10, 14)
            .events
            .is_empty()
    );
    assert!(!room.members[ALICE].talking);
    apply_event(&mut room, CORE, "c", &unmute, None, 11, 15);
    let again = apply_event(&mut room, CORE, "c", &talk(true), None, 12, 16);
    assert_eq!(told(&again), [(EventKind::MemberTalking, true)]);
    // Talking events do not make an older state event look stale: a mute fired just before a
    // start-talking but delivered after it is still applied, and ends the talking.
    apply_event(&mut room, CORE, "c", &talk(false), None, 13, 18);
    apply_event(&mut room, CORE, "c", &talk(true), None, 14, 20);
    assert!(room.members[ALICE].talking);
    let crossed = apply_event(&mut room, CORE, "c", &mute, None, 15, 19);
    assert_eq!(
        told(&crossed),
        [
            (EventKind::MemberMuted, false),
            (EventKind::MemberTalking, false)
        ]
    );
    // Every member event carries the flag.
    let gone = deleted(&room, ALICE, None);
    let left = apply_event(&mut room, CORE, "c", &gone, None, 16, 21);
    assert_eq!(left.events[0].data["talking"], false);
}

#[test]
fn a_snapshot_ends_a_talk_whose_stop_was_missed_and_never_starts_one() {
    let mut room = live_room(RoomType::Conference);
    for (channel, seq) in [(ALICE, 10), (BOB, 11)] {
        let member_id = room.members[channel].member_id.unwrap();
        let unmute = ConferenceFact::MemberUnmuted {
            channel: channel.into(),
            member_id,
        };
        apply_event(&mut room, CORE, "c", &unmute, None, 5, seq);
    }
    let talk = ConferenceFact::MemberTalking {
        channel: ALICE.into(),
        member_id: room.members[ALICE].member_id.unwrap(),
        talking: true,
    };
    apply_event(&mut room, CORE, "c", &talk, None, 6, 12);
    // The node lists Alice quiet (her stop-talking was lost) and Bob talking.
    let snapshot = listed(&room, |m| MemberFlags {
        can_speak: m.channel() != CAROL,
        talking: m.channel() == BOB,
        ..MemberFlags::default()
    });
    let applied = reconcile(&mut room, CORE, Some(&snapshot), &|_| None, 0, 9);
    assert!(!room.members[ALICE].talking);
    assert!(!room.members[BOB].talking, "talking is told by its events");
    let talks: Vec<(&str, bool)> = applied
        .events
        .iter()
        .filter(|e| e.kind == EventKind::MemberTalking)
        .map(|e| (e.data["uuid"].as_str().unwrap(), e.data["talking"] == true))
        .collect();
    assert_eq!(talks, [(room.members[ALICE].session.as_str(), false)]);
}

#[test]
fn a_coach_stays_unheard_by_members_who_join_later_but_the_one_it_coaches() {
    let mut room = live_room(RoomType::Conference);
    let (alice_id, bob_id) = (
        room.members[ALICE].member_id.unwrap(),
        room.members[BOB].member_id.unwrap(),
    );
    let bob = room.members[BOB].session.clone();
    let (_, coaching) = ops::request_coach(&mut room, ALICE, &bob, 5).unwrap();
    // Everyone but Bob, the control leg included, must not hear Alice.
    let carol_id = room.members[CAROL].member_id.unwrap();
    let mut unheard = vec![carol_id, CONTROL_ID];
    unheard.sort_unstable();
    assert_eq!(coaching.coach, alice_id);
    assert_eq!(coaching.unheard, unheard);
    assert!(ops::coaching_sent(&mut room, ALICE, 6).events[0].data["coaching"] == bob.as_str());
    // Bob leaves and comes back: he hears his coach again (no effect); Carol the same: she
    // does not.
    for (channel, member_id, expected) in [
        (BOB, bob_id, vec![]),
        (
            CAROL,
            carol_id,
            vec![Effect::Unhear {
                coach: alice_id,
                member_id: carol_id,
            }],
        ),
    ] {
        let gone = deleted(&room, channel, None);
        apply(&mut room, CORE, "c", &gone, None, 7);
        ops::request_join(&mut room, &session(channel, "1002"), None, 8).unwrap();
        let back = apply(&mut room, CORE, "c", &added(channel, member_id), None, 9);
        assert_eq!(back.effects, expected, "{channel}");
    }
    // The coach itself asks nothing of others when it rejoins, and uncoach ends it.
    assert_eq!(
        ops::request_coach(&mut room, ALICE, &bob, 10).unwrap_err(),
        ops::OpError::AlreadyInState("coaching that member")
    );
    ops::request_uncoach(&mut room, ALICE, 11).unwrap();
    assert!(room.members[ALICE].coaching.is_none());
    assert_eq!(
        ops::request_uncoach(&mut room, ALICE, 12).unwrap_err(),
        ops::OpError::NotCoaching
    );
    let alice = room.members[ALICE].session.clone();
    assert_eq!(
        ops::request_coach(&mut room, ALICE, &alice, 13).unwrap_err(),
        ops::OpError::CoachSelf
    );
}

#[test]
fn an_end_on_exit_member_leaving_ends_the_room_and_moves_the_others_out() {
    let mut room = room_with_join_requests();
    room.control.channel = CONTROL.into();
    room.members.get_mut(ALICE).unwrap().end_on_exit = true;
    apply(&mut room, CORE, "c", &ConferenceFact::Created, None, 2);
    apply(&mut room, CORE, "c", &added(CONTROL, CONTROL_ID), None, 3);
    for (i, channel) in [ALICE, BOB, CAROL].iter().enumerate() {
        apply(&mut room, CORE, "c", &added(channel, i as u32 + 1), None, 4);
    }
    let gone = deleted(&room, ALICE, None);
    let applied = apply(&mut room, CORE, "c", &gone, None, 5);
    assert_eq!(room.status, RoomStatus::Terminating);
    let destroyed = applied
        .events
        .iter()
        .find(|e| e.kind == EventKind::Destroyed)
        .unwrap();
    assert_eq!(destroyed.data["reason"], "end_on_exit");
    let ejected: Vec<&str> = applied
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::Eject { exit, .. } => Some(exit.channel.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(ejected, [BOB, CAROL]);
    assert!(applied.effects.contains(&Effect::ReleaseControlLeg));
    // A member without end_on_exit leaving ends nothing.
    let mut other = live_room(RoomType::Conference);
    let gone = deleted(&other, BOB, None);
    apply(&mut other, CORE, "c", &gone, None, 5);
    assert_eq!(other.status, RoomStatus::Progressing);
}

#[test]
fn a_waiting_room_starts_when_its_first_moderator_is_in() {
    let mut room = room_with_join_requests();
    room.control.channel = CONTROL.into();
    room.wait_for_moderator = true;
    room.waiting_for_moderator = true;
    room.members.get_mut(CAROL).unwrap().moderator = true;
    apply(&mut room, CORE, "c", &ConferenceFact::Created, None, 2);
    apply(&mut room, CORE, "c", &added(CONTROL, CONTROL_ID), None, 3);
    apply(&mut room, CORE, "c", &added(ALICE, 1), None, 4);
    assert!(room.waiting_for_moderator);
    let joined = apply(&mut room, CORE, "c", &added(CAROL, 3), None, 5);
    assert!(!room.waiting_for_moderator);
    assert_eq!(joined.events[0].data["moderator"], true);
}

proptest! {
    /// A caller's voice and mute commands in any order, FreeSWITCH's events numbered as it fires
    /// them (talking only while unmuted; a mute ends a spurt with no stop-talking), talking
    /// events held and only each one's newest applied at the end of an interval (as
    /// `node::talking` does), state events applied as they come, and a late pair of events
    /// swapped in delivery: once everything is applied the member's talking and mute state is
    /// the node's, and every talking webhook told a change.
    #[test]
    fn held_talking_events_end_in_the_nodes_state(
        steps in prop::collection::vec((0u8..4, any::<bool>()), 1..40),
        swap in any::<bool>(),
    ) {
        let mut room = live_room(RoomType::Conference);
        let member_id = room.members[ALICE].member_id.unwrap();
        // The node: Alice's caller speaking, her mute, and whether FreeSWITCH holds her talking.
        let (mut voice, mut muted, mut talking) = (false, room.members[ALICE].muted, false);
        let mut seq = 100u64;
        let mut fired: Vec<(u64, ConferenceFact, bool)> = Vec::new();
        for (kind, flush) in steps {
            let mut fire = |fact: ConferenceFact| {
                seq += 1;
                let is_talk = fact.is_talking();
                fired.push((seq, fact, is_talk));
            };
            match kind {
                0 => voice = !voice,
                1 => {
                    muted = !muted;
                    fire(if muted {
                        ConferenceFact::MemberMuted { channel: ALICE.into(), member_id }
                    } else {
                        ConferenceFact::MemberUnmuted { channel: ALICE.into(), member_id }
                    });
                    if muted {
                        talking = false;
                    }
                }
                _ => {}
            }
            let now = voice && !muted;
            if now != talking {
                talking = now;
                fire(ConferenceFact::MemberTalking {
                    channel: ALICE.into(),
                    member_id,
                    talking: now,
                });
            }
            if flush {
                fired.push((0, ConferenceFact::Destroyed, false));
            }
        }
        if swap && fired.len() >= 2 {
            let n = fired.len();
            fired.swap(n - 1, n - 2);
        }
        // Delivery: state events at once, talking events held until the next flush mark.
        let mut held: Option<(u64, ConferenceFact)> = None;
        let mut told = Vec::new();
        let mut last_told = false;
        let apply_told = |room: &mut Room, fact: &ConferenceFact, seq: u64, told: &mut Vec<bool>| {
            let applied = apply_event(room, CORE, "c", fact, None, seq as i64, seq);
            for e in applied.events.iter().filter(|e| e.kind == EventKind::MemberTalking) {
                told.push(e.data["talking"] == true);
            }
        };
        for (seq, fact, is_talk) in fired.iter().chain([(0, ConferenceFact::Destroyed, false)].iter()) {
            match (seq, is_talk) {
                (0, _) => {
                    if let Some((s, f)) = held.take() {
                        apply_told(&mut room, &f, s, &mut told);
                    }
                }
                (_, true) => {
                    if held.as_ref().is_none_or(|(s, _)| s < seq) {
                        held = Some((*seq, fact.clone()));
                    }
                }
                _ => apply_told(&mut room, fact, *seq, &mut told),
            }
        }
        let alice = &room.members[ALICE];
        prop_assert_eq!(alice.muted, muted);
        // A start swapped behind the mute that ended it arrives older than the mute: not applied.
        prop_assert_eq!(alice.talking, talking && !muted);
        for t in &told {
            prop_assert_ne!(*t, last_told, "a talking webhook that told no change: {:?}", told);
            last_told = *t;
        }
    }
}

/// A plain event as FreeSWITCH frames it (headers URL-encoded, then the body).
fn plain_event(headers: &[(&str, &str)], body: &str) -> Event {
    let mut inner = String::new();
    for (k, v) in headers {
        inner.push_str(&format!("{k}: {v}\n"));
    }
    if !body.is_empty() {
        inner.push_str(&format!("Content-Length: {}\n", body.len()));
    }
    inner.push('\n');
    inner.push_str(body);
    let frame = format!(
        "Content-Length: {}\nContent-Type: text/event-plain\n\n{inner}",
        inner.len()
    );
    let frames = decode_all(frame.as_bytes(), Limits::default()).unwrap();
    Event::from_frame(&frames[0]).unwrap()
}

#[test]
fn a_dial_outs_failed_originate_job_is_a_fact_of_its_room_and_others_are_not() {
    // As fixtures/esl/09_dialout.md shows it (scenario B): the arguments URL-encoded.
    let arg = "%7Borigination_uuid%3D0cb83d9b-a490-4c3b-b5ad-ab70fa14adf7,ignore_early_media%3Dtrue,\
               switchyard_role%3Ddialout,switchyard_app_id%3Dapp-a,\
               switchyard_room%3DacW68-room-550e8400-e29b-41d4-a716-446655440000%7D\
               sofia/inbound/sip%3A2001%40127.0.0.1%3A51964%20conference%3Ax%20inline";
    let job = |command: &str, arg: &str, body: &str| {
        plain_event(
            &[
                ("Event-Name", "BACKGROUND_JOB"),
                ("Core-UUID", CORE),
                ("Event-Sequence", "661"),
                ("Job-UUID", "7f4de4e0-6e1f-4a8e-9b5c-1d2e3f4a5b6c"),
                ("Job-Command", command),
                ("Job-Command-Arg", arg),
            ],
            body,
        )
    };
    let fact = from_event(&job("originate", arg, "-ERR USER_BUSY\n"))
        .unwrap()
        .fact;
    assert_eq!(
        fact,
        Fact::DialoutFailed {
            room: "acW68-room-550e8400-e29b-41d4-a716-446655440000".into(),
            channel: "0cb83d9b-a490-4c3b-b5ad-ab70fa14adf7".into(),
            cause: "USER_BUSY".into(),
        }
    );
    // Answered: the channel's events tell it; a control leg's originate, another command, or a
    // cause that is not one are no dial-out failures.
    for (command, arg, body) in [
        (
            "originate",
            arg,
            "+OK 0cb83d9b-a490-4c3b-b5ad-ab70fa14adf7\n",
        ),
        (
            "originate",
            "%7Borigination_uuid%3Dx,switchyard_role%3Dcontrol%7Dnull/switchyard",
            "-ERR X\n",
        ),
        ("status", arg, "-ERR USER_BUSY\n"),
    ] {
        let fact = from_event(&job(command, arg, body)).unwrap().fact;
        assert!(matches!(fact, Fact::Job { .. }), "{fact:?}");
    }
    let odd = from_event(&job("originate", arg, "-ERR user busy; rm -rf\n")).unwrap();
    assert!(
        matches!(&odd.fact, Fact::DialoutFailed { cause, .. } if cause == "UNKNOWN"),
        "{odd:?}"
    );
}

/// A room placing a call to `channel` (as `ops::request_dialout` records it).
fn dialing(room: &mut Room, channel: &str, deadline: i64) {
    let prefix = room.node.clone();
    let dialout = switchyard::conference::Dialout {
        id: uuid::Uuid::parse_str(channel).unwrap(),
        session: SessionId::new(&prefix, channel),
        to: "sip:dave@pbx.example.com".into(),
        state: switchyard::conference::DialoutState::Dialing,
        muted: false,
        moderator: true,
        end_on_exit: false,
        command_uid: None,
        metadata: serde_json::json!({ "role": "guest" }).as_object().cloned(),
        requested_at: 10,
        deadline,
        updated_at: 10,
    };
    ops::request_dialout(room, dialout, 10).unwrap();
}

const DAVE: &str = "0a4be0d6-3c1e-4f86-9a57-5f3f9e2b1c11";

#[test]
fn a_dial_out_answered_into_the_room_is_a_member_as_asked_and_later_steps_change_nothing() {
    use switchyard::conference::apply::{DialoutStep, apply_dialout};
    let mut room = live_room(RoomType::Conference);
    dialing(&mut room, DAVE, i64::MAX);
    let kinds =
        |a: &switchyard::conference::Applied| a.events.iter().map(|e| e.kind).collect::<Vec<_>>();
    let rang = apply_dialout(&mut room, CORE, DAVE, &DialoutStep::Ringing, 20);
    assert_eq!(kinds(&rang), [EventKind::ParticipantRinging]);
    // Its CHANNEL_ANSWER missed: the add-member tells the answer first, then the join.
    let joined = apply(&mut room, CORE, "c", &added(DAVE, 7), None, 30);
    assert_eq!(
        kinds(&joined),
        [EventKind::ParticipantAnswered, EventKind::MemberJoined]
    );
    let m = &room.members[DAVE];
    assert_eq!((m.muted, m.moderator), (true, true), "the node's mute wins");
    assert_eq!(
        m.metadata.as_ref().map(|d| d["role"].clone()),
        Some(serde_json::json!("guest")),
        "the dial-out's metadata is the member's"
    );
    assert_eq!(m.conferencecall_id.to_string(), DAVE);
    assert_eq!(m.did, "sip:dave@pbx.example.com");
    assert!(room.dialouts.is_empty());
    // Late or repeated steps of a call that is a member now change nothing.
    for step in [
        DialoutStep::Ringing,
        DialoutStep::Answered,
        DialoutStep::failed("NORMAL_CLEARING"),
    ] {
        let late = apply_dialout(&mut room, CORE, DAVE, &step, 40);
        assert!(late.events.is_empty() && !late.changed, "{step:?}");
    }
}

#[test]
fn a_dial_out_holds_a_place_fails_once_and_is_cancelled_with_its_room_or_past_its_deadline() {
    use switchyard::conference::apply::{DialoutStep, apply_dialout};
    let mut room = live_room(RoomType::Conference);
    room.max_participants = room.members.len() as u64 + 1;
    dialing(&mut room, DAVE, 1_000);
    // The ringing call holds the last place.
    let erin = session("5e0c8a1b-7d2f-4c3a-8b6e-1f2a3b4c5d6e", "1005");
    assert_eq!(
        ops::request_join(&mut room.clone(), &erin, None, 50),
        Err(ops::OpError::RoomFull(room.max_participants))
    );
    // Busy: told once, with the reason and the cause; the place is free.
    let failed = apply_dialout(&mut room, CORE, DAVE, &DialoutStep::failed("USER_BUSY"), 60);
    assert_eq!(failed.events.len(), 1);
    assert_eq!(failed.events[0].kind, EventKind::ParticipantFailed);
    assert_eq!(failed.events[0].data["reason"], "busy");
    assert_eq!(failed.events[0].data["hangup_cause"], "USER_BUSY");
    let again = apply_dialout(&mut room, CORE, DAVE, &DialoutStep::failed("USER_BUSY"), 61);
    assert!(again.events.is_empty());
    assert!(ops::request_join(&mut room.clone(), &erin, None, 62).is_ok());

    // Past its deadline: unanswered, it is hung up; answered, it is left alone.
    dialing(&mut room, DAVE, 1_000);
    let expired = ops::expire_joins(&mut room, 0, 2_000);
    assert_eq!(expired.events[0].data["reason"], "timeout");
    assert_eq!(
        expired.effects,
        [Effect::Cancel {
            channel: DAVE.into()
        }]
    );
    dialing(&mut room, DAVE, i64::MAX);
    apply_dialout(&mut room, CORE, DAVE, &DialoutStep::Answered, 3_000);
    let expired = ops::expire_joins(&mut room, 0, 3_000 + 11_000_000);
    assert_eq!(expired.events[0].data["reason"], "timeout");
    assert!(expired.effects.is_empty(), "{:?}", expired.effects);

    // The room ends while a call rings: cancelled, and hung up.
    dialing(&mut room, DAVE, i64::MAX);
    let (ended, _) = ops::request_terminate(&mut room, "deleted", 4_000);
    let failed: Vec<_> = ended
        .events
        .iter()
        .filter(|e| e.kind == EventKind::ParticipantFailed)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].data["reason"], "cancelled");
    assert!(ended.effects.contains(&Effect::Cancel {
        channel: DAVE.into()
    }));
}

/// A node's new owner replays the events it kept on standby from where the previous owner last
/// recorded its position, so facts about the room itself may be applied twice: the second time
/// changes nothing (a play of two files is not finished by the first file's done heard twice),
/// while a fact the node delivered a little out of order is still applied.
#[test]
fn a_room_fact_heard_again_changes_nothing() {
    let mut room = live_room(RoomType::Conference);
    room.core_uuid = Some(CORE.into());
    let op = uuid::Uuid::new_v4();
    let urls = vec!["https://x/a.wav".to_owned(), "https://x/b.wav".to_owned()];
    ops::request_play(&mut room, op, &urls, None, 2).unwrap();
    let done = |file: &str| ConferenceFact::PlayFileDone {
        file: file.into(),
        op: Some(op.to_string()),
    };
    let first = apply_event(&mut room, CORE, "c", &done(&urls[0]), None, 3, 100);
    assert!(first.changed && first.events.is_empty(), "{first:?}");
    let again = apply_event(&mut room, CORE, "c", &done(&urls[0]), None, 4, 100);
    assert_eq!(again.ignored, Some(Ignored::Superseded));
    assert!(again.events.is_empty(), "finished by a replay: {again:?}");
    assert_eq!(room.playback.pending, 1);
    // The second file's done, delivered before a fact numbered earlier: both applied.
    let last = apply_event(&mut room, CORE, "c", &done(&urls[1]), None, 5, 103);
    assert_eq!(kinds(&last.events), [EventKind::PlayFinished]);
    let created = ConferenceFact::Created;
    room.conference_uuid = None;
    let late = apply_event(&mut room, CORE, "c2", &created, None, 6, 102);
    assert!(late.changed, "{late:?}");
    assert_eq!(room.fact_seqs, [100, 102, 103]);
    // Marks are bounded: past them, an older fact counts as heard.
    for s in 0..(Room::FACT_MARKS as u64 + 4) {
        room.conference_uuid = None;
        apply_event(
            &mut room,
            CORE,
            &format!("x{s}"),
            &created,
            None,
            7,
            200 + s,
        );
    }
    assert_eq!(room.fact_seqs.len(), Room::FACT_MARKS);
    room.conference_uuid = None;
    let old = apply_event(&mut room, CORE, "y", &created, None, 8, 150);
    assert_eq!(old.ignored, Some(Ignored::Superseded));
}
