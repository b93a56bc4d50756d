//! The conference routes over the lab (simulated node + memory store): create, list, read,
//! members, delete, playback, their validation, cooldowns and errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use switchyard::conference::EventKind;
use switchyard::rooms::Cooldowns;
use switchyard::store::memory::MemoryStore;

use common::api::{A, B, TestLab, assert_error, eventually, options};

async fn lab() -> TestLab<MemoryStore> {
    TestLab::start(MemoryStore::new(), options()).await
}

const ENDPOINTS: &[(&str, &str)] = &[
    ("POST", "/api/v1/conferences"),
    ("GET", "/api/v1/conferences"),
    ("GET", "/api/v1/conferences/ROOM"),
    ("DELETE", "/api/v1/conferences/ROOM"),
    ("GET", "/api/v1/conferences/ROOM/members"),
    ("POST", "/api/v1/conferences/ROOM/play"),
    ("POST", "/api/v1/conferences/ROOM/pause"),
    ("POST", "/api/v1/conferences/ROOM/stop"),
    ("POST", "/api/v1/conferences/ROOM/volume"),
    ("GET", "/api/v1/sessions"),
    ("GET", "/api/v1/sessions/SESSION"),
    ("POST", "/api/v1/sessions/SESSION/commands/hangup"),
    ("POST", "/api/v1/sessions/SESSION/commands/conference/join"),
    ("POST", "/api/v1/sessions/SESSION/commands/conference/leave"),
    ("POST", "/api/v1/sessions/SESSION/commands/conference/mute"),
    (
        "POST",
        "/api/v1/sessions/SESSION/commands/conference/unmute",
    ),
    ("POST", "/lab/v1/calls"),
    ("DELETE", "/lab/v1/calls/SESSION"),
];

#[tokio::test]
async fn every_endpoint_wants_a_valid_app_and_key() {
    let t = lab().await;
    let room = t.room(A, "auth").await;
    let session = t.call(A, "1001").await;
    for (method, path) in ENDPOINTS {
        let path = path.replace("ROOM", &room).replace("SESSION", &session);
        for app in [
            None,
            Some((A.0, "wrong")),
            Some(("nobody", A.1)),
            Some((A.0, "")),
            Some((B.0, A.1)),
        ] {
            let r = t.req(method, &path, app, Some(json!({}))).await;
            assert_error(&r, StatusCode::UNAUTHORIZED);
            assert_eq!(r.body["error"], "Missing or invalid X-API-Key");
        }
    }
    // Nothing changed.
    assert_eq!(t.members(A, &room).await.len(), 0);
}

