//! Room writes: each room's save script (state guarded by `seq`, indexes, outbox events, in one
//! atomic step) with the lookups of its new conferencecall and recording ids written just before
//! it. A batch of rooms goes to Redis as a few pipelines (4 rooms, then 8, then 16 at a time),
//! so a burst of events over many rooms costs a few round trips and socket writes, not one per
//! room, and Redis runs one pipeline while the next is built.
//!
//! The scripts are sent by hash (`EVALSHA`); a Redis that does not know the script (restarted,
//! or `SCRIPT FLUSH`) answers `NOSCRIPT` for those rooms without running anything, and they are
//! sent again once the script is loaded.

use std::sync::Arc;
use std::task::Poll;

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use redis::Value;
use redis::aio::ConnectionLike;

use super::{RedisStore, room_record, unavailable};
use crate::conference::{AppId, DomainEvent, Room, RoomId};
use crate::store::room_cache::{Access, Tracked};
use crate::store::{IndexDelta, Modified, RoomChange, Saved, Store, StoreError, keys, unique_name};

/// The save script's source.
pub(super) const SAVE_ROOM_LUA: &str = include_str!("../lua/save_room.lua");

/// How many rooms go to Redis in one pipeline: enough to pay one round trip for many rooms,
/// few enough that Redis is already running the scripts of one chunk while the next is built.
/// A batch starts with a smaller chunk, so Redis starts early on a small burst too, and
/// doubles up to the full size.
const CHUNK: usize = 16;
const FIRST_CHUNK: usize = 4;

/// One room to write: the version read, the version to store (kept in the room cache once
/// written), and the events of the change.
pub(crate) struct RoomWrite<'a> {
    pub old: &'a Room,
    pub new: Arc<Room>,
    pub events: &'a [DomainEvent],
}

/// How one write went, by its replies.
enum Reply {
    Saved,
    Conflict,
    /// Redis did not have the script: nothing ran.
    NoScript,
    Failed(String),
}

impl Reply {
    /// A cluster master's answer that the room's slot is served elsewhere (`MOVED`, `ASK`):
    /// nothing ran.
    fn redirected(&self) -> bool {
        matches!(self, Reply::Failed(e) if e.starts_with("MOVED") || e.starts_with("ASK"))
    }
}

