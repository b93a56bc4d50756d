//! The core API flow with the Redis store (a real redis-server, and a real three-master Redis
//! Cluster): create → call → join → mute → play → leave → delete, cooldowns and command_uid
//! held in Redis, pagination.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use switchyard::conference::EventKind;
use switchyard::store::redis::RedisStore;

use common::api::{A, B, TestLab, assert_error, eventually, options};
use common::redis_server::RedisServer;

#[tokio::test]
async fn the_core_flow_against_redis() {
    let server = RedisServer::start();
    core_flow(RedisStore::connect(&server.url()).await.unwrap()).await;
}

/// The same flow on a three-master Redis Cluster (`redis+cluster://`), the app over three
/// shards (one per master): names stay unique, listings page across the shards.
#[tokio::test]
async fn the_core_flow_against_a_redis_cluster() {
    let cluster = common::redis_cluster::RedisCluster::start();
    let store = RedisStore::connect(&cluster.url()).await.unwrap();
    core_flow(store.with_shards(3)).await;
}

async fn core_flow(store: RedisStore) {
    let t = TestLab::start(store, options()).await;
    let room = t.room(A, "standup").await;
    let dup = t
        .post("/api/v1/conferences", A, json!({ "name": "standup" }))
        .await;
    assert_error(&dup, StatusCode::CONFLICT);
    assert_eq!(dup.body["detail"]["room_id"], room.as_str());
    let s = t.call(A, "1001").await;
    t.sim().stall_events(true);
    assert_eq!(t.join(A, &s, &room).await.status, StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        t.members(A, &room).await.is_empty(),
        "not before add-member"
    );
    t.sim().stall_events(false);
    eventually("joined", || async { t.members(A, &room).await.len() == 1 }).await;
    assert_eq!(t.members(A, &room).await[0]["muted"], true);
    let unmute = format!("/api/v1/sessions/{s}/commands/conference/unmute");
    let first = t.post(&unmute, A, json!({ "command_uid": "x" })).await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    let again = t.post(&unmute, A, json!({ "command_uid": "x" })).await;
    assert_eq!(again.body, first.body);
    let r = t.command(A, &s, "conference/mute").await;
    assert!(
        r.status == StatusCode::TOO_MANY_REQUESTS || r.status == StatusCode::CONFLICT,
        "{r:?}"
    );
    eventually("unmuted", || async {
        t.members(A, &room).await[0]["muted"] == false
    })
    .await;
    let r = t.command(A, &s, "conference/mute").await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body["detail"]["group"], "conference_mute");
    let play = t
        .post(
            &format!("/api/v1/conferences/{room}/play"),
            A,
            json!({ "urls": ["https://x.example/a.wav"] }),
        )
        .await;
    assert_eq!(play.status, StatusCode::ACCEPTED);
    eventually("played", || async {
        t.count(A, EventKind::PlayFinished).await == 1
    })
    .await;
    assert_error(
        &t.get(&format!("/api/v1/conferences/{room}"), B).await,
        StatusCode::FORBIDDEN,
    );
    tokio::time::sleep(Duration::from_millis(320)).await;
    let r = t.command(A, &s, "conference/leave").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    eventually("left", || async { t.members(A, &room).await.is_empty() }).await;
    for i in 0..3 {
        t.post("/api/v1/conferences", A, json!({ "name": format!("p{i}") }))
            .await;
    }
    let p1 = t.get("/api/v1/conferences?limit=3", A).await;
    assert_eq!(p1.body["conferences"].as_array().unwrap().len(), 3);
    let cursor = p1.body["cursor"].as_str().unwrap();
    let p2 = t
        .get(&format!("/api/v1/conferences?limit=3&cursor={cursor}"), A)
        .await;
    assert_eq!(p2.body["conferences"].as_array().unwrap().len(), 1);
    assert_eq!(p2.body["cursor"], "");
    let r = t.delete(&format!("/api/v1/conferences/{room}"), A).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_error(
        &t.get(&format!("/api/v1/conferences/{room}"), A).await,
        StatusCode::NOT_FOUND,
    );
}

