//! A Redis Sentinel set for one test: a master, a replica and three sentinels, all real
//! `redis-server` processes (the sentinels with `--sentinel`) on free ports, stopped by pid.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::api::eventually;
use super::redis_server::RedisServer;

pub const MASTER: &str = "switchyard";

/// A `redis-server --sentinel` watching `master_port`; killed when dropped.
pub struct SentinelProcess {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl SentinelProcess {
    pub fn start(master_port: u16) -> SentinelProcess {
        let port = super::ports::tcp();
        let dir =
            std::env::temp_dir().join(format!("switchyard-sentinel-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor {MASTER} 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds {MASTER} 1000\n\
                 sentinel failover-timeout {MASTER} 3000\n\
                 sentinel parallel-syncs {MASTER} 1\n",
                dir.display()
            ),
        )
        .unwrap();
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server --sentinel starts (apt-get install -y redis-server)");
        SentinelProcess { child, port, dir }
    }
}

impl SentinelProcess {
    /// Its process id (to pause it: a sentinel that stalls and then lags the others).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for SentinelProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One command on a fresh connection to `port` (the test's own view of Redis).
pub async fn redis_cmd(port: u16, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(&mut conn).await
}

/// The master's port as sentinel `port` names it.
pub async fn master_port(port: u16) -> Option<u16> {
    match redis_cmd(port, &["SENTINEL", "get-master-addr-by-name", MASTER]).await {
        Ok(redis::Value::Array(parts)) => match parts.get(1) {
            Some(redis::Value::BulkString(p)) => std::str::from_utf8(p).ok()?.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

/// A master, its replica and three sentinels watching it, each knowing the replica and the
/// other sentinels.
pub struct SentinelSet {
    pub master: RedisServer,
    pub replica: RedisServer,
    pub sentinels: Vec<SentinelProcess>,
}

impl SentinelSet {
    pub async fn start() -> SentinelSet {
        // A replica's first sync (and a returning one's) starts at once: Redis waits 5 s by
        // default for more replicas to share a diskless transfer.
        let now = ["--repl-diskless-sync-delay", "0"];
        let master = RedisServer::start_with(&now);
        let replica_of = master.port.to_string();
        let replica =
            RedisServer::start_with(&["--replicaof", "127.0.0.1", &replica_of, now[0], now[1]]);
        let sentinels: Vec<SentinelProcess> = (0..3)
            .map(|_| SentinelProcess::start(master.port))
            .collect();
        // The sentinels know the replica (and each other) before anything can fail over.
        eventually("the sentinels see the replica", || async {
            let mut all = true;
            for s in &sentinels {
                let replicas = redis_cmd(s.port, &["SENTINEL", "replicas", MASTER]).await;
                all &= matches!(replicas, Ok(redis::Value::Array(r)) if !r.is_empty());
                let peers = redis_cmd(s.port, &["SENTINEL", "sentinels", MASTER]).await;
                all &= matches!(peers, Ok(redis::Value::Array(p)) if p.len() == 2);
            }
            all
        })
        .await;
        eventually("the replica has synced with the master", || async {
            replicating(replica.port).await
        })
        .await;
        SentinelSet {
            master,
            replica,
            sentinels,
        }
    }

    /// The store's URL: every sentinel and the master's name.
    pub fn url(&self) -> String {
        format!(
            "redis+sentinel://{}/{MASTER}",
            self.sentinels
                .iter()
                .map(|s| format!("127.0.0.1:{}", s.port))
                .collect::<Vec<_>>()
                .join(",")
        )
    }

    /// Waits until the replica has everything the master has.
    pub async fn synced(&self) {
        let synced = redis_cmd(self.master.port, &["WAIT", "1", "5000"]).await;
        assert!(matches!(synced, Ok(redis::Value::Int(1))), "{synced:?}");
    }

    /// Waits until the sentinels name the replica as the master.
    pub async fn replica_promoted(&self) {
        let port = self.replica.port;
        eventually("the sentinels name the replica", || async {
            master_port(self.sentinels[0].port).await == Some(port)
        })
        .await;
    }
}

/// Whether the Redis on `port` is a replica whose link to its master is up.
pub async fn replicating(port: u16) -> bool {
    match redis_cmd(port, &["INFO", "replication"]).await {
        Ok(redis::Value::BulkString(b)) => {
            String::from_utf8_lossy(&b).contains("master_link_status:up")
        }
        _ => false,
    }
}
