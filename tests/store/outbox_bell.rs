//! The outbox wakes its readers: every kind of append rings the app's bell (the memory store
//! in-process; Redis by telling the processes that read the outbox, or through Pub/Sub on a
//! cluster, so a reader on another store instance wakes), a Redis
//! restart loses no wake-up, idle event streams cost Redis no reads, and the webhook dispatcher
//! delivers at once with its fallback poll set to an hour.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::webhook_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use common::api::{A, TestLab, options};
use common::redis_server::RedisServer;
use switchyard::conference::{AppId, DomainEvent, EventKind};
use switchyard::store::bell::{OutboxWatch, Waits, Woken};
use switchyard::store::keys;
use switchyard::store::memory::MemoryStore;
use switchyard::store::redis::RedisStore;
use switchyard::store::{RoomChange, Store, modify_rooms};
use webhook_support::{Receiver, TestRoom, app, config, seqs_of};

/// Fallback waits long enough that only a ring can end a wait within a test.
const HOUR: Waits = Waits {
    poll: Duration::from_secs(3600),
    idle: Duration::from_secs(3600),
};

async fn rung(w: &mut OutboxWatch, what: &str) {
    let woken = timeout(Duration::from_secs(5), w.wait(Instant::now(), HOUR))
        .await
        .unwrap_or_else(|_| panic!("{what}: no wake-up within 5 s"));
    assert_eq!(woken, Woken::Rung, "{what}");
}

fn event(room: &TestRoom, kind: EventKind) -> DomainEvent {
    DomainEvent {
        kind,
        app: room.room.app.clone(),
        room: room.room.id.clone(),
        seq: room.room.seq,
        at: room.room.updated_at,
        data: serde_json::json!({}),
        redelivers: None,
    }
}

/// `reader` watches, `writer` writes (for Redis: two instances on one server).
async fn every_append_wakes_a_caught_up_reader<S: Store>(reader: &S, writer: &S) {
    let mut w = reader.outbox_watch(&app());
    timeout(Duration::from_secs(5), w.live())
        .await
        .expect("the bell is live");

    w.seen();

    w.arm().await;
    let mut room = TestRoom::create(writer, "bell").await;
    rung(&mut w, "create_room with events").await;

    w.seen();

    w.arm().await;
    room.emit(writer, EventKind::MemberJoined, serde_json::json!({}))
        .await;
    rung(&mut w, "save_room with events").await;

    w.seen();

    w.arm().await;
    let changes = vec![RoomChange {
        app: &room.room.app,
        room: &room.room.id,
        change: |r: &mut switchyard::conference::Room| {
            r.seq += 1;
            r.updated_at += 1;
            let e = DomainEvent {
                kind: EventKind::MemberMuted,
                app: r.app.clone(),
                room: r.id.clone(),
                seq: r.seq,
                at: r.updated_at,
                data: serde_json::json!({}),
                redelivers: None,
            };
            Ok::<_, std::convert::Infallible>(((), vec![e]))
        },
    }];
    let results = modify_rooms(writer, changes).await;
    assert!(matches!(results[0], Ok(Some(Ok(())))), "{:?}", results[0]);
    rung(&mut w, "a batch of room changes").await;

    w.seen();

    w.arm().await;
    writer
        .append_outbox(&app(), &[event(&room, EventKind::MemberUnmuted)])
        .await
        .unwrap();
    rung(&mut w, "append_outbox").await;

    // What woke the reader is there to read.
    let kinds: Vec<EventKind> = reader
        .outbox(&app(), None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.event.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            EventKind::Created,
            EventKind::MemberJoined,
            EventKind::MemberMuted,
            EventKind::MemberUnmuted
        ]
    );

    // Another app's append, and a room write without events, do not wake this app's reader.
    w.seen();
    w.arm().await;
    let other = AppId::parse("other-app").unwrap();
    let mut foreign = event(&room, EventKind::MemberJoined);
    foreign.app = other.clone();
    writer.append_outbox(&other, &[foreign]).await.unwrap();
    let old = room.room.clone();
    room.room.seq += 1;
    writer.save_room(&old, &room.room, &[]).await.unwrap();
    let short = Waits {
        poll: Duration::from_millis(300),
        idle: Duration::from_millis(300),
    };
    assert_eq!(w.wait(Instant::now(), short).await, Woken::Timeout);
}