/// A mute on a node this instance applies is one room write: its intent goes with the node's
/// confirmation (`node/intents.rs`), where it was written alone before the command and then
/// again with the confirmation. A node that does not confirm within the window has the intent
/// written alone, before the answer, and its confirmation written when it comes; the member
/// stays as asked either way.
#[tokio::test]
async fn a_switch_is_written_with_its_confirmation() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let t = TestLab::start(store, options()).await;
    let room = t.room(A, "folded").await;
    let s = t.call(A, "1001").await;
    t.joined(A, &room, &s).await;
    let muted = |want: bool| {
        let (t, room) = (&t, &room);
        async move { t.members(A, room).await[0]["muted"] == want }
    };
    let hsets = |calls: &std::collections::HashMap<String, u64>| calls.get("hset").copied();

    let before = server.command_calls().await;
    let r = t.command(A, &s, "conference/unmute").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    eventually("unmuted", || muted(false)).await;
    let after = server.command_calls().await;
    let written = hsets(&after).unwrap_or(0) - hsets(&before).unwrap_or(0);
    assert_eq!(
        written, 1,
        "the unmute and its confirmation in one room write"
    );

    // A node that holds its events back: the intent is written alone, as asked.
    tokio::time::sleep(Duration::from_millis(320)).await;
    t.sim().stall_events(true);
    let before = server.command_calls().await;
    let again = t
        .post(
            &format!("/api/v1/sessions/{s}/commands/conference/mute"),
            A,
            json!({ "command_uid": "m1" }),
        )
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{again:?}");
    let asked = server.command_calls().await;
    assert_eq!(
        hsets(&asked).unwrap_or(0) - hsets(&before).unwrap_or(0),
        1,
        "the intent written alone before the answer"
    );
    assert_eq!(
        t.members(A, &room).await[0]["muted"],
        false,
        "not yet confirmed"
    );
    // Asked again with its uid: the same answer, nothing written.
    let repeat = t
        .post(
            &format!("/api/v1/sessions/{s}/commands/conference/mute"),
            A,
            json!({ "command_uid": "m1" }),
        )
        .await;
    assert_eq!(repeat.body, again.body);
    t.sim().stall_events(false);
    eventually("muted", || muted(true)).await;
}

/// A member command the node carried out while the store does not answer (an outage, a
/// failover under way) is answered 202, not 503: the node has it, its confirmation is applied
/// once the store answers again, and the member ends as asked. Redis is reached through a
/// proxy that holds its replies back from the moment the node has carried the command out.
#[tokio::test]
async fn a_command_carried_out_while_the_store_does_not_answer_is_accepted() {
    let server = RedisServer::start();
    let proxy = common::proxy::Proxy::start(format!("127.0.0.1:{}", server.port)).await;
    let store = RedisStore::connect(&format!("redis://{}/", proxy.addr))
        .await
        .unwrap();
    let t = TestLab::start(store, options()).await;
    let room = t.room(A, "outage").await;
    let s = t.call(A, "1001").await;
    t.joined(A, &room, &s).await;
    let on_node = || {
        let text = t.sim().api(&format!("conference {room} json_list"));
        let rooms: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        rooms[0]["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| {
                Some(m["uuid"].as_str().unwrap_or_default()) == s.split_once('-').map(|(_, c)| c)
            })
            .map(|m| !m["flags"]["can_speak"].as_bool().unwrap_or(true))
            .collect::<Vec<bool>>()
    };
    assert_eq!(on_node(), [true], "joined muted");

    // The node holds its events back (no confirmation to fold the intent into); once it has
    // carried the unmute out, Redis stops answering: the intent's write cannot be made.
    t.sim().stall_events(true);
    let asked = std::time::Instant::now();
    let (r, ()) = tokio::join!(t.command(A, &s, "conference/unmute"), async {
        while on_node() != [false] {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        proxy.hold_replies();
    });
    let took = asked.elapsed();
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert!(took < Duration::from_secs(3), "answered after {took:?}");
    proxy.asked_while_held().await;
    proxy.release_replies();
    t.sim().stall_events(false);
    eventually("the store has it unmuted", || async {
        t.members(A, &room).await[0]["muted"] == false
    })
    .await;
}

