//! The tracked connections: one to a single Redis, one to the master a Sentinel set names now,
//! or one per master of a Redis Cluster ([`super::masters`]), each connected on first use and
//! again after it is lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionInfo, ProtocolVersion, PushInfo};
use tokio::sync::watch;

use super::masters::Masters;
use super::{Access, Entries};
use crate::store::conn_slot::ConnSlot;

/// One server's tracked connection.
pub(super) struct Link {
    info: ConnectionInfo,
    client: redis::Client,
    /// The connection while there is one (every room read and write takes a clone of it).
    conn: ConnSlot<MultiplexedConnection>,
    /// Refuse a server that is not a master (`ROLE`) when connecting.
    masters_only: bool,
}

impl Link {
    /// `info` of the server; the connection speaks RESP3 whatever it says.
    pub(super) fn new(mut info: ConnectionInfo) -> Result<Link, redis::RedisError> {
        info.redis.protocol = ProtocolVersion::RESP3;
        Ok(Link {
            client: redis::Client::open(info.clone())?,
            info,
            conn: ConnSlot::new(),
            masters_only: false,
        })
    }

    /// Connects only while the server is a master: a Sentinel set's old master can be named
    /// for a moment after it became a replica, and a replica lags its master (reads from it
    /// could be older than what was written). The connection fails instead; the master is
    /// asked for again.
    pub(super) fn masters_only(mut self) -> Link {
        self.masters_only = true;
        self
    }

    /// The connection, with tracking on; a new one forgets every entry (Redis tracks per
    /// connection, and nothing read before it may be trusted).
    pub(super) async fn conn(
        &self,
        entries: &Entries,
    ) -> Result<MultiplexedConnection, redis::RedisError> {
        // Boxed: the connecting future (redis-rs's handshake) would otherwise nest into every
        // room read's and write's, past what the compiler lays out (`room_apply` did not build).
        self.conn
            .get_or_connect(|_| true, || Box::pin(self.connect(entries)))
            .await
    }

    /// A new connection, tracking on; told to `entries`, which forget what they kept.
    async fn connect(&self, entries: &Entries) -> Result<MultiplexedConnection, redis::RedisError> {
        entries.clear();
        let pushed = entries.clone();
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(Duration::from_secs(2))
            .set_push_sender(move |push: PushInfo| {
                pushed.on_push(&push);
                Ok::<(), std::convert::Infallible>(())
            });
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        redis::cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .arg("OPTOUT")
            .arg("NOLOOP")
            .query_async::<()>(&mut conn)
            .await?;
        if self.masters_only {
            let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut conn).await?;
            if !matches!(role.first(), Some(redis::Value::BulkString(r)) if r == b"master") {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::ReadOnly,
                    "not a master (any more)",
                    self.info.addr.to_string(),
                )));
            }
        }
        // Told while the connection is being kept: a caller woken by it waits for it.
        entries.notify(super::Tracking::Connected);
        Ok(conn)
    }

    /// Where it connects.
    pub(super) fn info(&self) -> ConnectionInfo {
        self.info.clone()
    }

    /// Drops the connection (lost): the next use connects again.
    pub(super) fn drop_conn(&self) {
        self.conn.clear();
    }
}

/// Where the master is now (a Sentinel set's answer): asked when the tracked connection is
/// made, and again after it is lost.
pub type FindMaster = Arc<
    dyn Fn() -> std::pin::Pin<
            Box<dyn std::future::Future<Output = redis::RedisResult<ConnectionInfo>> + Send>,
        > + Send
        + Sync,
>;

enum Route {
    One(Arc<Link>),
    /// The master that `find` names; `None` until asked (and after the link was lost or the
    /// sentinels announced a switch: `switches` grew past `seen`).
    Following {
        find: FindMaster,
        link: std::sync::Mutex<Option<Arc<Link>>>,
        switches: Arc<watch::Sender<u64>>,
        seen: AtomicU64,
    },
    Cluster(Masters),
}

/// The room cache's connections and entries.
pub struct Tracked {
    entries: Entries,
    route: Route,
}

impl Tracked {
    /// `url` is the store's Redis URL.
    pub fn new(url: &str, capacity: usize) -> Result<Tracked, redis::RedisError> {
        let info = redis::Client::open(url)?.get_connection_info().clone();
        Ok(Tracked {
            entries: Entries::new(capacity),
            route: Route::One(Arc::new(Link::new(info)?)),
        })
    }

