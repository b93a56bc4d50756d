//! One suite, three stores: the memory store, the Redis store against a real redis-server, and
//! the Redis store against a real three-master Redis Cluster must behave the same.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::marks::{mark, mark_once, marks};
use switchyard::conference::{
    AppId, DomainEvent, EventKind, MemberStatus, NodePrefix, Room, RoomId, RoomStatus, RoomType,
    Session, SessionId, SessionState, ops,
};
use switchyard::store::{
    Created, Fence, OutboxEntry, RoomChange, Saved, Store, StoreError, entry_order, modify_rooms,
    update_room,
};

fn app(name: &str) -> AppId {
    AppId::parse(name).unwrap()
}

fn node() -> NodePrefix {
    NodePrefix::parse("abcde").unwrap()
}

/// A `member.joined` event of the room, numbered `seq`.
fn joined(r: &Room, seq: u64) -> DomainEvent {
    DomainEvent {
        kind: EventKind::MemberJoined,
        app: r.app.clone(),
        room: r.id.clone(),
        seq,
        at: 1,
        data: serde_json::json!({"n": seq}),
        redelivers: None,
    }
}

/// A room as the controller creates one: its id drawn by the store (for its name's shard).
fn room<S: Store>(store: &S, app_id: &AppId, name: &str, created_at: i64) -> Room {
    let mut r = Room::new(
        RoomId::new(&node(), store.new_room_uuid(name)),
        app_id.clone(),
        name.into(),
        RoomType::Conference,
        uuid::Uuid::new_v4().to_string(),
        created_at,
    );
    r.status = RoomStatus::Progressing;
    r
}

fn session(app_id: &AppId, created_at: i64) -> Session {
    Session {
        id: SessionId::new(&node(), &uuid::Uuid::new_v4().to_string()),
        app: app_id.clone(),
        did: "15551230000".into(),
        caller_id: "1001".into(),
        caller_name: "Alice".into(),
        state: SessionState::Parked,
        core_uuid: "core".into(),
        created_at,
        answered_at: Some(created_at),
        ended_at: None,
        hangup_cause: None,
        seq: 1,
    }
}

async fn rooms_names_and_apps_are_kept_apart<S: Store>(store: S) {
    let (a, b) = (app("app-a"), app("app-b"));
    let r = room(&store, &a, "standup", 10);
    assert_eq!(store.create_room(&r, &[]).await.unwrap(), Created::Created);
    assert_eq!(store.room(&a, &r.id).await.unwrap().unwrap(), r);
    assert_eq!(store.room_app(&r.id).await.unwrap(), Some(a.clone()));
    // The same name again in the same app is taken, and says by which room.
    let again = room(&store, &a, "standup", 11);
    assert_eq!(
        store.create_room(&again, &[]).await.unwrap(),
        Created::NameTaken(r.id.clone())
    );
    // Another app may use the name, and cannot see the first app's room.
    assert_eq!(
        store
            .create_room(&room(&store, &b, "standup", 12), &[])
            .await
            .unwrap(),
        Created::Created
    );
    assert_eq!(store.room(&b, &r.id).await.unwrap(), None);
    let listed = store.rooms_of_app(&b, None, 10).await.unwrap();
    assert!(listed.items.iter().all(|x| x.app == b));
    assert_eq!(store.rooms_on_node(&node()).await.unwrap().len(), 2);
}

async fn writes_are_guarded_by_seq<S: Store>(store: S) {
    let a = app("app-a");
    let r = room(&store, &a, "x", 1);
    store.create_room(&r, &[]).await.unwrap();
    let mut newer = r.clone();
    newer.detail = "first".into();
    newer.seq += 1;
    assert_eq!(
        store.save_room(&r, &newer, &[]).await.unwrap(),
        Saved::Saved
    );
    let mut stale = r.clone();
    stale.detail = "lost".into();
    stale.seq += 1;
    assert_eq!(
        store.save_room(&r, &stale, &[]).await.unwrap(),
        Saved::Conflict
    );
    assert_eq!(
        store.room(&a, &r.id).await.unwrap().unwrap().detail,
        "first"
    );
}

async fn concurrent_updates_all_land<S: Store>(store: S) {
    let store = Arc::new(store);
    let a = app("app-a");
    let r = room(&*store, &a, "busy", 1);
    store.create_room(&r, &[]).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (store, a, id) = (store.clone(), a.clone(), r.id.clone());
        tasks.push(tokio::spawn(async move {
            mark_once(&*store, &a, &id, i).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let done = store.room(&a, &r.id).await.unwrap().unwrap();
    assert_eq!(done.seq, 20);
    assert_eq!(marks(&done), (0..20).collect::<Vec<_>>());
}

/// An ended room freed its name (a new room may take it) and left its node.
async fn assert_released<S: Store>(store: &S, ended: &Room) {
    assert_eq!(
        store
            .create_room(&room(store, &ended.app, &ended.name, 2), &[])
            .await
            .unwrap(),
        Created::Created
    );
    assert!(
        !store
            .rooms_on_node(&node())
            .await
            .unwrap()
            .iter()
            .any(|(_, id)| id == &ended.id)
    );
}

/// A batch does to each room what a change of that room alone would do: a join (with its
/// indexes, lookups and events), an ending (its name freed), no change, a refusal, and a room
/// that does not exist, each answered in its place.
async fn a_batch_changes_each_room_as_alone<S: Store>(store: S) {
    let a = app("app-a");
    let s = session(&a, 1);
    let rooms = ["join", "end", "same", "refuse"].map(|name| room(&store, &a, name, 1));
    for r in &rooms {
        store.create_room(r, &[]).await.unwrap();
    }
    let missing = RoomId::new(&node(), uuid::Uuid::new_v4());
    let ids: Vec<&RoomId> = rooms.iter().map(|r| &r.id).chain([&missing]).collect();
    let change = |r: &mut Room| match r.name.as_str() {
        "join" => {
            let joined =
                ops::request_join(r, &s, Some("uid-9".into()), 5).map_err(|e| e.to_string())?;
            Ok(("joined", joined.events))
        }
        "end" => {
            r.status = RoomStatus::Terminated;
            r.seq += 1;
            Ok(("ended", Vec::new()))
        }
        "same" => Ok(("same", Vec::new())),
        _ => Err("refused".to_string()),
    };
    let changes = ids
        .iter()
        .map(|id| RoomChange {
            app: &a,
            room: id,
            change,
        })
        .collect();
    let results: Vec<_> = modify_rooms(&store, changes)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        results,
        [
            Some(Ok("joined")),
            Some(Ok("ended")),
            Some(Ok("same")),
            Some(Err("refused".to_string())),
            None
        ]
    );
    let joined = store.room(&a, &rooms[0].id).await.unwrap().unwrap();
    assert_eq!(joined.members[s.id.channel()].status, MemberStatus::Joining);
    assert_eq!(
        store.room_of_session(&a, &s.id).await.unwrap(),
        Some(rooms[0].id.clone())
    );
    let cc = joined.members[s.id.channel()].conferencecall_id;
    assert_eq!(
        store.ref_owner(cc).await.unwrap(),
        Some((a.clone(), rooms[0].id.clone()))
    );
    let outbox = store.outbox(&a, None, 10).await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].event.kind, EventKind::MemberJoining);
    assert_eq!(outbox[0].event.data["command_uid"], "uid-9");
    assert_released(&store, &rooms[1]).await;
    for r in &rooms[2..] {
        assert_eq!(&store.room(&a, &r.id).await.unwrap().unwrap(), r);
    }
    // A batch that changes nothing writes nothing, and the store goes on answering.
    let idle = vec![RoomChange {
        app: &a,
        room: &rooms[2].id,
        change,
    }];
    assert_eq!(
        modify_rooms(&store, idle).await.pop().unwrap().unwrap(),
        Some(Ok("same"))
    );
    assert_eq!(store.room(&a, &rooms[2].id).await.unwrap().unwrap().seq, 0);
}

