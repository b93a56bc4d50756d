//! Webhooks end to end in the lab: requests to the REST API, confirmations from the simulated
//! node, and every resulting domain event delivered, signed, to a real receiver.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::webhook_support;

use std::collections::HashMap;
use std::time::Duration;

use axum::http::StatusCode;
use common::api::{A, TestLab, options};
use switchyard::conference::AppId;
use switchyard::store::memory::MemoryStore;
use switchyard::webhook::sign::Signer;
use webhook_support::{Receiver, secret};

#[tokio::test]
async fn lab_events_reach_the_receiver_signed_and_in_room_order() {
    let receiver = Receiver::ok().await;
    let mut opts = options();
    opts.webhook = Some((receiver.url(), Signer::parse(&secret()).unwrap()));
    let t = TestLab::start(MemoryStore::new(), opts).await;

    let room = t.room(A, "standup").await;
    let session = t.call(A, "1001").await;
    t.joined(A, &room, &session).await;
    let r = t.command(A, &session, "conference/unmute").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let app = AppId::parse(A.0).unwrap();
    common::api::eventually("unmuted", || async {
        t.count(A, switchyard::conference::EventKind::MemberUnmuted)
            .await
            > 0
    })
    .await;

    let outbox = t.events(A).await;
    let got = receiver
        .wait_delivered(outbox.len(), Duration::from_secs(10))
        .await;
    assert_eq!(got.len(), outbox.len());
    let webhook = standardwebhooks::Webhook::new(&secret()).unwrap();
    let mut last_seq: HashMap<String, u64> = HashMap::new();
    for r in &got {
        webhook.verify(&r.body, &r.headers).expect("signed");
        assert_eq!(r.json["app_id"], app.as_str());
        let prev = last_seq.insert(r.room().to_owned(), r.seq());
        assert!(
            prev.is_none_or(|p| p < r.seq()),
            "room order: {prev:?} then {}",
            r.seq()
        );
    }
    let types: Vec<&str> = got.iter().filter_map(|r| r.json["type"].as_str()).collect();
    for kind in [
        "conference.created",
        "conference.member.joined",
        "conference.member.unmuted",
    ] {
        assert!(types.contains(&kind), "{kind} missing from {types:?}");
    }
    // The same events, in the same order, as the outbox holds.
    let sent: Vec<&str> = outbox.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(types, sent);
}