    /// One tracked connection to the master `find` names (a Sentinel set's), followed through
    /// failovers: a lost connection, or an answer that the server is no longer a master
    /// (`READONLY`), has the master asked for again, and nothing kept is trusted. A server the
    /// sentinels still name but that is a replica now is not used (see [`Link::masters_only`]).
    pub fn following(
        find: FindMaster,
        switches: Arc<watch::Sender<u64>>,
        capacity: usize,
    ) -> Tracked {
        let seen = AtomicU64::new(*switches.borrow());
        Tracked {
            entries: Entries::new(capacity),
            route: Route::Following {
                find,
                link: std::sync::Mutex::new(None),
                seen,
                switches,
            },
        }
    }

    /// Following a Sentinel set that announced a new master since the last look: the link is
    /// dropped (the next command asks where the master is) and nothing kept is trusted.
    fn switched(&self) {
        if let Route::Following {
            link,
            switches,
            seen,
            ..
        } = &self.route
        {
            let now = *switches.borrow();
            if seen.swap(now, Ordering::SeqCst) != now {
                link.lock().unwrap_or_else(|p| p.into_inner()).take();
                self.entries.lost();
            }
        }
    }

    /// One tracked connection per master of the cluster some of whose nodes `nodes` name
    /// (`redis://host:port/` URLs).
    pub fn cluster(nodes: &[String], capacity: usize) -> Result<Tracked, redis::RedisError> {
        Ok(Tracked {
            entries: Entries::new(capacity),
            route: Route::Cluster(Masters::new(nodes)?),
        })
    }

    /// Whether its connections are a cluster's (one per master).
    pub fn is_cluster(&self) -> bool {
        matches!(self.route, Route::Cluster(_))
    }

    pub fn entries(&self) -> &Entries {
        self.switched();
        &self.entries
    }

    /// Connects (to every master of a cluster), with tracking on: whether this Redis can track.
    pub async fn check(&self) -> Result<(), redis::RedisError> {
        match &self.route {
            Route::One(_) | Route::Following { .. } => {
                self.link("").await?.conn(&self.entries).await.map(drop)
            }
            Route::Cluster(masters) => masters.connect_all(&self.entries).await,
        }
    }

    /// The keys in groups that each go to one server, as positions in `keys` (in order).
    pub async fn by_server(&self, keys: &[&str]) -> Result<Vec<Vec<usize>>, redis::RedisError> {
        match &self.route {
            Route::One(_) | Route::Following { .. } => Ok(vec![(0..keys.len()).collect()]),
            Route::Cluster(masters) => masters.group(keys).await,
        }
    }

