//! A room's lifetime rules (issue 39): `empty_timeout` ends a room nobody joined, counted from
//! its creation; `departure_timeout` ends it that long after the last member left, unless
//! someone comes back first; the application's defaults come from its configuration and a room
//! may turn them off with 0. Over the lab on the memory store, a real Redis and a real Redis
//! Cluster, and with two controller instances on one Redis, the one that saw the room empty
//! stopped right after: the other ends it, once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use switchyard::conference::{DomainEvent, EventKind, Micros};
use switchyard::store::Store;
use switchyard::store::memory::MemoryStore;
use switchyard::store::redis::RedisStore;

use common::api::{A, TestLab, assert_error, eventually, options};
use common::redis_server::RedisServer;

/// Every app's rooms end 1 s after creation if nobody joined, 2 s after the last one left.
fn with_defaults() -> switchyard::server::lab::LabOptions {
    let mut o = options();
    o.room_lifetime = (1, 2);
    o
}

async fn view<S: Store>(t: &TestLab<S>, room: &str) -> Value {
    let r = t.get(&format!("/api/v1/conferences/{room}"), A).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    r.body
}

fn story(events: &[DomainEvent], room: &str) -> Vec<DomainEvent> {
    events
        .iter()
        .filter(|e| e.room.as_str() == room)
        .cloned()
        .collect()
}

/// The room's `conference.destroyed`, once it is terminated; exactly one of each.
async fn ended<S: Store>(t: &TestLab<S>, room: &str) -> DomainEvent {
    eventually("conference.terminated", || async {
        story(&t.events(A).await, room)
            .iter()
            .any(|e| e.kind == EventKind::Terminated)
    })
    .await;
    let events = story(&t.events(A).await, room);
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    let destroyed: Vec<&DomainEvent> = events
        .iter()
        .filter(|e| e.kind == EventKind::Destroyed)
        .collect();
    assert_eq!(destroyed.len(), 1, "{kinds:?}");
    assert_eq!(kinds.last(), Some(&EventKind::Terminated), "{kinds:?}");
    destroyed[0].clone()
}

async fn ends_at<S: Store>(t: &TestLab<S>, room: &str) -> Value {
    view(t, room).await["ends_at"].clone()
}

fn seconds_between(from: Micros, to: Micros) -> f64 {
    (to - from) as f64 / 1e6
}

async fn left<S: Store>(t: &TestLab<S>, room: &str, session: &str) {
    let r = t.patiently(A, session, "conference/leave").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    eventually("left", || async {
        t.members(A, room)
            .await
            .iter()
            .all(|m| m["uuid"] != session)
    })
    .await;
}

