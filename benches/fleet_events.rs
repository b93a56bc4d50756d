//! Events applied by a fleet of controllers (issue 19): one `switchyard serve` instance, then
//! two (five rounds: the second instance started, measured, stopped gracefully), on one Redis,
//! over four simulated nodes whose rooms' members are muted and unmuted as fast as the nodes go
//! (each a `mute-member`/`unmute-member` event the owner applies and stores), in the same run.
//!
//! Everything is started here on free ports and killed by pid at the end: a `redis-server`, the
//! four simulators (in this process), the `serve` processes. Per phase (10 s, after the fleet
//! settled): events applied per second by all instances (`switchyard_events_applied_total` of
//! each `/metrics`), and the CPU time each instance used (`/proc/<pid>/stat`). The figure that
//! compares the two is the capacity: events applied per second of the busiest instance's CPU —
//! before the fleet shared the nodes, every instance applied every event, so two instances gave
//! the same capacity as one (×1); sharing, each applies half (goal ≥ ×1.8 when each instance has
//! its own core). The rate is set by the load's pace (`FLEET_BENCH_PACE_MS`), not by the
//! instances: the same in both phases.
//!
//! `cargo bench --bench fleet_events` (needs redis-server); `FLEET_BENCH_PIN=1` starts each
//! instance on a CPU of its own (`taskset -c`, needs util-linux), which sizes its runtime to
//! one worker thread; `FLEET_BENCH_PACE_MS` is the pause after each room's round of mutes
//! (default 2; 0: no pause, only the queue bound holds the callers back).
//! `FLEET_BENCH_BUDGET=<percent>` gives each instance that share of one CPU (a cgroup CFS quota
//! of its own; needs root) and the nodes go at full rate: each instance is saturated, and the
//! figure is the rate two instances apply against one — the "own core budget" without a
//! machine of four free cores. `FLEET_BENCH_INSTANCES=3` makes the fleet's phase three
//! instances over six nodes (two each), against one instance over the same six. Without `--bench`
//! (as `cargo test --benches` runs it) it does nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/budget.rs"]
mod budget;
#[path = "../tests/common/ports.rs"]
mod ports;
#[allow(dead_code)]
#[path = "../tests/common/serve.rs"]
mod serve;
#[allow(dead_code)]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use budget::CpuBudget;
use serve::{Api, Serve};
use support::{RedisServer, cpu_secs, loadavg};
use switchyard::api::hash_key;
use switchyard::sim::{SimConfig, Simulator};

const DID: &str = "15551230000";
const KEY: &str = "fleet-bench-key";
const PASSWORD: &str = "fleet-bench-esl";
/// The nodes: two per instance of the fleet's phase (four, or six with three instances).
const PREFIXES: [&str; 6] = ["fbn01", "fbn02", "fbn03", "fbn04", "fbn05", "fbn06"];
/// Rooms per node and callers per room.
const ROOMS: usize = 2;
const CALLERS: usize = 4;
const WINDOW: Duration = Duration::from_secs(10);
/// Rounds of one instance, then two; the figure is the median round's ratio.
const ROUNDS: usize = 5;
/// Events a node lets queue for its slowest connection before its callers wait.
const MAX_QUEUED: usize = 2_000;

fn main() -> anyhow::Result<()> {
    support::bench_main(run)
}

fn config(listen: u16, redis: &str, sims: &[Simulator]) -> String {
    let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let mut text = format!(
        "listen = {}\nredis_url = {}\nnode_lease_ms = 1500\n{}\
         [limits]\nglobal_rps = 0\nconference_ms = 0\nconference_mute_ms = 0\n\
         conference_control_ms = 0\nconf_play_ms = 0\n\
         [[apps]]\nid = \"app1\"\nkey_sha256 = {}\ndids = [{}]\n",
        q(&format!("127.0.0.1:{listen}")),
        q(redis),
        serve::operator_toml(),
        q(&hash_key(KEY)),
        q(DID),
    );
    for (sim, prefix) in sims.iter().zip(PREFIXES) {
        text.push_str(&serve::node_toml(
            prefix,
            &sim.addr().to_string(),
            PASSWORD,
            "",
        ));
    }
    text
}

/// The events an instance has applied (every node's counter summed). A scrape that fails (a
/// saturated instance may answer late) is tried again: read as 0 it made a round's rate
/// negative.
async fn applied(api: &Api) -> f64 {
    counter(api, "switchyard_events_applied_total").await
}