/// Two controller instances on one Redis and one media node: a cooldown taken through one is
/// held for the other (the limits live in the store, not in the process).
#[tokio::test]
async fn two_instances_enforce_one_cooldown() {
    use std::sync::Arc;
    use switchyard::api::{ApiState, AppKeys};
    use switchyard::conference::NodePrefix;
    use switchyard::node::{AppDirectory, NodeConfig};
    use switchyard::rooms::Cooldowns;
    use switchyard::server::start_rooms;
    use tokio_util::sync::CancellationToken;

    let server = RedisServer::start();
    let cooldowns = Cooldowns {
        conf_play: Duration::from_secs(5),
        conference_control: Duration::from_secs(5),
        conference: Duration::from_millis(300),
        conference_mute: Duration::from_secs(5),
    };
    let mut opts = options();
    opts.cooldowns = cooldowns;
    let one = TestLab::start(
        RedisStore::connect(&server.url()).await.unwrap(),
        opts.clone(),
    )
    .await;
    // The second instance: its own process state, the same Redis, the same node.
    let stop = CancellationToken::new();
    let mut node = NodeConfig::new(
        NodePrefix::parse("lab01").unwrap(),
        one.sim().addr().to_string(),
        "ClueCon",
    );
    node.recordings_dir = opts.recordings_dir.to_string_lossy().into_owned();
    let mut directory = AppDirectory::new();
    let mut keys = AppKeys::new();
    for (app, key) in &opts.apps {
        directory.add_app(app.clone(), []);
        keys.add_plain(app.clone(), key);
    }
    let store = Arc::new(RedisStore::connect(&server.url()).await.unwrap());
    let rooms = start_rooms(store, vec![node], directory, cooldowns, &stop);
    let two_state = ApiState::new(rooms, keys, opts.api.clone());
    for n in two_state.rooms().pool().nodes().iter() {
        assert!(n.wait_up(Duration::from_secs(5)).await);
    }
    let two = switchyard::api::router(two_state);
    let send2 = |method: &'static str, path: String, body: serde_json::Value| {
        let two = two.clone();
        async move { common::api::send(&two, method, &path, Some(A), Some(body)).await }
    };

    let room = one.room(A, "shared").await;
    let s = one.call(A, "1001").await;
    one.joined(A, &room, &s).await;
    // Unmute through the first instance, confirmed by the node.
    assert_eq!(
        one.command(A, &s, "conference/unmute").await.status,
        StatusCode::ACCEPTED
    );
    eventually("unmuted", || async {
        one.members(A, &room).await[0]["muted"] == false
    })
    .await;
    // The second instance refuses a mute of the same session: the group's cooldown is held.
    let refused = send2(
        "POST",
        format!("/api/v1/sessions/{s}/commands/conference/mute"),
        json!({}),
    )
    .await;
    assert_error(&refused, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.body["detail"]["group"], "conference_mute");
    let retry: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&retry), "{retry}");
    // Room playback likewise, per room.
    let play = format!("/api/v1/conferences/{room}/play");
    let urls = json!({ "urls": ["https://cdn.example.com/a.wav"] });
    assert_eq!(
        one.post(&play, A, urls.clone()).await.status,
        StatusCode::ACCEPTED
    );
    let refused = send2("POST", play.clone(), urls).await;
    assert_error(&refused, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.body["detail"]["group"], "conf_play");
    stop.cancel();
}

