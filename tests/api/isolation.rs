//! One application can never list, read or change another's rooms or sessions: one check per
//! endpoint. Another app's room or session is 403 (404 on the members list, as seed 004 says).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

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

/// A GET with the operator's key (and, acting as an app, its id) or an app's key beside it.
async fn operator_get(
    t: &TestLab<MemoryStore>,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, serde_json::Value) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let mut request = axum::http::Request::get(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = t
        .lab
        .router()
        .oneshot(request.body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

#[tokio::test]
async fn the_operator_key_reads_every_app_and_acts_only_as_a_configured_one() {
    let options = switchyard::server::lab::LabOptions {
        admin_key: Some("root-key".into()),
        ..options()
    };
    let t = TestLab::start(MemoryStore::new(), options).await;
    let a_room = t.room(A, "a-room").await;
    let s = t.call(A, "1001").await;
    t.joined(A, &a_room, &s).await;
    let b_room = t.room(B, "b-room").await;

    // The overview: every app's totals, and the node's rooms and members across apps.
    let (status, body) = operator_get(
        &t,
        "/api/v1/operator/overview",
        &[("x-admin-key", "root-key")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["apps"],
        json!([
            { "app_id": A.0, "rooms": 1, "members": 1 },
            { "app_id": B.0, "rooms": 1, "members": 0 },
        ])
    );
    assert_eq!(body["nodes"][0]["rooms"], 2, "{body}");
    assert_eq!(body["nodes"][0]["members"], 1, "{body}");
    assert_eq!(body["nodes"][0]["state"], "up", "{body}");

    // Refused: a wrong operator key, an app's key, nothing.
    for headers in [
        vec![("x-admin-key", "root-kez")],
        vec![("x-app-id", A.0), ("x-api-key", A.1)],
        vec![],
    ] {
        let (status, body) = operator_get(&t, "/api/v1/operator/overview", &headers).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{headers:?}: {body}");
        assert_eq!(body["success"], false);
    }

    // Acting as app B: B's rooms and B's counts only.
    let as_b = [("x-admin-key", "root-key"), ("x-app-id", B.0)];
    let (status, body) = operator_get(&t, "/api/v1/conferences", &as_b).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids: Vec<&str> = body["conferences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["room_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [b_room.as_str()]);
    assert_eq!(body["conferences"][0]["node"], "lab01");
    assert_eq!(body["conferences"][0]["status"], "progressing");
    let (status, _) = operator_get(&t, &format!("/api/v1/conferences/{a_room}"), &as_b).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "acting as B, A's room is another app's"
    );
    let (_, body) = operator_get(&t, "/api/v1/nodes", &as_b).await;
    assert_eq!(body["nodes"][0]["rooms"], 1, "{body}");
    assert_eq!(body["nodes"][0]["members"], 0, "{body}");

    // Not as an app that is not configured, nor with a wrong key, nor with both keys at once.
    for headers in [
        vec![("x-admin-key", "root-key"), ("x-app-id", "app-z")],
        vec![("x-admin-key", "root-kez"), ("x-app-id", B.0)],
        vec![
            ("x-admin-key", "root-key"),
            ("x-app-id", B.0),
            ("x-api-key", A.1),
        ],
    ] {
        let (status, _) = operator_get(&t, "/api/v1/conferences", &headers).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{headers:?}");
    }
}

#[tokio::test]
async fn without_an_operator_key_configured_none_is_accepted() {
    let (t, _, _) = setup().await;
    for (path, headers) in [
        ("/api/v1/operator/overview", vec![("x-admin-key", "")]),
        (
            "/api/v1/operator/overview",
            vec![("x-admin-key", "anything")],
        ),
        (
            "/api/v1/conferences",
            vec![("x-admin-key", ""), ("x-app-id", A.0)],
        ),
    ] {
        let (status, _) = operator_get(&t, path, &headers).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} {headers:?}");
    }
}

/// A recording is its room's app's: another app cannot read it, fetch its file (streamed or
/// redirected to a signed URL), or delete it (403, as for its room; an unknown id is 404).
#[tokio::test]
async fn recording_endpoints_refuse_another_app() {
    let (t, room, _) = setup().await;
    let start = format!("/api/v1/conferences/{room}/recording/start");
    let r = t.post(&start, A, json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let rec = r.body["id"].as_str().unwrap().to_owned();
    let view = format!("/api/v1/recordings/{rec}");
    common::api::eventually("recording", || async {
        t.get(&view, A).await.body["status"] == "recording"
    })
    .await;
    let stop = format!("/api/v1/conferences/{room}/recording/stop");
    assert_eq!(
        t.post(&stop, A, json!({})).await.status,
        StatusCode::ACCEPTED
    );
    common::api::eventually("ended", || async {
        t.get(&view, A).await.body["status"] == "ended"
    })
    .await;

    let unknown = format!("/api/v1/recordings/{}", uuid::Uuid::new_v4());
    for (path, status) in [
        (view.clone(), StatusCode::FORBIDDEN),
        (unknown, StatusCode::NOT_FOUND),
    ] {
        assert_error(&t.get(&path, B).await, status);
        for file in [format!("{path}/file"), format!("{path}/file?redirect=true")] {
            let (got, headers, _) = t.raw_get(&file, B).await;
            assert_eq!(got, status, "{file}");
            assert!(headers.get("location").is_none());
        }
        assert_error(&t.delete(&path, B).await, status);
    }
    // A's recording is whole.
    assert_eq!(t.get(&view, A).await.body["status"], "ended");
}
