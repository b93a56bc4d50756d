//! Two controller instances on one store (`switchyard serve` processes on a real Redis, and two
//! controllers in one process on one memory store), four simulated nodes shared between them
//! (each audited every second by the instance applying its events, and handed between them as
//! the fleet settles) while sessions are muted, unmuted, kicked out and joined again through
//! both instances: no room's story ever goes back. Each session's member events, in
//! the order of its room's `seq`, are exactly the changes its commands made, one per command
//! (a stale snapshot written over newer state used to announce `muted → unmuted → muted` for
//! one mute, `left → joined → left` for one kick); the webhooks carry that same story; and
//! the state the API shows at the end is the nodes'.
//!
//! `SWITCHYARD_STALE_TEST_SECS` sets how long the traffic runs (default 30: about 30 audits of
//! each node; 60, then 40, until CI's time went past its 15 minutes).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::webhook_support;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::redis_server::RedisServer;
use common::serve::{Api, Serve, free_port, node_toml, until};
use switchyard::api::{hash_key, router};
use switchyard::server::config::Config;
use switchyard::server::start_controller;
use switchyard::sim::{SimConfig, Simulator};
use switchyard::store::memory::MemoryStore;
use tokio_util::sync::CancellationToken;
use webhook_support::{Receiver, secret};

const DID: &str = "15551230000";
const KEY: &str = "stale-test-key";
const PASSWORD: &str = "stale-test-esl";
const PREFIXES: [&str; 4] = ["stal1", "stal2", "stal3", "stal4"];
const ROOMS: usize = 8;
const CALLS_PER_ROOM: usize = 2;

