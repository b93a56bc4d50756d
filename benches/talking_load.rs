//! Talking events at scale (issue 17): 1,000 members in 50 rooms on the simulator, every caller
//! starting or stopping to speak every 2–5 s (uniformly drawn), as a busy set of meetings does.
//!
//! Started here, on free ports, and killed by pid at the end: a `redis-server`, the simulator
//! (in this process, with the bench's own Event Socket connection to it), a webhook receiver
//! (axum, answering 204) and the controller as `switchyard serve` (the binary). Setup: 50 rooms,
//! 1,000 calls joined 20 a room and unmuted through the API. Then three phases of the same
//! traffic, each with a fresh controller on the same Redis and simulator:
//!
//! 1. `not asked`: the app has no `talking_events`; the controller receives the events and
//!    drops them (the baseline: what talking costs an app that does not want it).
//! 2. `interval 200 ms` (the default `talking_interval_ms`).
//! 3. `interval 0` (every start-talking and stop-talking applied and told as it comes).
//!
//! Per phase, over a 20 s window after a 10 s warm-up: the talking events the simulator fired
//! per second, the webhooks per second, the controller's CPU (its user + system time over the
//! window, from /proc/<pid>/stat, in % of one core), its resident memory, and the lag from the
//! talking event (when the bench's connection received it) to the webhook telling it (the
//! member's newest event with that state before the webhook), p50 / p99 / max.
//!
//! `cargo bench --bench talking_load`. `TALKING_LOAD_SECS` sets the window (default 20). Without
//! `--bench` (as `cargo test --benches` runs it) it does nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/ports.rs"]
mod ports;
#[allow(dead_code)]
#[path = "../tests/common/serve.rs"]
mod serve;
#[allow(dead_code)]
mod support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use serde_json::{Value, json};

use serve::{Api, Serve};
use support::RedisServer;
use switchyard::api::hash_key;
use switchyard::esl::{Client, ClientConfig, EventFormat, EventSet, Password};
use switchyard::sim::{SimConfig, Simulator};

const APP: &str = "talkers";
const KEY: &str = "talking-load-bench-key";
const DID: &str = "15551230001";
const PREFIX: &str = "tlk01";
const ROOMS: usize = 50;
const MEMBERS: usize = 1000;
/// A fresh controller resyncs 50 rooms and its webhook dispatcher catches up first.
const WARM_UP: Duration = Duration::from_secs(10);

fn main() -> anyhow::Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("talking_load: run it with `cargo bench --bench talking_load`");
        return Ok(());
    }
    let secs: u64 = std::env::var("TALKING_LOAD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(20);
    let redis = RedisServer::start().ok_or_else(|| {
        anyhow!("redis-server did not start (install it: apt install redis-server)")
    })?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(&redis, Duration::from_secs(secs)))
}

/// What the bench saw: talking events at its own connection, webhooks at the receiver.
#[derive(Default)]
struct Seen {
    /// channel → (talking, when received), in order.
    events: Mutex<HashMap<String, Vec<(bool, Instant)>>>,
    /// (channel, talking, when received).
    hooks: Mutex<Vec<(String, bool, Instant)>>,
}

async fn receiver(seen: Arc<Seen>) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let hook = move |body: axum::body::Bytes| {
        let at = Instant::now();
        let seen = seen.clone();
        async move {
            if let Ok(v) = serde_json::from_slice::<Value>(&body)
                && v["type"] == "conference.member.talking"
            {
                let session = v["data"]["uuid"].as_str().unwrap_or_default();
                let channel = session.get(PREFIX.len() + 1..).unwrap_or_default();
                seen.hooks.lock().unwrap().push((
                    channel.to_owned(),
                    v["data"]["talking"] == true,
                    at,
                ));
            }
            axum::http::StatusCode::NO_CONTENT
        }
    };
    let app = axum::Router::new().route("/hook", axum::routing::post(hook));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}/hook"))
}

/// The bench's own connection to the simulator: every start-talking / stop-talking.
async fn watch(sim: &Simulator, seen: Arc<Seen>) -> anyhow::Result<Client> {
    let (client, mut events) = Client::connect(
        &sim.addr().to_string(),
        &Password::new("ClueCon")?,
        ClientConfig::default(),
    )
    .await?;
    client
        .subscribe(
            EventFormat::Plain,
            EventSet::new().subclass("conference::maintenance")?,
        )
        .await?;
    tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            let at = Instant::now();
            let on = match e.header("Action").as_deref() {
                Some("start-talking") => true,
                Some("stop-talking") => false,
                _ => continue,
            };
            if let Some(channel) = e.unique_id() {
                let mut events = seen.events.lock().unwrap();
                events
                    .entry(channel.into_owned())
                    .or_default()
                    .push((on, at));
            }
        }
    });
    Ok(client)
}

