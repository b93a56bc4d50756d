//! A dispatcher killed while a room's message is being retried loses nothing and, restarted,
//! sends nothing that was already acknowledged — with the memory store and with a real Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::webhook_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use switchyard::conference::EventKind;
use switchyard::store::{Deliveries, Store};
use webhook_support::*;

const WITHIN: Duration = Duration::from_secs(10);

/// A Redis of the test's own and a store on it.
async fn redis_store() -> (
    common::redis_server::RedisServer,
    Arc<switchyard::store::redis::RedisStore>,
) {
    let server = common::redis_server::RedisServer::start();
    let store = switchyard::store::redis::RedisStore::connect(&server.url())
        .await
        .unwrap();
    (server, Arc::new(store))
}

async fn killed_mid_retry_then_restarted<S: Store>(store: Arc<S>) {
    let mut steady = TestRoom::create(&*store, "steady").await;
    // A store that spreads an app over shards reads their streams merged by entry id (the
    // millisecond, then a count per stream): two rooms created in one millisecond on two shards
    // tie, and the order the assertions below rely on (steady's entry first) would be the
    // shards'. The next millisecond makes it the order of creation.
    tokio::time::sleep(Duration::from_millis(2)).await;
    let mut stuck = TestRoom::create(&*store, "stuck").await;
    let stuck_id = stuck.id().to_owned();
    let healed = Arc::new(AtomicBool::new(false));
    let heal = healed.clone();
    let receiver = Receiver::start(any_port(), move |body, _| {
        if body["room_id"] == stuck_id.as_str() && !heal.load(Ordering::SeqCst) {
            (500, None)
        } else {
            (200, None)
        }
    })
    .await;
    for _ in 0..3 {
        steady
            .emit(&*store, EventKind::MemberJoined, json!({}))
            .await;
    }
    let mut config = config(&receiver.url(), 50);
    config.retry.delays = vec![Duration::from_millis(40); 50];
    let first = spawn_dispatcher(&store, config.clone());

    // The steady room's four events are delivered; the stuck room's first is being retried.
    receiver.wait_delivered(4, WITHIN).await;
    let stuck_tries = || {
        receiver
            .requests()
            .iter()
            .filter(|r| r.room() == stuck.id())
            .count()
    };
    wait_for(WITHIN, || stuck_tries() >= 2).await;
    first.abort();
    let _ = first.await;

    // Durable progress: the position stops before the stuck entry; the steady room's later
    // entries are recorded as delivered ahead of it.
    let outbox = store.outbox(&app(), None, 100).await.unwrap();
    let ids: Vec<String> = outbox.iter().map(|row| row.id.clone()).collect();
    assert_eq!(outbox[1].event.room, stuck.room.id);
    assert_eq!(
        store.outbox_position(&app()).await.unwrap().as_deref(),
        Some(outbox[0].position.as_str())
    );
    assert_eq!(
        store.outbox_acked(&app()).await.unwrap(),
        ids[2..5].to_vec()
    );

    // More happens while no dispatcher runs; the receiver recovers; a new dispatcher starts.
    stuck
        .emit(&*store, EventKind::MemberJoined, json!({}))
        .await;
    steady.emit(&*store, EventKind::MemberLeft, json!({})).await;
    healed.store(true, Ordering::SeqCst);
    let _second = spawn_dispatcher(&store, config);

    let got = receiver.wait_delivered(7, WITHIN).await;
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in &got {
        *per_id.entry(r.id().to_owned()).or_default() += 1;
    }
    let rows = store.outbox(&app(), None, 100).await.unwrap();
    let all_ids: Vec<String> = rows.iter().map(|row| format!("msg_{}", row.id)).collect();
    assert_eq!(all_ids.len(), 7);
    for id in &all_ids {
        assert_eq!(per_id.get(id), Some(&1), "{id} acknowledged {per_id:?}");
    }
    assert_eq!(
        seqs_of(&got, stuck.id()),
        [stuck.room.seq - 1, stuck.room.seq]
    );
    let last = rows.last().unwrap().position.clone();
    let deadline = tokio::time::Instant::now() + WITHIN;
    while store.outbox_position(&app()).await.unwrap().as_deref() != Some(last.as_str()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "position did not reach the end"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(store.outbox_acked(&app()).await.unwrap().is_empty());
    assert!(store.dead_letters(&app(), 10).await.unwrap().is_empty());
}

/// Starts a dispatcher that runs until aborted or the test ends.
fn spawn_dispatcher<S: Store>(
    store: &Arc<S>,
    config: switchyard::webhook::DispatcherConfig,
) -> tokio::task::JoinHandle<()> {
    switchyard::webhook::spawn(store.clone(), config, CancellationToken::new()).unwrap()
}

#[tokio::test]
async fn memory_store_killed_mid_retry_loses_and_repeats_nothing() {
    killed_mid_retry_then_restarted(Arc::new(switchyard::store::memory::MemoryStore::new())).await;
}

#[tokio::test]
async fn redis_store_killed_mid_retry_loses_and_repeats_nothing() {
    let server = common::redis_server::RedisServer::start();
    let store = switchyard::store::redis::RedisStore::connect(&server.url())
        .await
        .unwrap();
    killed_mid_retry_then_restarted(Arc::new(store)).await;
}

/// The dispatcher's position, acknowledgments and lease on a three-master Redis Cluster.
#[tokio::test]
async fn cluster_store_killed_mid_retry_loses_and_repeats_nothing() {
    let cluster = common::redis_cluster::RedisCluster::start();
    let store = switchyard::store::redis::RedisStore::connect(&cluster.url())
        .await
        .unwrap()
        .with_shards(3);
    killed_mid_retry_then_restarted(Arc::new(store)).await;
}

/// The position rides on the delivery log's entries, one write per batch of verdicts, and goes
/// to its own key (what earlier versions read) at most once a second. A dispatcher killed
/// after its deliveries were acknowledged, and before it wrote the key (here: the key deleted,
/// as if never written; and attempts of a message retried since logged after them), is followed
/// by one that sends none of them again; and the key took far fewer writes than the deliveries.
#[tokio::test]
async fn redis_store_killed_before_writing_its_position_key_repeats_nothing() {
    let (server, store) = redis_store().await;
    let mut room = TestRoom::create(&*store, "quick").await;
    for _ in 0..59 {
        room.emit(&*store, EventKind::MemberJoined, json!({})).await;
    }
    let receiver = Receiver::ok().await;
    let config = config(&receiver.url(), 5);
    let before = server.command_calls().await;
    let started = std::time::Instant::now();
    let first = spawn_dispatcher(&store, config.clone());
    receiver.wait_delivered(60, WITHIN).await;
    let rows = store.outbox(&app(), None, 100).await.unwrap();
    let last = rows.last().unwrap().position.clone();
    let deadline = tokio::time::Instant::now() + WITHIN;
    while store.outbox_position(&app()).await.unwrap().as_deref() != Some(last.as_str()) {
        assert!(tokio::time::Instant::now() < deadline, "not settled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.abort();
    let _ = first.await;
    let ran = started.elapsed();
    let after = server.command_calls().await;
    let calls = |name: &str| after.get(name).unwrap_or(&0) - before.get(name).unwrap_or(&0);
    // One log entry per delivery (the position with them), the key once a second at most.
    assert_eq!(calls("xadd"), 60, "{after:?}");
    assert!(
        calls("set") <= ran.as_secs() + 1,
        "{} position writes in {ran:?}",
        calls("set")
    );

    // Another room's message retried meanwhile: its attempts follow in the log, carrying no
    // position (more than the first page the store reads back).
    for attempt in 1..=40 {
        let retried = switchyard::store::DeliveryAttempt {
            message_id: "msg_1-0".into(),
            kind: EventKind::MemberJoined,
            room: room.room.id.clone(),
            seq: 1,
            attempt,
            outcome: "retry".into(),
            status: Some(500),
            error: None,
            at: 0,
            duration_ms: 1,
        };
        store.log_delivery(&app(), &retried, None).await.unwrap();
    }
    let client = redis::Client::open(server.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let _: () =
        redis::AsyncCommands::del(&mut raw, switchyard::store::keys::webhook_position(&app()))
            .await
            .unwrap();
    assert_eq!(
        store.outbox_position(&app()).await.unwrap().as_deref(),
        Some(last.as_str())
    );
    room.emit(&*store, EventKind::MemberLeft, json!({})).await;
    let _second = spawn_dispatcher(&store, config);
    // Anything sent again would come before the new event (one room: its order).
    let got = receiver.wait_delivered(61, WITHIN).await;
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in &got {
        *per_id.entry(r.id().to_owned()).or_default() += 1;
    }
    assert_eq!(got.len(), 61, "{per_id:?}");
    assert!(per_id.values().all(|&n| n == 1), "{per_id:?}");
    assert_eq!(got.last().unwrap().seq(), room.room.seq);
}

/// Two controller instances on one store: one delivers the app's webhooks at a time (each
/// message once); when it dies, the other takes over and nothing is lost.
async fn two_instances_share_one_app<S: Store>(store: Arc<S>) {
    let receiver = Receiver::ok().await;
    let mut rooms = Vec::new();
    for i in 0..4 {
        rooms.push(TestRoom::create(&*store, &format!("r{i}")).await);
    }
    let config = config(&receiver.url(), 3);
    let first = spawn_dispatcher(&store, config.clone());
    receiver.wait_delivered(4, WITHIN).await;
    // The second instance starts while the first leads.
    let _second = spawn_dispatcher(&store, config);
    for room in rooms.iter_mut() {
        for _ in 0..3 {
            room.emit(&*store, EventKind::MemberJoined, json!({})).await;
        }
    }
    receiver.wait_delivered(16, WITHIN).await;
    let end = |n: usize| {
        let store = store.clone();
        async move {
            let outbox = store.outbox(&app(), None, 100).await.unwrap();
            assert_eq!(outbox.len(), n);
            let last = outbox.last().unwrap().position.clone();
            let deadline = tokio::time::Instant::now() + WITHIN;
            while store.outbox_position(&app()).await.unwrap().as_deref() != Some(last.as_str()) {
                assert!(tokio::time::Instant::now() < deadline, "position stuck");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    end(16).await;
    // The leader dies (no goodbye: its lease runs out); the other takes over.
    first.abort();
    let _ = first.await;
    for room in rooms.iter_mut() {
        room.emit(&*store, EventKind::MemberLeft, json!({})).await;
    }
    let got = receiver.wait_delivered(20, WITHIN).await;
    end(20).await;
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in &got {
        *per_id.entry(r.id().to_owned()).or_default() += 1;
    }
    assert_eq!(per_id.len(), 20, "every message");
    assert!(per_id.values().all(|n| *n == 1), "each once: {per_id:?}");
    for room in &rooms {
        let seqs = seqs_of(&got, room.id());
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "room order {seqs:?}");
    }
}

#[tokio::test]
async fn memory_store_two_instances_share_one_app() {
    two_instances_share_one_app(Arc::new(switchyard::store::memory::MemoryStore::new())).await;
}

#[tokio::test]
async fn redis_store_two_instances_share_one_app() {
    let server = common::redis_server::RedisServer::start();
    let store = switchyard::store::redis::RedisStore::connect(&server.url())
        .await
        .unwrap();
    two_instances_share_one_app(Arc::new(store)).await;
}

#[tokio::test]
async fn cluster_store_two_instances_share_one_app() {
    let cluster = common::redis_cluster::RedisCluster::start();
    let store = switchyard::store::redis::RedisStore::connect(&cluster.url())
        .await
        .unwrap()
        .with_shards(3);
    two_instances_share_one_app(Arc::new(store)).await;
}

/// A leader that stops (SIGTERM) hands the app's webhooks over at once: the next message is
/// delivered by the other instance within half a second, with the default 10 s lease (before,
/// a standing-by instance asked for the lease every third of it: 2.8–3.1 s measured).
#[tokio::test]
async fn a_stopped_leader_hands_over_within_half_a_second() {
    let (_server, store) = redis_store().await;
    let receiver = Receiver::ok().await;
    let mut room = TestRoom::create(&*store, "handover").await;
    let mut config = config(&receiver.url(), 3);
    config.lease_ttl = Duration::from_secs(10);
    let stop_first = CancellationToken::new();
    let first =
        switchyard::webhook::spawn(store.clone(), config.clone(), stop_first.clone()).unwrap();
    receiver.wait_delivered(1, WITHIN).await;
    let _second = spawn_dispatcher(&store, config);
    stop_first.cancel();
    first.await.unwrap();
    let stopped = tokio::time::Instant::now();
    room.emit(&*store, EventKind::MemberJoined, json!({})).await;
    let got = receiver.wait_delivered(2, WITHIN).await;
    let took = got[1].at.duration_since(stopped);
    println!("webhooks: delivery resumed {took:?} after the leader stopped");
    assert!(
        took < Duration::from_millis(500),
        "delivery paused {took:?} after the leader stopped"
    );
}

/// Log entries that carry the position: one per write of verdicts (it rides on the last).
async fn verdict_writes(server: &common::redis_server::RedisServer) -> usize {
    let client = redis::Client::open(server.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let log: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(switchyard::store::keys::webhook_log(&app()))
        .arg("-")
        .arg("+")
        .query_async(&mut raw)
        .await
        .unwrap();
    log.iter()
        .filter(|(_, fields)| fields.iter().step_by(2).any(|f| f == "position"))
        .count()
}

/// Deliveries that end close together are recorded in one write, not one each (the
/// `event_cost` bench's dispatcher wrote one per webhook): ten rooms' messages, each created once
/// the one before was delivered, all within the hold. A room's next message never waits for the
/// hold, and a dispatcher that stops writes what it held, so the next one sends none of it again.
#[tokio::test]
async fn verdicts_close_together_are_written_at_once_and_a_stop_writes_what_was_held() {
    let (server, store) = redis_store().await;
    let receiver = Receiver::ok().await;
    let mut config = config(&receiver.url(), 3);
    let hold = Duration::from_millis(800);
    config.settle_within = hold;
    let stop = CancellationToken::new();
    let first = switchyard::webhook::spawn(store.clone(), config.clone(), stop.clone()).unwrap();
    let started = std::time::Instant::now();
    let mut rooms = Vec::new();
    for i in 0..10 {
        rooms.push(TestRoom::create(&*store, &format!("close{i}")).await);
        receiver.wait_delivered(i + 1, WITHIN).await;
    }
    let took = started.elapsed();
    // A hold that ran out meanwhile (a slow machine) writes once more.
    let most = 1 + (took.as_millis() / hold.as_millis()) as usize;
    // The first write comes with the next room's message below (or once the hold runs out).
    assert_eq!(
        verdict_writes(&server).await,
        0,
        "written before the hold ran out"
    );

    // Three more of one held room: each goes at once, not after the hold.
    let asked = std::time::Instant::now();
    for _ in 0..3 {
        rooms[0]
            .emit(&*store, EventKind::MemberJoined, json!({}))
            .await;
    }
    let got = receiver.wait_delivered(13, WITHIN).await;
    let waited = asked.elapsed();
    assert!(waited < hold, "a room's next messages waited {waited:?}");
    assert_eq!(seqs_of(&got, rooms[0].id()), [0, 1, 2, 3]);
    // The ten in one write (or as many as the hold ran out), then the first two of the three,
    // each written as the next of its room waited for it.
    let writes = verdict_writes(&server).await;
    assert!(
        writes <= most + 2,
        "{writes} writes for 12 verdicts in {took:?}"
    );

    // The last verdict is held; the stop writes it.
    stop.cancel();
    first.await.unwrap();
    let rows = store.outbox(&app(), None, 100).await.unwrap();
    assert_eq!(
        store.outbox_position(&app()).await.unwrap().as_deref(),
        Some(rows.last().unwrap().position.as_str())
    );
    rooms[1]
        .emit(&*store, EventKind::MemberLeft, json!({}))
        .await;
    let _second = spawn_dispatcher(&store, config);
    let got = receiver.wait_delivered(14, WITHIN).await;
    let mut ids: Vec<&str> = got.iter().map(|r| r.id()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 14, "sent again after the stop");
}
