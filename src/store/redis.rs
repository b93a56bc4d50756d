//! The Redis store: rooms and sessions as JSON in hashes guarded by `seq`, changed by Lua
//! scripts so each room write (state, indexes, outbox events) is atomic. The connection manager
//! reconnects in the background after a Redis restart; until then operations fail with
//! [`StoreError::Unavailable`]. The key schema is in [`super::keys`].

use std::sync::Arc;
use std::time::Duration;

use redis::{AsyncCommands, Script, Value};

mod appended;
mod cached;
mod cluster;
mod deliveries;
mod failover;
mod layout;
mod live;
mod outbox;
mod outbox_bells;
mod reads;
mod replicated;
mod room_record;
mod room_writes;
mod sentinel_master;
mod sessions;
mod shards;
pub(crate) mod slot_map;
mod sweep;
mod switches;

use cached::tracked;
pub(crate) use cluster::slot_of_key;
pub use layout::LayoutError;
use room_writes::RoomWrite;

use super::bell::{Bells, OutboxWatch};
use super::room_cache::{self, Tracked};
use super::{Created, Modified, OutboxEntry, Page, RoomChange, Saved, Store, StoreError, keys};
use crate::conference::{AppId, DomainEvent, Micros, NodePrefix, Room, RoomId, Session, SessionId};

/// How long one replication check waits for the replicas.
const REPLICATION_TIMEOUT: Duration = Duration::from_millis(500);

/// The replication check waiting for `n` replicas (`None` for 0).
fn replication(
    target: &Arc<failover::Target>,
    n: usize,
    switches: &Arc<switches::Switches>,
) -> Option<replicated::Replication> {
    (n > 0).then(|| {
        replicated::Replication::new(target.clone(), n, REPLICATION_TIMEOUT, switches.clone())
    })
}

/// How long an ended session stays readable.
/// How long an ended session stays readable unless configured otherwise.
pub const ENDED_SESSION_TTL_SECS: u64 = 3600;

pub struct RedisStore {
    /// The shared connection (to the master a Sentinel set names, when one does).
    conn: failover::Conn,
    /// Where Redis is: for the outbox notifications' own connection.
    target: Arc<failover::Target>,
    /// Rung by the subscriber ([`appended`]), which starts with the first reader.
    bells: Bells,
    listening: std::sync::OnceLock<tokio_util::sync::DropGuard>,
    /// Room reads and writes, cached in this process under Redis's invalidation; `None`: off.
    rooms: Option<Arc<Tracked>>,
    /// Which outbox channels instances of earlier versions listen on ([`outbox_bells`]).
    listened: Arc<outbox_bells::Listened>,
    create_room: Script,
    save_room: Script,
    save_session: Script,
    remember: Script,
    set_outbox_position: Script,
    claim_timeouts: Script,
    lease: Script,
    retention: Duration,
    /// How long an ended session (a hung-up call) stays readable.
    ended_sessions: Duration,
    /// How one app's keys spread over hash tags.
    shards: shards::Shards,
    /// How many times a Sentinel set announced a new master ([`switches`]).
    switches: Arc<switches::Switches>,
    /// What must survive a failover waits for the replicas ([`replicated`]); `None`: no
    /// replica is waited for.
    replication: Option<replicated::Replication>,
    /// The sessions' apps this process has read or written ([`sessions::SessionApps`]).
    session_apps: sessions::SessionApps,
    /// Which rooms stay in the cache after this process writes them ([`Store::keep_rooms_of`]);
    /// unset: all.
    keeps: std::sync::OnceLock<crate::store::KeepsRooms>,
    /// This store's name as a room's keeper (its `k` field, `lua/save_room.lua`): random, one
    /// per store made.
    keeper: String,
    /// Stops following the sentinels' announcements.
    _following: tokio_util::sync::DropGuard,
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn decode<T: serde::de::DeserializeOwned>(key: &str, json: &str) -> Result<T, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

/// `app room_id`, as the global lookups hold it.
fn parse_owner(s: &str) -> Option<(AppId, RoomId)> {
    let (app, room) = s.split_once(' ')?;
    Some((AppId::parse(app).ok()?, RoomId::parse(room).ok()?))
}

/// Sends `pipe`, which runs `script` by hash; a Redis that does not know the script (restarted,
/// or `SCRIPT FLUSH`) runs nothing and answers `NOSCRIPT`, so it is loaded and `pipe` sent again.
async fn query_loading<T: redis::FromRedisValue, C: redis::aio::ConnectionLike>(
    conn: &mut C,
    script: &Script,
    pipe: &redis::Pipeline,
) -> redis::RedisResult<T> {
    match pipe.query_async(conn).await {
        Err(e) if e.kind() == redis::ErrorKind::NoScriptError => {
            script.load_async(conn).await?;
            pipe.query_async(conn).await
        }
        answer => answer,
    }
}

fn encode<T: serde::Serialize>(value: &T) -> String {
    // Our own types always serialize.
    serde_json::to_string(value).unwrap_or_default()
}

impl RedisStore {
    /// Connects (failing fast if Redis is not there) with short timeouts and background reconnects.
    /// `url` may name a Sentinel set (`redis+sentinel://…`, see [`failover`]): the store then
    /// follows the master through failovers (without the room cache: the master moves); on a
    /// Redis Cluster the cache keeps a tracked connection per master.
    pub async fn connect(url: &str) -> Result<RedisStore, StoreError> {
        let target = Arc::new(failover::Target::parse(url).map_err(unavailable)?);
        // A Sentinel set has a replica to fail over to: wait for one by default.
        let replicas = usize::from(target.is_sentinel());
        let mut store = RedisStore::over(target, replicas).await?;
        store.rooms = tracked(&store.target, room_cache::DEFAULT_CAPACITY, &store.switches)
            .await?
            .map(Arc::new);
        Ok(store)
    }

