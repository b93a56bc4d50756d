//! Scale, simulated (issue 40): 50 simulated nodes, 1,000 rooms of 10 members (10,000
//! members, 200 a node), first under one `switchyard serve` on one Redis, then under a fleet of
//! three on a three-master Redis Cluster (`redis_shards = 3`), each at rising rates of events
//! until the p99 from a command to its webhook passes 100 ms (or the controllers stop keeping
//! up with what is offered).
//!
//! Everything is started here on free ports and stopped at the end: the `redis-server`s, the
//! simulators (in this process), the `serve` processes, a webhook receiver (in this process).
//! One app owns every room (its list is 1,000 rooms long); its calls come in on its DID, are
//! parked, and join their rooms through the API, a room's calls on the room's node.
//!
//! The load, at each rate R (events a second), half of it each:
//! - **commands**: mute and unmute through the API, the sessions in turn, spread over the
//!   instances as a load balancer would; each causes one `mute-member`/`unmute-member` event and
//!   one webhook. Timed from the request sent to its webhook received (the command's round trip
//!   to the node is in it: it is stricter than event → webhook);
//! - **talking**: the simulated callers start and stop talking (`sim_talk`), the sessions in
//!   turn; each is one `start-talking`/`stop-talking` event and one `conference.member.talking`
//!   webhook, held by the default `talking_interval` (200 ms) as in production. Timed from the
//!   event to its webhook (the hold is in it).
//!
//! Reported per phase: Redis memory per room and per member, controller RSS per 1,000
//! members, `GET /conferences` p50/p99 (a page of 200 of the 1,000 live rooms, and walking all
//! five pages), the time to resync one node of 200 members after its connections drop
//! (`switchyard_node_resync_seconds` on the owner, and from the drop to the node up again), and
//! per rate: events applied a second (each instance), the latencies, CPU per applied event
//! (controllers, Redis) and each process's share of a core (the bottleneck at the limit).
//! The edge's per-app shares and quotas are off: one app offers the whole load on purpose.
//!
//! `cargo bench --bench scale` (needs redis-server and redis-cli; about 6 minutes). Variables:
//! `SCALE_PHASES` (`single,fleet`), `SCALE_RATES` (events a second, default
//! `500,1000,2000,3000,4000,6000`), `SCALE_STEP_SECS` (default 10), `SCALE_NODES` (50),
//! `SCALE_ROOMS` (1000), `SCALE_MEMBERS` (per room, 10). Without `--bench` (as
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
#[path = "../tests/common/serve.rs"]
mod serve;
#[allow(dead_code)]
mod support;

#[path = "scale/load.rs"]
mod load;
#[path = "scale/measure.rs"]
mod measure;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use serde_json::json;

use load::{Member, load};
use measure::{Hooks, Redis, metric_sum, metrics, quiet, receiver};
use redis_cluster::RedisCluster;
use redis_server::RedisServer;
use serve::{Api, Serve};
use support::{dist, env_or, rss_kib};
use switchyard::api::hash_key;
use switchyard::sim::{SimConfig, Simulator};

const DID: &str = "15551230000";
const KEY: &str = "scale-bench-key";
const PASSWORD: &str = "scale-bench-esl";
const HOOK_SECRET: &str = "whsec_c3dpdGNoeWFyZCB3ZWJob29rIHRlc3Qgc2VjcmV0ISE=";
/// The goal at every rate: a command's webhook within this, at the 99th percentile.
const P99_GOAL_MS: f64 = 100.0;
const WARMUP: Duration = Duration::from_secs(2);

fn main() -> anyhow::Result<()> {
    support::bench_main(run)
}

/// What is simulated.
struct Shape {
    nodes: usize,
    rooms: usize,
    per_room: usize,
    step: Duration,
    rates: Vec<u64>,
}

fn config(listen: u16, redis: &Redis, sims: &[(String, Simulator)], hook: &str) -> String {
    let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let mut text = format!(
        "listen = {}\n{}{}node_lease_ms = 3000\n\
         [limits]\nglobal_rps = 0\nconference_ms = 0\nconference_mute_ms = 0\n\
         conference_control_ms = 0\nconf_play_ms = 0\n\
         requests_in_flight_per_app = 0\nconnections_per_client = 0\n\
         node_sessions_reserved_pct = 0\n\
         [quotas]\nlive_rooms = 0\nmembers_per_room = 0\n\
         [webhooks]\nallow_private = true\n\
         [[apps]]\nid = \"app1\"\nkey_sha256 = {}\ndids = [{}]\nwebhook_url = {}\n\
         webhook_secret = {}\ntalking_events = true\n",
        q(&format!("127.0.0.1:{listen}")),
        redis.toml(),
        serve::operator_toml(),
        q(&hash_key(KEY)),
        q(DID),
        q(hook),
        q(HOOK_SECRET),
    );
    for (prefix, sim) in sims {
        text.push_str(&serve::node_toml(
            prefix,
            &sim.addr().to_string(),
            PASSWORD,
            "",
        ));
    }
    text
}

