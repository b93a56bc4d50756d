//! Cross-node join latency on real FreeSWITCH nodes (issue 18): a join request → the
//! `conference.member.joined` webhook, for calls on the room's own node (local) and for calls on
//! another node (carried over the nodes' SIP link, `node::bridge`), in the same run.
//!
//! Everything is started here on free ports and killed by pid at the end: two FreeSWITCH nodes
//! with `freeswitch-conf/` (`tests/common/freeswitch.rs`), a `redis-server`, one SIPp process per
//! node placing the calls (the live tests' scenario: G.711 audio, parked by the node), and the
//! controller in this process as `switchyard serve` assembles it (`start_controller`: Redis
//! store, cooldowns off, webhooks to a receiver in this process), its API on a local port.
//!
//! Five rooms on node A. Rounds alternate local and cross-node: every call of the kind joins a
//! room (spread over the five) at a steady 20/s, one request per tick; then every call leaves
//! (not measured). 200 joins of each kind (`CROSS_NODE_JOINS`). Per join, on this process's
//! monotonic clock: request sent → webhook received. Prints p50/p90/p99/max of both kinds, the
//! ratio, and whether issue 18's goal holds (cross-node p99 < 300 ms).
//!
//! `cargo bench --bench cross_node_join` (needs redis-server, SIPp and FreeSWITCH:
//! `scripts/test-deps.sh`). Without `--bench` (as `cargo test --benches` runs it) it does nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[path = "../tests/common/freeswitch.rs"]
mod freeswitch;
#[path = "../tests/common/ports.rs"]
mod ports;
#[allow(dead_code)]
#[path = "../tests/common/serve.rs"]
mod serve;
#[allow(dead_code)]
#[path = "../tests/common/sipp.rs"]
mod sipp;
#[allow(dead_code)]
mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use freeswitch::FreeSwitch;
use serve::Api;
use support::{RedisServer, SippLoad, dist, loadavg};
use switchyard::api::hash_key;
use switchyard::conference::{AppId, SessionState};
use switchyard::server::config::Config;
use switchyard::store::Store;
use switchyard::store::redis::RedisStore;

const DID: &str = "15551230000";
const APP: &str = "xbench";
const KEY: &str = "cross-node-bench-key";
const SECRET: &str = "whsec_c3dpdGNoeWFyZCB3ZWJob29rIHRlc3Qgc2VjcmV0ISE=";
const PREFIXES: [&str; 2] = ["bnoda", "bnodb"];
/// Calls per node; each round joins all of one node's calls.
const CALLS: usize = 40;
const ROOMS: usize = 5;
const RATE: u32 = 20;

/// When each session's `conference.member.joined` (and `…left`) webhooks arrived.
#[derive(Default)]
struct Seen(Mutex<Vec<(String, String, Instant)>>);

fn main() -> anyhow::Result<()> {
    support::bench_main(run)
}

