//! Per-app quotas on what the shared nodes hold (issue 56): past its quota an app is answered
//! 429 naming the quota, nothing reaches the node, and another app is served as before; the
//! last share of a node's sessions is kept from new rooms and dial-outs.

use std::collections::HashMap;

use axum::http::StatusCode;
use serde_json::json;

use crate::common::api::{A, B, TestLab, options};
use switchyard::conference::AppId;
use switchyard::rooms::quotas::{Quota, Quotas};
use switchyard::store::memory::MemoryStore;

/// A's quota `a`; every other app none.
fn only_a(a: Quota) -> Quotas {
    let mut quotas = Quotas::none();
    quotas.apps = HashMap::from([(AppId::parse(A.0).unwrap(), a)]);
    quotas
}

fn quota() -> Quota {
    Quotas::none().default
}

fn assert_quota(r: &crate::common::api::Reply, name: &str, most: u64) {
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{r:?}");
    assert_eq!(r.body["detail"]["quota"], name, "{r:?}");
    assert_eq!(r.body["detail"]["most"], most, "{r:?}");
    assert!(
        r.body["error"]
            .as_str()
            .unwrap()
            .starts_with("Quota reached"),
        "{r:?}"
    );
}

#[tokio::test]
async fn live_rooms_past_the_quota_are_refused_and_another_app_is_not() {
    let t = TestLab::start(MemoryStore::new(), options()).await;
    t.lab.state.rooms().set_quotas(only_a(Quota {
        live_rooms: 2,
        ..quota()
    }));
    let first = t.room(A, "one").await;
    t.room(A, "two").await;
    let third = t
        .post("/api/v1/conferences", A, json!({ "name": "three" }))
        .await;
    assert_quota(&third, "live_rooms", 2);
    t.room(B, "b-one").await;
    t.room(B, "b-two").await;
    t.room(B, "b-three").await;
    // An ended room frees its place.
    let deleted = t.delete(&format!("/api/v1/conferences/{first}"), A).await;
    assert!(deleted.status.is_success(), "{deleted:?}");
    crate::common::api::eventually("a place is free once the room has ended", || async {
        let r = t
            .post("/api/v1/conferences", A, json!({ "name": "three" }))
            .await;
        r.status == StatusCode::CREATED
    })
    .await;
}

#[tokio::test]
async fn a_room_takes_at_most_the_members_quota() {
    let t = TestLab::start(MemoryStore::new(), options()).await;
    t.lab.state.rooms().set_quotas(only_a(Quota {
        members_per_room: 1,
        ..quota()
    }));
    let big = t
        .post(
            "/api/v1/conferences",
            A,
            json!({ "name": "big", "max_participants": 5 }),
        )
        .await;
    assert_quota(&big, "members_per_room", 1);
    let room = t.room(A, "small").await;
    let shown = t.get(&format!("/api/v1/conferences/{room}"), A).await;
    assert_eq!(shown.body["max_participants"], 1, "{shown:?}");
    let first = t.call(A, "1001").await;
    t.joined(A, &room, &first).await;
    let second = t.call(A, "1002").await;
    let refused = t.join(A, &second, &room).await;
    assert!(refused.status.is_client_error(), "{refused:?}");
    assert!(
        refused.body["error"].as_str().unwrap().contains("full"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn recordings_past_the_quota_are_refused() {
    let t = TestLab::start(MemoryStore::new(), options()).await;
    t.lab.state.rooms().set_quotas(only_a(Quota {
        recordings: 1,
        ..quota()
    }));
    let one = t.room(A, "rec-one").await;
    let two = t.room(A, "rec-two").await;
    let start = |room: &str| format!("/api/v1/conferences/{room}/recording/start");
    let r = t.post(&start(&one), A, json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let r = t.post(&start(&two), A, json!({})).await;
    assert_quota(&r, "recordings", 1);
}

#[tokio::test]
async fn dial_outs_under_way_past_the_quota_are_refused() {
    let t = TestLab::start(MemoryStore::new(), options()).await;
    t.lab.state.rooms().set_quotas(only_a(Quota {
        dialouts_in_flight: 1,
        ..quota()
    }));
    let room = t.room(A, "ringing").await;
    let path = format!("/api/v1/conferences/{room}/participants");
    let ringing = t
        .post(
            &path,
            A,
            json!({ "to": "sip:noanswer@one.example.com", "timeout": 30 }),
        )
        .await;
    assert_eq!(ringing.status, StatusCode::ACCEPTED, "{ringing:?}");
    let second = t
        .post(
            &path,
            A,
            json!({ "to": "sip:noanswer@two.example.com", "timeout": 30 }),
        )
        .await;
    assert_quota(&second, "dialouts_in_flight", 1);
}

/// One app creating rooms on a shared node stops short of its last sessions: the share kept
/// spare stays for calls into rooms already made.
#[tokio::test]
async fn new_rooms_leave_the_nodes_reserved_sessions_alone() {
    let t = TestLab::start(
        MemoryStore::new(),
        switchyard::server::lab::LabOptions {
            max_sessions: 4,
            ..options()
        },
    )
    .await;
    let mut quotas = Quotas::none();
    quotas.node_reserved_pct = 50;
    t.lab.state.rooms().set_quotas(quotas);
    // Each room holds a control leg: a session of the node's.
    t.room(A, "first").await;
    t.room(A, "second").await;
    let third = t
        .post("/api/v1/conferences", A, json!({ "name": "third" }))
        .await;
    assert_eq!(third.status, StatusCode::SERVICE_UNAVAILABLE, "{third:?}");
    assert_eq!(
        third.body["error"],
        "Media node has no sessions to spare for a new room or dial-out"
    );
    let status = t.sim().api("status");
    assert!(status.contains("2 session(s) - peak"), "{status}");
}