/// Batches and single updates racing on the same rooms: every change lands exactly once.
async fn concurrent_batches_all_land<S: Store>(store: S) {
    let store = Arc::new(store);
    let a = app("app-a");
    let rooms: Vec<Room> = (0..3)
        .map(|i| room(&*store, &a, &format!("busy{i}"), 1))
        .collect();
    for r in &rooms {
        store.create_room(r, &[]).await.unwrap();
    }
    let ids: Vec<RoomId> = rooms.iter().map(|r| r.id.clone()).collect();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (store, a, ids) = (store.clone(), a.clone(), ids.clone());
        tasks.push(tokio::spawn(async move {
            let add = |room: &mut Room| {
                mark(room, i);
                Ok::<_, ()>(((), Vec::new()))
            };
            if i % 2 == 0 {
                let changes = ids
                    .iter()
                    .map(|id| RoomChange {
                        app: &a,
                        room: id,
                        change: add,
                    })
                    .collect();
                for result in modify_rooms(&*store, changes).await {
                    result.unwrap().unwrap().unwrap();
                }
            } else {
                for id in &ids {
                    mark_once(&*store, &a, id, i).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for id in &ids {
        let done = store.room(&a, id).await.unwrap().unwrap();
        assert_eq!(done.seq, 20);
        assert_eq!(marks(&done), (0..20).collect::<Vec<_>>());
    }
}

async fn membership_indexes_follow_the_room<S: Store>(store: S) {
    let (a, b) = (app("app-a"), app("app-b"));
    let r = room(&store, &a, "idx", 1);
    let s = session(&a, 1);
    store.create_room(&r, &[]).await.unwrap();
    let (joined, _) = update_room(&store, &a, &r.id, |room| {
        let applied =
            ops::request_join(room, &s, Some("uid-1".into()), 5).map_err(|e| e.to_string())?;
        Ok::<_, String>(((), applied.events))
    })
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    assert_eq!(joined.members[s.id.channel()].status, MemberStatus::Joining);
    assert_eq!(
        store.room_of_session(&a, &s.id).await.unwrap(),
        Some(r.id.clone())
    );
    assert_eq!(
        store.room_of_session(&b, &s.id).await.unwrap(),
        None,
        "another app sees nothing"
    );
    // The join fails: the session is in no room any more.
    update_room(&store, &a, &r.id, |room| {
        Ok::<_, ()>(((), ops::expire_joins(room, 10, 10).events))
    })
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    assert_eq!(store.room_of_session(&a, &s.id).await.unwrap(), None);
    // The room ends: its name is free again and it leaves its node.
    update_room(&store, &a, &r.id, |room| {
        room.status = RoomStatus::Terminated;
        room.seq += 1;
        Ok::<_, ()>(((), Vec::new()))
    })
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    assert_released(&store, &r).await;
    // The events of each step reached the outbox, in order.
    let outbox = store.outbox(&a, None, 100).await.unwrap();
    let kinds: Vec<EventKind> = outbox.iter().map(|row| row.event.kind).collect();
    assert_eq!(
        kinds,
        [EventKind::MemberJoining, EventKind::MemberJoinFailed]
    );
    assert_eq!(outbox[0].event.data["command_uid"], "uid-1");
    let rest = store
        .outbox(&a, Some(&outbox[0].position), 100)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
}

async fn listings_page_by_creation_time<S: Store>(store: S) {
    let a = app("app-a");
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = room(&store, &a, &format!("r{i}"), 100 - i);
        store.create_room(&r, &[]).await.unwrap();
        ids.push(r.id);
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.rooms_of_app(&a, after.clone(), 2).await.unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|r| r.id.clone()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ids, "oldest first, each once");
}

/// Live listings hold the rooms that have not ended, oldest first, page after page; the full
/// listing keeps the ended ones too (readable for their retention).
async fn live_listings_hold_only_live_rooms<S: Store>(store: S) {
    let a = app("app-a");
    let mut rooms = Vec::new();
    for i in 0..6 {
        let r = room(&store, &a, &format!("r{i}"), i);
        store.create_room(&r, &[]).await.unwrap();
        rooms.push(r);
    }
    store
        .create_room(&room(&store, &app("app-b"), "r9", 9), &[])
        .await
        .unwrap();
    for i in [0, 3, 4] {
        let mut ended = rooms[i].clone();
        ended.status = RoomStatus::Terminated;
        ended.seq += 1;
        assert_eq!(
            store.save_room(&rooms[i], &ended, &[]).await.unwrap(),
            Saved::Saved
        );
    }
    let mut live = Vec::new();
    let mut after = None;
    loop {
        let page = store.live_rooms_of_app(&a, after.clone(), 2).await.unwrap();
        assert!(page.items.len() <= 2);
        live.extend(page.items.iter().map(|r| r.id.clone()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let expected: Vec<RoomId> = [1, 2, 5].iter().map(|&i| rooms[i].id.clone()).collect();
    assert_eq!(live, expected, "the live rooms, oldest first, each once");
    let all = store.rooms_of_app(&a, None, 100).await.unwrap();
    assert_eq!(all.items.len(), 6, "ended rooms stay listed in full");
}

async fn media_ids<S: Store>(store: &S, a: &AppId, per_page: usize) -> Vec<RoomId> {
    let (mut ids, mut after) = (Vec::new(), None);
    loop {
        let page = store
            .media_rooms_of_app(a, after.clone(), per_page)
            .await
            .unwrap();
        ids.extend(page.items.into_iter().map(|r| r.id));
        match page.next {
            Some(next) => after = Some(next),
            None => return ids,
        }
    }
}

/// The rooms that record or carry a live stream are listed apart, oldest first: a room goes in
/// as it begins recording and out as it stops or ends; the other live rooms are not read.
async fn rooms_with_media_are_listed_apart<S: Store>(store: S) {
    let a = app("app-a");
    let mut rooms = Vec::new();
    for i in 0..5 {
        let r = room(&store, &a, &format!("m{i}"), i);
        store.create_room(&r, &[]).await.unwrap();
        rooms.push(r);
    }
    let save = |old: Room, change: fn(&mut Room)| {
        let store = &store;
        async move {
            let mut new = old.clone();
            change(&mut new);
            new.seq += 1;
            assert_eq!(
                store.save_room(&old, &new, &[]).await.unwrap(),
                Saved::Saved
            );
            new
        }
    };
    assert!(media_ids(&store, &a, 2).await.is_empty());
    for i in [1, 3, 4] {
        rooms[i] = save(rooms[i].clone(), |r| {
            r.recording = Some(uuid::Uuid::new_v4())
        })
        .await;
    }
    let ids: Vec<RoomId> = rooms.iter().map(|r| r.id.clone()).collect();
    let ids = |is: &[usize]| -> Vec<RoomId> { is.iter().map(|&i| ids[i].clone()).collect() };
    assert_eq!(media_ids(&store, &a, 2).await, ids(&[1, 3, 4]));
    // Another change of a recording room keeps it; one that stops, and one that ends, leave.
    rooms[1] = save(rooms[1].clone(), |r| r.name = "renamed".into()).await;
    rooms[3] = save(rooms[3].clone(), |r| r.recording = None).await;
    rooms[4] = save(rooms[4].clone(), |r| r.status = RoomStatus::Terminated).await;
    assert_eq!(media_ids(&store, &a, 2).await, ids(&[1]));
    assert!(media_ids(&store, &app("app-b"), 10).await.is_empty());
}

async fn sessions_keep_their_newest_version<S: Store>(store: S) {
    let a = app("app-a");
    let mut s = session(&a, 7);
    store.save_session(&s).await.unwrap();
    assert_eq!(store.session_app(&s.id).await.unwrap(), Some(a.clone()));
    let old = s.clone();
    s.state = SessionState::Ended;
    s.seq = 2;
    store.save_session(&s).await.unwrap();
    store.save_session(&old).await.unwrap();
    assert_eq!(
        store.session(&a, &s.id).await.unwrap().unwrap().state,
        SessionState::Ended,
        "an older version never wins"
    );
    assert!(
        store
            .sessions_of_app(&a, None, 10)
            .await
            .unwrap()
            .items
            .is_empty(),
        "ended sessions are not live"
    );
    assert!(store.sessions_on_node(&node()).await.unwrap().is_empty());
    assert_eq!(store.session(&app("app-b"), &s.id).await.unwrap(), None);
}

async fn cooldowns_and_remembered_answers_expire<S: Store>(store: S) {
    let a = app("app-a");
    assert!(
        store
            .take_cooldown(&a, "conf_play:r1", Duration::from_millis(80))
            .await
            .unwrap()
    );
    assert!(
        !store
            .take_cooldown(&a, "conf_play:r1", Duration::from_millis(80))
            .await
            .unwrap()
    );
    assert!(
        store
            .take_cooldown(&app("app-b"), "conf_play:r1", Duration::from_millis(80))
            .await
            .unwrap()
    );
    let left = store
        .cooldown_left(&a, "conf_play:r1")
        .await
        .unwrap()
        .expect("held");
    assert!(
        left <= Duration::from_millis(80) && left > Duration::ZERO,
        "{left:?}"
    );
    assert_eq!(store.cooldown_left(&a, "conf_play:r2").await.unwrap(), None);
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(
        store
            .take_cooldown(&a, "conf_play:r1", Duration::from_millis(80))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .remember(&a, "s1:uid", "first", Duration::from_secs(600))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .remember(&a, "s1:uid", "second", Duration::from_secs(600))
            .await
            .unwrap()
            .as_deref(),
        Some("first")
    );
    assert_eq!(
        store.recall(&a, "s1:uid").await.unwrap().as_deref(),
        Some("first")
    );
    assert_eq!(store.recall(&a, "s1:other").await.unwrap(), None);
    assert_eq!(store.recall(&app("app-b"), "s1:uid").await.unwrap(), None);
    // A reservation is settled with the answer, or freed when the command failed.
    store
        .settle(&a, "s1:uid", Some("answer"), Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(
        store.recall(&a, "s1:uid").await.unwrap().as_deref(),
        Some("answer")
    );
    store
        .settle(&a, "s1:uid", None, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(store.recall(&a, "s1:uid").await.unwrap(), None);
    assert_eq!(
        store
            .remember(&a, "s1:uid", "again", Duration::from_secs(600))
            .await
            .unwrap(),
        None
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(store.cooldown_left(&a, "conf_play:r1").await.unwrap(), None);
}

async fn refs_lead_to_their_room<S: Store>(store: S) {
    let (a, b) = (app("app-a"), app("app-b"));
    let r = room(&store, &a, "refs", 1);
    let s = session(&a, 1);
    store.create_room(&r, &[]).await.unwrap();
    let rec = uuid::Uuid::new_v4();
    let (saved, _) = update_room(&store, &a, &r.id, |room| {
        let joined = ops::request_join(room, &s, None, 5).map_err(|e| e.to_string())?;
        ops::request_recording(room, rec, "/rec/x.wav", 6).map_err(|e| e.to_string())?;
        Ok::<_, String>(((), joined.events))
    })
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    let cc = saved.members[s.id.channel()].conferencecall_id;
    for id in [cc, rec] {
        assert_eq!(
            store.ref_owner(id).await.unwrap(),
            Some((a.clone(), r.id.clone()))
        );
    }
    assert_eq!(store.ref_owner(uuid::Uuid::new_v4()).await.unwrap(), None);
    // Another app's room: the owner says so (the API answers 403 from it).
    let theirs = room(&store, &b, "refs", 2);
    store.create_room(&theirs, &[]).await.unwrap();
    assert_ne!(store.ref_owner(cc).await.unwrap().unwrap().0, b);
}

async fn timeouts_are_handed_out_once<S: Store>(store: S) {
    let a = app("app-a");
    let rooms: Vec<Room> = (0..20)
        .map(|i| room(&store, &a, &format!("t{i}"), i))
        .collect();
    for (i, r) in rooms.iter().enumerate() {
        store
            .schedule_timeout(&a, &r.id, 100 + i as i64)
            .await
            .unwrap();
    }
    let later = room(&store, &a, "later", 0);
    store.schedule_timeout(&a, &later.id, 10_000).await.unwrap();
    // Many claimers at once: every due room goes to exactly one of them.
    let store = Arc::new(store);
    let claims = (0..8).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .claim_timeouts(500, Duration::from_millis(1), 5)
                .await
                .unwrap()
        })
    });
    let mut got = Vec::new();
    for c in claims {
        got.extend(c.await.unwrap());
    }
    let mut ids: Vec<String> = got.iter().map(|(_, id)| id.to_string()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), got.len(), "no room handed out twice");
    assert_eq!(got.len(), 20, "every due room handed out, none early");
    // Within its lease a claimed room is not handed out again; after it, it is (its claimer
    // died before clearing it), unless it was cleared.
    assert!(
        store
            .claim_timeouts(1_000, Duration::from_millis(1), 100)
            .await
            .unwrap()
            .is_empty()
    );
    for r in &rooms[1..] {
        store.clear_timeout(&a, &r.id).await.unwrap();
    }
    let again = store
        .claim_timeouts(500 + 1_000 + 1, Duration::from_secs(1), 100)
        .await
        .unwrap();
    assert_eq!(again, vec![(a.clone(), rooms[0].id.clone())]);
    store.clear_timeout(&a, &rooms[0].id).await.unwrap();
    let at_last = store
        .claim_timeouts(20_000_000, Duration::from_secs(1), 100)
        .await
        .unwrap();
    assert_eq!(at_last, vec![(a.clone(), later.id.clone())]);
}

/// Recordings with a copy to make stay listed until taken off; recordings past their
/// retention go to one claimer each, and not before their time.
async fn uploads_and_expiries_are_kept_and_handed_out_once<S: Store>(store: S) {
    let a = app("app-a");
    let r = room(&store, &a, "rec", 0);
    let (one, two) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    store
        .set_upload_pending(&a, &r.id, one, true)
        .await
        .unwrap();
    store
        .set_upload_pending(&a, &r.id, two, true)
        .await
        .unwrap();
    store
        .set_upload_pending(&a, &r.id, one, true)
        .await
        .unwrap();
    let mut listed = store.uploads_pending().await.unwrap();
    listed.sort_by_key(|(_, _, rec)| *rec);
    let mut want = vec![
        (a.clone(), r.id.clone(), one),
        (a.clone(), r.id.clone(), two),
    ];
    want.sort_by_key(|(_, _, rec)| *rec);
    assert_eq!(listed, want);
    store
        .set_upload_pending(&a, &r.id, one, false)
        .await
        .unwrap();
    assert_eq!(
        store.uploads_pending().await.unwrap(),
        vec![(a.clone(), r.id.clone(), two)]
    );

    let recs: Vec<uuid::Uuid> = (0..12).map(|_| uuid::Uuid::new_v4()).collect();
    for (i, rec) in recs.iter().enumerate() {
        store
            .expire_recording_at(&a, &r.id, *rec, 100 + i as i64)
            .await
            .unwrap();
    }
    assert!(
        store
            .claim_expired_recordings(99, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let store = Arc::new(store);
    let claims = (0..6).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.claim_expired_recordings(105, 3).await.unwrap() })
    });
    let mut got = Vec::new();
    for c in claims {
        got.extend(c.await.unwrap().into_iter().map(|(_, _, rec)| rec));
    }
    got.sort();
    let mut due: Vec<uuid::Uuid> = recs[..6].to_vec();
    due.sort();
    assert_eq!(got, due, "each due one once, none early");
    assert_eq!(
        store
            .claim_expired_recordings(1_000, 100)
            .await
            .unwrap()
            .len(),
        6
    );
    assert!(
        store
            .claim_expired_recordings(1_000, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Events of many rooms (over every shard of a store that spreads an app): read in small
/// pages, each resuming from the position after the last, they are the whole outbox, each room's
/// in order; acknowledgments and trimming follow positions.
async fn the_outbox_of_many_rooms_reads_whole<S: Store>(store: S) {
    let a = app("app-a");
    let rooms: Vec<Room> = (0..12)
        .map(|i| room(&store, &a, &format!("many{i}"), i))
        .collect();
    for r in &rooms {
        store.create_room(r, &[joined(r, 1)]).await.unwrap();
    }
    for seq in 2..=3 {
        let events: Vec<DomainEvent> = rooms.iter().map(|r| joined(r, seq)).collect();
        store.append_outbox(&a, &events).await.unwrap();
    }
    let all = store.outbox(&a, None, 1000).await.unwrap();
    assert_eq!(all.len(), 36);
    let ids: Vec<String> = all.iter().map(|row| row.id.clone()).collect();
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), 36, "{ids:?}");
    for r in &rooms {
        let seqs: Vec<u64> = all
            .iter()
            .filter(|row| row.event.room == r.id)
            .map(|row| row.event.seq)
            .collect();
        assert_eq!(seqs, [1, 2, 3], "{}", r.id);
    }
    // Pages of five, each from the position after the last: the same entries, in the same order.
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.outbox(&a, after.as_deref(), 5).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|row| row.position.clone());
        paged.extend(page.into_iter().map(|row| row.id));
    }
    assert_eq!(paged, ids);
    // Acknowledgments after the position stay; those it passed are forgotten.
    let fence = leader(&store, &a, "one").await;
    for row in [&all[3], &all[20], &all[30]] {
        store.ack_outbox(&a, &row.id, &fence).await.unwrap();
    }
    store
        .set_outbox_position(&a, &all[10].position, &fence)
        .await
        .unwrap();
    assert_eq!(
        store.outbox_acked(&a).await.unwrap(),
        vec![all[20].id.clone(), all[30].id.clone()]
    );
    // Advanced by a dispatcher that names what it passes: those go, the others stay.
    store.ack_outbox(&a, &all[33].id, &fence).await.unwrap();
    store
        .advance_outbox(&a, &all[25].position, &[all[20].id.clone()], &fence)
        .await
        .unwrap();
    assert_eq!(
        store.outbox_position(&a).await.unwrap().as_deref(),
        Some(all[25].position.as_str())
    );
    assert_eq!(
        store.outbox_acked(&a).await.unwrap(),
        vec![all[30].id.clone(), all[33].id.clone()]
    );
    store
        .advance_outbox(&a, &all[35].position, &[], &fence)
        .await
        .unwrap();
    assert_eq!(
        store.outbox_position(&a).await.unwrap().as_deref(),
        Some(all[35].position.as_str())
    );
    // Trimmed before a position: what follows it is all there.
    store.trim_outbox(&a, &all[10].position).await.unwrap();
    let kept = store.outbox(&a, None, 1000).await.unwrap();
    assert!(kept.len() < all.len(), "nothing trimmed");
    let rest: Vec<String> = store
        .outbox(&a, Some(&all[10].position), 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.id)
        .collect();
    assert_eq!(rest, ids[11..].to_vec());
}

async fn the_outbox_is_trimmed_before_an_entry<S: Store>(store: S) {
    let a = app("app-a");
    let r = room(&store, &a, "trim", 1);
    store.create_room(&r, &[]).await.unwrap();
    let event = |seq| joined(&r, seq);
    let events: Vec<DomainEvent> = (1..=5).map(event).collect();
    store.append_outbox(&a, &events).await.unwrap();
    let all = store.outbox(&a, None, 100).await.unwrap();
    assert_eq!(all.len(), 5);
    // Ids grow like a Redis stream's, `<ms>-<n>` (one room: one shard).
    let orders: Vec<_> = all
        .iter()
        .map(|row| entry_order(&row.id).unwrap())
        .collect();
    assert!(orders.windows(2).all(|w| w[0] < w[1]), "{orders:?}");
    store.trim_outbox(&a, &all[2].position).await.unwrap();
    let kept = store.outbox(&a, None, 100).await.unwrap();
    let ids = |rows: &[OutboxEntry]| rows.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&kept), ids(&all[2..]));
    // Another app's outbox is untouched by it.
    store
        .trim_outbox(&app("app-b"), &all[4].position)
        .await
        .unwrap();
    assert_eq!(store.outbox(&a, None, 100).await.unwrap().len(), 3);
}

