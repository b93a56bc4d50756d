//! The Redis store's room cache (client-side caching under `CLIENT TRACKING`): what one
//! controller keeps must never outlive a change made anywhere else — by another controller on the
//! same Redis, by a raw write, a flush, or a Redis restart — and its own writes stay cached.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::marks::{mark_once, marks};
use common::redis_server::RedisServer;
use switchyard::conference::{AppId, NodePrefix, Room, RoomId, RoomStatus, RoomType};
use switchyard::store::redis::RedisStore;
use switchyard::store::{RoomChange, Store, modify_rooms, update_room};

/// Held by the test that restarts a Redis on its port and by the ones that start clusters (a
/// dozen servers and bus listeners on free ports): one of those could take the port while the
/// restarted server is down (CI: "redis-server did not come up").
static PORTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn app() -> AppId {
    AppId::parse("app-a").unwrap()
}

fn new_room(name: &str) -> Room {
    let mut r = Room::new(
        RoomId::new(&NodePrefix::parse("abcde").unwrap(), uuid::Uuid::new_v4()),
        app(),
        name.into(),
        RoomType::Conference,
        uuid::Uuid::new_v4().to_string(),
        1,
    );
    r.status = RoomStatus::Progressing;
    r
}

/// One write of the room through `store`: `change`, and the next `seq`.
async fn change_room(store: &RedisStore, id: &RoomId, change: impl Fn(&mut Room) + Send + Sync) {
    update_room(store, &app(), id, |r| {
        change(r);
        r.seq += 1;
        Ok::<_, ()>(((), Vec::new()))
    })
    .await
    .unwrap()
    .unwrap()
    .unwrap();
}

async fn set_detail(store: &RedisStore, id: &RoomId, detail: &str) {
    change_room(store, id, |r| r.detail = detail.into()).await;
}

/// Reads through `store` until the room's detail is `want`; Redis's invalidation travels on its
/// own, so the reader sees it within moments, never a stale value for good.
async fn converges(store: &RedisStore, id: &RoomId, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let room = store.room(&app(), id).await.unwrap();
        if room.as_ref().map(|r| r.detail.as_str()) == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still {:?}, want {want:?}",
            room.map(|r| r.detail)
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A parked call of the app, stored as a node's channel event would store it.
fn parked_session() -> switchyard::conference::Session {
    use switchyard::conference::{Session, SessionId, SessionState};
    let node = NodePrefix::parse("abcde").unwrap();
    Session {
        id: SessionId::new(&node, &uuid::Uuid::new_v4().to_string()),
        app: app(),
        did: "15551230000".into(),
        caller_id: "1001".into(),
        caller_name: "Alice".into(),
        state: SessionState::Parked,
        core_uuid: "core".into(),
        created_at: 1,
        answered_at: Some(1),
        ended_at: None,
        hangup_cause: None,
        seq: 1,
    }
}

async fn two_stores() -> (RedisServer, RedisStore, RedisStore) {
    let server = RedisServer::start();
    let a = RedisStore::connect(&server.url()).await.unwrap();
    let b = RedisStore::connect(&server.url()).await.unwrap();
    (server, a, b)
}

#[tokio::test]
async fn another_controllers_write_reaches_a_cached_reader() {
    let (_server, a, b) = two_stores().await;
    let r = new_room("x");
    a.create_room(&r, &[]).await.unwrap();
    assert_eq!(b.room(&app(), &r.id).await.unwrap().unwrap().detail, "");
    assert_eq!(b.cached_rooms(), 1, "the reader keeps what it read");
    set_detail(&a, &r.id, "changed by a").await;
    converges(&b, &r.id, "changed by a").await;
}

#[tokio::test]
async fn a_writer_keeps_its_own_write_and_still_hears_of_later_ones() {
    let (_server, a, b) = two_stores().await;
    let r = new_room("x");
    a.create_room(&r, &[]).await.unwrap();
    set_detail(&a, &r.id, "one").await;
    // a's own write is kept: its next read needs no round trip, and is the written version.
    assert_eq!(a.cached_rooms(), 1);
    assert_eq!(a.room(&app(), &r.id).await.unwrap().unwrap().detail, "one");
    // The save script read the key again after writing, so Redis still tells a of b's change.
    set_detail(&b, &r.id, "two").await;
    converges(&a, &r.id, "two").await;
    set_detail(&a, &r.id, "three").await;
    converges(&b, &r.id, "three").await;
}

/// A Redis on the same host, named by its Unix socket (`redis_url = "unix:///…"`): rooms are
/// written and read, and another controller's change still reaches a cached reader (the
/// tracking pushes come over the socket as over TCP).
#[tokio::test]
async fn a_redis_named_by_its_unix_socket_serves_rooms_and_their_changes() {
    let server = RedisServer::start();
    let a = RedisStore::connect(&server.socket_url()).await.unwrap();
    let b = RedisStore::connect(&server.socket_url()).await.unwrap();
    let r = new_room("x");
    a.create_room(&r, &[]).await.unwrap();
    assert_eq!(b.room(&app(), &r.id).await.unwrap().unwrap().detail, "");
    assert_eq!(b.cached_rooms(), 1, "the reader keeps what it read");
    set_detail(&a, &r.id, "changed over the socket").await;
    converges(&b, &r.id, "changed over the socket").await;
    // Every connection of both stores came over the socket (`U`), the tracking ones (`t`)
    // among them: none over TCP but the test's own.
    let client = redis::Client::open(server.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut raw)
        .await
        .unwrap();
    let flags: Vec<&str> = list
        .lines()
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("flags=")))
        .collect();
    let over_socket = flags.iter().filter(|f| f.contains('U')).count();
    assert_eq!(over_socket, flags.len() - 1, "clients: {list}");
    assert!(
        flags.iter().any(|f| f.contains('U') && f.contains('t')),
        "a tracking connection over the socket: {list}"
    );
}