fn write_config(
    path: &Path,
    listen: &str,
    redis: &str,
    esl: &str,
    hook: &str,
    talking: Option<u64>,
) -> anyhow::Result<()> {
    let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let text = format!(
        "listen = {}\nredis_url = {}\ncursor_secret = \"talking-load-cursor-secret-0123456789\"\n\
         [limits]\nglobal_rps = 0\nconf_play_ms = 0\nconference_control_ms = 0\n\
         conference_ms = 0\nconference_mute_ms = 0\ntalking_interval_ms = {}\n\
         [webhooks]\nallow_private = true\nretry_schedule_secs = [1, 1, 1]\ntimeout_ms = 5000\n\
         [[nodes]]\nname = \"sim\"\nprefix = {}\nesl = {}\npassword = \"ClueCon\"\n\
         [[apps]]\nid = {}\nkey_sha256 = {}\nwebhook_url = {}\n\
         webhook_secret = \"whsec_c3dpdGNoeWFyZCB3ZWJob29rIHRlc3Qgc2VjcmV0ISE=\"\n\
         dids = [{}]\ntalking_events = {}\n",
        q(listen),
        q(redis),
        talking.unwrap_or(0),
        q(PREFIX),
        q(esl),
        q(APP),
        q(&hash_key(KEY)),
        q(hook),
        q(DID),
        talking.is_some(),
    );
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// (user + system ticks, resident pages) of a process.
fn cpu_and_rss(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let num = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 (1-based), rss 24; `fields` starts at field 3.
    (num(11) + num(12), num(21))
}

/// A small xorshift: the toggle times need spread, not quality.
struct Rng(u64);

impl Rng {
    fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        lo + (hi - lo).mul_f64((self.0 % 10_000) as f64 / 10_000.0)
    }
}

struct Phase {
    name: &'static str,
    talking: Option<u64>,
}

