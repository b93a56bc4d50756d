//! Rooms read from Redis, kept in this process and invalidated by Redis itself
//! (server-assisted client-side caching, `CLIENT TRACKING ON OPTIN NOLOOP` on a RESP3
//! connection).
//!
//! Reads and writes of room records go through one tracked connection. Redis remembers the room
//! keys read by the commands that connection sends right after `CLIENT CACHING YES` (OPTIN:
//! [`Tracked::cached`]; the guarded writes of a batch do not ask, which spares Redis a tracking
//! table insert and removal per write) and pushes an `invalidate` message when anybody else
//! changes one (another controller, an expiry, a flush); the connection's reader hands each push
//! to [`Entries::invalidate`] synchronously, before any later reply, so a reply is never taken
//! for current after the push that outdated it. Our own writes (NOLOOP: Redis sends us no push
//! for them) store the room we wrote: a write that asks reads the room key once more after
//! writing, so Redis tracks it again.
//!
//! Races are settled with tokens: before a read or a write the key holds `Pending(token)`; a push
//! removes whatever the key holds; the answer is kept only if the key still holds that token.
//! A lost connection forgets everything (Redis forgot what we track), and the next operation
//! connects again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ProtocolVersion, PushInfo, PushKind, Value};

use crate::conference::Room;

/// How many rooms one controller keeps by default.
pub const DEFAULT_CAPACITY: usize = 16_384;

enum Slot {
    /// A read or write is in flight; its answer may be kept if the key still holds this token.
    Pending(u64),
    /// Tracked: Redis tells us when it changes. Shared, so a reader copies it after letting go
    /// of the lock.
    Ready(Arc<Room>),
    /// Written by this process without asking Redis to track it (a batch write): current unless
    /// another writer changed it since, which only a guarded write would notice. Good as the base
    /// of a guarded write (a stale base loses the race and is read again), never as an answer.
    Written(Arc<Room>),
}

#[derive(Default)]
struct State {
    slots: HashMap<String, Slot>,
    next_token: u64,
}

/// The cached rooms, shared by the store and the connection's push handler.
#[derive(Clone)]
pub struct Entries {
    state: Arc<Mutex<State>>,
    capacity: usize,
}