/// What the cache costs Redis per operation, with an instance that keeps the room (it applies
/// the room's node) and one that does not (an API instance): a read is one `HMGET`; the
/// keeper's write is one script that reads the room's `seq` and writes it, and nothing after
/// it: Redis goes on tracking the room for the keeper through the room's notice key, which the
/// other instance's write sets. Neither asks `CLIENT CACHING` first (OPTOUT). Before, each
/// read and write cost a `CLIENT CACHING YES` as well, and later each write of the keeper a
/// read of the room's `seq` after its script (`HGET`).
#[tokio::test]
async fn a_read_is_one_command_and_a_write_one_script() {
    let (server, a, b) = two_stores().await;
    b.keep_rooms_of(Arc::new(|_| false));
    let r = new_room("x");
    a.create_room(&r, &[]).await.unwrap();
    // Each store's first write loads the script; a's first makes it the room's keeper.
    set_detail(&b, &r.id, "warm").await;
    set_detail(&a, &r.id, "warm, a").await;
    let before = server.command_calls().await;
    for i in 0..10 {
        // b changes the room: a's copy goes, and a's next read asks Redis once.
        set_detail(&b, &r.id, &format!("b{i}")).await;
        converges(&a, &r.id, &format!("b{i}")).await;
        // a changes it: kept, read from memory, and still told of b's next change.
        set_detail(&a, &r.id, &format!("a{i}")).await;
        assert_eq!(
            a.room(&app(), &r.id).await.unwrap().unwrap().detail,
            format!("a{i}")
        );
    }
    let after = server.command_calls().await;
    let calls = |name: &str| after.get(name).unwrap_or(&0) - before.get(name).unwrap_or(&0);
    assert_eq!(calls("client|caching"), 0, "{after:?}");
    // One script per write, and one more per write that lost its race: a write can start
    // from a copy whose invalidation is still on its way, and is then read and made again.
    let scripts = calls("evalsha");
    let lost = scripts - 20;
    assert!(lost <= 10, "{scripts} scripts for 20 writes: {after:?}");
    // Each script reads the room's `seq` (and keeper) before it writes: 20 `HMGET`. Each of
    // b's writes reads its base, which a's write outdated (10), each of a's reads after b's
    // change asks once (10), and each lost race once more. Nothing reads the room after a
    // write, and the keeper stays the same: b's writes set the notice key (10), a's do not.
    assert_eq!(calls("hget"), 0, "{after:?}");
    assert_eq!(calls("exists"), 0, "{after:?}");
    assert!(calls("set") <= 10 + lost, "{after:?}");
    assert!(calls("hmget") <= 40 + 2 * lost, "{after:?}");
}

/// The instance that applies a room's node hears at once when another instance writes the room
/// (an API command's intent, sent to the node right after), so it can wake the node's event
/// connection for the events coming; it is not told of its own writes, nor of rooms it does
/// not keep.
#[tokio::test]
async fn an_applier_is_told_of_another_instances_write_of_a_room_it_keeps() {
    let (_server, api, owner) = two_stores().await;
    let (told, mut heard) = tokio::sync::mpsc::unbounded_channel();
    owner.on_rooms_changed(Arc::new(move |id: &RoomId, node: &NodePrefix| {
        let _ = told.send((id.clone(), node.clone()));
    }));
    let (mut kept, other) = (new_room("kept"), new_room("not read"));
    // Moved off the node its id names (a drain): told with the node it is on now.
    kept.node = NodePrefix::parse("moved").unwrap();
    api.create_room(&kept, &[]).await.unwrap();
    api.create_room(&other, &[]).await.unwrap();
    // The owner's confirmation: it keeps the room (written, then read back).
    set_detail(&owner, &kept.id, "confirmed").await;
    for round in 0..3 {
        set_detail(&api, &other.id, &format!("intent {round}")).await;
        set_detail(&api, &kept.id, &format!("intent {round}")).await;
        let (id, node) = tokio::time::timeout(Duration::from_secs(5), heard.recv())
            .await
            .expect("the owner was not told of the intent")
            .unwrap();
        assert_eq!(id, kept.id, "told of a room it does not keep");
        assert_eq!(node.as_str(), "moved", "the room's node as kept");
        // The owner applies what the intent caused: it reads the room and keeps it again.
        set_detail(&owner, &kept.id, &format!("confirmed {round}")).await;
        // Its own write told it nothing (a push travels on the connection its write was
        // answered on, ahead of the answer).
        assert!(heard.try_recv().is_err(), "told of its own write");
    }
}

