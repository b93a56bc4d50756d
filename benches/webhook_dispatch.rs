//! How fast the webhook dispatcher drains an outbox into a local receiver, end to end: from
//! `webhook::spawn` until the receiver has answered every message and the position is persisted.
//! The outbox is filled before the clock starts; the receiver (axum on 127.0.0.1, answering 204)
//! shares the process and its two worker threads. Memory store and a real Redis (started by the
//! bench on a free port, if `redis-server` exists); many rooms in parallel, and one room (serial
//! by design: one message in progress per room).
//!
//! `slow_receiver` (printed, not timed): 50,000 events and a receiver that takes 200 ms per
//! request; the process RSS is sampled while the dispatcher works, to show its memory is bounded
//! by `max_pending`, not by the outbox.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use serde_json::json;
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

use switchyard::conference::{AppId, DomainEvent, EventKind, NodePrefix, RoomId};
use switchyard::store::Store;
use switchyard::store::memory::MemoryStore;
use switchyard::store::redis::RedisStore;
use switchyard::webhook::{DispatcherConfig, Signer, spawn};

#[allow(dead_code)]
mod support;
use support::RedisServer;

/// 32 bytes, as the tests use.
const SECRET: &str = "whsec_c3dpdGNoeWFyZCB3ZWJob29rIHRlc3Qgc2VjcmV0ISE=";

fn app() -> AppId {
    AppId::parse("bench-app").unwrap()
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A local receiver that answers 204 (after `delay`, if any) and counts what it answered.
struct Receiver {
    url: String,
    answered: Arc<AtomicUsize>,
    stop: CancellationToken,
}

impl Receiver {
    async fn start(delay: Duration) -> Receiver {
        let answered = Arc::new(AtomicUsize::new(0));
        let counter = answered.clone();
        let hook = move || {
            let counter = counter.clone();
            async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                counter.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::NO_CONTENT
            }
        };
        let router = axum::Router::new().route("/hook", axum::routing::post(hook));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let until = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { until.cancelled().await })
                .await
        });
        Receiver {
            url,
            answered,
            stop,
        }
    }

    fn answered(&self) -> usize {
        self.answered.load(Ordering::Relaxed)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Events `range` of an outbox spread round-robin over `rooms` (each room's `seq` counting up),
/// each with a member-joined payload of a realistic size.
fn events(app: &AppId, range: std::ops::Range<usize>, rooms: &[RoomId]) -> Vec<DomainEvent> {
    range
        .map(|i| DomainEvent {
            kind: EventKind::MemberJoined,
            app: app.clone(),
            room: rooms[i % rooms.len()].clone(),
            seq: (i / rooms.len()) as u64 + 1,
            at: 1_778_070_896_000_000 + i as i64,
            data: json!({
                "room_id": rooms[i % rooms.len()].as_str(),
                "member_id": "12",
                "session_id": format!("bench-{}", uuid::Uuid::new_v4()),
                "caller_id": "+15551230000",
                "caller_name": "Bench Caller",
                "conferencecall_id": uuid::Uuid::new_v4(),
                "command_uid": "cmd-1",
            }),
            redelivers: None,
        })
        .collect()
}

/// Fills the app's outbox with `n` events over `rooms` rooms, a thousand at a time; returns the
/// id of its last entry.
async fn fill<S: Store>(store: &S, app: &AppId, n: usize, rooms: usize) -> String {
    let node = NodePrefix::parse("bench").unwrap();
    let rooms: Vec<RoomId> = (0..rooms)
        .map(|_| RoomId::new(&node, uuid::Uuid::new_v4()))
        .collect();
    for start in (0..n).step_by(1000) {
        let chunk = events(app, start..(start + 1000).min(n), &rooms);
        store.append_outbox(app, &chunk).await.unwrap();
    }
    let mut last = None;
    loop {
        let page = store.outbox(app, last.as_deref(), 1000).await.unwrap();
        match page.last() {
            Some(row) => last = Some(row.position.clone()),
            None => return last.unwrap(),
        }
    }
}

fn config(app: &AppId, url: &str) -> DispatcherConfig {
    let mut c = DispatcherConfig::new(app.clone(), url, Signer::parse(SECRET).unwrap());
    c.allow_private = true;
    c
}

/// Runs a dispatcher over a filled outbox until every message is answered and the position is
/// the last entry; returns how long that took.
async fn drain<S: Store>(store: Arc<S>, receiver: &Receiver, n: usize, last: &str) -> Duration {
    let before = receiver.answered();
    let stop = CancellationToken::new();
    let started = Instant::now();
    let task = spawn(store.clone(), config(&app(), &receiver.url), stop.clone()).unwrap();
    loop {
        if receiver.answered() - before >= n
            && store.outbox_position(&app()).await.unwrap().as_deref() == Some(last)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let took = started.elapsed();
    stop.cancel();
    task.await.unwrap();
    took
}

/// (name, events, rooms) of each measured case.
const CASES: [(&str, usize, usize); 2] = [
    ("10000_events_1000_rooms", 10_000, 1_000),
    ("2000_events_1_room", 2_000, 1),
];

fn dispatch(c: &mut Criterion) {
    let rt = runtime();
    let receiver = rt.block_on(Receiver::start(Duration::ZERO));
    let redis = RedisServer::start();
    if redis.is_none() {
        eprintln!("redis-server not found: the Redis figures are not measured");
    }
    let mut group = c.benchmark_group("webhook_dispatch");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(10));
    for (name, n, rooms) in CASES {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("memory_store/{name}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let store = Arc::new(MemoryStore::new());
                    let last = rt.block_on(fill(&*store, &app(), n, rooms));
                    total += rt.block_on(drain(store, &receiver, n, &last));
                }
                total
            })
        });
        let Some(redis) = &redis else { continue };
        let store = Arc::new(rt.block_on(RedisStore::connect(&redis.url())).unwrap());
        group.bench_function(format!("redis_store/{name}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    redis.flush();
                    let last = rt.block_on(fill(&*store, &app(), n, rooms));
                    total += rt.block_on(drain(store.clone(), &receiver, n, &last));
                }
                total
            })
        });
    }
    group.finish();
}

