//! The session routes over the lab: list and read sessions, conference join/leave/mute/unmute,
//! hangup; deferred confirmation by events, join deadlines, cooldowns, `command_uid`, and
//! media-node failures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use switchyard::conference::EventKind;
use switchyard::store::memory::MemoryStore;

use common::api::{A, TestLab, assert_error, eventually, options};

async fn lab() -> TestLab<MemoryStore> {
    TestLab::start(MemoryStore::new(), options()).await
}

const NO_SESSION: &str = "lab01-28ec5c5e-0cdb-4582-983d-48f16177e7f7";
const NO_ROOM: &str = "lab01-room-550e8400-e29b-41d4-a716-446655440000";

#[tokio::test]
async fn a_join_is_confirmed_only_by_add_member() {
    let t = lab().await;
    let room = t.room(A, "confirm").await;
    let s = t.call(A, "1001").await;
    t.sim().stall_events(true);
    let r = t.join(A, &s, &room).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_eq!(r.body, json!({ "status": "joining", "room_id": room }));
    // Still joining: not a member yet, and mute/unmute/leave say so.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(t.members(A, &room).await.is_empty());
    for verb in [
        "conference/mute",
        "conference/unmute",
        "conference/deaf",
        "conference/hold",
        "conference/leave",
    ] {
        assert_error(&t.command(A, &s, verb).await, StatusCode::CONFLICT);
    }
    // Joining again while joining is the same room: already joined.
    let again = t.join(A, &s, &room).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["status"], "already_joined");
    t.sim().stall_events(false);
    eventually("add-member arrives", || async {
        !t.members(A, &room).await.is_empty()
    })
    .await;
    let mut members = t.members(A, &room).await;
    // When the node confirmed it: a time, and no later than now.
    let joined_at = members[0]["joined_at"].take();
    let joined_at = joined_at.as_str().unwrap_or_default().to_owned();
    assert!(
        joined_at.len() == 20 && joined_at.ends_with('Z'),
        "{joined_at:?}"
    );
    members[0]["joined_at"] = serde_json::Value::Null;
    let show = t.get(&format!("/api/v1/conferences/{room}"), A).await;
    assert_eq!(show.body["members"], 1);
    // The participation the member is: the room's one conferencecall.
    let conferencecall = show.body["conferencecall_ids"][0].clone();
    assert!(conferencecall.is_string(), "{show:?}");
    assert_eq!(
        members,
        vec![json!({
            "uuid": s, "did": "15551230000", "caller_id": "1001",
            "muted": true, "deaf": false, "held": false, "moderator": false, "coaching": null, "talking": false,
            "conferencecall_id": conferencecall, "joined_at": null, "metadata": null,
            "volume_in": 0, "volume_out": 0, "energy": null,
        })]
    );
    let session = t.get(&format!("/api/v1/sessions/{s}"), A).await;
    assert_eq!(session.body["room_id"], room.as_str());
    assert_eq!(t.count(A, EventKind::MemberJoined).await, 1);
}

#[tokio::test]
async fn a_join_never_confirmed_fails_and_says_so() {
    let mut o = options();
    o.join_timeout = Duration::from_millis(400);
    let t = TestLab::start(MemoryStore::new(), o).await;
    let room = t.room(A, "never").await;
    let s = t.call(A, "1001").await;
    t.sim().drop_events("Action", "add-member");
    let r = t.join(A, &s, &room).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    eventually("the join fails", || async {
        t.count(A, EventKind::MemberJoinFailed).await == 1
    })
    .await;
    assert!(t.members(A, &room).await.is_empty());
    let session = t.get(&format!("/api/v1/sessions/{s}"), A).await;
    assert!(session.body["room_id"].is_null(), "{session:?}");
    let failed = t.events(A).await;
    let failed = failed
        .iter()
        .find(|e| e.kind == EventKind::MemberJoinFailed)
        .unwrap();
    assert_eq!(failed.data["reason"], "join_failed");
    assert_eq!(failed.data["uuid"], s.as_str());
}

