//! How fast recorded conference events reach the store: the node reconciler applying capture
//! 01's conference events (joins, mutes, kick, hangups, destroy) to many rooms, with the memory
//! store and with a real Redis (started by the bench on a free port, if `redis-server` exists).
//! Also: resyncing a node that holds 1,000 rooms × 10 members (memory, and Redis read cold).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use switchyard::conference::snapshot::{MemberFlags, SnapshotConference, SnapshotMember};
use switchyard::conference::{
    AppId, ConferenceFact, Fact, NodePrefix, Observed, Room, RoomId, RoomStatus, RoomType, Session,
    SessionId, SessionState, from_event, ops,
};
use switchyard::esl::{Event, Limits, decode_all};
use switchyard::node::reconciler::Reconciler;
use switchyard::node::{AppDirectory, NodeConfig};
use switchyard::store::Store;
use switchyard::store::memory::MemoryStore;
use switchyard::store::redis::RedisStore;

#[allow(dead_code)]
mod support;
use support::RedisServer;

const ROOMS: usize = 200;
/// Events the supervisor takes off the stream at once when they are already waiting.
const BURST: usize = 512;
const CORE: &str = "f7ec4279-8453-4be8-b538-0d420fd03b58";

fn prefix() -> NodePrefix {
    NodePrefix::parse("bench").unwrap()
}

fn app() -> AppId {
    AppId::parse("app1").unwrap()
}

/// Capture 01's conference facts of room1.
fn recorded() -> Vec<(String, ConferenceFact)> {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/esl/01_event_plain_ALL.recv.raw"
    ))
    .unwrap();
    decode_all(&bytes, Limits::default())
        .unwrap()
        .iter()
        .filter(|f| f.content_type().is_decodable_event())
        .filter_map(|f| from_event(&Event::from_frame(f).unwrap()))
        .filter_map(|o| match o.fact {
            Fact::Conference {
                room,
                conference_uuid,
                fact,
            } if room == "room1" => Some((conference_uuid, fact)),
            _ => None,
        })
        .collect()
}

fn session(channel: &str) -> Session {
    Session {
        id: SessionId::new(&prefix(), channel),
        app: app(),
        did: "100".into(),
        caller_id: "1001".into(),
        caller_name: "A".into(),
        state: SessionState::Parked,
        core_uuid: CORE.into(),
        created_at: 0,
        answered_at: Some(0),
        ended_at: None,
        hangup_cause: None,
        seq: 1,
    }
}

/// Rooms in which capture 01's three callers asked to join, and the stream of facts for all of
/// them, interleaved room by room as a busy node would send them.
async fn setup<S: Store>(store: &S, recorded: &[(String, ConferenceFact)]) -> Vec<Observed> {
    let callers = [
        "28ec5c5e-0cdb-4582-983d-48f16177e7f7",
        "859a7200-da66-4e0f-9321-2f57ca8d66b2",
        "90b13b19-4ffb-4dc6-874c-bcf396200bed",
    ];
    let mut ids = Vec::new();
    for _ in 0..ROOMS {
        let id = RoomId::new(&prefix(), uuid::Uuid::new_v4());
        let mut room = Room::new(
            id.clone(),
            app(),
            id.to_string(),
            RoomType::Conference,
            "ctl".into(),
            0,
        );
        room.status = RoomStatus::Progressing;
        for c in callers {
            ops::request_join(&mut room, &session(c), None, 0).unwrap();
        }
        store.create_room(&room, &[]).await.unwrap();
        ids.push(id);
    }
    let mut stream = Vec::new();
    for (conf, fact) in recorded {
        for id in &ids {
            stream.push(Observed {
                core_uuid: CORE.into(),
                // Numbered as the node numbers them (`Event-Sequence`).
                sequence: stream.len() as u64 + 1,
                fact: Fact::Conference {
                    room: id.to_string(),
                    conference_uuid: conf.clone(),
                    fact: fact.clone(),
                },
            });
        }
    }
    stream
}

fn reconciler<S: Store>(store: Arc<S>) -> Reconciler<S> {
    Reconciler::new(
        store,
        Arc::new(NodeConfig::new(prefix(), "-", "-")),
        Arc::new(AppDirectory::new()),
    )
}

fn apply_stream(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let recorded = recorded();
    let mut group = c.benchmark_group("room_apply");
    group.throughput(Throughput::Elements((recorded.len() * ROOMS) as u64));
    group.sample_size(10);
    group.bench_function("memory_store", |b| {
        b.iter_batched(
            || {
                let store = Arc::new(MemoryStore::new());
                let stream = rt.block_on(setup(&*store, &recorded));
                (reconciler(store), stream)
            },
            |(rec, stream)| {
                rt.block_on(async {
                    for burst in stream.chunks(BURST) {
                        rec.apply_batch(burst, 1).await.unwrap();
                    }
                });
                // Returned so that criterion drops the store and the stream outside the timing.
                (rec, stream)
            },
            BatchSize::LargeInput,
        )
    });
    if let Some(redis) = RedisServer::start() {
        let store = Arc::new(rt.block_on(RedisStore::connect(&redis.url())).unwrap());
        group.bench_function("redis_store", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let stream = rt.block_on(setup(&*store, &recorded));
                    let rec = reconciler(store.clone());
                    let start = Instant::now();
                    rt.block_on(async {
                        for burst in stream.chunks(BURST) {
                            rec.apply_batch(burst, 1).await.unwrap();
                        }
                    });
                    total += start.elapsed();
                }
                total
            })
        });
    } else {
        eprintln!("redis-server not found: the Redis figure is not measured");
    }
    group.finish();
}

