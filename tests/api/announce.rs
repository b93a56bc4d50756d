//! Announcements over the lab: a URL or spoken text played to one member alone, finished by the
//! node's play-file-member-done for its operation id (`conference.member.announcement.finished`),
//! cut short when the member leaves first; spoken text into a whole room through `play`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use axum::http::StatusCode;
use serde_json::{Value, json};
use switchyard::conference::EventKind;
use switchyard::server::lab::LabOptions;
use switchyard::store::memory::MemoryStore;

use common::api::{A, TestLab, assert_error, eventually, options};

async fn lab() -> TestLab<MemoryStore> {
    TestLab::start(MemoryStore::new(), options()).await
}

async fn announce(t: &TestLab<MemoryStore>, session: &str, body: Value) -> common::api::Reply {
    let path = format!("/api/v1/sessions/{session}/commands/conference/announce");
    t.post(&path, A, body).await
}

/// The app's announcement webhooks: (operation id, completed, session).
async fn finished(t: &TestLab<MemoryStore>) -> Vec<(String, bool, String)> {
    t.events(A)
        .await
        .iter()
        .filter(|e| e.kind == EventKind::MemberAnnouncementFinished)
        .map(|e| {
            (
                e.data["operation_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                e.data["completed"] == true,
                e.data["uuid"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_url_or_a_text_is_played_to_one_member_and_its_end_is_told() {
    let t = lab().await;
    let room = t.room(A, "whispers").await;
    let (s, other) = (t.call(A, "1001").await, t.call(A, "1002").await);
    // In no room: 404.
    let r = announce(&t, &s, json!({ "url": "https://cdn.example.com/a.wav" })).await;
    assert_error(&r, StatusCode::NOT_FOUND);
    t.joined(A, &room, &s).await;
    t.joined(A, &room, &other).await;

    let r = announce(&t, &s, json!({ "url": "https://cdn.example.com/a.wav" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_eq!(r.body["status"], "announcing");
    assert_eq!(r.body["room_id"], room);
    let url_op = r.body["operation_id"].as_str().unwrap().to_owned();
    let spoken = json!({ "text": "You have one minute left.", "gender": "male" });
    let r = loop {
        let r = announce(&t, &s, spoken.clone()).await;
        if r.status != StatusCode::TOO_MANY_REQUESTS {
            break r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let text_op = r.body["operation_id"].as_str().unwrap().to_owned();
    // With a command_uid, a repeat is the same announcement, not a second one.
    let once = json!({ "url": "https://cdn.example.com/b.wav", "command_uid": "ann-1" });
    let first = loop {
        let r = announce(&t, &s, once.clone()).await;
        if r.status != StatusCode::TOO_MANY_REQUESTS {
            break r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(first.status, StatusCode::ACCEPTED, "{first:?}");
    let again = announce(&t, &s, once).await;
    assert_eq!(again.body, first.body, "{again:?}");
    let uid_op = first.body["operation_id"].as_str().unwrap().to_owned();
    eventually("the three announcements finished", || async {
        finished(&t).await.len() == 3
    })
    .await;
    assert_eq!(
        finished(&t).await,
        [
            (url_op, true, s.clone()),
            (text_op, true, s.clone()),
            (uid_op, true, s.clone())
        ],
        "in the order they were queued, the member's own"
    );
}

#[tokio::test]
async fn what_cannot_be_played_is_refused_before_the_node_hears_of_it() {
    let t = lab().await;
    let room = t.room(A, "refusals").await;
    let s = t.call(A, "1001").await;
    t.joined(A, &room, &s).await;
    for body in [
        json!({}),
        json!({ "url": "https://cdn.example.com/a.wav", "text": "both" }),
        json!({ "url": "ftp://cdn.example.com/a.wav" }),
        json!({ "url": "https://cdn.example.com/a'b.wav" }),
        json!({ "text": "" }),
        json!({ "text": "pipe | splits the voice" }),
        json!({ "text": "a ${variable}" }),
        json!({ "text": "hello", "gender": "robot" }),
        json!({ "text": "hello", "language": "fr-FR" }),
        json!({ "text": "x".repeat(1025) }),
        json!({ "text": "hello", "loud": true }),
    ] {
        let r = announce(&t, &s, body.clone()).await;
        assert_error(&r, StatusCode::BAD_REQUEST);
        assert!(r.body["error"].is_string(), "{body}: {r:?}");
    }
    assert!(
        t.events(A)
            .await
            .iter()
            .all(|e| e.kind != EventKind::MemberAnnouncementFinished)
    );
}

#[tokio::test]
async fn an_announcement_cut_short_by_a_leave_is_told_before_the_leave() {
    // URLs play for a minute: the leave comes first.
    let options = LabOptions {
        play_duration: std::time::Duration::from_secs(60),
        ..options()
    };
    let t = TestLab::start(MemoryStore::new(), options).await;
    let room = t.room(A, "cut").await;
    let s = t.call(A, "1001").await;
    t.joined(A, &room, &s).await;
    let r = announce(&t, &s, json!({ "url": "https://cdn.example.com/long.wav" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let op = r.body["operation_id"].as_str().unwrap().to_owned();
    let r = t.patiently(A, &s, "conference/leave").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    eventually("left", || async {
        t.count(A, EventKind::MemberLeft).await == 1
    })
    .await;
    let told: Vec<EventKind> = t
        .events(A)
        .await
        .iter()
        .map(|e| e.kind)
        .filter(|k| [EventKind::MemberAnnouncementFinished, EventKind::MemberLeft].contains(k))
        .collect();
    assert_eq!(
        told,
        [EventKind::MemberAnnouncementFinished, EventKind::MemberLeft]
    );
    assert_eq!(finished(&t).await, [(op, false, s.clone())]);
}

#[tokio::test]
async fn text_is_spoken_into_a_whole_room() {
    let t = lab().await;
    let room = t.room(A, "spoken").await;
    let s = t.call(A, "1001").await;
    t.joined(A, &room, &s).await;
    let path = format!("/api/v1/conferences/{room}/play");
    let r = t
        .post(
            &path,
            A,
            json!({ "text": "The meeting ends in five minutes." }),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let op = r.body["operation_id"].clone();
    let resource = t.get(&format!("/api/v1/conferences/{room}"), A).await;
    assert_eq!(
        resource.body["playback_urls"],
        json!(["tts://flite|slt|The meeting ends in five minutes."])
    );
    eventually("play finished", || async {
        t.count(A, EventKind::PlayFinished).await == 1
    })
    .await;
    let done = t
        .events(A)
        .await
        .into_iter()
        .find(|e| e.kind == EventKind::PlayFinished)
        .unwrap();
    assert_eq!(done.data["operation_id"], op);
    assert_eq!(done.data["failed_urls"], json!([]));
    for body in [
        json!({ "text": "x", "urls": ["https://cdn.example.com/a.wav"] }),
        json!({ "text": "back\\slash" }),
        json!({}),
    ] {
        assert_error(&t.post(&path, A, body).await, StatusCode::BAD_REQUEST);
    }
}