    /// A store on `target` with connections of its own, made on the calling runtime: the shared
    /// one, following the sentinels, and the replication check waiting for `replicas`. No room
    /// cache, the default settings.
    async fn over(
        target: Arc<failover::Target>,
        replicas: usize,
    ) -> Result<RedisStore, StoreError> {
        let switches = Arc::new(switches::Switches::new(0));
        let conn = failover::Conn::connect(target.clone(), switches.clone())
            .await
            .map_err(unavailable)?;
        let following = tokio_util::sync::CancellationToken::new();
        switches::follow(&target, &conn, &switches, &following);
        let replication = replication(&target, replicas, &switches);
        Ok(RedisStore {
            conn,
            target,
            bells: Bells::new(false),
            listening: std::sync::OnceLock::new(),
            rooms: None,
            listened: Arc::default(),
            create_room: Script::new(include_str!("lua/create_room.lua")),
            save_room: Script::new(room_writes::SAVE_ROOM_LUA),
            save_session: Script::new(include_str!("lua/save_session.lua")),
            remember: Script::new(include_str!("lua/remember.lua")),
            set_outbox_position: Script::new(include_str!("lua/set_outbox_position.lua")),
            claim_timeouts: Script::new(include_str!("lua/claim_timeouts.lua")),
            lease: Script::new(include_str!("lua/lease.lua")),
            retention: super::DEFAULT_RETENTION,
            ended_sessions: Duration::from_secs(ENDED_SESSION_TTL_SECS),
            shards: shards::Shards::new(1),
            switches,
            replication,
            session_apps: sessions::SessionApps::default(),
            keeps: std::sync::OnceLock::new(),
            keeper: format!("{:016x}", uuid::Uuid::new_v4().as_u64_pair().0),
            _following: following.drop_guard(),
        })
    }

    /// The same store over connections of its own, made on the calling runtime, without the
    /// room cache or the outbox's subscriber: the fleet's renewals run on a thread of their own
    /// (see [`crate::node::fleet`]), whose round trips must not wait for a saturated runtime
    /// to drive the shared connection. It follows the sentinels on its own too, and waits for
    /// as many replicas.
    pub(crate) async fn apart(&self) -> Result<RedisStore, StoreError> {
        let mut store = RedisStore::over(self.target.clone(), self.replicas()).await?;
        store.listened = self.listened.clone();
        store.retention = self.retention;
        store.ended_sessions = self.ended_sessions;
        store.shards = shards::Shards::new(self.shards.count());
        Ok(store)
    }