/// An instance's counter `name`, every label summed.
async fn counter(api: &Api, name: &str) -> f64 {
    for _ in 0..20 {
        let answer = match api.metrics_request().send().await {
            Ok(r) if r.status().is_success() => r.text().await.ok(),
            _ => None,
        };
        if let Some(text) = answer {
            return text
                .lines()
                .filter(|l| l.starts_with(name))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no /metrics from {} in 20 tries", api.base);
}

/// How many nodes each instance applies, per `/readyz`.
async fn shares(apis: &[&Api]) -> Vec<usize> {
    let mut out = Vec::new();
    for api in apis {
        let (_, body) = api.call("GET", "/readyz", None).await;
        out.push(body["applies_events"].as_array().map_or(0, Vec::len));
    }
    out
}

/// Scripts Redis has run (`EVALSHA` calls, each one batch of room writes), from
/// `INFO commandstats`.
async fn store_writes(redis: &str) -> f64 {
    let Ok(client) = redis::Client::open(redis) else {
        return 0.0;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return 0.0;
    };
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// A `serve` process, in a CPU budget of its own if the run gives one (dropped after it: the
/// process is killed first, then its cgroup removed).
struct Instance {
    serve: Serve,
    budget: Option<CpuBudget>,
}

impl Instance {
    fn throttled(&self) -> u64 {
        self.budget.as_ref().map_or(0, CpuBudget::throttled)
    }
}

struct Phase {
    events_per_sec: f64,
    /// Each instance's share of it.
    applied: Vec<f64>,
    cpu: Vec<f64>,
    /// Times an instance was held back by its budget during the window (all instances).
    throttled: u64,
    /// Events per Redis script run: how well the owners batch.
    events_per_write: f64,
}

impl Phase {
    /// Events applied per second of the busiest instance's CPU.
    fn capacity(&self) -> f64 {
        let busiest = self.cpu.iter().cloned().fold(0.0, f64::max);
        self.events_per_sec / busiest.max(1e-9)
    }
}

async fn measure(redis: &str, instances: &[(&Instance, &Api)]) -> Phase {
    let writes_before = store_writes(redis).await;
    let throttled_before: u64 = instances.iter().map(|(i, _)| i.throttled()).sum();
    let before: Vec<(f64, f64)> = {
        let mut v = Vec::new();
        for (instance, api) in instances {
            v.push((applied(api).await, cpu_secs(instance.serve.pid())));
        }
        v
    };
    let started = Instant::now();
    tokio::time::sleep(WINDOW).await;
    let secs = started.elapsed().as_secs_f64();
    let mut events = 0.0;
    let mut each = Vec::new();
    let mut cpu = Vec::new();
    for ((instance, api), (applied_before, cpu_before)) in instances.iter().zip(before) {
        let delta = applied(api).await - applied_before;
        events += delta;
        each.push(delta / secs);
        cpu.push((cpu_secs(instance.serve.pid()) - cpu_before) / secs);
    }
    let writes = store_writes(redis).await - writes_before;
    let throttled = instances.iter().map(|(i, _)| i.throttled()).sum::<u64>() - throttled_before;
    Phase {
        events_per_sec: events / secs,
        applied: each,
        cpu,
        throttled,
        events_per_write: events / writes.max(1.0),
    }
}

async fn run() -> anyhow::Result<()> {
    let Some(redis) = RedisServer::start() else {
        bail!("fleet_events needs redis-server (apt-get install -y redis-server)");
    };
    let mut sims = Vec::new();
    // `FLEET_BENCH_INSTANCES=3`: the fleet's phase has three instances (and six nodes, two
    // each), against one: issue 59's x2.5.
    let fleet: usize = std::env::var("FLEET_BENCH_INSTANCES")
        .ok()
        .map(|v| v.parse())
        .transpose()
        .context("FLEET_BENCH_INSTANCES: 2 or 3")?
        .unwrap_or(2);
    if !(2..=3).contains(&fleet) {
        bail!("FLEET_BENCH_INSTANCES: 2 or 3");
    }
    let prefixes = &PREFIXES[..2 * fleet];
    for _ in prefixes {
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
    let sims = Arc::new(sims);
    let dir = std::env::temp_dir().join(format!("switchyard-fleet-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // `FLEET_BENCH_PIN=1`: each instance on a CPU of its own from its start (the first on CPU
    // 0, the second on CPU 1), its runtime sized to that one CPU.
    let pinned = std::env::var("FLEET_BENCH_PIN").is_ok_and(|v| v == "1");
    // `FLEET_BENCH_BUDGET=<percent>`: each instance may use that much of one CPU (a cgroup
    // quota of its own), and the nodes go at full rate unless a pace is set: each instance is
    // saturated, and the figure is the rate two budgets apply against one.
    let budget: Option<u64> = std::env::var("FLEET_BENCH_BUDGET")
        .ok()
        .map(|v| v.parse())
        .transpose()
        .context("FLEET_BENCH_BUDGET: a percentage of one CPU")?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let start = |n: usize| {
        let (dir, redis, sims) = (&dir, redis.url(), &sims);
        async move {
            let port = serve::free_port();
            let path = dir.join(format!("switchyard-{n}.toml"));
            std::fs::write(&path, config(port, &redis, sims)).unwrap();
            let base = format!("http://127.0.0.1:{port}");
            let serve =
                Serve::start_on(&path, &base, pinned.then(|| usize::from(n > 0) % cpus)).await;
            let budget = budget.map(|percent| {
                let name = format!("switchyard-fleet-bench-{}-{n}", std::process::id());
                CpuBudget::put(serve.pid(), &name, percent)
                    .expect("FLEET_BENCH_BUDGET needs root and a cgroup CPU controller")
            });
            (Instance { serve, budget }, Api::new(&base, "app1", KEY))
        }
    };
    let (first, api1) = start(0).await;
    // The rooms (spread over the nodes by placement) and their callers, each on its room's node.
    let mut rooms: Vec<(usize, String, Vec<String>)> = Vec::new();
    for r in 0..ROOMS * prefixes.len() {
        let (status, body) = api1
            .call(
                "POST",
                "/api/v1/conferences",
                Some(json!({ "name": format!("bench-{r}") })),
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
        let mut callers = Vec::new();
        for c in 0..CALLERS {
            let channel = sims[n]
                .inbound_call(DID, &format!("7{r:02}{c}"), "Bench")
                .context("call")?;
            let session = format!("{}-{channel}", PREFIXES[n]);
            serve::until(Duration::from_secs(10), "the call is stored", || async {
                let (s, b) = api1
                    .call("GET", &format!("/api/v1/sessions/{session}"), None)
                    .await;
                (s == 200 && b["state"] == "parked").then_some(())
            })
            .await;
            let path = format!("/api/v1/sessions/{session}/commands/conference/join");
            let (s, b) = api1
                .call("POST", &path, Some(json!({ "room_id": room })))
                .await;
            if s != 202 {
                bail!("join: {s} {b}");
            }
            callers.push(session);
        }
        rooms.push((n, room, callers));
    }
    serve::until(Duration::from_secs(20), "every member joined", || async {
        let mut all = true;
        for (_, room, callers) in &rooms {
            let (_, b) = api1
                .call(
                    "GET",
                    &format!("/api/v1/conferences/{room}/members?limit=100"),
                    None,
                )
                .await;
            all &= b["members"].as_array().map_or(0, Vec::len) == callers.len();
        }
        all.then_some(())
    })
    .await;

    // The load: every node mutes and unmutes its rooms' members, as fast as it goes.
    let running = Arc::new(AtomicBool::new(true));
    let mut load = Vec::new();
    let pace = Duration::from_millis(
        std::env::var("FLEET_BENCH_PACE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if budget.is_some() { 0 } else { 2 }),
    );
    for (n, room, _) in rooms.clone() {
        let (sims, running) = (sims.clone(), running.clone());
        load.push(tokio::task::spawn_blocking(move || {
            let list: Value =
                serde_json::from_str(&sims[n].api(&format!("conference {room} json_list")))
                    .unwrap_or_default();
            let ids: Vec<u64> = list[0]["members"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|m| m["type"] == "caller")
                .filter_map(|m| m["id"].as_u64())
                .collect();
            let mut mute = false;
            while running.load(Ordering::Relaxed) {
                mute = !mute;
                for id in &ids {
                    let verb = if mute { "unmute" } else { "mute" };
                    sims[n].api(&format!("conference {room} {verb} {id}"));
                }
                if pace > Duration::ZERO {
                    std::thread::sleep(pace);
                }
                // A node's callers do not run ahead of what its controller takes without end.
                while sims[n].queued_events() > MAX_QUEUED && running.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }));
    }
    // Rounds of one instance, then two (the second started, then stopped gracefully so the
    // first takes its nodes back): the machine's noise is spread over every round alike.
    let mut ratios = Vec::new();
    for round in 1..=ROUNDS {
        serve::until(
            Duration::from_secs(15),
            "one instance applies every node",
            || async { (shares(&[&api1]).await == [prefixes.len()]).then_some(()) },
        )
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let one = measure(&redis.url(), &[(&first, &api1)]).await;
        let mut others = Vec::new();
        for n in 1..fleet {
            others.push(start((round - 1) * (fleet - 1) + n).await);
        }
        let all: Vec<(&Instance, &Api)> = std::iter::once((&first, &api1))
            .chain(others.iter().map(|(i, a)| (i, a)))
            .collect();
        let apis: Vec<&Api> = all.iter().map(|(_, a)| *a).collect();
        // A newcomer is handed nodes once their saturated owner has applied up to where it
        // began to listen (`fleet.rs::catch_up`, at most 30 s).
        let joining = std::time::Instant::now();
        serve::until(
            Duration::from_secs(45),
            "the instances share the nodes",
            || async { (shares(&apis).await == vec![2; fleet]).then_some(()) },
        )
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let shared_after = joining.elapsed();
        // Takeovers whose kept events did not reach back to where the previous owner stopped.
        let mut gaps = 0.0;
        for api in &apis {
            gaps += counter(api, "switchyard_handover_gaps_total").await;
        }
        let two = measure(&redis.url(), &all).await;
        drop(all);
        for (other, _) in &mut others {
            other.serve.terminate();
        }
        println!(
            "fleet_events round {round}: 4 simulated nodes, {} rooms x {CALLERS} members muted/unmuted at full rate, {}s windows, load {}",
            rooms.len(),
            WINDOW.as_secs(),
            loadavg()
        );
        for (name, p) in [
            ("1 instance ".to_owned(), &one),
            (format!("{fleet} instances"), &two),
        ] {
            println!(
                "  {name}: {:>8.0} events/s applied ({}); CPU per instance {}; {:>8.0} events per busiest instance's CPU-second; {:.1} events per store write{}",
                p.events_per_sec,
                p.applied
                    .iter()
                    .map(|a| format!("{a:.0}"))
                    .collect::<Vec<_>>()
                    .join(" + "),
                p.cpu
                    .iter()
                    .map(|c| format!("{:.0}%", c * 100.0))
                    .collect::<Vec<_>>()
                    .join(" + "),
                p.capacity(),
                p.events_per_write,
                budget.map_or(String::new(), |_| format!(
                    "; held back by the budget {} times",
                    p.throttled
                )),
            );
        }
        // With a budget each instance is saturated: the rates compare. Without one the load's
        // pace sets the rate: the capacities (rate per busiest CPU) compare.
        let ratio = if budget.is_some() {
            two.events_per_sec / one.events_per_sec
        } else {
            two.capacity() / one.capacity()
        };
        let what = if budget.is_some() {
            "events/s applied"
        } else {
            "capacity"
        };
        println!(
            "  {what}, {fleet} instances vs 1: x{ratio:.2}; the nodes shared {:.1} s after the newcomers started; handover gaps counted so far: {gaps}",
            shared_after.as_secs_f64()
        );
        ratios.push(ratio);
    }
    running.store(false, Ordering::Relaxed);
    for task in load {
        let _ = task.await;
    }
    let mut sorted = ratios.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "fleet_events: {}, {fleet} instances vs 1, median of {ROUNDS} rounds: x{:.2} (rounds: {}; goal x{}; before the fleet shared the nodes: x1)",
        match budget {
            Some(percent) => format!("events/s applied with {percent}% of a CPU per instance"),
            None => "capacity".to_owned(),
        },
        sorted[sorted.len() / 2],
        ratios
            .iter()
            .map(|r| format!("x{r:.2}"))
            .collect::<Vec<_>>()
            .join(", "),
        if fleet == 3 { "2.5" } else { "1.8" },
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