impl Entries {
    pub fn new(capacity: usize) -> Entries {
        Entries {
            state: Arc::default(),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The room, if this process holds its current version.
    pub fn get(&self, key: &str) -> Option<Room> {
        let room = match self.lock().slots.get(key) {
            Some(Slot::Ready(room)) => Arc::clone(room),
            _ => return None,
        };
        Some(Room::clone(&room))
    }

    /// The version of the room this process last read or wrote, to change and write back
    /// guarded by its `seq`.
    pub fn base(&self, key: &str) -> Option<Arc<Room>> {
        match self.lock().slots.get(key) {
            Some(Slot::Ready(room) | Slot::Written(room)) => Some(Arc::clone(room)),
            _ => None,
        }
    }

    /// Marks `key` as being read or written; returns the token that [`Entries::fill`] needs.
    pub fn begin(&self, key: &str) -> u64 {
        let mut state = self.lock();
        state.next_token += 1;
        let token = state.next_token;
        if state.slots.len() >= self.capacity && !state.slots.contains_key(key) {
            // Full: forget an eighth (whichever come first), not one at a time.
            let drop = (self.capacity / 8).max(1);
            let victims: Vec<String> = state.slots.keys().take(drop).cloned().collect();
            for victim in victims {
                state.slots.remove(&victim);
            }
        }
        state.slots.insert(key.to_owned(), Slot::Pending(token));
        token
    }

    /// Keeps `room` as the current version of `key` if nothing changed it since `begin`.
    pub fn fill(&self, key: &str, token: u64, room: Arc<Room>) {
        self.settle(key, token, Slot::Ready(room));
    }

    /// Keeps `room` as this process's write of `key`, which Redis does not track for us, if
    /// nothing changed it since `begin`.
    pub fn fill_written(&self, key: &str, token: u64, room: Arc<Room>) {
        self.settle(key, token, Slot::Written(room));
    }

    fn settle(&self, key: &str, token: u64, settled: Slot) {
        let mut state = self.lock();
        if let Some(slot) = state.slots.get_mut(key)
            && matches!(slot, Slot::Pending(t) if *t == token)
        {
            *slot = settled;
        }
    }

    /// Forgets `key` (its read or write failed, or it changed).
    pub fn forget(&self, key: &str) {
        self.lock().slots.remove(key);
    }

    /// Forgets everything (the connection was lost, or Redis was flushed).
    pub fn clear(&self) {
        self.lock().slots.clear();
    }

    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A push from the tracked connection.
    fn on_push(&self, push: &PushInfo) {
        match push.kind {
            PushKind::Invalidate => match push.data.first() {
                Some(Value::Array(keys)) => {
                    let mut state = self.lock();
                    for key in keys {
                        if let Value::BulkString(bytes) = key
                            && let Ok(key) = std::str::from_utf8(bytes)
                        {
                            state.slots.remove(key);
                        }
                    }
                }
                // A nil key list: the whole database was flushed.
                _ => self.clear(),
            },
            PushKind::Disconnection => self.clear(),
            _ => {}
        }
    }
}

/// The tracked connection, connected on first use and again after it is lost.
pub struct Tracked {
    client: redis::Client,
    entries: Entries,
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

/// Makes Redis track the keys the next command reads (the connection tracks in `OPTIN` mode).
pub fn caching_yes() -> redis::Cmd {
    let mut cmd = redis::cmd("CLIENT");
    cmd.arg("CACHING").arg("YES");
    cmd
}

impl Tracked {
    /// `url` is the store's Redis URL; the connection speaks RESP3 whatever the URL says.
    pub fn new(url: &str, capacity: usize) -> Result<Tracked, redis::RedisError> {
        let mut info = redis::Client::open(url)?.get_connection_info().clone();
        info.redis.protocol = ProtocolVersion::RESP3;
        Ok(Tracked {
            client: redis::Client::open(info)?,
            entries: Entries::new(capacity),
            conn: tokio::sync::Mutex::new(None),
        })
    }

    /// `command` after `CLIENT CACHING YES`, as one pipeline (nothing can come between them on
    /// the connection): under `OPTIN`, only the keys this command reads are tracked.
    pub fn cached(command: redis::Cmd) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        pipe.add_command(caching_yes())
            .ignore()
            .add_command(command);
        pipe
    }

    pub fn entries(&self) -> &Entries {
        &self.entries
    }

    /// The connection, with tracking on.
    pub async fn conn(&self) -> Result<MultiplexedConnection, redis::RedisError> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        // Nothing read before this connection may be trusted: Redis tracks per connection.
        self.entries.clear();
        let entries = self.entries.clone();
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(Duration::from_secs(2))
            .set_push_sender(move |push: PushInfo| {
                entries.on_push(&push);
                Ok::<(), std::convert::Infallible>(())
            });
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        redis::cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .arg("OPTIN")
            .arg("NOLOOP")
            .query_async::<()>(&mut conn)
            .await?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Sends one command about `key` on the tracked connection; its answer comes with the token
    /// [`Entries::fill`] needs. A failure forgets the key (a lost connection, everything).
    pub async fn call<T, F, Fut>(&self, key: &str, send: F) -> Result<(T, u64), redis::RedisError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let (answer, tokens) = self.call_many(&[key], send).await?;
        Ok((answer, tokens.first().copied().unwrap_or_default()))
    }

    /// [`Tracked::call`] for a pipeline about several keys: one token per key, in order.
    pub async fn call_many<T, F, Fut>(
        &self,
        keys: &[&str],
        send: F,
    ) -> Result<(T, Vec<u64>), redis::RedisError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.conn().await?;
        // After connecting: a (re)connection forgets every entry, these marks included.
        let tokens = keys.iter().map(|key| self.entries.begin(key)).collect();
        match send(conn).await {
            Ok(answer) => Ok((answer, tokens)),
            Err(e) => {
                for key in keys {
                    self.entries.forget(key);
                }
                self.failed(&e).await;
                Err(e)
            }
        }
    }

    /// After a failed command: a lost connection is dropped (and the cache with it), so the
    /// next operation connects again.
    async fn failed(&self, error: &redis::RedisError) {
        if error.is_unrecoverable_error()
            || error.is_connection_dropped()
            || error.is_io_error()
            || error.is_timeout()
        {
            *self.conn.lock().await = None;
            self.entries.clear();
        }
    }
}
