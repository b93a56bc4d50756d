//! Concurrent-update checks: each update appends its number to the room's detail, so the room
//! shows afterwards which updates landed, and how many times.

use switchyard::conference::{AppId, Room, RoomId};
use switchyard::store::{Store, update_room};

/// Update `i` of a room: its number appended to the detail, and the change counted in `seq`.
pub fn mark(room: &mut Room, i: u32) {
    room.detail.push_str(&format!("{i},"));
    room.seq += 1;
}

/// The numbers of the updates a room carries, sorted (an update that landed twice shows twice).
pub fn marks(room: &Room) -> Vec<u32> {
    let mut seen: Vec<u32> = room
        .detail
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    seen.sort_unstable();
    seen
}

/// Applies update `i` to the room through `update_room`, which must succeed.
pub async fn mark_once<S: Store>(store: &S, app: &AppId, id: &RoomId, i: u32) {
    update_room(store, app, id, |room| {
        mark(room, i);
        Ok::<_, ()>(((), Vec::new()))
    })
    .await
    .unwrap()
    .unwrap()
    .unwrap();
}
