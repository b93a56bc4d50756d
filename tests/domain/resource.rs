//! The conference resource of seeds 000–003, end to end against the simulator: connect-type
//! ejection, status gating, timeouts (surviving a controller restart, Redis store), talk
//! actions reaching FreeSWITCH, recordings with a downloadable WAV, conferencecalls and kicks,
//! and the `/v1.0` JSON shapes compared with the seeds' examples.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};
use switchyard::conference::EventKind;
use switchyard::esl::{
    Client, ClientConfig, ConferenceAction, Event, EventFormat, EventName, EventSet, EventStream,
    Password,
};
use switchyard::store::memory::MemoryStore;
use switchyard::store::redis::RedisStore;

use common::api::{A, B, TestLab, assert_error, eventually, options};
use common::redis_server::RedisServer;

async fn lab() -> TestLab<MemoryStore> {
    TestLab::start(MemoryStore::new(), options()).await
}

/// Creates a `/v1.0` conference and waits until it is `progressing`.
async fn conference<S: switchyard::store::Store>(t: &TestLab<S>, body: Value) -> Value {
    let r = t.post("/v1.0/conferences", A, body).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_owned();
    eventually("the conference is progressing", || async {
        resource(t, &id).await["status"] == "progressing"
    })
    .await;
    resource(t, &id).await
}

async fn resource<S: switchyard::store::Store>(t: &TestLab<S>, id: &str) -> Value {
    let r = t.get(&format!("/v1.0/conferences/{id}"), A).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    r.body
}

fn talk(text: &str, gender: &str) -> Value {
    json!({
        "id": "00000000-0000-0000-0000-000000000000",
        "next_id": "00000000-0000-0000-0000-000000000000",
        "type": "talk",
        "option": { "text": text, "gender": gender, "language": "en-US" }
    })
}

/// Watches the node as an operator would: conference events and the applications channels run.
async fn watch(t: &TestLab<MemoryStore>) -> (Client, EventStream) {
    let (client, events) = Client::connect(
        &t.sim().addr().to_string(),
        &Password::new("ClueCon").unwrap(),
        ClientConfig::default(),
    )
    .await
    .unwrap();
    let set = EventSet::new()
        .names([EventName::ChannelExecute, EventName::ChannelPark])
        .subclass("conference::maintenance")
        .unwrap();
    client.subscribe(EventFormat::Plain, set).await.unwrap();
    (client, events)
}

async fn until(events: &mut EventStream, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let event = events.recv().await.expect("event stream open");
            if pred(&event) {
                return event;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {what} within 5 s"))
}

fn channel_of(session: &str) -> &str {
    // Session ids are `{prefix}-{channel uuid}`.
    &session[6..]
}

async fn session_room<S: switchyard::store::Store>(t: &TestLab<S>, s: &str) -> Value {
    t.get(&format!("/api/v1/sessions/{s}"), A).await.body["room_id"].clone()
}

#[tokio::test]
async fn a_connect_room_takes_two_and_ends_when_one_leaves() {
    let t = lab().await;
    let room = conference(&t, json!({ "type": "connect", "name": "support" })).await;
    let id = room["id"].as_str().unwrap().to_owned();
    assert_eq!(room["type"], "connect");
    let (alice, bob, carol) = (
        t.call(A, "1001").await,
        t.call(A, "1002").await,
        t.call(A, "1003").await,
    );
    t.joined(A, &id, &alice).await;
    t.joined(A, &id, &bob).await;
    let third = t.join(A, &carol, &id).await;
    assert_error(&third, StatusCode::CONFLICT);
    assert!(
        third.body["error"].as_str().unwrap().contains("two"),
        "{third:?}"
    );
    // Alice hangs up: Bob is ejected (his call lives on, parked) and the room ends.
    let hang = t
        .req("DELETE", &format!("/lab/v1/calls/{alice}"), Some(A), None)
        .await;
    assert!(hang.status.is_success(), "{hang:?}");
    eventually("the room is terminated", || async {
        resource(&t, &id).await["status"] == "terminated"
    })
    .await;
    eventually("bob is out of the room", || async {
        session_room(&t, &bob).await.is_null()
    })
    .await;
    let bob_now = t.get(&format!("/api/v1/sessions/{bob}"), A).await;
    assert_ne!(bob_now.body["state"], "ended", "{bob_now:?}");
    let ended = resource(&t, &id).await;
    assert_ne!(ended["tm_delete"], "9999-01-01 00:00:00.000000");
    assert_eq!(ended["conferencecall_ids"], json!([]));
    let events = t.events(A).await;
    let destroyed: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::Destroyed && e.room.as_str() == id)
        .collect();
    assert_eq!(destroyed.len(), 1);
    assert_eq!(destroyed[0].data["reason"], "partner_left");
    let left: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::MemberLeft)
        .map(|e| (e.data["uuid"].clone(), e.data["reason"].clone()))
        .collect();
    assert!(left.contains(&(json!(alice), json!("hangup"))), "{left:?}");
    assert!(left.contains(&(json!(bob), json!("kicked"))), "{left:?}");
}