async fn run(redis: &RedisServer, window: Duration) -> anyhow::Result<()> {
    let sim = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse()?,
        heartbeat: Some(Duration::from_secs(5)),
        ..SimConfig::default()
    })
    .await?;
    let sim = Arc::new(sim);
    let esl = sim.addr().to_string();
    let seen = Arc::new(Seen::default());
    let hook = receiver(seen.clone()).await?;
    let _watch = watch(&sim, seen.clone()).await?;
    let dir = std::env::temp_dir().join(format!("switchyard-talking-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("switchyard.toml");
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let api = Api::new(&base, APP, KEY);
    let start = |talking: Option<u64>| {
        let (config, base, hook, redis, esl) = (
            config.clone(),
            base.clone(),
            hook.clone(),
            redis.url(),
            esl.clone(),
        );
        async move {
            write_config(
                &config,
                &format!("127.0.0.1:{port}"),
                &redis,
                &esl,
                &hook,
                talking,
            )?;
            anyhow::Ok(Serve::start(&config, &base).await)
        }
    };

    // Setup: rooms, calls joined and unmuted.
    eprintln!("talking_load: {ROOMS} rooms, {MEMBERS} calls joined and unmuted…");
    let serve = start(None).await?;
    let mut rooms = Vec::new();
    for i in 0..ROOMS {
        let (status, body) = api
            .call(
                "POST",
                "/api/v1/conferences",
                Some(json!({ "name": format!("room-{i}") })),
            )
            .await;
        anyhow::ensure!(status == 201, "create room: {status} {body}");
        rooms.push(body["room_id"].as_str().unwrap_or_default().to_owned());
    }
    let mut channels = Vec::new();
    for i in 0..MEMBERS {
        let channel = sim
            .inbound_call(DID, &format!("{}", 2000 + i), "Caller")
            .ok_or_else(|| anyhow!("sim_inbound refused"))?;
        let session = format!("{PREFIX}-{channel}");
        let room = &rooms[i % ROOMS];
        let join = format!("/api/v1/sessions/{session}/commands/conference/join");
        let unmute = format!("/api/v1/sessions/{session}/commands/conference/unmute");
        serve::until(Duration::from_secs(10), "join accepted", || async {
            let (s, _) = api
                .call("POST", &join, Some(json!({ "room_id": room })))
                .await;
            (s == 202 || s == 200).then_some(())
        })
        .await;
        channels.push((channel, unmute));
    }
    // Unmuted once joined (409 while still joining; "already" once done).
    for (_, unmute) in &channels {
        serve::until(Duration::from_secs(20), "unmute accepted", || async {
            let (s, body) = api.call("POST", unmute, Some(json!({}))).await;
            let already = body["error"]
                .as_str()
                .is_some_and(|e| e.contains("already"));
            (s == 202 || already).then_some(())
        })
        .await;
    }
    let channels: Vec<String> = channels.into_iter().map(|(c, _)| c).collect();
    for room in &rooms {
        serve::until(Duration::from_secs(30), "members unmuted", || async {
            let m = api.members(room).await;
            (m.len() == MEMBERS / ROOMS && m.iter().all(|(_, muted)| !muted)).then_some(())
        })
        .await;
    }
    drop(serve);

    // The callers' voices, toggled for the whole run.
    let toggler = {
        let channels = channels.clone();
        let s = sim.clone();
        tokio::spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
            let now = Instant::now();
            let (lo, hi) = (Duration::from_secs(2), Duration::from_secs(5));
            let mut next: Vec<(Instant, bool)> = channels
                .iter()
                .map(|_| (now + rng.between(Duration::ZERO, hi), false))
                .collect();
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            loop {
                tick.tick().await;
                let now = Instant::now();
                for (i, (due, on)) in next.iter_mut().enumerate() {
                    if *due <= now {
                        *on = !*on;
                        s.caller_talk(&channels[i], *on);
                        *due = now + rng.between(lo, hi);
                    }
                }
            }
        })
    };

    let phases = [
        Phase {
            name: "not asked",
            talking: None,
        },
        Phase {
            name: "interval 200 ms",
            talking: Some(200),
        },
        Phase {
            name: "interval 0",
            talking: Some(0),
        },
    ];
    let tick = ticks_per_second();
    let page = 4096u64;
    println!(
        "\ntalking_load: {MEMBERS} members in {ROOMS} rooms, each toggling every 2–5 s; {} s windows",
        window.as_secs()
    );
    println!(
        "{:<16} {:>10} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9}",
        "phase", "events/s", "hooks/s", "CPU %", "RSS MiB", "lag p50", "lag p99", "lag max"
    );
    for phase in phases {
        let serve = start(phase.talking).await?;
        let pid = serve.pid();
        tokio::time::sleep(WARM_UP).await;
        let from = Instant::now();
        let (cpu0, _) = cpu_and_rss(pid);
        let events0: usize = seen.events.lock().unwrap().values().map(Vec::len).sum();
        let hooks0 = seen.hooks.lock().unwrap().len();
        tokio::time::sleep(window).await;
        let (cpu1, rss) = cpu_and_rss(pid);
        let elapsed = from.elapsed().as_secs_f64();
        let events1: usize = seen.events.lock().unwrap().values().map(Vec::len).sum();
        let hooks: Vec<(String, bool, Instant)> = seen.hooks.lock().unwrap()[hooks0..].to_vec();
        let lags = lags(&seen, &hooks, from);
        let cpu = (cpu1 - cpu0) as f64 / tick as f64 / elapsed * 100.0;
        println!(
            "{:<16} {:>10.0} {:>10.0} {:>10.1} {:>9.1} {:>9} {:>9} {:>9}",
            phase.name,
            (events1 - events0) as f64 / elapsed,
            hooks.len() as f64 / elapsed,
            cpu,
            (rss * page) as f64 / (1024.0 * 1024.0),
            pct(&lags, 0.50),
            pct(&lags, 0.99),
            pct(&lags, 1.0),
        );
        drop(serve);
    }
    toggler.abort();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Each webhook's lag (ms) behind the member's newest talking event with its state received
/// before it.
fn lags(seen: &Seen, hooks: &[(String, bool, Instant)], from: Instant) -> Vec<f64> {
    let events = seen.events.lock().unwrap();
    let mut lags: Vec<f64> = hooks
        .iter()
        .filter(|(_, _, at)| *at >= from)
        .filter_map(|(channel, on, at)| {
            let told = events
                .get(channel)?
                .iter()
                .rev()
                .find(|(state, when)| state == on && when <= at)?;
            Some(at.duration_since(told.1).as_secs_f64() * 1000.0)
        })
        .collect();
    lags.sort_by(f64::total_cmp);
    lags
}

fn pct(sorted: &[f64], p: f64) -> String {
    if sorted.is_empty() {
        return "-".into();
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    format!("{:.1}", sorted[i.min(sorted.len() - 1)])
}

fn ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}
