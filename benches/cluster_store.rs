//! One app's room writes on a three-master Redis Cluster against one Redis (issue 19).
//!
//! The store is driven directly, as the node reconciler drives it: batches of 16 rooms changed at
//! once (`modify_rooms`: each room's guarded save script, with its outbox event), from 24 tasks
//! over 768 rooms of ONE app, for 10 s per phase, in the same run:
//! 1. one `redis-server`, one shard (the single-Redis layout), with its room cache (the default:
//!    a change needs no read of the room) and without;
//! 2. a three-master cluster with the app over one shard (every room in one slot: the layout
//!    before shards, for contrast);
//! 3. the same cluster with the app over three shards (one per master);
//! 4. each master of such a cluster with the cores to itself, measured one at a time
//!    ([`masters_alone`]): what the cluster gives with a core per master, on a machine that has
//!    fewer cores than phase 3 needs.
//!
//! Per phase: room writes per second; the CPU time each Redis process used (`/proc/<pid>/stat`);
//! and the time each spent running commands (`INFO commandstats`, the sum of `usec`). A Redis
//! master runs commands on one core, so the busiest one bounds the app's write rate once each
//! master has a core of its own; the capacity is writes per second of the busiest master's
//! time, by both measures (goal: three masters ≥ ×2.5 one Redis). The raw rate on this
//! machine is bounded by its cores, which the bench and all the Redis processes share.
//!
//! `cargo bench --bench cluster_store` (needs redis-server and redis-cli). Without `--bench` (as
//! `cargo test --benches` runs it) it does nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/ports.rs"]
mod ports;
#[allow(dead_code)]
#[path = "../tests/common/redis_cluster.rs"]
mod redis_cluster;
#[allow(dead_code)]
#[path = "../tests/common/redis_server.rs"]
mod redis_server;
#[allow(dead_code)]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use redis_cluster::RedisCluster;
use redis_server::RedisServer;
use support::cpu_secs;
use switchyard::conference::{
    AppId, DomainEvent, EventKind, NodePrefix, Room, RoomId, RoomStatus, RoomType,
};
use switchyard::store::redis::RedisStore;
use switchyard::store::{RoomChange, Store, modify_rooms};

const ROOMS: usize = 768;
const TASKS: usize = 24;
const BATCH: usize = 16;
const WINDOW: Duration = Duration::from_secs(10);

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}

fn app() -> AppId {
    AppId::parse("bench-app").unwrap()
}

struct Phase {
    name: &'static str,
    writes_per_sec: f64,
    /// CPU seconds of each Redis process over the window.
    cpu_per_process: Vec<f64>,
    /// Seconds each Redis process spent running commands over the window.
    commands_per_process: Vec<f64>,
}

impl Phase {
    /// Writes per second of the busiest process's `spent` seconds.
    fn capacity(&self, spent: &[f64]) -> f64 {
        let busiest = spent.iter().cloned().fold(0.0, f64::max);
        self.writes_per_sec * WINDOW.as_secs_f64() / busiest.max(1e-9)
    }

    fn cpu_capacity(&self) -> f64 {
        self.capacity(&self.cpu_per_process)
    }

    fn command_capacity(&self) -> f64 {
        self.capacity(&self.commands_per_process)
    }
}

/// Seconds a Redis server has spent running commands (`INFO commandstats`, every `usec`; a
/// script's own commands count inside the script and again by name — alike in every phase, as
/// every write is the same script).
async fn command_secs(url: &str) -> f64 {
    let client = ::redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = ::redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    info.lines()
        .filter_map(|l| l.split("usec=").nth(1))
        .filter_map(|rest| rest.split(',').next()?.parse::<f64>().ok())
        .sum::<f64>()
        / 1e6
}

/// `count` rooms of the size a live room has (members' state in its JSON, ~2 KB).
async fn rooms(store: &RedisStore, count: usize) -> Vec<RoomId> {
    let node = NodePrefix::parse("bench").unwrap();
    let mut ids = Vec::new();
    for i in 0..count {
        let name = format!("room-{i}");
        let id = RoomId::new(&node, store.new_room_uuid(&name));
        let mut room = Room::new(
            id.clone(),
            app(),
            name,
            RoomType::Conference,
            uuid::Uuid::new_v4().to_string(),
            i as i64,
        );
        room.status = RoomStatus::Progressing;
        room.data = serde_json::json!({
            "members": (0..8).map(|m| serde_json::json!({
                "id": m, "muted": false, "talking": false,
                "caller": format!("+1555123{m:04}"), "joined_at": "2026-11-24T20:00:00Z",
            })).collect::<Vec<_>>()
        });
        store.create_room(&room, &[]).await.unwrap();
        ids.push(id);
    }
    ids
}