/// The first attempt of message `msg_1` of room `r`, delivered.
fn delivered(r: &Room) -> switchyard::store::DeliveryAttempt {
    switchyard::store::DeliveryAttempt {
        message_id: "msg_1".into(),
        kind: EventKind::MemberJoined,
        room: r.id.clone(),
        seq: 1,
        attempt: 1,
        outcome: "delivered".into(),
        status: Some(200),
        error: None,
        at: 1,
        duration_ms: 1,
    }
}

/// The webhook lease of app `a` taken by `holder` for a minute: the fence of its writes.
async fn leader<S: Store>(store: &S, a: &AppId, holder: &str) -> Fence {
    let ttl = Duration::from_secs(60);
    let generation = store.lease(a, "webhooks", holder, ttl).await.unwrap();
    fence(holder, generation.expect("the lease is free"))
}

fn fence(holder: &str, generation: u64) -> Fence {
    Fence {
        lease: "webhooks".into(),
        holder: holder.into(),
        generation,
    }
}

/// Issue 57: each take of a lease by a holder that did not hold it gives a greater generation
/// (a renewal keeps it), and every write of the webhook dispatcher is refused, changing
/// nothing, unless it carries the lease's holder and current generation: an old generation's
/// (a holder that lost the lease, even one that took it again since), a lapsed or released
/// lease's. The current one's is accepted.
async fn webhook_writes_are_fenced_by_the_lease<S: Store>(store: S) {
    use switchyard::store::DeadLetter;
    let a = app("app-a");
    let r = room(&store, &a, "fenced", 1);
    let events: Vec<DomainEvent> = (1..=6).map(|seq| joined(&r, seq)).collect();
    store.create_room(&r, &events).await.unwrap();
    let rows = store.outbox(&a, None, 100).await.unwrap();
    let attempt = delivered(&r);
    let short = Duration::from_millis(100);
    let lapse = || tokio::time::sleep(Duration::from_millis(250));
    let lease = |holder: &'static str| store.lease(&a, "webhooks", holder, short);
    let g1 = lease("one").await.unwrap().unwrap();
    let one = fence("one", g1);
    store
        .settle_outbox(
            &a,
            std::slice::from_ref(&attempt),
            Some(&rows[0].position),
            &[],
            &[],
            &one,
        )
        .await
        .unwrap();
    // Renewed: the same generation; another holder meanwhile: none.
    assert_eq!(lease("one").await.unwrap(), Some(g1));
    assert_eq!(lease("two").await.unwrap(), None);

    // "one" paused past its lease; "two" takes it.
    lapse().await;
    let g2 = lease("two").await.unwrap().unwrap();
    assert!(g2 > g1, "{g2} after {g1}");
    let two = fence("two", g2);
    let unchanged = |what: &'static str| {
        let store = &store;
        let (a, rows) = (&a, &rows);
        async move {
            assert_eq!(
                store.outbox_position(a).await.unwrap().as_deref(),
                Some(rows[0].position.as_str()),
                "{what}"
            );
            assert!(store.outbox_acked(a).await.unwrap().is_empty(), "{what}");
            assert!(
                store.dead_letters(a, 10).await.unwrap().is_empty(),
                "{what}"
            );
            assert_eq!(
                store.delivery_log(a, None, 100).await.unwrap().len(),
                1,
                "{what}"
            );
        }
    };
    let refused = |r: Result<(), StoreError>, what: &str| match r {
        Err(e @ StoreError::Fenced(_)) => assert!(!e.is_retryable(), "{what}: {e}"),
        other => panic!("{what}: {other:?}"),
    };
    let ahead = [rows[5].id.as_str()];
    let forget = [rows[5].id.clone()];
    let settled = store
        .settle_outbox(
            &a,
            std::slice::from_ref(&attempt),
            Some(&rows[3].position),
            &ahead,
            &[],
            &one,
        )
        .await;
    refused(settled, "settle");
    refused(
        store.set_outbox_position(&a, &rows[4].position, &one).await,
        "set_outbox_position",
    );
    refused(
        store
            .advance_outbox(&a, &rows[4].position, &forget, &one)
            .await,
        "advance_outbox",
    );
    refused(store.ack_outbox(&a, &rows[5].id, &one).await, "ack_outbox");
    let letter = DeadLetter {
        outbox_id: rows[1].id.clone(),
        event: joined(&r, 2),
        attempts: 3,
        status: Some(503),
        last_error: "HTTP 503".into(),
        at: 5,
    };
    refused(store.dead_letter(&a, &letter, &one).await, "dead_letter");
    let logged = store.log_delivery(&a, &attempt, Some(&one)).await;
    refused(logged.map(drop), "log_delivery");
    unchanged("an old generation's writes").await;

    // The current generation's are accepted.
    store
        .settle_outbox(
            &a,
            std::slice::from_ref(&attempt),
            Some(&rows[2].position),
            &ahead,
            &[],
            &two,
        )
        .await
        .unwrap();
    assert_eq!(
        store.outbox_position(&a).await.unwrap().as_deref(),
        Some(rows[2].position.as_str())
    );
    assert_eq!(
        store.outbox_acked(&a).await.unwrap(),
        vec![rows[5].id.clone()]
    );
    store.dead_letter(&a, &letter, &two).await.unwrap();
    store.log_delivery(&a, &attempt, Some(&two)).await.unwrap();
    assert_eq!(store.delivery_log(&a, None, 100).await.unwrap().len(), 3);

    // A holder that lost the lease and took it again has a new generation: the old one is
    // refused, even from it.
    lapse().await;
    let g3 = lease("two").await.unwrap().unwrap();
    assert!(g3 > g2, "{g3} after {g2}");
    refused(
        store.set_outbox_position(&a, &rows[4].position, &two).await,
        "the same holder's earlier generation",
    );
    let three = fence("two", g3);
    store
        .advance_outbox(&a, &rows[4].position, &[], &three)
        .await
        .unwrap();
    assert_eq!(
        store.outbox_position(&a).await.unwrap().as_deref(),
        Some(rows[4].position.as_str())
    );
    // A lease given up fences its holder's writes too; the next take is greater still.
    store.release_lease(&a, "webhooks", "two").await.unwrap();
    refused(
        store.ack_outbox(&a, &rows[5].id, &three).await,
        "a released lease",
    );
    let g4 = lease("one").await.unwrap().unwrap();
    assert!(g4 > g3, "{g4} after {g3}");
    // Another app's lease is its own.
    let b = app("app-b");
    let other = store.lease(&b, "webhooks", "one", short).await.unwrap();
    assert!(other.is_some());
    let log = store.log_delivery(&a, &attempt, None).await;
    assert!(log.is_ok(), "an unfenced log entry (not the dispatcher's)");
}

