//! The room cache's side of the Redis store: room reads and writes on the tracked connection
//! (client-side caching under Redis's invalidation, see [`crate::store::room_cache`]), or
//! straight to Redis when the cache is off.

use std::sync::Arc;

use redis::Script;

use super::failover::Target;
use super::{RedisStore, query_loading, room_record, unavailable};
use crate::conference::{AppId, Room, RoomId};
use crate::store::StoreError;
use crate::store::room_cache::{Access, FindMaster, Tracked};

/// The room cache's connection (one per master on a cluster), tried once: a Redis that refuses
/// RESP3 or client tracking (before 6.0, or a proxy that lacks them) leaves the cache off,
/// loudly, rather than every read failing; a Redis that cannot be reached is an error. With a
/// Sentinel set, the connection is to the master the sentinels name, asked again whenever it
/// is lost, answers as a replica, or the sentinels announce another (`switches` grew).
pub(super) async fn tracked(
    target: &Arc<Target>,
    capacity: usize,
    switches: &Arc<super::switches::Switches>,
) -> Result<Option<Tracked>, StoreError> {
    let tracked = match &**target {
        Target::Plain(url) => Tracked::new(url, capacity),
        Target::Cluster(nodes) => Tracked::cluster(nodes, capacity),
        Target::Sentinel { .. } => {
            let target = target.clone();
            let find: FindMaster = Arc::new(move || {
                let target = target.clone();
                Box::pin(async move { Ok(target.master().await?.get_connection_info().clone()) })
            });
            Ok(Tracked::following(find, switches.clone(), capacity))
        }
    }
    .map_err(unavailable)?;
    match tracked.check().await {
        Ok(_) => Ok(Some(tracked)),
        Err(e) if e.is_io_error() || e.is_timeout() || e.is_connection_refusal() => {
            Err(unavailable(e))
        }
        Err(e) => {
            tracing::warn!(error = %e, "Redis refuses client tracking: the room cache is off");
            Ok(None)
        }
    }
}

impl RedisStore {
    /// A room through the tracked connection: from the cache, or read and kept.
    pub(super) async fn tracked_room(
        &self,
        tracked: &Tracked,
        key: &str,
    ) -> Result<Option<Room>, StoreError> {
        if let Some(room) = tracked.entries().get(key) {
            return Ok(Some(room));
        }
        Ok(self
            .read_tracked(tracked, key)
            .await?
            .map(|room| Room::clone(&room)))
    }

    /// The version of a room to change and write back guarded by its `seq`: the one this
    /// process last read or wrote if it holds it, else read from Redis (and kept).
    pub(super) async fn room_base(
        &self,
        app: &AppId,
        id: &RoomId,
    ) -> Result<Option<Arc<Room>>, StoreError> {
        let key = self.room_key_of(app, id);
        let Some(tracked) = &self.rooms else {
            return Ok(self.room_record(&key).await?.map(Arc::new));
        };
        match tracked.entries().base(&key) {
            Some(room) => Ok(Some(room)),
            None => self.read_tracked(tracked, &key).await,
        }
    }

    /// Reads a room on the tracked connection, keeping it (Redis tracks it for us from now on).
    async fn read_tracked(
        &self,
        tracked: &Tracked,
        key: &str,
    ) -> Result<Option<Arc<Room>>, StoreError> {
        // Taken before the read marks the key as pending: a history kept from before the room
        // changed elsewhere saves parsing it again if the record still holds that version.
        let known = tracked.entries().known_past(key);
        let ((json, past), token) = tracked
            .call(key, Access::Read, |mut conn| async move {
                // Tracked: the connection tracks every read it is not told to leave.
                redis::cmd("HMGET")
                    .arg(key)
                    .arg(&room_record::FIELDS)
                    .query_async::<(Option<String>, Option<String>)>(&mut conn)
                    .await
            })
            .await
            .map_err(unavailable)?;
        let Some(json) = json else {
            tracked.entries().forget(key);
            return Ok(None);
        };
        let decoded = room_record::decode(key, &json, past.as_deref(), known)
            .inspect_err(|_| tracked.entries().forget(key))?;
        let room = Arc::new(decoded.room);
        tracked
            .entries()
            .fill(key, token, Arc::clone(&room), decoded.past);
        Ok(Some(room))
    }

    /// Runs `eval` (an `EVALSHA` of `script`) that writes the room at `key`: on the tracked
    /// connection when the cache is on, keeping `room` as the key's version when `wrote` says
    /// the script stored it.
    pub(super) async fn write_room<T: redis::FromRedisValue>(
        &self,
        key: &str,
        script: &Script,
        eval: redis::Cmd,
        room: &Room,
        wrote: impl Fn(&T) -> bool,
    ) -> Result<T, StoreError> {
        let Some(tracked) = &self.rooms else {
            let mut pipe = redis::pipe();
            pipe.add_command(eval);
            return query_loading(&mut self.conn(), script, &pipe)
                .await
                .map(|(answer,)| answer)
                .map_err(unavailable);
        };
        let mut pipe = redis::pipe();
        pipe.add_command(eval);
        let pipe = &pipe;
        let ((answer,), token) = tracked
            .call(key, Access::Write, |mut conn| async move {
                query_loading::<(T,), _>(&mut conn, script, pipe).await
            })
            .await
            .map_err(unavailable)?;
        if wrote(&answer) {
            // A created room has no past participations: its record holds none.
            tracked
                .entries()
                .fill(key, token, Arc::new(room.clone()), Some(0));
        } else {
            tracked.entries().forget(key);
        }
        Ok(answer)
    }
}
