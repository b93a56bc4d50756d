//! The participant controls over the lab: the member switches beside mute (deaf/undeaf,
//! hold/unhold) are sent to the node, confirmed by its events (webhooks), judged against the
//! last command asked and held to their own cooldowns, and a hold keeps the member's mute state
//! for when it comes back; a room's max_participants; a member's keypresses; recording
//! pause/resume.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use axum::http::StatusCode;
use serde_json::{Value, json};
use switchyard::conference::EventKind;
use switchyard::store::memory::MemoryStore;

use common::api::{A, B, TestLab, assert_error, eventually, options};

async fn lab() -> TestLab<MemoryStore> {
    TestLab::start(MemoryStore::new(), options()).await
}

/// The session's member as the API lists it.
async fn member(t: &TestLab<MemoryStore>, room: &str) -> Value {
    t.members(A, room)
        .await
        .first()
        .cloned()
        .unwrap_or(Value::Null)
}

/// The app's events of these kinds, in order.
async fn told(t: &TestLab<MemoryStore>, kinds: &[EventKind]) -> Vec<EventKind> {
    let events = t.events(A).await;
    events
        .iter()
        .map(|e| e.kind)
        .filter(|k| kinds.contains(k))
        .collect()
}

/// The session's flags as the (simulated) node lists its member.
fn on_node(t: &TestLab<MemoryStore>, room: &str, session: &str) -> Value {
    t.node_member(room, session)["flags"].clone()
}