async fn run() -> anyhow::Result<()> {
    let shape = Shape {
        nodes: env_or("SCALE_NODES", 50) as usize,
        rooms: env_or("SCALE_ROOMS", 1000) as usize,
        per_room: env_or("SCALE_MEMBERS", 10) as usize,
        step: Duration::from_secs(env_or("SCALE_STEP_SECS", 10)),
        rates: std::env::var("SCALE_RATES")
            .unwrap_or_else(|_| "500,1000,2000,3000,4000,6000".into())
            .split(',')
            .filter_map(|r| r.trim().parse().ok())
            .collect(),
    };
    let phases = std::env::var("SCALE_PHASES").unwrap_or_else(|_| "single,fleet".into());
    println!(
        "scale: {} nodes, {} rooms of {} members; steps of {:?} at {:?} events/s; load {}",
        shape.nodes,
        shape.rooms,
        shape.per_room,
        shape.step,
        shape.rates,
        support::loadavg()
    );
    for phase in phases.split(',') {
        match phase.trim() {
            "single" => {
                let redis = tokio::task::spawn_blocking(RedisServer::start).await?;
                run_phase("one instance, one Redis", &shape, Redis::Single(redis), 1).await?;
            }
            "fleet" => {
                let cluster = tokio::task::spawn_blocking(RedisCluster::start).await?;
                run_phase(
                    "three instances, three-master cluster",
                    &shape,
                    Redis::Cluster(cluster),
                    3,
                )
                .await?;
            }
            other => bail!("SCALE_PHASES: unknown phase {other:?} (single, fleet)"),
        }
    }
    Ok(())
}