#[tokio::test]
async fn nothing_but_reads_while_starting_and_no_joins_while_terminating() {
    let t = lab().await;
    let s = t.call(A, "1001").await;
    // The node holds its events: the control leg's add-member does not arrive.
    t.sim().stall_events(true);
    let r = t
        .post("/v1.0/conferences", A, json!({ "name": "slow" }))
        .await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["status"], "starting");
    let join = t.join(A, &s, &id).await;
    assert_error(&join, StatusCode::CONFLICT);
    assert!(join.body["error"].as_str().unwrap().contains("starting"));
    let play = t
        .post(
            &format!("/api/v1/conferences/{id}/play"),
            A,
            json!({ "urls": ["https://x.example/a.wav"] }),
        )
        .await;
    assert_error(&play, StatusCode::CONFLICT);
    let record = t
        .post(
            &format!("/v1.0/conferences/{id}/recording_start"),
            A,
            json!({}),
        )
        .await;
    assert_error(&record, StatusCode::CONFLICT);
    assert_eq!(resource(&t, &id).await["status"], "starting");
    assert_eq!(resource(&t, &id).await["recording_ids"], json!([]));
    t.sim().stall_events(false);
    eventually("progressing", || async {
        resource(&t, &id).await["status"] == "progressing"
    })
    .await;
    // Deleted while the node's confirmation is held: terminating, and closed to joins.
    t.sim().stall_events(true);
    let del = t
        .req("DELETE", &format!("/v1.0/conferences/{id}"), Some(A), None)
        .await;
    assert_eq!(del.status, StatusCode::OK, "{del:?}");
    assert_eq!(del.body["status"], "terminating");
    assert_error(&t.join(A, &s, &id).await, StatusCode::NOT_FOUND);
    let record = t
        .post(
            &format!("/v1.0/conferences/{id}/recording_start"),
            A,
            json!({}),
        )
        .await;
    assert_error(&record, StatusCode::NOT_FOUND);
    assert_eq!(resource(&t, &id).await["status"], "terminating");
    t.sim().stall_events(false);
    eventually("terminated", || async {
        resource(&t, &id).await["status"] == "terminated"
    })
    .await;
    // Final: still readable, and a second DELETE changes nothing.
    let again = t
        .req("DELETE", &format!("/v1.0/conferences/{id}"), Some(A), None)
        .await;
    assert_eq!(again.body["status"], "terminated");
}