impl RedisStore {
    /// Writes rooms, each guarded by its `seq`, in one pipelined round trip; one result per
    /// write, in order. An ended room's global lookups are set to expire afterwards (one more
    /// round trip, only when some room ended).
    pub(crate) async fn save_rooms(
        &self,
        writes: &[RoomWrite<'_>],
    ) -> Vec<Result<Saved, StoreError>> {
        let deltas: Vec<IndexDelta> = writes
            .iter()
            .map(|w| IndexDelta::between(w.old, &w.new))
            .collect();
        let mut results: Vec<Option<Result<Saved, StoreError>>> =
            writes.iter().map(|_| None).collect();
        let mut todo: Vec<usize> = (0..writes.len()).collect();
        for attempt in 0..2 {
            let replies = self.send_routed(writes, &deltas, &todo).await;
            let mut again = Vec::new();
            match replies {
                Err(e) => {
                    for &i in &todo {
                        results[i] = Some(Err(e.clone()));
                    }
                }
                Ok(replies) => {
                    for (&i, reply) in todo.iter().zip(replies) {
                        results[i] = Some(match reply {
                            Reply::Saved => Ok(Saved::Saved),
                            Reply::Conflict => Ok(Saved::Conflict),
                            Reply::NoScript if attempt == 0 => {
                                again.push(i);
                                continue;
                            }
                            // A cluster master no longer serving the room's slot ran nothing;
                            // the slot map is asked again (`send_writes`) before the retry.
                            reply if attempt == 0 && reply.redirected() => {
                                again.push(i);
                                continue;
                            }
                            Reply::NoScript => Err(StoreError::Unavailable(
                                "Redis keeps forgetting the save script".into(),
                            )),
                            Reply::Failed(e) => Err(StoreError::Unavailable(e)),
                        });
                    }
                }
            }
            if again.is_empty() {
                break;
            }
            if let Err(e) = self.load_save_script(writes, &again).await {
                for &i in &again {
                    results[i] = Some(Err(e.clone()));
                }
                break;
            }
            todo = again;
        }
        let ended: Vec<&Room> = writes
            .iter()
            .zip(&deltas)
            .zip(&results)
            .filter(|((_, d), r)| d.release && matches!(r, Some(Ok(Saved::Saved))))
            .map(|((w, _), _)| &*w.new)
            .collect();
        let ends: Vec<(&Room, crate::conference::Micros)> = writes
            .iter()
            .zip(&deltas)
            .zip(&results)
            .filter(|(_, r)| matches!(r, Some(Ok(Saved::Saved))))
            .filter_map(|((w, d), _)| Some((&*w.new, d.ends_at?)))
            .collect();
        if let Err(e) = self.schedule_ends(&ends).await {
            // The room is written; the timeout sweep's recheck ends it later (see
            // `Rooms::end_timed_out`).
            tracing::warn!(error = %e, "could not schedule the end of emptied rooms");
        }
        if let Err(e) = self.expire_lookups(&ended).await {
            for (r, d) in results.iter_mut().zip(&deltas) {
                if d.release && matches!(r, Some(Ok(Saved::Saved))) {
                    *r = Some(Err(e.clone()));
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(StoreError::Unavailable("not sent".into()))))
            .collect()
    }

    /// [`Store::change_rooms`], a chunk of rooms at a time: each chunk's rooms are read (from
    /// the cache when it holds them), changed, and the changed ones handed to Redis as one
    /// pipeline before the next chunk is worked on, so Redis runs one chunk's scripts while this
    /// process prepares the next. A room that lost a race is changed again on its own, as
    /// [`Store::change_room_value`] would.
    pub(super) async fn change_rooms_at_once<'a, T, E, F>(
        &'a self,
        mut changes: Vec<RoomChange<'a, F>>,
    ) -> Vec<Modified<T, E>>
    where
        T: Send,
        E: Send,
        F: FnMut(&mut Room) -> Result<(T, Vec<DomainEvent>), E> + Send,
    {
        let mut results: Vec<Option<Modified<T, E>>> = changes.iter().map(|_| None).collect();
        // A change read on one master is not written on another: after a failover the node's
        // owner first applies again what the new master may lack (`supervisor/kept.rs`), and
        // a newer change written before that would make those stale.
        let moves = self.conn.moves_now();
        let moved = || StoreError::Unavailable("the store moved to another master".into());
        // The value of each change waiting for its write.
        let mut values: Vec<Option<T>> = changes.iter().map(|_| None).collect();
        let mut inflight = FuturesOrdered::new();
        let mut written = Vec::new();
        let (mut start, mut size) = (0, FIRST_CHUNK);
        while start < changes.len() {
            let end = (start + size).min(changes.len());
            let chunk = &mut changes[start..end];
            let reads = chunk.iter().map(|c| self.room_base(c.app, c.room));
            let loaded = futures_util::future::join_all(reads).await;
            // (index, read, changed, events) of each room that changed.
            let mut batch = Vec::new();
            for (k, (c, read)) in chunk.iter_mut().zip(loaded).enumerate() {
                let i = start + k;
                let old = match read {
                    Ok(Some(old)) => old,
                    Ok(None) => {
                        results[i] = Some(Ok(None));
                        continue;
                    }
                    Err(e) => {
                        results[i] = Some(Err(e));
                        continue;
                    }
                };
                let mut new = Room::clone(&old);
                match (c.change)(&mut new) {
                    Err(e) => results[i] = Some(Ok(Some(Err(e)))),
                    // Every domain change moves `seq`; the full comparison is for those that
                    // did not.
                    Ok((value, _)) if new.seq == old.seq && new == *old => {
                        results[i] = Some(Ok(Some(Ok(value))))
                    }
                    Ok((value, events)) => {
                        values[i] = Some(value);
                        batch.push((i, old, Arc::new(new), events));
                    }
                }
            }
            (start, size) = (end, (size * 2).min(CHUNK));
            if batch.is_empty() {
                continue;
            }
            if self.conn.moves_now() != moves {
                for (i, ..) in batch {
                    results[i] = Some(Err(moved()));
                }
                continue;
            }
            inflight.push_back(async move {
                let writes: Vec<RoomWrite<'_>> = batch
                    .iter()
                    .map(|(_, old, new, events)| RoomWrite {
                        old,
                        new: Arc::clone(new),
                        events,
                    })
                    .collect();
                let saved = self.save_rooms(&writes).await;
                drop(writes);
                let indexes: Vec<usize> = batch.into_iter().map(|(i, ..)| i).collect();
                (indexes, saved)
            });
            // Hand the chunk to the connection now (its first poll sends it), and let the
            // connection's writer run before the next chunk is prepared.
            std::future::poll_fn(|cx| {
                while let Poll::Ready(Some(done)) = inflight.poll_next_unpin(cx) {
                    written.push(done);
                }
                Poll::Ready(())
            })
            .await;
            tokio::task::yield_now().await;
        }
        while let Some(done) = inflight.next().await {
            written.push(done);
        }
        let mut lost = Vec::new();
        for (indexes, saved) in written {
            for (i, saved) in indexes.into_iter().zip(saved) {
                match saved {
                    Ok(Saved::Saved) => results[i] = values[i].take().map(|v| Ok(Some(Ok(v)))),
                    Ok(Saved::Conflict) => lost.push(i),
                    Err(e) => results[i] = Some(Err(e)),
                }
            }
        }
        for i in lost {
            if self.conn.moves_now() != moves {
                results[i] = Some(Err(moved()));
                continue;
            }
            let c = &mut changes[i];
            results[i] = Some(self.change_room_value(c.app, c.room, &mut c.change).await);
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(StoreError::Unavailable("not run".into()))))
            .collect()
    }

