//! A room's record in Redis keeps its past participations apart (`src/store/redis/room_record.rs`):
//! a change that leaves them alone does not rewrite them, a change that adds one writes them, and
//! a record laid out before (the list inside the room's JSON) loses nothing when it is next
//! written, nor when an instance of before writes it during a rolling upgrade.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::redis_server::RedisServer;
use switchyard::conference::{
    AppId, Member, NodePrefix, PAST_MEMBERS_KEPT, Room, RoomId, RoomStatus, RoomType, SessionId,
};
use switchyard::store::redis::RedisStore;
use switchyard::store::{Store, keys, update_room};

fn app() -> AppId {
    AppId::parse("app-a").unwrap()
}

fn node() -> NodePrefix {
    NodePrefix::parse("abcde").unwrap()
}

fn member(caller: &str) -> Member {
    let session = SessionId::new(&node(), &uuid::Uuid::new_v4().to_string());
    Member::new(session, "200".into(), caller.into(), None, 2)
}

fn new_room() -> Room {
    let mut r = Room::new(
        RoomId::new(&node(), uuid::Uuid::new_v4()),
        app(),
        "hist".into(),
        RoomType::Conference,
        uuid::Uuid::new_v4().to_string(),
        1,
    );
    r.status = RoomStatus::Progressing;
    r
}

async fn change(store: &RedisStore, id: &RoomId, f: impl Fn(&mut Room) + Send + Sync) {
    update_room(store, &app(), id, |r| {
        f(r);
        r.seq += 1;
        Ok::<_, ()>(((), Vec::new()))
    })
    .await
    .unwrap()
    .unwrap()
    .unwrap();
}

async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The record's `json` and `past` fields as Redis holds them.
async fn fields(server: &RedisServer, id: &RoomId) -> (String, Option<String>) {
    redis::cmd("HMGET")
        .arg(keys::room(app().as_str(), id))
        .arg("json")
        .arg("past")
        .query_async::<(String, Option<String>)>(&mut raw(server).await)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_change_that_leaves_the_history_alone_does_not_rewrite_it() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let r = new_room();
    store.create_room(&r, &[]).await.unwrap();
    // A long-lived room: as many past participations as a room keeps, one member in it.
    change(&store, &r.id, |room| {
        for i in 0..PAST_MEMBERS_KEPT {
            room.retire(member(&format!("{i}")));
        }
        let m = member("live");
        room.members.insert(m.channel().to_owned(), m);
    })
    .await;
    let (json, past) = fields(&server, &r.id).await;
    let past = past.expect("the history is in its own field");
    assert!(!json.contains("past_members"), "{json}");
    assert!(past.len() > 20_000, "{} bytes of history", past.len());
    // A mute: the room's JSON is written, its history is not (the same version stays).
    change(&store, &r.id, |room| {
        for m in room.members.values_mut() {
            m.muted = false;
        }
    })
    .await;
    let (json_after, past_after) = fields(&server, &r.id).await;
    assert_ne!(json_after, json);
    assert_eq!(past_after.as_deref(), Some(past.as_str()));
    assert!(
        json_after.len() < 2_000,
        "{} bytes written",
        json_after.len()
    );
    // The member leaves: now the history is written, and holds it, the oldest gone.
    change(&store, &r.id, |room| {
        let (_, m) = room.members.pop_first().unwrap();
        room.retire(m);
    })
    .await;
    let (_, past_left) = fields(&server, &r.id).await;
    assert_ne!(past_left.as_deref(), Some(past.as_str()));
    let fresh = RedisStore::connect(&server.url()).await.unwrap();
    let read = fresh.room(&app(), &r.id).await.unwrap().unwrap();
    assert_eq!(read.past_members.len(), PAST_MEMBERS_KEPT);
    assert_eq!(read.past_members.last().unwrap().caller_id, "live");
    assert_eq!(read.past_members[0].caller_id, "1");
    assert_eq!(read, store.room(&app(), &r.id).await.unwrap().unwrap());
}

