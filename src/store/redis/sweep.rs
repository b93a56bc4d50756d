//! Ended rooms leave the app's listing index once their record expired.
//!
//! A room's record expires by itself at the end of its retention, but its entry in the shard's
//! listing index (`rooms`, a zset) does not: an app that never lists its rooms would keep one
//! entry per room ever made. The save script that ends a room also notes when its record will
//! be gone (`rooms:ended`, scored by Redis's clock); [`RedisStore::sweep_ended_rooms`] takes
//! the notes that are due and drops the rooms whose record is gone from both zsets — work in
//! proportion to the rooms that expired, not to the index. (Rooms ended before the notes
//! existed leave the index when a listing meets them, `reads.rs`.)

use redis::AsyncCommands;

use super::{RedisStore, unavailable};
use crate::conference::{AppId, RoomId};
use crate::store::{StoreError, keys};

/// How many notes one round takes from a shard.
const BATCH: usize = 512;
/// At most this many rounds per shard and sweep: a backlog is worked off over several sweeps.
const ROUNDS: usize = 16;

impl RedisStore {
    /// Drops the app's ended rooms whose record expired from its listing index; how many went.
    pub(super) async fn sweep_ended(&self, app: &AppId) -> Result<usize, StoreError> {
        let mut dropped = 0;
        for tag in self.shards.tags(app).iter() {
            for _ in 0..ROUNDS {
                let (gone, taken) = self.sweep_round(tag).await?;
                dropped += gone;
                if taken < BATCH {
                    break;
                }
            }
        }
        Ok(dropped)
    }

    /// One round on one shard: (rooms dropped, notes taken).
    async fn sweep_round(&self, tag: &str) -> Result<(usize, usize), StoreError> {
        let ended = keys::rooms_ended(tag);
        let mut conn = self.conn();
        let now = unix_secs();
        let due: Vec<String> = conn
            .zrangebyscore_limit(&ended, "-inf", now, 0, BATCH as isize)
            .await
            .map_err(unavailable)?;
        if due.is_empty() {
            return Ok((0, 0));
        }
        let mut tidy = redis::pipe();
        let mut rooms = Vec::with_capacity(due.len());
        for id in &due {
            match RoomId::parse(id) {
                Ok(room) => rooms.push((id.as_str(), keys::room(tag, &room))),
                // Not one of ours: the note goes.
                Err(_) => {
                    tidy.zrem(&ended, id).ignore();
                }
            }
        }
        // What is left of each record's life, by Redis's clock (-2: gone, -1: no expiry).
        let mut ttls = redis::pipe();
        for (_, key) in &rooms {
            ttls.ttl(key);
        }
        let ttls: Vec<i64> = match rooms.is_empty() {
            true => Vec::new(),
            false => ttls.query_async(&mut conn).await.map_err(unavailable)?,
        };
        let mut gone = Vec::new();
        for ((id, _), ttl) in rooms.iter().zip(ttls) {
            match ttl {
                -2 => gone.push(*id),
                // Kept for good (not something the store does): it stays listed.
                -1 => {
                    tidy.zrem(&ended, id).ignore();
                }
                // Not gone yet by Redis's clock: looked at again when it is.
                left => {
                    tidy.zadd(&ended, id, now + left).ignore();
                }
            }
        }
        if !gone.is_empty() {
            tidy.zrem(keys::rooms(tag), &gone)
                .ignore()
                .zrem(&ended, &gone)
                .ignore();
        }
        // A room id never comes back, so nothing can slip in between.
        tidy.query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok((gone.len(), due.len()))
    }
}

fn unix_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
