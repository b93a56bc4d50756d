//! Dial-out over the lab: `POST /api/v1/conferences/{room_id}/participants`. The simulated node
//! rings a SIP callee and answers it into the room (`sip:busy@…` refuses with 486,
//! `sip:noanswer@…` rings until the timeout), with the event order of a real FreeSWITCH
//! (`fixtures/esl/09_dialout.md`). The same flows on a real node: `tests/live/dialout.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use axum::http::StatusCode;
use serde_json::{Value, json};
use switchyard::conference::EventKind;
use switchyard::server::lab::LabOptions;
use switchyard::store::memory::MemoryStore;

use common::api::{A, B, TestLab, assert_error, eventually, options};

async fn lab_with(options: LabOptions) -> TestLab<MemoryStore> {
    TestLab::start(MemoryStore::new(), options).await
}

async fn dial(t: &TestLab<MemoryStore>, room: &str, body: Value) -> common::api::Reply {
    let path = format!("/api/v1/conferences/{room}/participants");
    loop {
        let r = t.post(&path, A, body.clone()).await;
        if r.status != StatusCode::TOO_MANY_REQUESTS {
            return r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The dial-out webhooks (and the member's join) of one participant, in order.
async fn told(t: &TestLab<MemoryStore>, session: &str) -> Vec<(EventKind, Value)> {
    t.events(A)
        .await
        .into_iter()
        .filter(|e| e.data["uuid"] == session)
        .map(|e| (e.kind, e.data))
        .collect()
}

#[tokio::test]
async fn a_dialed_participant_rings_answers_and_joins_as_asked() {
    let t = lab_with(options()).await;
    let room = t.room(A, "dial-out").await;
    let body = json!({
        "to": "sip:alice@pbx.example.com",
        "caller_id": "+15550001111",
        "caller_id_name": "Switchyard",
        "muted": false,
        "moderator": true,
        "command_uid": "call-alice",
        "metadata": { "role": "guest", "seat": 4 },
    });
    let r = dial(&t, &room, body.clone()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_eq!(r.body["status"], "dialing");
    assert_eq!(r.body["room_id"], room.as_str());
    let session = r.body["uuid"].as_str().unwrap().to_owned();
    let participant = r.body["participant_id"].as_str().unwrap().to_owned();
    assert!(session.ends_with(&participant), "{r:?}");

    eventually("the callee is a member", || async {
        t.members(A, &room)
            .await
            .iter()
            .any(|m| m["uuid"] == session)
    })
    .await;
    let member = t
        .members(A, &room)
        .await
        .into_iter()
        .find(|m| m["uuid"] == session)
        .unwrap();
    assert_eq!(member["muted"], false, "{member}");
    assert_eq!(member["moderator"], true, "{member}");
    assert_eq!(member["did"], "sip:alice@pbx.example.com", "{member}");
    assert_eq!(
        member["metadata"],
        json!({ "role": "guest", "seat": 4 }),
        "{member}"
    );
    // The node has it unmuted too.
    assert_eq!(t.node_member(&room, &session)["flags"]["can_speak"], true);
    let told_all = told(&t, &session).await;
    // The app's data rides with the call from the first ring.
    assert!(
        told_all
            .iter()
            .all(|(_, data)| data["metadata"] == json!({ "role": "guest", "seat": 4 })),
        "{told_all:?}"
    );
    let kinds: Vec<EventKind> = told_all.into_iter().map(|e| e.0).collect();
    assert_eq!(
        kinds,
        [
            EventKind::ParticipantRinging,
            EventKind::ParticipantAnswered,
            EventKind::MemberJoined
        ]
    );
    // It is a session of the app, in the room; the room dials no one any more.
    let s = t.get(&format!("/api/v1/sessions/{session}"), A).await;
    assert_eq!(s.body["room_id"], room.as_str(), "{s:?}");
    let view = t.get(&format!("/api/v1/conferences/{room}"), A).await;
    assert_eq!(view.body["dialing"], json!([]), "{view:?}");
    // A repeat of the request answers with the same participant and dials nothing.
    let again = dial(&t, &room, body).await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    assert_eq!(again.body["status"], "joined");
    assert_eq!(again.body["uuid"], session.as_str());
    assert_eq!(t.members(A, &room).await.len(), 1);
    // The same uid with a malformed destination is bad input, not a repeat (schemathesis found
    // `"to": ""` answered 200 with the first call's participant).
    let mut bad = json!({ "to": "", "command_uid": "call-alice" });
    let r = dial(&t, &room, bad.clone()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
    bad["to"] = json!("sip:alice@pbx.example.com;transport=tcp");
    let r = dial(&t, &room, bad).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
    // The same uid for another callee is not a repeat: refused, and no one is dialed (it was
    // answered 200 with alice's participant before).
    let other = json!({ "to": "sip:bob@pbx.example.com", "command_uid": "call-alice" });
    let r = dial(&t, &room, other).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert_eq!(
        r.body["error"],
        "command_uid was already used for a different request"
    );
    assert_eq!(r.body["detail"]["command_uid"], "call-alice");
    assert_eq!(r.body["detail"]["used_for"], "sip:alice@pbx.example.com");
    let view = t.get(&format!("/api/v1/conferences/{room}"), A).await;
    assert_eq!(view.body["dialing"], json!([]), "{view:?}");
    assert_eq!(t.members(A, &room).await.len(), 1);
}

#[tokio::test]
async fn a_busy_callee_fails_with_its_cause_and_frees_its_place() {
    let t = lab_with(options()).await;
    let room = t
        .room_with(A, json!({ "name": "one-seat", "max_participants": 1 }))
        .await;
    let r = dial(&t, &room, json!({ "to": "sip:busy@pbx.example.com" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let session = r.body["uuid"].as_str().unwrap().to_owned();
    eventually("the dial-out failed", || async {
        !told(&t, &session).await.is_empty()
    })
    .await;
    let events = told(&t, &session).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let (kind, data) = &events[0];
    assert_eq!(*kind, EventKind::ParticipantFailed);
    assert_eq!(data["reason"], "busy");
    assert_eq!(data["hangup_cause"], "USER_BUSY");
    assert!(t.members(A, &room).await.is_empty());
    // The seat it held is free again: a caller joins.
    let caller = t.call(A, "1001").await;
    t.joined(A, &room, &caller).await;
}

#[tokio::test]
async fn an_unanswered_call_holds_a_place_until_it_times_out_and_a_delete_cancels_one() {
    let t = lab_with(options()).await;
    let room = t
        .room_with(A, json!({ "name": "ringing", "max_participants": 1 }))
        .await;
    let r = dial(
        &t,
        &room,
        json!({ "to": "sip:noanswer@pbx.example.com", "timeout": 1 }),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let session = r.body["uuid"].as_str().unwrap().to_owned();
    eventually("it rings", || async {
        t.get(&format!("/api/v1/conferences/{room}"), A).await.body["dialing"][0]["state"]
            == "ringing"
    })
    .await;
    // While it rings it holds the room's one place.
    let caller = t.call(A, "1001").await;
    let full = t.join(A, &caller, &room).await;
    assert_error(&full, StatusCode::CONFLICT);
    eventually("it failed unanswered", || async {
        told(&t, &session)
            .await
            .iter()
            .any(|(k, d)| *k == EventKind::ParticipantFailed && d["reason"] == "no_answer")
    })
    .await;
    assert_eq!(
        told(&t, &session).await.last().unwrap().1["hangup_cause"],
        "NO_ANSWER"
    );

    // A call still ringing when the room is deleted is cancelled (and never joins).
    let r = dial(
        &t,
        &room,
        json!({ "to": "sip:noanswer@pbx.example.com", "timeout": 60 }),
    )
    .await;
    let ringing = r.body["uuid"].as_str().unwrap().to_owned();
    let channel = ringing.split_once('-').unwrap().1.to_owned();
    eventually("it rings", || async {
        told(&t, &ringing)
            .await
            .iter()
            .any(|(k, _)| *k == EventKind::ParticipantRinging)
    })
    .await;
    let gone = t.delete(&format!("/api/v1/conferences/{room}"), A).await;
    assert_eq!(gone.status, StatusCode::OK, "{gone:?}");
    let last = told(&t, &ringing).await.last().cloned().unwrap();
    assert_eq!(last.0, EventKind::ParticipantFailed);
    assert_eq!(last.1["reason"], "cancelled");
    eventually("the node hung the call up", || async {
        t.sim().api(&format!("uuid_exists {channel}")).trim() == "false"
    })
    .await;
}

#[tokio::test]
async fn destinations_and_rooms_are_checked() {
    let mut opts = options();
    opts.dialout = (vec!["pbx.example.com".into()], vec!["+1555".into()]);
    let t = lab_with(opts).await;
    let room = t.room(A, "checked").await;
    // Nothing that changes a dial string's meaning gets through (400).
    for to in [
        "sip:a,b@pbx.example.com",
        "sip:a@pbx.example.com;fs_path=sip:evil",
        "sip:{x=y}a@pbx.example.com",
        "sip:a b@pbx.example.com",
        "12ab",
        "",
    ] {
        let r = dial(&t, &room, json!({ "to": to })).await;
        assert_error(&r, StatusCode::BAD_REQUEST);
    }
    for body in [
        json!({ "to": "+15551234567", "caller_id": "+1 555" }),
        json!({ "to": "+15551234567", "caller_id_name": "Two Words" }),
        json!({ "to": "+15551234567", "timeout": 0 }),
        json!({ "to": "+15551234567", "timeout": 121 }),
        json!({ "to": "+15551234567", "ring": true }),
    ] {
        let r = dial(&t, &room, body).await;
        assert_error(&r, StatusCode::BAD_REQUEST);
    }
    // Not where this app may call (403).
    for to in ["sip:bob@other.example.com", "+4930123456"] {
        let r = dial(&t, &room, json!({ "to": to })).await;
        assert_error(&r, StatusCode::FORBIDDEN);
        assert!(r.body["error"].as_str().unwrap().contains(to), "{r:?}");
    }
    // Another app's room is 403, an unknown one 404; nothing was dialed.
    let theirs = t.room(B, "theirs").await;
    let r = t
        .post(
            &format!("/api/v1/conferences/{theirs}/participants"),
            A,
            json!({ "to": "+15551234567" }),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN);
    let unknown = room.replace(&room[room.len() - 4..], "0000");
    let r = dial(&t, &unknown, json!({ "to": "+15551234567" })).await;
    assert_error(&r, StatusCode::NOT_FOUND);
    assert!(t.events(A).await.iter().all(|e| !matches!(
        e.kind,
        EventKind::ParticipantRinging | EventKind::ParticipantFailed
    )));
    // An allowed number through the node's gateway is dialed.
    let r = dial(&t, &room, json!({ "to": "+15551234567" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
}

/// The names of the channels the simulated node has now (a dial-out's leg is
/// `sofia/<profile>/<destination>`).
fn node_channels(t: &TestLab<MemoryStore>) -> Vec<String> {
    let list: Value = serde_json::from_str(&t.sim().api("show channels as json")).unwrap();
    list["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|row| row["name"].as_str().map(str::to_owned))
        .collect()
}

/// Refused before anything reached the node: no participant, no webhook, no channel.
async fn nothing_dialed(t: &TestLab<MemoryStore>, room: &str, host: &str) {
    let view = t.get(&format!("/api/v1/conferences/{room}"), A).await;
    assert_eq!(view.body["dialing"], json!([]), "{view:?}");
    assert!(t.events(A).await.iter().all(|e| !matches!(
        e.kind,
        EventKind::ParticipantRinging | EventKind::ParticipantFailed
    )));
    let channels = node_channels(t);
    assert!(channels.iter().all(|c| !c.contains(host)), "{channels:?}");
}

#[tokio::test]
async fn any_host_reaches_public_hosts_only_and_listed_ones_by_name() {
    // The lab's default is `dialout_hosts = ["*"]`.
    let t = lab_with(options()).await;
    let room = t.room(A, "public-only").await;
    let node_esl = t.sim().addr().to_string();
    let node_sip = t.sim().node_sip().unwrap().to_string();
    for to in [
        // The node's own SIP port: it arrived as a call on another app's DID (issue 56).
        "sip:100@127.0.0.1:5080".to_owned(),
        "sip:100@169.254.169.254".to_owned(),
        "sip:100@10.0.0.1:5060".to_owned(),
        "sip:100@192.168.1.1".to_owned(),
        // A name resolving to loopback.
        "sip:100@localhost:5080".to_owned(),
        format!("sip:100@{node_esl}"),
        format!("sip:100@{node_sip}"),
    ] {
        let r = dial(&t, &room, json!({ "to": to })).await;
        assert_error(&r, StatusCode::FORBIDDEN);
        assert_eq!(
            r.body["error"],
            "Dial-out destination not allowed: private, loopback or a media node's address",
            "{to}: {r:?}"
        );
    }
    // Numeric spellings of an address are no host at all (400).
    for to in ["sip:100@127.1:5080", "sip:100@2130706433", "sip:100@[::1]"] {
        let r = dial(&t, &room, json!({ "to": to })).await;
        assert_error(&r, StatusCode::BAD_REQUEST);
    }
    nothing_dialed(&t, &room, "127.0.0.1").await;

    // Listed by name, the operator's choice: dialed.
    let mut opts = options();
    opts.dialout.0 = vec!["*".into(), "127.0.0.1:5080".into(), "localhost".into()];
    let t = lab_with(opts).await;
    let room = t.room(A, "listed").await;
    for to in ["sip:100@127.0.0.1:5080", "sip:101@localhost"] {
        let r = dial(&t, &room, json!({ "to": to })).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{to}: {r:?}");
    }
    // Another port of that host is not what was listed.
    let r = dial(&t, &room, json!({ "to": "sip:100@127.0.0.1:5060" })).await;
    assert_error(&r, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_app_presents_only_its_own_caller_ids() {
    let mut opts = options();
    // As `serve` without `caller_ids`: each app's DIDs; app B has none.
    opts.caller_ids = None;
    opts.dids = vec![(
        switchyard::conference::AppId::parse(A.0).unwrap(),
        "+15551230000".into(),
    )];
    let t = lab_with(opts).await;
    let room = t.room(A, "caller-ids").await;
    for caller_id in ["+15550001111", "+1555123000", "15551230000"] {
        let r = dial(
            &t,
            &room,
            json!({ "to": "sip:alice@pbx.example.com", "caller_id": caller_id }),
        )
        .await;
        assert_error(&r, StatusCode::BAD_REQUEST);
        let error = r.body["error"].as_str().unwrap();
        assert!(error.starts_with("Invalid caller_id:"), "{r:?}");
    }
    nothing_dialed(&t, &room, "pbx.example.com").await;
    // Its DID is its own, and without a caller id the node's default is shown.
    for body in [
        json!({ "to": "sip:alice@pbx.example.com", "caller_id": "+15551230000" }),
        json!({ "to": "sip:bob@pbx.example.com" }),
    ] {
        let r = dial(&t, &room, body).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    }
    // App B has no DIDs: it may present none, A's least of all.
    let theirs = t.room(B, "no-caller-ids").await;
    let path = format!("/api/v1/conferences/{theirs}/participants");
    let body = json!({ "to": "sip:carol@pbx.example.com", "caller_id": "+15551230000" });
    let r = t.post(&path, B, body).await;
    assert_error(&r, StatusCode::BAD_REQUEST);
    let r = t
        .post(&path, B, json!({ "to": "sip:carol@pbx.example.com" }))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
}

#[tokio::test]
async fn the_documented_pattern_of_to_is_what_the_api_parses() {
    // No host or number allowed: a destination that parses is 403, one that does not is 400.
    let mut opts = options();
    opts.dialout = (Vec::new(), Vec::new());
    let t = lab_with(opts).await;
    let room = t.room(A, "pattern").await;
    let doc = common::openapi::Doc::generated();
    let pattern = doc.root["components"]["schemas"]["DialBody"]["properties"]["to"]["pattern"]
        .as_str()
        .unwrap();
    let pattern = regex::Regex::new(pattern).unwrap();
    let long_label = "a".repeat(63);
    let long_before = format!("{}.", "b".repeat(189));
    for to in [
        "+15551234567".to_owned(),
        "sip:a@10.0.0.1".to_owned(),
        "sip:a@255.255.255.255:5060".to_owned(),
        "sip:a@256.0.0.1".to_owned(),
        "sip:a@127.1".to_owned(),
        "sip:a@010.0.0.1".to_owned(),
        "sip:a@0x7f.0.0.1".to_owned(),
        "sip:a@2130706433".to_owned(),
        "sip:a@pbx".to_owned(),
        "sip:a@pbx.example.com.".to_owned(),
        "sip:a@1-2.3x.example:5080".to_owned(),
        "sip:a@example.1a".to_owned(),
        "sip:a@-x.example".to_owned(),
        format!("sip:a@{long_label}"),
        format!("sip:a@{long_label}b"),
        format!("sip:a@{long_before}com"),
        format!("sip:a@b{long_before}com"),
    ] {
        let r = dial(&t, &room, json!({ "to": to })).await;
        let parsed = r.status != StatusCode::BAD_REQUEST;
        assert_eq!(pattern.is_match(&to), parsed, "{to}: {r:?}");
        if parsed {
            assert_error(&r, StatusCode::FORBIDDEN);
        }
    }
}