#[tokio::test]
async fn a_timeout_ends_the_room_even_across_a_controller_restart() {
    let server = RedisServer::start();
    let started = Instant::now();
    let first = TestLab::start(RedisStore::connect(&server.url()).await.unwrap(), options()).await;
    let room = conference(&first, json!({ "name": "short", "timeout": 2 })).await;
    let id = room["id"].as_str().unwrap().to_owned();
    assert_eq!(room["timeout"], 2);
    // The controller goes away before the timeout…
    drop(first);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "too slow to test"
    );
    // …and a new one (on the same Redis) carries it out.
    let second = TestLab::start(RedisStore::connect(&server.url()).await.unwrap(), options()).await;
    eventually("the timed-out room is terminated", || async {
        resource(&second, &id).await["status"] == "terminated"
    })
    .await;
    assert!(started.elapsed() >= Duration::from_secs(2));
    let destroyed: Vec<_> = second
        .events(A)
        .await
        .into_iter()
        .filter(|e| e.kind == EventKind::Destroyed)
        .collect();
    assert_eq!(destroyed.len(), 1, "ended once");
    assert_eq!(destroyed[0].data["reason"], "timeout");
    // A room without a timeout is left alone.
    let keep = conference(&second, json!({ "name": "keep" })).await;
    assert_eq!(keep["timeout"], 0);
}

#[tokio::test]
async fn talk_actions_are_spoken_to_the_member_who_joins_and_the_one_who_leaves() {
    let t = lab().await;
    let (_watcher, mut events) = watch(&t).await;
    let room = conference(
        &t,
        json!({
            "name": "greeted",
            "pre_actions": [talk("Hello. Welcome to the test conference.", "female")],
            "post_actions": [talk("The conference has closed. Thank you. Good bye.", "male")],
        }),
    )
    .await;
    let id = room["id"].as_str().unwrap().to_owned();
    let s = t.call(A, "1001").await;
    t.joined(A, &id, &s).await;
    let add = until(&mut events, "add-member", |e| {
        e.action() == Some(ConferenceAction::AddMember)
            && e.unique_id().as_deref() == Some(channel_of(&s))
    })
    .await;
    let member_id = add.header("Member-ID").unwrap().into_owned();
    let said = until(&mut events, "speak-text-member", |e| {
        e.action() == Some(ConferenceAction::SpeakTextMember)
    })
    .await;
    assert_eq!(said.header("Member-ID").unwrap(), member_id.as_str());
    assert_eq!(
        said.header("Text").unwrap(),
        "#slt#Hello. Welcome to the test conference."
    );
    // Leaving: the goodbye is spoken on the way out, then the call is parked.
    let mut r = t.command(A, &s, "conference/leave").await;
    while r.status == StatusCode::TOO_MANY_REQUESTS {
        // join and leave share a cooldown: wait it out as the answer says.
        let wait = r.body["detail"]["retry_after_ms"].as_u64().unwrap();
        tokio::time::sleep(Duration::from_millis(wait)).await;
        r = t.command(A, &s, "conference/leave").await;
    }
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let speak = until(&mut events, "speak", |e| {
        e.name() == &EventName::ChannelExecute
            && e.header("Application").as_deref() == Some("speak")
    })
    .await;
    assert_eq!(speak.unique_id().unwrap(), channel_of(&s));
    assert_eq!(
        speak.header("Application-Data").unwrap(),
        "flite|rms|The conference has closed. Thank you. Good bye."
    );
    let park = until(&mut events, "CHANNEL_PARK", |e| {
        e.name() == &EventName::ChannelPark
    })
    .await;
    assert_eq!(park.unique_id().unwrap(), channel_of(&s));
    eventually("left", || async { session_room(&t, &s).await.is_null() }).await;
}

#[tokio::test]
async fn actions_a_node_cannot_perform_are_refused_at_create() {
    let t = lab().await;
    let cases = [
        (
            json!({"type": "talk", "option": {"text": "Hola", "language": "es-ES"}}),
            "en-US",
        ),
        (json!({"type": "play", "option": {}}), "talk"),
        (
            json!({"type": "talk", "option": {"text": "${system(rm)}"}}),
            "may not contain",
        ),
        (json!({"type": "talk", "option": {}}), "option.text"),
    ];
    for (action, says) in cases {
        for path in ["/v1.0/conferences", "/api/v1/conferences"] {
            let r = t
                .post(
                    path,
                    A,
                    json!({ "name": "x", "pre_actions": [action.clone()] }),
                )
                .await;
            assert_error(&r, StatusCode::BAD_REQUEST);
            assert!(
                r.body["error"].as_str().unwrap().contains(says),
                "{path} {action}: {r:?}"
            );
        }
    }
    let r = t
        .post("/v1.0/conferences", A, json!({ "type": "webinar" }))
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST);
    let r = t
        .post("/v1.0/conferences", A, json!({ "timeout": -1 }))
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST);
    let r = t
        .post("/v1.0/conferences", A, json!({ "timeout": 99_999_999 }))
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST);
    let list = t.get("/v1.0/conferences", A).await;
    assert_eq!(list.body["result"], json!([]), "nothing was created");
}