async fn receiver(seen: Arc<Seen>) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let hook = move |body: axum::body::Bytes| {
        let at = Instant::now();
        let seen = seen.clone();
        async move {
            if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
                let entry = (text(&v["type"]), text(&v["data"]["uuid"]), at);
                seen.0.lock().unwrap().push(entry);
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

fn config(redis: &str, nodes: &[FreeSwitch; 2], hook: &str) -> anyhow::Result<Config> {
    let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let mut text = format!(
        "redis_url = {}\n[limits]\nglobal_rps = 0\nconf_play_ms = 0\nconference_control_ms = 0\n\
         conference_ms = 0\nconference_mute_ms = 0\n\
         [webhooks]\nallow_private = true\nretry_schedule_secs = [1, 1, 1]\ntimeout_ms = 5000\n",
        q(redis)
    );
    for (node, prefix) in nodes.iter().zip(PREFIXES) {
        text.push_str(&format!(
            "[[nodes]]\nname = {}\nprefix = {}\nesl = {}\npassword = {}\nprofile = \"switchyard\"\n\
             recordings_dir = {}\nnode_sip = {}\n",
            q(prefix),
            q(prefix),
            q(&node.esl()),
            q(&node.password),
            q(&node.recordings().to_string_lossy()),
            q(&node.node_sip().to_string()),
        ));
    }
    text.push_str(&format!(
        "[[apps]]\nid = {}\nkey_sha256 = {}\nwebhook_url = {}\nwebhook_secret = {}\ndids = [{}]\n",
        q(APP),
        q(&hash_key(KEY)),
        q(hook),
        q(SECRET),
        q(DID)
    ));
    Config::parse(&text, |_| None).map_err(|e| anyhow::anyhow!("{e}"))
}

async fn within<F, Fut>(limit: Duration, what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        if Instant::now() > deadline {
            bail!("timed out after {limit:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn run() -> anyhow::Result<()> {
    let load_before = loadavg();
    let (a, b) = tokio::join!(
        tokio::task::spawn_blocking(FreeSwitch::start),
        tokio::task::spawn_blocking(FreeSwitch::start)
    );
    let nodes = [a?, b?];
    let redis = RedisServer::start().context("redis-server: run scripts/test-deps.sh")?;
    let seen = Arc::new(Seen::default());
    let hook = receiver(seen.clone()).await?;
    let config = config(&redis.url(), &nodes, &hook)?;
    let store = RedisStore::connect(&redis.url()).await?;
    let stop = CancellationToken::new();
    let state = switchyard::server::start_controller(Arc::new(store), &config, &stop)?;
    for node in state.rooms().pool().nodes().iter() {
        if !node.wait_up(Duration::from_secs(20)).await {
            bail!("node {} not up", node.config.prefix);
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let router = switchyard::api::router(state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let api = Api::new(&base, APP, KEY);
    // Rooms on node A (placement alternates between the two empty nodes).
    let mut rooms = Vec::new();
    while rooms.len() < ROOMS {
        let (status, body) = api
            .call(
                "POST",
                "/api/v1/conferences",
                Some(json!({ "name": format!("r{}", uuid::Uuid::new_v4().simple()) })),
            )
            .await;
        if status != 201 {
            bail!("create: {status} {body}");
        }
        let id = body["room_id"].as_str().unwrap_or_default().to_owned();
        if id.starts_with(PREFIXES[0]) {
            rooms.push(id);
        }
    }
    // The calls, parked on each node.
    let mut callers = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let sipp = SippLoad::start(node.sip(), sipp::scenario_path(), DID, CALLS, PREFIXES[i])
            .context("sipp: run scripts/test-deps.sh")?;
        callers.push(sipp);
    }
    let app = AppId::parse(APP)?;
    let store = state.rooms().store_arc();
    within(
        Duration::from_secs(30),
        "every call parked and stored",
        || async { parked(&store, &app).await.iter().all(|s| s.len() == CALLS) },
    )
    .await?;
    let sessions = parked(&store, &app).await;
    let joins: usize = std::env::var("CROSS_NODE_JOINS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut samples: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut round = 0;
    while samples.iter().any(|s| s.len() < joins) {
        for (kind, calls) in sessions.iter().enumerate() {
            if samples[kind].len() >= joins {
                continue;
            }
            let left = joins - samples[kind].len();
            let calls: Vec<&String> = calls.iter().take(left).collect();
            samples[kind].extend(join_round(&api, &seen, &rooms, &calls, round).await?);
            leave_round(&api, &seen, &calls).await?;
            round += 1;
        }
        if callers.iter_mut().any(|c| !c.alive()) {
            bail!("a SIPp process stopped");
        }
    }
    stop.cancel();
    report(&samples, &load_before);
    drop(callers);
    Ok(())
}

/// The app's parked sessions on each node.
async fn parked(store: &RedisStore, app: &AppId) -> [Vec<String>; 2] {
    let page = store.sessions_of_app(app, None, 10_000).await;
    let parked: Vec<String> = page
        .map(|p| p.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.state == SessionState::Parked)
        .map(|s| s.id.to_string())
        .collect();
    PREFIXES.map(|p| {
        parked
            .iter()
            .filter(|s| s.starts_with(p))
            .cloned()
            .collect()
    })
}

/// Joins every call of `calls` into the rooms at [`RATE`]; the latency of each (ms).
async fn join_round(
    api: &Api,
    seen: &Seen,
    rooms: &[String],
    calls: &[&String],
    round: usize,
) -> anyhow::Result<Vec<f64>> {
    let mut tick = tokio::time::interval(Duration::from_secs(1) / RATE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let mut tasks = Vec::new();
    for (i, session) in calls.iter().enumerate() {
        tick.tick().await;
        let room = &rooms[(i + round) % rooms.len()];
        let path = format!("/api/v1/sessions/{session}/commands/conference/join");
        sent.insert((*session).clone(), Instant::now());
        let api = api.clone();
        let body = json!({ "room_id": room });
        tasks.push(tokio::spawn(async move {
            api.call("POST", &path, Some(body)).await
        }));
    }
    for t in tasks {
        let (status, body) = t.await?;
        if status != 202 {
            bail!("join: {status} {body}");
        }
    }
    let joined = |s: &str| {
        seen.0
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(kind, session, _)| kind == "conference.member.joined" && session == s)
            .map(|(_, _, at)| *at)
    };
    within(Duration::from_secs(30), "every joined webhook", || {
        std::future::ready(
            calls
                .iter()
                .all(|s| joined(s).is_some_and(|at| at >= sent[*s])),
        )
    })
    .await?;
    Ok(calls
        .iter()
        .filter_map(|s| {
            let at = joined(s)?;
            Some(at.saturating_duration_since(sent[*s]).as_secs_f64() * 1000.0)
        })
        .collect())
}

/// Every call leaves its room (not measured), and the webhooks say so.
async fn leave_round(api: &Api, seen: &Seen, calls: &[&String]) -> anyhow::Result<()> {
    let since = Instant::now();
    for session in calls {
        let path = format!("/api/v1/sessions/{session}/commands/conference/leave");
        let (status, body) = api.call("POST", &path, Some(json!({}))).await;
        if status != 202 {
            bail!("leave: {status} {body}");
        }
    }
    within(Duration::from_secs(30), "every left webhook", || {
        let hooks = seen.0.lock().unwrap();
        let done = calls.iter().all(|s| {
            hooks.iter().any(|(kind, session, at)| {
                kind == "conference.member.left" && session == *s && *at >= since
            })
        });
        std::future::ready(done)
    })
    .await
}

fn report(samples: &[Vec<f64>; 2], load_before: &str) {
    println!(
        "cross_node_join: join → conference.member.joined, {RATE} joins/s, real FreeSWITCH ×2 on loopback"
    );
    println!("load average before {load_before}, after {}", loadavg());
    println!(
        "{:<12} {:>5} {:>8} {:>8} {:>8} {:>8}",
        "kind", "n", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    let mut p99 = [0.0; 2];
    for (kind, name) in ["local", "cross-node"].iter().enumerate() {
        let d = dist(samples[kind].iter().copied());
        p99[kind] = d.p99;
        println!(
            "{name:<12} {:>5} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
            d.n, d.p50, d.p90, d.p99, d.max
        );
    }
    let (l, c) = (
        dist(samples[0].iter().copied()),
        dist(samples[1].iter().copied()),
    );
    println!(
        "cross-node / local: p50 ×{:.2}, p99 ×{:.2}",
        c.p50 / l.p50,
        c.p99 / l.p99
    );
    println!(
        "issue 18 goal (cross-node p99 < 300 ms): {}",
        if p99[1] < 300.0 { "met" } else { "NOT met" }
    );
}
