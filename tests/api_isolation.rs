//! One application can never list, read or change another's rooms or sessions: one check per
//! endpoint. Another app's room or session is 403 (404 on the members list, as seed 004 says).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use serde_json::json;
use switchyard::conference::EventKind;
use switchyard::store::memory::MemoryStore;

use common::api::{A, B, TestLab, assert_error, options};

async fn setup() -> (TestLab<MemoryStore>, String, String) {
    let t = TestLab::start(MemoryStore::new(), options()).await;
    let room = t.room(A, "private").await;
    let s = t.call(A, "1001").await;
    t.joined(A, &room, &s).await;
    (t, room, s)
}

#[tokio::test]
async fn room_endpoints_refuse_another_app() {
    let (t, room, _) = setup().await;
    let before = t.events(A).await.len();
    let r = t.get(&format!("/api/v1/conferences/{room}"), B).await;
    assert_error(&r, StatusCode::FORBIDDEN);
    assert_eq!(r.body["error"], "Room belongs to a different application");
    let r = t
        .get(&format!("/api/v1/conferences/{room}/members"), B)
        .await;
    assert_error(&r, StatusCode::NOT_FOUND);
    let r = t.delete(&format!("/api/v1/conferences/{room}"), B).await;
    assert_error(&r, StatusCode::FORBIDDEN);
    let r = t
        .post(
            &format!("/api/v1/conferences/{room}/play"),
            B,
            json!({ "urls": ["https://x.example/a.wav"] }),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN);
    for verb in ["pause", "stop"] {
        let r = t
            .post(&format!("/api/v1/conferences/{room}/{verb}"), B, json!({}))
            .await;
        assert_error(&r, StatusCode::FORBIDDEN);
    }
    let r = t
        .post(
            &format!("/api/v1/conferences/{room}/volume"),
            B,
            json!({ "volume": 1 }),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN);
    let list = t.get("/api/v1/conferences", B).await;
    assert_eq!(list.body["conferences"], json!([]));
    // Nothing happened to A's room.
    assert_eq!(t.events(A).await.len(), before);
    assert!(t.events(B).await.is_empty());
    assert_eq!(t.members(A, &room).await.len(), 1);
}

#[tokio::test]
async fn session_endpoints_refuse_another_app() {
    let (t, room, s) = setup().await;
    let b_room = t.room(B, "theirs").await;
    let before = t.events(A).await.len();
    let r = t.get(&format!("/api/v1/sessions/{s}"), B).await;
    assert_error(&r, StatusCode::FORBIDDEN);
    assert_eq!(
        r.body["error"],
        "Session belongs to a different application"
    );
    for verb in [
        "conference/leave",
        "conference/mute",
        "conference/unmute",
        "hangup",
    ] {
        assert_error(&t.command(B, &s, verb).await, StatusCode::FORBIDDEN);
    }
    assert_error(&t.join(B, &s, &b_room).await, StatusCode::FORBIDDEN);
    // A's own session into B's room: the room is not A's.
    let s2 = t.call(A, "1002").await;
    assert_error(&t.join(A, &s2, &b_room).await, StatusCode::FORBIDDEN);
    let r = t
        .req("DELETE", &format!("/lab/v1/calls/{s}"), Some(B), None)
        .await;
    assert_error(&r, StatusCode::FORBIDDEN);
    let list = t.get("/api/v1/sessions", B).await;
    assert_eq!(list.body["sessions"], json!([]));
    // A lab call made by B is B's.
    let sb = t.call(B, "2001").await;
    assert_error(
        &t.get(&format!("/api/v1/sessions/{sb}"), A).await,
        StatusCode::FORBIDDEN,
    );
    assert_eq!(
        t.get(&format!("/api/v1/sessions/{sb}"), B).await.status,
        StatusCode::OK
    );
    assert_eq!(t.events(A).await.len(), before);
    assert_eq!(t.count(B, EventKind::MemberJoining).await, 0);
    assert_eq!(t.members(A, &room).await.len(), 1);
}