/// Writes the room's record as an instance of before this layout did: `json` (with the past
/// participations inside) and `seq`, nothing else.
async fn write_as_before(server: &RedisServer, id: &RoomId, seq: u64, mut json: serde_json::Value) {
    json["seq"] = seq.into();
    redis::cmd("HSET")
        .arg(keys::room(app().as_str(), id))
        .arg("seq")
        .arg(seq)
        .arg("json")
        .arg(json.to_string())
        .exec_async(&mut raw(server).await)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_room_laid_out_before_keeps_its_history_through_an_upgrade() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let r = new_room();
    store.create_room(&r, &[]).await.unwrap();
    // As an instance of before wrote it: the past participations inside the JSON.
    let old_past: Vec<Member> = (0..3).map(|i| member(&format!("old{i}"))).collect();
    let mut json: serde_json::Value =
        serde_json::from_str(&fields(&server, &r.id).await.0).unwrap();
    json["past_members"] = serde_json::to_value(&old_past).unwrap();
    write_as_before(&server, &r.id, 2, json).await;
    // Read and changed by this version without touching the history: it moves to its field.
    let upgraded = RedisStore::connect(&server.url()).await.unwrap();
    change(&upgraded, &r.id, |room| room.detail = "after".into()).await;
    let (json_now, past) = fields(&server, &r.id).await;
    assert!(!json_now.contains("old0"), "{json_now}");
    assert!(past.unwrap().contains("old2"));
    // An instance of before, still running, retires one more into the JSON (it read no past:
    // the JSON has none now). Nothing is lost: this version reads both.
    let mut json: serde_json::Value = serde_json::from_str(&json_now).unwrap();
    let late = member("late");
    json["past_members"] = serde_json::to_value([&late]).unwrap();
    write_as_before(&server, &r.id, 4, json).await;
    let callers = |room: &Room| -> Vec<String> {
        room.past_members
            .iter()
            .map(|m| m.caller_id.clone())
            .collect()
    };
    let read = upgraded.room_fresh(&app(), &r.id).await.unwrap().unwrap();
    assert_eq!(callers(&read), ["old0", "old1", "old2", "late"]);
    // And the next write by this version keeps all four in the field.
    change(&upgraded, &r.id, |room| room.detail = "later".into()).await;
    let fresh = RedisStore::connect(&server.url()).await.unwrap();
    let read = fresh.room(&app(), &r.id).await.unwrap().unwrap();
    assert_eq!(callers(&read), ["old0", "old1", "old2", "late"]);
    assert!(!fields(&server, &r.id).await.0.contains("past_members"));
}

/// Another controller's change that leaves the history alone costs a reader no parsing of it:
/// the reader's copy, kept under the field's version through the invalidation, is the one it
/// gets again (the same list, shared). A change to the history brings the new one.
#[tokio::test]
async fn a_reader_keeps_the_history_through_changes_that_leave_it_alone() {
    use std::sync::Arc;

    let server = RedisServer::start();
    let a = RedisStore::connect(&server.url()).await.unwrap();
    let b = RedisStore::connect(&server.url()).await.unwrap();
    let r = new_room();
    a.create_room(&r, &[]).await.unwrap();
    change(&a, &r.id, |room| {
        for i in 0..10 {
            room.retire(member(&format!("{i}")));
        }
    })
    .await;
    let first = b.room(&app(), &r.id).await.unwrap().unwrap();
    // a changes the room, not its history: b reads it again (its JSON), the history it kept.
    change(&a, &r.id, |room| room.detail = "muted".into()).await;
    let again = read_until(&b, &r.id, |room| room.detail == "muted").await;
    assert!(Arc::ptr_eq(&first.past_members, &again.past_members));
    // a retires one more: b reads the new history.
    change(&a, &r.id, |room| room.retire(member("late"))).await;
    let last = read_until(&b, &r.id, |room| room.past_members.len() == 11).await;
    assert!(!Arc::ptr_eq(&first.past_members, &last.past_members));
    assert_eq!(last.past_members.last().unwrap().caller_id, "late");
}

/// Reads through `store` until the room is as `ok` wants (Redis's invalidation travels on its
/// own); at most 5 s.
async fn read_until(store: &RedisStore, id: &RoomId, ok: impl Fn(&Room) -> bool) -> Room {
    let read = async {
        loop {
            let room = store.room(&app(), id).await.unwrap().unwrap();
            if ok(&room) {
                return room;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), read)
        .await
        .expect("the change never reached the reader")
}