/// The delivery log paged under a filter that few attempts match, each page reading at most 10
/// entries: every match comes once, newest first, however the store numbers its entries.
async fn the_delivery_log_pages_under_a_filter<S: Store>(store: S) {
    use switchyard::store::DeliveryAttempt;
    use switchyard::telemetry::WebhookOutcome;
    use switchyard::webhook::delivery_log::{LogFilter, page_scanning};
    let a = app("app-a");
    let rooms = [room(&store, &a, "one", 1), room(&store, &a, "two", 2)];
    let mut dead = Vec::new();
    for n in 0..60usize {
        let outcome = if n % 7 == 3 {
            "dead_letter"
        } else {
            "delivered"
        };
        let attempt = DeliveryAttempt {
            message_id: format!("msg_{n}"),
            kind: EventKind::MemberJoined,
            room: rooms[n % 2].id.clone(),
            seq: n as u64,
            attempt: 1,
            outcome: outcome.into(),
            status: Some(200),
            error: None,
            at: n as i64,
            duration_ms: 1,
        };
        store.log_delivery(&a, &attempt, None).await.unwrap();
        if n % 7 == 3 && n % 2 == 1 {
            dead.push(attempt.message_id);
        }
    }
    dead.reverse();
    let filter = LogFilter {
        outcome: Some(WebhookOutcome::DeadLetter),
        room: Some(rooms[1].id.clone()),
        kind: Some(EventKind::MemberJoined),
    };
    let (mut found, mut before, mut pages) = (Vec::new(), None, 0);
    loop {
        let page = page_scanning(&store, &a, before.as_deref(), 2, &filter, 10)
            .await
            .unwrap();
        pages += 1;
        found.extend(page.attempts.into_iter().map(|(_, a)| a.message_id));
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
        assert!(pages < 100, "the cursor never ends");
    }
    assert_eq!(found, dead);
    assert!(
        pages >= 6,
        "{pages} pages of at most 10 entries read, over 60"
    );
}