#[tokio::test]
async fn memory_store_appends_wake_a_reader() {
    let store = MemoryStore::new();
    every_append_wakes_a_caught_up_reader(&store, &store).await;
}

#[tokio::test]
async fn cluster_appends_wake_a_reader_on_another_instance() {
    // The reader listens on one node; a message published on any master reaches it (the
    // cluster passes Pub/Sub messages to every node).
    let cluster = common::redis_cluster::RedisCluster::start();
    let reader = RedisStore::connect(&cluster.url())
        .await
        .unwrap()
        .with_shards(3);
    let writer = RedisStore::connect(&cluster.url())
        .await
        .unwrap()
        .with_shards(3);
    every_append_wakes_a_caught_up_reader(&reader, &writer).await;
}

#[tokio::test]
async fn redis_appends_wake_a_reader_on_another_instance() {
    let server = RedisServer::start();
    let reader = RedisStore::connect(&server.url()).await.unwrap();
    let writer = RedisStore::connect(&server.url()).await.unwrap();
    every_append_wakes_a_caught_up_reader(&reader, &writer).await;
}

#[tokio::test]
async fn redis_on_a_unix_socket_wakes_a_reader_on_another_instance() {
    let server = RedisServer::start();
    let reader = RedisStore::connect(&server.socket_url()).await.unwrap();
    let writer = RedisStore::connect(&server.socket_url()).await.unwrap();
    every_append_wakes_a_caught_up_reader(&reader, &writer).await;
}

#[tokio::test]
async fn an_instance_hears_only_the_apps_it_has_readers_for() {
    // In a fleet each instance reads the outboxes of its own apps (the webhook leases it holds,
    // its event streams): Redis must not tell it of every other app's appends. It tells a
    // process of the keys that process read: the outboxes of the apps it has readers for.
    let server = RedisServer::start();
    let reader = RedisStore::connect(&server.url())
        .await
        .unwrap()
        .with_shards(2);
    let writer = RedisStore::connect(&server.url())
        .await
        .unwrap()
        .with_shards(2);
    let mut w = reader.outbox_watch(&app());
    timeout(Duration::from_secs(5), w.live()).await.unwrap();
    w.seen();
    w.arm().await;
    // The two shards of the app's outbox, and nothing else.
    assert_eq!(server.tracked_keys().await, 2);

    // Another app gets a reader: its appends wake it, and not the first app's reader.
    let other = AppId::parse("other-app").unwrap();
    let mut o = reader.outbox_watch(&other);
    o.seen();
    o.arm().await;
    assert_eq!(server.tracked_keys().await, 4);
    let room = TestRoom::create(&writer, "elsewhere").await;
    rung(&mut w, "the first app's room").await;
    w.seen();
    w.arm().await;
    let moved = DomainEvent {
        app: other.clone(),
        ..event(&room, EventKind::MemberJoined)
    };
    writer.append_outbox(&other, &[moved]).await.unwrap();
    rung(&mut o, "an append to an app whose reader came later").await;
    let short = Waits {
        poll: Duration::from_millis(300),
        idle: Duration::from_millis(300),
    };
    assert_eq!(w.wait(Instant::now(), short).await, Woken::Timeout);

    // Its reader goes; the first app still wakes.
    drop(o);
    w.seen();
    w.arm().await;
    let mut room = room;
    room.emit(&writer, EventKind::MemberLeft, serde_json::json!({}))
        .await;
    rung(&mut w, "an append to the first app").await;
}

