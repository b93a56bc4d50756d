//! Coaching over the lab: a member heard by one other member alone. The node is told with
//! `relate` (the simulator answers as 1.11 does); members who join later are kept from hearing
//! the coach; uncoach makes it heard by everyone again; the member view and the webhook say
//! whom a member coaches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use axum::http::StatusCode;
use serde_json::{Value, json};
use switchyard::conference::EventKind;
use switchyard::store::memory::MemoryStore;

use common::api::{A, B, TestLab, assert_error, eventually, options};

async fn coach(
    t: &TestLab<MemoryStore>,
    app: (&str, &str),
    s: &str,
    body: Value,
) -> common::api::Reply {
    let path = format!("/api/v1/sessions/{s}/commands/conference/coach");
    loop {
        let r = t.post(&path, app, body.clone()).await;
        if r.status != StatusCode::TOO_MANY_REQUESTS {
            return r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn view(t: &TestLab<MemoryStore>, room: &str, session: &str) -> Value {
    t.members(A, room)
        .await
        .into_iter()
        .find(|m| m["uuid"] == session)
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn a_coach_is_heard_by_one_member_until_uncoached() {
    let t = lab().await;
    let room = t.room(A, "call-center").await;
    let (agent, customer, supervisor) = (
        t.call(A, "1001").await,
        t.call(A, "1002").await,
        t.call(A, "1003").await,
    );
    for s in [&agent, &customer, &supervisor] {
        t.joined(A, &room, s).await;
    }
    // Bad targets: not a session id (400), not in the room, itself (409).
    let r = coach(&t, A, &supervisor, json!({ "member": "nobody" })).await;
    assert_error(&r, StatusCode::BAD_REQUEST);
    let outsider = t.call(A, "1009").await;
    let r = coach(&t, A, &supervisor, json!({ "member": outsider })).await;
    assert_error(&r, StatusCode::CONFLICT);
    let r = coach(&t, A, &supervisor, json!({ "member": supervisor })).await;
    assert_error(&r, StatusCode::CONFLICT);

    let r = coach(&t, A, &supervisor, json!({ "member": agent })).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(
        r.body,
        json!({ "status": "coaching", "room_id": room, "coaching": agent })
    );
    assert_eq!(
        view(&t, &room, &supervisor).await["coaching"],
        agent.as_str()
    );
    assert_eq!(view(&t, &room, &agent).await["coaching"], Value::Null);
    let told: Vec<Value> = t
        .events(A)
        .await
        .iter()
        .filter(|e| e.kind == EventKind::MemberCoaching)
        .map(|e| json!([e.data["uuid"], e.data["coaching"]]))
        .collect();
    assert_eq!(told, [json!([supervisor, agent])]);
    // Again: 409, it already coaches that member.
    let r = coach(&t, A, &supervisor, json!({ "member": agent })).await;
    assert_error(&r, StatusCode::CONFLICT);

    // On the node: everyone but the agent (the control leg and the customer) does not hear
    // the coach; a member who joins later is kept from hearing it too.
    let id = |s: &str| member_id(&t, &room, s);
    let unheard = |t: &TestLab<MemoryStore>| relations(t, &room, id(&supervisor));
    let control = control_id(&t, &room, &[&agent, &customer, &supervisor]);
    let mut expected = vec![id(&customer), control];
    expected.sort_unstable();
    assert_eq!(unheard(&t), expected);
    let late = t.call(A, "1004").await;
    t.joined(A, &room, &late).await;
    expected.push(id(&late));
    expected.sort_unstable();
    eventually("the newcomer does not hear the coach", || async {
        unheard(&t) == expected
    })
    .await;

    let path = format!("/api/v1/sessions/{supervisor}/commands/conference/uncoach");
    let r = loop {
        let r = t.post(&path, A, json!({})).await;
        if r.status != StatusCode::TOO_MANY_REQUESTS {
            break r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body, json!({ "status": "heard_by_all", "room_id": room }));
    assert_eq!(view(&t, &room, &supervisor).await["coaching"], Value::Null);
    assert!(unheard(&t).is_empty(), "all cleared on the node");
    eventually("uncoach told", || async {
        t.count(A, EventKind::MemberCoaching).await == 2
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    assert_error(&t.post(&path, A, json!({})).await, StatusCode::CONFLICT);
    // Another app cannot coach into this app's rooms.
    let r = coach(&t, B, &supervisor, json!({ "member": agent })).await;
    assert!(
        [StatusCode::FORBIDDEN, StatusCode::NOT_FOUND].contains(&r.status),
        "{r:?}"
    );
}

fn member_id(t: &TestLab<MemoryStore>, room: &str, session: &str) -> u64 {
    t.node_member(room, session)["id"].as_u64().unwrap()
}

/// The room's control leg: the node's member that is none of these sessions.
fn control_id(t: &TestLab<MemoryStore>, room: &str, sessions: &[&str]) -> u64 {
    t.node_members(room)
        .iter()
        .find(|m| {
            !sessions
                .iter()
                .any(|s| s.ends_with(m["uuid"].as_str().unwrap_or("?")))
        })
        .and_then(|m| m["id"].as_u64())
        .unwrap()
}

/// The members that do not hear `coach` on the node (`relate <coach>`), sorted.
fn relations(t: &TestLab<MemoryStore>, room: &str, coach: u64) -> Vec<u64> {
    let listed = t.sim().api(&format!("conference {room} relate {coach}"));
    let mut ids: Vec<u64> = listed
        .lines()
        .filter(|l| l.contains("NOSPEAK"))
        .filter_map(|l| l.split(" -> ").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    ids.sort_unstable();
    ids
}

async fn lab() -> TestLab<MemoryStore> {
    TestLab::start(MemoryStore::new(), options()).await
}
