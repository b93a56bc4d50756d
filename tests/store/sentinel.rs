//! Redis Sentinel (issue 19): a master, a replica and three sentinels, all real `redis-server`
//! processes started by the test (the sentinels with `--sentinel`) and stopped by pid. The lab's
//! controller uses `redis+sentinel://…/<master name>`; the master is killed (SIGKILL) under API
//! traffic; after a short window of 503s the same controller, without a restart, writes to the
//! promoted replica: rooms and members made before the failover are there, new rooms and joins
//! work, and no request ever fails otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::json;

use common::api::{A, TestLab, eventually, options};
use common::redis_sentinel::{MASTER, SentinelSet, master_port, redis_cmd, replicating};
use switchyard::conference::{
    AppId, DomainEvent, EventKind, NodePrefix, Room, RoomId, RoomStatus, RoomType,
};
use switchyard::store::bell::{Waits, Woken};
use switchyard::store::redis::RedisStore;
use switchyard::store::{Store, replicated_outbox, update_room};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_under_traffic_costs_a_window_of_503s_then_the_promoted_replica_serves() {
    let set = SentinelSet::start().await;
    let url = set.url();
    let SentinelSet {
        mut master,
        replica,
        sentinels,
    } = set;
    let store = RedisStore::connect(&url)
        .await
        .expect("connects through the sentinels");
    let t = TestLab::start(store, options()).await;
    let room = t.room(A, "before-the-failover").await;
    let r = t
        .post(
            "/lab/v1/calls",
            A,
            json!({ "did": "15551230000", "caller_id": "1001" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let session = r.body["uuid"].as_str().unwrap().to_owned();
    t.joined(A, &room, &session).await;
    // Everything so far is on the replica too (replication is asynchronous: what it has not
    // received when the master dies is lost, see docs/operations.md).
    let synced = redis_cmd(master.port, &["WAIT", "1", "5000"]).await;
    assert!(matches!(synced, Ok(redis::Value::Int(1))), "{synced:?}");

    master.kill();
    let killed = Instant::now();
    let mut statuses = Vec::new();
    let recovered = loop {
        let r = t
            .post(
                "/api/v1/conferences",
                A,
                json!({ "name": format!("during-{}", statuses.len()) }),
            )
            .await;
        statuses.push(r.status.as_u16());
        if r.status == StatusCode::CREATED {
            break killed.elapsed();
        }
        assert_eq!(
            r.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "while Redis fails over the API answers 503: {r:?}"
        );
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "no new master after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let unavailable = statuses.iter().filter(|s| **s == 503).count();
    println!(
        "sentinel: writes work again {} ms after the master's SIGKILL ({unavailable} requests answered 503)",
        recovered.as_millis()
    );
    assert_eq!(master_port(sentinels[0].port).await, Some(replica.port));

    // What was there before is there; the controller goes on: a new call joins the old room.
    let r = t.get(&format!("/api/v1/conferences/{room}"), A).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert!(
        t.members(A, &room)
            .await
            .iter()
            .any(|m| m["uuid"] == session.as_str()),
        "the member joined before the failover is still listed"
    );
    let r = t
        .post(
            "/lab/v1/calls",
            A,
            json!({ "did": "15551230000", "caller_id": "1002" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let second = r.body["uuid"].as_str().unwrap().to_owned();
    t.joined(A, &room, &second).await;
    assert_eq!(t.members(A, &room).await.len(), 2);
}

fn app() -> AppId {
    AppId::parse("app-a").unwrap()
}

/// Two controllers' stores on the set, and a room one made and the other read (and keeps).
async fn reader_and_writer(set: &SentinelSet) -> (RedisStore, RedisStore, RoomId) {
    let (reader, writer) = (
        RedisStore::connect(&set.url()).await.unwrap(),
        RedisStore::connect(&set.url()).await.unwrap(),
    );
    let mut room = Room::new(
        RoomId::new(&NodePrefix::parse("abcde").unwrap(), uuid::Uuid::new_v4()),
        app(),
        "cached".into(),
        RoomType::Conference,
        uuid::Uuid::new_v4().to_string(),
        1,
    );
    room.status = RoomStatus::Progressing;
    writer.create_room(&room, &[]).await.unwrap();
    assert!(reader.room(&app(), &room.id).await.unwrap().is_some());
    assert_eq!(
        reader.cached_rooms(),
        1,
        "the reader keeps the room it read"
    );
    (reader, writer, room.id)
}

/// `store` changes the room's detail, retrying through the failover's window of errors.
async fn write_detail(store: &RedisStore, id: &RoomId, detail: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let written = update_room(store, &app(), id, |r| {
            r.detail = detail.into();
            r.seq += 1;
            Ok::<_, ()>(((), Vec::new()))
        })
        .await;
        if matches!(written, Ok(Some(Ok(_)))) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "writes never resumed: {written:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Once `store` answers at all, it answers with the room as `detail` left it: never an older
/// copy it kept from before the failover.
async fn reads_detail(store: &RedisStore, id: &RoomId, detail: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(room) = store.room(&app(), id).await {
            assert_eq!(room.map(|r| r.detail).as_deref(), Some(detail));
            return;
        }
        assert!(Instant::now() < deadline, "the reader never read again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Another controller's change reaches `store`'s cache (Redis's invalidation comes on the
/// reader's own connection, so it may come a moment after the writer's answer).
async fn comes_to_read(store: &RedisStore, id: &RoomId, detail: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let read = store.room(&app(), id).await;
        if matches!(&read, Ok(Some(r)) if r.detail == detail) {
            return;
        }
        assert!(Instant::now() < deadline, "never read {detail:?}: {read:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The room cache with a Sentinel set: the master SIGKILLed, the replica promoted; the cached
/// reader never serves its copy from the dead master after the new one has a newer room, and
/// keeps rooms again (tracked by the new master).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_room_cache_follows_a_killed_master_to_the_promoted_replica() {
    let mut set = SentinelSet::start().await;
    let (reader, writer, id) = reader_and_writer(&set).await;
    set.synced().await;
    set.master.kill();
    set.replica_promoted().await;
    write_detail(&writer, &id, "after the failover").await;
    reads_detail(&reader, &id, "after the failover").await;
    assert_eq!(reader.cached_rooms(), 1, "the reader keeps rooms again");
    // And it is told of the next change (the new master tracks what it read).
    write_detail(&writer, &id, "later").await;
    comes_to_read(&reader, &id, "later").await;
}

/// A failover asked of the sentinels (`SENTINEL FAILOVER`, a planned switch): the old master
/// stays up, and takes writes, until the sentinels turn it into the new one's replica seconds
/// later, and what it took meanwhile is lost then. The stores move on the sentinels'
/// announcement, before any command fails: nothing written after the switch is lost, and the
/// cached reader reads and writes on the new master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_failover_is_followed_at_once_and_loses_no_write() {
    let set = SentinelSet::start().await;
    let (reader, writer, id) = reader_and_writer(&set).await;
    let mut bell = reader.outbox_watch(&app());
    tokio::time::timeout(Duration::from_secs(5), bell.live())
        .await
        .expect("the reader's bell is live");
    set.synced().await;
    let asked = redis_cmd(set.sentinels[0].port, &["SENTINEL", "FAILOVER", MASTER]).await;
    assert!(asked.is_ok(), "{asked:?}");
    set.replica_promoted().await;
    let new = format!("127.0.0.1:{}", set.replica.port);
    eventually("both stores follow the announcement", || async {
        writer.master_address() == new && reader.master_address() == new
    })
    .await;
    // The reader's outbox notifications moved too: once the rings of its new subscription have
    // passed, an append on the new master wakes it (its safety poll is 30 s away).
    let short = Waits {
        poll: Duration::from_millis(500),
        idle: Duration::from_millis(500),
    };
    loop {
        bell.seen();
        bell.arm().await;
        if bell.wait(tokio::time::Instant::now(), short).await == Woken::Timeout {
            break;
        }
    }
    let event = DomainEvent {
        kind: EventKind::MemberJoined,
        app: app(),
        room: id.clone(),
        seq: 2,
        at: 2,
        data: json!({}),
        redelivers: None,
    };
    writer.append_outbox(&app(), &[event]).await.unwrap();
    let hour = Waits {
        poll: Duration::from_secs(3600),
        idle: Duration::from_secs(3600),
    };
    let woken = tokio::time::timeout(
        Duration::from_secs(5),
        bell.wait(tokio::time::Instant::now(), hour),
    )
    .await;
    assert_eq!(
        woken,
        Ok(Woken::Rung),
        "the append on the new master woke the reader"
    );
    // Written while the old master still takes writes.
    write_detail(&writer, &id, "after the switch").await;
    reads_detail(&reader, &id, "after the switch").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = match redis_cmd(set.master.port, &["INFO", "replication"]).await {
            Ok(redis::Value::BulkString(b)) => String::from_utf8_lossy(&b).into_owned(),
            other => format!("{other:?}"),
        };
        if info.contains("master_link_status:up") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old master never became the new one's replica: {info}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Still there once the old master turned (a controller that starts now reads it).
    let fresh = RedisStore::connect(&set.url()).await.unwrap();
    reads_detail(&fresh, &id, "after the switch").await;
    // The reader writes too (its room writes go over its tracked connection, on the new master).
    write_detail(&reader, &id, "by the reader").await;
    reads_detail(&reader, &id, "by the reader").await;
    comes_to_read(&writer, &id, "by the reader").await;
    comes_to_read(&fresh, &id, "by the reader").await;
}

/// `redis_replicas` (issue 35): the store vouches for what it holds only once a replica has it.
/// With its replica gone it says no, and the outbox's entries are not handed out (to a webhook
/// dispatcher or the event feed); once the replica is back and has synced, they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_entries_are_handed_out_only_once_a_replica_has_them() {
    let now = ["--repl-diskless-sync-delay", "0"];
    let master = common::redis_server::RedisServer::start_with(&now);
    let of = master.port.to_string();
    let mut replica = common::redis_server::RedisServer::start_with(&[
        "--replicaof",
        "127.0.0.1",
        &of,
        now[0],
        now[1],
    ]);
    let synced = |port: u16| async move {
        eventually("the replica has synced", || async {
            replicating(port).await
        })
        .await
    };
    synced(replica.port).await;
    let store = RedisStore::connect(&master.url())
        .await
        .unwrap()
        .with_replicas(1)
        .unwrap();
    let event = |seq: u64| DomainEvent {
        kind: EventKind::MemberJoined,
        app: app(),
        room: RoomId::parse("nd001-room-3f0c6a1e-9a51-4f7e-8d0b-2c4f5e6a7b8c").unwrap(),
        seq,
        at: seq as i64,
        data: json!({}),
        redelivers: None,
    };
    store.append_outbox(&app(), &[event(1)]).await.unwrap();
    // The replica's link can be up before the master counts it for WAIT (it puts a replica
    // online on its first acknowledgement; CI once saw `false` here): once it does, the store
    // vouches.
    eventually("the store vouches for what a replica has", || async {
        store.replicated().await.ok() == Some(true)
    })
    .await;
    let read = replicated_outbox(&store, &app(), None, 10).await.unwrap();
    assert_eq!(read.len(), 1);

    replica.kill();
    store.append_outbox(&app(), &[event(2)]).await.unwrap();
    assert_eq!(
        store.replicated().await.ok(),
        Some(false),
        "no replica has the second entry"
    );
    let refused = replicated_outbox(&store, &app(), Some(&read[0].position), 10).await;
    assert!(refused.is_err(), "{refused:?}");

    replica.restart();
    synced(replica.port).await;
    let after = Some(read[0].position.as_str());
    eventually(
        "the entry is handed out once the replica has it",
        || async { replicated_outbox(&store, &app(), after, 10).await.is_ok() },
    )
    .await;
    let read = replicated_outbox(&store, &app(), after, 10).await.unwrap();
    assert_eq!(read.iter().map(|e| e.event.seq).collect::<Vec<_>>(), [2]);
}