fn traffic_time() -> Duration {
    let secs = std::env::var("SWITCHYARD_STALE_TEST_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    Duration::from_secs(secs)
}

fn config(listen: u16, redis: Option<&str>, sims: &[Simulator], hook: &str) -> String {
    let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let redis = redis
        .map(|url| format!("redis_url = {}\n", q(url)))
        .unwrap_or_default();
    let mut text = format!(
        "listen = {}\n{redis}cursor_secret = \"stale-test-cursor-secret-0123456789\"\n\
         [limits]\nglobal_rps = 0\nconference_ms = 0\nconference_mute_ms = 0\n\
         conference_control_ms = 0\nconf_play_ms = 0\n\
         [webhooks]\nallow_private = true\nretry_schedule_secs = [1, 1, 1, 1, 1]\ntimeout_ms = 2000\n\
         lease_ms = 1000\n\
         [[apps]]\nid = \"app1\"\nkey_sha256 = {}\nwebhook_url = {}\nwebhook_secret = {}\n\
         dids = [{}]\n",
        q(&format!("127.0.0.1:{listen}")),
        q(&hash_key(KEY)),
        q(hook),
        q(&secret()),
        q(DID),
    );
    for (sim, prefix) in sims.iter().zip(PREFIXES) {
        let esl = sim.addr().to_string();
        text.push_str(&node_toml(prefix, &esl, PASSWORD, "audit_ms = 1000\n"));
    }
    text
}

/// The session's member in the room as `api` lists it: `Some(muted)`, or `None` if not in it.
async fn member(api: &Api, room: &str, session: &str) -> Option<Option<bool>> {
    let (status, body) = api
        .call(
            "GET",
            &format!("/api/v1/conferences/{room}/members?limit=100"),
            None,
        )
        .await;
    if status != 200 {
        return None;
    }
    let members = body["members"].as_array()?;
    Some(
        members
            .iter()
            .find(|m| m["uuid"] == session)
            .map(|m| m["muted"].as_bool().unwrap_or(false)),
    )
}

/// Waits until `api` lists the session in the room with `want` (`Some(muted)`) or not at all.
async fn settled(api: &Api, room: &str, session: &str, want: Option<bool>, what: &str) {
    until(Duration::from_secs(15), what, || async {
        (member(api, room, session).await == Some(want)).then_some(())
    })
    .await;
}

/// Sends a session command until it is accepted (202; a join found already done counts).
async fn command(api: &Api, session: &str, verb: &str, body: Value) {
    let path = format!("/api/v1/sessions/{session}/commands/conference/{verb}");
    until(Duration::from_secs(15), &format!("{verb} accepted"), || {
        let body = body.clone();
        let path = path.clone();
        async move {
            let (status, answer) = api.call("POST", &path, Some(body)).await;
            match status {
                202 => Some(()),
                // A join sent again after an attempt that timed out (504, or no answer) but
                // reached the node: that attempt did it (seen once in CI).
                200 if verb == "join" && answer["status"] == "already_joined" => Some(()),
                // A command still settling (leaving, joining), or a node command in flight.
                0 | 409 | 429 | 502 | 503 | 504 => None,
                _ => panic!("{verb} of {session}: {status} {answer}"),
            }
        }
    })
    .await;
}

/// One session's traffic until `end`, through both instances in turn (each command's effect is
/// awaited on the other): what its member events must be, in order.
async fn drive(
    apis: [Api; 2],
    room: String,
    session: String,
    seed: u64,
    end: Instant,
) -> Vec<&'static str> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut story = Vec::new();
    let mut turn = seed as usize;
    let mut next = || {
        turn += 1;
        (&apis[turn % 2], &apis[(turn + 1) % 2])
    };
    let (by, seen) = next();
    command(by, &session, "join", json!({ "room_id": room })).await;
    settled(seen, &room, &session, Some(true), "joined").await;
    story.push("joined");
    let mut muted = true;
    while Instant::now() < end {
        let (by, seen) = next();
        if rng.u8(..10) < 7 {
            let verb = if muted { "unmute" } else { "mute" };
            command(by, &session, verb, json!({})).await;
            muted = !muted;
            settled(seen, &room, &session, Some(muted), verb).await;
            story.push(if muted { "muted" } else { "unmuted" });
        } else {
            command(by, &session, "leave", json!({})).await;
            settled(seen, &room, &session, None, "left").await;
            story.push("left");
            let (by, seen) = next();
            command(by, &session, "join", json!({ "room_id": room })).await;
            settled(seen, &room, &session, Some(true), "joined again").await;
            story.push("joined");
            muted = true;
        }
    }
    story
}