async fn phase(name: &'static str, store: RedisStore, nodes: Vec<(u32, String)>) -> Phase {
    let ids = rooms(&store, ROOMS).await;
    phase_over(name, Arc::new(store), ids, &nodes).await
}

/// [`phase`] over the rooms `ids` (already made).
async fn phase_over(
    name: &'static str,
    store: Arc<RedisStore>,
    ids: Vec<RoomId>,
    nodes: &[(u32, String)],
) -> Phase {
    let ids = Arc::new(ids);
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (store, ids, stop, writes) = (store.clone(), ids.clone(), stop.clone(), writes.clone());
        tasks.push(async move {
            let app = app();
            // Each task its own rooms: no two writers race for one room.
            let mine: Vec<RoomId> = ids.iter().skip(t).step_by(TASKS).cloned().collect();
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let batch: Vec<&RoomId> = (0..BATCH).map(|i| &mine[(n + i) % mine.len()]).collect();
                n += BATCH;
                let changes = batch
                    .iter()
                    .map(|id| RoomChange {
                        app: &app,
                        room: id,
                        change: |room: &mut Room| {
                            let m = room.seq as usize % 8;
                            let muted = &mut room.data["members"][m]["muted"];
                            *muted = serde_json::Value::Bool(!muted.as_bool().unwrap_or(false));
                            room.seq += 1;
                            let event = DomainEvent {
                                kind: EventKind::MemberMuted,
                                app: room.app.clone(),
                                room: room.id.clone(),
                                seq: room.seq,
                                at: room.seq as i64,
                                data: serde_json::json!({"member": m}),
                                redelivers: None,
                            };
                            Ok::<_, std::convert::Infallible>(((), vec![event]))
                        },
                    })
                    .collect();
                let done = modify_rooms(&*store, changes).await;
                let ok = done.iter().filter(|r| matches!(r, Ok(Some(Ok(_))))).count();
                writes.fetch_add(ok as u64, Ordering::Relaxed);
            }
        });
    }
    // The writers run together in this task (the connections' own tasks do the I/O).
    let writers = futures_util::future::join_all(tasks);
    let measure = measure(&stop, &writes, nodes);
    let ((), (writes_per_sec, cpu_per_process, commands_per_process)) = tokio::join!(
        async {
            writers.await;
        },
        measure
    );
    let phase = Phase {
        name,
        writes_per_sec,
        cpu_per_process,
        commands_per_process,
    };
    let round = |v: &[f64]| {
        v.iter()
            .map(|c| (c * 100.0).round() / 100.0)
            .collect::<Vec<_>>()
    };
    println!(
        "{:<28} {:>7.0} writes/s | Redis CPU s {:?} -> {:>6.0} writes/busiest CPU-s | \
         command s {:?} -> {:>6.0} writes/busiest command-s",
        phase.name,
        phase.writes_per_sec,
        round(&phase.cpu_per_process),
        phase.cpu_capacity(),
        round(&phase.commands_per_process),
        phase.command_capacity(),
    );
    phase
}

/// Writes per second and each process's CPU seconds over the window, after a second's warm-up;
/// then stops the writers.
async fn measure(
    stop: &AtomicBool,
    writes: &AtomicU64,
    nodes: &[(u32, String)],
) -> (f64, Vec<f64>, Vec<f64>) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let commands = || join_all(nodes.iter().map(|(_, url)| command_secs(url)));
    let cmd0 = commands().await;
    let cpu0: Vec<f64> = nodes.iter().map(|(p, _)| cpu_secs(*p)).collect();
    let w0 = writes.load(Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(WINDOW).await;
    let w1 = writes.load(Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu1: Vec<f64> = nodes.iter().map(|(p, _)| cpu_secs(*p)).collect();
    let cmd1 = commands().await;
    stop.store(true, Ordering::Relaxed);
    let diff = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(a, b)| b - a).collect();
    (
        (w1 - w0) as f64 / elapsed,
        diff(&cpu0, &cpu1),
        diff(&cmd0, &cmd1),
    )
}

fn nodes_of(servers: &[&RedisServer]) -> Vec<(u32, String)> {
    servers
        .iter()
        .filter_map(|s| Some((s.pid()?, s.url())))
        .collect()
}