#[tokio::test]
async fn a_recording_is_a_downloadable_wav_with_its_duration() {
    let t = lab().await;
    let id = t.room(A, "recorded").await;
    let r = t
        .post(
            &format!("/api/v1/conferences/{id}/recording/start"),
            A,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let rec = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["reference_id"], id.as_str());
    let again = t
        .post(
            &format!("/api/v1/conferences/{id}/recording/start"),
            A,
            json!({}),
        )
        .await;
    assert_error(&again, StatusCode::CONFLICT);
    eventually("start-recording confirmed", || async {
        t.get(&format!("/api/v1/recordings/{rec}"), A).await.body["status"] == "recording"
    })
    .await;
    let room = resource(&t, &id).await;
    assert_eq!(room["recording_id"], rec.as_str());
    assert_eq!(room["recording_ids"], json!([rec]));
    // Let the room record some audio.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let file = format!("/api/v1/recordings/{rec}/file");
    assert_error(&t.get(&file, A).await, StatusCode::CONFLICT);
    t.sim().stall_events(true);
    let r = t
        .post(
            &format!("/api/v1/conferences/{id}/recording/stop"),
            A,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    // A second stop before the node confirmed the first: a conflict, and no second `norecord`
    // (which the node would refuse: a 502).
    let again = t
        .post(
            &format!("/api/v1/conferences/{id}/recording/stop"),
            A,
            json!({}),
        )
        .await;
    assert_error(&again, StatusCode::CONFLICT);
    assert_eq!(again.body["error"], "The recording is already stopping");
    t.sim().stall_events(false);
    eventually("stop-recording confirmed", || async {
        t.get(&format!("/api/v1/recordings/{rec}"), A).await.body["status"] == "ended"
    })
    .await;
    let shown = t.get(&format!("/v1.0/recordings/{rec}"), A).await;
    let millis = shown.body["duration_ms"].as_u64().unwrap();
    assert!((400..5000).contains(&millis), "{shown:?}");
    assert_ne!(shown.body["tm_end"], "9999-01-01 00:00:00.000000");
    assert_eq!(
        resource(&t, &id).await["recording_id"],
        "00000000-0000-0000-0000-000000000000"
    );
    // The file: a WAV whose data is as long as the recording.
    let wav = t.raw_get(&file, A).await;
    assert_eq!(wav.0, StatusCode::OK);
    assert_eq!(wav.1.get("content-type").unwrap(), "audio/wav");
    let bytes = wav.2;
    assert_eq!(&bytes[0..4], b"RIFF");
    assert_eq!(&bytes[8..12], b"WAVE");
    let rate = u32::from_le_bytes(bytes[24..28].try_into().unwrap()) as u64;
    let block = u16::from_le_bytes(bytes[32..34].try_into().unwrap()) as u64;
    let data = (bytes.len() - 44) as u64;
    let wav_millis = data / block * 1000 / rate;
    assert!(wav_millis.abs_diff(millis) <= 5, "{wav_millis} vs {millis}");
    // Another app sees nothing of it.
    assert_error(&t.get(&file, B).await, StatusCode::FORBIDDEN);
    assert_error(
        &t.get(&format!("/v1.0/recordings/{rec}"), B).await,
        StatusCode::FORBIDDEN,
    );
    let kinds: Vec<EventKind> = t.events(A).await.iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&EventKind::RecordingStarted));
    assert!(kinds.contains(&EventKind::RecordingFinished));
    // Stopping when nothing records is a conflict.
    let r = t
        .post(
            &format!("/api/v1/conferences/{id}/recording/stop"),
            A,
            json!({}),
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT);
}

