//! The core API flow with the Redis store (a real redis-server): create → call → join → mute →
//! play → leave → delete, cooldowns and command_uid held in Redis, pagination.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use switchyard::conference::EventKind;
use switchyard::store::redis::RedisStore;

use common::api::{A, B, TestLab, assert_error, eventually, options};
use common::redis_server::RedisServer;

#[tokio::test]
async fn the_core_flow_against_redis() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let t = TestLab::start(store, options()).await;
    let room = t.room(A, "standup").await;
    let dup = t
        .post("/api/v1/conferences", A, json!({ "name": "standup" }))
        .await;
    assert_error(&dup, StatusCode::CONFLICT);
    assert_eq!(dup.body["detail"]["room_id"], room.as_str());
    let s = t.call(A, "1001").await;
    t.sim().stall_events(true);
    assert_eq!(t.join(A, &s, &room).await.status, StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        t.members(A, &room).await.is_empty(),
        "not before add-member"
    );
    t.sim().stall_events(false);
    eventually("joined", || async { t.members(A, &room).await.len() == 1 }).await;
    assert_eq!(t.members(A, &room).await[0]["muted"], true);
    let unmute = format!("/api/v1/sessions/{s}/commands/conference/unmute");
    let first = t.post(&unmute, A, json!({ "command_uid": "x" })).await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    let again = t.post(&unmute, A, json!({ "command_uid": "x" })).await;
    assert_eq!(again.body, first.body);
    let r = t.command(A, &s, "conference/mute").await;
    assert!(
        r.status == StatusCode::TOO_MANY_REQUESTS || r.status == StatusCode::CONFLICT,
        "{r:?}"
    );
    eventually("unmuted", || async {
        t.members(A, &room).await[0]["muted"] == false
    })
    .await;
    let r = t.command(A, &s, "conference/mute").await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body["detail"]["group"], "conference_mute");
    let play = t
        .post(
            &format!("/api/v1/conferences/{room}/play"),
            A,
            json!({ "urls": ["https://x.example/a.wav"] }),
        )
        .await;
    assert_eq!(play.status, StatusCode::ACCEPTED);
    eventually("played", || async {
        t.count(A, EventKind::PlayFinished).await == 1
    })
    .await;
    assert_error(
        &t.get(&format!("/api/v1/conferences/{room}"), B).await,
        StatusCode::FORBIDDEN,
    );
    tokio::time::sleep(Duration::from_millis(320)).await;
    let r = t.command(A, &s, "conference/leave").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    eventually("left", || async { t.members(A, &room).await.is_empty() }).await;
    for i in 0..3 {
        t.post("/api/v1/conferences", A, json!({ "name": format!("p{i}") }))
            .await;
    }
    let p1 = t.get("/api/v1/conferences?limit=3", A).await;
    assert_eq!(p1.body["conferences"].as_array().unwrap().len(), 3);
    let cursor = p1.body["cursor"].as_str().unwrap();
    let p2 = t
        .get(&format!("/api/v1/conferences?limit=3&cursor={cursor}"), A)
        .await;
    assert_eq!(p2.body["conferences"].as_array().unwrap().len(), 1);
    assert_eq!(p2.body["cursor"], "");
    let r = t
        .req(
            "DELETE",
            &format!("/api/v1/conferences/{room}"),
            Some(A),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_error(
        &t.get(&format!("/api/v1/conferences/{room}"), A).await,
        StatusCode::NOT_FOUND,
    );
}
