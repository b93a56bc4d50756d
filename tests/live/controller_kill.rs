//! `switchyard serve` SIGKILLed under traffic, on a real FreeSWITCH with SIP callers and a real
//! Redis: a new process on the same configuration repairs the store from the node (what happened
//! while no controller listened included) and delivers every event of the room's outbox as a
//! webhook, at least once, in `seq` order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::live;
use crate::webhook_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::json;

use common::freeswitch::{FreeSwitch, free_tcp_port};
use common::redis_server::RedisServer;
use common::serve::{Api, Serve, until};
use common::sipp::Caller;
use live::{caller_members, within};
use switchyard::api::hash_key;
use webhook_support::{Receiver, secret};

const DID: &str = "15551230000";
const KEY: &str = "kill-test-key";

/// (channel, muted) of the node's members of `room`, control leg left out.
fn node_members(fs: &FreeSwitch, room: &str, control: &str) -> BTreeSet<(String, bool)> {
    let text = fs
        .api(&format!("conference {room} json_list"))
        .unwrap_or_default();
    caller_members(&text, control)
        .into_iter()
        .map(|(channel, _, muted)| (channel, muted))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh"
)]
async fn live_a_controller_killed_under_traffic_loses_nothing() {
    let fs = tokio::task::spawn_blocking(FreeSwitch::start)
        .await
        .unwrap();
    let redis = RedisServer::start();
    let receiver = Receiver::ok().await;
    let port = free_tcp_port();
    let base = format!("http://127.0.0.1:{port}");
    let dir = fs.dir.join("controller");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("switchyard.toml");
    let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
    std::fs::write(
        &config,
        format!(
            "listen = {}\nredis_url = {}\ncursor_secret = \"kill-test-cursor-secret-0123456789\"\n\
             [limits]\nglobal_rps = 0\nconference_ms = 50\nconference_mute_ms = 50\n\
             conference_control_ms = 50\nconf_play_ms = 50\n\
             [webhooks]\nallow_private = true\nretry_schedule_secs = [1, 1, 1, 1, 1]\ntimeout_ms = 2000\n\
             [[nodes]]\nname = \"live\"\nprefix = \"live1\"\nesl = {}\npassword = {}\n\
             profile = \"switchyard\"\nrecordings_dir = {}\n\
             [[apps]]\nid = \"app1\"\nkey_sha256 = {}\nwebhook_url = {}\nwebhook_secret = {}\n\
             dids = [{}]\n",
            q(&format!("127.0.0.1:{port}")),
            q(&redis.url()),
            q(&fs.esl()),
            q(&fs.password),
            q(&fs.recordings().to_string_lossy()),
            q(&hash_key(KEY)),
            q(&receiver.url()),
            q(&secret()),
            q(DID),
        ),
    )
    .unwrap();
    let mut serve = Serve::start(&config, &base).await;
    let api = Api::new(&base, "app1", KEY);

    // Six SIP callers, one room, everyone in.
    let callers: Vec<Caller> = (0..6)
        .map(|n| Caller::dial(fs.sip(), DID, &format!("400{n}"), &format!("Caller {n}")))
        .collect();
    let sessions: Vec<String> = until(Duration::from_secs(20), "six sessions listed", || async {
        let (_, body) = api.call("GET", "/api/v1/sessions?limit=100", None).await;
        let sessions: Vec<String> = body["sessions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["uuid"].as_str().map(str::to_owned))
            .collect();
        (sessions.len() == callers.len()).then_some(sessions)
    })
    .await;
    let (status, body) = api
        .call(
            "POST",
            "/api/v1/conferences",
            Some(json!({ "name": "kill" })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let room = body["room_id"].as_str().unwrap().to_owned();
    for s in &sessions {
        within(Duration::from_secs(10), "the join is accepted", || async {
            let path = format!("/api/v1/sessions/{s}/commands/conference/join");
            let (status, _) = api
                .call("POST", &path, Some(json!({ "room_id": room })))
                .await;
            status == 202
        })
        .await;
    }
    let members_path = format!("/api/v1/conferences/{room}/members?limit=100");
    within(Duration::from_secs(20), "six members joined", || async {
        let (_, body) = api.call("GET", &members_path, None).await;
        body["members"].as_array().is_some_and(|m| m.len() == 6)
    })
    .await;

    // Traffic: mutes and unmutes round the room, while the controller is SIGKILLed mid-way.
    let traffic = {
        let (sessions, base) = (sessions.clone(), base.clone());
        tokio::spawn(async move {
            let api = Api::new(&base, "app1", KEY);
            let mut answered = 0;
            for round in 0..40 {
                for s in &sessions {
                    let verb = if round % 2 == 0 { "unmute" } else { "mute" };
                    let path = format!("/api/v1/sessions/{s}/commands/conference/{verb}");
                    if api.call("POST", &path, Some(json!({}))).await.0 == 202 {
                        answered += 1;
                    }
                }
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
            answered
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    serve.kill();
    // While no controller listens: one caller hangs up, an operator unmutes another.
    let gone = sessions[0][6..].to_owned();
    assert!(
        fs.api(&format!("uuid_kill {gone}"))
            .unwrap()
            .starts_with("+OK")
    );
    let answered = traffic.await.unwrap();
    assert!(
        answered > 0,
        "the traffic reached the controller before the kill"
    );
    let mut serve = Serve::start(&config, &base).await;

    // The store equals the node again.
    let (_, body) = api
        .call("GET", &format!("/v1.0/conferences/{room}"), None)
        .await;
    assert_eq!(body["status"], "progressing", "{body}");
    let listed = until(
        Duration::from_secs(30),
        "the API lists what the node has",
        || async {
            let listed = api.members(&room).await;
            let on_node: BTreeSet<_> = node_members(&fs, &room, "")
                .into_iter()
                .filter(|(ch, _)| sessions.iter().any(|s| s[6..] == *ch))
                .collect();
            (listed == on_node && listed.len() == 5).then_some(listed)
        },
    )
    .await;
    assert!(!listed.iter().any(|(ch, _)| ch == &gone), "{listed:?}");

    // Every event of the room reaches the webhook: seqs 1..=last, in order of first arrival.
    let store = switchyard::store::redis::RedisStore::connect(&redis.url())
        .await
        .unwrap();
    let app = switchyard::conference::AppId::parse("app1").unwrap();
    // The room's events as the outbox holds them (its seq also counts changes that tell the
    // application nothing, so the outbox, not 1..=seq, is the list to expect).
    let outbox = || async {
        use switchyard::store::Store;
        store
            .outbox(&app, None, 10_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|row| row.event.room.as_str() == room)
            .map(|row| (row.event.seq, format!("{:?}", row.event.kind)))
            .collect::<Vec<(u64, String)>>()
    };
    let expected: Vec<u64> = outbox().await.iter().map(|(s, _)| *s).collect();
    assert!(
        expected.len() > 20,
        "the traffic's events are in the outbox: {expected:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let seqs: BTreeSet<u64> = webhook_support::seqs_of(&receiver.delivered(), &room)
            .into_iter()
            .collect();
        let missing: Vec<u64> = expected
            .iter()
            .copied()
            .filter(|s| !seqs.contains(s))
            .collect();
        if missing.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            let outbox = outbox().await;
            let got: Vec<(u64, String)> = receiver
                .delivered()
                .iter()
                .filter(|r| r.room() == room)
                .map(|r| (r.seq(), r.json["type"].as_str().unwrap_or("").to_owned()))
                .collect();
            panic!(
                "webhooks of seqs {missing:?} never arrived;\noutbox: {outbox:?}\ndelivered: {got:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut first: BTreeMap<u64, usize> = BTreeMap::new();
    for (i, s) in webhook_support::seqs_of(&receiver.delivered(), &room)
        .into_iter()
        .enumerate()
    {
        first.entry(s).or_insert(i);
    }
    let order: Vec<u64> = {
        let mut by_arrival: Vec<(usize, u64)> = first.iter().map(|(s, i)| (*i, *s)).collect();
        by_arrival.sort();
        by_arrival.into_iter().map(|(_, s)| s).collect()
    };
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "webhooks of the room in seq order");
    serve.kill();
    drop(callers);
}
