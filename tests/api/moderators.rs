//! Moderators, end-on-exit and beeps over the lab: a room created to wait for a moderator says
//! so until one joins; a member joined with `end_on_exit` ends the room when it leaves, and the
//! others are moved out with their calls alive (not hung up, as FreeSWITCH's own `endconf`
//! would); a room with beeps gives the node its enter and exit tones, which do not disturb
//! the room's own playback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use axum::http::StatusCode;
use serde_json::{Value, json};
use switchyard::conference::EventKind;
use switchyard::store::memory::MemoryStore;

use common::api::{A, TestLab, assert_error, eventually, options};

async fn lab() -> TestLab<MemoryStore> {
    TestLab::start(MemoryStore::new(), options()).await
}

async fn resource(t: &TestLab<MemoryStore>, room: &str) -> Value {
    t.get(&format!("/api/v1/conferences/{room}"), A).await.body
}

#[tokio::test]
async fn a_room_waits_for_its_moderator() {
    let t = lab().await;
    let room = t
        .room_with(
            A,
            json!({ "name": "town-hall", "wait_for_moderator": true }),
        )
        .await;
    let r = resource(&t, &room).await;
    assert_eq!(r["wait_for_moderator"], true);
    assert_eq!(r["waiting_for_moderator"], true);
    let (guest, host) = (t.call(A, "1001").await, t.call(A, "1002").await);
    t.joined(A, &room, &guest).await;
    assert_eq!(resource(&t, &room).await["waiting_for_moderator"], true);
    t.joined_with(A, &room, &host, json!({ "moderator": true }))
        .await;
    assert_eq!(resource(&t, &room).await["waiting_for_moderator"], false);
    let members = t.members(A, &room).await;
    let role = |s: &str| members.iter().find(|m| m["uuid"] == s).unwrap()["moderator"].clone();
    assert_eq!((role(&guest), role(&host)), (json!(false), json!(true)));
    let joined: Vec<(Value, Value)> = t
        .events(A)
        .await
        .iter()
        .filter(|e| e.kind == EventKind::MemberJoined)
        .map(|e| (e.data["uuid"].clone(), e.data["moderator"].clone()))
        .collect();
    assert_eq!(
        joined,
        [(json!(guest), json!(false)), (json!(host), json!(true))]
    );
    // An ordinary room does not wait.
    let plain = t.room(A, "plain").await;
    assert_eq!(resource(&t, &plain).await["waiting_for_moderator"], false);
}

#[tokio::test]
async fn a_member_that_ends_the_room_on_exit_moves_the_others_out_alive() {
    let t = lab().await;
    let room = t.room(A, "briefing").await;
    let (host, a, b) = (
        t.call(A, "1001").await,
        t.call(A, "1002").await,
        t.call(A, "1003").await,
    );
    t.joined_with(
        A,
        &room,
        &host,
        json!({ "moderator": true, "end_on_exit": true }),
    )
    .await;
    t.joined(A, &room, &a).await;
    t.joined(A, &room, &b).await;
    let r = t.patiently(A, &host, "conference/leave").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    eventually("the room ends", || async {
        t.count(A, EventKind::Terminated).await == 1
    })
    .await;
    let events = t.events(A).await;
    let destroyed = events
        .iter()
        .find(|e| e.kind == EventKind::Destroyed)
        .unwrap();
    assert_eq!(destroyed.data["reason"], "end_on_exit");
    let left: Vec<(Value, Value)> = events
        .iter()
        .filter(|e| e.kind == EventKind::MemberLeft)
        .map(|e| (e.data["uuid"].clone(), e.data["reason"].clone()))
        .collect();
    assert_eq!(left.len(), 3, "{left:?}");
    assert_eq!(left[0], (json!(host), json!("left")));
    for s in [&a, &b] {
        assert!(left.contains(&(json!(s), json!("kicked"))), "{left:?}");
        // Their calls live on, parked.
        let session = t.get(&format!("/api/v1/sessions/{s}"), A).await;
        assert_eq!(session.body["state"], "parked", "{session:?}");
    }
}

#[tokio::test]
async fn a_beeping_room_gives_the_node_its_tones_and_still_plays_its_files() {
    let t = lab().await;
    let bad = t
        .post(
            "/api/v1/conferences",
            A,
            json!({ "name": "x", "beep": "loud" }),
        )
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST);
    let room = t
        .room_with(A, json!({ "name": "beeps", "beep": "both" }))
        .await;
    assert_eq!(resource(&t, &room).await["beep"], "both");
    // The node was given both tones once the conference was up.
    eventually("the tones are set on the node", || async {
        let on = t.sim().api(&format!("conference {room} enter_sound on"));
        let off = t.sim().api(&format!("conference {room} exit_sound on"));
        on.contains("switchyard_beep=enter") && off.contains("switchyard_beep=exit")
    })
    .await;
    // A join's beep shares the room's play queue; the room's own play still finishes once.
    let (s, other) = (t.call(A, "1001").await, t.call(A, "1002").await);
    t.joined(A, &room, &s).await;
    let path = format!("/api/v1/conferences/{room}/play");
    let r = t
        .post(
            &path,
            A,
            json!({ "urls": ["https://cdn.example.com/a.wav"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    t.joined(A, &room, &other).await;
    eventually("the play finished", || async {
        t.count(A, EventKind::PlayFinished).await == 1
    })
    .await;
    let done = t
        .events(A)
        .await
        .into_iter()
        .find(|e| e.kind == EventKind::PlayFinished)
        .unwrap();
    assert_eq!(done.data["operation_id"], r.body["operation_id"]);
}