    /// The link that serves `key`.
    async fn link(&self, key: &str) -> Result<Arc<Link>, redis::RedisError> {
        match &self.route {
            Route::One(link) => Ok(link.clone()),
            Route::Following { find, link, .. } => {
                self.switched();
                if let Some(link) = link.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                    return Ok(link.clone());
                }
                // Two callers may both ask: the last answer stays (both name the master).
                let found = Arc::new(Link::new(find().await?)?.masters_only());
                *link.lock().unwrap_or_else(|p| p.into_inner()) = Some(found.clone());
                Ok(found)
            }
            Route::Cluster(masters) => masters.link(key).await,
        }
    }

    /// The link that serves `key` and its connection, tracking on. A master that cannot be
    /// reached (killed, failed over) is handled as [`Tracked::failed`] says: on a cluster the
    /// slot map is asked again before the next command.
    async fn connected(
        &self,
        key: &str,
    ) -> Result<(Arc<Link>, MultiplexedConnection), redis::RedisError> {
        let link = self.link(key).await?;
        match link.conn(&self.entries).await {
            Ok(conn) => Ok((link, conn)),
            Err(e) => {
                self.failed(&link, &e).await;
                Err(e)
            }
        }
    }

    /// Sends one command about `key` on its tracked connection; its answer comes with the token
    /// [`Entries::fill`] needs. A failure forgets the key (a lost connection, everything).
    pub async fn call<T, F, Fut>(
        &self,
        key: &str,
        access: Access,
        send: F,
    ) -> Result<(T, u64), redis::RedisError>
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let (answer, tokens) = self.call_many(&[key], access, send).await?;
        Ok((answer, tokens.first().copied().unwrap_or_default()))
    }

    /// [`Tracked::call`] for a pipeline about several keys, all served by one server (see
    /// [`Tracked::by_server`]): one token per key, in order. A cluster master that answers
    /// `MOVED` or `ASK` ran nothing: the slot map is asked again and the command sent once more
    /// to the master named now.
    pub async fn call_many<T, F, Fut>(
        &self,
        keys: &[&str],
        access: Access,
        send: F,
    ) -> Result<(T, Vec<u64>), redis::RedisError>
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let mut tries = 0;
        loop {
            tries += 1;
            let (link, conn) = self
                .connected(keys.first().copied().unwrap_or_default())
                .await?;
            // After connecting: a (re)connection forgets every entry, these marks included.
            let tokens = keys
                .iter()
                .map(|key| self.entries.begin(key, access))
                .collect();
            match send(conn).await {
                Ok(answer) => return Ok((answer, tokens)),
                Err(e) => {
                    for key in keys {
                        self.entries.forget(key);
                    }
                    self.failed(&link, &e).await;
                    if tries < 2 && self.is_cluster() && redirected(&e) {
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Small values (a session's record, its room lookup) read on the tracked connection: the
    /// ones kept from memory, the others in one pipeline, kept until Redis says they changed
    /// ([`super::values`]). Each read is a command that answers one string or nil. Not on a
    /// cluster, whose keys would go to different masters: the caller reads those directly.
    pub async fn values(
        &self,
        reads: &[(&str, redis::Cmd)],
    ) -> Result<Vec<Option<String>>, redis::RedisError> {
        let entries = self.entries();
        let mut out: Vec<Option<Option<String>>> =
            reads.iter().map(|(key, _)| entries.value(key)).collect();
        let missing: Vec<usize> = (0..reads.len()).filter(|&i| out[i].is_none()).collect();
        if let Some(&first) = missing.first() {
            let (link, mut conn) = self.connected(reads[first].0).await?;
            // After connecting: a (re)connection forgets every entry, these marks included.
            let tokens: Vec<u64> = missing
                .iter()
                .map(|&i| self.entries.begin_value(reads[i].0, Access::Read))
                .collect();
            let mut pipe = redis::pipe();
            for &i in &missing {
                pipe.add_command(reads[i].1.clone());
            }
            match pipe.query_async::<Vec<Option<String>>>(&mut conn).await {
                Ok(answers) => {
                    for ((&i, token), answer) in missing.iter().zip(tokens).zip(answers) {
                        self.entries.fill_value(reads[i].0, token, answer.clone());
                        out[i] = Some(answer);
                    }
                }
                Err(e) => {
                    self.entries
                        .forget_values(missing.iter().map(|&i| reads[i].0));
                    self.failed(&link, &e).await;
                    return Err(e);
                }
            }
        }
        Ok(out.into_iter().map(Option::flatten).collect())
    }

    /// Sends `send` on the connection of the server that serves `key`, leaving the cache alone
    /// (a script load).
    pub async fn on_server_of<T, F, Fut>(&self, key: &str, send: F) -> redis::RedisResult<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let link = self.link(key).await?;
        let sent = match link.conn(&self.entries).await {
            Ok(conn) => send(conn).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &sent {
            self.failed(&link, e).await;
        }
        sent
    }

    /// After a failed command: a lost connection is dropped (and the cache with it), so the
    /// next operation connects again; following a Sentinel set, the master is asked for again
    /// then (and after a `READONLY`); on a cluster, a lost master or a `MOVED` answer also has
    /// the slot map asked again.
    async fn failed(&self, link: &Link, error: &redis::RedisError) {
        let lost = error.is_unrecoverable_error()
            || error.is_connection_dropped()
            || error.is_io_error()
            || error.is_timeout()
            || error.is_connection_refusal();
        if lost {
            link.drop_conn();
            self.entries.lost();
        }
        // A Sentinel set's master that was demoted to a replica answers `READONLY`.
        if let Route::Following { link: current, .. } = &self.route
            && (lost || error.kind() == redis::ErrorKind::ReadOnly)
        {
            let mut current = current.lock().unwrap_or_else(|p| p.into_inner());
            if current.as_ref().is_some_and(|c| std::ptr::eq(&**c, link)) {
                *current = None;
            }
            self.entries.lost();
        }
        if let Route::Cluster(masters) = &self.route
            && (lost || redirected(error) || error.kind() == redis::ErrorKind::ClusterDown)
        {
            self.rerouted(masters);
        }
    }

    /// A server answered that a key is served elsewhere (`MOVED`/`ASK` inside a pipeline's
    /// replies): the slot map is asked again, and nothing kept is trusted.
    pub fn moved(&self) {
        if let Route::Cluster(masters) = &self.route {
            self.rerouted(masters);
        }
    }

    fn rerouted(&self, masters: &Masters) {
        masters.forget_slots();
        self.entries.clear();
    }
}

/// A cluster node's answer that the key is served elsewhere.
fn redirected(error: &redis::RedisError) -> bool {
    matches!(
        error.kind(),
        redis::ErrorKind::Moved | redis::ErrorKind::Ask
    )
}