#[tokio::test]
async fn join_errors_follow_the_contract() {
    let t = lab().await;
    let room = t.room(A, "one").await;
    let other = t.room(A, "two").await;
    let s = t.call(A, "1001").await;
    t.joined(A, &room, &s).await;
    let r = t.join(A, &s, &room).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body,
        json!({ "status": "already_joined", "room_id": room })
    );
    let r = t.join(A, &s, &other).await;
    assert_error(&r, StatusCode::CONFLICT);
    assert_eq!(
        r.body["error"],
        "Session is already in a different conference room. Use conference/leave first."
    );
    let s2 = t.call(A, "1002").await;
    assert_error(&t.join(A, &s2, "bad-room").await, StatusCode::BAD_REQUEST);
    assert_error(&t.join(A, &s2, NO_ROOM).await, StatusCode::NOT_FOUND);
    assert_error(&t.join(A, NO_SESSION, &room).await, StatusCode::NOT_FOUND);
    assert_error(
        &t.join(A, "not-a-session", &room).await,
        StatusCode::NOT_FOUND,
    );
    let path = format!("/api/v1/sessions/{s2}/commands/conference/join");
    for bad in [
        json!({}),
        json!({ "room_id": room, "x": 1 }),
        json!({ "room_id": 7 }),
    ] {
        assert_error(&t.post(&path, A, bad).await, StatusCode::BAD_REQUEST);
    }
    assert_error(
        &t.post(&path, A, json!({ "room_id": room, "command_uid": "" }))
            .await,
        StatusCode::BAD_REQUEST,
    );
}

#[tokio::test]
async fn leave_mute_and_unmute_follow_the_contract() {
    let t = lab().await;
    let room = t.room(A, "flow").await;
    let s = t.call(A, "1001").await;
    // Not in a conference: 404 for each.
    for verb in ["conference/leave", "conference/mute", "conference/unmute"] {
        let r = t.command(A, &s, verb).await;
        assert_error(&r, StatusCode::NOT_FOUND);
        assert_eq!(r.body["error"], "Session in a conference not found");
    }
    t.joined(A, &room, &s).await;
    // Members join muted: mute is 409 (no cooldown spent), unmute 202.
    assert_error(
        &t.command(A, &s, "conference/mute").await,
        StatusCode::CONFLICT,
    );
    let r = t.command(A, &s, "conference/unmute").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_eq!(r.body, json!({ "status": "unmuted", "room_id": room }));
    eventually("unmute-member confirms", || async {
        t.members(A, &room).await[0]["muted"] == false
    })
    .await;
    tokio::time::sleep(Duration::from_millis(320)).await;
    assert_error(
        &t.command(A, &s, "conference/unmute").await,
        StatusCode::CONFLICT,
    );
    let r = t.command(A, &s, "conference/mute").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_eq!(r.body["status"], "muted");
    eventually("mute-member confirms", || async {
        t.members(A, &room).await[0]["muted"] == true
    })
    .await;
    let r = t.command(A, &s, "conference/leave").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_eq!(r.body, json!({ "status": "leaving", "room_id": room }));
    eventually("del-member confirms", || async {
        t.members(A, &room).await.is_empty()
    })
    .await;
    let session = t.get(&format!("/api/v1/sessions/{s}"), A).await;
    assert!(session.body["room_id"].is_null());
    assert_eq!(session.body["state"], "parked", "the call lives on");
    assert_eq!(t.count(A, EventKind::MemberLeft).await, 1);
    assert_eq!(t.count(A, EventKind::MemberMuted).await, 1);
    assert_eq!(t.count(A, EventKind::MemberUnmuted).await, 1);
}

/// A command is judged against the last one accepted, not only what FreeSWITCH has confirmed
/// (issue 15, item 2): a mute right after an unmute is a change (429 inside the mute cooldown,
/// 202 after it), and a repeat of a pending command is 409.
#[tokio::test]
async fn mute_right_after_unmute_is_a_change_not_a_no_op() {
    let t = lab().await;
    let room = t.room(A, "flip").await;
    let s = t.call(A, "1001").await;
    t.joined(A, &room, &s).await;
    // FreeSWITCH's confirmations are held back: every command below is still pending.
    t.sim().stall_events(true);
    let r = t.command(A, &s, "conference/unmute").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let r = t.command(A, &s, "conference/mute").await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body["detail"]["group"], "conference_mute", "{r:?}");
    let r = t.patiently(A, &s, "conference/mute").await;
    assert_eq!(
        r.status,
        StatusCode::ACCEPTED,
        "mute after a pending unmute: {r:?}"
    );
    assert_eq!(r.body["status"], "muted");
    // The same again while it is pending: a no-op.
    let r = t.command(A, &s, "conference/mute").await;
    assert_error(&r, StatusCode::CONFLICT);
    assert_eq!(r.body["error"], "Member is already muted", "{r:?}");
    // And the other way round.
    let r = t.patiently(A, &s, "conference/unmute").await;
    assert_eq!(
        r.status,
        StatusCode::ACCEPTED,
        "unmute after a pending mute: {r:?}"
    );
    let r = t.command(A, &s, "conference/unmute").await;
    assert_error(&r, StatusCode::CONFLICT);
    assert_eq!(r.body["error"], "Member is already unmuted", "{r:?}");
    // The node has it all: the caller ends as last asked, unmuted.
    t.sim().stall_events(false);
    eventually("the confirmations arrive", || async {
        t.count(A, EventKind::MemberUnmuted).await == 2
    })
    .await;
    assert_eq!(t.members(A, &room).await[0]["muted"], false);
    let kinds: Vec<EventKind> = t
        .events(A)
        .await
        .iter()
        .map(|e| e.kind)
        .filter(|k| matches!(k, EventKind::MemberMuted | EventKind::MemberUnmuted))
        .collect();
    assert_eq!(
        kinds,
        [
            EventKind::MemberUnmuted,
            EventKind::MemberMuted,
            EventKind::MemberUnmuted
        ]
    );
    // Confirmed now: judged on the node's state again.
    let r = t.patiently(A, &s, "conference/unmute").await;
    assert_error(&r, StatusCode::CONFLICT);
    let r = t.patiently(A, &s, "conference/mute").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
}

