//! Live audio streams on a real FreeSWITCH, with SIPp callers that each send a tone of their
//! own and a WebSocket server of the test's (`common::ws_server`): what the server hears is
//! measured with a tone detector, and what it sends back is measured on the callers' legs
//! (`uuid_record`, write direction only), as the participant tests do. Without a FreeSWITCH
//! these tests are compiled and reported as ignored (see `tests/live/conference.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};
use switchyard::conference::EventKind;

use crate::common::ws_server::{Audio, Conn, WsServer, l16_bytes, tone, tone_share, twilio_media};
use crate::live::{self, Live, channel_of, notice};
use crate::pair::{self, Pair};

const A_TONE: f64 = 440.0;
const B_TONE: f64 = 1000.0;
/// What the stream server sends back.
const BACK: f64 = 2000.0;
const WITHIN: Duration = Duration::from_secs(10);

/// Two callers with tones of their own, joined and unmuted.
async fn two_talkers(t: &Live, room: &str) -> (String, String) {
    let (a, b) = (
        t.call_tone("2001", A_TONE).await,
        t.call_tone("2002", B_TONE).await,
    );
    for s in [&a, &b] {
        t.joined(room, s).await;
        let r = t.command(s, "conference/unmute").await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    }
    t.eventually("both callers are unmuted", || async {
        t.members(room)
            .await
            .iter()
            .filter(|m| m["muted"] == false)
            .count()
            == 2
    })
    .await;
    (a, b)
}

async fn stream_events(t: &Live, room: &str) -> Vec<(EventKind, Value)> {
    t.events(room)
        .await
        .into_iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::StreamStarted | EventKind::StreamStopped | EventKind::StreamFailed
            )
        })
        .map(|e| (e.kind, e.data))
        .collect()
}

/// The share of the power of what a caller hears (`millis` of its leg) that is at the tone
/// sent back (the other caller's tone is in it too).
async fn hears_back(t: &Live, session: &str, millis: u64) -> f64 {
    let (samples, rate) = live::wav_samples(&t.ear(channel_of(session), millis).await);
    tone_share(&samples, rate, BACK)
}

/// A caller hears the server: most of what comes from the server, beside the other caller.
const HEARS: f64 = 0.2;
/// A caller does not: next to nothing at its tone.
const DEAF: f64 = 0.05;

