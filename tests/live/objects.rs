//! Recordings to object storage (issue 38), the path chosen: the node uploads the file itself.
//! The controller signs a `PUT` URL for the object (SigV4, valid minutes; the bucket's
//! credentials never leave the controller) and asks the node, over its Event Socket, for
//! `http_put <url> <file>` (mod_http_cache, loaded by `freeswitch-conf/`, in both supported
//! lines). Proven here on a real node (1.11 and 1.10.12) against a real S3 server (Garage): a
//! room's recording of a SIPp caller is put by the node, and the object in the bucket is the
//! node's file, byte for byte (size and sha256 read back from the bucket).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::garage::Garage;
use crate::live::Live;

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(live_fs, garage)),
    ignore = "needs a real FreeSWITCH and Garage: run scripts/test-deps.sh"
)]
async fn live_a_node_puts_a_finished_recording_into_the_bucket_by_a_signed_url() {
    let g = tokio::task::spawn_blocking(Garage::start).await.unwrap();
    let s3 = g.object_store("switchyard");
    let t = Live::start().await;
    let room = t.room("to-the-bucket").await;
    let caller = t.call("4001").await;
    t.joined(&room, &caller).await;
    let rec = start_recording(&t, &room).await;
    t.eventually("the room records", || async {
        t.get(&format!("/api/v1/recordings/{rec}")).await.body["status"] == "recording"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    stop_recording(&t, &room).await;
    t.eventually("the recording ended", || async {
        t.get(&format!("/api/v1/recordings/{rec}")).await.body["status"] == "ended"
    })
    .await;
    let (status, _, file) = t.raw_get(&format!("/api/v1/recordings/{rec}/file")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(file.len() > 8000, "a second of audio: {} bytes", file.len());

    let stored = t.stored_room(&room).await;
    let path = &stored.recordings[0].path;
    let key = s3.key(&format!("{}/{room}/{rec}.wav", t.app_id()));
    let url = s3.put_url(&key, Duration::from_secs(600));
    let reply = t.node_api(&format!("http_put {url} {path}")).await;
    assert!(reply.starts_with("+OK 200"), "http_put: {reply}");

    let checked = s3.check(&key).await.unwrap().expect("the object is there");
    assert_eq!(checked.size, file.len() as u64);
    let sha: String = Sha256::digest(&file)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(checked.sha256, sha, "the node's file, byte for byte");
    t.finish().await;
}

/// `[recordings] store = "s3"` end to end on a real node: a room's recording, once stopped, is
/// put into the bucket by the node, read back whole by the controller, and only then `ready`
/// (`conference.recording.ready` with its size, sha256 and a download URL). The file is then
/// served from the bucket: whole, by `Range`, and as a `302` to a signed URL, with the node's
/// copy deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(live_fs, garage)),
    ignore = "needs a real FreeSWITCH and Garage: run scripts/test-deps.sh"
)]
async fn live_a_recording_is_put_by_its_node_checked_told_ready_and_served_from_the_bucket() {
    use switchyard::conference::EventKind;

    let g = tokio::task::spawn_blocking(Garage::start).await.unwrap();
    let recordings = s3_recordings(&g);
    let s3 = recordings.object_store().unwrap().unwrap();
    let t = Live::start_with_recordings(recordings).await;
    let room = t.room("bucketed").await;
    let caller = t.call("4001").await;
    t.joined(&room, &caller).await;
    let r = t.command(&caller, "conference/unmute").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let rec = start_recording(&t, &room).await;
    let path = format!("/api/v1/recordings/{rec}");
    t.eventually("the room records", || async {
        t.get(&path).await.body["status"] == "recording"
    })
    .await;
    let shown = t.get(&path).await.body;
    assert_eq!(shown["storage"], "s3", "{shown}");
    assert_eq!(shown["upload_status"], "waiting", "{shown}");
    let (status, _, _) = t.raw_get(&format!("{path}/file")).await;
    assert_eq!(status, StatusCode::CONFLICT, "no file while it records");
    let r = t.delete(&path).await;
    assert_eq!(
        r.status,
        StatusCode::CONFLICT,
        "not deleted while it records: {r:?}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop_recording(&t, &room).await;
    t.eventually("the copy is ready", || async {
        t.get(&path).await.body["upload_status"] == "ready"
    })
    .await;
    let shown = t.get(&path).await.body;
    let size = shown["size_bytes"].as_u64().unwrap();
    let sha = shown["sha256"].as_str().unwrap().to_owned();

    // Told once, after the recording finished, with what the bucket holds.
    let events = t.events(&room).await;
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    let finished = kinds
        .iter()
        .position(|k| *k == EventKind::RecordingFinished)
        .unwrap();
    let ready: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::RecordingReady)
        .collect();
    assert_eq!(ready.len(), 1, "{kinds:?}");
    let at = kinds
        .iter()
        .position(|k| *k == EventKind::RecordingReady)
        .unwrap();
    assert!(at > finished, "{kinds:?}");
    let data = &ready[0].data;
    assert_eq!(data["size_bytes"], size);
    assert_eq!(data["sha256"], sha.as_str());
    assert!(data["duration_ms"].as_u64().unwrap() >= 1000, "{data}");
    assert!(
        data["url_expires_at"].as_str().unwrap().ends_with('Z'),
        "{data}"
    );
    let by_url = reqwest::get(data["url"].as_str().unwrap()).await.unwrap();
    assert_eq!(by_url.status().as_u16(), 200);
    assert_eq!(by_url.bytes().await.unwrap().len() as u64, size);

    // The node's file gone, the bucket still serves it.
    let stored = t.stored_room(&room).await;
    let name = std::path::Path::new(&stored.recordings[0].path)
        .file_name()
        .unwrap()
        .to_owned();
    let _ = std::fs::remove_file(t.settings.local_recordings().join(name));
    let (status, headers, body) = t.raw_get(&format!("{path}/file")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len() as u64, size);
    assert_eq!(headers["accept-ranges"], "bytes");
    let got: String = Sha256::digest(&body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(got, sha);
    let tone = crate::live::tone_share(&body, 440.0);
    assert!(tone > 0.5, "the caller's tone is in it: {tone}");
    let checked = s3
        .check(&s3.key(&format!("{}/{room}/{rec}.wav", t.app_id())))
        .await
        .unwrap()
        .expect("under <prefix>/<app>/<room>/<recording>.wav");
    assert_eq!((checked.size, checked.sha256), (size, sha));

    // A second instance, which has no access to the node's disk, serves it too.
    let mut blind = t.config().clone();
    blind.nodes[0].recordings_local_dir = Some("/nonexistent/switchyard-recordings".into());
    let other = crate::live::Controller::start(&blind).await;
    let (status, _, from_other) =
        crate::common::api::raw_get(&other.router, &format!("{path}/file"), t.app()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(from_other, body, "the same bytes through instance 2");
    // A range from the middle of the audio, through instance 2: those bytes of the object.
    let (from, to) = (body.len() / 2, body.len() / 2 + 999);
    let (status, headers, part) = crate::common::api::raw_get_with(
        &other.router,
        &format!("{path}/file"),
        t.app(),
        &[("range", &format!("bytes={from}-{to}"))],
    )
    .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.as_ref(), &body[from..=to], "the range's bytes");
    assert_eq!(
        headers["content-range"].to_str().unwrap(),
        format!("bytes {from}-{to}/{}", body.len())
    );
    other.stop().await;

    // A range, and a redirect to a signed URL.
    let (status, headers, part) = t
        .raw_get_with(&format!("{path}/file"), &[("range", "bytes=0-3")])
        .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.as_ref(), b"RIFF");
    assert!(
        headers["content-range"]
            .to_str()
            .unwrap()
            .starts_with("bytes 0-3/")
    );
    let (status, headers, _) = t.raw_get(&format!("{path}/file?redirect=true")).await;
    assert_eq!(status, StatusCode::FOUND);
    let signed = headers["location"].to_str().unwrap().to_owned();
    assert!(signed.contains("X-Amz-Signature="), "{signed}");
    let fetched = reqwest::get(&signed).await.unwrap().bytes().await.unwrap();
    assert_eq!(fetched.len() as u64, size);

    // Its retention (a day) over: the object and the record go, by one sweep.
    let key = s3.key(&format!("{}/{room}/{rec}.wav", t.app_id()));
    let rooms = t.ctl.state.rooms();
    let now = switchyard::node::supervisor::now_micros();
    assert_eq!(rooms.expire_recordings(now).await.unwrap(), 0, "not yet");
    let day = 24 * 3600 * 1_000_000;
    assert_eq!(rooms.expire_recordings(now + day + 1).await.unwrap(), 1);
    assert_eq!(
        rooms.expire_recordings(now + day + 2).await.unwrap(),
        0,
        "once"
    );
    assert_eq!(s3.size(&key).await.unwrap(), None, "the object is gone");
    assert_eq!(t.get(&path).await.status, StatusCode::NOT_FOUND);
    t.finish().await;
}

/// The bucket down as a recording ends, and the controller restarted meanwhile: the copy stays
/// `uploading`, tried again with backoff (each failure written in the store), and is made by
/// the new controller once the bucket is back. Nothing is lost, and `ready` is told once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(live_fs, garage)),
    ignore = "needs a real FreeSWITCH and Garage: run scripts/test-deps.sh"
)]
async fn live_a_recording_ended_while_the_bucket_is_down_is_copied_once_it_is_back() {
    use switchyard::conference::{EventKind, UploadStatus};

    let mut g = tokio::task::spawn_blocking(Garage::start).await.unwrap();
    let recordings = s3_recordings(&g);
    let s3 = recordings.object_store().unwrap().unwrap();
    let mut t = Live::start_with_recordings(recordings).await;
    let room = t.room("bucket-down").await;
    let caller = t.call("4001").await;
    t.joined(&room, &caller).await;
    let rec = start_recording(&t, &room).await;
    let path = format!("/api/v1/recordings/{rec}");
    t.eventually("the room records", || async {
        t.get(&path).await.body["status"] == "recording"
    })
    .await;
    tokio::task::block_in_place(|| g.stop());
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop_recording(&t, &room).await;
    t.eventually("an attempt failed and is kept for later", || async {
        let stored = t.stored_room(&room).await;
        let upload = stored.recordings[0].upload.clone().unwrap();
        upload.status == UploadStatus::Uploading && upload.attempts >= 1 && upload.error.is_some()
    })
    .await;
    assert_eq!(t.get(&path).await.body["upload_status"], "uploading");
    let (status, _, _) = t.raw_get(&format!("{path}/file")).await;
    assert_eq!(status, StatusCode::CONFLICT, "not ready: no file yet");

    // A new controller, then the bucket back.
    t.ctl.stop().await;
    t.start_controller().await;
    tokio::task::block_in_place(|| g.restart());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while t.get(&path).await.body["upload_status"] != "ready" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not ready 40 s after the bucket came back: {}",
            t.get(&path).await.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let shown = t.get(&path).await.body;
    let checked = s3
        .check(&s3.key(&format!("{}/{room}/{rec}.wav", t.app_id())))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(shown["size_bytes"], checked.size);
    assert_eq!(shown["sha256"], checked.sha256.as_str());
    assert_eq!(t.count(&room, EventKind::RecordingReady).await, 1);

    // Deleted: the object and the record.
    let key = s3.key(&format!("{}/{room}/{rec}.wav", t.app_id()));
    let r = t.delete(&path).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{r:?}");
    assert_eq!(s3.size(&key).await.unwrap(), None);
    assert_eq!(t.get(&path).await.status, StatusCode::NOT_FOUND);
    assert_eq!(t.delete(&path).await.status, StatusCode::NOT_FOUND);
    t.finish().await;
}