#[tokio::test]
async fn deleting_a_room_stops_its_recording() {
    let t = lab().await;
    let id = t.room(A, "recorded").await;
    let r = t
        .post(
            &format!("/api/v1/conferences/{id}/recording/start"),
            A,
            json!({}),
        )
        .await;
    let rec = r.body["id"].as_str().unwrap().to_owned();
    eventually("recording", || async {
        t.get(&format!("/api/v1/recordings/{rec}"), A).await.body["status"] == "recording"
    })
    .await;
    let del = t.delete(&format!("/api/v1/conferences/{id}"), A).await;
    assert_eq!(del.status, StatusCode::OK);
    eventually("the recording ended with the room", || async {
        t.get(&format!("/api/v1/recordings/{rec}"), A).await.body["status"] == "ended"
    })
    .await;
    let wav = t
        .raw_get(&format!("/api/v1/recordings/{rec}/file"), A)
        .await;
    assert_eq!(wav.0, StatusCode::OK);
    assert_eq!(&wav.2[0..4], b"RIFF");
}

#[tokio::test]
async fn a_conferencecall_is_read_and_kicked_by_its_id() {
    let t = lab().await;
    let room = conference(&t, json!({ "name": "kick" })).await;
    let id = room["id"].as_str().unwrap().to_owned();
    let s = t.call(A, "1001").await;
    t.joined(A, &id, &s).await;
    let ccs = resource(&t, &id).await["conferencecall_ids"].clone();
    assert_eq!(ccs.as_array().unwrap().len(), 1);
    let cc = ccs[0].as_str().unwrap().to_owned();
    let path = format!("/v1.0/conferencecalls/{cc}");
    let shown = t.get(&path, A).await;
    assert_eq!(shown.status, StatusCode::OK, "{shown:?}");
    assert_eq!(shown.body["status"], "joined");
    assert_eq!(shown.body["reference_type"], "call");
    assert_eq!(shown.body["reference_id"], s.as_str());
    assert_eq!(shown.body["conference_id"], id.as_str());
    assert_eq!(shown.body["customer_id"], A.0);
    // Another app can neither read nor kick it.
    assert_error(&t.get(&path, B).await, StatusCode::FORBIDDEN);
    assert_error(
        &t.req("DELETE", &path, Some(B), None).await,
        StatusCode::FORBIDDEN,
    );
    let kicked = t.req("DELETE", &path, Some(A), None).await;
    assert_eq!(kicked.status, StatusCode::OK, "{kicked:?}");
    assert_eq!(kicked.body["status"], "leaving");
    eventually("leaved", || async {
        t.get(&path, A).await.body["status"] == "leaved"
    })
    .await;
    let gone = t.get(&format!("/api/v1/conferencecalls/{cc}"), A).await;
    assert_ne!(gone.body["tm_delete"], "9999-01-01 00:00:00.000000");
    assert_eq!(resource(&t, &id).await["conferencecall_ids"], json!([]));
    let left = t
        .events(A)
        .await
        .into_iter()
        .find(|e| e.kind == EventKind::MemberLeft)
        .unwrap();
    assert_eq!(left.data["reason"], "kicked");
    assert_eq!(left.data["conferencecall_id"], cc.as_str());
    // The call lives on, parked.
    assert!(session_room(&t, &s).await.is_null());
    assert_error(
        &t.get("/v1.0/conferencecalls/not-a-uuid", A).await,
        StatusCode::BAD_REQUEST,
    );
    assert_error(
        &t.get(
            "/v1.0/conferencecalls/7cb70145-a20a-4070-8b23-9131410d301d",
            A,
        )
        .await,
        StatusCode::NOT_FOUND,
    );
}