async fn lifetime_flow<S: Store>(store: S) {
    let t = TestLab::start(store, with_defaults()).await;

    // Nobody joins: the room ends a second after its creation, saying why.
    let lonely = t
        .room_with(A, json!({ "name": "lonely", "departure_timeout": 0 }))
        .await;
    let v = view(&t, &lonely).await;
    assert_eq!(
        (&v["empty_timeout"], &v["departure_timeout"]),
        (&json!(1), &json!(0))
    );
    assert_eq!(v["ends_at"]["reason"], "empty_timeout", "{v}");
    let destroyed = ended(&t, &lonely).await;
    assert_eq!(destroyed.data["reason"], "empty_timeout");
    let created = t
        .events(A)
        .await
        .into_iter()
        .find(|e| e.room.as_str() == lonely && e.kind == EventKind::Created)
        .unwrap();
    let after = seconds_between(created.at, destroyed.at);
    assert!(
        (1.0..3.0).contains(&after),
        "ended {after} s after creation"
    );

    // The defaults, both: someone joins at once, so the empty timeout no longer applies.
    let room = t.room(A, "busy").await;
    let v = view(&t, &room).await;
    assert_eq!(
        (&v["empty_timeout"], &v["departure_timeout"]),
        (&json!(1), &json!(2))
    );
    let (a, b) = (t.call(A, "2001").await, t.call(A, "2002").await);
    t.joined(A, &room, &a).await;
    t.joined(A, &room, &b).await;
    assert_eq!(ends_at(&t, &room).await, Value::Null);
    let created = t
        .events(A)
        .await
        .into_iter()
        .find(|e| e.room.as_str() == room && e.kind == EventKind::Created)
        .unwrap();
    // Past the empty timeout (the passage of time is what is tested): still live.
    let past = Duration::from_micros(
        u64::try_from(created.at + 1_500_000 - switchyard::node::supervisor::now_micros())
            .unwrap_or(0),
    );
    tokio::time::sleep(past).await;
    assert_eq!(view(&t, &room).await["status"], "progressing");
    left(&t, &room, &a).await;
    assert_eq!(ends_at(&t, &room).await, Value::Null, "b is still in");
    left(&t, &room, &b).await;
    assert_eq!(ends_at(&t, &room).await["reason"], "departure_timeout");
    // Someone back in time keeps it; the call's hangup empties it again.
    eventually("the join is taken", || async {
        let r = t.join(A, &a, &room).await;
        assert_ne!(r.status, StatusCode::CONFLICT, "{r:?}");
        r.status == StatusCode::ACCEPTED
    })
    .await;
    eventually("joined again", || async {
        t.members(A, &room).await.iter().any(|m| m["uuid"] == a)
    })
    .await;
    assert_eq!(ends_at(&t, &room).await, Value::Null);
    let hang = t
        .req("DELETE", &format!("/lab/v1/calls/{a}"), Some(A), None)
        .await;
    assert!(hang.status.is_success(), "{hang:?}");
    let destroyed = ended(&t, &room).await;
    assert_eq!(destroyed.data["reason"], "departure_timeout");
    let last_left = story(&t.events(A).await, &room)
        .into_iter()
        .filter(|e| e.kind == EventKind::MemberLeft)
        .map(|e| e.at)
        .max()
        .unwrap();
    let after = seconds_between(last_left, destroyed.at);
    assert!(
        (2.0..4.0).contains(&after),
        "ended {after} s after the last member left"
    );

    // 0 turns an application's default off.
    let kept = t
        .room_with(
            A,
            json!({ "name": "kept", "empty_timeout": 0, "departure_timeout": 0 }),
        )
        .await;
    let v = view(&t, &kept).await;
    assert_eq!(
        (&v["empty_timeout"], &v["departure_timeout"], &v["ends_at"]),
        (&json!(0), &json!(0), &Value::Null)
    );

    for bad in [json!(-1), json!(2_592_001), json!("10"), json!(1.5)] {
        let r = t
            .post(
                "/api/v1/conferences",
                A,
                json!({ "name": "bad", "departure_timeout": bad }),
            )
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn rooms_end_by_their_empty_and_departure_timeouts() {
    lifetime_flow(MemoryStore::new()).await;
}

#[tokio::test]
async fn rooms_end_by_their_empty_and_departure_timeouts_on_redis() {
    let server = RedisServer::start();
    lifetime_flow(RedisStore::connect(&server.url()).await.unwrap()).await;
}

#[tokio::test]
async fn rooms_end_by_their_empty_and_departure_timeouts_on_a_redis_cluster() {
    let cluster = common::redis_cluster::RedisCluster::start();
    let store = RedisStore::connect(&cluster.url()).await.unwrap();
    lifetime_flow(store.with_shards(3)).await;
}

/// Two instances on one Redis and one node; the room empties through the first, which stops
/// at once: the second ends it when its departure timeout is due, and only once.
#[tokio::test]
async fn another_instance_ends_a_room_whose_last_member_left_through_a_stopped_one() {
    use std::sync::Arc;
    use switchyard::api::{ApiState, AppKeys};
    use switchyard::conference::NodePrefix;
    use switchyard::node::{AppDirectory, NodeConfig};
    use switchyard::server::{start_rooms, start_timeouts};
    use tokio_util::sync::CancellationToken;

    let server = RedisServer::start();
    let opts = options();
    let one = TestLab::start(
        RedisStore::connect(&server.url()).await.unwrap(),
        opts.clone(),
    )
    .await;
    let stop = CancellationToken::new();
    let mut node = NodeConfig::new(
        NodePrefix::parse("lab01").unwrap(),
        one.sim().addr().to_string(),
        "ClueCon",
    );
    node.recordings_dir = opts.recordings_dir.to_string_lossy().into_owned();
    let mut directory = AppDirectory::new();
    let mut keys = AppKeys::new();
    for (app, key) in &opts.apps {
        directory.add_app(app.clone(), []);
        keys.add_plain(app.clone(), key);
    }
    let store = Arc::new(RedisStore::connect(&server.url()).await.unwrap());
    let rooms = start_rooms(store, vec![node], directory, opts.cooldowns, &stop);
    let two = ApiState::new(rooms, keys, opts.api.clone());
    for n in two.rooms().pool().nodes().iter() {
        assert!(n.wait_up(Duration::from_secs(5)).await);
    }
    start_timeouts(two.clone(), stop.child_token());

    let room = one
        .room_with(A, json!({ "name": "handed", "departure_timeout": 1 }))
        .await;
    let s = one.call(A, "3001").await;
    one.joined(A, &room, &s).await;
    left(&one, &room, &s).await;
    one.lab.stop.cancel();
    let destroyed = ended(&one, &room).await;
    assert_eq!(destroyed.data["reason"], "departure_timeout");
    stop.cancel();
}
