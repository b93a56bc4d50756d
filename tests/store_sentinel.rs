//! Redis Sentinel (issue 19): a master, a replica and three sentinels, all real `redis-server`
//! processes started by the test (the sentinels with `--sentinel`) and stopped by pid. The lab's
//! controller uses `redis+sentinel://…/<master name>`; the master is killed (SIGKILL) under API
//! traffic; after a short window of 503s the same controller, without a restart, writes to the
//! promoted replica: rooms and members made before the failover are there, new rooms and joins
//! work, and no request ever fails otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::json;

use common::api::{A, TestLab, eventually, options};
use common::redis_server::RedisServer;
use switchyard::store::redis::RedisStore;

const MASTER: &str = "switchyard";

/// A `redis-server --sentinel` watching `master_port`; killed when dropped.
struct SentinelProcess {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl SentinelProcess {
    fn start(master_port: u16) -> SentinelProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
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

impl Drop for SentinelProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One command on a fresh connection to `port` (the test's own view of Redis).
async fn redis_cmd(port: u16, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(&mut conn).await
}

/// The master's port as sentinel `port` names it.
async fn master_port(port: u16) -> Option<u16> {
    match redis_cmd(port, &["SENTINEL", "get-master-addr-by-name", MASTER]).await {
        Ok(redis::Value::Array(parts)) => match parts.get(1) {
            Some(redis::Value::BulkString(p)) => std::str::from_utf8(p).ok()?.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_under_traffic_costs_a_window_of_503s_then_the_promoted_replica_serves() {
    let mut master = RedisServer::start();
    let replica_of = master.port.to_string();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &replica_of]);
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

    let url = format!(
        "redis+sentinel://{}/{MASTER}",
        sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect::<Vec<_>>()
            .join(",")
    );
    let store = RedisStore::connect(&url)
        .await
        .expect("connects through the sentinels");
    let t = TestLab::start(store, options()).await;
    let room = t.room(A, "before-the-failover").await;
    let r = t
        .post(
            "/lab/v1/calls",
            A,
            json!({ "did": "15551230000", "caller_id": "1001" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let session = r.body["uuid"].as_str().unwrap().to_owned();
    t.joined(A, &room, &session).await;
    // Everything so far is on the replica too (replication is asynchronous: what it has not
    // received when the master dies is lost, see README).
    let synced = redis_cmd(master.port, &["WAIT", "1", "5000"]).await;
    assert!(matches!(synced, Ok(redis::Value::Int(1))), "{synced:?}");

    master.kill();
    let killed = Instant::now();
    let mut statuses = Vec::new();
    let recovered = loop {
        let r = t
            .post(
                "/api/v1/conferences",
                A,
                json!({ "name": format!("during-{}", statuses.len()) }),
            )
            .await;
        statuses.push(r.status.as_u16());
        if r.status == StatusCode::CREATED {
            break killed.elapsed();
        }
        assert_eq!(
            r.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "while Redis fails over the API answers 503: {r:?}"
        );
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "no new master after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let unavailable = statuses.iter().filter(|s| **s == 503).count();
    println!(
        "sentinel: writes work again {} ms after the master's SIGKILL ({unavailable} requests answered 503)",
        recovered.as_millis()
    );
    assert_eq!(master_port(sentinels[0].port).await, Some(replica.port));

    // What was there before is there; the controller goes on: a new call joins the old room.
    let r = t.get(&format!("/api/v1/conferences/{room}"), A).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert!(
        t.members(A, &room)
            .await
            .iter()
            .any(|m| m["uuid"] == session.as_str()),
        "the member joined before the failover is still listed"
    );
    let r = t
        .post(
            "/lab/v1/calls",
            A,
            json!({ "did": "15551230000", "caller_id": "1002" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let second = r.body["uuid"].as_str().unwrap().to_owned();
    t.joined(A, &room, &second).await;
    assert_eq!(t.members(A, &room).await.len(), 2);
}