/// The seed's example conference (seed 000), field by field.
const SEED_CONFERENCE: &str = r#"{
    "id": "99accfb7-c0dd-4a54-997d-dd18af7bc280",
    "customer_id": "5e4a0680-804e-11ec-8477-2fea5968d85b",
    "type": "conference",
    "status": "progressing",
    "name": "test conference",
    "detail": "test conference for example.",
    "data": {},
    "timeout": 0,
    "pre_actions": [{"id": "00000000-0000-0000-0000-000000000000", "next_id": "00000000-0000-0000-0000-000000000000", "type": "talk", "option": {"text": "Hello. Welcome to the test conference.", "language": "en-US"}}],
    "post_actions": [{"id": "00000000-0000-0000-0000-000000000000", "next_id": "00000000-0000-0000-0000-000000000000", "type": "talk", "option": {"text": "The conference has closed. Thank you. Good bye.", "language": "en-US"}}],
    "conferencecall_ids": [],
    "recording_id": "00000000-0000-0000-0000-000000000000",
    "recording_ids": [],
    "tm_create": "2022-02-03 06:08:56.672025",
    "tm_update": "2022-08-06 19:11:13.040418",
    "tm_delete": "9999-01-01 00:00:00.000000"
}"#;

/// The seed's example conferencecall (seed 003).
const SEED_CONFERENCECALL: &str = r#"{
    "id": "b8aa51f6-5cc1-40ba-9737-45ca24dab153",
    "customer_id": "5e4a0680-804e-11ec-8477-2fea5968d85b",
    "conference_id": "99accfb7-c0dd-4a54-997d-dd18af7bc280",
    "reference_type": "call",
    "reference_id": "7cb70145-a20a-4070-8b23-9131410d301d",
    "status": "leaved",
    "tm_create": "2022-08-06 16:57:12.247946",
    "tm_update": "2022-08-06 19:09:47.349667",
    "tm_delete": "9999-01-01 00:00:00.000000"
}"#;