fn s3_recordings(g: &Garage) -> switchyard::server::config::Recordings {
    use switchyard::server::config::{Addressing, RecordingStore, Recordings};
    Recordings {
        store: RecordingStore::S3,
        endpoint: Some(g.endpoint.clone()),
        region: Some(g.region.clone()),
        bucket: Some(g.bucket.clone()),
        prefix: "calls".into(),
        addressing: Addressing::Path,
        url_expires_secs: Some(600),
        retention_days: Some(1),
        credentials: Some((g.key_id.clone(), g.secret.clone())),
    }
}

/// Credentials the bucket refuses: the recording's copy is given up (`failed`), with the
/// bucket's answer as the reason, and the file is not served (404).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(live_fs, garage)),
    ignore = "needs a real FreeSWITCH and Garage: run scripts/test-deps.sh"
)]
async fn live_a_bucket_that_refuses_the_credentials_leaves_the_copy_failed_with_the_reason() {
    let g = tokio::task::spawn_blocking(Garage::start).await.unwrap();
    let mut recordings = s3_recordings(&g);
    recordings.credentials = Some((g.key_id.clone(), "not-the-secret".into()));
    let t = Live::start_with_recordings(recordings).await;
    let room = t.room("refused").await;
    let rec = start_recording(&t, &room).await;
    let path = format!("/api/v1/recordings/{rec}");
    t.eventually("the room records", || async {
        t.get(&path).await.body["status"] == "recording"
    })
    .await;
    stop_recording(&t, &room).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while t.get(&path).await.body["upload_status"] != "failed" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not given up: {}",
            t.get(&path).await.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let shown = t.get(&path).await.body;
    let why = shown["upload_error"].as_str().unwrap_or_default();
    assert!(why.contains("403"), "the bucket's answer: {shown}");
    let (status, _, _) = t.raw_get(&format!("{path}/file")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    t.finish().await;
}

/// Starts recording `room` (answered 202); the recording's id.
async fn start_recording(t: &Live, room: &str) -> String {
    let r = t
        .post(
            &format!("/api/v1/conferences/{room}/recording/start"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    r.body["id"].as_str().unwrap().to_owned()
}

/// Stops the room's recording (answered 202).
async fn stop_recording(t: &Live, room: &str) {
    let r = t
        .post(
            &format!("/api/v1/conferences/{room}/recording/stop"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
}

/// `switchyard serve` SIGKILLed right after a recording was stopped, with the bucket down so
/// that nothing could be copied yet: a new process on the same configuration and store finds
/// the pending copy in the store, and once the bucket is back the node's file is in it, checked,
/// and `ready` is told once. The credentials reach both processes by their environment only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(live_fs, garage)),
    ignore = "needs a real FreeSWITCH and Garage: run scripts/test-deps.sh"
)]
async fn live_a_copy_pending_when_serve_is_killed_is_made_by_the_next_process() {
    use crate::common::freeswitch::{FreeSwitch, free_tcp_port};
    use crate::common::redis_server::RedisServer;
    use crate::common::serve::{Api, Serve, node_toml, until};
    use crate::common::sipp::Caller;

    crate::common::sipp::require();
    let mut g = tokio::task::spawn_blocking(Garage::start).await.unwrap();
    let fs = tokio::task::spawn_blocking(FreeSwitch::start)
        .await
        .unwrap();
    let redis = RedisServer::start();
    let base = format!("http://127.0.0.1:{}", free_tcp_port());
    let dir = fs.dir.join("controller");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("switchyard.toml");
    let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let key = "copy-kill-key";
    let mut text = format!(
        "listen = {}\nredis_url = {}\nnode_lease_ms = 1000\n[limits]\nglobal_rps = 0\njoin_timeout_ms = 4000\n{}",
        q(base.trim_start_matches("http://")),
        q(&redis.url()),
        g.recordings_toml("killed"),
    );
    let extra = format!(
        "recordings_dir = {}\n",
        q(&fs.recordings().to_string_lossy())
    );
    text.push_str(&node_toml("kcopy", &fs.esl(), &fs.password, &extra));
    text.push_str(&format!(
        "[[apps]]\nid = \"app1\"\nkey_sha256 = {}\ndids = [{}]\n",
        q(&switchyard::api::hash_key(key)),
        q(crate::pair::DID)
    ));
    std::fs::write(&config, &text).unwrap();
    let (id, secret) = (g.key_id.clone(), g.secret.clone());
    let env = [
        ("SWITCHYARD_S3_ACCESS_KEY_ID", id.as_str()),
        ("SWITCHYARD_S3_SECRET_ACCESS_KEY", secret.as_str()),
    ];
    let mut first = Serve::start_env(&config, &base, None, &env).await;
    let api = Api::new(&base, "app1", key);

    let _caller = Caller::dial(fs.sip(), crate::pair::DID, "4001", "Caller");
    let session = until(Duration::from_secs(20), "the call is listed", || async {
        let (_, body) = api.call("GET", "/api/v1/sessions?limit=10", None).await;
        body["sessions"][0]["uuid"].as_str().map(str::to_owned)
    })
    .await;
    let (status, body) = api
        .call("POST", "/api/v1/conferences", Some(json!({ "name": "k" })))
        .await;
    assert_eq!(status, 201, "{body}");
    let room = body["room_id"].as_str().unwrap().to_owned();
    until(Duration::from_secs(20), "the caller is in", || async {
        let path = format!("/api/v1/sessions/{session}/commands/conference/join");
        let _ = api
            .call("POST", &path, Some(json!({ "room_id": room })))
            .await;
        (api.members(&room).await.len() == 1).then_some(())
    })
    .await;
    let (status, body) = api
        .call(
            "POST",
            &format!("/api/v1/conferences/{room}/recording/start"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let rec = body["id"].as_str().unwrap().to_owned();
    let view = format!("/api/v1/recordings/{rec}");
    until(Duration::from_secs(20), "the room records", || async {
        let (_, r) = api.call("GET", &view, None).await;
        (r["status"] == "recording").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;

    tokio::task::block_in_place(|| g.stop());
    let (status, body) = api
        .call(
            "POST",
            &format!("/api/v1/conferences/{room}/recording/stop"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    first.kill();

    tokio::task::block_in_place(|| g.restart());
    let _second = Serve::start_env(&config, &base, None, &env).await;
    // The stop went out and the process died before applying its event. The next process's
    // snapshot on taking the node over leaves the stop, asked moments before, to that event;
    // its look once the stop is past the confirmation deadline (4 s here) ends the recording.
    // Before that look existed, the 30 s audit did (the copy was ready 31 s in).
    let shown = until(Duration::from_secs(20), "the copy is ready", || async {
        let (_, r) = api.call("GET", &view, None).await;
        (r["upload_status"] == "ready").then_some(r)
    })
    .await;
    assert_eq!(shown["status"], "ended", "{shown}");
    let s3 = g.object_store("killed");
    let object = s3.key(&format!("app1/{room}/{rec}.wav"));
    let checked = s3.check(&object).await.unwrap().expect("in the bucket");
    assert_eq!(shown["size_bytes"], checked.size, "{shown}");
    assert_eq!(shown["sha256"], checked.sha256.as_str(), "{shown}");
    assert!(checked.size > 16_000, "a second of audio: {}", checked.size);
    let (_, body) = api.call("GET", "/api/v1/events?limit=1000", None).await;
    let ready = body["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["type"] == "conference.recording.ready")
        .count();
    assert_eq!(ready, 1, "{body}");
}