    /// How many replicas must have an outbox entry before its webhook is sent (and a node's
    /// applied position before it is trusted): 0 waits for none (a failover may then lose
    /// what was announced, see docs/operations.md). The default is 1 with a Sentinel set, 0 otherwise; a
    /// Redis Cluster cannot wait (its failovers are its own).
    pub fn with_replicas(mut self, n: usize) -> Result<RedisStore, StoreError> {
        if n > 0 && matches!(*self.target, failover::Target::Cluster(_)) {
            return Err(StoreError::Unavailable(
                "redis_replicas: a Redis Cluster cannot be asked to wait for replicas; set it to 0"
                    .into(),
            ));
        }
        self.replication = replication(&self.target, n, &self.switches);
        Ok(self)
    }

    /// How many replicas are waited for (see [`RedisStore::with_replicas`]).
    pub fn replicas(&self) -> usize {
        self.replication.as_ref().map_or(0, |r| r.wanted())
    }

    /// Spreads each app over `n` shards (hash tags; see [`shards`]). One (the default) is the
    /// layout of a single Redis; more let one app's rooms use several masters of a cluster.
    pub fn with_shards(mut self, n: usize) -> RedisStore {
        self.shards = shards::Shards::new(n);
        self
    }

    /// How many rooms this process keeps in its cache (0: none; every read goes to Redis).
    pub async fn with_room_cache(mut self, capacity: usize) -> Result<RedisStore, StoreError> {
        self.rooms = match capacity {
            0 => None,
            n => tracked(&self.target, n, &self.switches)
                .await?
                .map(Arc::new),
        };
        Ok(self)
    }

    /// Where the master is, as the store's connection has it (`host:port`): with a Sentinel
    /// set, the one it follows now.
    pub fn master_address(&self) -> String {
        self.conn.master_address()
    }

    /// How many rooms the cache holds now (0 when it is off).
    pub fn cached_rooms(&self) -> usize {
        self.rooms.as_ref().map_or(0, |t| t.entries().len())
    }

    /// How long terminated rooms stay readable (at least a second).
    pub fn with_retention(mut self, retention: Duration) -> RedisStore {
        self.retention = retention.max(Duration::from_secs(1));
        self
    }

    /// How long an ended session stays readable (default an hour).
    pub fn with_session_retention(mut self, retention: Duration) -> RedisStore {
        self.ended_sessions = retention.max(Duration::from_secs(1));
        self
    }

    /// `key` (an app-wide key's name for a tag) in each of the app's shards.
    fn in_every_shard(&self, app: &AppId, key: impl Fn(&str) -> String) -> Vec<String> {
        self.shards.tags(app).iter().map(|t| key(t)).collect()
    }

    fn conn(&self) -> failover::Conn {
        self.conn.clone()
    }

    /// How a write announces an append to the outbox of shard `tag` ([`keys::appended`]): a
    /// sharded `SPUBLISH` on a Redis Cluster (the message stays on the shard's master; see
    /// [`appended`]), a `PUBLISH` elsewhere.
    fn publish_command(&self) -> &'static str {
        match *self.target {
            failover::Target::Cluster(_) => "SPUBLISH",
            _ => "PUBLISH",
        }
    }

    fn publish(&self, tag: &str) -> redis::Cmd {
        let mut cmd = redis::cmd(self.publish_command());
        cmd.arg(keys::appended(tag)).arg("");
        cmd
    }

    /// A connection for the store's other modules (the fleet's records).
    pub(crate) fn connection(&self) -> impl redis::aio::ConnectionLike + Send + Sync + use<> {
        self.conn.clone()
    }
}

impl Store for RedisStore {
    fn new_room_uuid(&self, name: &str) -> uuid::Uuid {
        self.shards.room_uuid(name)
    }

