//! The memory store's own tests (the shared ones are `tests/store/conformance.rs`).

use super::*;
use crate::conference::{EventKind, RoomType};
use crate::store::{modify_room, update_room};

fn setup() -> (MemoryStore, Room) {
    let prefix = NodePrefix::parse("abcde").unwrap();
    let app = AppId::parse("app").unwrap();
    let id = RoomId::new(&prefix, uuid::Uuid::new_v4());
    let room = Room::new(id, app, "r".into(), RoomType::Conference, "ctl".into(), 1);
    let store = MemoryStore::new();
    store.lock().rooms.insert(room.id.clone(), room.clone());
    (store, room)
}

fn event(room: &Room) -> DomainEvent {
    DomainEvent {
        kind: EventKind::Progressing,
        app: room.app.clone(),
        room: room.id.clone(),
        seq: room.seq,
        at: 1,
        data: serde_json::Value::Null,
        redelivers: None,
    }
}

/// A change that refuses or panics half-way leaves the stored room and the outbox as they were.
#[tokio::test]
async fn a_change_that_fails_half_way_leaves_nothing_behind() {
    let (store, room) = setup();
    let refused = modify_room(&store, &room.app, &room.id, |r| {
        r.seq += 1;
        r.detail = "half".into();
        Err::<((), Vec<DomainEvent>), _>("no")
    })
    .await
    .unwrap();
    assert_eq!(refused, Some(Err("no")));
    let panicked = std::panic::AssertUnwindSafe(update_room(&store, &room.app, &room.id, |r| {
        r.seq += 1;
        r.detail = "half".into();
        if r.seq > 0 {
            panic!("a bug in a change");
        }
        Ok::<_, ()>(((), Vec::new()))
    }));
    assert!(
        futures_util::FutureExt::catch_unwind(panicked)
            .await
            .is_err()
    );
    assert_eq!(
        store.room(&room.app, &room.id).await.unwrap(),
        Some(room.clone())
    );
    assert!(store.outbox(&room.app, None, 10).await.unwrap().is_empty());
}

/// Both ways of changing a room store the same thing: the room, its seq and its events.
#[tokio::test]
async fn change_room_and_change_room_value_store_the_same() {
    let (store, room) = setup();
    let change = |r: &mut Room| {
        r.seq += 1;
        r.detail.push('x');
        Ok::<_, ()>((r.seq, vec![event(r)]))
    };
    let (saved, seq) = update_room(&store, &room.app, &room.id, change)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((saved.seq, seq), (1, 1));
    let seq = modify_room(&store, &room.app, &room.id, change)
        .await
        .unwrap();
    assert_eq!(seq, Some(Ok(2)));
    let stored = store.room(&room.app, &room.id).await.unwrap().unwrap();
    assert_eq!((stored.seq, stored.detail.as_str()), (2, "xx"));
    let outbox = store.outbox(&room.app, None, 10).await.unwrap();
    let seqs: Vec<u64> = outbox.iter().map(|e| e.event.seq).collect();
    assert_eq!(seqs, [1, 2]);
    // An unchanged room saves nothing, not even the change's events.
    let same = modify_room(&store, &room.app, &room.id, |r| {
        Ok::<_, ()>(((), vec![event(r)]))
    });
    assert_eq!(same.await.unwrap(), Some(Ok(())));
    assert_eq!(store.outbox(&room.app, None, 10).await.unwrap().len(), 2);
    let other = AppId::parse("other").unwrap();
    assert_eq!(
        modify_room(&store, &other, &room.id, change).await.unwrap(),
        None
    );
}