#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh, or set SWITCHYARD_LIVE_ESL=host:port"
)]
async fn live_a_room_stream_hears_every_caller_and_the_room_hears_it() {
    let t = Live::start().await;
    let server = WsServer::start().await;
    let room = t.room("streamed").await;
    let (a, b) = two_talkers(&t, &room).await;

    let r = t
        .post(
            &format!("/api/v1/conferences/{room}/streams"),
            json!({
                "url": server.url("/agent"),
                "protocol": "twilio",
                "bidirectional": true,
                "parameters": { "agent": "support", "lang": "en" },
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.body["status"], "streaming", "{r:?}");
    let sid = r.body["stream_id"].as_str().unwrap().to_owned();
    let conn = server.next(WITHIN).await;
    assert_eq!(conn.path(), "/agent");

    // Twilio's opening, message for message.
    let connected = conn.text_event("connected", WITHIN).await;
    assert_eq!(
        connected,
        json!({ "event": "connected", "protocol": "Call", "version": "1.0.0" })
    );
    let start = conn.text_event("start", WITHIN).await;
    assert_eq!(start["streamSid"], sid);
    assert_eq!(start["start"]["callSid"], room);
    assert_eq!(
        start["start"]["customParameters"],
        json!({ "agent": "support", "lang": "en" })
    );
    assert_eq!(
        start["start"]["mediaFormat"],
        json!({ "encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1 })
    );

    // The room's mix: both callers.
    let heard = conn.wait_audio(1500, Audio::Twilio).await;
    let (sa, sb) = (
        tone_share(&heard, 8000, A_TONE),
        tone_share(&heard, 8000, B_TONE),
    );
    notice(&format!(
        "room track: {:.0} % of its power at A's tone, {:.0} % at B's",
        sa * 100.0,
        sb * 100.0
    ));
    assert!(sa > 0.2 && sb > 0.2, "the room track hears both callers");

    // What the server sends is heard by the room; its mark comes back once played.
    let back = tone(BACK, 8000, 3000);
    let sent = Instant::now();
    for chunk in back.chunks(160) {
        assert!(conn.send_text(twilio_media(&sid, chunk)).await);
    }
    assert!(
        conn.send_text(
            json!({ "event": "mark", "streamSid": sid, "mark": { "name": "greeting" } })
        )
        .await
    );
    let (ha, hb) = tokio::join!(hears_back(&t, &a, 1500), hears_back(&t, &b, 1500));
    notice(&format!(
        "sent back: A hears it in {:.0} % of 1.5 s, B in {:.0} %",
        ha * 100.0,
        hb * 100.0
    ));
    assert!(ha > HEARS && hb > HEARS, "both callers hear the server");
    let mark = conn.text_event("mark", WITHIN).await;
    let played = sent.elapsed();
    assert_eq!(mark["mark"]["name"], "greeting");
    assert_eq!(mark["streamSid"], sid);
    assert!(
        played >= Duration::from_millis(2800),
        "the mark came back after its 3 s of audio, not {played:?}"
    );

    // clear: queued audio stops at once, and the pending mark comes back.
    // Longer than the wait for it to be heard (20 s): heard or not, it is still playing when
    // the wait ends (10 s of it once ran out while a busy node was slow to record A's ear).
    for chunk in tone(BACK, 8000, 30_000).chunks(160) {
        assert!(conn.send_text(twilio_media(&sid, chunk)).await);
    }
    assert!(
        conn.send_text(json!({ "event": "mark", "streamSid": sid, "mark": { "name": "long" } }))
            .await
    );
    let sent_long = Instant::now();
    let mut heard = Vec::new();
    loop {
        let share = hears_back(&t, &a, 400).await;
        heard.push((sent_long.elapsed().as_millis(), (share * 100.0).round()));
        if share > HEARS {
            break;
        }
        assert!(
            sent_long.elapsed() < Duration::from_secs(20),
            "A never heard the long answer: (ms after it was sent, % heard) {heard:?}"
        );
    }
    let cleared = Instant::now();
    assert!(
        conn.send_text(json!({ "event": "clear", "streamSid": sid }))
            .await
    );
    let mark = conn.text_event("mark", WITHIN).await;
    assert_eq!(mark["mark"]["name"], "long");
    notice(&format!(
        "clear: the pending mark came back after {:?}",
        cleared.elapsed()
    ));
    assert!(cleared.elapsed() < Duration::from_millis(100));
    // What had reached the node before the clear (its jitter buffer, the packets on their
    // way) still plays: up to 70 ms of it was heard on a loaded machine. Past 200 ms, nothing.
    let (ear, rate) = live::wav_samples(&t.ear(channel_of(&a), 1200).await);
    let settled = ((rate / 5) as usize).min(ear.len());
    let (tail, after) = (
        tone_share(&ear[..settled], rate, BACK),
        tone_share(&ear[settled..], rate, BACK),
    );
    notice(&format!(
        "after clear: A hears the server in {:.0} % of the first 200 ms, {:.0} % of the 1 s after",
        tail * 100.0,
        after * 100.0
    ));
    assert!(after < DEAF, "nothing queued is played after clear");

    // A key a caller presses reaches the server.
    t.press_key(channel_of(&a)).await;
    let dtmf = conn.text_event("dtmf", WITHIN).await;
    assert_eq!(
        dtmf["dtmf"],
        json!({ "track": "inbound_track", "digit": "5" })
    );

    // The room view lists it; DELETE ends it: `stop`, the socket closed, the webhook.
    let view = t.get(&format!("/api/v1/conferences/{room}")).await;
    assert_eq!(view.body["streams"][0]["stream_id"], sid, "{view:?}");
    let r = t
        .delete(&format!("/api/v1/conferences/{room}/streams/{sid}"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["status"], "stopped");
    let stop = conn.text_event("stop", WITHIN).await;
    assert_eq!(stop["stop"]["callSid"], room);
    assert!(conn.closed(WITHIN).await, "the socket is closed after stop");
    t.eventually("started and stopped are told", || async {
        let kinds: Vec<(EventKind, Value)> = stream_events(&t, &room)
            .await
            .into_iter()
            .map(|(k, d)| (k, d["reason"].clone()))
            .collect();
        kinds
            == [
                (EventKind::StreamStarted, Value::Null),
                (EventKind::StreamStopped, json!("deleted")),
            ]
    })
    .await;
    let view = t.get(&format!("/api/v1/conferences/{room}")).await;
    assert_eq!(view.body["streams"], json!([]), "{view:?}");
    t.finish().await;
}

#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh, or set SWITCHYARD_LIVE_ESL=host:port"
)]
async fn live_a_member_stream_hears_its_member_alone_and_whispers_to_it() {
    let t = Live::start().await;
    let server = WsServer::start().await;
    let room = t.room("captioned").await;
    let (a, b) = two_talkers(&t, &room).await;

    let r = t
        .post(
            &format!("/api/v1/conferences/{room}/streams"),
            json!({
                "url": server.url("/coach"),
                "track": "member",
                "session": a,
                "protocol": "l16",
                "sample_rate": 16000,
                "bidirectional": true,
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let sid = r.body["stream_id"].as_str().unwrap().to_owned();
    let conn = server.next(WITHIN).await;
    let start = conn.text_event("start", WITHIN).await;
    assert_eq!(start["stream_id"], sid);
    assert_eq!(start["session"], a);
    assert_eq!(start["sample_rate"], 16000);

    let heard = conn.wait_audio(1500, Audio::L16(16000)).await;
    let (sa, sb) = (
        tone_share(&heard, 16000, A_TONE),
        tone_share(&heard, 16000, B_TONE),
    );
    notice(&format!(
        "member track of A: {:.0} % at A's tone, {:.0} % at B's",
        sa * 100.0,
        sb * 100.0
    ));
    assert!(sa > 0.6, "the member track hears its member");
    assert!(sb < 0.05, "and not the other caller");

    // Keys: the member's reach its track, the other caller's do not (B presses first).
    t.press_key(channel_of(&b)).await;
    t.press_key(channel_of(&a)).await;
    let dtmf = conn.text_event("dtmf", WITHIN).await;
    assert_eq!(
        dtmf["dtmf"],
        json!({ "digit": "5", "session": a }),
        "{dtmf}"
    );

    // A whisper: A hears it, B does not.
    for chunk in tone(BACK, 16000, 4000).chunks(320) {
        assert!(conn.send_binary(l16_bytes(chunk)).await);
    }
    let (ha, hb) = tokio::join!(hears_back(&t, &a, 1500), hears_back(&t, &b, 1500));
    notice(&format!(
        "whisper: A hears it in {:.0} % of 1.5 s, B in {:.0} %",
        ha * 100.0,
        hb * 100.0
    ));
    assert!(ha > HEARS, "the member hears the whisper");
    assert!(hb < DEAF, "the other caller does not");

    // The member leaves: the stream ends with it.
    let r = t.command(&a, "conference/leave").await;
    assert!(r.status.is_success(), "{r:?}");
    let stop = conn.text_event("stop", WITHIN).await;
    assert_eq!(stop["event"], "stop");
    assert!(conn.closed(WITHIN).await);
    t.eventually("stopped with member_left", || async {
        stream_events(&t, &room)
            .await
            .last()
            .is_some_and(|(k, d)| *k == EventKind::StreamStopped && d["reason"] == "member_left")
    })
    .await;
    t.finish().await;
}

#[tokio::test]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh, or set SWITCHYARD_LIVE_ESL=host:port"
)]
async fn live_a_stream_server_that_refuses_closes_or_never_answers_leaves_nothing_behind() {
    let t = Live::start().await;
    let room = t.room("refused").await;
    let path = format!("/api/v1/conferences/{room}/streams");

    // Refused at the upgrade: failed, saying why, and a failed webhook.
    let refusing = WsServer::refusing(403).await;
    let r = t.post(&path, json!({ "url": refusing.url("/x") })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.body["status"], "failed", "{r:?}");
    assert_eq!(r.body["reason"], "refused", "{r:?}");
    assert!(r.body["error"].as_str().unwrap().contains("403"), "{r:?}");

    // Never answering: failed after the connect timeout (2 s here).
    let silent = WsServer::silent().await;
    let asked = Instant::now();
    let r = t.post(&path, json!({ "url": silent.url("/y") })).await;
    assert_eq!(r.body["status"], "failed", "{r:?}");
    assert_eq!(r.body["reason"], "timeout", "{r:?}");
    assert!(asked.elapsed() < Duration::from_secs(6));

    // Closed by the server: stopped, `server_closed`.
    let server = WsServer::start().await;
    let r = t.post(&path, json!({ "url": server.url("/z") })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let conn = server.next(WITHIN).await;
    conn.text_event("start", WITHIN).await;
    conn.close().await;
    t.eventually("stopped with server_closed", || async {
        stream_events(&t, &room)
            .await
            .last()
            .is_some_and(|(k, d)| *k == EventKind::StreamStopped && d["reason"] == "server_closed")
    })
    .await;
    let failed: Vec<Value> = stream_events(&t, &room)
        .await
        .into_iter()
        .filter(|(k, _)| *k == EventKind::StreamFailed)
        .map(|(_, d)| d["reason"].clone())
        .collect();
    assert_eq!(failed, [json!("refused"), json!("timeout")]);

    // Bad input names its field; nothing reaches the node.
    let other = t.call("2009").await;
    let bad = [
        (
            json!({ "url": server.url("/b"), "protocol": "sip" }),
            "protocol",
            400,
        ),
        (
            json!({ "url": server.url("/b"), "sample_rate": 44100 }),
            "sample_rate",
            400,
        ),
        (json!({ "url": "http://127.0.0.1/b" }), "url", 400),
        (
            json!({ "url": server.url("/b"), "protocol": "twilio", "sample_rate": 16000 }),
            "sample_rate",
            422,
        ),
        (
            json!({ "url": server.url("/b"), "track": "member" }),
            "session",
            422,
        ),
        // A session that is not in this room.
        (
            json!({ "url": server.url("/b"), "track": "member", "session": other }),
            "session",
            400,
        ),
    ];
    for (body, field, status) in bad {
        let r = t.post(&path, body.clone()).await;
        assert_eq!(r.status.as_u16(), status, "{body}: {r:?}");
        let named = r.body["detail"]["field"] == field
            || r.body["error"]
                .as_str()
                .unwrap_or_default()
                .to_lowercase()
                .contains(field);
        assert!(named, "{body}: {r:?}");
    }

    // The app's quota (3 here): a fourth live stream is 429.
    let mut conns = Vec::new();
    for _ in 0..3 {
        let r = t.post(&path, json!({ "url": server.url("/q") })).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        conns.push(server.next(WITHIN).await);
    }
    let r = t.post(&path, json!({ "url": server.url("/q") })).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{r:?}");
    assert_eq!(r.body["detail"]["quota"], "streams", "{r:?}");

    // Deleting the room ends its streams: `room_ended`, and no leg stays on the node
    // (`finish` checks).
    let r = t.delete(&format!("/api/v1/conferences/{room}")).await;
    assert!(r.status.is_success(), "{r:?}");
    for conn in &conns {
        conn.text_event("stop", WITHIN).await;
        assert!(conn.closed(WITHIN).await);
    }
    t.eventually("every stream ended with the room", || async {
        stream_events(&t, &room)
            .await
            .iter()
            .filter(|(k, d)| *k == EventKind::StreamStopped && d["reason"] == "room_ended")
            .count()
            == 3
    })
    .await;
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh, or set SWITCHYARD_LIVE_ESL=host:port"
)]
async fn live_a_stream_moves_with_its_room_off_a_drained_node_on_the_same_socket() {
    let t = Pair::start_real(2).await;
    let server = WsServer::start().await;
    let (room, on) = t.room("moving-stream").await;
    assert_eq!(on, 0);
    // A caller on the other node: its call stays up through the move (it is carried).
    let caller = t.call(1, "4101").await;
    t.joined(&room, &caller).await;
    let r = t.command(&caller, "conference/unmute", json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let r = t
        .patiently(
            "POST",
            &format!("/api/v1/conferences/{room}/streams"),
            json!({ "url": server.url("/moving"), "protocol": "l16" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.body["status"], "streaming", "{r:?}");
    let sid = r.body["stream_id"].as_str().unwrap().to_owned();
    let conn = server.next(WITHIN).await;
    conn.text_event("start", WITHIN).await;
    let heard = conn.wait_audio(1000, Audio::L16(8000)).await;
    assert!(
        tone_share(&heard, 8000, A_TONE) > 0.5,
        "the stream hears the caller"
    );

    let r = t
        .operator(
            "POST",
            &format!("/api/v1/operator/nodes/{}/drain", pair::PREFIXES[0]),
            json!({ "migrate": true }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    t.eventually("the room lives on its new node", || async {
        let r = t.stored_room(&room).await;
        r.migration.is_none() && r.node.as_str() == pair::PREFIXES[1]
    })
    .await;
    let moved = Instant::now();
    // The same socket hears the caller again, from the new node's legs.
    t.eventually("the stream hears the caller from the new node", || async {
        let after = conn.audio_since(moved + Duration::from_millis(200), Audio::L16(8000));
        after.len() >= 8000 && tone_share(&after[after.len() - 8000..], 8000, A_TONE) > 0.5
    })
    .await;
    notice(&format!(
        "the stream hears the caller again {:?} after the room moved",
        moved.elapsed()
    ));
    assert_eq!(
        server.accepted(),
        1,
        "no new socket: the stream moved on the same one"
    );
    let shown = t
        .get(&format!("/api/v1/conferences/{room}/streams/{sid}"))
        .await;
    assert_eq!(shown.body["status"], "streaming", "{shown:?}");
    assert_eq!(shown.body["connections"], 1, "{shown:?}");
    // Nothing of the room is left on the drained node.
    t.eventually("the old node holds no conference of the room", || async {
        !t.node_api(0, &format!("conference {room} list"))
            .await
            .contains("loopback")
    })
    .await;
    let r = t
        .req(
            "DELETE",
            &format!("/api/v1/conferences/{room}/streams/{sid}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    conn.text_event("stop", WITHIN).await;
}

/// Two `switchyard serve` instances on one node; the one that carries a stream is SIGKILLed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh"
)]
async fn live_a_stream_whose_instance_is_killed_is_taken_over_within_2_s() {
    use crate::common::freeswitch::{FreeSwitch, free_tcp_port};
    use crate::common::redis_server::RedisServer;
    use crate::common::serve::{Api, Serve, until};
    use crate::common::sipp::Caller;

    const DID: &str = "15551230000";
    const KEY: &str = "takeover-test-key";
    let fs = tokio::task::spawn_blocking(FreeSwitch::start)
        .await
        .unwrap();
    let redis = RedisServer::start();
    let server = WsServer::start().await;
    let dir = fs.dir.join("controllers");
    std::fs::create_dir_all(&dir).unwrap();
    let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let mut instances = Vec::new();
    let mut places = Vec::new();
    for n in 0..2 {
        let port = free_tcp_port();
        let base = format!("http://127.0.0.1:{port}");
        let config = dir.join(format!("switchyard-{n}.toml"));
        std::fs::write(
            &config,
            format!(
                "listen = {}\nredis_url = {}\ncursor_secret = \"takeover-cursor-secret-0123456789\"\n\
                 [limits]\nglobal_rps = 0\nconference_ms = 50\nconference_mute_ms = 50\n\
                 [streams]\nallow_private = true\nrequire_wss = false\n\
                 [[nodes]]\nname = \"live\"\nprefix = \"live1\"\nesl = {}\npassword = {}\n\
                 profile = \"switchyard\"\nrecordings_dir = {}\n\
                 [[apps]]\nid = \"app1\"\nkey_sha256 = {}\ndids = [{}]\n",
                q(&format!("127.0.0.1:{port}")),
                q(&redis.url()),
                q(&fs.esl()),
                q(&fs.password),
                q(&fs.recordings().to_string_lossy()),
                q(&switchyard::api::hash_key(KEY)),
                q(DID),
            ),
        )
        .unwrap();
        let serve = Serve::start(&config, &base).await;
        instances.push((serve, Api::new(&base, "app1", KEY)));
        places.push((config, base));
    }
    let (a, b) = (instances[0].1.clone(), instances[1].1.clone());

    let _caller = Caller::dial_tone(fs.sip(), DID, "4201", "Caller 4201", A_TONE);
    let session: String = until(WITHIN, "the call is listed", || async {
        let (_, body) = a.call("GET", "/api/v1/sessions?limit=10", None).await;
        body["sessions"][0]["uuid"].as_str().map(str::to_owned)
    })
    .await;
    let (status, body) = a
        .call(
            "POST",
            "/api/v1/conferences",
            Some(json!({ "name": "taken-over" })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let room = body["room_id"].as_str().unwrap().to_owned();
    until(WITHIN, "the caller joins", || async {
        let path = format!("/api/v1/sessions/{session}/commands/conference/join");
        let (status, _) = a
            .call("POST", &path, Some(json!({ "room_id": room })))
            .await;
        (status == 202 || status == 200).then_some(())
    })
    .await;
    until(WITHIN, "the caller is unmuted", || async {
        let path = format!("/api/v1/sessions/{session}/commands/conference/unmute");
        let (status, _) = a.call("POST", &path, Some(json!({}))).await;
        (status == 202).then_some(())
    })
    .await;
    let (status, stream) = a
        .call(
            "POST",
            &format!("/api/v1/conferences/{room}/streams"),
            Some(json!({ "url": server.url("/carried"), "protocol": "l16" })),
        )
        .await;
    assert_eq!(status, 201, "{stream}");
    assert_eq!(stream["status"], "streaming", "{stream}");
    let sid = stream["stream_id"].as_str().unwrap().to_owned();
    let first = server.next(WITHIN).await;
    first.text_event("start", WITHIN).await;
    first.wait_audio(500, Audio::L16(8000)).await;

    // The next socket, opened by the instance that takes the stream over from the carrier
    // of `old` (whose socket closes): a new `start` for the same stream, and the caller heard
    // on it; with how long it took since `since`.
    let taken_over = |old: Conn, since: Instant, how: &'static str| {
        let (server, sid) = (&server, &sid);
        async move {
            let next = server.next(Duration::from_secs(5)).await;
            let start = next.text_event("start", WITHIN).await;
            let took = since.elapsed();
            notice(&format!("taken over {took:?} after the carrier was {how}"));
            assert_eq!(start["stream_id"], *sid);
            assert!(
                old.closed(WITHIN).await,
                "the old carrier's socket is closed"
            );
            let heard = next.wait_audio(1000, Audio::L16(8000)).await;
            assert!(
                tone_share(&heard, 8000, A_TONE) > 0.5,
                "the new socket hears the caller"
            );
            (old, next, took)
        }
    };

    // The carrier dies: another instance opens a new socket with a new `start`.
    instances[0].0.kill();
    let (_, second, took) = taken_over(first, Instant::now(), "killed").await;
    assert!(took <= Duration::from_secs(2), "taken over in {took:?}");
    let (_, shown) = b
        .call(
            "GET",
            &format!("/api/v1/conferences/{room}/streams/{sid}"),
            None,
        )
        .await;
    assert_eq!(shown["status"], "streaming", "{shown}");
    assert_eq!(shown["connections"], 2, "{shown}");
    // A webhook says so: `conference.stream.started` again, with its second connection.
    let (_, feed) = b.call("GET", "/api/v1/events?limit=500", None).await;
    let started: Vec<Value> = feed["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["type"] == "conference.stream.started")
        .map(|e| e["data"]["connections"].clone())
        .collect();
    assert_eq!(started, [json!(1), json!(2)], "{feed}");

    // A carrier that stops (SIGTERM) hands its streams over at once: it closes its socket
    // without `stop` and gives its lease up, and the instance started again opens the next
    // socket well before the lease would have run out (1.5 s).
    let (config, base) = &places[0];
    let _again = Serve::start(config, base).await;
    let c = Api::new(base, "app1", KEY);
    let stopping = Instant::now();
    crate::common::serve::signal(instances[1].0.pid(), "-TERM");
    let (second, third, took) = taken_over(second, stopping, "stopped (SIGTERM)").await;
    assert!(
        !second.texts().iter().any(|t| t["event"] == "stop"),
        "the stream goes on: no stop on the old socket"
    );
    assert!(
        took <= Duration::from_millis(1000),
        "handed over in {took:?}"
    );

    let (status, _) = c
        .call(
            "DELETE",
            &format!("/api/v1/conferences/{room}/streams/{sid}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    third.text_event("stop", WITHIN).await;
    assert_eq!(server.accepted(), 3);
}

/// The measure these tests judge audio by: a tone whose stream lost one 20 ms frame (or got
/// one twice) is still that tone. Over the whole buffer at once, a 440 Hz tone missing one
/// frame of 8 kHz read as a fraction of its power (a phase step of 0.8 cycle cancels most
/// of it), and the room track "did not hear" a caller it carried all along.
#[test]
fn a_tone_that_lost_a_frame_is_still_that_tone() {
    let whole = tone(A_TONE, 8000, 1500);
    let mut lost = whole[..5920].to_vec();
    lost.extend_from_slice(&whole[6080..]);
    let mut twice = whole[..6080].to_vec();
    twice.extend_from_slice(&whole[5920..]);
    for (what, samples) in [("whole", &whole), ("lost", &lost), ("twice", &twice)] {
        let share = tone_share(samples, 8000, A_TONE);
        assert!(share > 0.9, "{what}: {share}");
        assert!(tone_share(samples, 8000, B_TONE) < 0.01, "{what}");
    }
}