/// Every event type, each set off by its own trigger through the API and the simulated node,
/// arrives signed, with the documented data and the room's `seq`.
#[tokio::test]
async fn every_event_type_arrives_for_its_trigger() {
    use common::api::{assert_error, eventually};
    use serde_json::json;
    use switchyard::conference::EventKind as K;

    let receiver = Receiver::ok().await;
    let mut opts = options();
    opts.webhook = Some((receiver.url(), Signer::parse(&secret()).unwrap()));
    opts.join_timeout = Duration::from_millis(500);
    let t = TestLab::start(MemoryStore::new(), opts).await;
    let count = |k| t.count(A, k);

    // created, progressing
    let room = t.room(A, "everything").await;
    // member.joining, member.joined, muted / unmuted
    let s = t.call(A, "1001").await;
    t.joined(A, &room, &s).await;
    assert_eq!(
        t.command(A, &s, "conference/unmute").await.status,
        StatusCode::ACCEPTED
    );
    eventually("unmuted", || async { count(K::MemberUnmuted).await == 1 }).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // the mute cooldown of the test lab
    assert_eq!(
        t.command(A, &s, "conference/mute").await.status,
        StatusCode::ACCEPTED
    );
    eventually("muted", || async { count(K::MemberMuted).await == 1 }).await;
    // play.started, paused, resumed, volume_changed, stopped; then a play that finishes
    let play = format!("/api/v1/conferences/{room}/play");
    let urls = json!(["https://cdn.example.com/a.wav"]);
    assert_eq!(
        t.post(&play, A, json!({ "urls": urls })).await.status,
        StatusCode::ACCEPTED
    );
    for verb in ["pause", "pause"] {
        tokio::time::sleep(Duration::from_millis(100)).await; // conference_control cooldown
        let r = t
            .post(&format!("/api/v1/conferences/{room}/{verb}"), A, json!({}))
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = t
        .post(
            &format!("/api/v1/conferences/{room}/volume"),
            A,
            json!({ "volume": -6 }),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = t
        .post(&format!("/api/v1/conferences/{room}/stop"), A, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    tokio::time::sleep(Duration::from_millis(300)).await; // conf_play cooldown
    assert_eq!(
        t.post(&play, A, json!({ "urls": urls })).await.status,
        StatusCode::ACCEPTED
    );
    eventually("play.finished", || async {
        count(K::PlayFinished).await == 1
    })
    .await;
    // recording.started, recording.finished
    let rec = format!("/api/v1/conferences/{room}/recording");
    assert_eq!(
        t.post(&format!("{rec}/start"), A, json!({})).await.status,
        StatusCode::ACCEPTED
    );
    eventually("recording", || async {
        count(K::RecordingStarted).await == 1
    })
    .await;
    assert_eq!(
        t.post(&format!("{rec}/stop"), A, json!({})).await.status,
        StatusCode::ACCEPTED
    );
    eventually("recorded", || async {
        count(K::RecordingFinished).await == 1
    })
    .await;
    // member.leaving, member.left
    tokio::time::sleep(Duration::from_millis(300)).await; // the join/leave cooldown
    assert_eq!(
        t.command(A, &s, "conference/leave").await.status,
        StatusCode::ACCEPTED
    );
    eventually("left", || async { count(K::MemberLeft).await == 1 }).await;
    // member.join_failed: the call is gone on the node before its join reaches it (its hangup
    // held back), so the node refuses the transfer. (Dropping add-member is no longer enough:
    // the member really joins on the node, as on FreeSWITCH, and the controller learns it.)
    let late = t.call(A, "1002").await;
    t.sim().stall_events(true);
    t.sim().api(&format!("uuid_kill {}", &late[6..]));
    let r = t.join(A, &late, &room).await;
    t.sim().stall_events(false);
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    eventually("join_failed", || async {
        count(K::MemberJoinFailed).await == 1
    })
    .await;
    // destroyed, terminating, terminated
    let del = t.delete(&format!("/api/v1/conferences/{room}"), A).await;
    assert_eq!(del.status, StatusCode::OK);
    assert_error(
        &t.get(&format!("/api/v1/conferences/{room}"), A).await,
        StatusCode::NOT_FOUND,
    );
    eventually("terminated", || async { count(K::Terminated).await == 1 }).await;

    let outbox = t.events(A).await;
    let got = receiver
        .wait_delivered(outbox.len(), Duration::from_secs(10))
        .await;
    assert_eq!(got.len(), outbox.len());
    let webhook = standardwebhooks::Webhook::new(&secret()).unwrap();
    for (r, e) in got.iter().zip(&outbox) {
        webhook.verify(&r.body, &r.headers).expect("signed");
        assert_eq!(r.json["type"], e.kind.as_str());
        assert_eq!(r.seq(), e.seq, "the room's seq at the change");
        assert_eq!(r.json["room_id"], room.as_str());
    }
    // Each type with the fields the contract (seed 004) and docs/api.md promise.
    let documented: &[(&str, &[&str])] = &[
        ("conference.created", &["room_id", "name"]),
        ("conference.progressing", &["room_id", "status"]),
        (
            "conference.member.joining",
            &["room_id", "uuid", "conferencecall_id"],
        ),
        (
            "conference.member.joined",
            &[
                "room_id",
                "uuid",
                "did",
                "caller_id",
                "muted",
                "conferencecall_id",
            ],
        ),
        ("conference.member.unmuted", &["room_id", "uuid", "muted"]),
        ("conference.member.muted", &["room_id", "uuid", "muted"]),
        (
            "conference.play.started",
            &["room_id", "urls", "operation_id"],
        ),
        ("conference.play.paused", &["room_id", "operation_id"]),
        ("conference.play.resumed", &["room_id", "operation_id"]),
        (
            "conference.play.volume_changed",
            &["room_id", "volume", "operation_id"],
        ),
        ("conference.play.stopped", &["room_id", "operation_id"]),
        (
            "conference.play.finished",
            &["room_id", "operation_id", "urls"],
        ),
        (
            "conference.recording.started",
            &["room_id", "recording_id", "status"],
        ),
        (
            "conference.recording.finished",
            &["room_id", "recording_id", "duration_ms"],
        ),
        ("conference.member.leaving", &["room_id", "uuid"]),
        ("conference.member.left", &["room_id", "uuid", "reason"]),
        ("conference.member.join_failed", &["room_id", "uuid"]),
        ("conference.destroyed", &["room_id", "reason"]),
        ("conference.terminating", &["room_id", "status"]),
        ("conference.terminated", &["room_id", "status"]),
    ];
    for (kind, fields) in documented {
        let r = got
            .iter()
            .find(|r| r.json["type"] == *kind)
            .unwrap_or_else(|| panic!("no {kind}"));
        for f in *fields {
            let v = &r.json["data"][f];
            assert!(!v.is_null(), "{kind} lacks data.{f}: {}", r.json);
        }
    }
    let find = |kind: &str| got.iter().find(|r| r.json["type"] == kind).unwrap();
    assert_eq!(
        find("conference.play.volume_changed").json["data"]["volume"],
        -6
    );
    assert_eq!(
        find("conference.member.left").json["data"]["reason"],
        "left"
    );
    assert_eq!(
        find("conference.destroyed").json["data"]["reason"],
        "deleted"
    );
    assert_eq!(
        find("conference.member.join_failed").json["data"]["uuid"],
        late.as_str()
    );
    assert!(
        find("conference.recording.finished").json["data"]["duration_ms"]
            .as_u64()
            .is_some()
    );
    // Every event kind the controller knows was covered.
    use switchyard::conference::EventKind;
    let all = [
        EventKind::Created,
        EventKind::Destroyed,
        EventKind::Progressing,
        EventKind::Terminating,
        EventKind::Terminated,
        EventKind::MemberJoining,
        EventKind::MemberJoined,
        EventKind::MemberJoinFailed,
        EventKind::MemberLeaving,
        EventKind::MemberLeft,
        EventKind::MemberMuted,
        EventKind::MemberUnmuted,
        EventKind::PlayStarted,
        EventKind::PlayFinished,
        EventKind::PlayPaused,
        EventKind::PlayResumed,
        EventKind::PlayStopped,
        EventKind::PlayVolumeChanged,
        EventKind::RecordingStarted,
        EventKind::RecordingFinished,
    ];
    for k in all {
        assert!(
            documented.iter().any(|(n, _)| *n == k.as_str()),
            "{} not covered",
            k.as_str()
        );
    }
}

/// The delivery log shows every attempt; a dead-lettered message is sent again on request,
/// with its original `webhook-id`, once.
#[tokio::test]
async fn the_delivery_log_and_retrying_a_dead_letter() {
    use common::api::{B, assert_error};
    use serde_json::json;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use webhook_support::{Receiver, any_port};

    let refuse = Arc::new(AtomicBool::new(true));
    let gate = refuse.clone();
    // The receiver refuses (400: not retried) until told otherwise.
    let receiver = Receiver::start(any_port(), move |_, _| {
        if gate.load(Ordering::SeqCst) {
            (400, None)
        } else {
            (200, None)
        }
    })
    .await;
    let mut opts = options();
    opts.webhook = Some((receiver.url(), Signer::parse(&secret()).unwrap()));
    let t = TestLab::start(MemoryStore::new(), opts).await;
    let r = t
        .post("/api/v1/conferences", A, json!({ "name": "hooked" }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let created_id = |log: &serde_json::Value| {
        log["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["type"] == "conference.created")
            .cloned()
    };
    common::api::eventually("the refusal is logged", || async {
        let log = t.get("/api/v1/webhooks/deliveries", A).await.body;
        created_id(&log).is_some_and(|d| d["outcome"] == "dead_letter")
    })
    .await;
    let log = t.get("/api/v1/webhooks/deliveries", A).await.body;
    let dead = created_id(&log).unwrap();
    assert_eq!(dead["status"], 400);
    assert_eq!(dead["attempt"], 1);
    assert_eq!(dead["error"], "HTTP 400");
    let id = dead["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("msg_"));
    // Another app neither sees nor retries it.
    assert_eq!(
        t.get("/api/v1/webhooks/deliveries", B).await.body["deliveries"],
        json!([])
    );
    let retry = format!("/api/v1/webhooks/deliveries/{id}/retry");
    assert_error(&t.post(&retry, B, json!({})).await, StatusCode::NOT_FOUND);
    // The receiver is fixed; the message is sent again with the same id.
    refuse.store(false, Ordering::SeqCst);
    let r = t.post(&retry, A, json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_eq!(r.body["status"], "queued");
    common::api::eventually("delivered this time", || async {
        receiver.delivered().iter().any(|d| d.id() == id)
    })
    .await;
    let again = receiver
        .delivered()
        .into_iter()
        .find(|d| d.id() == id)
        .unwrap();
    assert_eq!(again.json["type"], "conference.created");
    assert_eq!(again.json["id"], id.as_str());
    // The message's newest entry (other events of the room may be logged after it).
    common::api::eventually("the success is logged", || async {
        let log = t.get("/api/v1/webhooks/deliveries", A).await.body;
        let newest = log["deliveries"]
            .as_array()
            .and_then(|all| all.iter().find(|d| d["id"] == id.as_str()).cloned());
        newest.is_some_and(|d| d["outcome"] == "delivered")
    })
    .await;
    // Once only; an unknown id is not found.
    assert_error(&t.post(&retry, A, json!({})).await, StatusCode::CONFLICT);
    assert_error(
        &t.post(
            "/api/v1/webhooks/deliveries/msg_999999-0/retry",
            A,
            json!({}),
        )
        .await,
        StatusCode::NOT_FOUND,
    );
    // The log pages, newest first.
    let first = t.get("/api/v1/webhooks/deliveries?limit=1", A).await.body;
    assert_eq!(first["deliveries"].as_array().unwrap().len(), 1);
    let cursor = first["cursor"].as_str().unwrap();
    assert!(!cursor.is_empty());
    let next = t
        .get(
            &format!("/api/v1/webhooks/deliveries?limit=1&cursor={cursor}"),
            A,
        )
        .await
        .body;
    assert_ne!(next["deliveries"][0], first["deliveries"][0]);
    assert_error(
        &t.get("/api/v1/webhooks/deliveries?cursor=bogus", A).await,
        StatusCode::BAD_REQUEST,
    );
}