/// An instance that writes a room of a node another instance applies (an API command's intent,
/// which that instance's confirmation follows) leaves it untracked: no read after its write,
/// and so no notice when the other writes; its next read asks Redis.
#[tokio::test]
async fn a_room_of_a_node_applied_elsewhere_is_written_without_being_kept() {
    let (server, a, b) = two_stores().await;
    let r = new_room("x");
    let node = r.node.clone();
    a.keep_rooms_of(Arc::new(move |n| *n != node));
    a.create_room(&r, &[]).await.unwrap();
    set_detail(&b, &r.id, "warm").await;
    set_detail(&a, &r.id, "warm, a").await;
    let before = server.command_calls().await;
    for i in 0..10 {
        // a's intent, then b's confirmation: each reads the other's write first.
        set_detail(&a, &r.id, &format!("a{i}")).await;
        assert_eq!(a.cached_rooms(), 0, "a kept a room it does not apply");
        assert_eq!(
            a.room(&app(), &r.id).await.unwrap().unwrap().detail,
            format!("a{i}")
        );
        set_detail(&b, &r.id, &format!("b{i}")).await;
        converges(&a, &r.id, &format!("b{i}")).await;
    }
    let after = server.command_calls().await;
    let calls = |name: &str| after.get(name).unwrap_or(&0) - before.get(name).unwrap_or(&0);
    let lost = calls("evalsha") - 20;
    assert!(lost <= 10, "{after:?}");
    // Each script reads the room's `seq` once (its guard), and nothing reads it after a write:
    // b keeps the room through its notice key, which each of a's writes sets.
    assert_eq!(calls("hget"), 0, "{after:?}");
    assert!(calls("set") <= 10 + lost, "{after:?}");
}

