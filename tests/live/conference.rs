//! The end-to-end scenarios of the simulator-backed suites, against a real FreeSWITCH: set
//! `SWITCHYARD_LIVE_ESL=host:port` (and `SWITCHYARD_LIVE_ESL_PASSWORD`; the other settings are
//! in `tests/common/live.rs`). The controller is started as `switchyard serve` starts it, with
//! its store in a real Redis; calls are real parked calls made on the node
//! (`originate {…}null/<did> &park()`). Every test removes what it made from the node. Without
//! the variable these tests are compiled and reported as ignored.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::live;

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use switchyard::conference::{EventKind, LeaveReason, SessionId, SessionState};
use switchyard::esl::{ConferenceAction, Event, EventName, EventStream};
use switchyard::store::Store;

use common::api::assert_error;
use live::{Live, channel_of, notice, wav_millis};

async fn session_room(t: &Live, s: &str) -> Value {
    t.session(s).await["room_id"].clone()
}

/// The next event on `events` that `pred` accepts, within 10 s.
async fn until(events: &mut EventStream, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let event = events.recv().await.expect("event stream open");
            if pred(&event) {
                return event;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {what} within 10 s"))
}

#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh, or set SWITCHYARD_LIVE_ESL=host:port"
)]
async fn live_a_caller_joins_muted_and_is_unmuted_and_muted() {
    let t = Live::start().await;
    let room = t.room("standup").await;
    let s = t.call("1001").await;
    t.joined(&room, &s).await;
    let members = t.members(&room).await;
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(members[0]["muted"], true, "members join muted");
    assert_eq!(members[0]["did"], t.settings.did.as_str());
    assert_eq!(members[0]["caller_id"], "1001");
    let on_node = t.node_members(&room).await;
    assert!(
        on_node.len() == 1
            && on_node
                .iter()
                .all(|(ch, _, muted)| ch == channel_of(&s) && *muted),
        "the node has the caller, muted: {on_node:?}"
    );

    let r = t.command(&s, "conference/unmute").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    t.eventually("unmute-member confirms", || async {
        t.members(&room).await[0]["muted"] == false
    })
    .await;
    assert!(t.node_members(&room).await.iter().all(|m| !m.2));
    let r = t.command(&s, "conference/mute").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    t.eventually("mute-member confirms", || async {
        t.members(&room).await[0]["muted"] == true
    })
    .await;
    assert!(t.node_members(&room).await.iter().all(|m| m.2));
    assert_eq!(t.store_members(&room).await, t.node_members(&room).await);

    let kinds: Vec<EventKind> = t.events(&room).await.iter().map(|e| e.kind).collect();
    use EventKind::*;
    assert_eq!(
        kinds,
        [
            Created,
            Progressing,
            MemberJoining,
            MemberJoined,
            MemberUnmuted,
            MemberMuted
        ]
    );
    t.finish().await;
}