    /// Whether `room`, once written, stays in the cache ([`Store::keep_rooms_of`]).
    fn keeps(&self, room: &Room) -> bool {
        self.keeps.get().is_none_or(|keeps| keeps(&room.node))
    }

    fn room_key(&self, room: &Room) -> String {
        self.room_key_of(&room.app, &room.id)
    }

    /// The key of a room's record (in its app's shard).
    pub(super) fn room_key_of(&self, app: &AppId, id: &RoomId) -> String {
        keys::room(&self.shards.room_tag(app, id), id)
    }

    /// The writes `todo` grouped by the master that holds each one's room (positions in `todo`).
    async fn by_master(
        &self,
        tracked: &Tracked,
        writes: &[RoomWrite<'_>],
        todo: &[usize],
    ) -> Result<Vec<Vec<usize>>, StoreError> {
        let room_keys: Vec<String> = todo
            .iter()
            .map(|&i| self.room_key(&writes[i].new))
            .collect();
        let room_keys: Vec<&str> = room_keys.iter().map(String::as_str).collect();
        tracked.by_server(&room_keys).await.map_err(unavailable)
    }

    /// [`Self::send_writes`] once per server of the room cache's connections (a cluster's
    /// masters: one pipeline each, all at once); the replies in `todo`'s order.
    async fn send_routed(
        &self,
        writes: &[RoomWrite<'_>],
        deltas: &[IndexDelta],
        todo: &[usize],
    ) -> Result<Vec<Reply>, StoreError> {
        let Some(tracked) = self.rooms.as_ref().filter(|t| t.is_cluster()) else {
            return self.send_writes(writes, deltas, todo).await;
        };
        let groups = self.by_master(tracked, writes, todo).await?;
        if groups.len() <= 1 {
            return self.send_writes(writes, deltas, todo).await;
        }
        let sends = groups.iter().map(|group| {
            let sub: Vec<usize> = group.iter().map(|&p| todo[p]).collect();
            async move { self.send_writes(writes, deltas, &sub).await }
        });
        let answers = futures_util::future::join_all(sends).await;
        let mut replies: Vec<Option<Reply>> = todo.iter().map(|_| None).collect();
        for (group, answer) in groups.iter().zip(answers) {
            match answer {
                Ok(answer) => {
                    for (&p, reply) in group.iter().zip(answer) {
                        replies[p] = Some(reply);
                    }
                }
                Err(e) => {
                    for &p in group {
                        replies[p] = Some(Reply::Failed(e.to_string()));
                    }
                }
            }
        }
        Ok(replies
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Reply::Failed("not sent".into())))
            .collect())
    }