/// A store that is dropped takes its connections with it: the bells' tasks and the tracked
/// connection they use keep no store alive (the bells' arming once held the tracked connection,
/// which held the bells: it stayed open for good).
#[tokio::test]
async fn a_dropped_store_leaves_no_connection_behind() {
    let server = RedisServer::start();
    let before = server.connected_clients().await;
    {
        let store = RedisStore::connect(&server.url()).await.unwrap();
        let mut w = store.outbox_watch(&app());
        timeout(Duration::from_secs(5), w.live()).await.unwrap();
        w.seen();
        w.arm().await;
        let _room = TestRoom::create(&store, "gone").await;
        rung(&mut w, "create_room").await;
        assert!(server.connected_clients().await > before);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = server.connected_clients().await;
        if now <= before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{now} clients connected, {before} before the store"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// No write publishes on one Redis with the room cache (Redis tells the readers), until an
/// instance of an earlier version listens on an app's channel (it hears appends only there):
/// then the appends to that app are published again, within a second or two.
#[tokio::test]
async fn appends_publish_only_while_an_instance_of_before_listens() {
    let server = RedisServer::start();
    let reader = RedisStore::connect(&server.url()).await.unwrap();
    let writer = RedisStore::connect(&server.url()).await.unwrap();
    let mut w = reader.outbox_watch(&app());
    timeout(Duration::from_secs(5), w.live()).await.unwrap();
    w.seen();
    w.arm().await;
    let mut room = TestRoom::create(&writer, "quiet").await;
    rung(&mut w, "create_room").await;
    // The writer's first write asked which channels are listened to: none, from then on.
    let before = server.command_calls().await;
    for _ in 0..10 {
        w.seen();
        w.arm().await;
        room.emit(&writer, EventKind::MemberJoined, serde_json::json!({}))
            .await;
        rung(&mut w, "save_room").await;
    }
    let after = server.command_calls().await;
    let calls = |name: &str| after.get(name).unwrap_or(&0) - before.get(name).unwrap_or(&0);
    assert_eq!(calls("publish"), 0, "{after:?}");

    // An instance of before subscribes to the app's channel.
    let client = redis::Client::open(server.url()).unwrap();
    let mut old = client.get_async_pubsub().await.unwrap();
    old.subscribe(keys::appended(app().as_str())).await.unwrap();
    let mut messages = old.on_message();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        room.emit(&writer, EventKind::MemberMuted, serde_json::json!({}))
            .await;
        if timeout(
            Duration::from_millis(200),
            futures_util::StreamExt::next(&mut messages),
        )
        .await
        .is_ok()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "appends not published to a listening instance of before"
        );
    }
}

