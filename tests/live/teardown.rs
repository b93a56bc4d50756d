//! Rooms ending with members in them, and mute/unmute judged on what was asked, on a real
//! FreeSWITCH with SIP callers (issue 15, items 1 and 2). FreeSWITCH reports the control leg's
//! del-member before some members' when a room is torn down (members moved out and the control
//! leg killed back to back): whatever the order, every member must leave once, its session must be
//! free for the next room, and the room's end must come last in its story.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::live;

use axum::http::StatusCode;
use serde_json::json;
use switchyard::conference::{DomainEvent, EventKind};

use live::{Live, channel_of};

/// Holds the room's story to: one `conference.destroyed` (seed 004: immediate on DELETE, so it
/// may come before the members leave), one `member.left` for each of `sessions`, and
/// `conference.terminated` last: no member event after it.
fn assert_story(room: &str, events: &[DomainEvent], sessions: &[String]) {
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    let count = |kind| kinds.iter().filter(|k| **k == kind).count();
    assert_eq!(count(EventKind::Destroyed), 1, "{room}: {kinds:?}");
    assert_eq!(count(EventKind::Terminated), 1, "{room}: {kinds:?}");
    let end = kinds
        .iter()
        .position(|k| *k == EventKind::Terminated)
        .unwrap_or_else(|| panic!("{room}: the room never ended: {kinds:?}"));
    assert!(
        !kinds[end..].iter().any(|k| matches!(
            k,
            EventKind::MemberLeft | EventKind::MemberJoined | EventKind::MemberLeaving
        )),
        "{room}: member events after conference.terminated: {kinds:?}"
    );
    for s in sessions {
        let left = events
            .iter()
            .filter(|e| e.kind == EventKind::MemberLeft && e.data["uuid"] == s.as_str())
            .count();
        assert_eq!(left, 1, "{room}: {s} left {left} times: {kinds:?}");
    }
}

/// Waits until every session is out of any room (its call alive, parked).
async fn all_free(t: &Live, sessions: &[String]) {
    for s in sessions {
        t.eventually("the session is free of the ended room", || async {
            t.session(s).await["room_id"].is_null()
        })
        .await;
        assert!(t.channel_exists(channel_of(s)).await, "{s}'s call lives on");
    }
}

#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh"
)]
async fn live_deleting_a_room_of_four_frees_every_member_twenty_times_in_a_row() {
    let t = Live::start().await;
    let mut sessions = Vec::new();
    for n in 0..4 {
        sessions.push(t.call(&format!("100{n}")).await);
    }
    for round in 0..20 {
        let room = t.room(&format!("delete-{round}")).await;
        for s in &sessions {
            t.joined(&room, s).await;
        }
        let r = t.delete(&format!("/api/v1/conferences/{room}")).await;
        assert_eq!(r.status, StatusCode::OK, "round {round}: {r:?}");
        all_free(&t, &sessions).await;
        t.eventually("the node lets the conference go", || async {
            !t.conference_on_node(&room).await
        })
        .await;
        t.eventually("the room's story is complete", || async {
            let events = t.events(&room).await;
            events.iter().any(|e| e.kind == EventKind::Terminated)
                && events
                    .iter()
                    .filter(|e| e.kind == EventKind::MemberLeft)
                    .count()
                    >= 4
        })
        .await;
        assert_story(&room, &t.events(&room).await, &sessions);
    }
    t.finish().await;
}

/// A room nobody joins ends by its empty timeout, and one whose callers all left by its
/// departure timeout, the caller's hangup counting as a departure: each with its reason, and
/// the node lets the conference go.
#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh"
)]
async fn live_rooms_end_by_their_empty_and_departure_timeouts() {
    let t = Live::start().await;
    let (a, b) = (t.call("2101").await, t.call("2102").await);
    let lonely = t
        .room_with(json!({ "name": "lonely", "empty_timeout": 1 }))
        .await;
    let visited = t
        .room_with(json!({ "name": "visited", "empty_timeout": 3, "departure_timeout": 1 }))
        .await;
    let created = std::time::Instant::now();
    t.joined(&visited, &a).await;
    t.joined(&visited, &b).await;
    let reason = |room: String| {
        let t = &t;
        async move {
            t.events(&room)
                .await
                .iter()
                .find(|e| e.kind == EventKind::Destroyed)
                .map(|e| e.data["reason"].clone())
        }
    };
    t.eventually("the lonely room ended", || async {
        reason(lonely.clone()).await.is_some()
    })
    .await;
    assert_eq!(reason(lonely.clone()).await, Some(json!("empty_timeout")));
    // Past its empty timeout with callers in it (the passage of time is what is tested): live.
    tokio::time::sleep(std::time::Duration::from_millis(3500).saturating_sub(created.elapsed()))
        .await;
    assert_eq!(reason(visited.clone()).await, None);
    let r = t.command(&a, "conference/leave").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    t.node_api(&format!("uuid_kill {}", channel_of(&b))).await;
    t.eventually("the visited room ended", || async {
        reason(visited.clone()).await.is_some()
    })
    .await;
    assert_eq!(
        reason(visited.clone()).await,
        Some(json!("departure_timeout"))
    );
    for room in [&lonely, &visited] {
        t.eventually("the node let the conference go", || async {
            !t.conference_on_node(room).await
        })
        .await;
    }
    t.finish().await;
}