    /// Sends the writes `todo` (indexes into `writes`) as one pipeline: for each, a `SET` per new
    /// lookup, then its save script. On the tracked connection (room cache on), each room saved
    /// is kept as its key's current version.
    async fn send_writes(
        &self,
        writes: &[RoomWrite<'_>],
        deltas: &[IndexDelta],
        todo: &[usize],
    ) -> Result<Vec<Reply>, StoreError> {
        if todo.is_empty() {
            // An empty pipeline would wait for an answer that never comes.
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        let mut room_keys = Vec::with_capacity(todo.len());
        // The version of each room's `past` field once written (see `room_record`).
        let mut past_versions = Vec::with_capacity(todo.len());
        // The session lookups (`in:`) the scripts may clear, and those they set.
        let mut lookups_written = Vec::new();
        let mut lookups_set = Vec::new();
        // The outbox shards appended to, and their apps.
        let mut appended: Vec<(String, &AppId)> = Vec::new();
        // How many replies each write has (its lookups, then its script) and whether its `seq`
        // is read again after them (`read_seq`, below).
        let mut spans = Vec::with_capacity(todo.len());
        // Whether each room is kept tracked through its notice key (no read after the write).
        let mut kept_by_notice = Vec::with_capacity(todo.len());
        // The global lookups live in slots of their own: on a cluster's master connection they
        // go first, through the cluster client.
        let apart = self.rooms.as_ref().is_some_and(|t| t.is_cluster());
        let mut lookups = redis::pipe();
        for &i in todo {
            let (w, delta) = (&writes[i], &deltas[i]);
            let tag = self.shards.room_tag(&w.new.app, &w.new.id);
            let key = keys::room(&tag, &w.new.id);
            if !delta.add_refs.is_empty() {
                let owner = format!("{} {}", w.new.app, w.new.id);
                for id in &delta.add_refs {
                    match apart {
                        true => lookups.set(keys::reference(id), &owner).ignore(),
                        false => pipe.set(keys::reference(id), &owner),
                    };
                }
            }
            // Participations the room no longer holds: their ids go with the retention.
            let ttl = i64::try_from(self.retention.as_secs()).unwrap_or(i64::MAX);
            for id in &delta.drop_refs {
                match apart {
                    true => lookups.expire(keys::reference(id), ttl).ignore(),
                    false => pipe.expire(keys::reference(id), ttl),
                };
            }
            // The connection tracks in OPTOUT mode: every key a command reads is tracked. A
            // script that reads has Redis track for us what it declares (checked on redis 7.0),
            // and our own write of a key takes its tracking away. So the save script declares
            // one key: for a room this process keeps ([`Store::keep_rooms_of`]), the room's
            // notice key, which its guard reads and which our writes leave alone while every
            // other writer sets it (save_room.lua): Redis goes on tracking the room for us
            // with no read after the write, and this process answers reads of it from memory
            // until another one changes it. (Before, each kept room's write was followed by a
            // read of its `seq` in the same round trip: 1.2 commands per event in
            // `event_cost`.) Else the room itself, which its write then untracks: a room whose
            // node another instance applies is written there next (that instance keeps it),
            // so it is left untracked here, its past participations known. Nothing else is
            // left tracked, the session and name lookups the script checks among them (one
            // checked when already gone would stay in Redis's tracking table for good). A
            // room released (its record expires) is read back instead: only the room's own
            // tracking would tell of its expiry.
            // The past participations go only when the record does not hold them already.
            let saved = self
                .rooms
                .as_ref()
                .and_then(|t| t.entries().past_saved(&key, w.old.seq));
            let send_past = room_record::past_to_send(w.old, &w.new, saved);
            let past = send_past.then(|| room_record::encode_past(&w.new));
            past_versions.push(if send_past { Some(w.new.seq) } else { saved });
            let keeps = self.rooms.is_some() && self.keeps(&w.new);
            let noticed = keeps && !delta.release;
            pipe.add_command(self.save_command(&tag, &key, w, delta, past, noticed));
            lookups_written.extend(
                delta
                    .remove_sessions
                    .iter()
                    .map(|s| keys::session_room(&tag, s)),
            );
            lookups_set.extend(
                delta
                    .add_sessions
                    .iter()
                    .map(|s| keys::session_room(&tag, s)),
            );
            let read_seq = keeps && delta.release;
            if read_seq {
                pipe.cmd("HGET").arg(&key).arg("seq");
            }
            let refs = if apart {
                0
            } else {
                delta.add_refs.len() + delta.drop_refs.len()
            };
            spans.push((refs + 1, read_seq));
            kept_by_notice.push(noticed);
            room_keys.push(key);
            if !w.events.is_empty() && !appended.iter().any(|(t, _)| *t == tag) {
                appended.push((tag, &w.new.app));
            }
        }
        let writes_count = pipe.len();
        // The outbox's readers wake once per shard that grew, after its scripts (a spurious
        // ring when a write lost its race is harmless): published, or where the bells follow
        // the tracked connection, heard by the other readers and rung here for this process's
        // own (`outbox_bells.rs`).
        for (tag, _) in &appended {
            if self.publishes(tag) {
                pipe.add_command(self.publish(tag));
            }
        }
        // The lookups the scripts set are read back after them, where this process keeps
        // sessions' lookups (`room_cache/values.rs`): Redis goes on tracking them, so the next
        // command of a joined call finds its room from memory (its own write draws no push,
        // NOLOOP). Only those set: a cleared one read back would be a key that no longer
        // exists, left in Redis's tracking table until it is written again, if ever.
        let read_back: Vec<(String, u64)> = match self.lookups_cache() {
            Some(tracked) => lookups_set
                .into_iter()
                .map(|key| {
                    pipe.cmd("GET").arg(&key);
                    let token = tracked.entries().begin_value(&key, Access::Write);
                    (key, token)
                })
                .collect(),
            None => {
                lookups_written.append(&mut lookups_set);
                Vec::new()
            }
        };
        if !lookups.is_empty() {
            lookups
                .query_async::<()>(&mut self.conn())
                .await
                .map_err(unavailable)?;
        }
        let count = pipe.len();
        let replies = match &self.rooms {
            None => without_rings(
                self.conn()
                    .req_packed_commands(&pipe, 0, count)
                    .await
                    .map_err(unavailable)?,
                count,
                writes_count,
            )?,
            Some(tracked) => {
                let keys: Vec<&str> = room_keys.iter().map(String::as_str).collect();
                let pipe = &pipe;
                let sent = tracked
                    .call_many(&keys, Access::Write, |mut conn| async move {
                        conn.req_packed_commands(pipe, 0, count).await
                    })
                    .await;
                self.rang(appended.iter().map(|(_, app)| *app));
                let entries = tracked.entries();
                // The session lookups these scripts set or cleared on this very connection: no
                // push comes for them (NOLOOP), so what this process kept of them goes, whether
                // or not the writes were answered.
                entries.forget_values(lookups_written.iter().map(String::as_str));
                // The lookups read back, last in the pipeline: kept, or forgotten unanswered.
                let answers = sent
                    .as_ref()
                    .ok()
                    .and_then(|(replies, _)| replies.get(count - read_back.len()..count));
                for (n, (key, token)) in read_back.iter().enumerate() {
                    let value =
                        answers.and_then(|a| redis::from_redis_value::<Option<String>>(&a[n]).ok());
                    match value {
                        Some(value) => entries.fill_value(key, *token, value),
                        None => entries.forget_values([key.as_str()]),
                    }
                }
                let (replies, tokens) = sent.map_err(unavailable)?;
                let (outcomes, seqs) = without_rings(replies, count, writes_count)
                    .and_then(|replies| outcomes(replies, &spans))
                    .inspect_err(|_| {
                        for key in &room_keys {
                            entries.forget(key);
                        }
                    })?;
                // A cluster master that no longer serves a slot: the map is asked again.
                if outcomes.iter().any(Reply::redirected) {
                    tracked.moved();
                }
                for (((((key, token), (&i, outcome)), seq), past), &noticed) in room_keys
                    .iter()
                    .zip(tokens)
                    .zip(todo.iter().zip(&outcomes))
                    .zip(seqs)
                    .zip(&past_versions)
                    .zip(&kept_by_notice)
                {
                    let new = &writes[i].new;
                    match (outcome, seq) {
                        (Reply::Saved, Some(s)) if s == new.seq => {
                            entries.fill(key, token, Arc::clone(new), *past)
                        }
                        (Reply::Saved, None) if noticed => {
                            entries.fill(key, token, Arc::clone(new), *past)
                        }
                        (Reply::Saved, None) => entries.untracked(
                            key,
                            token,
                            past.map(|v| (v, Arc::clone(&new.past_members))),
                        ),
                        _ => entries.forget(key),
                    }
                }
                return Ok(outcomes);
            }
        };
        outcomes(replies, &spans).map(|(replies, _)| replies)
    }

    /// `EVALSHA` of the save script for one room.
    fn save_command(
        &self,
        tag: &str,
        key: &str,
        w: &RoomWrite<'_>,
        delta: &IndexDelta,
        past: Option<Vec<u8>>,
        noticed: bool,
    ) -> redis::Cmd {
        let (old, new) = (w.old, &*w.new);
        let sessions = delta.add_sessions.iter().chain(&delta.remove_sessions);
        // One declared key, the one Redis is to go on tracking for us (see save_room.lua):
        // the others follow its arguments, in its slot.
        let notice = keys::room_notice(tag, &new.id);
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(self.save_room.get_hash())
            .arg(1)
            .arg(if noticed { notice.as_str() } else { key })
            .arg(old.seq)
            .arg(new.seq)
            .arg(encode_sized(new, 2048))
            .arg(new.id.as_str())
            .arg(if delta.release {
                self.retention.as_secs()
            } else {
                0
            })
            .arg(delta.add_sessions.len())
            .arg(delta.remove_sessions.len())
            .arg(past.unwrap_or_default())
            .arg(keys::outbox(tag))
            .arg(keys::name(tag, &unique_name(new)))
            .arg(keys::rooms_ended(tag))
            .arg(keys::live_rooms(tag));
        match delta.media {
            Some(true) => cmd.arg(new.created_at),
            Some(false) => cmd.arg("-"),
            None => cmd.arg(""),
        };
        cmd.arg(keys::media_rooms(tag))
            .arg(key)
            .arg(&notice)
            .arg(if noticed { self.keeper.as_str() } else { "" })
            // An ended room's record expires (after its release, or written again since): its
            // notice key goes with it.
            .arg(match new.status {
                crate::conference::RoomStatus::Terminated => self.retention.as_secs(),
                _ => 0,
            });
        for s in sessions {
            cmd.arg(keys::session_room(tag, s));
        }
        for event in w.events {
            cmd.arg(encode_sized(event, 512));
        }
        cmd
    }

    /// Loads the save script where the writes `again` go: through the cluster client (every
    /// master), or on a cluster with the room cache, on each of their masters' own connections
    /// (the cluster client may still be asking a master that failed over).
    async fn load_save_script(
        &self,
        writes: &[RoomWrite<'_>],
        again: &[usize],
    ) -> Result<(), StoreError> {
        let Some(tracked) = self.rooms.as_ref().filter(|t| t.is_cluster()) else {
            return self
                .save_room
                .load_async(&mut self.conn())
                .await
                .map(drop)
                .map_err(unavailable);
        };
        for group in self.by_master(tracked, writes, again).await? {
            let key = self.room_key(&writes[again[group[0]]].new);
            tracked
                .on_server_of(&key, |mut conn| async move {
                    self.save_room.load_async(&mut conn).await.map(drop)
                })
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    /// Rooms whose lifetime rules now end them at a new time (everybody left) get that time
    /// in the timeouts (one round trip, only when some room has one).
    async fn schedule_ends(
        &self,
        ends: &[(&Room, crate::conference::Micros)],
    ) -> Result<(), StoreError> {
        if ends.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (room, at) in ends {
            pipe.zadd(keys::TIMEOUTS, format!("{} {}", room.app, room.id), *at)
                .ignore();
        }
        pipe.query_async::<()>(&mut self.conn())
            .await
            .map_err(unavailable)
    }

    /// Ended rooms leave their node's set and the timeouts, and their global lookups expire
    /// with them.
    async fn expire_lookups(&self, ended: &[&Room]) -> Result<(), StoreError> {
        if ended.is_empty() {
            return Ok(());
        }
        let ttl = i64::try_from(self.retention.as_secs()).unwrap_or(i64::MAX);
        let mut pipe = redis::pipe();
        for room in ended {
            let member = format!("{} {}", room.app, room.id);
            pipe.srem(keys::node_rooms(&room.node), &member)
                .ignore()
                .zrem(keys::TIMEOUTS, &member)
                .ignore()
                .expire(keys::room_app(&room.id), ttl)
                .ignore();
            for id in room.refs() {
                pipe.expire(keys::reference(&id), ttl).ignore();
            }
        }
        pipe.query_async::<()>(&mut self.conn())
            .await
            .map_err(unavailable)
    }
}

/// `value` as JSON, in a buffer of `capacity` bytes to start with (most rooms fit in one).
fn encode_sized(value: &impl serde::Serialize, capacity: usize) -> Vec<u8> {
    let mut json = Vec::with_capacity(capacity);
    // Our own types always serialize (as `encode` does, nothing rather than a part).
    if serde_json::to_writer(&mut json, value).is_err() {
        json.clear();
    }
    json
}

/// The writes' replies of a pipeline of `count` replies that ends with the `PUBLISH`es.
fn without_rings(
    mut replies: Vec<Value>,
    count: usize,
    writes: usize,
) -> Result<Vec<Value>, StoreError> {
    if replies.len() != count {
        return Err(StoreError::Unavailable(format!(
            "Redis answered a pipeline of {count} commands with {} replies",
            replies.len()
        )));
    }
    replies.truncate(writes);
    Ok(replies)
}

/// Reads each write's replies (`spans[i].0` of them: lookups, then the script's answer; then,
/// where `spans[i].1`, the room's `seq` read again), and the `seq` each read again found
/// (`None`: not read; `Some(0)`: gone or unreadable).
#[allow(clippy::type_complexity)]
fn outcomes(
    replies: Vec<Value>,
    spans: &[(usize, bool)],
) -> Result<(Vec<Reply>, Vec<Option<u64>>), StoreError> {
    let total: usize = spans.iter().map(|&(n, read)| n + usize::from(read)).sum();
    if replies.len() != total {
        return Err(StoreError::Unavailable(format!(
            "Redis answered a pipeline of {} commands with {} replies",
            total,
            replies.len()
        )));
    }
    let mut replies = replies.into_iter();
    let mut out = Vec::with_capacity(spans.len());
    let mut seqs = Vec::with_capacity(spans.len());
    for &(span, read_seq) in spans {
        let mut failed = None;
        let mut last = Value::Nil;
        for _ in 0..span {
            last = replies.next().unwrap_or(Value::Nil);
            if let Value::ServerError(e) = &last
                && failed.is_none()
                && e.code() != "NOSCRIPT"
            {
                failed = Some(format!("{}: {}", e.code(), e.details().unwrap_or("")));
            }
        }
        out.push(match (failed, last) {
            (Some(e), _) => Reply::Failed(e),
            (None, Value::Int(1)) => Reply::Saved,
            (None, Value::Int(0)) => Reply::Conflict,
            (None, Value::ServerError(_)) => Reply::NoScript,
            (None, other) => Reply::Failed(format!("unexpected answer to a room save: {other:?}")),
        });
        seqs.push(read_seq.then(|| {
            replies
                .next()
                .and_then(|v| redis::from_redis_value::<Option<u64>>(&v).ok().flatten())
                .unwrap_or(0)
        }));
    }
    Ok((out, seqs))
}