async fn run() {
    let one = RedisServer::start();
    let store = RedisStore::connect(&one.url()).await.unwrap();
    let single = phase("one Redis, 1 shard", store, nodes_of(&[&one])).await;
    drop(one);
    // The room cache (on by default; on a cluster, a tracked connection per master) spares each
    // change a read of the room: without it, for contrast.
    let one = RedisServer::start();
    let store = RedisStore::connect(&one.url())
        .await
        .unwrap()
        .with_room_cache(0)
        .await
        .unwrap();
    let uncached = phase("one Redis, 1 shard, no cache", store, nodes_of(&[&one])).await;
    drop(one);

    let cluster = RedisCluster::start();
    let nodes = nodes_of(&cluster.nodes.iter().collect::<Vec<_>>());
    let store = RedisStore::connect(&cluster.url()).await.unwrap();
    let slot = phase("cluster, 1 shard", store, nodes).await;
    drop(cluster);

    let cluster = RedisCluster::start();
    let nodes = nodes_of(&cluster.nodes.iter().collect::<Vec<_>>());
    let store = RedisStore::connect(&cluster.url())
        .await
        .unwrap()
        .with_shards(3);
    let spread = phase("cluster, 3 shards", store, nodes).await;
    drop(cluster);
    let (alone_cpu, alone_commands) = masters_alone().await;

    let ratio = |p: &Phase| {
        format!(
            "CPU ×{:.2}, commands ×{:.2}, raw rate ×{:.2}",
            p.cpu_capacity() / single.cpu_capacity(),
            p.command_capacity() / single.command_capacity(),
            p.writes_per_sec / single.writes_per_sec
        )
    };
    println!(
        "capacity vs one Redis with its room cache (goal ≥ ×2.5 for 3 shards; {} cores here):\n  \
         one Redis, no cache: {}\n  cluster, 1 shard:    {}\n  cluster, 3 shards:   {}\n\
         cluster, 3 shards vs one Redis without the cache: CPU ×{:.2}, commands ×{:.2}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        ratio(&uncached),
        ratio(&slot),
        ratio(&spread),
        spread.cpu_capacity() / uncached.cpu_capacity(),
        spread.command_capacity() / uncached.command_capacity(),
    );
    println!(
        "cluster, 3 shards, a core per master (each master measured alone): capacity {:.0} \
         writes/s by CPU (×{:.2} one Redis, ×{:.2} without its cache), {:.0} by commands (×{:.2}, \
         ×{:.2})",
        alone_cpu,
        alone_cpu / single.cpu_capacity(),
        alone_cpu / uncached.cpu_capacity(),
        alone_commands,
        alone_commands / single.command_capacity(),
        alone_commands / uncached.command_capacity(),
    );
}

/// Each master with a core of its own, as the goal asks, on a machine with fewer cores than
/// masters: one master at a time takes phase 1's load (24 tasks, batches of 16, 768 rooms)
/// over the app's rooms it holds, while the others idle, so it and the bench share the cores
/// as the lone Redis did. Masters run apart (no command of one waits for another), so under the
/// app's whole load the cluster tops out when its busiest master does: the capacity is the
/// least of `capacity(k) / share(k)`, a master's share being its part of the app's rooms.
/// Returns it by CPU and by time in commands.
async fn masters_alone() -> (f64, f64) {
    const NAMES: [&str; 3] = [
        "cluster, 3 shards: master 1",
        "cluster, 3 shards: master 2",
        "cluster, 3 shards: master 3",
    ];
    let cluster = RedisCluster::start();
    let nodes = nodes_of(&cluster.nodes.iter().collect::<Vec<_>>());
    let store = Arc::new(
        RedisStore::connect(&cluster.url())
            .await
            .unwrap()
            .with_shards(3),
    );
    let all = rooms(&store, 3 * ROOMS).await;
    let (mut by_cpu, mut by_commands) = (f64::INFINITY, f64::INFINITY);
    for (k, (_, url)) in nodes.iter().enumerate() {
        let here = room_ids_on(url).await;
        let mine: Vec<RoomId> = all
            .iter()
            .filter(|id| here.contains(id.as_str()))
            .take(ROOMS)
            .cloned()
            .collect();
        let share = here.len() as f64 / all.len() as f64;
        let phase = phase_over(NAMES[k % 3], store.clone(), mine, &nodes).await;
        println!(
            "  (this master holds {:.1}% of the app's rooms)",
            share * 100.0
        );
        by_cpu = by_cpu.min(phase.cpu_capacity() / share);
        by_commands = by_commands.min(phase.command_capacity() / share);
    }
    (by_cpu, by_commands)
}

/// The ids of the bench app's rooms a cluster node holds.
async fn room_ids_on(url: &str) -> std::collections::HashSet<String> {
    let client = ::redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg("sy:{bench-app*}:room:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.iter()
        .filter_map(|k| Some(k.split_once(":room:")?.1.to_owned()))
        .collect()
}