#[tokio::test]
async fn session_cooldowns_are_per_group_and_per_session() {
    let t = lab().await;
    let room = t.room(A, "cd").await;
    let (s1, s2) = (t.call(A, "1001").await, t.call(A, "1002").await);
    t.joined(A, &room, &s1).await;
    // join and leave share `conference`.
    let r = t.command(A, &s1, "conference/leave").await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body["detail"]["group"], "conference");
    assert_eq!(r.headers["retry-after"], "1");
    // mute/unmute have their own group, untouched by the join.
    assert_eq!(
        t.command(A, &s1, "conference/unmute").await.status,
        StatusCode::ACCEPTED
    );
    let r = t.command(A, &s1, "conference/mute").await;
    // Unmute not yet confirmed or confirmed: either way the group is held.
    assert!(
        r.status == StatusCode::TOO_MANY_REQUESTS || r.status == StatusCode::CONFLICT,
        "{r:?}"
    );
    eventually("unmuted", || async {
        t.members(A, &room).await[0]["muted"] == false
    })
    .await;
    let r = t.command(A, &s1, "conference/mute").await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body["detail"]["group"], "conference_mute");
    // Another session is not affected.
    assert_eq!(t.join(A, &s2, &room).await.status, StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_millis(320)).await;
    assert_eq!(
        t.command(A, &s1, "conference/mute").await.status,
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn the_contract_window_is_reported_in_retry_after() {
    let mut o = options();
    o.cooldowns = switchyard::rooms::Cooldowns::default();
    let t = TestLab::start(MemoryStore::new(), o).await;
    let room = t.room(A, "real").await;
    let s = t.call(A, "1001").await;
    t.joined(A, &room, &s).await;
    let r = t.command(A, &s, "conference/leave").await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers["retry-after"], "2");
    let ms = r.body["detail"]["retry_after_ms"].as_u64().unwrap();
    assert!(ms > 1000 && ms <= 2000, "{ms}");
}

