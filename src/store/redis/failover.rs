//! Where the store's Redis is, and its shared connection: one server (`redis://`), a Sentinel
//! set, or a Redis Cluster.
//!
//! Redis Cluster (issue 19): `redis+cluster://<host:port>[,<host:port>…]` names some of the
//! cluster's nodes (the rest are found from them); the store then talks to it with redis-rs's
//! cluster client, which routes each command to the master of its key's slot and follows slot
//! moves and failovers. Every script and transaction touches one app's keys, which share the
//! app's hash tag and so one slot (see `keys.rs`); a plain pipeline that mixes slots (a room
//! write with its global lookups) is sent as one request per command, in order.
//!
//! Redis Sentinel (issue 19): `redis_url` may name a Sentinel set and a master name,
//! `redis+sentinel://<host:port>[,<host:port>…]/<master name>[/<db>]`. The store then asks the
//! sentinels where the master is, connects there, and follows a failover: when a command fails
//! for want of a master (the connection refused or broken, a timeout, or a `READONLY` answer
//! from a demoted master), the sentinels are asked again and, once they name another master, the
//! store's connection moves to it. The failed command is answered with an error (the API's 503),
//! so a failover costs a short window of 503s and no restart.
//!
//! Replication is asynchronous: what the old master acknowledged but had not yet passed to the
//! replica is lost with it. The controller's own repair covers most of that: every node's
//! supervisor resyncs the room and session state from FreeSWITCH on its next audit (the rooms'
//! membership, mutes, recordings), and a webhook whose outbox entry was lost is not sent (the
//! outbox is the store's); a room created in the lost window is gone (its create answered 201)
//! — see docs/operations.md.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

use super::sentinel_master::{self, Newest};

/// Where the store's Redis is.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A plain `redis://` (or `rediss://`) URL.
    Plain(String),
    /// Sentinels (as `redis://host:port/` URLs), the master's name, the database, and the
    /// newest master they have named to this process (`sentinel_master.rs`).
    Sentinel {
        sentinels: Vec<String>,
        master: String,
        db: i64,
        newest: Arc<Newest>,
    },
    /// Some nodes of a Redis Cluster (as `redis://host:port/` URLs).
    Cluster(Vec<String>),
}

impl Target {
    pub(crate) fn parse(url: &str) -> RedisResult<Target> {
        if let Some(rest) = url.strip_prefix("redis+cluster://") {
            let nodes: Vec<String> = rest
                .trim_end_matches('/')
                .split(',')
                .filter(|h| !h.is_empty())
                .map(|h| format!("redis://{h}/"))
                .collect();
            if nodes.is_empty() || rest.trim_end_matches('/').contains('/') {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "expected redis+cluster://<host:port>[,<host:port>…]",
                )));
            }
            return Ok(Target::Cluster(nodes));
        }
        let Some(rest) = url.strip_prefix("redis+sentinel://") else {
            return Ok(Target::Plain(url.to_owned()));
        };
        let invalid = || {
            redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "expected redis+sentinel://<host:port>[,<host:port>…]/<master name>[/<db>]",
            ))
        };
        let (hosts, path) = rest.split_once('/').ok_or_else(invalid)?;
        let mut path = path.trim_end_matches('/').split('/');
        let master = path.next().filter(|m| !m.is_empty()).ok_or_else(invalid)?;
        let db = match path.next() {
            Some(db) => db.parse().map_err(|_| invalid())?,
            None => 0,
        };
        let sentinels: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| format!("redis://{h}/"))
            .collect();
        if sentinels.is_empty() {
            return Err(invalid());
        }
        Ok(Target::Sentinel {
            sentinels,
            master: master.to_owned(),
            db,
            newest: Arc::default(),
        })
    }

    pub(crate) fn is_sentinel(&self) -> bool {
        matches!(self, Target::Sentinel { .. })
    }

    /// A client of the master: the URL's, or the one the sentinels' newest configuration
    /// names (`sentinel_master.rs`: never one older than a master this process was told of);
    /// in a cluster, the first node named (the cluster's own clients, not this, reach its
    /// masters).
    pub(crate) async fn master(&self) -> RedisResult<redis::Client> {
        match self {
            Target::Plain(url) => redis::Client::open(url.as_str()),
            Target::Cluster(nodes) => redis::Client::open(nodes[0].as_str()),
            Target::Sentinel {
                sentinels,
                master,
                db,
                newest,
            } => {
                let named = sentinel_master::ask(sentinels, master, newest).await?;
                redis::Client::open(format!("redis://{}/{db}", named.address()))
            }
        }
    }
}

fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(2))
        .set_response_timeout(Duration::from_secs(2))
        .set_number_of_retries(2)
        .set_max_delay(500)
}

/// The store's shared connection: a [`ConnectionManager`] (reconnecting in the background) to
/// the master, moved to another master after a failover; or a cluster connection.
#[derive(Clone)]
pub(crate) struct Conn {
    target: Arc<Target>,
    current: Arc<RwLock<Current>>,
    following: Arc<tokio::sync::Mutex<()>>,
    cluster: Option<ClusterConnection>,
    /// Counts the moves to another master (each may have left writes behind on the old one);
    /// the store's count of switches, so it grows before the first command goes to the new one.
    moved: Arc<tokio::sync::watch::Sender<u64>>,
}

struct Current {
    /// Bumped at each move, so concurrent failures move it once.
    generation: u64,
    address: String,
    manager: ConnectionManager,
}

impl Conn {
    /// Connects to the master; `moved` counts the connection's moves to another master (the
    /// store's count of switches: the room cache forgets what it kept when it grows).
    pub(crate) async fn connect(
        target: Arc<Target>,
        moved: Arc<tokio::sync::watch::Sender<u64>>,
    ) -> RedisResult<Conn> {
        let cluster = match &*target {
            Target::Cluster(nodes) => Some(
                ClusterClientBuilder::new(nodes.clone())
                    .connection_timeout(Duration::from_secs(2))
                    .response_timeout(Duration::from_secs(2))
                    .retries(3)
                    .build()?
                    .get_async_connection()
                    .await?,
            ),
            _ => None,
        };
        // On a cluster the commands go through the cluster connection; the manager is to the
        // first node named that answers (any node may be down when the store starts).
        let candidates = match &*target {
            Target::Cluster(nodes) => nodes
                .iter()
                .map(|n| redis::Client::open(n.as_str()))
                .collect::<RedisResult<Vec<_>>>()?,
            _ => vec![target.master().await?],
        };
        let mut last = None;
        let mut connected = None;
        for client in candidates {
            match client
                .get_connection_manager_with_config(manager_config())
                .await
            {
                Ok(manager) => {
                    connected = Some((client.get_connection_info().addr.to_string(), manager));
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some((address, manager)) = connected else {
            return Err(last.unwrap_or_else(|| {
                redis::RedisError::from((redis::ErrorKind::IoError, "no Redis node to connect to"))
            }));
        };
        Ok(Conn {
            target,
            current: Arc::new(RwLock::new(Current {
                generation: 0,
                address,
                manager,
            })),
            following: Arc::default(),
            cluster,
            moved,
        })
    }

    fn now(&self) -> (u64, ConnectionManager) {
        let c = self.current.read().unwrap_or_else(|p| p.into_inner());
        (c.generation, c.manager.clone())
    }

    /// The sentinels announced a new master: moves there now (before any command fails);
    /// whether it moved.
    pub(crate) async fn follow_now(&self) -> bool {
        let generation = self.now().0;
        self.follow(generation).await;
        self.now().0 != generation
    }

    /// Counts the shared connection's moves to another master: it changes before the first
    /// command goes to the new one.
    pub(crate) fn moves(&self) -> tokio::sync::watch::Receiver<u64> {
        self.moved.subscribe()
    }

    /// How many times the shared connection has moved to another master.
    pub(crate) fn moves_now(&self) -> u64 {
        *self.moved.borrow()
    }

    /// The address of the master the shared connection is on (a Sentinel set's; one Redis's).
    pub(crate) fn master_address(&self) -> String {
        let c = self.current.read().unwrap_or_else(|p| p.into_inner());
        c.address.clone()
    }

    /// After a failure that `generation`'s connection saw: asks the sentinels where the master
    /// is, and moves there if it is somewhere else.
    async fn follow(&self, generation: u64) {
        let _one_at_a_time = self.following.lock().await;
        if self.now().0 != generation {
            return;
        }
        let client = match self.target.master().await {
            Ok(client) => client,
            Err(e) => {
                tracing::warn!(error = %e, "Redis Sentinel: no master named yet");
                return;
            }
        };
        let address = client.get_connection_info().addr.to_string();
        let same = {
            let c = self.current.read().unwrap_or_else(|p| p.into_inner());
            c.address == address
        };
        if same {
            return;
        }
        match client
            .get_connection_manager_with_config(manager_config())
            .await
        {
            Ok(manager) => {
                tracing::warn!(master = %address, "Redis Sentinel: failed over to a new master");
                let mut c = self.current.write().unwrap_or_else(|p| p.into_inner());
                self.moved.send_modify(|n| *n += 1);
                c.generation += 1;
                c.address = address;
                c.manager = manager;
            }
            Err(e) => {
                tracing::warn!(master = %address, error = %e, "Redis Sentinel: the new master cannot be reached yet")
            }
        }
    }

    /// Whether `e` says the connection no longer reaches a master.
    fn lost_master(&self, e: &redis::RedisError) -> bool {
        self.target.is_sentinel()
            && (e.is_io_error()
                || e.is_connection_refusal()
                || e.is_connection_dropped()
                || e.is_timeout()
                || e.code() == Some("READONLY")
                || e.kind() == redis::ErrorKind::ReadOnly)
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            if let Some(cluster) = &mut self.cluster {
                return cluster.req_packed_command(cmd).await;
            }
            let (generation, mut manager) = self.now();
            let result = manager.req_packed_command(cmd).await;
            if let Err(e) = &result
                && self.lost_master(e)
            {
                self.follow(generation).await;
            }
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            if let Some(cluster) = &mut self.cluster {
                return super::cluster::pipeline(cluster, cmd, offset, count).await;
            }
            let (generation, mut manager) = self.now();
            let result = manager.req_packed_commands(cmd, offset, count).await;
            if let Err(e) = &result
                && self.lost_master(e)
            {
                self.follow(generation).await;
            }
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.now().1.get_db()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls_name_the_sentinels_the_master_and_the_database() {
        match Target::parse("redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/main/2").unwrap() {
            Target::Sentinel {
                sentinels,
                master,
                db,
                ..
            } => {
                assert_eq!(
                    sentinels,
                    ["redis://10.0.0.1:26379/", "redis://10.0.0.2:26379/"]
                );
                assert_eq!(master, "main");
                assert_eq!(db, 2);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Target::parse("redis://127.0.0.1:6379/").unwrap(),
            Target::Plain(_)
        ));
        assert!(Target::parse("redis+sentinel://10.0.0.1:26379/").is_err());
        match Target::parse("redis+cluster://10.0.0.1:7000,10.0.0.2:7000/").unwrap() {
            Target::Cluster(nodes) => {
                assert_eq!(nodes, ["redis://10.0.0.1:7000/", "redis://10.0.0.2:7000/"])
            }
            other => panic!("{other:?}"),
        }
        assert!(Target::parse("redis+cluster://").is_err());
        assert!(Target::parse("redis+cluster://10.0.0.1:7000/2").is_err());
        assert!(Target::parse("redis+sentinel:///main").is_err());
    }
}
