//! What one applied event costs, all-in (issue 40): two `switchyard serve` instances on one
//! Redis, four simulated nodes, 16 rooms of 4 callers, and 200 join/leave/mute/unmute commands
//! a second through the API of the first instance for 30 s. The first instance serves the API
//! and delivers the webhooks (it starts first and leads the dispatcher); the second only applies
//! the events of the nodes it holds (two of the four).
//!
//! Per event applied (both instances' `switchyard_events_applied_total`) it reports:
//! - the controller CPU of both instances (`/proc/<pid>/stat`), and that of the second alone per
//!   event it applied (it also serves the member commands the first sends on to it,
//!   `api/forward.rs`), and both against the floors of all they did;
//! - the first instance's CPU per API command, less what its own applying cost at the second's
//!   rate (the API command, its webhook delivery);
//! - Redis's CPU (`INFO cpu`), its socket reads and writes (`INFO stats`: its round trips),
//!   and its commands (`INFO commandstats`), with the breakdown by command;
//! - the floor, measured in the same run before the load: Redis's CPU per lone round trip (a
//!   `PING` at about the pace of the load's round trips), and the event's Redis CPU in those;
//!   and Redis's CPU per atomic room write sent alone at the events' pace (the store's own room
//!   script, a room and an event of this load's sizes): the least an event can cost Redis; and
//!   the CPU of a minimal applier and a minimal API process on the same crates (`floors.rs`);
//! - idle, in the same run before the load: each process's CPU a second with the calls in place
//!   and no command, and the figures above with it taken out.
//!
//! `EVENT_COST_UNIX=1` has the instances reach Redis over a Unix socket; `EVENT_COST_FLOOR_ONLY=1`
//! measures the floors and stops (`EVENT_COST_ROOM_BYTES`, `EVENT_COST_EVENT_BYTES`: the sizes
//! the write floor uses).
//!
//! `cargo bench --bench event_cost` (needs redis-server). `EVENT_COST_SECS` (default 30) and
//! `EVENT_COST_RATE` (commands a second, default 200) change the window and the load. Without
//! `--bench` (as `cargo test --benches` runs it) it does nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "event_cost/floors.rs"]
mod floors;
#[path = "../tests/common/ports.rs"]
mod ports;
#[allow(dead_code)]
#[path = "../tests/common/serve.rs"]
mod serve;
#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;

use serve::{Api, Serve};
use support::{RedisServer, cpu_secs, env_or};
use switchyard::api::hash_key;
use switchyard::sim::{SimConfig, Simulator};

const DID: &str = "15551230000";
const KEY: &str = "event-cost-key";
const PASSWORD: &str = "event-cost-esl";
const PREFIXES: [&str; 4] = ["ecn01", "ecn02", "ecn03", "ecn04"];
const ROOMS: usize = 16;
const CALLERS: usize = 4;
const IDLE_SECS: u64 = 10;

fn main() -> anyhow::Result<()> {
    // Started again by itself as the minimal applier or API whose CPU `floors` measures.
    if let Some(done) = floors::applier_process().or_else(floors::api_process) {
        return done;
    }
    support::bench_main(run)
}