#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh"
)]
async fn live_a_room_that_times_out_frees_its_members() {
    let t = Live::start().await;
    let mut sessions = Vec::new();
    for n in 0..3 {
        sessions.push(t.call(&format!("200{n}")).await);
    }
    for round in 0..3 {
        let room = t
            .conference(json!({ "name": format!("timeout-{round}"), "timeout": 2 }))
            .await;
        let id = room["id"].as_str().unwrap().to_owned();
        for s in &sessions {
            t.joined(&id, s).await;
        }
        t.eventually("the room timed out", || async {
            t.resource(&id).await["status"] == "terminated"
        })
        .await;
        all_free(&t, &sessions).await;
        t.eventually("every member left", || async {
            t.events(&id)
                .await
                .iter()
                .filter(|e| e.kind == EventKind::MemberLeft)
                .count()
                >= sessions.len()
        })
        .await;
        let events = t.events(&id).await;
        assert_story(&id, &events, &sessions);
        let destroyed = events
            .iter()
            .find(|e| e.kind == EventKind::Destroyed)
            .expect("conference.destroyed");
        assert_eq!(destroyed.data["reason"], "timeout");
    }
    t.finish().await;
}

#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh"
)]
async fn live_a_connect_room_frees_the_partner_every_time() {
    let t = Live::start().await;
    for round in 0..5 {
        let room = t
            .conference(json!({ "type": "connect", "name": format!("connect-{round}") }))
            .await;
        let id = room["id"].as_str().unwrap().to_owned();
        let (a, b) = (
            t.call(&format!("30{round}1")).await,
            t.call(&format!("30{round}2")).await,
        );
        t.joined(&id, &a).await;
        t.joined(&id, &b).await;
        let killed = t.node_api(&format!("uuid_kill {}", channel_of(&a))).await;
        assert!(killed.starts_with("+OK"), "{killed}");
        all_free(&t, std::slice::from_ref(&b)).await;
        t.eventually("both left", || async {
            t.events(&id)
                .await
                .iter()
                .filter(|e| e.kind == EventKind::MemberLeft)
                .count()
                >= 2
                && t.resource(&id).await["status"] == "terminated"
        })
        .await;
        assert_story(&id, &t.events(&id).await, &[a, b.clone()]);
        // Bob's call is free for another room at once.
        let next = t.room(&format!("after-connect-{round}")).await;
        t.joined(&next, &b).await;
    }
    t.finish().await;
}

#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh"
)]
async fn live_mute_right_after_unmute_is_a_change_not_a_no_op() {
    let t = Live::start().await;
    let room = t.room("flip").await;
    let s = t.call("1001").await;
    t.joined(&room, &s).await;
    let path = |verb: &str| format!("/api/v1/sessions/{s}/commands/conference/{verb}");

    let r = t.post(&path("unmute"), json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    // At once, before FreeSWITCH confirms the unmute: a real change, refused only by the cooldown.
    let r = t.post(&path("mute"), json!({})).await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "mute after a pending unmute: {r:?}"
    );
    // After the cooldown it is sent, and the caller ends muted on the node.
    let r = t.patiently("POST", &path("mute"), json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    t.eventually("the node has the caller muted", || async {
        t.node_members(&room).await.iter().all(|m| m.2)
            && t.members(&room).await[0]["muted"] == true
    })
    .await;
    // The same the other way round.
    let r = t.patiently("POST", &path("unmute"), json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let r = t.post(&path("mute"), json!({})).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{r:?}");
    // A repeat of the pending command is still a no-op.
    let r = t.patiently("POST", &path("mute"), json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let r = t.patiently("POST", &path("mute"), json!({})).await;
    assert_eq!(
        r.status,
        StatusCode::CONFLICT,
        "mute after a pending mute: {r:?}"
    );
    t.eventually("the node has the caller muted", || async {
        t.node_members(&room).await.iter().all(|m| m.2)
    })
    .await;
    t.finish().await;
}