#[tokio::test]
async fn deaf_and_undeaf_are_confirmed_by_the_node() {
    let t = lab().await;
    let room = t.room(A, "quiet").await;
    let s = t.call(A, "1001").await;
    // Not in a conference: 404.
    for verb in ["conference/deaf", "conference/undeaf"] {
        assert_error(&t.command(A, &s, verb).await, StatusCode::NOT_FOUND);
    }
    t.joined(A, &room, &s).await;
    assert_eq!(member(&t, &room).await["deaf"], false);
    assert_error(
        &t.command(A, &s, "conference/undeaf").await,
        StatusCode::CONFLICT,
    );
    let r = t.command(A, &s, "conference/deaf").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_eq!(r.body, json!({ "status": "deaf", "room_id": room }));
    eventually("deaf-member confirms", || async {
        member(&t, &room).await["deaf"] == true
    })
    .await;
    assert_eq!(on_node(&t, &room, &s)["can_hear"], false);
    // Deaf is not mute: the member is still as muted as it was, and mute has its own window.
    assert_eq!(member(&t, &room).await["muted"], true);
    let r = t.command(A, &s, "conference/deaf").await;
    assert_error(&r, StatusCode::CONFLICT);
    assert_eq!(r.body["error"], "Member is already deaf", "{r:?}");
    let r = t.command(A, &s, "conference/undeaf").await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body["detail"]["group"], "conference_deaf", "{r:?}");
    assert_eq!(
        t.command(A, &s, "conference/unmute").await.status,
        StatusCode::ACCEPTED
    );
    let r = t.patiently(A, &s, "conference/undeaf").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_eq!(r.body["status"], "undeaf");
    eventually("undeaf-member confirms", || async {
        let m = member(&t, &room).await;
        m["deaf"] == false && m["muted"] == false
    })
    .await;
    assert_eq!(on_node(&t, &room, &s)["can_hear"], true);
    let events = t.events(A).await;
    let deaf: Vec<&Value> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::MemberDeaf | EventKind::MemberUndeaf))
        .map(|e| &e.data)
        .collect();
    assert_eq!(deaf.len(), 2, "{deaf:?}");
    assert_eq!(
        (deaf[0]["deaf"].clone(), deaf[1]["deaf"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(deaf[0]["uuid"], s.as_str());
    // Another app's session is not its to touch.
    assert_error(
        &t.command(B, &s, "conference/deaf").await,
        StatusCode::FORBIDDEN,
    );
}

#[tokio::test]
async fn a_held_member_comes_back_as_muted_as_it_was_asked_to_be() {
    let t = lab().await;
    let room = t.room(A, "holding").await;
    let s = t.call(A, "1001").await;
    t.joined(A, &room, &s).await;
    assert_eq!(
        t.command(A, &s, "conference/unmute").await.status,
        StatusCode::ACCEPTED
    );
    eventually("unmuted", || async {
        member(&t, &room).await["muted"] == false
    })
    .await;
    // Music that is not an http(s) URL never reaches the node.
    let hold = format!("/api/v1/sessions/{s}/commands/conference/hold");
    for music in [
        "file:///etc/passwd",
        "local_stream://moh",
        "https://x.test/a b.wav",
    ] {
        let r = t.post(&hold, A, json!({ "music": music })).await;
        assert_error(&r, StatusCode::BAD_REQUEST);
        assert_eq!(
            r.body["error"], "Invalid music: an http or https URL",
            "{r:?}"
        );
    }
    let r = t.post(&hold, A, json!({ "mystery": 1 })).await;
    assert_error(&r, StatusCode::BAD_REQUEST);
    assert_eq!(on_node(&t, &room, &s)["hold"], false);
    let r = t.command(A, &s, "conference/hold").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_eq!(r.body, json!({ "status": "held", "room_id": room }));
    eventually("hold-member confirms", || async {
        member(&t, &room).await["held"] == true
    })
    .await;
    assert_eq!(on_node(&t, &room, &s)["hold"], true);
    assert_error(
        &t.command(A, &s, "conference/hold").await,
        StatusCode::CONFLICT,
    );
    // Muted while held: it comes back muted; the hold did not touch its mute state.
    assert_eq!(member(&t, &room).await["muted"], false);
    let r = t.patiently(A, &s, "conference/mute").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    eventually("muted while held", || async {
        member(&t, &room).await["muted"] == true
    })
    .await;
    let r = t.patiently(A, &s, "conference/unhold").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_eq!(r.body["status"], "unheld");
    eventually("unhold-member confirms", || async {
        member(&t, &room).await["held"] == false
    })
    .await;
    assert_eq!(member(&t, &room).await["muted"], true);
    let flags = on_node(&t, &room, &s);
    assert_eq!(
        (flags["hold"].clone(), flags["can_speak"].clone()),
        (json!(false), json!(false))
    );
    use EventKind::*;
    let told = told(&t, &[MemberHeld, MemberUnheld, MemberMuted, MemberUnmuted]).await;
    assert_eq!(
        told,
        [
            EventKind::MemberUnmuted,
            EventKind::MemberHeld,
            EventKind::MemberMuted,
            EventKind::MemberUnheld
        ]
    );
}

#[tokio::test]
async fn a_full_room_refuses_a_join_until_a_place_is_free() {
    let t = lab().await;
    for bad in [json!(-1), json!(10_001), json!("2"), json!(1.5)] {
        let r = t
            .post(
                "/api/v1/conferences",
                A,
                json!({ "name": "bad-max", "max_participants": bad }),
            )
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST);
    }
    let r = t
        .post(
            "/api/v1/conferences",
            A,
            json!({ "name": "small", "max_participants": 2 }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let room = r.body["room_id"].as_str().unwrap().to_owned();
    eventually("the room is progressing", || async {
        t.get(&format!("/v1.0/conferences/{room}"), A).await.body["status"] == "progressing"
    })
    .await;
    let calls = [
        t.call(A, "1001").await,
        t.call(A, "1002").await,
        t.call(A, "1003").await,
    ];
    t.joined(A, &room, &calls[0]).await;
    // A join on its way holds its place too.
    assert_eq!(
        t.join(A, &calls[1], &room).await.status,
        StatusCode::ACCEPTED
    );
    let r = t.join(A, &calls[2], &room).await;
    assert_error(&r, StatusCode::CONFLICT);
    assert_eq!(
        r.body["error"], "The room is full (max_participants 2)",
        "{r:?}"
    );
    assert_eq!(t.count(A, EventKind::MemberJoining).await, 2);
    // One leaves: the place is free once the node confirms it.
    eventually("the second join confirms", || async {
        t.members(A, &room).await.len() == 2
    })
    .await;
    assert_eq!(
        t.patiently(A, &calls[0], "conference/leave").await.status,
        StatusCode::ACCEPTED
    );
    eventually("del-member confirms", || async {
        t.members(A, &room).await.len() == 1
    })
    .await;
    let r = t.join(A, &calls[2], &room).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
}

#[tokio::test]
async fn a_members_keypresses_are_announced_and_a_parked_callers_are_not() {
    let t = lab().await;
    let room = t.room(A, "keys").await;
    let (s, parked) = (t.call(A, "1001").await, t.call(A, "1002").await);
    t.joined(A, &room, &s).await;
    let channel = |id: &str| id.split_once('-').unwrap().1.to_owned();
    assert!(t.sim().caller_dtmf(&channel(&parked), '9'));
    for digit in ['1', '#', '*'] {
        assert!(t.sim().caller_dtmf(&channel(&s), digit));
    }
    eventually("three digits announced", || async {
        t.count(A, EventKind::MemberDtmf).await == 3
    })
    .await;
    let digits: Vec<(Value, Value)> = t
        .events(A)
        .await
        .iter()
        .filter(|e| e.kind == EventKind::MemberDtmf)
        .map(|e| (e.data["digit"].clone(), e.data["uuid"].clone()))
        .collect();
    assert_eq!(
        digits,
        ["1", "#", "*"].map(|d| (json!(d), json!(s))).to_vec(),
        "in order, the member's only"
    );
    // The members list is unchanged by keypresses.
    assert_eq!(t.members(A, &room).await.len(), 1);
}

#[tokio::test]
async fn a_recording_pauses_and_resumes_as_the_node_confirms() {
    let t = lab().await;
    let room = t.room(A, "taped").await;
    let path = |verb: &str| format!("/api/v1/conferences/{room}/recording/{verb}");
    // Nothing to pause yet.
    assert_error(
        &t.post(&path("pause"), A, json!({})).await,
        StatusCode::CONFLICT,
    );
    let r = t.post(&path("start"), A, json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let rec = r.body["id"].as_str().unwrap().to_owned();
    let status =
        || async { t.get(&format!("/api/v1/recordings/{rec}"), A).await.body["status"].clone() };
    eventually("recording", || async { status().await == "recording" }).await;
    assert_error(
        &t.post(&path("resume"), A, json!({})).await,
        StatusCode::CONFLICT,
    );
    let r = t.post(&path("pause"), A, json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_eq!(r.body["id"], rec.as_str());
    eventually("pause-recording confirms", || async {
        status().await == "paused"
    })
    .await;
    let r = t.post(&path("pause"), A, json!({})).await;
    assert_error(&r, StatusCode::CONFLICT);
    assert_eq!(r.body["error"], "The recording is already paused", "{r:?}");
    // Another app's room is not its to pause.
    assert_error(
        &t.post(&path("resume"), B, json!({})).await,
        StatusCode::FORBIDDEN,
    );
    let r = t.post(&path("resume"), A, json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    eventually("resume-recording confirms", || async {
        status().await == "recording"
    })
    .await;
    let r = t.post(&path("stop"), A, json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    eventually("ended", || async { status().await == "ended" }).await;
    let told = told(
        &t,
        &[
            EventKind::RecordingStarted,
            EventKind::RecordingPaused,
            EventKind::RecordingResumed,
            EventKind::RecordingFinished,
        ],
    )
    .await;
    use EventKind::*;
    assert_eq!(
        told,
        [
            RecordingStarted,
            RecordingPaused,
            RecordingResumed,
            RecordingFinished
        ]
    );
}

#[tokio::test]
async fn a_members_levels_are_set_on_the_node_shown_and_told_once_each() {
    let t = lab().await;
    let room = t.room(A, "levels").await;
    let s = t.call(A, "1001").await;
    let path = format!("/api/v1/sessions/{s}/commands/conference/audio");
    // Not in a room yet.
    assert_error(
        &t.post(&path, A, json!({ "volume_in": 1 })).await,
        StatusCode::NOT_FOUND,
    );
    t.joined(A, &room, &s).await;
    assert_eq!(
        (
            member(&t, &room).await["volume_in"].clone(),
            member(&t, &room).await["energy"].clone()
        ),
        (json!(0), Value::Null)
    );
    for bad in [
        json!({}),
        json!({ "volume_in": 5 }),
        json!({ "volume_out": -5 }),
        json!({ "energy": -1 }),
        json!({ "energy": 1801 }),
        json!({ "volume_in": 1.5 }),
        json!({ "volume_in": "1" }),
        json!({ "gain": 1 }),
    ] {
        assert_error(&t.post(&path, A, bad).await, StatusCode::BAD_REQUEST);
    }
    let r = t
        .post(
            &path,
            A,
            json!({ "volume_in": 2, "energy": 300, "command_uid": "l1" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_eq!(
        (&r.body["volume_in"], &r.body["energy"]),
        (&json!(2), &json!(300))
    );
    eventually("the levels are confirmed", || async {
        let m = member(&t, &room).await;
        m["volume_in"] == 2 && m["energy"] == 300 && m["volume_out"] == 0
    })
    .await;
    // The node holds them.
    let node = t.node_member(&room, &s);
    assert_eq!(
        (&node["volume_in"], &node["energy"]),
        (&json!(2), &json!(300))
    );
    // The same request again (its uid): the same answer, nothing sent or told again.
    let again = t
        .post(
            &path,
            A,
            json!({ "volume_in": 2, "energy": 300, "command_uid": "l1" }),
        )
        .await;
    assert_eq!((again.status, &again.body), (StatusCode::ACCEPTED, &r.body));
    // The same value asked anew changes nothing, so nothing is told of it; the change after it
    // is (its confirmation says the node's reports were applied in order).
    let send = |body: Value| t.patiently_post(A, &path, body);
    assert_eq!(
        send(json!({ "volume_in": 2 })).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        send(json!({ "volume_out": -1 })).await.status,
        StatusCode::ACCEPTED
    );
    eventually("volume_out confirmed", || async {
        member(&t, &room).await["volume_out"] == -1
    })
    .await;
    let told: Vec<(Value, Value)> = t
        .events(A)
        .await
        .iter()
        .filter(|e| e.kind == EventKind::MemberAudio)
        .map(|e| (e.data["changed"].clone(), e.data["volume_in"].clone()))
        .collect();
    assert_eq!(
        told,
        [
            (json!("volume_in"), json!(2)),
            (json!("energy"), json!(2)),
            (json!("volume_out"), json!(2))
        ]
    );
    // Another app's session: 403.
    assert_error(
        &t.post(&path, B, json!({ "volume_in": 1 })).await,
        StatusCode::FORBIDDEN,
    );
}

/// A room named `name` with `callers` calls joined to it (app A): the room and the sessions.
async fn room_of_callers(
    t: &TestLab<MemoryStore>,
    name: &str,
    callers: usize,
) -> (String, Vec<String>) {
    let room = t.room(A, name).await;
    let mut sessions = Vec::new();
    for n in 0..callers {
        let s = t.call(A, &format!("100{n}")).await;
        t.joined(A, &room, &s).await;
        sessions.push(s);
    }
    (room, sessions)
}

/// A node that answers late holds the commands sent to it. Past `node_commands_in_flight`
/// waiting on it, one more is refused at once (503 with `Retry-After`), not queued to hold its
/// request until `command_timeout`, and before anything is written for it (the room's `seq`
/// stays); the refused members stay as they were and are asked again once the node keeps up,
/// and the accepted commands are carried out.
#[tokio::test]
async fn past_the_commands_a_node_may_have_waiting_one_more_is_refused_at_once() {
    use switchyard::conference::{AppId, RoomId};
    use switchyard::store::Store;

    let t = TestLab::start(
        MemoryStore::new(),
        switchyard::server::lab::LabOptions {
            node_commands_in_flight: 2,
            command_timeout: std::time::Duration::from_secs(10),
            ..options()
        },
    )
    .await;
    let (room, sessions) = room_of_callers(&t, "busy", 4).await;
    let muted = |s: &str| {
        let (t, room, s) = (&t, room.clone(), s.to_owned());
        async move {
            t.members(A, &room)
                .await
                .iter()
                .find(|m| m["uuid"] == s.as_str())
                .map(|m| m["muted"].clone())
        }
    };
    let (app, room_id) = (AppId::parse(A.0).unwrap(), RoomId::parse(&room).unwrap());
    let seq = || async { t.store().room(&app, &room_id).await.unwrap().map(|r| r.seq) };
    let node = t.lab.state.rooms().pool().nodes()[0].clone();
    t.sim()
        .delay_api(Some(std::time::Duration::from_millis(1500)));
    // Two unmutes wait on the node; meanwhile the other two are refused at once.
    let waiting = futures_util::future::join_all(
        sessions[..2]
            .iter()
            .map(|s| t.command(A, s, "conference/unmute")),
    );
    let refusing = async {
        eventually("two commands wait on the node", || async {
            node.commands_in_flight() == 2
        })
        .await;
        let before = seq().await;
        let mut refused = Vec::new();
        for s in &sessions[2..] {
            refused.push(t.command(A, s, "conference/unmute").await);
        }
        assert_eq!(seq().await, before, "a refused command wrote to its room");
        refused
    };
    let (accepted, refused) = tokio::join!(waiting, refusing);
    for r in &accepted {
        assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    }
    for r in &refused {
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{r:?}");
        assert_eq!(r.headers["retry-after"], "1", "{r:?}");
        assert_eq!(
            r.body["error"], "Media node busy: too many commands in flight",
            "{r:?}"
        );
        assert_eq!(
            r.body["detail"]["node"],
            node.config.prefix.as_str(),
            "{r:?}"
        );
    }
    t.sim().delay_api(None);
    for s in &sessions[..2] {
        eventually("an accepted unmute is confirmed", || async {
            muted(s).await == Some(json!(false))
        })
        .await;
    }
    assert_eq!(node.commands_in_flight(), 0);
    // The refused ones are as they were, and nothing is pending for them: asked again, each is
    // accepted and carried out.
    for s in &sessions[2..] {
        assert_eq!(muted(s).await, Some(json!(true)));
        let r = t.patiently(A, s, "conference/unmute").await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
        eventually("the unmute asked again is confirmed", || async {
            muted(s).await == Some(json!(false))
        })
        .await;
    }
}

/// Past `requests_in_flight` API requests being worked on, one more is answered 503 at once
/// (`Retry-After`), whatever its route, rather than joining the others: an instance offered more
/// than its CPU carries keeps a share of it for the nodes' events. The probes and the metrics
/// are always answered, and the API again as soon as a request ends.
#[tokio::test]
async fn past_the_requests_an_instance_works_on_at_once_one_more_is_refused() {
    let t = TestLab::start(
        MemoryStore::new(),
        switchyard::server::lab::LabOptions {
            api: switchyard::api::ApiOptions {
                global_rate: 0.0,
                admission: switchyard::api::admission::AdmissionLimits {
                    requests_in_flight: 2,
                    ..Default::default()
                },
                ..switchyard::api::ApiOptions::default()
            },
            command_timeout: std::time::Duration::from_secs(10),
            admin_key: Some("ops-key".into()),
            ..options()
        },
    )
    .await;
    let (_, sessions) = room_of_callers(&t, "crowded", 2).await;
    let node = t.lab.state.rooms().pool().nodes()[0].clone();
    t.sim()
        .delay_api(Some(std::time::Duration::from_millis(1500)));
    let working = futures_util::future::join_all(
        sessions
            .iter()
            .map(|s| t.command(A, s, "conference/unmute")),
    );
    let refusing = async {
        eventually("two requests are being worked on", || async {
            node.commands_in_flight() == 2
        })
        .await;
        let refused = t.get("/api/v1/conferences", A).await;
        let health = t.get("/healthz", A).await;
        let operator = [("x-admin-key", "ops-key")];
        let metrics = common::api::raw_get_with(&t.lab.router(), "/metrics", A, &operator).await;
        (refused, health, metrics)
    };
    let (worked, (refused, health, metrics)) = tokio::join!(working, refusing);
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{refused:?}"
    );
    assert_eq!(refused.headers["retry-after"], "1", "{refused:?}");
    assert_eq!(
        refused.body["error"], "Too many requests in progress on this instance",
        "{refused:?}"
    );
    assert_eq!(
        refused.body["detail"]["requests_in_flight"], 2,
        "{refused:?}"
    );
    assert_eq!(health.status, StatusCode::OK, "{health:?}");
    assert_eq!(metrics.0, StatusCode::OK);
    for r in &worked {
        assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    }
    t.sim().delay_api(None);
    let again = t.get("/api/v1/conferences", A).await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
}