fn config(listen: u16, redis: &str, sims: &[Simulator], hook: &str) -> String {
    let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let mut text = format!(
        "listen = {}\nredis_url = {}\nnode_lease_ms = 1500\n{}\
         [limits]\nglobal_rps = 0\nconference_ms = 0\nconference_mute_ms = 0\n\
         conference_control_ms = 0\nconf_play_ms = 0\n\
         [webhooks]\nallow_private = true\n\
         [[apps]]\nid = \"app1\"\nkey_sha256 = {}\ndids = [{}]\nwebhook_url = {}\n\
         webhook_secret = \"whsec_c3dpdGNoeWFyZCB3ZWJob29rIHRlc3Qgc2VjcmV0ISE=\"\n",
        q(&format!("127.0.0.1:{listen}")),
        q(redis),
        serve::operator_toml(),
        q(&hash_key(KEY)),
        q(DID),
        q(hook),
    );
    // `EVENT_COST_WAKE_MS`: the nodes' `event_wake_ms` (how long a command keeps the node's
    // event connection awake; 0: never).
    let extra = std::env::var("EVENT_COST_WAKE_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(|ms| format!("event_wake_ms = {ms}\n"))
        .unwrap_or_default();
    for (sim, prefix) in sims.iter().zip(PREFIXES) {
        text.push_str(&serve::node_toml(
            prefix,
            &sim.addr().to_string(),
            PASSWORD,
            &extra,
        ));
    }
    text
}

/// A webhook receiver answering 200 to everything: how many it received.
async fn receiver() -> anyhow::Result<(String, Arc<AtomicU64>)> {
    let count = Arc::new(AtomicU64::new(0));
    let counted = count.clone();
    let app = axum::Router::new().fallback(move || {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::Relaxed);
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hooks", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, count))
}

/// The events an instance has applied (every node's counter summed).
async fn applied(api: &Api) -> f64 {
    let Ok(reply) = api.metrics_request().send().await else {
        return 0.0;
    };
    let text = reply.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("switchyard_events_applied_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Redis's own figures: CPU seconds used, the socket reads and writes it processed (its round
/// trips: a pipeline is one read, however many commands it holds), and calls and microseconds
/// spent per command.
pub(crate) struct RedisFigures {
    cpu: f64,
    reads: f64,
    writes: f64,
    calls: BTreeMap<String, (f64, f64)>,
}

pub(crate) async fn redis_figures(conn: &mut redis::aio::MultiplexedConnection) -> RedisFigures {
    let info: String = redis::cmd("INFO")
        .arg("all")
        .query_async(conn)
        .await
        .unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let cpu = field("used_cpu_sys") + field("used_cpu_user");
    let calls = info
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(":calls=")?;
            let calls = rest.split(',').next()?.parse().ok()?;
            let usec = rest
                .split(',')
                .find_map(|f| f.strip_prefix("usec="))?
                .parse()
                .ok()?;
            Some((name.to_owned(), (calls, usec)))
        })
        .collect();
    RedisFigures {
        cpu,
        reads: field("total_reads_processed"),
        writes: field("total_writes_processed"),
        calls,
    }
}

/// `redis-cli monitor` of the Redis at `url`, written to `file`.
fn monitor_redis(url: &str, file: &str) -> std::process::Child {
    let port = url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let out = std::fs::File::create(file).expect("EVENT_COST_MONITOR: a file to write");
    std::process::Command::new("redis-cli")
        .args(["-p", &port, "monitor"])
        .stdout(out)
        .spawn()
        .expect("redis-cli")
}

/// What each session is asked next, in turn.
#[derive(Clone, Copy)]
enum Step {
    Unmute,
    Mute,
    Leave,
    Join,
}

impl Step {
    fn next(self) -> Step {
        match self {
            Step::Unmute => Step::Mute,
            Step::Mute => Step::Leave,
            Step::Leave => Step::Join,
            Step::Join => Step::Unmute,
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let secs = env_or("EVENT_COST_SECS", 30);
    let rate = env_or("EVENT_COST_RATE", 200).max(1);
    let unix = std::env::var("EVENT_COST_UNIX")
        .is_ok_and(|v| v == "1")
        .then(|| format!("/tmp/switchyard-event-cost-{}.sock", std::process::id()));
    let Some(redis) = RedisServer::start_on(unix) else {
        bail!("event_cost needs redis-server (apt-get install -y redis-server)");
    };
    let mut sims = Vec::new();
    for _ in PREFIXES {
        sims.push(
            Simulator::start(SimConfig {
                listen: "127.0.0.1:0".parse()?,
                password: PASSWORD.into(),
                heartbeat: Some(Duration::from_secs(5)),
                ..SimConfig::default()
            })
            .await?,
        );
    }
    // The floor, in the same run: what one lone round trip costs Redis at this load's pace
    // (a PING from one connection every 1/(6·rate) s, about the round trips the load makes, on
    // the Redis the load then uses, before anything else runs on it).
    let (floor, write_floor, applier_floor, api_floor) = {
        let mut conn = redis::Client::open(redis.url())?
            .get_multiplexed_async_connection()
            .await?;
        let ping = floors::round_trip_floor(&mut conn, rate * 6, Duration::from_secs(5)).await;
        // About 1.25 events a command in this load (a join is two: the member and its join).
        let write = floors::write_floor(
            &mut conn,
            rate * 5 / 4,
            Duration::from_secs(5),
            env_or("EVENT_COST_ROOM_BYTES", floors::ROOM_BYTES as u64) as usize,
            env_or("EVENT_COST_EVENT_BYTES", floors::EVENT_BYTES as u64) as usize,
        )
        .await?;
        // The instance that applies takes half the events.
        let applier =
            floors::applier_floor(&redis.url(), rate * 5 / 8, Duration::from_secs(8)).await?;
        let api = floors::api_floor(&redis.url(), rate, Duration::from_secs(8)).await?;
        if std::env::var("EVENT_COST_FLOOR_ONLY").is_ok() {
            println!(
                "floor: ping {ping:.1} µs, write {write:.1} µs, applier {applier:.1} µs, api {api:.1} µs"
            );
            return Ok(());
        }
        let _: redis::RedisResult<()> = redis::cmd("FLUSHALL").query_async(&mut conn).await;
        (ping, write, applier, api)
    };
    let (hook, received) = receiver().await?;
    let dir = std::env::temp_dir().join(format!("switchyard-event-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let start = |n: usize| {
        let (dir, redis, sims, hook) = (&dir, redis.url(), &sims, &hook);
        async move {
            let port = serve::free_port();
            let path = dir.join(format!("switchyard-{n}.toml"));
            std::fs::write(&path, config(port, &redis, sims, hook)).unwrap();
            let base = format!("http://127.0.0.1:{port}");
            let serve = Serve::start(&path, &base).await;
            (serve, Api::new(&base, "app1", KEY))
        }
    };
    // The first instance leads the webhook dispatcher and serves the API.
    let (first, api) = start(0).await;
    let mut sessions: Vec<(String, String)> = Vec::new();
    for r in 0..ROOMS {
        let (status, body) = api
            .call(
                "POST",
                "/api/v1/conferences",
                Some(json!({ "name": format!("cost-{r}") })),
            )
            .await;
        if status != 201 {
            bail!("room: {status} {body}");
        }
        let room = body["room_id"].as_str().context("room_id")?.to_owned();
        let n = PREFIXES
            .iter()
            .position(|p| room.starts_with(p))
            .context("node")?;
        for c in 0..CALLERS {
            let channel = sims[n]
                .inbound_call(DID, &format!("8{r:02}{c}"), "Cost")
                .context("call")?;
            let session = format!("{}-{channel}", PREFIXES[n]);
            serve::until(Duration::from_secs(10), "the call is stored", || async {
                let (s, b) = api
                    .call("GET", &format!("/api/v1/sessions/{session}"), None)
                    .await;
                (s == 200 && b["state"] == "parked").then_some(())
            })
            .await;
            sessions.push((session, room.clone()));
        }
    }
    // The second instance applies half the nodes' events, and nothing else.
    let (second, api2) = start(1).await;
    serve::until(
        Duration::from_secs(20),
        "the instances share the nodes",
        || async {
            let mut shares = Vec::new();
            for a in [&api, &api2] {
                let (_, body) = a.call("GET", "/readyz", None).await;
                shares.push(body["applies_events"].as_array().map_or(0, Vec::len));
            }
            (shares == [2, 2]).then_some(())
        },
    )
    .await;

    // Idle, in the same run: what the two instances and Redis spend a second with the rooms
    // and calls in place and no command sent (timers, leases, heartbeats, the dispatcher).
    let idle = {
        let mut conn = redis::Client::open(redis.url())?
            .get_multiplexed_async_connection()
            .await?;
        let (a, b, r) = (
            cpu_secs(first.pid()),
            cpu_secs(second.pid()),
            redis_figures(&mut conn).await,
        );
        let began = Instant::now();
        tokio::time::sleep(Duration::from_secs(IDLE_SECS)).await;
        let secs = began.elapsed().as_secs_f64();
        let r1 = redis_figures(&mut conn).await;
        (
            (cpu_secs(first.pid()) - a) / secs,
            (cpu_secs(second.pid()) - b) / secs,
            (r1.cpu - r.cpu) / secs,
            (r1.reads - r.reads) / secs,
        )
    };
    // `EVENT_COST_ROUTE=owner`: each command goes to the instance that applies its node's
    // events (as if the API forwarded it there), not all to the first.
    let by_owner = std::env::var("EVENT_COST_ROUTE").is_ok_and(|r| r == "owner");
    let mut second_nodes: Vec<String> = Vec::new();
    if by_owner {
        let (_, body) = api2.call("GET", "/readyz", None).await;
        second_nodes = body["applies_events"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        println!("  routed to the owner: the second applies {second_nodes:?}");
    }
    // The load: one command every 1/rate s, the sessions in turn, each going through join,
    // unmute, mute, leave. Every command is sent on its own task (the pace holds whatever the
    // answers take).
    let answers: Arc<std::sync::Mutex<BTreeMap<u16, u64>>> = Arc::default();
    let mut steps = vec![Step::Join; sessions.len()];
    let pace = Duration::from_secs_f64(1.0 / rate as f64);
    let mut tick = tokio::time::interval(pace);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let warmup = Duration::from_secs(3);
    let began = Instant::now();
    let mut before = None;
    let mut measured_from = began;
    let mut conn = redis::Client::open(redis.url())?
        .get_multiplexed_async_connection()
        .await?;
    let mut sent: u64 = 0;
    let mut i = 0usize;
    // `EVENT_COST_MONITOR=<file>`: every command Redis runs in the window, as `MONITOR` shows
    // it (to tell which part of the controller sends what; it slows Redis down).
    let monitor_to = std::env::var("EVENT_COST_MONITOR").ok();
    let mut monitor: Option<std::process::Child> = None;
    while began.elapsed() < warmup + Duration::from_secs(secs) {
        tick.tick().await;
        if before.is_none() && began.elapsed() >= warmup {
            monitor = monitor_to
                .as_deref()
                .map(|file| monitor_redis(&redis.url(), file));
            measured_from = Instant::now();
            before = Some((
                applied(&api).await,
                applied(&api2).await,
                cpu_secs(first.pid()),
                cpu_secs(second.pid()),
                redis_figures(&mut conn).await,
                received.load(Ordering::Relaxed),
            ));
            sent = 0;
        }
        let k = i % sessions.len();
        i += 1;
        let (session, room) = sessions[k].clone();
        let step = steps[k];
        steps[k] = step.next();
        let (verb, body) = match step {
            Step::Join => ("join", json!({ "room_id": room })),
            Step::Unmute => ("unmute", json!({})),
            Step::Mute => ("mute", json!({})),
            Step::Leave => ("leave", json!({})),
        };
        let to_second = second_nodes.iter().any(|n| session.starts_with(n.as_str()));
        let api = if to_second { api2.clone() } else { api.clone() };
        let answers = answers.clone();
        let counted = before.is_some();
        sent += 1;
        tokio::spawn(async move {
            let path = format!("/api/v1/sessions/{session}/commands/conference/{verb}");
            let (status, _) = api.call("POST", &path, Some(body)).await;
            if counted {
                *answers.lock().unwrap().entry(status).or_default() += 1;
            }
        });
    }
    let window = measured_from.elapsed().as_secs_f64();
    if let Some(mut m) = monitor {
        let _ = m.kill();
        let _ = m.wait();
    }
    let (a0, b0, cpu_a0, cpu_b0, redis0, hooks0) = before.context("no window")?;
    let (a1, b1) = (applied(&api).await, applied(&api2).await);
    let (cpu_a1, cpu_b1) = (cpu_secs(first.pid()), cpu_secs(second.pid()));
    let redis1 = redis_figures(&mut conn).await;
    let hooks = received.load(Ordering::Relaxed) - hooks0;

    let (ev_a, ev_b) = (a1 - a0, b1 - b0);
    let events = ev_a + ev_b;
    let (cpu_a, cpu_b) = (cpu_a1 - cpu_a0, cpu_b1 - cpu_b0);
    let per_event_b = cpu_b / ev_b.max(1.0);
    let accepted = answers
        .lock()
        .unwrap()
        .iter()
        .filter(|(s, _)| **s == 202)
        .map(|(_, n)| *n)
        .sum::<u64>() as f64;
    let api_cost = (cpu_a - per_event_b * ev_a).max(0.0) / accepted.max(1.0);
    let redis_cpu = redis1.cpu - redis0.cpu;
    let mut calls: Vec<(String, f64, f64)> = redis1
        .calls
        .iter()
        .map(|(name, (n, usec))| {
            let (n0, usec0) = redis0.calls.get(name).copied().unwrap_or((0.0, 0.0));
            (name.clone(), n - n0, usec - usec0)
        })
        .filter(|(_, n, _)| *n > 0.0)
        .collect();
    calls.sort_by(|x, y| y.1.total_cmp(&x.1));
    let total_calls: f64 = calls.iter().map(|(_, n, _)| n).sum();
    let us = |s: f64| s * 1e6 / events.max(1.0);

    println!(
        "event_cost: {window:.1} s, {sent} commands sent ({:.0}/s)",
        sent as f64 / window
    );
    println!("  answers: {:?}", answers.lock().unwrap());
    println!(
        "  events applied: {events:.0} ({:.0}/s; first {ev_a:.0}, second {ev_b:.0}); webhooks received: {hooks}",
        events / window
    );
    println!("| per applied event | measured |");
    println!("|---|---|");
    println!(
        "| controller CPU, both instances | {:.0} µs |",
        us(cpu_a + cpu_b)
    );
    println!(
        "| the second instance (applies its nodes, serves the member commands the first sends on to it), per event it applied | {:.0} µs |",
        per_event_b * 1e6
    );
    println!(
        "| the first instance per API command accepted, its applying taken out at the second's cost per event | {:.0} µs |",
        api_cost * 1e6
    );
    println!("| Redis server CPU | {:.0} µs |", us(redis_cpu));
    println!(
        "| Redis CPU of one lone round trip at this pace (PING, same run, before the load) | {floor:.1} µs: the event costs {:.1} of them |",
        us(redis_cpu) / floor.max(0.001)
    );
    println!(
        "| Redis CPU of one atomic room write alone at the events' pace (the room script, same run, before the load) | {write_floor:.1} µs: the event costs {:.1} of them |",
        us(redis_cpu) / write_floor.max(0.001)
    );
    // Issue 59's floor for Redis: what an event cannot cost it less than here: the atomic write
    // alone, the webhook's read and its verdict (a lone round trip each), and Redis's idle.
    let redis_floor = write_floor + 2.0 * floor + idle.2 * window * 1e6 / events.max(1.0);
    println!(
        "| Redis all-in against its floor (the write alone + two lone round trips, the webhook's read and verdict, + Redis idle, per event) | {redis_floor:.0} µs: Redis spends {:.2} times it |",
        us(redis_cpu) / redis_floor.max(0.001)
    );
    println!(
        "| a minimal applier process, per event (one event in over TCP, its room write out; same run, before the load) | {applier_floor:.0} µs: the second instance spends {:.1} times it |",
        per_event_b * 1e6 / applier_floor.max(0.001)
    );
    println!(
        "| a minimal API process, per command (its write, node command, answer and one webhook; same run, before the load) | {api_floor:.0} µs: the first instance spends {:.1} times it |",
        api_cost * 1e6 / api_floor.max(0.001)
    );
    // Both instances against the floors of all they did: since member commands go to the
    // instance that applies their node (`api/forward.rs`), the second serves some of the
    // commands and the split above mixes them; this one does not.
    let work_floor = accepted * api_floor + events * applier_floor;
    println!(
        "| both instances against the floors of their work (a minimal API process per command accepted, a minimal applier per event) | {:.0} µs a command: they spend {:.2} times it |",
        work_floor / accepted.max(1.0),
        (cpu_a + cpu_b) * 1e6 / work_floor.max(0.001)
    );
    println!("| Redis commands | {:.1} |", total_calls / events.max(1.0));
    println!(
        "| Redis socket reads / writes (round trips; a write carries a reply or a push) | {:.2} / {:.2} |",
        (redis1.reads - redis0.reads) / events.max(1.0),
        (redis1.writes - redis0.writes) / events.max(1.0)
    );
    let breakdown: Vec<String> = calls
        .iter()
        .take(12)
        .map(|(name, n, _)| format!("{name} {:.2}", n / events.max(1.0)))
        .collect();
    println!("  Redis commands per event: {}", breakdown.join(", "));
    // Where Redis's time goes as its command timing sees it (a script's includes the commands
    // it runs, which are also listed on their own); the rest of its CPU is the connections'.
    calls.sort_by(|x, y| y.2.total_cmp(&x.2));
    let timed: Vec<String> = calls
        .iter()
        .take(8)
        .map(|(name, _, usec)| format!("{name} {:.1}", usec / events.max(1.0)))
        .collect();
    println!(
        "  Redis µs per event by command (of {:.0} µs CPU): {}",
        us(redis_cpu),
        timed.join(", ")
    );
    let (idle_a, idle_b, idle_r, idle_reads) = idle;
    println!(
        "  idle, same run before the load ({IDLE_SECS} s, calls in place, no command): first {:.2} ms/s, second {:.2} ms/s, Redis {:.2} ms/s and {:.0} reads/s",
        idle_a * 1e3,
        idle_b * 1e3,
        idle_r * 1e3,
        idle_reads
    );
    // The same figures with each process's idle second taken out: what the load added.
    let marginal_b = (cpu_b - idle_b * window) / ev_b.max(1.0);
    let marginal_api = (cpu_a - idle_a * window - marginal_b * ev_a).max(0.0) / accepted.max(1.0);
    println!(
        "  less idle, per event: second {:.0} µs, first per command {:.0} µs, Redis {:.0} µs",
        marginal_b * 1e6,
        marginal_api * 1e6,
        (redis_cpu - idle_r * window) * 1e6 / events.max(1.0),
    );
    drop(second);
    drop(first);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