/// Verdicts written together (one `settle_outbox`, which Redis keeps as one log entry) are
/// still the log's attempts one by one: newest first, a page of any size cutting through the
/// batch, no attempt skipped or shown twice, beside attempts logged alone.
async fn verdicts_written_together_page_one_by_one<S: Store>(store: S) {
    use switchyard::webhook::delivery_log::{LogFilter, page};
    let a = app("app-a");
    let r = room(&store, &a, "batched", 1);
    let one = leader(&store, &a, "one").await;
    let attempt = |n: usize| switchyard::store::DeliveryAttempt {
        message_id: format!("msg_{n}"),
        seq: n as u64,
        ..delivered(&r)
    };
    for n in 0..2 {
        store.log_delivery(&a, &attempt(n), None).await.unwrap();
    }
    let batch: Vec<_> = (2..7).map(attempt).collect();
    store
        .settle_outbox(&a, &batch, None, &[], &[], &one)
        .await
        .unwrap();
    store
        .log_delivery(&a, &attempt(7), Some(&one))
        .await
        .unwrap();
    let newest_first: Vec<String> = (0..8).rev().map(|n| format!("msg_{n}")).collect();
    for limit in 1..=4 {
        let (mut seen, mut before, mut pages) = (Vec::new(), None::<String>, 0);
        loop {
            let page = page(&store, &a, before.as_deref(), limit, &LogFilter::default())
                .await
                .unwrap();
            assert!(page.attempts.len() <= limit, "a page of {limit} overflowed");
            seen.extend(page.attempts.into_iter().map(|(_, a)| a.message_id));
            pages += 1;
            assert!(pages < 20, "the cursor never ends");
            match page.next {
                Some(next) => before = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, newest_first, "pages of {limit}");
    }
}

macro_rules! suite {
    ($store:ident, $make:expr) => {
        mod $store {
            use super::*;
            #[allow(unused_imports)]
            use common::redis_server::RedisServer;

            #[tokio::test]
            async fn rooms_names_and_apps() {
                let (_guard, store) = $make;
                rooms_names_and_apps_are_kept_apart(store).await;
            }
            #[tokio::test]
            async fn seq_guard() {
                let (_guard, store) = $make;
                writes_are_guarded_by_seq(store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_updates() {
                let (_guard, store) = $make;
                concurrent_updates_all_land(store).await;
            }
            #[tokio::test]
            async fn batches() {
                let (_guard, store) = $make;
                a_batch_changes_each_room_as_alone(store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_batches() {
                let (_guard, store) = $make;
                concurrent_batches_all_land(store).await;
            }
            #[tokio::test]
            async fn membership_indexes() {
                let (_guard, store) = $make;
                membership_indexes_follow_the_room(store).await;
            }
            #[tokio::test]
            async fn paging() {
                let (_guard, store) = $make;
                listings_page_by_creation_time(store).await;
            }
            #[tokio::test]
            async fn live_paging() {
                let (_guard, store) = $make;
                live_listings_hold_only_live_rooms(store).await;
            }
            #[tokio::test]
            async fn media_listing() {
                let (_guard, store) = $make;
                rooms_with_media_are_listed_apart(store).await;
            }
            #[tokio::test]
            async fn sessions() {
                let (_guard, store) = $make;
                sessions_keep_their_newest_version(store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn uploads_and_expiries() {
                let (_guard, store) = $make;
                uploads_and_expiries_are_kept_and_handed_out_once(store).await;
            }
            #[tokio::test]
            async fn cooldowns() {
                let (_guard, store) = $make;
                cooldowns_and_remembered_answers_expire(store).await;
            }
            #[tokio::test]
            async fn outbox_trim() {
                let (_guard, store) = $make;
                the_outbox_is_trimmed_before_an_entry(store).await;
            }
            #[tokio::test]
            async fn outbox_of_many_rooms() {
                let (_guard, store) = $make;
                the_outbox_of_many_rooms_reads_whole(store).await;
            }
            #[tokio::test]
            async fn refs() {
                let (_guard, store) = $make;
                refs_lead_to_their_room(store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn timeouts() {
                let (_guard, store) = $make;
                timeouts_are_handed_out_once(store).await;
            }
            #[tokio::test]
            async fn webhook_progress() {
                let (_guard, store) = $make;
                webhook_position_acks_and_dead_letters(store).await;
            }
            #[tokio::test]
            async fn delivery_log_filter() {
                let (_guard, store) = $make;
                the_delivery_log_pages_under_a_filter(store).await;
            }
            #[tokio::test]
            async fn delivery_log_batches() {
                let (_guard, store) = $make;
                verdicts_written_together_page_one_by_one(store).await;
            }
            #[tokio::test]
            async fn webhook_fencing() {
                let (_guard, store) = $make;
                webhook_writes_are_fenced_by_the_lease(store).await;
            }
        }
    };
}

suite!(memory, ((), switchyard::store::memory::MemoryStore::new()));
suite!(redis, {
    let server = RedisServer::start();
    let store = switchyard::store::redis::RedisStore::connect(&server.url())
        .await
        .unwrap();
    (server, store)
});

// Each app over four shards (hash tags) of one Redis: the same behaviour.
suite!(sharded, {
    let server = RedisServer::start();
    let store = switchyard::store::redis::RedisStore::connect(&server.url())
        .await
        .unwrap()
        .with_shards(4);
    (server, store)
});

// A three-master Redis Cluster, each app over three shards (one per master): the same
// behaviour.
suite!(cluster, {
    let cluster = common::redis_cluster::RedisCluster::start();
    let store = switchyard::store::redis::RedisStore::connect(&cluster.url())
        .await
        .unwrap()
        .with_shards(3);
    (cluster, store)
});

#[tokio::test]
async fn a_redis_restart_is_reported_then_survived() {
    let mut server = common::redis_server::RedisServer::start();
    let store = switchyard::store::redis::RedisStore::connect(&server.url())
        .await
        .unwrap();
    let a = app("app-a");
    let r = room(&store, &a, "survivor", 1);
    store.create_room(&r, &[]).await.unwrap();
    server.kill();
    // A write fails at once; a read may be answered from the room cache until the lost
    // connection is noticed (moments later), then fails too.
    let mut stale = r.clone();
    stale.seq += 1;
    let err = store.save_room(&r, &stale, &[]).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match store.room(&a, &r.id).await {
            Err(err) => {
                assert!(err.is_retryable(), "{err}");
                break;
            }
            Ok(_) => assert!(std::time::Instant::now() < deadline, "reads never failed"),
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.restart();
    // The connection manager reconnects on its own; the data survived (append-only file).
    let mut back = None;
    for _ in 0..50 {
        match store.room(&a, &r.id).await {
            Ok(room) => {
                back = room;
                break;
            }
            Err(e) => assert!(e.is_retryable()),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(back.unwrap().name, "survivor");
}

async fn webhook_position_acks_and_dead_letters<S: Store>(store: S) {
    use switchyard::conference::DomainEvent;
    use switchyard::store::DeadLetter;
    let (a, b) = (app("app-a"), app("app-b"));
    let r = room(&store, &a, "hooks", 1);
    let event = |seq| DomainEvent {
        kind: EventKind::Created,
        app: a.clone(),
        room: r.id.clone(),
        seq,
        at: 1,
        data: serde_json::json!({"n": seq}),
        redelivers: None,
    };
    let events: Vec<DomainEvent> = (1..=12).map(event).collect();
    store.create_room(&r, &events).await.unwrap();
    let rows = store.outbox(&a, None, 100).await.unwrap();
    let ids: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
    assert_eq!(ids.len(), 12);
    assert_eq!(store.outbox_position(&a).await.unwrap(), None);
    // Entries delivered ahead of the position come back in outbox order, per app.
    let fence = leader(&store, &a, "one").await;
    for id in [&ids[11], &ids[2], &ids[9], &ids[3]] {
        store.ack_outbox(&a, id, &fence).await.unwrap();
    }
    assert_eq!(
        store.outbox_acked(&a).await.unwrap(),
        vec![
            ids[2].clone(),
            ids[3].clone(),
            ids[9].clone(),
            ids[11].clone()
        ]
    );
    assert!(store.outbox_acked(&b).await.unwrap().is_empty());
    // Moving the position forgets the acknowledgments it passed.
    store
        .set_outbox_position(&a, &rows[9].position, &fence)
        .await
        .unwrap();
    assert_eq!(
        store.outbox_position(&a).await.unwrap().as_deref(),
        Some(rows[9].position.as_str())
    );
    assert_eq!(store.outbox_acked(&a).await.unwrap(), vec![ids[11].clone()]);
    assert_eq!(store.outbox_position(&b).await.unwrap(), None);
    let rest = store
        .outbox(&a, Some(&rows[9].position), 100)
        .await
        .unwrap();
    assert_eq!(rest.len(), 2);
    // Dead letters, oldest first.
    for (i, id) in ids.iter().take(3).enumerate() {
        let letter = DeadLetter {
            outbox_id: id.clone(),
            event: event(i as u64 + 1),
            attempts: 7,
            status: Some(503),
            last_error: "HTTP 503".into(),
            at: 5,
        };
        store.dead_letter(&a, &letter, &fence).await.unwrap();
    }
    let letters = store.dead_letters(&a, 2).await.unwrap();
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0].outbox_id, ids[0]);
    assert_eq!(letters[1].event.seq, 2);
    assert_eq!(letters[1].status, Some(503));
    assert_eq!(store.dead_letters(&a, 10).await.unwrap().len(), 3);
    assert!(store.dead_letters(&b, 10).await.unwrap().is_empty());
}

/// One app's rooms on a three-master cluster: with three shards they use every master; with
/// one (the layout before shards), all of them sit on one master.
#[tokio::test]
async fn one_app_spreads_over_the_cluster_masters() {
    for (shards, masters_used) in [(3, 3), (1, 1)] {
        let cluster = common::redis_cluster::RedisCluster::start();
        let store = switchyard::store::redis::RedisStore::connect(&cluster.url())
            .await
            .unwrap()
            .with_shards(shards);
        let a = app("app-a");
        for i in 0..30 {
            let r = room(&store, &a, &format!("spread{i}"), i);
            assert_eq!(store.create_room(&r, &[]).await.unwrap(), Created::Created);
        }
        let mut rooms_per_master = Vec::new();
        for node in &cluster.nodes {
            let client = ::redis::Client::open(node.url()).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let keys: Vec<String> = ::redis::cmd("KEYS")
                .arg("sy:{app-a*}:room:*")
                .query_async(&mut conn)
                .await
                .unwrap();
            rooms_per_master.push(keys.len());
        }
        assert_eq!(rooms_per_master.iter().sum::<usize>(), 30);
        assert_eq!(
            rooms_per_master.iter().filter(|n| **n > 0).count(),
            masters_used,
            "{shards} shards: rooms per master {rooms_per_master:?}"
        );
        // The listing merges the shards: every room, oldest first.
        let page = store.rooms_of_app(&a, None, 100).await.unwrap();
        let created: Vec<i64> = page.items.iter().map(|r| r.created_at).collect();
        assert_eq!(created, (0..30).collect::<Vec<i64>>());
    }
}

/// Six rooms of `a`, the first four ended and then expired (the store keeps ended rooms a
/// second).
async fn four_of_six_expired(store: &switchyard::store::redis::RedisStore, a: &AppId) -> Vec<Room> {
    let rooms: Vec<Room> = (0..6)
        .map(|i| room(store, a, &format!("short{i}"), i))
        .collect();
    for r in &rooms {
        store.create_room(r, &[]).await.unwrap();
    }
    for r in &rooms[..4] {
        // Written once before it ends: the store keeps it as the room's keeper, tracked
        // through its notice key, which the room's expiry does not touch.
        let mut changed = r.clone();
        changed.detail = "kept".into();
        changed.seq += 1;
        assert_eq!(
            store.save_room(r, &changed, &[]).await.unwrap(),
            Saved::Saved
        );
        let mut ended = changed.clone();
        ended.status = RoomStatus::Terminated;
        ended.seq += 1;
        assert_eq!(
            store.save_room(&changed, &ended, &[]).await.unwrap(),
            Saved::Saved
        );
    }
    // Ended rooms stay readable for the retention, then expire.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    for r in &rooms[..4] {
        while store.room(a, &r.id).await.unwrap().is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "{} never expired",
                r.id
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    rooms
}

/// How many entries the listing indexes of `app-a`'s shards hold, over `servers`.
async fn indexed(servers: &[String]) -> usize {
    let mut n = 0usize;
    for url in servers {
        let client = ::redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = ::redis::cmd("KEYS")
            .arg("sy:{app-a*}:rooms")
            .query_async(&mut conn)
            .await
            .unwrap();
        for key in keys {
            let card: usize = ::redis::cmd("ZCARD")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            n += card;
        }
    }
    n
}

/// Ended rooms past their retention leave the app's listing index when a listing meets them
/// (it held every room ever made, and each listing walked past them again).
#[tokio::test]
async fn expired_rooms_leave_the_listing_index() {
    let server = common::redis_server::RedisServer::start();
    let store = switchyard::store::redis::RedisStore::connect(&server.url())
        .await
        .unwrap()
        .with_retention(Duration::from_secs(1))
        .with_shards(2);
    let a = app("app-a");
    let rooms = four_of_six_expired(&store, &a).await;
    assert_eq!(indexed(&[server.url()]).await, 6);
    let page = store.rooms_of_app(&a, None, 100).await.unwrap();
    let live: Vec<&RoomId> = page.items.iter().map(|r| &r.id).collect();
    assert_eq!(live, vec![&rooms[4].id, &rooms[5].id]);
    assert_eq!(
        indexed(&[server.url()]).await,
        2,
        "expired rooms still indexed"
    );
}

/// An app that never lists its rooms does not keep one index entry per room ever made: the
/// sweep (which the server runs every minute) drops the expired ones, on one Redis and over
/// a cluster's masters alike, and leaves the rest listed.
#[tokio::test]
async fn the_sweep_unlists_expired_rooms_of_an_app_that_never_lists() {
    use switchyard::store::redis::RedisStore;
    let server = common::redis_server::RedisServer::start();
    let cluster = common::redis_cluster::RedisCluster::start();
    let nodes: Vec<String> = cluster.nodes.iter().map(|n| n.url()).collect();
    for (url, servers) in [(server.url(), vec![server.url()]), (cluster.url(), nodes)] {
        let store = RedisStore::connect(&url)
            .await
            .unwrap()
            .with_retention(Duration::from_secs(1))
            .with_shards(3);
        let a = app("app-a");
        let rooms = four_of_six_expired(&store, &a).await;
        assert_eq!(indexed(&servers).await, 6);
        assert_eq!(store.sweep_ended_rooms(&a).await.unwrap(), 4, "{url}");
        assert_eq!(
            indexed(&servers).await,
            2,
            "{url}: expired rooms still indexed"
        );
        // Nothing more to do; what is live stays listed.
        assert_eq!(store.sweep_ended_rooms(&a).await.unwrap(), 0);
        let page = store.rooms_of_app(&a, None, 100).await.unwrap();
        let live: Vec<&RoomId> = page.items.iter().map(|r| &r.id).collect();
        assert_eq!(live, vec![&rooms[4].id, &rooms[5].id]);
    }
}

async fn live_ids<S: Store>(store: &S, a: &AppId) -> Vec<RoomId> {
    let page = store.live_rooms_of_app(a, None, 100).await.unwrap();
    page.items.into_iter().map(|r| r.id).collect()
}

/// Data from before the live index (or rooms an older controller made or ended during a
/// rolling upgrade): the start (`claim_layout`) indexes the nodes' live rooms the live listing
/// misses, and the listing drops a room that ended without leaving the index.
#[tokio::test]
async fn live_rooms_the_index_misses_are_indexed_at_start() {
    use switchyard::store::redis::RedisStore;
    let server = common::redis_server::RedisServer::start();
    let store = RedisStore::connect(&server.url())
        .await
        .unwrap()
        .with_shards(2);
    store.claim_layout(&[node()]).await.unwrap();
    let a = app("app-a");
    let rooms: Vec<Room> = (0..4)
        .map(|i| room(&store, &a, &format!("old{i}"), i))
        .collect();
    for r in &rooms {
        store.create_room(r, &[]).await.unwrap();
    }
    let client = ::redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let live_keys: Vec<String> = ::redis::cmd("KEYS")
        .arg("sy:{app-a*}:rooms:live")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!live_keys.is_empty());
    let _: () = ::redis::cmd("DEL")
        .arg(&live_keys)
        .query_async(&mut conn)
        .await
        .unwrap();
    // An older controller ends room 3 and leaves it in the index it does not know.
    let mut ended = rooms[3].clone();
    ended.status = RoomStatus::Terminated;
    ended.seq += 1;
    store.save_room(&rooms[3], &ended, &[]).await.unwrap();
    assert!(live_ids(&store, &a).await.is_empty());
    store.claim_layout(&[node()]).await.unwrap();
    let expected: Vec<RoomId> = rooms[..3].iter().map(|r| r.id.clone()).collect();
    assert_eq!(live_ids(&store, &a).await, expected);
    for key in &live_keys {
        let _: () = ::redis::cmd("ZADD")
            .arg(key)
            .arg(3)
            .arg(rooms[3].id.as_str())
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    assert_eq!(
        live_ids(&store, &a).await,
        expected,
        "an ended room is not live"
    );
}

/// The commands Redis ran between two `commandstats` readings (the readings' own `INFO`
/// left out), by name.
fn commands_between(
    before: &std::collections::HashMap<String, u64>,
    after: &std::collections::HashMap<String, u64>,
) -> Vec<(String, u64)> {
    let mut ran: Vec<(String, u64)> = after
        .iter()
        .map(|(c, n)| (c.clone(), n - before.get(c).copied().unwrap_or(0)))
        .filter(|(c, n)| *n > 0 && c != "info")
        .collect();
    ran.sort();
    ran
}

/// A webhook verdict is one script that reads its fence (the lease's holder and generation)
/// in one command and appends its attempts, however many, as one log entry: three commands
/// Redis counts, where the fence's two `GET`s made four (about 0.8 verdicts per applied event
/// in `event_cost`) and each attempt had its own `XADD` (1.2 an event).
#[tokio::test]
async fn a_verdict_reads_its_fence_in_one_command() {
    use switchyard::store::Deliveries;
    use switchyard::store::redis::RedisStore;
    let server = common::redis_server::RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let a = app("app-a");
    let r = room(&store, &a, "verdicts", 1);
    store.create_room(&r, &[joined(&r, 1)]).await.unwrap();
    let rows = store.outbox(&a, None, 10).await.unwrap();
    let one = leader(&store, &a, "one").await;
    let attempt = delivered(&r);
    // The first call loads the script.
    store
        .settle_outbox(&a, std::slice::from_ref(&attempt), None, &[], &[], &one)
        .await
        .unwrap();
    let before = server.command_calls().await;
    // Three verdicts written together: one log entry.
    let three = [attempt.clone(), attempt.clone(), attempt.clone()];
    store
        .settle_outbox(&a, &three, Some(&rows[0].position), &[], &[], &one)
        .await
        .unwrap();
    let after = server.command_calls().await;
    let ran = commands_between(&before, &after);
    let calls = |c: &str| ran.iter().find(|(x, _)| x == c).map_or(0, |(_, n)| *n);
    assert_eq!(
        (calls("get"), calls("mget"), calls("xadd")),
        (0, 1, 1),
        "{ran:?}"
    );
    assert_eq!(ran.iter().map(|(_, n)| n).sum::<u64>(), 3, "{ran:?}");
    assert_eq!(store.delivery_log(&a, None, 10).await.unwrap().len(), 4);
    // The position rode on that entry.
    assert_eq!(
        store.outbox_position(&a).await.unwrap().as_deref(),
        Some(rows[0].position.as_str())
    );
}

/// A recording an older controller began (its script knows no media index) is indexed by
/// `index_media_rooms` (housekeeping: at start, then once a minute), and a room the index
/// holds that no longer has media is taken out as a page meets it.
#[tokio::test]
async fn rooms_with_media_the_index_misses_are_indexed() {
    use switchyard::store::redis::RedisStore;
    let server = common::redis_server::RedisServer::start();
    let store = RedisStore::connect(&server.url())
        .await
        .unwrap()
        .with_shards(2);
    let a = app("app-a");
    let rooms: Vec<Room> = (0..3)
        .map(|i| room(&store, &a, &format!("old{i}"), i))
        .collect();
    for r in &rooms {
        store.create_room(r, &[]).await.unwrap();
    }
    let mut recording = rooms[1].clone();
    recording.recording = Some(uuid::Uuid::new_v4());
    recording.seq += 1;
    store.save_room(&rooms[1], &recording, &[]).await.unwrap();
    let client = ::redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let media_keys: Vec<String> = ::redis::cmd("KEYS")
        .arg("sy:{app-a*}:rooms:media")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(media_keys.len(), 1, "the recording room's shard alone");
    let _: () = ::redis::cmd("DEL")
        .arg(&media_keys)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(media_ids(&store, &a, 10).await.is_empty());
    assert_eq!(store.index_media_rooms(&a).await.unwrap(), 1);
    assert_eq!(media_ids(&store, &a, 10).await, vec![recording.id.clone()]);
    assert_eq!(store.index_media_rooms(&a).await.unwrap(), 0, "once");
    // An older controller stops the recording and leaves the room indexed.
    let mut stopped = recording.clone();
    stopped.recording = None;
    stopped.seq += 1;
    store.save_room(&recording, &stopped, &[]).await.unwrap();
    let _: () = ::redis::cmd("ZADD")
        .arg(&media_keys[0])
        .arg(1)
        .arg(stopped.id.as_str())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(media_ids(&store, &a, 10).await.is_empty());
    let left: usize = ::redis::cmd("ZCARD")
        .arg(&media_keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0, "the room without media was taken out");
}

/// A controller configured with another shard count than the data's refuses to start while
/// rooms are live on its nodes (it would look for them in the wrong shards), and takes the new
/// count once none is.
#[tokio::test]
async fn another_shard_count_waits_for_no_live_room() {
    use switchyard::store::redis::{LayoutError, RedisStore};
    let server = common::redis_server::RedisServer::start();
    let one = RedisStore::connect(&server.url()).await.unwrap();
    one.claim_layout(&[node()]).await.unwrap();
    let a = app("app-a");
    let r = room(&one, &a, "live", 1);
    one.create_room(&r, &[]).await.unwrap();
    let three = RedisStore::connect(&server.url())
        .await
        .unwrap()
        .with_shards(3);
    match three.claim_layout(&[node()]).await {
        Err(LayoutError::Mismatch {
            recorded: 1,
            configured: 3,
            live: 1,
        }) => {}
        other => panic!("{other:?}"),
    }
    // The room ends: the new count is taken; then, with a room live under it, the old count is
    // refused in turn.
    let mut ended = r.clone();
    ended.status = RoomStatus::Terminated;
    ended.seq += 1;
    assert_eq!(one.save_room(&r, &ended, &[]).await.unwrap(), Saved::Saved);
    three.claim_layout(&[node()]).await.unwrap();
    let r3 = room(&three, &a, "later", 2);
    three.create_room(&r3, &[]).await.unwrap();
    assert!(matches!(
        one.claim_layout(&[node()]).await,
        Err(LayoutError::Mismatch {
            recorded: 3,
            configured: 1,
            ..
        })
    ));
    assert_eq!(three.room(&a, &r3.id).await.unwrap().as_ref(), Some(&r3));
}

/// An ended session stays readable for the configured `session_retention_secs` (the soak keeps
/// it short so that Redis settles), an hour by default; a live one is not cut short by it.
#[tokio::test]
async fn an_ended_session_expires_after_the_configured_retention() {
    let server = common::redis_server::RedisServer::start();
    let store = switchyard::store::redis::RedisStore::connect(&server.url())
        .await
        .unwrap()
        .with_session_retention(Duration::from_secs(120));
    let a = app("app-a");
    let mut s = session(&a, 7);
    store.save_session(&s).await.unwrap();
    let client = ::redis::Client::open(server.url()).unwrap();
    let conn = client.get_multiplexed_async_connection().await.unwrap();
    let ttl_of = |key: String| {
        let mut conn = conn.clone();
        async move {
            ::redis::cmd("TTL")
                .arg(key)
                .query_async::<i64>(&mut conn)
                .await
                .unwrap()
        }
    };
    let app_key = format!("sy:sessapp:{}", s.id);
    assert!(
        ttl_of(app_key.clone()).await > 120,
        "a live session is kept longer"
    );
    s.state = SessionState::Ended;
    s.seq = 2;
    store.save_session(&s).await.unwrap();
    let ttl = ttl_of(app_key).await;
    assert!((100..=120).contains(&ttl), "ended: {ttl} s left");
}

/// A node lease's renewal, the fleet's most frequent script (four a node and second), reads
/// its three keys in one command: the script, that read, the recorded position and the expiry
/// are four commands Redis counts (six when each key had its own `GET`).
#[tokio::test]
async fn a_node_lease_renewal_reads_its_keys_in_one_command() {
    use switchyard::store::fleet::{Fleet, NodePosition};
    use switchyard::store::redis::RedisStore;
    let server = common::redis_server::RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let minute = Duration::from_secs(60);
    let at = |sequence| NodePosition {
        core: "core-1".into(),
        sequence,
    };
    let taken = store
        .node_lease(&node(), "owner", minute, None)
        .await
        .unwrap();
    assert!(taken.held && taken.recorded.is_none(), "{taken:?}");
    let before = server.command_calls().await;
    let renewed = store
        .node_lease(&node(), "owner", minute, Some(&at(7)))
        .await
        .unwrap();
    let after = server.command_calls().await;
    assert_eq!(
        (renewed.held, renewed.recorded, renewed.generation),
        (true, Some(at(7)), taken.generation)
    );
    let ran = commands_between(&before, &after);
    assert_eq!(
        ran,
        [("evalsha", 1), ("mget", 1), ("pexpire", 1), ("set", 1)]
            .map(|(c, n)| (c.to_owned(), n))
            .to_vec()
    );
    // Another instance reads the holder's position, and does not take the lease.
    let other = store
        .node_lease(&node(), "other", minute, None)
        .await
        .unwrap();
    assert_eq!((other.held, other.recorded), (false, Some(at(7))));
}
