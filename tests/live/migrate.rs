//! Live room migration (issue 37): an operator drains a node with `migrate: true`, and each of
//! its rooms moves, while it lives, to another node. On two and three real FreeSWITCH nodes with
//! SIPp callers whose calls live on different nodes (and on simulators linked the same way):
//! the room keeps its id, its members (the same conferencecalls) and their switches; no call is
//! dropped; the application hears one `conference.migrated` and no member leaving or joining;
//! the recording goes on in a new segment on the new node, with both callers heard in it; the
//! old node keeps no conference. On real nodes each caller's audio is recorded on its own node
//! all along (`uuid_record`, stereo: what the caller hears on the right): the longest stretch
//! in which a caller does not hear the other one, across the move, is each member's audio gap,
//! and must stay under 1 s.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::live;
use crate::pair;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::json;
use switchyard::conference::EventKind;
use switchyard::store::Store;

use pair::Pair;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh"
)]
async fn live_a_room_moves_off_a_drained_node_between_two_nodes_with_every_call_up() {
    moves_whole(Pair::start_real(2).await, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh"
)]
async fn live_a_room_moves_to_a_third_node_carrying_calls_from_both_others() {
    moves_whole(Pair::start_real(3).await, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_a_room_moves_off_a_drained_node_between_two_nodes_with_every_call_up() {
    moves_whole(Pair::start_sims_n(2).await, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_a_room_moves_to_a_third_node_carrying_calls_from_both_others() {
    moves_whole(Pair::start_sims_n(3).await, 2).await;
}

/// A caller's own audio recorded on its node (stereo: what it says on the left, what it hears
/// on the right) from now until [`Tap::stop`].
struct Tap {
    node: usize,
    channel: String,
    path: std::path::PathBuf,
    started: Instant,
}

impl Tap {
    async fn start(t: &Pair, node: usize, session: &str) -> Tap {
        let channel = session[6..].to_owned();
        let path = t.nodes[node]
            .recordings()
            .join(format!("tap-{}.wav", uuid::Uuid::new_v4().simple()));
        let set = t
            .node_api(node, &format!("uuid_setvar {channel} RECORD_STEREO true"))
            .await;
        assert!(set.starts_with("+OK"), "{set}");
        let started = Instant::now();
        let rec = t
            .node_api(
                node,
                &format!("uuid_record {channel} start {}", path.display()),
            )
            .await;
        assert!(rec.starts_with("+OK"), "{rec}");
        Tap {
            node,
            channel,
            path,
            started,
        }
    }

    /// Stops the recording; the longest stretch (ms) in which the caller heard no 440 Hz tone,
    /// leaving out the first and last 200 ms, and how much of the wall-clock time the file
    /// holds (a recorder that dropped time would hide a gap).
    async fn stop(self, t: &Pair) -> (u64, f64) {
        let wall = self.started.elapsed();
        let stop = t
            .node_api(
                self.node,
                &format!("uuid_record {} stop {}", self.channel, self.path.display()),
            )
            .await;
        assert!(stop.starts_with("+OK"), "{stop}");
        let bytes = t
            .eventually("the tap's file is complete", || async {
                let b = std::fs::read(&self.path).ok()?;
                (b.len() > 44).then_some(b)
            })
            .await
            .unwrap();
        live::longest_unheard(bytes, wall)
    }
}

async fn unmute(t: &Pair, session: &str) {
    let r = t.command(session, "conference/unmute", json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
}

/// A room on node 0 with a caller on node 0 and one on node 1 moves to node `to` (node 1 on
/// two nodes; node 2 on three, node 1 drained without moving its rooms so it takes none).
async fn moves_whole(t: Pair, to: usize) {
    let (room, r) = t.room("moving").await;
    assert_eq!(r, 0, "the first room goes to the first node");
    let local = t.call(0, "4001").await;
    let remote = t.call(1, "4002").await;
    t.joined(&room, &local).await;
    t.joined(&room, &remote).await;
    unmute(&t, &local).await;
    unmute(&t, &remote).await;
    t.eventually("both are unmuted", || async {
        let members = t.members(&room).await;
        members.iter().all(|m| m["muted"] == false)
    })
    .await;
    // The local call's levels, which the move must carry to the new node.
    let r = t
        .command(
            &local,
            "conference/audio",
            json!({ "volume_out": -2, "energy": 300 }),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    t.eventually("the levels are confirmed", || async {
        t.members(&room)
            .await
            .iter()
            .any(|m| m["uuid"] == local.as_str() && m["volume_out"] == -2 && m["energy"] == 300)
    })
    .await;
    let before = t.stored_room(&room).await;
    let r = t
        .patiently(
            "POST",
            &format!("/api/v1/conferences/{room}/recording/start"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let rec = r.body["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let shown = t.get(&format!("/api/v1/recordings/{rec}")).await.body;
        if shown["status"] == "recording" {
            break;
        }
        if Instant::now() > deadline {
            let listed = t.node_api(0, &format!("conference {room} json_list")).await;
            panic!(
                "the room does not record after 20 s: {shown}\nthe room: {:?}\nthe node lists: {listed}",
                t.stored_room(&room).await
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let real = t.nodes[0].is_real();
    let taps = match real {
        true => vec![
            Tap::start(&t, 0, &local).await,
            Tap::start(&t, 1, &remote).await,
        ],
        false => Vec::new(),
    };
    if real {
        // Both hear each other before the move.
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    if to == 2 {
        let r = t
            .operator(
                "POST",
                &format!("/api/v1/operator/nodes/{}/drain", pair::PREFIXES[1]),
                json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
    }
    let seen = t.events(&room).await.len();
    let asked = Instant::now();
    let r = t
        .operator(
            "POST",
            &format!("/api/v1/operator/nodes/{}/drain", pair::PREFIXES[0]),
            json!({ "migrate": true }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["migrate"], true, "{r:?}");
    let moved = t
        .eventually("the room lives on its new node", || async {
            let r = t.stored_room(&room).await;
            (r.migration.is_none() && r.node.as_str() == pair::PREFIXES[to]).then_some(r)
        })
        .await
        .unwrap();
    let took = asked.elapsed();
    if real {
        // Both hear each other after it, and the recording's new segment runs long enough
        // to judge (it opens with the members muted until their switches are set again).
        tokio::time::sleep(Duration::from_millis(2500)).await;
    }

    // The same room, members and switches; the application heard one migrated, no leave or join.
    assert_eq!(moved.id.as_str(), room);
    let ids = |r: &switchyard::conference::Room| {
        let mut v: Vec<_> = r.members.values().map(|m| m.conferencecall_id).collect();
        v.sort();
        v
    };
    assert_eq!(ids(&moved), ids(&before), "the same conferencecalls");
    assert!(
        moved.members.values().all(|m| !m.muted && !m.moving),
        "{:?}",
        moved.members
    );
    let after: Vec<_> = t.events(&room).await.into_iter().skip(seen).collect();
    let kinds: Vec<EventKind> = after.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == EventKind::Migrated).count(),
        1,
        "{kinds:?}"
    );
    assert!(
        !kinds.iter().any(|k| matches!(
            k,
            EventKind::MemberLeft
                | EventKind::MemberJoined
                | EventKind::MemberJoining
                | EventKind::MemberLeaving
                | EventKind::MemberMuted
                | EventKind::MemberUnmuted
                | EventKind::MemberAudio
        )),
        "{kinds:?}"
    );
    // The levels went with it: the new node holds them for the local call's member.
    t.eventually("the new node holds the levels", || async {
        let listed = t
            .node_api(to, &format!("conference {room} json_list"))
            .await;
        let list: serde_json::Value = serde_json::from_str(&listed).unwrap_or_default();
        list[0]["members"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m["volume_out"] == -2 && m["energy"] == 300)
            .then_some(())
    })
    .await;
    let migrated = after
        .iter()
        .find(|e| e.kind == EventKind::Migrated)
        .unwrap();
    assert_eq!(migrated.data["from_node"], pair::PREFIXES[0]);
    assert_eq!(migrated.data["to_node"], pair::PREFIXES[to]);
    let seqs: Vec<u64> = after.iter().map(|e| e.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in seq order: {seqs:?}"
    );
    let members = t.members(&room).await;
    assert_eq!(members.len(), 2, "{members:?}");

    // Every call is up; the old node keeps nothing of the room.
    assert!(
        t.channel_exists(0, &local[6..]).await,
        "the local call lives"
    );
    assert!(
        t.channel_exists(1, &remote[6..]).await,
        "the remote call lives"
    );
    let old = t.node_api(0, &format!("conference {room} list")).await;
    t.eventually("the old node has no such conference", || async {
        let old = t.node_api(0, &format!("conference {room} list")).await;
        (!old.contains(';')).then_some(())
    })
    .await;
    let _ = old;
    let on_old = t
        .store()
        .rooms_on_node(&switchyard::conference::NodePrefix::parse(pair::PREFIXES[0]).unwrap())
        .await
        .unwrap();
    assert!(on_old.is_empty(), "{on_old:?}");

    // The recording went on: a segment on the old node, the rest on the new one.
    let view = t.get(&format!("/api/v1/recordings/{rec}")).await;
    assert_eq!(view.body["status"], "recording", "{view:?}");
    let segments = view.body["segments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(segments.len(), 1, "{view:?}");
    assert_eq!(segments[0]["node"], pair::PREFIXES[0], "{view:?}");

    if real {
        let mut gaps = Vec::new();
        for tap in taps {
            gaps.push(tap.stop(&t).await);
        }
        eprintln!(
            "migration: room moved in {took:?}; each caller's longest gap hearing the other (ms, share of wall time recorded): {gaps:?}"
        );
        for (gap, held) in gaps {
            assert!(gap < 1000, "an audio gap of {gap} ms");
            assert!(
                held > 0.9,
                "the tap holds {held:.2} of the time: it dropped some"
            );
        }
        // Both callers are heard in the new segment.
        let r = t
            .patiently(
                "POST",
                &format!("/api/v1/conferences/{room}/recording/stop"),
                json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
        t.eventually("the recording ends", || async {
            t.get(&format!("/api/v1/recordings/{rec}")).await.body["status"] == "ended"
        })
        .await;
        let wav = t.raw_get(&format!("/api/v1/recordings/{rec}/file")).await;
        assert_eq!(wav.0, StatusCode::OK);
        // Members arrive on the new node muted, as every join does, and are unmuted as their
        // switches are set again: the segment opens with up to 0.8 s without them (four live
        // tests at a time). Its second half holds them.
        let (samples, rate) = live::wav_samples(&wav.2);
        let share = live::windows_with_tone(&samples, rate, 440.0);
        let late = live::windows_with_tone(&samples[samples.len() / 2..], rate, 440.0);
        eprintln!(
            "migration: the new segment ({:.1} s) holds the callers' tone in {:.0} % of it, {:.0} % of its second half",
            samples.len() as f64 / f64::from(rate),
            share * 100.0,
            late * 100.0
        );
        assert!(
            late > 0.8,
            "the new segment holds the callers' tone: {share:.2} of it, {late:.2} of its second half"
        );
    }
}

/// `switchyard serve` drives a room's move and is SIGKILLed after the room switched to its new
/// node, with its members on their way: a new process on the same configuration (and store)
/// takes the move over and carries it through. The room ends up whole on the new node (both
/// callers in its conference there, none on the old node, every call up), and the application
/// hears `conference.migrated` once and no member leave or join.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh"
)]
async fn live_a_move_whose_driver_is_killed_midway_ends_whole_on_one_node() {
    use crate::common::freeswitch::{FreeSwitch, free_tcp_port};
    use crate::common::redis_server::RedisServer;
    use crate::common::serve::{Api, Serve, node_toml, until};
    use crate::common::sipp::Caller;

    crate::common::sipp::require();
    let (a, b) = tokio::join!(
        tokio::task::spawn_blocking(FreeSwitch::start),
        tokio::task::spawn_blocking(FreeSwitch::start)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let redis = RedisServer::start();
    let base = format!("http://127.0.0.1:{}", free_tcp_port());
    let dir = a.dir.join("controller");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("switchyard.toml");
    let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let (key, operator) = ("move-kill-key", "move-kill-operator");
    let mut text = format!(
        "listen = {}\nredis_url = {}\nadmin_key_sha256 = {}\nnode_lease_ms = 1000\n\
         cursor_secret = \"move-kill-cursor-secret-0123456789\"\n\
         [limits]\nglobal_rps = 0\nconference_ms = 50\nconference_mute_ms = 50\n\
         conference_control_ms = 50\nconf_play_ms = 50\n",
        q(base.trim_start_matches("http://")),
        q(&redis.url()),
        q(&switchyard::api::hash_key(operator)),
    );
    for (prefix, fs) in [("kilna", &a), ("kilnb", &b)] {
        let extra = format!(
            "profile = \"switchyard\"\nrecordings_dir = {}\nnode_sip = {}\n",
            q(&fs.recordings().to_string_lossy()),
            q(&fs.node_sip().to_string())
        );
        text.push_str(&node_toml(prefix, &fs.esl(), &fs.password, &extra));
    }
    text.push_str(&format!(
        "[[apps]]\nid = \"app1\"\nkey_sha256 = {}\ndids = [{}]\n",
        q(&switchyard::api::hash_key(key)),
        q(pair::DID)
    ));
    std::fs::write(&config, text).unwrap();
    let mut first = Serve::start(&config, &base).await;
    let api = Api::new(&base, "app1", key);
    let sofia_up = |fs: &FreeSwitch| {
        fs.api("sofia status")
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("nodes") && l.contains("RUNNING"))
    };
    until(
        Duration::from_secs(20),
        "both nodes profiles run",
        || async { (sofia_up(&a) && sofia_up(&b)).then_some(()) },
    )
    .await;

    let _callers = [
        Caller::dial(a.sip(), pair::DID, "4001", "Caller A"),
        Caller::dial(b.sip(), pair::DID, "4002", "Caller B"),
    ];
    let sessions: Vec<String> = until(Duration::from_secs(20), "both calls listed", || async {
        let (_, body) = api.call("GET", "/api/v1/sessions?limit=100", None).await;
        let mut s: Vec<String> = body["sessions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["uuid"].as_str().map(str::to_owned))
            .collect();
        s.sort();
        (s.len() == 2).then_some(s)
    })
    .await;
    let (status, body) = api
        .call(
            "POST",
            "/api/v1/conferences",
            Some(json!({ "name": "kill-move" })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let room = body["room_id"].as_str().unwrap().to_owned();
    assert!(room.starts_with("kilna"), "{room}");
    let view = format!("/api/v1/conferences/{room}");
    until(Duration::from_secs(20), "the room is live", || async {
        let (_, r) = api.call("GET", &view, None).await;
        (r["status"] == "progressing").then_some(())
    })
    .await;
    for s in &sessions {
        for verb in ["join", "unmute"] {
            until(
                Duration::from_secs(20),
                "the command is accepted",
                || async {
                    let path = format!("/api/v1/sessions/{s}/commands/conference/{verb}");
                    let body = match verb {
                        "join" => json!({ "room_id": room }),
                        _ => json!({}),
                    };
                    let (status, _) = api.call("POST", &path, Some(body)).await;
                    (status == 202).then_some(())
                },
            )
            .await;
        }
    }
    until(Duration::from_secs(20), "both in, unmuted", || async {
        let members = api.members(&room).await;
        (members.len() == 2 && members.iter().all(|(_, muted)| !muted)).then_some(())
    })
    .await;
    let events = |api: Api| async move {
        let (_, body) = api.call("GET", "/api/v1/events?limit=1000", None).await;
        body["events"].as_array().cloned().unwrap_or_default()
    };
    let seen = events(api.clone()).await.len();

    let drained = reqwest::Client::new()
        .post(format!("{base}/api/v1/operator/nodes/kilna/drain"))
        .header("X-Admin-Key", operator)
        .header("Content-Type", "application/json")
        .body(json!({ "migrate": true }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(drained.status(), 200);
    // SIGKILL as soon as the room lives on the new node with its move not over.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, r) = api.call("GET", &view, None).await;
        if r["node"] == "kilnb" && !r["migrating"].is_null() {
            first.kill();
            break;
        }
        assert!(
            r["migrating"].is_null() || r["node"] == "kilna",
            "missed the move: {r}"
        );
        assert!(Instant::now() < deadline, "the room never switched: {r}");
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let _second = Serve::start(&config, &base).await;
    let moved = until(
        Duration::from_secs(30),
        "the move is carried through",
        || async {
            let (_, r) = api.call("GET", &view, None).await;
            (r["node"] == "kilnb" && r["migrating"].is_null()).then_some(r)
        },
    )
    .await;
    assert_eq!(moved["status"], "progressing", "{moved}");

    // Whole on the new node, nobody on the old one, every call up.
    let members = api.members(&room).await;
    assert_eq!(members.len(), 2, "{members:?}");
    assert!(members.iter().all(|(_, muted)| !muted), "{members:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = b
            .api(&format!("conference {room} json_list"))
            .unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&list).unwrap_or_default();
        let callers: Vec<&str> = v[0]["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["caller_id_number"].as_str())
            .filter(|n| *n != "switchyard" && *n != "0")
            .collect();
        if callers.len() == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "both callers in the new node's conference: {list}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    until(
        Duration::from_secs(10),
        "no conference left on the old node",
        || async {
            let list = a
                .api(&format!("conference {room} list"))
                .unwrap_or_default();
            (!list.contains(';')).then_some(())
        },
    )
    .await;
    for (fs, s) in [(&a, &sessions), (&b, &sessions)] {
        let here: Vec<&String> = s
            .iter()
            .filter(|id| fs.api(&format!("uuid_exists {}", &id[6..])).as_deref() == Some("true"))
            .collect();
        assert_eq!(here.len(), 1, "each node keeps its own call up");
    }
    let after: Vec<serde_json::Value> = events(api.clone()).await.into_iter().skip(seen).collect();
    let kinds: Vec<&str> = after
        .iter()
        .filter(|e| e["room_id"] == room)
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "conference.migrated")
            .count(),
        1,
        "{kinds:?}"
    );
    assert!(
        !kinds.iter().any(|k| k.starts_with("conference.member.")),
        "{kinds:?}"
    );
}

/// With `[recordings] store = "s3"` (a real Garage), a recording made across a move is copied
/// whole: the part written before the move by the node the room left, the rest by the new
/// one, each under the recording's key (`….part1.wav` beside `….wav`). The recording is
/// `ready` only once both are in the bucket, told once with both, and each part downloads and
/// holds the callers' tone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(live_fs, garage)),
    ignore = "needs a real FreeSWITCH and Garage: run scripts/test-deps.sh"
)]
async fn live_a_recording_across_a_move_is_copied_part_by_part_and_ready_once_whole() {
    use sha2::{Digest, Sha256};

    let g = tokio::task::spawn_blocking(crate::common::garage::Garage::start)
        .await
        .unwrap();
    let t = Pair::start_real_s3(2, &g).await;
    let (room, r) = t.room("moving-s3").await;
    assert_eq!(r, 0);
    let local = t.call(0, "4001").await;
    let remote = t.call(1, "4002").await;
    t.joined(&room, &local).await;
    t.joined(&room, &remote).await;
    unmute(&t, &local).await;
    unmute(&t, &remote).await;
    let path = format!("/api/v1/conferences/{room}/recording");
    let r = t
        .patiently("POST", &format!("{path}/start"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let rec = r.body["id"].as_str().unwrap().to_owned();
    let view = format!("/api/v1/recordings/{rec}");
    t.eventually("the room records", || async {
        t.get(&view).await.body["status"] == "recording"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
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
        (r.migration.is_none() && r.node.as_str() == pair::PREFIXES[1]).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = t
        .patiently("POST", &format!("{path}/stop"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let deadline = Instant::now() + Duration::from_secs(40);
    let shown = loop {
        let shown = t.get(&view).await.body;
        if shown["upload_status"] == "ready" {
            break shown;
        }
        assert!(Instant::now() < deadline, "not ready: {shown}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let part = &shown["segments"][0];
    assert_eq!(part["node"], pair::PREFIXES[0], "{shown}");
    assert_eq!(part["upload_status"], "ready", "{shown}");

    // Told once, with both parts.
    let ready: Vec<_> = t
        .events(&room)
        .await
        .into_iter()
        .filter(|e| e.kind == EventKind::RecordingReady)
        .collect();
    assert_eq!(ready.len(), 1);
    let data = &ready[0].data;
    assert_eq!(data["sha256"], shown["sha256"]);
    assert_eq!(data["parts"][0]["sha256"], part["sha256"], "{data}");
    assert_eq!(data["parts"][0]["size_bytes"], part["size_bytes"], "{data}");

    // Each part from the bucket, as checked, with the callers' tone in it.
    for (url, of) in [
        (format!("{view}/file?part=1"), part),
        (format!("{view}/file"), &shown),
    ] {
        let (status, _, bytes) = t.raw_get(&url).await;
        assert_eq!(status, StatusCode::OK, "{url}");
        let sha: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(of["sha256"], sha.as_str(), "{url}");
        assert_eq!(of["size_bytes"], bytes.len() as u64, "{url}");
        let tone = live::tone_share(&bytes, 440.0);
        assert!(tone > 0.5, "{url}: the callers' tone in {tone}");
    }
    let (status, _, _) = t.raw_get(&format!("{view}/file?part=2")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "one earlier part only");
}