/// One resync as the supervisor runs it: the store's view first, then the snapshot applied.
async fn resync_once<S: Store>(rec: &Reconciler<S>, snapshot: &[SnapshotConference]) {
    let before = rec.before_snapshot().await.unwrap();
    rec.resync(CORE, &before, snapshot, &[], 0, 10)
        .await
        .unwrap();
}

/// A node with 1,000 rooms of 10 members each, resynced against a snapshot that agrees.
fn resync(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("resync");
    group.sample_size(10);
    group.bench_function("1000_rooms_x_10_members_memory", |b| {
        b.iter_batched(
            || {
                let store = Arc::new(MemoryStore::new());
                let snapshot = rt.block_on(big_node(&*store));
                (reconciler(store), snapshot)
            },
            |(rec, snapshot)| rt.block_on(resync_once(&rec, &snapshot)),
            BatchSize::LargeInput,
        )
    });
    if let Some(redis) = RedisServer::start() {
        // A controller that has just started on this Redis: its room cache is empty, so every
        // room is read from Redis (a new store per run).
        let url = redis.url();
        group.bench_function("1000_rooms_x_10_members_redis", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // Each run resyncs exactly one node's 1,000 rooms.
                    redis.flush();
                    let store = Arc::new(rt.block_on(RedisStore::connect(&url)).unwrap());
                    let snapshot = rt.block_on(big_node(&*store));
                    let fresh = Arc::new(rt.block_on(RedisStore::connect(&url)).unwrap());
                    let rec = reconciler(fresh);
                    let start = Instant::now();
                    rt.block_on(resync_once(&rec, &snapshot));
                    total += start.elapsed();
                }
                total
            })
        });
    }
    group.finish();
}

async fn big_node<S: Store>(store: &S) -> Vec<SnapshotConference> {
    let mut snapshot = Vec::new();
    for _ in 0..1000 {
        let id = RoomId::new(&prefix(), uuid::Uuid::new_v4());
        let mut room = Room::new(
            id.clone(),
            app(),
            id.to_string(),
            RoomType::Conference,
            "ctl".into(),
            0,
        );
        room.status = RoomStatus::Progressing;
        room.core_uuid = Some(CORE.into());
        let mut members = Vec::new();
        for m in 0..10u32 {
            let channel = uuid::Uuid::new_v4().to_string();
            ops::request_join(&mut room, &session(&channel), None, 0).unwrap();
            let added = ConferenceFact::MemberAdded {
                channel: channel.clone(),
                member_id: m + 1,
                speak: false,
                moderator: false,
            };
            switchyard::conference::apply(&mut room, CORE, "conf", &added, None, 1);
            members.push(SnapshotMember {
                id: m + 1,
                uuid: channel,
                flags: MemberFlags {
                    can_speak: false,
                    ..MemberFlags::default()
                },
                carries: None,
            });
        }
        members.push(SnapshotMember {
            id: 99,
            uuid: "ctl".into(),
            flags: MemberFlags {
                can_speak: false,
                ..MemberFlags::default()
            },
            carries: None,
        });
        store.create_room(&room, &[]).await.unwrap();
        snapshot.push(SnapshotConference {
            conference_name: id.to_string(),
            conference_uuid: "conf".into(),
            wait_mod: None,
            recordings: Vec::new(),
            members,
        });
    }
    snapshot
}

/// Event-to-stored latency at a steady 10,000 events/s: a producer offers capture 01's facts
/// (spread over the rooms) every 100 µs; the consumer applies whatever has queued as one batch,
/// as the node supervisor does. Printed as percentiles (criterion measures throughput only).
/// One thread, as for the throughput figure: the controller on one core, Redis on another (two
/// workers plus Redis on a two-core machine would measure the scheduler's time slices).
fn latency_at_10k(c: &mut Criterion) {
    let _ = c;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let recorded = recorded();
    let report = |name: &str, mut lat: Vec<Duration>| {
        lat.sort();
        let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
        eprintln!(
            "latency_at_10k/{name}: {} events, p50 {:?}, p99 {:?}, max {:?}",
            lat.len(),
            p(0.5),
            p(0.99),
            p(1.0)
        );
    };
    let memory = Arc::new(MemoryStore::new());
    let stream = rt.block_on(setup(&*memory, &recorded));
    report(
        "memory_store",
        rt.block_on(paced(reconciler(memory), stream)),
    );
    if let Some(redis) = RedisServer::start() {
        let store = Arc::new(rt.block_on(RedisStore::connect(&redis.url())).unwrap());
        let stream = rt.block_on(setup(&*store, &recorded));
        report("redis_store", rt.block_on(paced(reconciler(store), stream)));
    }
}

async fn paced<S: Store>(rec: Reconciler<S>, stream: Vec<Observed>) -> Vec<Duration> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Observed)>();
    let producer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_micros(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        for o in stream {
            tick.tick().await;
            if tx.send((Instant::now(), o)).is_err() {
                break;
            }
        }
    });
    let mut latencies = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let facts: Vec<Observed> = batch.iter().map(|(_, o)| o.clone()).collect();
        rec.apply_batch(&facts, 1).await.unwrap();
        let done = Instant::now();
        latencies.extend(batch.iter().map(|(at, _)| done - *at));
    }
    producer.await.unwrap();
    latencies
}

criterion_group!(benches, apply_stream, resync, latency_at_10k);
criterion_main!(benches);