/// A call's session → app lookup is written before its record: a request in between is told
/// the session is not found yet (and retried), not that it belongs to another app; another
/// app is still told it does. (Joins racing a call's arrival were refused 403 under load.)
#[tokio::test]
async fn a_call_being_stored_is_not_found_yet_not_forbidden() {
    let server = RedisServer::start();
    let t = TestLab::start(RedisStore::connect(&server.url()).await.unwrap(), options()).await;
    let room = t.room(A, "arriving").await;
    let stored = t.call(A, "1001").await;
    let arriving = format!("{}-00000000-0000-4000-8000-00000000a11e", &stored[..5]);
    let id = switchyard::conference::SessionId::parse(&arriving).unwrap();
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(switchyard::store::keys::session_app(&id))
        .arg(A.0)
        .query_async(&mut conn)
        .await
        .unwrap();
    let r = t.join(A, &arriving, &room).await;
    assert_error(&r, StatusCode::NOT_FOUND);
    assert_eq!(r.body["error"], "Session not found", "{r:?}");
    let r = t.get(&format!("/api/v1/sessions/{arriving}"), B).await;
    assert_error(&r, StatusCode::FORBIDDEN);
}

/// A burst of creates that all read the same room counts is spread over the nodes, not piled on
/// the first (each was placed on the node with the fewest rooms as the store counted them
/// before any of the burst was stored: all 20 on lab01).
#[tokio::test]
async fn a_burst_of_rooms_is_spread_over_the_nodes() {
    let server = RedisServer::start();
    let mut opts = options();
    opts.nodes = 4;
    let t = TestLab::start(RedisStore::connect(&server.url()).await.unwrap(), opts).await;
    let creates = (0..20).map(|i| {
        let t = &t;
        async move {
            let r = t
                .post(
                    "/api/v1/conferences",
                    A,
                    json!({ "name": format!("burst-{i}") }),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
            r.body["room_id"].as_str().unwrap()[..5].to_owned()
        }
    });
    let nodes = futures_util::future::join_all(creates).await;
    let mut per_node = std::collections::BTreeMap::new();
    for node in &nodes {
        *per_node.entry(node.clone()).or_insert(0) += 1;
    }
    let (most, least) = (
        per_node.values().copied().max().unwrap_or(0),
        per_node.values().copied().min().unwrap_or(0),
    );
    assert!(
        per_node.len() == 4 && most - least <= 2,
        "20 rooms over 4 nodes: {per_node:?}"
    );
}

/// The streams' takeover look (four times a second in every instance) reads the rooms that
/// record or carry a stream, not every live room: with 20 live rooms and one recording, a look
/// reads one room record. (It read all 20 each time: 160 room reads a second for two instances
/// with nothing to take over, growing with every live room.)
#[tokio::test]
async fn the_streams_look_reads_only_rooms_with_media() {
    use switchyard::conference::{AppId, RoomId};
    use switchyard::store::Store;
    use tokio_util::sync::CancellationToken;

    let server = RedisServer::start();
    let t = TestLab::start(RedisStore::connect(&server.url()).await.unwrap(), options()).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(t.room(A, &format!("quiet-{i}")).await);
    }
    let app = AppId::parse(A.0).unwrap();
    let id = RoomId::parse(&ids[7]).unwrap();
    let old = t.store().room(&app, &id).await.unwrap().unwrap();
    let mut new = old.clone();
    new.recording = Some(uuid::Uuid::new_v4());
    new.seq += 1;
    t.store().save_room(&old, &new, &[]).await.unwrap();
    let reads = |calls: &std::collections::HashMap<String, u64>| {
        ["hmget", "hget", "hgetall"]
            .iter()
            .map(|c| calls.get(*c).copied().unwrap_or(0))
            .sum::<u64>()
    };
    let looks = |calls: &std::collections::HashMap<String, u64>| {
        calls.get("zrangebyscore").copied().unwrap_or(0)
    };
    let before = server.command_calls().await;
    let stop = CancellationToken::new();
    let state = t.lab.state.clone();
    let keeper = tokio::spawn({
        let stop = stop.clone();
        async move { state.rooms().keep_streams(stop).await }
    });
    eventually("four looks", || async {
        looks(&server.command_calls().await) >= looks(&before) + 4
    })
    .await;
    stop.cancel();
    keeper.await.unwrap();
    let after = server.command_calls().await;
    let (looked, read) = (
        looks(&after) - looks(&before),
        reads(&after) - reads(&before),
    );
    assert!(
        read >= 1 && read <= looked,
        "{read} room reads in {looked} looks: one room with media, 19 without"
    );
}