    async fn create_room(
        &self,
        room: &Room,
        events: &[DomainEvent],
    ) -> Result<Created, StoreError> {
        let tag = self.shards.room_tag(&room.app, &room.id);
        let name_key = keys::name(&tag, &super::unique_name(room));
        if !room.name.is_empty() && self.shards.of_name(&room.name) != self.shards.of_room(&room.id)
        {
            // Its name's claim would be in another slot than the room: not one atomic step.
            return Err(StoreError::Corrupt {
                key: name_key,
                reason: "a named room's id must come from Store::new_room_uuid".into(),
            });
        }
        let mut conn = self.conn();
        let _: () = conn
            .set(keys::room_app(&room.id), room.app.as_str())
            .await
            .map_err(unavailable)?;
        let key = keys::room(&tag, &room.id);
        let mut eval = redis::cmd("EVALSHA");
        // The room is its only declared key (see create_room.lua).
        eval.arg(self.create_room.get_hash())
            .arg(1)
            .arg(&key)
            .arg(room.id.as_str())
            .arg(room.seq)
            .arg(encode(room))
            .arg(room.created_at)
            // Empty: not published (`outbox_bells.rs`).
            .arg(match self.publishes(&tag) {
                true => self.publish_command(),
                false => "",
            })
            .arg(keys::rooms(&tag))
            .arg(&name_key)
            .arg(keys::outbox(&tag))
            .arg(keys::live_rooms(&tag));
        for event in Self::events_json(events) {
            eval.arg(event);
        }
        let (created, existing): (i64, String) = self
            .write_room(&key, &self.create_room, eval, room, |r: &(i64, String)| {
                r.0 == 1
            })
            .await?;
        if created == 0 {
            let id = RoomId::parse(&existing).map_err(|e| StoreError::Corrupt {
                key: name_key,
                reason: e.to_string(),
            })?;
            return Ok(Created::NameTaken(id));
        }
        if !events.is_empty() {
            self.rang([&room.app]);
        }
        let member = format!("{} {}", room.app, room.id);
        let _: () = conn
            .sadd(keys::node_rooms(&room.node), member)
            .await
            .map_err(unavailable)?;
        Ok(Created::Created)
    }

    async fn room(&self, app: &AppId, id: &RoomId) -> Result<Option<Room>, StoreError> {
        let key = self.room_key_of(app, id);
        match &self.rooms {
            Some(tracked) => self.tracked_room(tracked, &key).await,
            None => self.room_record(&key).await,
        }
    }

    async fn room_fresh(&self, app: &AppId, id: &RoomId) -> Result<Option<Room>, StoreError> {
        let key = self.room_key_of(app, id);
        self.room_record(&key).await
    }

    fn forget_cached(&self, app: &AppId, id: &RoomId) {
        if let Some(tracked) = &self.rooms {
            let key = self.room_key_of(app, id);
            tracked.entries().forget(&key);
        }
    }

    async fn room_app(&self, id: &RoomId) -> Result<Option<AppId>, StoreError> {
        let app: Option<String> = self
            .conn()
            .get(keys::room_app(id))
            .await
            .map_err(unavailable)?;
        Ok(app.and_then(|a| AppId::parse(&a).ok()))
    }

    async fn save_room(
        &self,
        old: &Room,
        new: &Room,
        events: &[DomainEvent],
    ) -> Result<Saved, StoreError> {
        let write = RoomWrite {
            old,
            new: Arc::new(new.clone()),
            events,
        };
        self.save_rooms(&[write])
            .await
            .pop()
            .unwrap_or_else(|| Err(StoreError::Unavailable("no answer".into())))
    }