#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh, or set SWITCHYARD_LIVE_ESL=host:port"
)]
async fn live_playback_pauses_resumes_changes_volume_finishes_and_stops() {
    let t = Live::start().await;
    let tone = t.tone().await;
    let room = t.room("music").await;
    let s = t.call("1001").await;
    t.joined(&room, &s).await;
    let play = format!("/api/v1/conferences/{room}/play");
    let urls = json!([tone.url]);
    let r = t.post(&play, json!({ "urls": urls })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let op = r.body["operation_id"].as_str().unwrap().to_owned();
    let shown = t.get(&format!("/api/v1/conferences/{room}")).await;
    assert_eq!(shown.body["playback_status"], "playing");
    assert_eq!(shown.body["playback_urls"], urls);

    let pause = format!("/api/v1/conferences/{room}/pause");
    let r = t.patiently("POST", &pause, json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_eq!(r.body["status"], "paused");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = t.patiently("POST", &pause, json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_eq!(r.body["status"], "playing");
    let volume = format!("/api/v1/conferences/{room}/volume");
    let r = t.patiently("POST", &volume, json!({ "volume": -6 })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_eq!(r.body["volume"], -6);

    t.eventually("conference.play.finished", || async {
        t.count(&room, EventKind::PlayFinished).await == 1
    })
    .await;
    let events = t.events(&room).await;
    let finished = events
        .iter()
        .find(|e| e.kind == EventKind::PlayFinished)
        .unwrap();
    assert_eq!(finished.data["operation_id"], op.as_str());
    for kind in [
        EventKind::PlayStarted,
        EventKind::PlayPaused,
        EventKind::PlayResumed,
        EventKind::PlayVolumeChanged,
    ] {
        assert_eq!(t.count(&room, kind).await, 1, "{kind:?}");
    }
    let shown = t.get(&format!("/api/v1/conferences/{room}")).await;
    assert_eq!(shown.body["playback_status"], "stopped");
    assert_eq!(shown.body["playback_volume"], -6);

    // Again, and stopped: stopped, never finished.
    let r = t.patiently("POST", &play, json!({ "urls": urls })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let r = t
        .patiently(
            "POST",
            &format!("/api/v1/conferences/{room}/stop"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_eq!(r.body["status"], "stopped");
    assert_eq!(t.count(&room, EventKind::PlayStopped).await, 1);
    // Longer than the file (2 s) and than `switchyard sim`'s default play time (3 s).
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(t.count(&room, EventKind::PlayFinished).await, 1);
    if let Some(n) = tone.fetched() {
        notice(&format!("the node fetched the fixture WAV {n} time(s)"));
    }
    t.finish().await;
}

#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh, or set SWITCHYARD_LIVE_ESL=host:port"
)]
async fn live_a_recording_ends_with_its_duration_and_downloads() {
    let t = Live::start().await;
    let room = t.room("recorded").await;
    let s = t.call("1001").await;
    t.joined(&room, &s).await;
    // The caller (SIPp, sending a 440 Hz tone) speaks into the room.
    let r = t.command(&s, "conference/unmute").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    t.eventually("unmute-member confirms", || async {
        t.members(&room).await[0]["muted"] == false
    })
    .await;
    let r = t
        .post(
            &format!("/api/v1/conferences/{room}/recording/start"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let rec = r.body["id"].as_str().unwrap().to_owned();
    t.eventually("start-recording confirms", || async {
        t.get(&format!("/api/v1/recordings/{rec}")).await.body["status"] == "recording"
    })
    .await;
    assert_eq!(t.resource(&room).await["recording_id"], rec.as_str());
    // While it records, the node lists the recording beside the caller; the members are the
    // same as the store holds.
    assert_eq!(t.store_members(&room).await, t.node_members(&room).await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = t
        .post(
            &format!("/api/v1/conferences/{room}/recording/stop"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    t.eventually("stop-recording confirms", || async {
        t.get(&format!("/api/v1/recordings/{rec}")).await.body["status"] == "ended"
    })
    .await;
    let shown = t.get(&format!("/v1.0/recordings/{rec}")).await;
    let millis = shown.body["duration_ms"].as_u64().expect("duration_ms");
    assert!((1000..15_000).contains(&millis), "{shown:?}");
    assert_ne!(shown.body["tm_end"], "9999-01-01 00:00:00.000000");
    assert_eq!(
        t.resource(&room).await["recording_id"],
        "00000000-0000-0000-0000-000000000000"
    );
    assert_eq!(t.count(&room, EventKind::RecordingStarted).await, 1);
    assert_eq!(t.count(&room, EventKind::RecordingFinished).await, 1);

    let local = t.settings.local_recordings();
    match std::fs::read_dir(&local) {
        Ok(_) => {
            let wav = t.raw_get(&format!("/api/v1/recordings/{rec}/file")).await;
            assert_eq!(wav.0, StatusCode::OK, "{:?}", wav.2);
            assert_eq!(wav.1.get("content-type").unwrap(), "audio/wav");
            // A local recording's size is the file's, as the node closed it (issue 60).
            let view = t.get(&format!("/api/v1/recordings/{rec}")).await;
            assert_eq!(view.body["storage"], "local");
            assert_eq!(
                view.body["size_bytes"].as_u64(),
                Some(wav.2.len() as u64),
                "size_bytes against the download: {view:?}"
            );
            let wav_ms = wav_millis(&wav.2);
            assert!(
                wav_ms.abs_diff(millis) <= 250,
                "the file holds {wav_ms} ms, the node said {millis} ms"
            );
            // The caller's audio is in it: the tone SIPp sends, through most of the recording.
            let share = live::tone_share(&wav.2, 440.0);
            notice(&format!(
                "{:.0} % of the recording carries the caller's 440 Hz tone",
                share * 100.0
            ));
            assert!(
                share > 0.6,
                "the caller's tone fills {:.0} % of the recording",
                share * 100.0
            );
        }
        Err(e) => notice(&format!(
            "SKIPPED the recording download check: {} is not readable here ({e}); share the \
             node's recordings directory and set SWITCHYARD_LIVE_RECORDINGS_LOCAL_DIR",
            local.display()
        )),
    }
    // The API deletes no recordings: remove the file where this machine can.
    let file = local.join(shown.body["filename"].as_str().unwrap());
    if std::fs::remove_file(&file).is_err() {
        notice(&format!(
            "the recording {}/{} stays on the node",
            t.settings.recordings_dir,
            shown.body["filename"].as_str().unwrap()
        ));
    }
    t.finish().await;
}

#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh, or set SWITCHYARD_LIVE_ESL=host:port"
)]
async fn live_leave_parks_the_call_and_a_conferencecall_is_kicked_by_its_id() {
    let t = Live::start().await;
    let room = t.conference(json!({ "name": "kick" })).await;
    let id = room["id"].as_str().unwrap().to_owned();
    let s = t.call("1001").await;
    t.joined(&id, &s).await;
    let r = t.command(&s, "conference/leave").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    t.eventually("del-member confirms the leave", || async {
        session_room(&t, &s).await.is_null()
    })
    .await;
    assert!(t.members(&id).await.is_empty());
    assert!(t.node_members(&id).await.is_empty());
    assert!(t.channel_exists(channel_of(&s)).await, "the call lives on");
    assert_eq!(t.session(&s).await["state"], "parked");

    t.joined(&id, &s).await;
    let ccs = t.resource(&id).await["conferencecall_ids"].clone();
    assert_eq!(ccs.as_array().unwrap().len(), 1, "{ccs}");
    let path = format!("/v1.0/conferencecalls/{}", ccs[0].as_str().unwrap());
    let shown = t.get(&path).await;
    assert_eq!(shown.body["status"], "joined", "{shown:?}");
    assert_eq!(shown.body["reference_id"], s.as_str());
    let kicked = t.delete(&path).await;
    assert_eq!(kicked.status, StatusCode::OK, "{kicked:?}");
    assert_eq!(kicked.body["status"], "leaving");
    t.eventually("the conferencecall has left", || async {
        t.get(&path).await.body["status"] == "leaved"
    })
    .await;
    assert_eq!(t.resource(&id).await["conferencecall_ids"], json!([]));
    assert!(t.node_members(&id).await.is_empty());
    assert!(t.channel_exists(channel_of(&s)).await, "the call lives on");
    let reasons: Vec<Value> = t
        .events(&id)
        .await
        .into_iter()
        .filter(|e| e.kind == EventKind::MemberLeft)
        .map(|e| e.data["reason"].clone())
        .collect();
    assert_eq!(reasons, [json!("left"), json!("kicked")]);
    t.eventually("the session is parked", || async {
        t.session(&s).await["state"] == "parked"
    })
    .await;
    t.finish().await;
}

#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh, or set SWITCHYARD_LIVE_ESL=host:port"
)]
async fn live_a_connect_room_ends_when_one_side_hangs_up() {
    let t = Live::start().await;
    let room = t
        .conference(json!({ "type": "connect", "name": "support" }))
        .await;
    let id = room["id"].as_str().unwrap().to_owned();
    let (alice, bob, carol) = (
        t.call("1001").await,
        t.call("1002").await,
        t.call("1003").await,
    );
    t.joined(&id, &alice).await;
    t.joined(&id, &bob).await;
    let third = t.join(&carol, &id).await;
    assert_error(&third, StatusCode::CONFLICT);
    // Alice hangs up on the node: Bob is ejected (his call lives on) and the room ends.
    let killed = t
        .node_api(&format!("uuid_kill {}", channel_of(&alice)))
        .await;
    assert!(killed.starts_with("+OK"), "{killed}");
    t.eventually("the room is terminated", || async {
        t.resource(&id).await["status"] == "terminated"
    })
    .await;
    t.eventually("bob is out of the room", || async {
        session_room(&t, &bob).await.is_null()
    })
    .await;
    assert_ne!(t.session(&bob).await["state"], "ended");
    assert!(
        t.channel_exists(channel_of(&bob)).await,
        "bob's call lives on"
    );
    t.eventually("the conference is gone from the node", || async {
        !t.conference_on_node(&id).await
    })
    .await;
    let events = t.events(&id).await;
    let destroyed: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::Destroyed)
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
    t.finish().await;
}

#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh, or set SWITCHYARD_LIVE_ESL=host:port"
)]
async fn live_deleting_a_room_parks_its_members_and_releases_the_conference() {
    let t = Live::start().await;
    let room = t.room("gone").await;
    let s = t.call("1001").await;
    t.joined(&room, &s).await;
    let r = t.delete(&format!("/api/v1/conferences/{room}")).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body, json!({ "room_id": room }));
    assert_error(
        &t.get(&format!("/api/v1/conferences/{room}")).await,
        StatusCode::NOT_FOUND,
    );
    t.eventually("the member is out", || async {
        session_room(&t, &s).await.is_null()
    })
    .await;
    t.eventually("the conference is gone from the node", || async {
        !t.conference_on_node(&room).await
    })
    .await;
    assert!(t.channel_exists(channel_of(&s)).await, "the call lives on");
    assert_ne!(t.session(&s).await["state"], "ended");
    t.eventually("conference.terminated", || async {
        t.count(&room, EventKind::Terminated).await == 1
    })
    .await;
    t.finish().await;
}

fn talk(text: &str, gender: &str) -> Value {
    json!({
        "id": "00000000-0000-0000-0000-000000000000",
        "next_id": "00000000-0000-0000-0000-000000000000",
        "type": "talk",
        "option": { "text": text, "gender": gender, "language": "en-US" }
    })
}

#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh, or set SWITCHYARD_LIVE_ESL=host:port"
)]
async fn live_talk_actions_are_spoken_on_join_and_on_leave() {
    let t = Live::start().await;
    let (_watcher, mut events) = t.watch().await;
    let room = t
        .conference(json!({
            "name": "greeted",
            "pre_actions": [talk("Hello. Welcome to the test conference.", "female")],
            "post_actions": [talk("The conference has closed. Thank you. Good bye.", "male")],
        }))
        .await;
    let id = room["id"].as_str().unwrap().to_owned();
    let s = t.call("1001").await;
    let channel = channel_of(&s).to_owned();
    t.joined(&id, &s).await;
    let add = until(&mut events, "add-member", |e| {
        e.action() == Some(ConferenceAction::AddMember)
            && e.unique_id().as_deref() == Some(channel.as_str())
    })
    .await;
    let member_id = add.header("Member-ID").unwrap().into_owned();
    let said = until(&mut events, "speak-text-member", |e| {
        e.action() == Some(ConferenceAction::SpeakTextMember)
            && e.unique_id().as_deref() == Some(channel.as_str())
    })
    .await;
    assert_eq!(said.header("Member-ID").unwrap(), member_id.as_str());
    assert_eq!(
        said.header("Text").unwrap(),
        "#slt#Hello. Welcome to the test conference."
    );
    let r = t.command(&s, "conference/leave").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let speak = until(&mut events, "CHANNEL_EXECUTE speak", |e| {
        e.name() == &EventName::ChannelExecute
            && e.header("Application").as_deref() == Some("speak")
            && e.unique_id().as_deref() == Some(channel.as_str())
    })
    .await;
    assert_eq!(
        speak.header("Application-Data").unwrap(),
        "flite|rms|The conference has closed. Thank you. Good bye."
    );
    until(&mut events, "CHANNEL_PARK", |e| {
        e.name() == &EventName::ChannelPark && e.unique_id().as_deref() == Some(channel.as_str())
    })
    .await;
    t.eventually("left", || async { session_room(&t, &s).await.is_null() })
        .await;
    t.finish().await;
}

