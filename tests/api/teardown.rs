//! Rooms ending with members in them, over the lab (issue 15, item 1): deleted, timed out, and a
//! `connect` room whose partner hung up. The simulator reports the control leg's del-member
//! before the members' when a room is torn down (members moved out, the control leg killed right
//! after), as a real node often does. Whatever the order, every member leaves once, its session
//! is free for another room as soon as the room is over (its call lives on, parked), and
//! `conference.terminated` is the last event of the room.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use axum::http::StatusCode;
use serde_json::{Value, json};
use switchyard::conference::{DomainEvent, EventKind};
use switchyard::store::memory::MemoryStore;

use common::api::{A, TestLab, eventually, options};

async fn lab() -> TestLab<MemoryStore> {
    TestLab::start(MemoryStore::new(), options()).await
}

/// The room's events, in order.
async fn story(t: &TestLab<MemoryStore>, room: &str) -> Vec<DomainEvent> {
    t.events(A)
        .await
        .into_iter()
        .filter(|e| e.room.as_str() == room)
        .collect()
}

async fn terminated(t: &TestLab<MemoryStore>, room: &str) {
    eventually("conference.terminated", || async {
        story(t, room)
            .await
            .iter()
            .any(|e| e.kind == EventKind::Terminated)
    })
    .await;
}

/// `conference.destroyed` once with `reason`; each of `out` left exactly once with its reason;
/// `conference.terminated` once, and last.
fn assert_story(room: &str, events: &[DomainEvent], reason: &str, out: &[(&str, &str)]) {
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    let destroyed: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::Destroyed)
        .collect();
    assert_eq!(destroyed.len(), 1, "{room}: {kinds:?}");
    assert_eq!(destroyed[0].data["reason"], reason);
    let ends = kinds
        .iter()
        .filter(|k| **k == EventKind::Terminated)
        .count();
    assert_eq!(ends, 1, "{room}: {kinds:?}");
    assert_eq!(
        kinds.last(),
        Some(&EventKind::Terminated),
        "{room}: conference.terminated is not the last event: {kinds:?}"
    );
    for (session, why) in out {
        let left: Vec<_> = events
            .iter()
            .filter(|e| e.kind == EventKind::MemberLeft && e.data["uuid"] == *session)
            .collect();
        assert_eq!(
            left.len(),
            1,
            "{session} left {} times: {kinds:?}",
            left.len()
        );
        assert_eq!(left[0].data["reason"], *why, "{session}");
    }
}

/// Once the room is over, each session is in no room, its call parked.
async fn assert_free(t: &TestLab<MemoryStore>, sessions: &[&str]) {
    for s in sessions {
        let r = t.get(&format!("/api/v1/sessions/{s}"), A).await;
        assert!(
            r.body["room_id"].is_null(),
            "{s} is still in a room that is over: {r:?}"
        );
        assert_eq!(r.body["state"], "parked", "{s}: the call lives on: {r:?}");
    }
}

/// Joins `session` into `room` as soon as its join cooldown allows; never 409 ("already in a
/// different conference room").
async fn join_again(t: &TestLab<MemoryStore>, session: &str, room: &str) {
    eventually("the join is taken", || async {
        let r = t.join(A, session, room).await;
        assert_ne!(r.status, StatusCode::CONFLICT, "{session}: {r:?}");
        r.status == StatusCode::ACCEPTED
    })
    .await;
    eventually("add-member confirms the join", || async {
        t.members(A, room)
            .await
            .iter()
            .any(|m| m["uuid"] == session)
    })
    .await;
}

#[tokio::test]
async fn deleting_a_room_of_four_frees_every_member_once() {
    let t = lab().await;
    let mut sessions = Vec::new();
    for n in 1..=4 {
        sessions.push(t.call(A, &format!("100{n}")).await);
    }
    let sessions: Vec<&str> = sessions.iter().map(String::as_str).collect();
    // Each round joins the members freed by the round before.
    for round in 0..3 {
        let room = t.room(A, &format!("doomed-{round}")).await;
        for s in &sessions {
            join_again(&t, s, &room).await;
        }
        let r = t.delete(&format!("/api/v1/conferences/{room}"), A).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        terminated(&t, &room).await;
        assert_free(&t, &sessions).await;
        let out: Vec<(&str, &str)> = sessions.iter().map(|s| (*s, "kicked")).collect();
        assert_story(&room, &story(&t, &room).await, "deleted", &out);
    }
}

/// A `/v1.0` conference (the resource with a timeout), once it is `progressing`.
async fn conference(t: &TestLab<MemoryStore>, body: Value) -> String {
    let r = t.post("/v1.0/conferences", A, body).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_owned();
    eventually("the conference is progressing", || async {
        t.get(&format!("/v1.0/conferences/{id}"), A).await.body["status"] == "progressing"
    })
    .await;
    id
}

#[tokio::test]
async fn a_room_that_times_out_frees_its_members() {
    let t = lab().await;
    let (a, b, c) = (
        t.call(A, "2001").await,
        t.call(A, "2002").await,
        t.call(A, "2003").await,
    );
    let room = conference(&t, json!({ "name": "brief", "timeout": 2 })).await;
    for s in [&a, &b, &c] {
        t.joined(A, &room, s).await;
    }
    terminated(&t, &room).await;
    assert_free(&t, &[&a, &b, &c]).await;
    let out = [
        (a.as_str(), "kicked"),
        (b.as_str(), "kicked"),
        (c.as_str(), "kicked"),
    ];
    assert_story(&room, &story(&t, &room).await, "timeout", &out);
    let resource = t.get(&format!("/v1.0/conferences/{room}"), A).await;
    assert_eq!(resource.body["status"], "terminated");
    assert_eq!(resource.body["conferencecall_ids"], json!([]));
    let next = t.room(A, "after-timeout").await;
    join_again(&t, &a, &next).await;
}

#[tokio::test]
async fn a_connect_room_whose_partner_hangs_up_frees_the_other() {
    let t = lab().await;
    let next = t.room(A, "after-connect").await;
    for round in 0..3 {
        let room = conference(
            &t,
            json!({ "type": "connect", "name": format!("pair-{round}") }),
        )
        .await;
        let (alice, bob) = (
            t.call(A, &format!("30{round}1")).await,
            t.call(A, &format!("30{round}2")).await,
        );
        t.joined(A, &room, &alice).await;
        t.joined(A, &room, &bob).await;
        let hang = t
            .req("DELETE", &format!("/lab/v1/calls/{alice}"), Some(A), None)
            .await;
        assert!(hang.status.is_success(), "{hang:?}");
        terminated(&t, &room).await;
        assert_free(&t, &[&bob]).await;
        let out = [(alice.as_str(), "hangup"), (bob.as_str(), "kicked")];
        assert_story(&room, &story(&t, &room).await, "partner_left", &out);
        join_again(&t, &bob, &next).await;
    }
}