#[tokio::test]
async fn create_validates_names_and_refuses_duplicates_with_the_existing_room() {
    let t = lab().await;
    let r = t
        .post(
            "/api/v1/conferences",
            A,
            json!({ "name": "weekly-standup" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.body["room_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("lab01-room-"), "{id}");
    let dup = t
        .post(
            "/api/v1/conferences",
            A,
            json!({ "name": "weekly-standup" }),
        )
        .await;
    assert_error(&dup, StatusCode::CONFLICT);
    assert_eq!(
        dup.body["error"],
        "Conference name already taken for this application"
    );
    assert_eq!(dup.body["detail"]["room_id"], id.as_str());
    // Another app may use the same name.
    let other = t
        .post(
            "/api/v1/conferences",
            B,
            json!({ "name": "weekly-standup" }),
        )
        .await;
    assert_eq!(other.status, StatusCode::CREATED);
    let long = "x".repeat(65);
    for bad in [
        json!({ "name": "" }),
        json!({ "name": "-leading" }),
        json!({ "name": "has space" }),
        json!({ "name": "ümlaut" }),
        json!({ "name": long }),
        json!({ "name": 5 }),
        json!({}),
        json!({ "name": "ok", "extra": 1 }),
        Value::String("{not json".into()),
        Value::String("[]".into()),
    ] {
        let r = t.post("/api/v1/conferences", A, bad.clone()).await;
        assert_error(&r, StatusCode::BAD_REQUEST);
    }
    let max = "a".repeat(64);
    let r = t
        .post("/api/v1/conferences", A, json!({ "name": max }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(t.count(A, EventKind::Created).await, 2);
}

#[tokio::test]
async fn rooms_list_pages_with_opaque_cursors() {
    let t = lab().await;
    let mut created = Vec::new();
    for i in 0..5 {
        let r = t
            .post("/api/v1/conferences", A, json!({ "name": format!("r{i}") }))
            .await;
        created.push(r.body["room_id"].as_str().unwrap().to_owned());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    t.post("/api/v1/conferences", B, json!({ "name": "b-room" }))
        .await;
    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let r = t
            .get(&format!("/api/v1/conferences?limit=2&cursor={cursor}"), A)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        pages += 1;
        for c in r.body["conferences"].as_array().unwrap() {
            assert_eq!(c["members"], 0);
            let at = c["created_at"].as_str().unwrap();
            assert!(
                at.len() == 20 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
                "{at}"
            );
            seen.push(c["room_id"].as_str().unwrap().to_owned());
        }
        cursor = r.body["cursor"].as_str().unwrap().to_owned();
        if cursor.is_empty() {
            break;
        }
    }
    assert_eq!(seen, created, "every room once, in creation order");
    assert_eq!(pages, 3);
    // The default limit and a clamp: everything on one page.
    let all = t.get("/api/v1/conferences?limit=100000", A).await;
    assert_eq!(all.body["conferences"].as_array().unwrap().len(), 5);
    assert_eq!(all.body["cursor"], "");

    let first = t.get("/api/v1/conferences?limit=2", A).await;
    let good = first.body["cursor"].as_str().unwrap().to_owned();
    let (payload, tag) = good.split_once('.').unwrap();
    let forged = format!("{payload}.{}", tag.chars().rev().collect::<String>());
    for bad in [
        "limit=0".to_owned(),
        "limit=-1".into(),
        "limit=abc".into(),
        "limit=1.5".into(),
        "limit=".into(),
        "cursor=garbage".into(),
        format!("cursor={forged}"),
        format!("cursor={payload}"),
    ] {
        let r = t.get(&format!("/api/v1/conferences?{bad}"), A).await;
        assert_error(&r, StatusCode::BAD_REQUEST);
    }
    // Another app's cursor means nothing to it.
    let r = t
        .get(&format!("/api/v1/conferences?cursor={good}"), B)
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST);
    // B sees only its own room.
    let b = t.get("/api/v1/conferences", B).await;
    assert_eq!(b.body["conferences"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn get_one_room_says_created_at_in_unix_seconds_and_playback() {
    let t = lab().await;
    let room = t.room(A, "show").await;
    let r = t.get(&format!("/api/v1/conferences/{room}"), A).await;
    assert_eq!(r.status, StatusCode::OK);
    let b = &r.body;
    assert_eq!(b["room_id"], room.as_str());
    assert_eq!(b["name"], "show");
    let secs: i64 = b["created_at"].as_str().unwrap().parse().unwrap();
    assert!(secs > 1_700_000_000);
    assert_eq!(b["members"], 0);
    assert_eq!(b["playback_status"], "stopped");
    assert_eq!(b["playback_volume"], 0);
    assert_eq!(b["playback_urls"], json!([]));
    assert_eq!(b["playback_operation_id"], "");

    let bad = t.get("/api/v1/conferences/not-a-room", A).await;
    assert_error(&bad, StatusCode::BAD_REQUEST);
    let missing = t
        .get(
            "/api/v1/conferences/lab01-room-550e8400-e29b-41d4-a716-446655440000",
            A,
        )
        .await;
    assert_error(&missing, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn delete_moves_members_out_and_removes_the_room() {
    let t = lab().await;
    let room = t.room(A, "gone").await;
    let s = t.call(A, "1001").await;
    t.joined(A, &room, &s).await;
    let r = t.delete(&format!("/api/v1/conferences/{room}"), A).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body, json!({ "room_id": room }));
    assert_error(
        &t.get(&format!("/api/v1/conferences/{room}"), A).await,
        StatusCode::NOT_FOUND,
    );
    assert_error(
        &t.delete(&format!("/api/v1/conferences/{room}"), A).await,
        StatusCode::NOT_FOUND,
    );
    let list = t.get("/api/v1/conferences", A).await;
    assert_eq!(list.body["conferences"], json!([]));
    // The call lives on, out of the room; the name is free again.
    eventually("the member left", || async {
        t.get(&format!("/api/v1/sessions/{s}"), A).await.body["room_id"].is_null()
    })
    .await;
    let session = t.get(&format!("/api/v1/sessions/{s}"), A).await;
    assert_ne!(session.body["state"], "ended");
    eventually("conference.destroyed… terminated", || async {
        t.count(A, EventKind::Terminated).await == 1
    })
    .await;
    let again = t
        .post("/api/v1/conferences", A, json!({ "name": "gone" }))
        .await;
    assert_eq!(again.status, StatusCode::CREATED);
}

#[tokio::test]
async fn playback_plays_pauses_resumes_stops_and_finishes() {
    let t = lab().await;
    let room = t.room(A, "music").await;
    let play = format!("/api/v1/conferences/{room}/play");
    let urls = json!([
        "https://cdn.example.com/a.wav",
        "http://cdn.example.com/b.mp3"
    ]);
    let r = t.post(&play, A, json!({ "urls": urls })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_eq!(r.body["status"], "in_progress");
    let op = r.body["operation_id"].as_str().unwrap().to_owned();
    let show = t.get(&format!("/api/v1/conferences/{room}"), A).await;
    assert_eq!(show.body["playback_status"], "playing");
    assert_eq!(show.body["playback_urls"], urls);
    assert_eq!(show.body["playback_operation_id"], op.as_str());
    let started = t.events(A).await;
    let started = started
        .iter()
        .find(|e| e.kind == EventKind::PlayStarted)
        .unwrap();
    assert_eq!(started.data["operation_id"], op.as_str());
    assert_eq!(started.data["urls"], urls);

    let pause = t
        .post(&format!("/api/v1/conferences/{room}/pause"), A, json!({}))
        .await;
    assert_eq!(pause.status, StatusCode::ACCEPTED, "{pause:?}");
    assert_eq!(pause.body["status"], "paused");
    assert_eq!(pause.body["operation_id"], op.as_str());
    tokio::time::sleep(Duration::from_millis(120)).await;
    let resume = t
        .req(
            "POST",
            &format!("/api/v1/conferences/{room}/pause"),
            Some(A),
            None,
        )
        .await;
    assert_eq!(resume.status, StatusCode::ACCEPTED, "{resume:?}");
    assert_eq!(resume.body["status"], "playing");
    assert_eq!(t.count(A, EventKind::PlayPaused).await, 1);
    assert_eq!(t.count(A, EventKind::PlayResumed).await, 1);

    // Both files end (300 ms each in the lab): finished, matched by operation id.
    eventually("conference.play.finished", || async {
        t.count(A, EventKind::PlayFinished).await == 1
    })
    .await;
    let show = t.get(&format!("/api/v1/conferences/{room}"), A).await;
    assert_eq!(show.body["playback_status"], "stopped");

    // Nothing is playing: pause has nothing to toggle.
    tokio::time::sleep(Duration::from_millis(120)).await;
    let r = t
        .post(&format!("/api/v1/conferences/{room}/pause"), A, json!({}))
        .await;
    assert_error(&r, StatusCode::CONFLICT);

    // Play again and stop: stopped, never finished.
    tokio::time::sleep(Duration::from_millis(320)).await;
    let r = t.post(&play, A, json!({ "urls": urls })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let stop = t
        .post(&format!("/api/v1/conferences/{room}/stop"), A, json!({}))
        .await;
    assert_eq!(stop.status, StatusCode::ACCEPTED, "{stop:?}");
    assert_eq!(stop.body["status"], "stopped");
    assert_eq!(t.count(A, EventKind::PlayStopped).await, 1);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(t.count(A, EventKind::PlayFinished).await, 1);
}

#[tokio::test]
async fn volume_is_set_in_range_only() {
    let t = lab().await;
    let room = t.room(A, "vol").await;
    let path = format!("/api/v1/conferences/{room}/volume");
    for bad in [
        json!({ "volume": 8 }),
        json!({ "volume": -51 }),
        json!({ "volume": 2.5 }),
        json!({ "volume": "2" }),
        json!({}),
        json!({ "volume": 1, "x": 1 }),
        Value::String("nope".into()),
    ] {
        assert_error(&t.post(&path, A, bad).await, StatusCode::BAD_REQUEST);
    }
    for (v, wait) in [(-50, 0), (7, 120), (2, 120)] {
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let r = t.post(&path, A, json!({ "volume": v })).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
        assert_eq!(r.body["volume"], v);
    }
    // While playing the volume goes to the node (and takes the control cooldown).
    t.post(
        &format!("/api/v1/conferences/{room}/play"),
        A,
        json!({ "urls": ["https://x.example/a.wav"] }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(120)).await;
    let r = t.post(&path, A, json!({ "volume": -3 })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let r = t.post(&path, A, json!({ "volume": -4 })).await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS);
    let show = t.get(&format!("/api/v1/conferences/{room}"), A).await;
    assert_eq!(show.body["playback_volume"], -3);
    let changed = t.count(A, EventKind::PlayVolumeChanged).await;
    assert_eq!(changed, 4);
    let last = t.events(A).await;
    let last = last
        .iter()
        .rev()
        .find(|e| e.kind == EventKind::PlayVolumeChanged)
        .unwrap();
    assert_eq!(last.data["volume"], -3);
}

#[tokio::test]
async fn play_validates_urls() {
    let t = lab().await;
    let room = t.room(A, "urls").await;
    let path = format!("/api/v1/conferences/{room}/play");
    let many: Vec<String> = (0..129)
        .map(|i| format!("https://x.example/{i}.wav"))
        .collect();
    for bad in [
        json!({ "urls": [] }),
        json!({ "urls": many }),
        json!({ "urls": ["ftp://x.example/a.wav"] }),
        json!({ "urls": ["/usr/share/freeswitch/sounds/test.wav"] }),
        json!({ "urls": ["https://x.example/a b.wav"] }),
        json!({ "urls": ["https://x.example/{evil}.wav"] }),
        json!({ "urls": "https://x.example/a.wav" }),
        json!({}),
        json!({ "urls": ["https://x.example/a.wav"], "loop": true }),
    ] {
        assert_error(&t.post(&path, A, bad).await, StatusCode::BAD_REQUEST);
    }
    let ok: Vec<String> = (0..128)
        .map(|i| format!("https://x.example/{i}.wav"))
        .collect();
    let r = t.post(&path, A, json!({ "urls": ok })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_error(
        &t.post(
            "/api/v1/conferences/bad/play",
            A,
            json!({ "urls": ["https://x/a"] }),
        )
        .await,
        StatusCode::BAD_REQUEST,
    );
    assert_error(
        &t.post(
            "/api/v1/conferences/lab01-room-550e8400-e29b-41d4-a716-446655440000/play",
            A,
            json!({ "urls": ["https://x.example/a.wav"] }),
        )
        .await,
        StatusCode::NOT_FOUND,
    );
}

#[tokio::test]
async fn room_cooldowns_refuse_with_retry_after_and_the_group() {
    let t = lab().await;
    let room = t.room(A, "cool").await;
    let play = format!("/api/v1/conferences/{room}/play");
    let body = json!({ "urls": ["https://x.example/a.wav"] });
    assert_eq!(
        t.post(&play, A, body.clone()).await.status,
        StatusCode::ACCEPTED
    );
    let r = t.post(&play, A, body.clone()).await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body["detail"]["group"], "conf_play");
    let wait = r.body["detail"]["retry_after_ms"].as_u64().unwrap();
    assert!(wait > 0 && wait <= 300, "{wait}");
    assert_eq!(r.headers["retry-after"], "1");
    // A refused validation does not take a cooldown: stop, then pause (shared group).
    let stop = t
        .post(&format!("/api/v1/conferences/{room}/stop"), A, json!({}))
        .await;
    assert_eq!(stop.status, StatusCode::ACCEPTED);
    for verb in ["pause", "stop"] {
        let r = t
            .post(&format!("/api/v1/conferences/{room}/{verb}"), A, json!({}))
            .await;
        if verb == "pause" {
            // Nothing is playing: 409 before any cooldown is looked at.
            assert_error(&r, StatusCode::CONFLICT);
        } else {
            assert_error(&r, StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(r.body["detail"]["group"], "conference_control");
        }
    }
    // Other rooms are not affected.
    let other = t.room(A, "cool2").await;
    let r = t
        .post(&format!("/api/v1/conferences/{other}/play"), A, body)
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn the_contract_cooldown_windows_are_the_defaults() {
    let c = Cooldowns::default();
    assert_eq!(c.conf_play, Duration::from_secs(2));
    assert_eq!(c.conference_control, Duration::from_millis(200));
    assert_eq!(c.conference, Duration::from_secs(2));
    assert_eq!(c.conference_mute, Duration::from_secs(2));
}

#[tokio::test]
async fn health_and_readiness() {
    let t = lab().await;
    let h = t.req("GET", "/healthz", None, None).await;
    assert_eq!(h.status, StatusCode::OK);
    let r = t.req("GET", "/readyz", None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["nodes"]["lab01"], "up");
    let unknown = t.get("/api/v1/nothing-here", A).await;
    assert_error(&unknown, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_global_per_app_limit_answers_429() {
    let mut o = options();
    o.api.global_rate = 1.0;
    o.api.global_burst = 3.0;
    let t = TestLab::start(MemoryStore::new(), o).await;
    for _ in 0..3 {
        assert_eq!(t.get("/api/v1/conferences", A).await.status, StatusCode::OK);
    }
    let r = t.get("/api/v1/conferences", A).await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body["detail"]["group"], "global");
    assert_eq!(r.headers["retry-after"], "1");
    // Per app: B still has its own budget.
    assert_eq!(t.get("/api/v1/conferences", B).await.status, StatusCode::OK);
}

/// A locked room refuses joins and dial-outs (409 "Room is locked") and keeps the members it
/// has; locking is told once (a second lock changes nothing), unlocking takes joins again.
/// Another app cannot lock it.
#[tokio::test]
async fn a_locked_room_refuses_joins_and_dial_outs_and_keeps_its_members() {
    let t = lab().await;
    let room = t.room(A, "lockable").await;
    let inside = t.call(A, "1001").await;
    t.joined(A, &room, &inside).await;
    let lock = format!("/api/v1/conferences/{room}/lock");
    let unlock = format!("/api/v1/conferences/{room}/unlock");
    assert_error(&t.post(&lock, B, json!({})).await, StatusCode::FORBIDDEN);

    for _ in 0..2 {
        let r = t.post(&lock, A, json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["locked"], true, "{r:?}");
    }
    assert_eq!(t.count(A, EventKind::Locked).await, 1, "told once");
    assert_eq!(
        t.get(&format!("/api/v1/conferences/{room}"), A).await.body["locked"],
        true
    );

    let outside = t.call(A, "1002").await;
    let r = t.join(A, &outside, &room).await;
    assert_error(&r, StatusCode::CONFLICT);
    assert_eq!(r.body["error"], "Room is locked");
    let r = t
        .post(
            &format!("/api/v1/conferences/{room}/participants"),
            A,
            json!({ "to": "sip:alice@pbx.example.com" }),
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT);
    assert_eq!(r.body["error"], "Room is locked");
    assert_eq!(t.members(A, &room).await.len(), 1, "the member in stays");

    let r = t.post(&unlock, A, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["locked"], false);
    assert_eq!(t.count(A, EventKind::Unlocked).await, 1);
    t.joined(A, &room, &outside).await;
    assert_eq!(t.members(A, &room).await.len(), 2);
}

/// The application's own data on a room and a member: set at create and join, shown with them,
/// carried in the webhooks about them, replaced by `PATCH` (told once, only when it changed),
/// at most 4096 bytes and always a JSON object; another app cannot change it.
#[tokio::test]
async fn metadata_is_kept_shown_told_and_replaced_on_rooms_and_members() {
    let t = lab().await;
    let room = t
        .room_with(
            A,
            json!({ "name": "meta", "metadata": { "meeting": "42" } }),
        )
        .await;
    let caller = t.call(A, "1001").await;
    t.joined_with(A, &room, &caller, json!({ "metadata": { "role": "host" } }))
        .await;
    let view = t.get(&format!("/api/v1/conferences/{room}"), A).await;
    assert_eq!(view.body["metadata"], json!({ "meeting": "42" }));
    let members = t.members(A, &room).await;
    assert_eq!(members[0]["metadata"], json!({ "role": "host" }));
    let joined = t
        .events(A)
        .await
        .into_iter()
        .find(|e| e.kind == EventKind::MemberJoined)
        .unwrap();
    assert_eq!(joined.data["metadata"], json!({ "role": "host" }));
    assert_eq!(joined.data["room_metadata"], json!({ "meeting": "42" }));

    // Replaced whole; told once; the same again changes nothing.
    let path = format!("/api/v1/conferences/{room}");
    for _ in 0..2 {
        let r = t
            .req(
                "PATCH",
                &path,
                Some(A),
                Some(json!({ "metadata": { "meeting": "43" } })),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["metadata"], json!({ "meeting": "43" }));
    }
    let member_path = format!("/api/v1/conferences/{room}/members/{caller}");
    let r = t
        .req(
            "PATCH",
            &member_path,
            Some(A),
            Some(json!({ "metadata": { "role": "guest" } })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["metadata"], json!({ "role": "guest" }));
    let updated: Vec<_> = t
        .events(A)
        .await
        .into_iter()
        .filter(|e| e.kind == EventKind::MetadataUpdated)
        .map(|e| (e.data["uuid"].clone(), e.data["metadata"].clone()))
        .collect();
    assert_eq!(
        updated,
        [
            (Value::Null, json!({ "meeting": "43" })),
            (json!(caller), json!({ "role": "guest" }))
        ]
    );

    // Listings filter by a top-level key: a string as written, a number as JSON writes it.
    t.room_with(A, json!({ "name": "other", "metadata": { "meeting": 43 } }))
        .await;
    t.room(A, "bare").await;
    let names = |r: &common::api::Reply| -> Vec<String> {
        let mut v: Vec<String> = r.body["conferences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    let r = t.get("/api/v1/conferences?metadata.meeting=43", A).await;
    assert_eq!(names(&r), ["meta", "other"], "{r:?}");
    let r = t.get("/api/v1/conferences?metadata.meeting=42", A).await;
    assert!(names(&r).is_empty(), "{r:?}");
    let r = t.get("/api/v1/conferences", A).await;
    assert_eq!(names(&r).len(), 3);

    // Refused: too big, not an object, a member not in the room, another app.
    let big = json!({ "metadata": { "k": "x".repeat(4090) } });
    let r = t.req("PATCH", &path, Some(A), Some(big)).await;
    assert_error(&r, StatusCode::BAD_REQUEST);
    assert!(
        r.body["error"].as_str().unwrap().contains("metadata"),
        "{r:?}"
    );
    let r = t
        .req("PATCH", &path, Some(A), Some(json!({ "metadata": [1] })))
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST);
    let stranger = t.call(A, "1002").await;
    let r = t
        .req(
            "PATCH",
            &format!("/api/v1/conferences/{room}/members/{stranger}"),
            Some(A),
            Some(json!({ "metadata": {} })),
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND);
    let r = t
        .req("PATCH", &path, Some(B), Some(json!({ "metadata": {} })))
        .await;
    assert_error(&r, StatusCode::FORBIDDEN);
    // Cleared.
    let r = t
        .req("PATCH", &path, Some(A), Some(json!({ "metadata": null })))
        .await;
    assert_eq!(r.body["metadata"], Value::Null);
}

/// `GET …/members?metadata.<key>=<value>` keeps the members whose metadata has that key with
/// that value, as the rooms listing does: several filters all hold, a number matches as JSON
/// writes it, a member without metadata never matches, and paging still leads on.
#[tokio::test]
async fn the_members_listing_filters_by_metadata_like_the_rooms_listing() {
    let t = lab().await;
    let room = t.room(A, "filtered").await;
    let (host, guest, other, bare) = (
        t.call(A, "1001").await,
        t.call(A, "1002").await,
        t.call(A, "1003").await,
        t.call(A, "1004").await,
    );
    for (s, metadata) in [
        (&host, json!({ "role": "host", "seat": 1 })),
        (&guest, json!({ "role": "guest", "seat": 2 })),
        (&other, json!({ "role": "guest", "seat": 3 })),
    ] {
        t.joined_with(A, &room, s, json!({ "metadata": metadata }))
            .await;
    }
    t.joined(A, &room, &bare).await;
    let path = format!("/api/v1/conferences/{room}/members");
    let uuids = |r: &common::api::Reply| -> Vec<String> {
        let mut v: Vec<String> = r.body["members"]
            .as_array()
            .unwrap_or_else(|| panic!("{r:?}"))
            .iter()
            .map(|m| m["uuid"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    let sorted = |mut v: Vec<&String>| {
        v.sort();
        v.into_iter().cloned().collect::<Vec<_>>()
    };
    let r = t.get(&path, A).await;
    assert_eq!(uuids(&r).len(), 4, "{r:?}");
    let r = t.get(&format!("{path}?metadata.role=guest"), A).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(uuids(&r), sorted(vec![&guest, &other]), "{r:?}");
    let r = t.get(&format!("{path}?metadata.role=host"), A).await;
    assert_eq!(uuids(&r), sorted(vec![&host]), "{r:?}");
    // AND-ed; a number as JSON writes it.
    let r = t
        .get(&format!("{path}?metadata.role=guest&metadata.seat=3"), A)
        .await;
    assert_eq!(uuids(&r), sorted(vec![&other]), "{r:?}");
    let r = t
        .get(&format!("{path}?metadata.role=host&metadata.seat=3"), A)
        .await;
    assert!(uuids(&r).is_empty(), "{r:?}");
    let r = t.get(&format!("{path}?metadata.role=nobody"), A).await;
    assert!(uuids(&r).is_empty(), "{r:?}");
    // A filtered page may hold fewer members than `limit`; the cursor leads on.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    for _ in 0..10 {
        let r = t
            .get(
                &format!("{path}?metadata.role=guest&limit=1&cursor={cursor}"),
                A,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        seen.extend(uuids(&r));
        cursor = r.body["cursor"].as_str().unwrap().to_owned();
        if cursor.is_empty() {
            break;
        }
    }
    seen.sort();
    assert_eq!(seen, sorted(vec![&guest, &other]));
    // Anything else is refused, naming the parameter.
    let r = t.get(&format!("{path}?role=guest"), A).await;
    assert_error(&r, StatusCode::BAD_REQUEST);
    assert!(
        r.body["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains("unknown field `role`"),
        "{r:?}"
    );
}

/// `unmute_all` / `mute_all`: every member in the room but the moderators and those named in
/// `except`, each switched as its own command would be and announced once as the node
/// confirms; asked again, nothing is left to switch.
#[tokio::test]
async fn a_room_wide_unmute_and_mute_leave_the_moderators_and_those_named() {
    let t = lab().await;
    let room = t.room(A, "moderated").await;
    let (host, guest, quiet) = (
        t.call(A, "1001").await,
        t.call(A, "1002").await,
        t.call(A, "1003").await,
    );
    t.joined_with(A, &room, &host, json!({ "moderator": true }))
        .await;
    t.joined(A, &room, &guest).await;
    t.joined(A, &room, &quiet).await;
    let muted = |members: &[Value], s: &str| {
        members.iter().find(|m| m["uuid"] == s).unwrap()["muted"] == true
    };

    let path = |verb: &str| format!("/api/v1/conferences/{room}/{verb}");
    let r = t
        .post(&path("unmute_all"), A, json!({ "except": [quiet] }))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_eq!(r.body["sessions"], json!([guest]));
    eventually("the guest is unmuted", || async {
        !muted(&t.members(A, &room).await, &guest)
    })
    .await;
    let members = t.members(A, &room).await;
    assert!(
        muted(&members, &host) && muted(&members, &quiet),
        "{members:?}"
    );
    let r = t
        .post(&path("unmute_all"), A, json!({ "except": [quiet] }))
        .await;
    assert_eq!(r.body["sessions"], json!([]), "nothing left to unmute");
    assert_eq!(t.count(A, EventKind::MemberUnmuted).await, 1);

    let r = t.post(&path("mute_all"), A, json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_eq!(r.body["sessions"], json!([guest]));
    eventually("the guest is muted again", || async {
        muted(&t.members(A, &room).await, &guest)
    })
    .await;
    let r = t
        .post(&path("mute_all"), A, json!({ "except": ["not-a-session"] }))
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST);
    assert_error(
        &t.post(&path("mute_all"), B, json!({})).await,
        StatusCode::FORBIDDEN,
    );
}

/// `?ended=true` lists the app's rooms that ended and are still kept, and those alone; another
/// app's never; a value other than true or false is a 400.
#[tokio::test]
async fn ended_rooms_are_listed_apart_from_the_live_ones() {
    let t = lab().await;
    let gone = t.room(A, "gone").await;
    let here = t.room(A, "here").await;
    let theirs = t.room(B, "theirs").await;
    for (app, room) in [(A, &gone), (B, &theirs)] {
        let r = t
            .req(
                "DELETE",
                &format!("/api/v1/conferences/{room}"),
                Some(app),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
    }
    let ids = |r: &common::api::Reply| -> Vec<String> {
        r.body["conferences"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["room_id"].as_str().map(str::to_owned))
            .collect()
    };
    eventually("the room ended", || async {
        ids(&t.get("/api/v1/conferences?ended=true", A).await) == [gone.clone()]
    })
    .await;
    let ended = t.get("/api/v1/conferences?ended=true", A).await;
    assert_eq!(ended.body["conferences"][0]["status"], "terminated");
    assert_eq!(
        ids(&t.get("/api/v1/conferences", A).await),
        vec![here.clone()]
    );
    assert_eq!(
        ids(&t.get("/api/v1/conferences?ended=false", A).await),
        vec![here]
    );
    assert_error(
        &t.get("/api/v1/conferences?ended=maybe", A).await,
        StatusCode::BAD_REQUEST,
    );
}