/// A room's notice key (what its keeper has Redis track) lives as long as the room's record: an
/// ended room written again by another instance (its record expiring, as it does once
/// released) leaves the key expiring with it, not kept for good.
#[tokio::test]
async fn an_ended_rooms_notice_key_expires_with_its_record() {
    let (server, keeper, other) = two_stores().await;
    other.keep_rooms_of(Arc::new(|_| false));
    let r = new_room("x");
    keeper.create_room(&r, &[]).await.unwrap();
    set_detail(&keeper, &r.id, "kept").await;
    change_room(&keeper, &r.id, |room| room.status = RoomStatus::Terminated).await;
    // Another instance writes the ended room (a recording finished after it, say).
    set_detail(&other, &r.id, "after the end").await;
    converges(&keeper, &r.id, "after the end").await;
    let client = redis::Client::open(server.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let app = app();
    let tag = app.as_str();
    let (room_ttl, notice_ttl): (i64, i64) = redis::pipe()
        .cmd("TTL")
        .arg(switchyard::store::keys::room(tag, &r.id))
        .cmd("TTL")
        .arg(switchyard::store::keys::room_notice(tag, &r.id))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(room_ttl > 0, "the ended room's record expires: {room_ttl}");
    assert!(
        notice_ttl > 0 && notice_ttl <= room_ttl + 1,
        "the notice key expires with it: {notice_ttl} (the record: {room_ttl})"
    );
}

/// Puts the session's member in the room or takes it out, through `store`.
async fn member(
    store: &RedisStore,
    id: &RoomId,
    session: &switchyard::conference::SessionId,
    join: bool,
) {
    change_room(store, id, |room| {
        let channel = session.channel().to_owned();
        if join {
            let m = switchyard::conference::Member::new(
                session.clone(),
                "100".into(),
                "200".into(),
                None,
                2,
            );
            room.members.insert(channel, m);
        } else {
            room.members.remove(&channel);
        }
    })
    .await;
}

/// Every member command reads its session and the room the session is in. Both are kept, read
/// once until they change: a change by another controller reaches the reader (Redis's push), and
/// one by the reader itself is seen at once (its own writes draw no push: it forgets what it
/// kept).
#[tokio::test]
async fn a_sessions_record_and_room_are_read_once_until_they_change() {
    use switchyard::conference::SessionState;

    let (server, a, b) = two_stores().await;
    let r = new_room("x");
    a.create_room(&r, &[]).await.unwrap();
    let mut s = parked_session();
    a.save_session(&s).await.unwrap();
    assert_eq!(a.room_of_session(&app(), &s.id).await.unwrap(), None);
    // a joins it: a sees it at once, from memory (the join's write read the lookup back).
    member(&a, &r.id, &s.id, true).await;
    let before = server.command_calls().await;
    assert_eq!(
        a.room_of_session(&app(), &s.id).await.unwrap(),
        Some(r.id.clone())
    );
    let after = server.command_calls().await;
    assert_eq!(after.get("get"), before.get("get"), "{after:?}");
    // Read again and again: from memory (the session once from Redis: a's own write of it
    // made a forget it).
    a.session(&app(), &s.id).await.unwrap().unwrap();
    let before = server.command_calls().await;
    for _ in 0..20 {
        let session = a.session(&app(), &s.id).await.unwrap().unwrap();
        assert_eq!(session.state, SessionState::Parked);
        assert_eq!(
            a.room_of_session(&app(), &s.id).await.unwrap(),
            Some(r.id.clone())
        );
    }
    let after = server.command_calls().await;
    let calls = |name: &str| after.get(name).unwrap_or(&0) - before.get(name).unwrap_or(&0);
    assert_eq!((calls("hget"), calls("get")), (0, 0), "{after:?}");
    // b lets it go: a hears of it.
    member(&b, &r.id, &s.id, false).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.room_of_session(&app(), &s.id).await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "a never heard the session left");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // b ends the session: a hears of it; a's own write of it is seen at once.
    s.state = SessionState::Ended;
    s.seq = 2;
    b.save_session(&s).await.unwrap();
    while a.session(&app(), &s.id).await.unwrap().unwrap().state != SessionState::Ended {
        assert!(Instant::now() < deadline, "a never heard the session ended");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    s.caller_name = "Alice B.".into();
    s.seq = 3;
    a.save_session(&s).await.unwrap();
    assert_eq!(
        a.session(&app(), &s.id).await.unwrap().unwrap().caller_name,
        "Alice B."
    );
}

/// A session's app never changes (a call stays its app's), so each process reads it from Redis
/// once: the node's events of a call ask for it each (a quarter of an event's reads in the
/// `event_cost` bench), and the process that stored the call not at all.
#[tokio::test]
async fn a_sessions_app_is_read_from_redis_once_per_process() {
    use switchyard::conference::SessionId;

    let (server, a, b) = two_stores().await;
    let s = parked_session();
    let node = NodePrefix::parse("abcde").unwrap();
    let unknown = SessionId::new(&node, &uuid::Uuid::new_v4().to_string());
    a.save_session(&s).await.unwrap();
    let before = server.command_calls().await;
    for _ in 0..20 {
        assert_eq!(a.session_app(&s.id).await.unwrap(), Some(app()));
        assert_eq!(b.session_app(&s.id).await.unwrap(), Some(app()));
    }
    let after = server.command_calls().await;
    let gets = |after: &std::collections::HashMap<String, u64>| {
        after.get("get").unwrap_or(&0) - before.get("get").unwrap_or(&0)
    };
    assert_eq!(gets(&after), 1, "{after:?}");
    // A session not stored (yet) is asked again each time: its call may be stored meanwhile.
    for _ in 0..3 {
        assert_eq!(b.session_app(&unknown).await.unwrap(), None);
    }
    assert_eq!(gets(&server.command_calls().await), 4);
}

/// With an app over several shards of one Redis, a session's room is looked up in every shard
/// and found in one: the others never exist. Read under tracking, each would stay in Redis's
/// tracking table for good, so those lookups are not kept: joins and commands on the joined
/// sessions leave the table as it was. (The joins' writes too: a script that reads has Redis
/// track every key it declares, so the save script declares the room alone, not the lookups it
/// sets.)
#[tokio::test]
async fn lookups_over_several_shards_leave_nothing_in_redis_tracking_table() {
    let server = RedisServer::start();
    let a = RedisStore::connect(&server.url())
        .await
        .unwrap()
        .with_shards(4);
    let mut r = new_room("x");
    r.id = RoomId::new(&NodePrefix::parse("abcde").unwrap(), a.new_room_uuid("x"));
    a.create_room(&r, &[]).await.unwrap();
    let before = server.tracked_keys().await;
    let node = NodePrefix::parse("abcde").unwrap();
    for _ in 0..20 {
        let session =
            switchyard::conference::SessionId::new(&node, &uuid::Uuid::new_v4().to_string());
        member(&a, &r.id, &session, true).await;
        assert_eq!(
            a.room_of_session(&app(), &session).await.unwrap(),
            Some(r.id.clone())
        );
    }
    let after = server.tracked_keys().await;
    assert!(
        after <= before + 1,
        "the tracking table went from {before} to {after} keys over 20 lookups"
    );
}

#[tokio::test]
async fn raw_writes_and_flushes_reach_the_cache() {
    let (server, a, _b) = two_stores().await;
    let r = new_room("x");
    a.create_room(&r, &[]).await.unwrap();
    a.room(&app(), &r.id).await.unwrap().unwrap();
    assert_eq!(
        a.cached_rooms(),
        1,
        "the room is served from the cache before the raw write"
    );
    let client = redis::Client::open(server.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("sy:{{{}}}:room:{}", app(), r.id);
    let mut edited = r.clone();
    edited.detail = "edited by hand".into();
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("json")
        .arg(serde_json::to_string(&edited).unwrap())
        .query_async(&mut raw)
        .await
        .unwrap();
    converges(&a, &r.id, "edited by hand").await;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut raw).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.room(&app(), &r.id).await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "a flushed room is still served");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_controllers_updating_one_room_lose_nothing() {
    let (_server, a, b) = two_stores().await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let r = new_room("busy");
    a.create_room(&r, &[]).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let id = r.id.clone();
        tasks.push(tokio::spawn(async move {
            mark_once(&*store, &app(), &id, i).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Both end on the same, complete room: every update landed once, on top of the last.
    for store in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let room = store.room(&app(), &r.id).await.unwrap().unwrap();
            if room.seq == 40 {
                assert_eq!(marks(&room), (0..40).collect::<Vec<_>>());
                break;
            }
            assert!(Instant::now() < deadline, "stuck at seq {}", room.seq);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

#[tokio::test]
async fn a_redis_restart_empties_the_cache_and_reads_resume() {
    let _ports = PORTS.lock().await;
    let mut server = RedisServer::start();
    let a = RedisStore::connect(&server.url()).await.unwrap();
    let r = new_room("survivor");
    a.create_room(&r, &[]).await.unwrap();
    set_detail(&a, &r.id, "before").await;
    assert_eq!(a.cached_rooms(), 1);
    server.kill();
    // The lost connection drops what it tracked: reads report Redis as unavailable instead of
    // serving a copy nobody can vouch for.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match a.room(&app(), &r.id).await {
            Err(e) => {
                assert!(e.is_retryable(), "{e}");
                break;
            }
            Ok(_) => assert!(
                Instant::now() < deadline,
                "served from cache after Redis died"
            ),
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(a.cached_rooms(), 0);
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match a.room(&app(), &r.id).await {
            Ok(room) => {
                assert_eq!(room.unwrap().detail, "before");
                break;
            }
            Err(e) => assert!(e.is_retryable() && Instant::now() < deadline, "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // And the new connection tracks again: another writer's change reaches it.
    let b = RedisStore::connect(&server.url()).await.unwrap();
    set_detail(&b, &r.id, "after").await;
    converges(&a, &r.id, "after").await;
}

#[tokio::test]
async fn the_cache_can_be_turned_off() {
    let server = RedisServer::start();
    let a = RedisStore::connect(&server.url())
        .await
        .unwrap()
        .with_room_cache(0)
        .await
        .unwrap();
    let r = new_room("x");
    a.create_room(&r, &[]).await.unwrap();
    set_detail(&a, &r.id, "one").await;
    assert_eq!(a.room(&app(), &r.id).await.unwrap().unwrap().detail, "one");
    assert_eq!(a.cached_rooms(), 0);
}

#[tokio::test]
async fn a_redis_without_client_tracking_still_serves_rooms() {
    // CLIENT renamed away: TRACKING cannot be turned on, as on a Redis before 6.0.
    let server = RedisServer::start_with(&["--rename-command", "CLIENT", ""]);
    let a = RedisStore::connect(&server.url()).await.unwrap();
    let r = new_room("x");
    a.create_room(&r, &[]).await.unwrap();
    set_detail(&a, &r.id, "one").await;
    assert_eq!(a.room(&app(), &r.id).await.unwrap().unwrap().detail, "one");
    assert_eq!(a.cached_rooms(), 0, "no tracking, no cache");
}

#[tokio::test]
async fn a_created_room_is_kept_at_once_and_still_tracked() {
    let (_server, a, b) = two_stores().await;
    let r = new_room("fresh");
    a.create_room(&r, &[]).await.unwrap();
    assert_eq!(a.cached_rooms(), 1, "the creator keeps the room it wrote");
    assert_eq!(a.room(&app(), &r.id).await.unwrap().unwrap().name, "fresh");
    set_detail(&b, &r.id, "changed by b").await;
    converges(&a, &r.id, "changed by b").await;
}

/// Sets the detail of several rooms in one batch, from what it was.
async fn change_details(
    store: &RedisStore,
    ids: &[RoomId],
    detail: impl Fn(&str) -> String + Sync,
) {
    let app = app();
    let changes = ids
        .iter()
        .map(|id| RoomChange {
            app: &app,
            room: id,
            change: |r: &mut Room| {
                r.detail = detail(&r.detail);
                r.seq += 1;
                Ok::<_, ()>(((), Vec::new()))
            },
        })
        .collect();
    for result in modify_rooms(store, changes).await {
        result.unwrap().unwrap().unwrap();
    }
}

async fn set_details(store: &RedisStore, ids: &[RoomId], detail: &str) {
    change_details(store, ids, |_| detail.to_owned()).await;
}

#[tokio::test]
async fn rooms_written_in_one_batch_are_kept_and_never_trusted_blindly() {
    let (server, a, b) = two_stores().await;
    // More rooms than one pipeline carries, so several chunks are in flight at once.
    let rooms: Vec<Room> = (0..100).map(|i| new_room(&format!("r{i}"))).collect();
    for r in &rooms {
        a.create_room(r, &[]).await.unwrap();
    }
    let ids: Vec<RoomId> = rooms.iter().map(|r| r.id.clone()).collect();
    set_details(&a, &ids, "batched").await;
    assert_eq!(
        a.cached_rooms(),
        100,
        "the writer keeps every room it wrote"
    );
    // The writer answers reads of them from memory (Redis goes on tracking each room it wrote:
    // the node's event writes once left them untracked, and the API's next command on the room
    // read it back whole).
    let before = server.command_calls().await;
    for id in &ids {
        assert_eq!(a.room(&app(), id).await.unwrap().unwrap().detail, "batched");
    }
    let after = server.command_calls().await;
    assert_eq!(after.get("hmget"), before.get("hmget"), "{after:?}");
    for id in &ids {
        assert_eq!(b.room(&app(), id).await.unwrap().unwrap().detail, "batched");
    }
    // Another controller changes some of them: the writer hears of it, so its next batch reads
    // those ten again and builds on the other controller's versions; nothing is lost.
    set_details(&b, &ids[..10], "by b").await;
    change_details(&a, &ids, |d| format!("{d}, then a")).await;
    for (i, id) in ids.iter().enumerate() {
        let want = if i < 10 {
            "by b, then a"
        } else {
            "batched, then a"
        };
        assert_eq!(b.room(&app(), id).await.unwrap().unwrap().detail, want);
        assert_eq!(a.room(&app(), id).await.unwrap().unwrap().detail, want);
    }
    set_details(&b, &ids[..1], "read fresh").await;
    converges(&a, &ids[0], "read fresh").await;
}

#[tokio::test]
async fn a_redis_that_forgot_the_save_script_is_given_it_again() {
    let server = RedisServer::start();
    let a = RedisStore::connect(&server.url()).await.unwrap();
    let rooms: Vec<Room> = (0..3).map(|i| new_room(&format!("r{i}"))).collect();
    for r in &rooms {
        a.create_room(r, &[]).await.unwrap();
    }
    let ids: Vec<RoomId> = rooms.iter().map(|r| r.id.clone()).collect();
    set_details(&a, &ids, "one").await;
    // As after a Redis restart or a SCRIPT FLUSH: the scripts are gone, the connections are not.
    let client = redis::Client::open(server.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut raw)
        .await
        .unwrap();
    set_details(&a, &ids, "two").await;
    set_detail(&a, &ids[0], "three").await;
    let b = RedisStore::connect(&server.url()).await.unwrap();
    assert_eq!(
        b.room(&app(), &ids[0]).await.unwrap().unwrap().detail,
        "three"
    );
    for id in &ids[1..] {
        assert_eq!(b.room(&app(), id).await.unwrap().unwrap().detail, "two");
    }
}

/// Two controllers' stores on `cluster`, each app spread over three shards (one per master),
/// with the room cache on (one tracked connection per master).
async fn two_on(cluster: &common::redis_cluster::RedisCluster) -> (RedisStore, RedisStore) {
    let store = || async {
        RedisStore::connect(&cluster.url())
            .await
            .unwrap()
            .with_shards(3)
    };
    (store().await, store().await)
}

/// Six rooms made by `a`, changed to `before` and read back through it (so it holds them);
/// their ids, and the key of the first one's record.
async fn six_read_through(
    cluster: &common::redis_cluster::RedisCluster,
    a: &RedisStore,
    prefix: &str,
) -> (Vec<RoomId>, String) {
    let rooms: Vec<Room> = (0..6)
        .map(|i| room_of(a, &format!("{prefix}{i}")))
        .collect();
    for r in &rooms {
        a.create_room(r, &[]).await.unwrap();
    }
    let ids: Vec<RoomId> = rooms.iter().map(|r| r.id.clone()).collect();
    set_details(a, &ids, "before").await;
    for id in &ids {
        assert_eq!(a.room(&app(), id).await.unwrap().unwrap().detail, "before");
    }
    assert_eq!(a.cached_rooms(), 6, "the reader holds every room");
    let key = cluster
        .find_key(&format!("sy:{{app-a*}}:room:{}", ids[0]))
        .expect("the room's key");
    (ids, key)
}

/// A room whose id lands in its name's shard (as the controller draws them).
fn room_of(store: &RedisStore, name: &str) -> Room {
    let mut r = new_room(name);
    r.id = RoomId::new(
        &NodePrefix::parse("abcde").unwrap(),
        store.new_room_uuid(name),
    );
    r
}

/// On a cluster, each master tracks what this controller read from it: a batch over every
/// master is kept, another controller's changes reach the cached reader, nothing is lost.
#[tokio::test]
async fn on_a_cluster_each_master_tells_the_cache_of_changes() {
    let _ports = PORTS.lock().await;
    let cluster = common::redis_cluster::RedisCluster::start();
    let (a, b) = two_on(&cluster).await;
    let rooms: Vec<Room> = (0..24).map(|i| room_of(&a, &format!("c{i}"))).collect();
    for r in &rooms {
        a.create_room(r, &[]).await.unwrap();
    }
    let ids: Vec<RoomId> = rooms.iter().map(|r| r.id.clone()).collect();
    for id in &ids {
        assert_eq!(b.room(&app(), id).await.unwrap().unwrap().detail, "");
    }
    assert_eq!(
        b.cached_rooms(),
        24,
        "the reader keeps what it read, from every master"
    );
    // One batch over the three masters.
    set_details(&a, &ids, "batched").await;
    assert_eq!(a.cached_rooms(), 24, "the writer keeps every room it wrote");
    for id in &ids {
        converges(&b, id, "batched").await;
    }
    set_details(&b, &ids[..6], "by b").await;
    change_details(&a, &ids, |d| format!("{d}, then a")).await;
    for (i, id) in ids.iter().enumerate() {
        let want = if i < 6 {
            "by b, then a"
        } else {
            "batched, then a"
        };
        converges(&b, id, want).await;
        assert_eq!(a.room(&app(), id).await.unwrap().unwrap().detail, want);
    }
}

/// A slot that moves to another master (a reshard) takes its rooms with it: the cached copy is
/// dropped (the old master deletes the keys it hands over, which tells the cache), reads and
/// writes follow the slot to its new master with no error, and nothing is lost.
#[tokio::test]
async fn on_a_cluster_a_moved_slot_is_followed() {
    let _ports = PORTS.lock().await;
    let cluster = common::redis_cluster::RedisCluster::start();
    let (a, b) = two_on(&cluster).await;
    let (ids, room_key) = six_read_through(&cluster, &a, "m").await;
    // The first room's slot moves to the next master.
    cluster.move_slot_of(&room_key);
    set_detail(&b, &ids[0], "after the move").await;
    converges(&a, &ids[0], "after the move").await;
    change_details(&a, &ids, |d| format!("{d}, then a")).await;
    for (i, id) in ids.iter().enumerate() {
        let want = if i == 0 {
            "after the move, then a"
        } else {
            "before, then a"
        };
        converges(&b, id, want).await;
    }
}

/// A cluster master killed (SIGKILL) and its replica promoted: a controller that had its rooms
/// cached drops them with the lost connection, finds the new master from the cluster, and reads
/// what was written there; writes go on after a short window of errors (the API's 503s).
#[tokio::test]
async fn on_a_cluster_a_master_failover_is_followed() {
    let _ports = PORTS.lock().await;
    let mut cluster = common::redis_cluster::RedisCluster::with_replicas(1);
    let (a, b) = two_on(&cluster).await;
    let (ids, key) = six_read_through(&cluster, &a, "f").await;
    let old = cluster.master_of(&key).expect("the room's master");
    // What a failover loses (writes not replicated yet) is not what this test is about.
    cluster.wait_replicated(old);
    cluster.nodes[old].kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster.master_of(&key).is_none() {
        assert!(
            Instant::now() < deadline,
            "no replica took over:\n{}",
            cluster.describe((old + 1) % cluster.nodes.len())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Writes fail while the connection to the dead master is found out, then go to the new one.
    loop {
        let written = update_room(&b, &app(), &ids[0], |r| {
            r.detail = "after the failover".into();
            r.seq += 1;
            Ok::<_, ()>(((), Vec::new()))
        })
        .await;
        if matches!(written, Ok(Some(Ok(_)))) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes never resumed: {written:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The reader had the room cached from the dead master: once it answers at all, it answers
    // with the new master's room, never that copy.
    loop {
        if let Ok(room) = a.room(&app(), &ids[0]).await {
            let detail = room.map(|r| r.detail);
            assert_eq!(detail.as_deref(), Some("after the failover"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reader never saw the new master's room"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A controller (re)starting while the first node its URL names, a master, is down and before
/// its replica took over: it starts through the others, and once the replica is promoted its
/// rooms are written and read there (before, the store connected to the first node named, and
/// the room cache to every master of the old map, and starting failed).
#[tokio::test]
async fn on_a_cluster_a_controller_starts_while_a_master_is_down() {
    let _ports = PORTS.lock().await;
    let mut cluster = common::redis_cluster::RedisCluster::with_replicas(1);
    assert!(
        cluster.cli(0, &["ROLE"]).starts_with("master"),
        "node 0 is a master"
    );
    cluster.nodes[0].kill();
    assert!(
        cluster
            .url()
            .contains(&format!("//127.0.0.1:{},", cluster.nodes[0].port))
    );
    let store = RedisStore::connect(&cluster.url())
        .await
        .expect("starts through the nodes that are up")
        .with_shards(3);
    // Rooms on every master, the dead one's included once its replica serves its slots.
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..12 {
        let room = room_of(&store, &format!("while-a-master-is-down-{i}"));
        loop {
            if store.create_room(&room, &[]).await.is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "room {i} was never written:\n{}",
                cluster.describe(1)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            store.room(&app(), &room.id).await.unwrap().map(|r| r.id),
            Some(room.id)
        );
    }
}

/// A script that reads has Redis track every key it declares, for a caller with client-side
/// tracking: the room scripts declare the room alone. Creating rooms and changing them through
/// the API (a write that keeps its room tracked) leaves Redis tracking those rooms and nothing
/// else: not their names, the app's room indexes or its outbox (before: 43 keys for 20 rooms
/// created, and each API write added the room's name and the indexes again).
#[tokio::test]
async fn rooms_created_and_changed_leave_only_themselves_in_redis_tracking_table() {
    let server = RedisServer::start();
    let a = RedisStore::connect(&server.url()).await.unwrap();
    let before = server.tracked_keys().await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let r = new_room(&format!("named-{i}"));
        a.create_room(&r, &[]).await.unwrap();
        set_detail(&a, &r.id, "changed").await;
        ids.push(r.id);
    }
    assert_eq!(server.tracked_keys().await - before, 20);
    assert_eq!(a.cached_rooms(), 20);
    // Each is still an answer to reads, and hears of another controller's change.
    let b = RedisStore::connect(&server.url()).await.unwrap();
    set_detail(&b, &ids[7], "by b").await;
    converges(&a, &ids[7], "by b").await;
}

/// Redis's tracking table (what it must tell this controller about) holds the rooms it read,
/// not what a room write looked at: a write checks each session lookup it removes, and one
/// already gone, read under tracking, would stay in the table for good. The soak's Redis grew by
/// one such entry for nearly every call that passed through a room.
#[tokio::test]
async fn calls_passing_through_a_room_leave_nothing_in_redis_tracking_table() {
    use switchyard::conference::{Member, SessionId};

    let server = RedisServer::start();
    let a = RedisStore::connect(&server.url()).await.unwrap();
    let r = new_room("x");
    a.create_room(&r, &[]).await.unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let before = server.tracked_keys().await;
    let node = NodePrefix::parse("abcde").unwrap();
    for _ in 0..50 {
        let session = SessionId::new(&node, &uuid::Uuid::new_v4().to_string());
        let channel = session.channel().to_owned();
        let joined = session.clone();
        update_room(&a, &app(), &r.id, move |room| {
            let m = Member::new(joined.clone(), "100".into(), "200".into(), None, 2);
            room.members.insert(channel.clone(), m);
            room.seq += 1;
            Ok::<_, ()>(((), Vec::new()))
        })
        .await
        .unwrap()
        .unwrap()
        .unwrap();
        // Its lookup is gone before the room lets the member go (another write took it).
        let key = switchyard::store::keys::session_room(app().as_str(), &session);
        redis::cmd("DEL")
            .arg(&key)
            .exec_async(&mut raw)
            .await
            .unwrap();
        let channel = session.channel().to_owned();
        update_room(&a, &app(), &r.id, move |room| {
            room.members.remove(&channel);
            room.seq += 1;
            Ok::<_, ()>(((), Vec::new()))
        })
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    }
    let after = server.tracked_keys().await;
    assert!(
        after <= before + 1,
        "the tracking table went from {before} to {after} keys over 50 calls"
    );
    // And the writer still keeps, and hears of changes to, its room.
    assert_eq!(a.cached_rooms(), 1);
    let b = RedisStore::connect(&server.url()).await.unwrap();
    set_detail(&b, &r.id, "by b").await;
    converges(&a, &r.id, "by b").await;
}

/// Every room read and write takes a clone of the tracked connection. It sat behind a fair
/// async lock: a caller that queued while the connection was being made, and then was not run
/// again for a while (a request starved of the CPU, among thousands), was handed the lock and
/// held every caller after it. Under load the handoffs came slower than the callers and one
/// instance stopped writing altogether (`benches/scale.rs` at 6,000 events a second).
#[tokio::test]
async fn a_caller_left_waiting_for_the_connection_holds_up_no_one() {
    use std::future::Future;
    use std::task::{Context, Waker};
    use switchyard::store::room_cache::{Access, Tracked};

    let server = RedisServer::start();
    let tracked = Tracked::new(&server.url(), 16).unwrap();
    let ping = |mut conn: redis::aio::MultiplexedConnection| async move {
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    let mut cx = Context::from_waker(Waker::noop());
    // One caller is making the connection (its handshake waits for Redis's answer)...
    let mut connecting = Box::pin(tracked.check());
    assert!(connecting.as_mut().poll(&mut cx).is_pending());
    // ...another waits for it, and is then never run again.
    let mut starved = Box::pin(tracked.call("k", Access::Read, ping));
    assert!(starved.as_mut().poll(&mut cx).is_pending());
    connecting.await.unwrap();
    let next = tokio::time::timeout(
        Duration::from_secs(5),
        tracked.call("k", Access::Read, ping),
    )
    .await;
    let (answer, _) = next
        .expect("a caller waited behind one that was not run")
        .unwrap();
    assert_eq!(answer, "PONG");
    drop(starved);
}