/// Writes until the store is back (after a Redis restart).
async fn emit_until_back(store: &RedisStore, room: &mut TestRoom) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let old = room.room.clone();
        let mut new = old.clone();
        new.seq += 1;
        new.updated_at += 1;
        let e = DomainEvent {
            seq: new.seq,
            ..event(room, EventKind::MemberUnmuted)
        };
        match store.save_room(&old, &new, &[e]).await {
            Ok(_) => {
                room.room = new;
                return;
            }
            Err(err) => {
                assert!(err.is_retryable(), "{err}");
                assert!(Instant::now() < deadline, "Redis not back: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test]
async fn no_wake_up_is_lost_across_a_redis_restart() {
    let mut server = RedisServer::start();
    let reader = RedisStore::connect(&server.url()).await.unwrap();
    let writer = RedisStore::connect(&server.url()).await.unwrap();
    let mut w = reader.outbox_watch(&app());
    timeout(Duration::from_secs(5), w.live()).await.unwrap();
    let mut room = TestRoom::create(&writer, "restart").await;
    w.seen();
    w.arm().await;
    server.kill();
    server.restart();
    // Appended as soon as Redis takes writes again, perhaps before the reader's subscription
    // is back: then the re-subscription's ring covers it.
    emit_until_back(&writer, &mut room).await;
    rung(&mut w, "an append right after a restart").await;
    timeout(Duration::from_secs(10), w.live())
        .await
        .expect("the subscription comes back");
    w.seen();
    w.arm().await;
    emit_until_back(&writer, &mut room).await;
    rung(&mut w, "an append once the subscription is back").await;
}

/// `XRANGE` calls so far: how often the outbox was read.
async fn outbox_reads(server: &RedisServer) -> u64 {
    server
        .command_calls()
        .await
        .get("xrange")
        .copied()
        .unwrap_or(0)
}

/// Counts the SSE events a streaming body delivers.
fn count_events(mut body: Body, seen: Arc<AtomicUsize>) {
    tokio::spawn(async move {
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                let text = String::from_utf8_lossy(&data);
                let n = text.lines().filter(|l| l.starts_with("id:")).count();
                seen.fetch_add(n, Ordering::SeqCst);
            }
        }
    });
}

async fn until(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_idle_event_streams_cost_redis_no_reads_and_wake_on_an_append() {
    const STREAMS: usize = 50;
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    // One app holds them all: more than its default share of streams (32).
    let mut opts = options();
    opts.api.admission.streams_per_app = STREAMS;
    let t = TestLab::start(store, opts).await;
    t.room(A, "before").await;
    let past = t
        .store()
        .outbox(&AppId::parse(A.0).unwrap(), None, 100)
        .await
        .unwrap()
        .len();
    assert!(past > 0);
    let router = t.lab.router();
    let seen: Vec<Arc<AtomicUsize>> = (0..STREAMS).map(|_| Arc::default()).collect();
    for counter in &seen {
        let request = Request::builder()
            .uri("/api/v1/events/stream")
            .header("x-app-id", A.0)
            .header("x-api-key", A.1)
            .body(Body::empty())
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        count_events(response.into_body(), counter.clone());
    }
    until("every stream has the past events", || {
        seen.iter().all(|c| c.load(Ordering::SeqCst) == past)
    })
    .await;

    // Caught up and idle for two seconds: no stream reads the outbox (they used to read it
    // every 200 ms each: 500 reads in this window).
    let before = outbox_reads(&server).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = outbox_reads(&server).await - before;
    assert_eq!(idle, 0, "outbox reads by {STREAMS} idle streams in 2 s");

    // A new room's events (two appends: created, then progressing) reach every stream with one
    // read per append.
    t.room(A, "after").await;
    let now = t
        .store()
        .outbox(&AppId::parse(A.0).unwrap(), None, 100)
        .await
        .unwrap()
        .len();
    until("every stream has the new events", || {
        seen.iter().all(|c| c.load(Ordering::SeqCst) == now)
    })
    .await;
    // Less this test's own read of the outbox above.
    let woken = outbox_reads(&server).await - before - 1;
    assert!(
        woken <= (STREAMS * 2) as u64,
        "{woken} outbox reads to hand {STREAMS} streams one room's events"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dispatcher_delivers_at_once_with_polling_an_hour_apart() {
    let mut server = RedisServer::start();
    let dispatching = Arc::new(RedisStore::connect(&server.url()).await.unwrap());
    let writer = RedisStore::connect(&server.url()).await.unwrap();
    let receiver = Receiver::ok().await;
    let mut c = config(&receiver.url(), 3);
    c.waits = HOUR;
    let stop = CancellationToken::new();
    let task = switchyard::webhook::spawn(dispatching, c, stop.clone()).unwrap();

    // Written by another instance, after the dispatcher has caught up.
    let mut room = TestRoom::create(&writer, "hooks").await;
    receiver.wait_delivered(1, Duration::from_secs(5)).await;
    room.emit(&writer, EventKind::MemberJoined, serde_json::json!({}))
        .await;
    let got = receiver.wait_delivered(2, Duration::from_secs(5)).await;
    assert_eq!(seqs_of(&got, room.id()), [0, 1]);

    // Across a Redis restart too.
    server.kill();
    server.restart();
    emit_until_back(&writer, &mut room).await;
    // A restart that outlasts the dispatcher's lease (300 ms here) ends its term: it takes the
    // lease again under a new generation and starts from the recorded position, so the message
    // whose verdict was not recorded yet may come again, with its `webhook-id` (issue 57).
    let once = || {
        let mut ids = std::collections::HashSet::new();
        let got = receiver.delivered();
        got.into_iter()
            .filter(|r| ids.insert(r.id().to_owned()))
            .collect::<Vec<_>>()
    };
    webhook_support::wait_for(Duration::from_secs(10), || once().len() >= 3).await;
    assert_eq!(seqs_of(&once(), room.id()), [0, 1, 2]);
    stop.cancel();
    let _ = task.await;
}