/// Same fields in the same order, each of the same JSON type; timestamps in the seed's format.
fn same_shape(ours: &Value, seed: &Value) {
    let (o, s) = (ours.as_object().unwrap(), seed.as_object().unwrap());
    let ours_keys: Vec<&String> = o.keys().collect();
    let seed_keys: Vec<&String> = s.keys().collect();
    assert_eq!(ours_keys, seed_keys);
    let stamp = regex::Regex::new(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$").unwrap();
    for (k, v) in s {
        let mine = &o[k];
        let kind = |v: &Value| std::mem::discriminant(v);
        assert_eq!(kind(mine), kind(v), "{k}: {mine} vs {v}");
        if k.starts_with("tm_") {
            assert!(stamp.is_match(mine.as_str().unwrap()), "{k}: {mine}");
        }
    }
}

#[tokio::test]
async fn v1_0_shapes_match_the_seeds_examples() {
    let t = lab().await;
    let seed: Value = serde_json::from_str(SEED_CONFERENCE).unwrap();
    let mut body = json!({});
    for k in [
        "type",
        "name",
        "detail",
        "data",
        "timeout",
        "pre_actions",
        "post_actions",
    ] {
        body[k] = seed[k].clone();
    }
    let created = t.post("/v1.0/conferences", A, body).await;
    assert_eq!(created.status, StatusCode::OK, "{created:?}");
    same_shape(&created.body, &seed);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let room = conference_after(&t, &id).await;
    same_shape(&room, &seed);
    for k in [
        "type",
        "name",
        "detail",
        "data",
        "timeout",
        "pre_actions",
        "post_actions",
    ] {
        assert_eq!(room[k], seed[k], "{k}");
    }
    assert_eq!(room["customer_id"], A.0);
    assert_eq!(room["status"], "progressing");
    assert_eq!(room["tm_delete"], "9999-01-01 00:00:00.000000");
    assert_eq!(room["recording_id"], "00000000-0000-0000-0000-000000000000");
    // The conferencecall of a participant.
    let s = t.call(A, "1001").await;
    t.joined(A, &id, &s).await;
    let cc = resource(&t, &id).await["conferencecall_ids"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let call = t.get(&format!("/v1.0/conferencecalls/{cc}"), A).await;
    same_shape(
        &call.body,
        &serde_json::from_str(SEED_CONFERENCECALL).unwrap(),
    );
    assert_eq!(call.body["tm_delete"], "9999-01-01 00:00:00.000000");
    // The /api/v1 room carries the same resource fields.
    let v1 = t.get(&format!("/api/v1/conferences/{id}"), A).await;
    for k in [
        "type",
        "status",
        "detail",
        "timeout",
        "pre_actions",
        "post_actions",
        "recording_ids",
    ] {
        assert_eq!(v1.body[k], room[k], "{k}");
    }
    assert_eq!(v1.body["conferencecall_ids"], json!([cc]));
}

async fn conference_after(t: &TestLab<MemoryStore>, id: &str) -> Value {
    eventually("progressing", || async {
        resource(t, id).await["status"] == "progressing"
    })
    .await;
    resource(t, id).await
}

#[tokio::test]
async fn v1_0_lists_page_with_page_size_and_page_token() {
    let t = lab().await;
    let mut made = Vec::new();
    for i in 0..3 {
        let r = t
            .post(
                "/v1.0/conferences",
                A,
                json!({ "name": format!("room {i}") }),
            )
            .await;
        made.push(r.body["id"].as_str().unwrap().to_owned());
    }
    // Nameless rooms may be many.
    for _ in 0..2 {
        let r = t.post("/v1.0/conferences", A, json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        made.push(r.body["id"].as_str().unwrap().to_owned());
    }
    t.post("/v1.0/conferences", B, json!({ "name": "other" }))
        .await;
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let r = t
            .get(
                &format!("/v1.0/conferences?page_size=2&page_token={token}"),
                A,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let result = r.body["result"].as_array().unwrap();
        assert!(result.len() <= 2);
        seen.extend(result.iter().map(|c| c["id"].as_str().unwrap().to_owned()));
        token = r.body["next_page_token"].as_str().unwrap().to_owned();
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(seen, made);
    assert_error(
        &t.get("/v1.0/conferences?page_token=forged", A).await,
        StatusCode::BAD_REQUEST,
    );
    assert_error(
        &t.get("/v1.0/conferences?page_size=0", A).await,
        StatusCode::BAD_REQUEST,
    );
    // Another app's conference: forbidden, an unknown one: not found.
    let theirs = t.get("/v1.0/conferences", B).await.body["result"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_error(
        &t.get(&format!("/v1.0/conferences/{theirs}"), A).await,
        StatusCode::FORBIDDEN,
    );
    assert_error(
        &t.delete(&format!("/v1.0/conferences/{theirs}"), A).await,
        StatusCode::FORBIDDEN,
    );
    assert_error(
        &t.req("GET", "/v1.0/conferences", None, None).await,
        StatusCode::UNAUTHORIZED,
    );
}

/// New rooms go to the node with the fewest live rooms, as the store counts them (so every
/// controller instance places alike, and ended rooms free their node).
#[tokio::test]
async fn rooms_are_placed_on_the_least_loaded_node() {
    let mut opts = options();
    opts.nodes = 2;
    let t = TestLab::start(MemoryStore::new(), opts).await;
    let prefix = |id: &str| id[..5].to_owned();
    let mut made = Vec::new();
    for i in 0..4 {
        made.push(t.room(A, &format!("p{i}")).await);
    }
    let on = |node: &str, ids: &[String]| ids.iter().filter(|id| prefix(id) == node).count();
    assert_eq!((on("lab01", &made), on("lab02", &made)), (2, 2));
    // Two rooms of lab01 end: the next two go there.
    for id in made.iter().filter(|id| prefix(id) == "lab01") {
        let r = t.delete(&format!("/api/v1/conferences/{id}"), A).await;
        assert_eq!(r.status, StatusCode::OK);
        eventually("terminated", || async {
            resource(&t, id).await["status"] == "terminated"
        })
        .await;
    }
    let next = vec![t.room(A, "q0").await, t.room(A, "q1").await];
    assert_eq!(on("lab01", &next), 2, "{next:?}");
}