#[tokio::test]
async fn a_repeated_command_uid_gets_the_first_answer_and_sends_nothing() {
    let t = lab().await;
    let room = t.room(A, "uid").await;
    let s = t.call(A, "1001").await;
    let s2 = t.call(A, "1002").await;
    t.joined(A, &room, &s).await;
    let unmute = format!("/api/v1/sessions/{s}/commands/conference/unmute");
    let first = t.post(&unmute, A, json!({ "command_uid": "u-1" })).await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    eventually("unmuted", || async {
        t.members(A, &room).await[0]["muted"] == false
    })
    .await;
    // The same uid again: not 429, not 409 — the first answer; FreeSWITCH hears nothing.
    assert!(first.headers.get("idempotent-replayed").is_none());
    for _ in 0..3 {
        let again = t.post(&unmute, A, json!({ "command_uid": "u-1" })).await;
        assert_eq!(again.status, first.status);
        assert_eq!(again.body, first.body);
        assert_eq!(again.headers["idempotent-replayed"], "true");
    }
    // The key with another command of the same session is refused, and that command is not
    // sent (nor the first one repeated).
    let mute = format!("/api/v1/sessions/{s}/commands/conference/mute");
    let hangup = format!("/api/v1/sessions/{s}/commands/hangup");
    for other in [&mute, &hangup] {
        let r = t.post(other, A, json!({ "command_uid": "u-1" })).await;
        assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            r.body["error"],
            "command_uid was already used for a different request"
        );
        assert_eq!(r.body["detail"]["used_for"], "conference/unmute");
    }
    assert_eq!(t.count(A, EventKind::MemberUnmuted).await, 1);
    assert_eq!(t.count(A, EventKind::MemberMuted).await, 0);
    let r = t.get(&format!("/api/v1/sessions/{s}"), A).await;
    assert_eq!(r.body["state"], "parked", "the call is still up: {r:?}");
    // The same key on another session is another key.
    let join_s2 = format!("/api/v1/sessions/{s2}/commands/conference/join");
    let r = t
        .post(
            &join_s2,
            A,
            json!({ "room_id": room, "command_uid": "u-1" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    eventually("joined", || async { t.members(A, &room).await.len() == 2 }).await;
    tokio::time::sleep(Duration::from_millis(320)).await; // join and leave share a cooldown
    let r = t
        .post(
            &format!("/api/v1/sessions/{s2}/commands/conference/leave"),
            A,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    eventually("left", || async { t.members(A, &room).await.len() == 1 }).await;
    tokio::time::sleep(Duration::from_millis(320)).await;
    // A join with a uid, repeated after it was confirmed: still 202 joining.
    let join = format!("/api/v1/sessions/{s2}/commands/conference/join");
    let j1 = t
        .post(&join, A, json!({ "room_id": room, "command_uid": "j" }))
        .await;
    assert_eq!(j1.status, StatusCode::ACCEPTED);
    eventually("joined", || async { t.members(A, &room).await.len() == 2 }).await;
    let j2 = t
        .post(&join, A, json!({ "room_id": room, "command_uid": "j" }))
        .await;
    assert_eq!((j2.status, j2.body), (j1.status, j1.body));
    // The same key with other parameters (another room) is refused.
    let other_room = t.room(A, "uid-other").await;
    let r = t
        .post(
            &join,
            A,
            json!({ "room_id": other_room, "command_uid": "j" }),
        )
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["detail"]["used_for"], "conference/join");
    let joined = t.events(A).await;
    let joined = joined
        .iter()
        .rfind(|e| e.kind == EventKind::MemberJoined && e.data["uuid"] == s2.as_str())
        .unwrap();
    assert_eq!(joined.data["command_uid"], "j");
    // A refused command is not remembered: its key is free again, even for another command.
    let r = t.post(&unmute, A, json!({ "command_uid": "u-2" })).await;
    assert_error(&r, StatusCode::CONFLICT);
    let r = t.post(&mute, A, json!({ "command_uid": "u-2" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let r = t.post(&mute, A, json!({ "command_uid": "u-2" })).await;
    assert_eq!(r.headers["idempotent-replayed"], "true", "{r:?}");
}

#[tokio::test]
async fn sessions_list_pages_and_hangup_ends_a_call() {
    let t = lab().await;
    let mut calls = Vec::new();
    for i in 0..5 {
        calls.push(t.call(A, &format!("10{i}")).await);
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let r = t
            .get(&format!("/api/v1/sessions?limit=2&cursor={cursor}"), A)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        for s in r.body["sessions"].as_array().unwrap() {
            assert_eq!(s["did"], "15551230000");
            assert_eq!(s["state"], "parked");
            seen.push(s["uuid"].as_str().unwrap().to_owned());
        }
        cursor = r.body["cursor"].as_str().unwrap().to_owned();
        if cursor.is_empty() {
            break;
        }
    }
    let mut sorted = calls.clone();
    sorted.sort();
    seen.sort();
    assert_eq!(seen, sorted);
    for bad in ["limit=0", "limit=x", "cursor=abc.def"] {
        assert_error(
            &t.get(&format!("/api/v1/sessions?{bad}"), A).await,
            StatusCode::BAD_REQUEST,
        );
    }
    let one = t.get(&format!("/api/v1/sessions/{}", calls[0]), A).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.body["caller_id"], "100");
    assert_error(
        &t.get(&format!("/api/v1/sessions/{NO_SESSION}"), A).await,
        StatusCode::NOT_FOUND,
    );
    let r = t.command(A, &calls[0], "hangup").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    eventually("the call ended", || async {
        t.get(&format!("/api/v1/sessions/{}", calls[0]), A)
            .await
            .body["state"]
            == "ended"
    })
    .await;
    assert_error(
        &t.command(A, &calls[0], "hangup").await,
        StatusCode::NOT_FOUND,
    );
    let list = t.get("/api/v1/sessions", A).await;
    assert_eq!(list.body["sessions"].as_array().unwrap().len(), 4);
    // The lab's own hangup: the caller hangs up.
    let r = t.delete(&format!("/lab/v1/calls/{}", calls[1]), A).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    eventually("the caller hung up", || async {
        t.get(&format!("/api/v1/sessions/{}", calls[1]), A)
            .await
            .body["state"]
            == "ended"
    })
    .await;
}

#[tokio::test]
async fn node_failures_are_clear_5xx_answers() {
    let t = lab().await;
    let room = t.room(A, "fail").await;
    let s = t.call(A, "1001").await;
    t.joined(A, &room, &s).await;
    // The call vanishes on the node while we do not hear it: the node refuses the mute (-ERR).
    t.sim().stall_events(true);
    t.sim().api(&format!("uuid_kill {}", s.split_at(6).1));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = t.command(A, &s, "conference/unmute").await;
    assert_error(&r, StatusCode::BAD_GATEWAY);
    assert_eq!(r.body["error"], "Media node rejected the command");
    // A stable code; the node's own answer (what it found, where) is not the app's.
    assert_eq!(
        r.body["detail"],
        json!({ "code": "node_rejected" }),
        "{r:?}"
    );
    t.sim().stall_events(false);
    // The node goes away: 503, at once.
    let s2 = t.call(A, "1002").await;
    t.sim().set_heartbeats(false);
    t.sim().drop_connections();
    eventually("the node is down", || async {
        !t.lab.state.rooms().pool().nodes()[0].is_up()
    })
    .await;
    let started = std::time::Instant::now();
    let r = t.join(A, &s2, &room).await;
    assert_error(&r, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["error"], "Media node unavailable");
    assert!(started.elapsed() < Duration::from_secs(1));
    let r = t.req("GET", "/readyz", None, None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[test]
fn node_errors_map_to_their_status_codes() {
    use switchyard::api::ApiError;
    use switchyard::node::NodeError;
    for (e, code) in [
        (NodeError::Rejected("-ERR x".into()), 502),
        (NodeError::Unavailable("lab01".into()), 503),
        (NodeError::Timeout, 504),
    ] {
        assert_eq!(ApiError::from(e).status().as_u16(), code);
    }
}

/// `lab --nodes 2`: the simulated nodes are linked by their `nodes` profiles, so a call on one
/// joins a room on the other through the same API as a local join (listed once, with its did
/// and caller id), and a leave parks it again on its own node, ready to join again.
#[tokio::test]
async fn a_call_on_one_lab_node_joins_a_room_on_the_other_and_leaves_parked() {
    let mut opts = options();
    opts.nodes = 2;
    let t = TestLab::start(MemoryStore::new(), opts).await;
    let room = t.room(A, "lab01-room").await;
    let node = if room.starts_with("lab01") {
        "lab02"
    } else {
        "lab01"
    };
    let r = t
        .post(
            "/lab/v1/calls",
            A,
            json!({ "did": "15551230000", "caller_id": "1001", "node": node }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let s = r.body["uuid"].as_str().unwrap().to_owned();
    assert!(s.starts_with(node), "{s}");
    t.joined(A, &room, &s).await;
    let members = t.members(A, &room).await;
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(members[0]["uuid"], s.as_str(), "{members:?}");
    assert_eq!(members[0]["caller_id"], "1001", "{members:?}");
    assert_eq!(members[0]["did"], "15551230000", "{members:?}");
    let again = t.join(A, &s, &room).await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    assert_eq!(again.body["status"], "already_joined", "{again:?}");

    let left = t.patiently(A, &s, "conference/leave").await;
    assert_eq!(left.status, StatusCode::ACCEPTED, "{left:?}");
    eventually("the member left and the call is parked again", || async {
        t.members(A, &room).await.is_empty()
            && t.get(&format!("/api/v1/sessions/{s}"), A).await.body["state"] == "parked"
    })
    .await;
    // Joined again once the join's cooldown allows.
    let mut rejoin = t.join(A, &s, &room).await;
    while rejoin.status == StatusCode::TOO_MANY_REQUESTS {
        let wait = rejoin.body["detail"]["retry_after_ms"].as_u64().unwrap();
        tokio::time::sleep(Duration::from_millis(wait + 5)).await;
        rejoin = t.join(A, &s, &room).await;
    }
    assert_eq!(rejoin.status, StatusCode::ACCEPTED, "{rejoin:?}");
    eventually("joined again", || async {
        t.members(A, &room)
            .await
            .iter()
            .any(|m| m["uuid"] == s.as_str())
    })
    .await;
}