    async fn change_rooms<'a, T, E, F>(
        &'a self,
        changes: Vec<RoomChange<'a, F>>,
    ) -> Vec<Modified<T, E>>
    where
        T: Send + 'a,
        E: Send + 'a,
        F: FnMut(&mut Room) -> Result<(T, Vec<DomainEvent>), E> + Send + 'a,
    {
        self.change_rooms_at_once(changes).await
    }

    async fn ref_owner(&self, id: uuid::Uuid) -> Result<Option<(AppId, RoomId)>, StoreError> {
        let owner: Option<String> = self
            .conn()
            .get(keys::reference(&id))
            .await
            .map_err(unavailable)?;
        Ok(owner.as_deref().and_then(parse_owner))
    }

    async fn schedule_timeout(
        &self,
        app: &AppId,
        id: &RoomId,
        at: Micros,
    ) -> Result<(), StoreError> {
        self.conn()
            .zadd::<_, _, _, ()>(keys::TIMEOUTS, format!("{app} {id}"), at)
            .await
            .map_err(unavailable)
    }

    async fn claim_timeouts(
        &self,
        now: Micros,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<(AppId, RoomId)>, StoreError> {
        let lease_end = now.saturating_add(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX));
        let due: Vec<String> = self
            .claim_timeouts
            .key(keys::TIMEOUTS)
            .arg(now)
            .arg(lease_end)
            .arg(limit)
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        Ok(due.iter().filter_map(|m| parse_owner(m)).collect())
    }

    async fn clear_timeout(&self, app: &AppId, id: &RoomId) -> Result<(), StoreError> {
        self.conn()
            .zrem::<_, _, ()>(keys::TIMEOUTS, format!("{app} {id}"))
            .await
            .map_err(unavailable)
    }

    async fn rooms_of_app(
        &self,
        app: &AppId,
        after: Option<(Micros, String)>,
        limit: usize,
    ) -> Result<Page<Room>, StoreError> {
        self.room_page(app, keys::rooms, after, limit).await
    }

    async fn live_rooms_of_app(
        &self,
        app: &AppId,
        after: Option<(Micros, String)>,
        limit: usize,
    ) -> Result<Page<Room>, StoreError> {
        self.live_page(app, after, limit).await
    }

    async fn media_rooms_of_app(
        &self,
        app: &AppId,
        after: Option<(Micros, String)>,
        limit: usize,
    ) -> Result<Page<Room>, StoreError> {
        self.media_page(app, after, limit).await
    }

    async fn index_media_rooms(&self, app: &AppId) -> Result<usize, StoreError> {
        self.index_media(app).await
    }

    async fn live_room_count(&self, app: &AppId) -> Result<usize, StoreError> {
        let mut total = 0;
        // One count per shard, each its own key (its own slot on a Cluster).
        for key in self.in_every_shard(app, keys::live_rooms) {
            let n: usize = self.conn().zcard(key).await.map_err(unavailable)?;
            total += n;
        }
        Ok(total)
    }

    async fn rooms_on_node(&self, node: &NodePrefix) -> Result<Vec<(AppId, RoomId)>, StoreError> {
        let members: Vec<String> = self
            .conn()
            .smembers(keys::node_rooms(node))
            .await
            .map_err(unavailable)?;
        let mut out: Vec<(AppId, RoomId)> = members
            .iter()
            .filter_map(|m| m.split_once(' '))
            .filter_map(|(a, r)| Some((AppId::parse(a).ok()?, RoomId::parse(r).ok()?)))
            .collect();
        out.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(out)
    }

    async fn set_draining(
        &self,
        node: &NodePrefix,
        drain: Option<&super::Drain>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        match drain {
            Some(d) => {
                let json = serde_json::to_string(d).map_err(|e| StoreError::Corrupt {
                    key: keys::DRAINING.into(),
                    reason: e.to_string(),
                })?;
                conn.hset::<_, _, _, ()>(keys::DRAINING, node.as_str(), json)
                    .await
                    .map_err(unavailable)
            }
            None => conn
                .hdel::<_, _, ()>(keys::DRAINING, node.as_str())
                .await
                .map_err(unavailable),
        }
    }

    async fn draining(
        &self,
    ) -> Result<std::collections::BTreeMap<NodePrefix, super::Drain>, StoreError> {
        let all: std::collections::HashMap<String, String> = self
            .conn()
            .hgetall(keys::DRAINING)
            .await
            .map_err(unavailable)?;
        Ok(all
            .into_iter()
            .filter_map(|(node, json)| {
                Some((
                    NodePrefix::parse(&node).ok()?,
                    serde_json::from_str(&json).ok()?,
                ))
            })
            .collect())
    }

    async fn set_upload_pending(
        &self,
        app: &AppId,
        room: &RoomId,
        recording: uuid::Uuid,
        pending: bool,
    ) -> Result<(), StoreError> {
        let member = format!("{app} {room} {recording}");
        let mut conn = self.conn();
        let done: redis::RedisResult<i64> = match pending {
            true => conn.sadd(keys::UPLOADS, member).await,
            false => conn.srem(keys::UPLOADS, member).await,
        };
        done.map(drop).map_err(unavailable)
    }

    async fn uploads_pending(&self) -> Result<Vec<(AppId, RoomId, uuid::Uuid)>, StoreError> {
        let members: Vec<String> = self
            .conn()
            .smembers(keys::UPLOADS)
            .await
            .map_err(unavailable)?;
        Ok(members.iter().filter_map(|m| recording_member(m)).collect())
    }

    async fn expire_recording_at(
        &self,
        app: &AppId,
        room: &RoomId,
        recording: uuid::Uuid,
        at: Micros,
    ) -> Result<(), StoreError> {
        let member = format!("{app} {room} {recording}");
        let _: i64 = self
            .conn()
            .zadd(keys::RECORDING_EXPIRY, member, at)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn claim_expired_recordings(
        &self,
        now: Micros,
        limit: usize,
    ) -> Result<Vec<(AppId, RoomId, uuid::Uuid)>, StoreError> {
        let due: Vec<String> = self
            .conn()
            .zrangebyscore_limit(keys::RECORDING_EXPIRY, "-inf", now, 0, limit as isize)
            .await
            .map_err(unavailable)?;
        let mut claimed = Vec::new();
        for member in due {
            // The instance whose ZREM takes it off does it.
            let taken: i64 = self
                .conn()
                .zrem(keys::RECORDING_EXPIRY, &member)
                .await
                .map_err(unavailable)?;
            if let (1, Some(entry)) = (taken, recording_member(&member)) {
                claimed.push(entry);
            }
        }
        Ok(claimed)
    }

    async fn list_on_node(
        &self,
        node: &NodePrefix,
        app: &AppId,
        room: &RoomId,
        listed: bool,
    ) -> Result<(), StoreError> {
        let (key, member) = (keys::node_rooms(node), format!("{app} {room}"));
        let mut conn = self.conn();
        let done: redis::RedisResult<i64> = match listed {
            true => conn.sadd(key, member).await,
            false => conn.srem(key, member).await,
        };
        done.map(drop).map_err(unavailable)
    }

    async fn node_room_count(&self, node: &NodePrefix) -> Result<usize, StoreError> {
        self.conn()
            .scard(keys::node_rooms(node))
            .await
            .map_err(unavailable)
    }

    async fn session(&self, app: &AppId, id: &SessionId) -> Result<Option<Session>, StoreError> {
        self.get_session(app, id).await
    }

    async fn session_app(&self, id: &SessionId) -> Result<Option<AppId>, StoreError> {
        self.get_session_app(id).await
    }

    async fn save_session(&self, session: &Session) -> Result<(), StoreError> {
        self.put_session(session).await
    }

    async fn sessions_of_app(
        &self,
        app: &AppId,
        after: Option<(Micros, String)>,
        limit: usize,
    ) -> Result<Page<Session>, StoreError> {
        self.page_sessions(app, after, limit).await
    }

    async fn sessions_on_node(&self, node: &NodePrefix) -> Result<Vec<Session>, StoreError> {
        self.node_sessions(node).await
    }

    async fn room_of_session(
        &self,
        app: &AppId,
        id: &SessionId,
    ) -> Result<Option<RoomId>, StoreError> {
        self.session_room_lookup(app, id).await
    }

    async fn take_cooldown(
        &self,
        app: &AppId,
        key: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let reply: Value = redis::cmd("SET")
            .arg(keys::cooldown(&self.shards.key_tag(app, key), key))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        Ok(!matches!(reply, Value::Nil))
    }

    async fn cooldown_left(&self, app: &AppId, key: &str) -> Result<Option<Duration>, StoreError> {
        let millis: i64 = redis::cmd("PTTL")
            .arg(keys::cooldown(&self.shards.key_tag(app, key), key))
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        // -2: no such key; -1: no expiry (never written so by us).
        Ok((millis > 0).then(|| Duration::from_millis(millis as u64)))
    }

    async fn recall(&self, app: &AppId, key: &str) -> Result<Option<String>, StoreError> {
        self.conn()
            .get(keys::command(&self.shards.key_tag(app, key), key))
            .await
            .map_err(unavailable)
    }

    async fn remember(
        &self,
        app: &AppId,
        key: &str,
        answer: &str,
        ttl: Duration,
    ) -> Result<Option<String>, StoreError> {
        let mut call = self.remember.prepare_invoke();
        call.key(keys::command(&self.shards.key_tag(app, key), key))
            .arg(answer)
            .arg(ttl.as_secs().max(1));
        call.invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)
    }

    async fn settle(
        &self,
        app: &AppId,
        key: &str,
        answer: Option<&str>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let key = keys::command(&self.shards.key_tag(app, key), key);
        let mut conn = self.conn();
        match answer {
            Some(answer) => conn.set_ex(key, answer, ttl.as_secs().max(1)).await,
            None => conn.del(key).await,
        }
        .map_err(unavailable)
    }

    async fn outbox(
        &self,
        app: &AppId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        self.read_outbox(app, after, limit).await
    }

    async fn trim_outbox(&self, app: &AppId, before: &str) -> Result<(), StoreError> {
        self.trim_outboxes(app, before).await
    }

    async fn sweep_ended_rooms(&self, app: &AppId) -> Result<usize, StoreError> {
        self.sweep_ended(app).await
    }

    async fn index_live_rooms(&self, node: &NodePrefix) -> Result<usize, StoreError> {
        self.index_live(node).await
    }

    async fn append_outbox(&self, app: &AppId, events: &[DomainEvent]) -> Result<(), StoreError> {
        self.append_outboxes(app, events).await
    }

    async fn replicated(&self) -> Result<bool, StoreError> {
        match &self.replication {
            Some(r) => r.confirm().await.map_err(unavailable),
            None => Ok(true),
        }
    }

    fn failovers(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.target.is_sentinel().then(|| self.conn.moves())
    }

    fn keep_rooms_of(&self, keeps: crate::store::KeepsRooms) {
        let _ = self.keeps.set(keeps);
    }

    fn on_rooms_changed(&self, changed: crate::store::RoomsChanged) {
        if let Some(tracked) = &self.rooms {
            tracked.entries().on_changed(Arc::new(move |key, node| {
                if let Some(id) = keys::room_id_of(key).and_then(|id| RoomId::parse(id).ok()) {
                    match node {
                        Some(node) => changed(&id, node),
                        None => changed(&id, &id.prefix()),
                    }
                }
            }));
        }
    }

    fn outbox_watch(&self, app: &AppId) -> OutboxWatch {
        self.listening.get_or_init(|| {
            let stop = tokio_util::sync::CancellationToken::new();
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => match self.bells_tracked() {
                    Some(tracked) => self.follow_tracking(&runtime, tracked, stop.clone()),
                    None => {
                        runtime.spawn(appended::listen(
                            self.target.clone(),
                            self.switches.subscribe(),
                            self.shards.count(),
                            self.bells.clone(),
                            stop.clone(),
                        ));
                    }
                },
                // No runtime to run the subscriber: the bells stay down and readers poll.
                Err(_) => tracing::warn!("no async runtime: outbox readers poll"),
            }
            stop.drop_guard()
        });
        self.bells.watch(app)
    }
}

/// A recording listed as `"<app> <room> <recording>"` (the upload list, the expiry schedule).
fn recording_member(member: &str) -> Option<(AppId, RoomId, uuid::Uuid)> {
    let mut parts = member.split(' ');
    Some((
        AppId::parse(parts.next()?).ok()?,
        RoomId::parse(parts.next()?).ok()?,
        uuid::Uuid::parse_str(parts.next()?).ok()?,
    ))
}