#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh, or set SWITCHYARD_LIVE_ESL=host:port"
)]
async fn live_a_new_controller_resyncs_with_what_changed_behind_its_back() {
    let mut t = Live::start().await;
    let room = t.room("resync").await;
    let (alice, bob, carol) = (
        t.call("1001").await,
        t.call("1002").await,
        t.call("1003").await,
    );
    t.joined(&room, &alice).await;
    t.joined(&room, &bob).await;
    let r = t.command(&bob, "conference/unmute").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    t.eventually("bob unmuted", || async {
        t.store_members(&room)
            .await
            .iter()
            .any(|m| m.0 == channel_of(&bob) && !m.2)
    })
    .await;

    // The controller goes away; on the node Alice hangs up, Bob is muted by an operator and
    // Carol is put in the room and unmuted.
    t.ctl.stop().await;
    let bob_id = t.stored_room(&room).await.members[channel_of(&bob)]
        .member_id
        .unwrap();
    for line in [
        format!("uuid_kill {}", channel_of(&alice)),
        format!("conference {room} mute {bob_id}"),
        format!(
            "uuid_transfer {} conference:{room}@{}+flags{{mute}},park: inline",
            channel_of(&carol),
            t.settings.profile
        ),
    ] {
        let reply = t.node_api(&line).await;
        assert!(reply.starts_with("+OK"), "{line}: {reply}");
    }
    live::within(
        Duration::from_secs(10),
        "carol is in on the node",
        || async {
            t.node_members(&room)
                .await
                .iter()
                .any(|m| m.0 == channel_of(&carol))
        },
    )
    .await;
    let carol_id = t
        .node_members(&room)
        .await
        .into_iter()
        .find(|m| m.0 == channel_of(&carol))
        .unwrap()
        .1;
    let reply = t
        .node_api(&format!("conference {room} unmute {carol_id}"))
        .await;
    assert!(reply.starts_with("+OK"), "{reply}");
    let expected: std::collections::BTreeSet<_> = [
        (channel_of(&bob).to_owned(), bob_id, true),
        (channel_of(&carol).to_owned(), carol_id, false),
    ]
    .into();
    live::within(
        Duration::from_secs(10),
        "the node is as arranged",
        || async { t.node_members(&room).await == expected },
    )
    .await;

    // A new controller on the same Redis: the store equals the node again.
    t.start_controller().await;
    t.eventually("the store equals the node", || async {
        t.store_members(&room).await == expected
    })
    .await;
    let past = t.stored_room(&room).await.past_members;
    let gone = past
        .iter()
        .find(|m| m.channel() == channel_of(&alice))
        .unwrap();
    assert_eq!(gone.leave_reason, Some(LeaveReason::NotOnNode));
    let alice_id = SessionId::parse(&alice).unwrap();
    t.eventually("alice's session ended", || async {
        t.store()
            .session(&t.app_id(), &alice_id)
            .await
            .unwrap()
            .is_some_and(|s| s.state == SessionState::Ended)
    })
    .await;
    let members = t.members(&room).await;
    assert_eq!(members.len(), 2, "{members:?}");
    t.finish().await;
}

/// What keeps a node's last sessions from new rooms reads a real node: its `status` gives the
/// `max-sessions` of `freeswitch-conf` (1,000) and counts the room's control leg and its
/// caller; with every session reserved, a new room is refused 503 and nothing is made.
#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh, or set SWITCHYARD_LIVE_ESL=host:port"
)]
async fn live_a_nodes_sessions_are_read_and_its_reserve_refuses_new_rooms() {
    let t = Live::start().await;
    let node = t.ctl.state.rooms().pool().nodes()[0].clone();
    let room = t.room("counted").await;
    let s = t.call("1001").await;
    t.joined(&room, &s).await;
    let sessions = node.sessions().await.expect("the node's status");
    assert_eq!(sessions.most, 1000, "{sessions:?}");
    assert!(
        sessions.now >= 2,
        "the control leg and the caller: {sessions:?}"
    );
    let mut quotas = switchyard::rooms::quotas::Quotas::none();
    quotas.node_reserved_pct = 100;
    t.ctl.state.rooms().set_quotas(quotas);
    let r = t
        .post("/api/v1/conferences", json!({ "name": t.name("refused") }))
        .await;
    assert_error(&r, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        r.body["error"],
        "Media node has no sessions to spare for a new room or dial-out"
    );
}