async fn run_phase(name: &str, shape: &Shape, redis: Redis, n: usize) -> anyhow::Result<()> {
    println!("\n## {name}");
    let mut sims = Vec::new();
    for i in 0..shape.nodes {
        let sim = Simulator::start(SimConfig {
            listen: "127.0.0.1:0".parse()?,
            password: PASSWORD.into(),
            heartbeat: Some(Duration::from_secs(5)),
            ..SimConfig::default()
        })
        .await?;
        sims.push((format!("sc{:03}", i + 1), sim));
    }
    let hooks = Arc::new(Hooks::default());
    let hook = receiver(hooks.clone()).await?;
    let dir = std::env::temp_dir().join(format!("switchyard-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut instances = Vec::new();
    let mut apis = Vec::new();
    for i in 0..n {
        let port = serve::free_port();
        let path = dir.join(format!("switchyard-{i}.toml"));
        std::fs::write(&path, config(port, &redis, &sims, &hook))?;
        let base = format!("http://127.0.0.1:{port}");
        instances.push(Serve::start(&path, &base).await);
        apis.push(Api::new(&base, "app1", KEY));
    }
    let pids: Vec<u32> = instances.iter().map(Serve::pid).collect();
    serve::until(
        Duration::from_secs(60),
        "every node applied by one instance",
        || async {
            let mut shares = 0;
            for a in &apis {
                let (status, body) = a.call("GET", "/readyz", None).await;
                if status != 200 {
                    return None;
                }
                shares += body["applies_events"].as_array().map_or(0, Vec::len);
            }
            (shares == shape.nodes).then_some(())
        },
    )
    .await;
    quiet(&apis).await;
    let memory0 = redis.used_memory().await;
    let outbox0 = redis.outbox_bytes().await;
    let rss0: u64 = pids.iter().map(|p| rss_kib(*p)).sum();

    // The rooms, spread over the instances.
    let began = Instant::now();
    let rooms: Vec<String> = futures_util::stream::iter(0..shape.rooms)
        .map(|i| {
            let api = apis[i % n].clone();
            async move {
                let body = json!({ "name": format!("scale-{i}") });
                let (status, body) = api.call("POST", "/api/v1/conferences", Some(body)).await;
                match body["room_id"].as_str() {
                    Some(id) if status == 201 => Ok(id.to_owned()),
                    _ => Err(anyhow::anyhow!("room: {status} {body}")),
                }
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    println!(
        "  {} rooms created in {:.1} s",
        rooms.len(),
        began.elapsed().as_secs_f64()
    );
    quiet(&apis).await;
    let memory1 = redis.used_memory().await;
    let outbox1 = redis.outbox_bytes().await;

    // The calls, on their room's node, then their joins.
    let by_prefix: HashMap<&str, usize> = sims
        .iter()
        .enumerate()
        .map(|(i, (p, _))| (p.as_str(), i))
        .collect();
    let mut members = Vec::new();
    let mut joins = Vec::new();
    for (r, room) in rooms.iter().enumerate() {
        let sim = *by_prefix.get(&room[..5]).context("the room's node")?;
        for c in 0..shape.per_room {
            let channel = sims[sim]
                .1
                .inbound_call(DID, &format!("7{r:04}{c:02}"), "Scale")
                .context("a simulated call")?;
            let session = format!("{}-{channel}", sims[sim].0);
            joins.push((session.clone(), room.clone()));
            members.push(Member {
                session,
                sim,
                channel,
                muted: false,
                talking: false,
            });
        }
    }
    let began = Instant::now();
    let joins = joins.into_iter().map(|(session, room)| {
        (
            format!("/api/v1/sessions/{session}/commands/conference/join"),
            json!({ "room_id": room }),
        )
    });
    post_all(&apis, joins.collect()).await?;
    let want = members.len() as u64;
    serve::until(
        Duration::from_secs(180),
        "every member's joined webhook",
        || async { (hooks.joined.load(Ordering::Relaxed) >= want).then_some(()) },
    )
    .await;
    println!(
        "  {} calls joined in {:.1} s (to their last joined webhook)",
        members.len(),
        began.elapsed().as_secs_f64()
    );
    quiet(&apis).await;
    // Each member's mute as it joined (the room's default), from the rooms' listings.
    let muted: HashMap<String, bool> = futures_util::stream::iter(rooms.iter())
        .map(|room| {
            let api = &apis[0];
            async move { api.members(room).await }
        })
        .buffer_unordered(16)
        .flat_map(futures_util::stream::iter)
        .collect()
        .await;
    for m in &mut members {
        m.muted = *muted
            .get(&m.channel)
            .context("a member listed in its room")?;
    }
    let memory2 = redis.used_memory().await;
    let outbox2 = redis.outbox_bytes().await;
    let rss2: u64 = pids.iter().map(|p| rss_kib(*p)).sum();
    let kib = 1024.0;
    println!(
        "| Redis memory per room (empty, its control leg in) | {:.2} KiB, of which its outbox entries {:.2} KiB |",
        (memory1 - memory0) / shape.rooms as f64 / kib,
        (outbox1 - outbox0) / shape.rooms as f64 / kib
    );
    println!(
        "| Redis memory per member (its session and membership, and the outbox entries of its call and join) | {:.2} KiB, of which outbox {:.2} KiB |",
        (memory2 - memory1) / members.len() as f64 / kib,
        (outbox2 - outbox1) / members.len() as f64 / kib
    );
    println!(
        "| controller RSS per 1,000 members (all {n} instances) | {:.1} MiB (from {:.1} MiB with no rooms to {:.1} MiB) |",
        (rss2 as f64 - rss0 as f64) / kib / (members.len() as f64 / 1000.0),
        rss0 as f64 / kib,
        rss2 as f64 / kib
    );

    listing(&apis[0], shape.rooms).await;
    resync(&apis, &sims, &members).await?;

    // Every other member talks (FreeSWITCH reports no talking for a muted member): unmuted
    // first; the others are muted and unmuted by the commands.
    let unmutes: Vec<(usize, String)> = members
        .iter()
        .enumerate()
        .filter(|(i, m)| i % 2 == 1 && m.muted)
        .map(|(i, m)| (i, m.session.clone()))
        .collect();
    for (_, session) in &unmutes {
        hooks.wait_for(session, false, Instant::now());
    }
    let requests = unmutes.iter().map(|(_, session)| {
        let path = format!("/api/v1/sessions/{session}/commands/conference/unmute");
        (path, json!({}))
    });
    post_all(&apis, requests.collect()).await?;
    serve::until(Duration::from_secs(60), "the talkers unmuted", || async {
        (hooks.pending() == 0).then_some(())
    })
    .await;
    for (i, _) in unmutes {
        members[i].muted = false;
    }

    // The rates.
    for &rate in &shape.rates {
        let step = load(
            &apis,
            &pids,
            &redis,
            &sims,
            &mut members,
            &hooks,
            rate,
            shape.step,
        )
        .await;
        if !step {
            break;
        }
    }
    drop(instances);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// POSTs each (path, body), 64 at a time, spread over the instances as a load balancer
/// would; each must be accepted (202). A 404 is a call not stored yet, asked again for up to
/// 30 s.
async fn post_all(apis: &[Api], requests: Vec<(String, serde_json::Value)>) -> anyhow::Result<()> {
    let refused: Vec<String> = futures_util::stream::iter(requests.into_iter().enumerate())
        .map(|(i, (path, body))| {
            let api = &apis[i % apis.len()];
            async move {
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    let (status, answer) = api.call("POST", &path, Some(body.clone())).await;
                    match status {
                        202 => return None,
                        404 if Instant::now() < deadline => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        _ => return Some(format!("{path}: {status} {answer}")),
                    }
                }
            }
        })
        .buffer_unordered(64)
        .filter_map(|f| async move { f })
        .collect()
        .await;
    match refused.first() {
        Some(first) => bail!("{} requests refused, the first: {first}", refused.len()),
        None => Ok(()),
    }
}

/// `GET /conferences` with every room live: the first page of 200, 200 times, and the whole
/// list walked page by page, 20 times.
async fn listing(api: &Api, rooms: usize) {
    let mut page = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let (status, _) = api.call("GET", "/api/v1/conferences?limit=200", None).await;
        assert_eq!(status, 200);
        page.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let mut walks = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let mut seen = 0;
        let mut cursor = String::new();
        loop {
            let path = format!("/api/v1/conferences?limit=200&cursor={cursor}");
            let (status, body) = api.call("GET", &path, None).await;
            assert_eq!(status, 200, "{body}");
            seen += body["conferences"].as_array().map_or(0, Vec::len);
            cursor = body["cursor"].as_str().unwrap_or_default().to_owned();
            if cursor.is_empty() {
                break;
            }
        }
        assert_eq!(seen, rooms, "the walk lists every room");
        walks.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (page, walk) = (dist(page.into_iter()), dist(walks.into_iter()));
    println!(
        "| GET /conferences, a page of 200 of {rooms} live rooms | p50 {:.1} ms, p99 {:.1} ms |",
        page.p50, page.p99
    );
    println!(
        "| GET /conferences, all {rooms} rooms (pages of 200) | p50 {:.1} ms, p99 {:.1} ms |",
        walk.p50, walk.p99
    );
}

/// One node's connections dropped: from the drop to the node up again on the instance that
/// applies its events, and that instance's resync of it (`switchyard_node_resync_seconds`).
async fn resync(
    apis: &[Api],
    sims: &[(String, Simulator)],
    members: &[Member],
) -> anyhow::Result<()> {
    let node = 0;
    let prefix = sims[node].0.as_str();
    let on_node = members.iter().filter(|m| m.sim == node).count();
    let mut owner = None;
    for api in apis {
        let (_, body) = api.call("GET", "/readyz", None).await;
        if body["applies_events"]
            .as_array()
            .is_some_and(|a| a.iter().any(|p| p == prefix))
        {
            owner = Some(api);
        }
    }
    let owner = owner.context("an instance applies the node's events")?;
    let histogram = |text: &str, part: &str| {
        metric_sum(
            text,
            &format!("switchyard_node_resync_seconds_{part}{{node=\"{prefix}\"}}"),
        )
    };
    let mut took = Vec::new();
    let mut resyncs = Vec::new();
    for _ in 0..5 {
        let before = metrics(owner).await;
        let dropped = Instant::now();
        sims[node].1.drop_connections();
        let mut was_down = false;
        loop {
            let (_, body) = owner.call("GET", "/readyz", None).await;
            let up = body["nodes"][prefix] == "up";
            if !up {
                was_down = true;
            } else if was_down {
                break;
            }
            if dropped.elapsed() > Duration::from_secs(30) {
                bail!("node {prefix} not up again within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        took.push(dropped.elapsed().as_secs_f64() * 1e3);
        let after = metrics(owner).await;
        let count = histogram(&after, "count") - histogram(&before, "count");
        let sum = histogram(&after, "sum") - histogram(&before, "sum");
        resyncs.push(sum * 1e3 / count.max(1.0));
        // Its settle look (2 s later) is a resync too: let it pass.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let fastest = resyncs.iter().copied().fold(f64::INFINITY, f64::min);
    let (took, resyncs) = (dist(took.into_iter()), dist(resyncs.into_iter()));
    println!(
        "| a node of {on_node} members resynced after its connections drop (5 times) | the resync {:.0} ms median ({fastest:.0}–{:.0}); drop to up {:.0} ms median (max {:.0}) |",
        resyncs.p50, resyncs.max, took.p50, took.max
    );
    Ok(())
}
