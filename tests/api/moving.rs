//! Moving a member to another room in one step (issue 39, `conference/move`), over the lab: one
//! `conference.member.moved`, no leave or join told, the member's state carried to the node of
//! its new room, and the refusals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use axum::http::StatusCode;
use serde_json::{Value, json};
use switchyard::conference::EventKind;
use switchyard::store::memory::MemoryStore;

use common::api::{A, B, TestLab, assert_error, eventually, options};

async fn lab() -> TestLab<MemoryStore> {
    TestLab::start(MemoryStore::new(), options()).await
}

async fn member_of(t: &TestLab<MemoryStore>, room: &str, session: &str) -> Option<Value> {
    t.members(A, room)
        .await
        .into_iter()
        .find(|m| m["uuid"] == session)
}

/// A session command, sent again after the cooldown its 429 names.
async fn send(t: &TestLab<MemoryStore>, path: &str, body: Value) -> common::api::Reply {
    t.patiently_post(A, path, body).await
}

#[tokio::test]
async fn a_member_moves_to_another_room_told_once_with_its_state() {
    let t = lab().await;
    let (main, breakout) = (t.room(A, "main").await, t.room(A, "breakout").await);
    let (a, b) = (t.call(A, "1001").await, t.call(A, "1002").await);
    t.joined(A, &main, &a).await;
    t.joined(A, &main, &b).await;
    let cmd = |verb: &str| format!("/api/v1/sessions/{a}/commands/conference/{verb}");
    assert_eq!(
        send(&t, &cmd("unmute"), json!({})).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        send(&t, &cmd("deaf"), json!({})).await.status,
        StatusCode::ACCEPTED
    );
    let r = send(&t, &cmd("audio"), json!({ "volume_in": 2 })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    eventually("unmuted, deaf, louder", || async {
        member_of(&t, &main, &a)
            .await
            .is_some_and(|m| m["muted"] == false && m["deaf"] == true && m["volume_in"] == 2)
    })
    .await;
    let before = t.events(A).await.len();

    let r = send(
        &t,
        &cmd("move"),
        json!({ "room_id": breakout, "command_uid": "m1" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_eq!(
        (&r.body["status"], &r.body["room_id"], &r.body["from_room"]),
        (&json!("moving"), &json!(breakout), &json!(main))
    );
    eventually("in the breakout room", || async {
        member_of(&t, &breakout, &a).await.is_some()
    })
    .await;
    assert!(member_of(&t, &main, &a).await.is_none());
    assert!(member_of(&t, &main, &b).await.is_some(), "b stays");
    // Its state comes with it, on the node too.
    eventually("set again on the node", || async {
        let node = t.node_member(&breakout, &a);
        node["volume_in"] == 2
            && node["flags"]["can_hear"] == false
            && node["flags"]["can_speak"] == true
    })
    .await;
    let m = member_of(&t, &breakout, &a).await.unwrap();
    assert_eq!(
        (&m["muted"], &m["deaf"], &m["volume_in"]),
        (&json!(false), &json!(true), &json!(2))
    );
    let session = t.get(&format!("/api/v1/sessions/{a}"), A).await;
    assert_eq!(session.body["room_id"], breakout.as_str());
    // Told once: moved, by the room it went to; no leave, no join; the restated switches and
    // level tell nothing either.
    let told: Vec<_> = t.events(A).await.into_iter().skip(before).collect();
    let kinds: Vec<EventKind> = told.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::MemberMoved], "{kinds:?}");
    let moved = &told[0];
    assert_eq!(moved.room.as_str(), breakout);
    assert_eq!(
        (
            &moved.data["uuid"],
            &moved.data["from_room"],
            &moved.data["to_room"],
            &moved.data["command_uid"]
        ),
        (&json!(a), &json!(main), &json!(breakout), &json!("m1"))
    );
    // Back, muted as asked.
    let back = send(&t, &cmd("move"), json!({ "room_id": main, "muted": true })).await;
    assert_eq!(back.status, StatusCode::ACCEPTED, "{back:?}");
    eventually("back in the main room, muted", || async {
        member_of(&t, &main, &a)
            .await
            .is_some_and(|m| m["muted"] == true)
    })
    .await;
    assert_eq!(t.count(A, EventKind::MemberMoved).await, 2);
    assert_eq!(t.count(A, EventKind::MemberLeft).await, 0);
}

#[tokio::test]
async fn a_move_is_refused_where_it_cannot_be_made() {
    let t = lab().await;
    let (main, other) = (t.room(A, "main").await, t.room(A, "other").await);
    let theirs = t.room(B, "theirs").await;
    let (a, idle) = (t.call(A, "1001").await, t.call(A, "1002").await);
    t.joined(A, &main, &a).await;
    let path = format!("/api/v1/sessions/{a}/commands/conference/move");
    let refused = [
        (json!({ "room_id": main }), StatusCode::CONFLICT),
        (json!({ "room_id": theirs }), StatusCode::FORBIDDEN),
        (
            json!({ "room_id": "lab01-room-00000000-0000-4000-8000-000000000000" }),
            StatusCode::NOT_FOUND,
        ),
        (json!({ "room_id": "nope" }), StatusCode::BAD_REQUEST),
        (
            json!({ "room_id": other, "muted": "yes" }),
            StatusCode::BAD_REQUEST,
        ),
        (json!({}), StatusCode::BAD_REQUEST),
    ];
    for (body, status) in refused {
        assert_error(&t.post(&path, A, body.clone()).await, status);
    }
    // Not in a room.
    let idle_path = format!("/api/v1/sessions/{idle}/commands/conference/move");
    assert_error(
        &t.post(&idle_path, A, json!({ "room_id": other })).await,
        StatusCode::NOT_FOUND,
    );
    // A locked room takes nobody.
    let lock = t
        .post(&format!("/api/v1/conferences/{other}/lock"), A, json!({}))
        .await;
    assert_eq!(lock.status, StatusCode::OK);
    let r = t.post(&path, A, json!({ "room_id": other })).await;
    assert_error(&r, StatusCode::CONFLICT);
    assert_eq!(r.body["error"], "Room is locked");
    // Nothing moved, nothing told.
    assert!(member_of(&t, &main, &a).await.is_some());
    assert_eq!(t.count(A, EventKind::MemberMoved).await, 0);
}