/// Every event of the app's feed, in order.
async fn feed(api: &Api) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = String::new();
    loop {
        let (status, body) = api
            .call(
                "GET",
                &format!("/api/v1/events?limit=1000&after={after}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let page = body["events"].as_array().cloned().unwrap_or_default();
        if page.is_empty() {
            return all;
        }
        after = body["cursor"].as_str().unwrap().to_owned();
        all.extend(page);
    }
}

/// Each session's member events (joined, left, muted, unmuted), in its room's `seq` order.
fn stories(events: &[Value]) -> BTreeMap<String, Vec<String>> {
    let mut by_room: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for e in events {
        by_room
            .entry(e["room_id"].as_str().unwrap_or_default().to_owned())
            .or_default()
            .push(e);
    }
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for events in by_room.values_mut() {
        events.sort_by_key(|e| e["seq"].as_u64());
        for e in events.iter() {
            let kind = e["type"].as_str().unwrap_or_default();
            let step = match kind.strip_prefix("conference.member.") {
                Some(s @ ("joined" | "left" | "muted" | "unmuted")) => s,
                _ => continue,
            };
            let session = e["data"]["uuid"].as_str().unwrap_or_default().to_owned();
            out.entry(session).or_default().push(step.to_owned());
        }
    }
    out
}

/// (channel, muted) of the callers in a simulated node's room.
fn node_members(sim: &Simulator, room: &str) -> BTreeSet<(String, bool)> {
    let Ok(rooms) =
        serde_json::from_str::<Value>(&sim.api(&format!("conference {room} json_list")))
    else {
        return BTreeSet::new();
    };
    rooms[0]["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["type"] == "caller")
        .map(|m| {
            (
                m["uuid"].as_str().unwrap_or_default().to_owned(),
                !m["flags"]["can_speak"].as_bool().unwrap_or(true),
            )
        })
        .collect()
}

/// Two controller instances: `serve` processes on a real Redis, or (no Redis) two controllers
/// in this process sharing one memory store, each on its own HTTP port.
enum Instances {
    Processes {
        _serves: Vec<Serve>,
        _redis: RedisServer,
        dir: std::path::PathBuf,
    },
    InProcess(Vec<CancellationToken>),
}

impl Drop for Instances {
    fn drop(&mut self) {
        match self {
            Instances::Processes { dir, .. } => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Instances::InProcess(stops) => stops.iter().for_each(CancellationToken::cancel),
        }
    }
}

async fn processes(sims: &[Simulator], hook: &str) -> ([Api; 2], Instances) {
    let redis = RedisServer::start();
    let dir = std::env::temp_dir().join(format!("switchyard-stale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut apis = Vec::new();
    let mut serves = Vec::new();
    for n in 0..2 {
        let port = free_port();
        let path = dir.join(format!("switchyard-{n}.toml"));
        std::fs::write(&path, config(port, Some(&redis.url()), sims, hook)).unwrap();
        let base = format!("http://127.0.0.1:{port}");
        serves.push(Serve::start(&path, &base).await);
        apis.push(Api::new(&base, "app1", KEY));
    }
    let instances = Instances::Processes {
        _serves: serves,
        _redis: redis,
        dir,
    };
    ([apis[0].clone(), apis[1].clone()], instances)
}

async fn in_process(sims: &[Simulator], hook: &str) -> ([Api; 2], Instances) {
    let store = Arc::new(MemoryStore::new());
    let mut apis = Vec::new();
    let mut stops = Vec::new();
    for _ in 0..2 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let config = Config::parse(&config(port, None, sims, hook), |_| None).unwrap();
        let stop = CancellationToken::new();
        let state = start_controller(store.clone(), &config, &stop).unwrap();
        for node in state.rooms().pool().nodes().iter() {
            assert!(node.wait_up(Duration::from_secs(10)).await, "node up");
        }
        let until = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, router(state))
                .with_graceful_shutdown(async move { until.cancelled().await })
                .await
        });
        apis.push(Api::new(&format!("http://127.0.0.1:{port}"), "app1", KEY));
        stops.push(stop);
    }
    (
        [apis[0].clone(), apis[1].clone()],
        Instances::InProcess(stops),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_redis_auditing_every_second_never_announce_a_step_back() {
    never_a_step_back(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_memory_store_auditing_every_second_never_announce_a_step_back() {
    never_a_step_back(false).await;
}

async fn never_a_step_back(redis: bool) {
    let mut sims = Vec::new();
    for _ in PREFIXES {
        sims.push(
            Simulator::start(SimConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                password: PASSWORD.into(),
                ..SimConfig::default()
            })
            .await
            .unwrap(),
        );
    }
    let receiver = Receiver::ok().await;
    let (apis, instances) = if redis {
        processes(&sims, &receiver.url()).await
    } else {
        in_process(&sims, &receiver.url()).await
    };

    // Rooms spread over the nodes, and calls on each room's node.
    let mut rooms = Vec::new();
    for n in 0..ROOMS {
        let (status, body) = apis[n % 2]
            .call(
                "POST",
                "/api/v1/conferences",
                Some(json!({ "name": format!("r{n}") })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        rooms.push(body["room_id"].as_str().unwrap().to_owned());
    }
    let mut sessions = Vec::new();
    for (n, room) in rooms.iter().enumerate() {
        let node = PREFIXES.iter().position(|p| room.starts_with(p)).unwrap();
        for c in 0..CALLS_PER_ROOM {
            let channel = sims[node]
                .inbound_call(DID, &format!("50{n}{c}"), "Caller")
                .unwrap();
            sessions.push((room.clone(), format!("{}-{channel}", PREFIXES[node])));
        }
    }
    let placed: HashSet<&str> = rooms.iter().map(|r| &r[..5]).collect();
    assert!(placed.len() >= 3, "rooms spread over the nodes: {rooms:?}");
    for (_, session) in &sessions {
        for api in &apis {
            until(Duration::from_secs(10), "the session is known", || async {
                (api.call("GET", &format!("/api/v1/sessions/{session}"), None)
                    .await
                    .0
                    == 200)
                    .then_some(())
            })
            .await;
        }
    }

    let end = Instant::now() + traffic_time();
    let drivers = sessions.iter().enumerate().map(|(n, (room, session))| {
        tokio::spawn(drive(
            apis.clone(),
            room.clone(),
            session.clone(),
            n as u64,
            end,
        ))
    });
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for ((_, session), driver) in sessions.iter().zip(drivers.collect::<Vec<_>>()) {
        let story = driver.await.unwrap();
        expected.insert(
            session.clone(),
            story.iter().map(|s| s.to_string()).collect(),
        );
    }
    let commands: usize = expected.values().map(Vec::len).sum();
    assert!(
        commands > sessions.len() * 5,
        "traffic ran: {commands} steps"
    );

    // A few more audits pass over the quiet rooms: they change nothing.
    let quiet = feed(&apis[0]).await.len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let events = feed(&apis[1]).await;
    assert_eq!(
        events.len(),
        quiet,
        "audits of quiet rooms announce nothing"
    );

    // The story each session's member events tell is exactly what its commands did.
    let told = stories(&events);
    for (session, story) in &expected {
        let announced = told.get(session).cloned().unwrap_or_default();
        let split = announced
            .iter()
            .zip(story)
            .take_while(|(a, b)| a == b)
            .count();
        assert!(
            announced == *story,
            "session {session}: after {split} steps in agreement, announced {:?}, done {:?} \
             ({} announced, {} done)",
            &announced[split..(split + 6).min(announced.len())],
            &story[split..(split + 6).min(story.len())],
            announced.len(),
            story.len(),
        );
    }

    // The webhooks tell the same story: every event, in seq order per room.
    let ids: BTreeSet<String> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    let delivered = until(Duration::from_secs(30), "every event delivered", || async {
        let got: BTreeSet<String> = receiver
            .delivered()
            .iter()
            .map(|r| r.json["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        ids.is_subset(&got).then(|| receiver.delivered())
    })
    .await;
    let mut first: Vec<Value> = Vec::new();
    let mut seen = HashSet::new();
    for r in &delivered {
        if seen.insert(r.json["id"].as_str().unwrap_or_default().to_owned()) {
            first.push(r.json.clone());
        }
    }
    for room in &rooms {
        let seqs: Vec<u64> = first
            .iter()
            .filter(|e| e["room_id"] == room.as_str())
            .filter_map(|e| e["seq"].as_u64())
            .collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{room}: {seqs:?}");
    }
    assert_eq!(stories(&first), told);

    // The state the API shows is the nodes'.
    for room in &rooms {
        let node = PREFIXES.iter().position(|p| room.starts_with(p)).unwrap();
        let ours: HashSet<&str> = sessions
            .iter()
            .filter(|(r, _)| r == room)
            .map(|(_, s)| &s[6..])
            .collect();
        let on_node: BTreeSet<(String, bool)> = node_members(&sims[node], room)
            .into_iter()
            .filter(|(ch, _)| ours.contains(ch.as_str()))
            .collect();
        for api in &apis {
            let listed = api.members(room).await;
            assert_eq!(listed, on_node, "{room}");
        }
    }
    drop(instances);
}