/// The process's resident set size in KiB (Linux).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Whether criterion's name filter (its arguments that are neither options nor their values)
/// lets `name` run; the slow-receiver report is printed, not a criterion benchmark, so it
/// checks itself.
fn wanted(name: &str) -> bool {
    const VALUED: [&str; 9] = [
        "--profile-time",
        "--sample-size",
        "--warm-up-time",
        "--measurement-time",
        "--save-baseline",
        "--baseline",
        "--load-baseline",
        "--color",
        "--output-format",
    ];
    let mut filters = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if VALUED.contains(&arg.as_str()) {
            args.next();
        } else if !arg.starts_with('-') {
            filters.push(arg);
        }
    }
    filters.iter().all(|f| name.contains(f.as_str()))
}

/// Set in the child process that runs one slow-receiver measurement: `<max_pending> <store>`,
/// the store being a Redis URL or `memory`.
const HOLD: &str = "SWITCHYARD_BENCH_SLOW_RECEIVER";
/// Events waiting in the outbox when the dispatcher starts.
const SLOW_EVENTS: usize = 50_000;
/// How long the dispatcher is watched, and how often its RSS is sampled.
const WATCH: Duration = Duration::from_secs(30);
const SAMPLE_EVERY: Duration = Duration::from_secs(3);

/// A receiver that takes 200 ms per request and 50,000 events waiting: the dispatcher reads
/// until `max_pending` entries are held, then only as fast as they are settled. Printed: the
/// RSS before the dispatcher starts and every 3 s for 30 s while it works, for a `max_pending`
/// of 1,000, of 10,000 (the default), and of the whole outbox (what a reader without the bound
/// would hold). Each measurement runs in a fresh process (this bench, run again), so memory
/// freed by one cannot hide the next one's growth; with Redis the outbox lives outside the
/// process, so the growth is the dispatcher's own.
fn slow_receiver(c: &mut Criterion) {
    let _ = c;
    if let Ok(spec) = std::env::var(HOLD) {
        println!("{}", hold(&spec));
        std::process::exit(0);
    }
    if !wanted("slow_receiver") {
        return;
    }
    let redis = RedisServer::start();
    let store = match &redis {
        Some(redis) => redis.url(),
        None => {
            eprintln!("redis-server not found: slow_receiver runs with the memory store");
            "memory".to_owned()
        }
    };
    for max_pending in [1_000, 10_000, SLOW_EVENTS] {
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--bench", "slow_receiver"])
            .env(HOLD, format!("{max_pending} {store}"))
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        let line = String::from_utf8_lossy(&child.stdout);
        eprintln!("slow_receiver/{}", line.trim());
    }
}

/// One slow-receiver measurement (in the child process): fills the outbox, then runs a
/// dispatcher for [`WATCH`], sampling the RSS.
fn hold(spec: &str) -> String {
    let (max_pending, store) = spec.split_once(' ').unwrap();
    let max_pending: usize = max_pending.parse().unwrap();
    let rt = runtime();
    let app = AppId::parse(&format!("slow-{max_pending}")).unwrap();
    let line = if store == "memory" {
        let store = Arc::new(MemoryStore::new());
        rt.block_on(fill(&*store, &app, SLOW_EVENTS, 1_000));
        watch(&rt, store, &app, max_pending)
    } else {
        let store = Arc::new(rt.block_on(RedisStore::connect(store)).unwrap());
        rt.block_on(fill(&*store, &app, SLOW_EVENTS, 1_000));
        watch(&rt, store, &app, max_pending)
    };
    let kind = if store == "memory" { "memory" } else { "redis" };
    format!("{kind}_store/max_pending_{max_pending}: {line}")
}

fn watch<S: Store>(rt: &Runtime, store: Arc<S>, app: &AppId, max_pending: usize) -> String {
    let receiver = rt.block_on(Receiver::start(Duration::from_millis(200)));
    let mut config = config(app, &receiver.url);
    config.max_pending = max_pending;
    let rss_before = rss_kib();
    let stop = CancellationToken::new();
    let task = {
        let _runtime = rt.enter();
        spawn(store, config, stop.clone()).unwrap()
    };
    let mut samples = Vec::new();
    while samples.len() < (WATCH.as_secs() / SAMPLE_EVERY.as_secs()) as usize {
        std::thread::sleep(SAMPLE_EVERY);
        samples.push(rss_kib() as i64 - rss_before as i64);
    }
    stop.cancel();
    rt.block_on(task).unwrap();
    let grown: Vec<String> = samples
        .iter()
        .map(|s| format!("{:+.1}", *s as f64 / 1024.0))
        .collect();
    format!(
        "{SLOW_EVENTS} waiting, {} delivered in {} s; RSS before {:.1} MiB, then every {} s \
         (MiB more than before): {}",
        receiver.answered(),
        WATCH.as_secs(),
        rss_before as f64 / 1024.0,
        SAMPLE_EVERY.as_secs(),
        grown.join(" ")
    )
}

criterion_group!(benches, slow_receiver, dispatch);
criterion_main!(benches);
