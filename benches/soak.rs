//! The soak (issue 37): one real FreeSWITCH, `SOAK_CALLS` (default 100) SIPp calls churning
//! through ten rooms for `SOAK_MINUTES` (default 60): each call, as soon as the node parks it,
//! joins a room, is unmuted and muted, leaves, and is hung up through the API; SIPp places a new
//! one in its stead. Each room plays a WAV now and then and records ten seconds of every
//! minute; the application deletes each recording once it has ended. Every `SOAK_AUDIT_SECS`
//! (default 60) the traffic pauses until nothing is in flight, and the bench reports the
//! controller's RSS and open file descriptors, Redis's used memory (less the outbox streams',
//! reported beside it) and the drift between the store and the node (members, and whether each
//! is muted, as the API lists them and as `conference <room> json_list` does): it must be 0. At
//! the end: the growth of each figure from the audit at 10 minutes (or the first, on a shorter
//! run) to the last, RSS, fds and the outbox as the peak of ten minutes at each end; more than
//! 5 % fails.
//!
//! The outbox keeps 5 minutes of events, and ended rooms and sessions stay 5 minutes
//! (`event_retention_secs`, `room_retention_secs`, `session_retention_secs`): with the defaults
//! (24 hours, 7 days, 1 hour) Redis grows with what it is asked to keep, by design, and the soak
//! would measure that instead of a leak.
//!
//! `cargo bench --bench soak` (`SOAK_MINUTES=5` for a short one). It starts everything itself
//! (FreeSWITCH with `freeswitch-conf/`, `redis-server`, `switchyard serve`, SIPp) and kills it
//! all by pid at the end. Without `--bench` it does nothing; it is not part of CI.
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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

use freeswitch::FreeSwitch;
use serve::Api;
use support::{RedisServer, loadavg, rss_kib};
use switchyard::api::hash_key;
use switchyard::esl::{Client, ClientConfig, EventFormat, EventName, EventSet, Password};

const DID: &str = "15551230000";
const APP: &str = "soak";
const KEY: &str = "soak-bench-key";
const PREFIX: &str = "soak1";
const SECRET: &str = "whsec_c3dpdGNoeWFyZCB3ZWJob29rIHRlc3Qgc2VjcmV0ISE=";
const ROOMS: usize = 10;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("soak: run it with `cargo bench --bench soak` (SOAK_MINUTES, SOAK_CALLS)");
        return Ok(());
    }
    freeswitch::binary().map_err(|e| anyhow!("soak needs a real node: {e}"))?;
    let minutes = env_or("SOAK_MINUTES", 60);
    let calls = env_or("SOAK_CALLS", 100) as usize;
    let audit = Duration::from_secs(env_or("SOAK_AUDIT_SECS", 60));
    let (rtp_start, rtp_end) = freeswitch::free_rtp_range((calls * 6).max(200) as u16);
    let (rtp_start, rtp_end) = (rtp_start.to_string(), rtp_end.to_string());
    let fs = FreeSwitch::start_with(&[
        ("FS_RTP_START_PORT", &rtp_start),
        ("FS_RTP_END_PORT", &rtp_end),
    ]);
    let redis = RedisServer::start().ok_or_else(|| anyhow!("redis-server did not start"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        tokio::select! {
            r = run(&fs, &redis, minutes, calls, audit) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        }
    });
    drop(rt);
    drop(fs);
    drop(redis);
    result
}

/// What the bench sees of the node and the webhooks.
#[derive(Default)]
struct Seen {
    /// Channels the node parked that no lifecycle has taken yet.
    parked: Mutex<Vec<String>>,
    hooks: AtomicUsize,
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A one-second WAV of silence (8 kHz, 16-bit mono), served to the node for room plays.
fn silence_wav() -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = std::io::Cursor::new(Vec::new());
    let mut writer = hound::WavWriter::new(&mut out, spec).expect("a WAV header");
    for _ in 0..8000 {
        writer.write_sample(0i16).expect("a sample in memory");
    }
    writer.finalize().expect("a WAV in memory");
    out.into_inner()
}

/// The webhook receiver (counts, answers 204) and the WAV the rooms play.
async fn http(seen: Arc<Seen>) -> anyhow::Result<(String, String)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let wav = silence_wav();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(move || {
                seen.hooks.fetch_add(1, Ordering::Relaxed);
                async { axum::http::StatusCode::NO_CONTENT }
            }),
        )
        .route(
            "/silence.wav",
            axum::routing::get(move || {
                let wav = wav.clone();
                async move { ([("content-type", "audio/wav")], wav) }
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((
        format!("http://{addr}/hook"),
        format!("http://{addr}/silence.wav"),
    ))
}

/// The bench's own Event Socket connection: every call the node parks (the first park of each
/// channel: a call that left a room parks again, and is not new).
async fn watch_parks(fs: &FreeSwitch, seen: Arc<Seen>) -> anyhow::Result<Client> {
    let (client, mut events) = Client::connect(
        &fs.esl(),
        &Password::new(&fs.password)?,
        ClientConfig::default(),
    )
    .await?;
    client
        .subscribe(
            EventFormat::Plain,
            EventSet::new().names([EventName::ChannelPark]),
        )
        .await?;
    tokio::spawn(async move {
        let mut known = HashSet::new();
        while let Some(e) = events.recv().await {
            if let Some(uuid) = e.unique_id()
                && e.header("variable_switchyard_role").is_none()
                && known.insert(uuid.to_string())
            {
                seen.parked.lock().unwrap().push(uuid.into_owned());
            }
        }
    });
    Ok(client)
}

/// Counters of the traffic.
#[derive(Default)]
struct Counts {
    lifecycles: AtomicUsize,
    requests: AtomicUsize,
    refused: Mutex<BTreeMap<u16, usize>>,
}

/// Pauses the traffic for an audit: lifecycles wait at their next step while `paused`.
#[derive(Default)]
struct Gate {
    paused: AtomicBool,
    in_flight: AtomicUsize,
}

impl Gate {
    async fn pass(&self) {
        while self.paused.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One request, counted; 2xx or the status.
async fn send(api: &Api, counts: &Counts, method: &str, path: &str, body: Option<Value>) -> u16 {
    counts.requests.fetch_add(1, Ordering::Relaxed);
    let (status, answer) = api.call(method, path, body).await;
    if !(200..300).contains(&status) {
        let mut refused = counts.refused.lock().unwrap();
        let n = refused.entry(status).or_default();
        *n += 1;
        if *n <= 3 {
            eprintln!("soak: {status} for {method} {path}: {answer}");
        }
    }
    status
}

/// Polls the session until `done` holds of it (at most 10 s).
async fn session_until(api: &Api, session: &str, done: impl Fn(&Value) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let (status, body) = api
            .call("GET", &format!("/api/v1/sessions/{session}"), None)
            .await;
        if status == 200 && done(&body) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// One call's life: join a room, unmute, mute, leave, hang up (each step after the gate).
async fn lifecycle(api: Api, channel: String, room: String, gate: Arc<Gate>, counts: Arc<Counts>) {
    let session = format!("{PREFIX}-{channel}");
    let cmd = |verb: &str| format!("/api/v1/sessions/{session}/commands/{verb}");
    let step = |ms: u64| tokio::time::sleep(Duration::from_millis(ms));
    if !session_until(&api, &session, |s| s["state"] == "parked").await {
        return;
    }
    for (verb, body, pause) in [
        ("conference/join", json!({ "room_id": room }), 1500),
        ("conference/unmute", json!({}), 1500),
        ("conference/mute", json!({}), 1500),
        ("conference/leave", json!({}), 1000),
        ("hangup", json!({}), 0),
    ] {
        gate.pass().await;
        gate.in_flight.fetch_add(1, Ordering::Relaxed);
        let status = send(&api, &counts, "POST", &cmd(verb), Some(body)).await;
        // Each step is confirmed by the node before the next (an audit sees no half step).
        if status == 202 && verb == "conference/join" {
            session_until(&api, &session, |s| s["room_id"] == room.as_str()).await;
        }
        if status == 202 && verb == "conference/leave" {
            session_until(&api, &session, |s| s["state"] == "parked").await;
        }
        gate.in_flight.fetch_sub(1, Ordering::Relaxed);
        step(pause).await;
    }
    counts.lifecycles.fetch_add(1, Ordering::Relaxed);
}

/// Each room plays the WAV every 20 s and records 10 s of every minute.
async fn room_work(api: Api, room: String, wav: String, gate: Arc<Gate>, counts: Arc<Counts>) {
    let mut n = 0u64;
    let mut ended: Option<String> = None;
    loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
        gate.pass().await;
        gate.in_flight.fetch_add(1, Ordering::Relaxed);
        let path = |what: &str| format!("/api/v1/conferences/{room}/{what}");
        match n % 6 {
            0 => {
                send(
                    &api,
                    &counts,
                    "POST",
                    &path("recording/start"),
                    Some(json!({})),
                )
                .await;
            }
            1 => {
                counts.requests.fetch_add(1, Ordering::Relaxed);
                let (status, rec) = api
                    .call("POST", &path("recording/stop"), Some(json!({})))
                    .await;
                match rec["id"].as_str() {
                    Some(id) if status == 202 => ended = Some(id.to_owned()),
                    _ => eprintln!("soak: {status} for recording/stop: {rec}"),
                }
            }
            // The application has the file it needs and deletes the recording (as one with a
            // retention policy of its own does): kept, it would stay in the room's record for
            // as long as the room lives, and Redis would grow with what it is asked to keep.
            2 if ended.is_some() => {
                let id = ended.take().unwrap_or_default();
                send(
                    &api,
                    &counts,
                    "DELETE",
                    &format!("/api/v1/recordings/{id}"),
                    None,
                )
                .await;
            }
            _ if n.is_multiple_of(2) => {
                let body = json!({ "urls": [wav] });
                send(&api, &counts, "POST", &path("play"), Some(body)).await;
            }
            _ => {}
        }
        gate.in_flight.fetch_sub(1, Ordering::Relaxed);
        n += 1;
    }
}

/// One audit's figures.
#[derive(Debug, Clone)]
struct Audit {
    at_min: f64,
    rss_kib: u64,
    /// The controller's live heap (`switchyard_heap_live_bytes`), when built with
    /// `--features heap-count`.
    heap_bytes: Option<u64>,
    fds: usize,
    /// Redis's used memory less the outbox streams' (see [`redis_used`]).
    redis_bytes: u64,
    outbox_bytes: u64,
    drift: usize,
    members: usize,
    lifecycles: usize,
    hooks: usize,
}

/// The controller's live heap from its `/metrics`, when its build counts it.
async fn heap_bytes(api: &Api) -> Option<u64> {
    let text = api.metrics_request().send().await.ok()?.text().await.ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("switchyard_heap_live_bytes "))
        .and_then(|v| v.trim().parse().ok())
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Redis's used memory, and how much of it the outbox streams hold. The outbox keeps 5 minutes
/// of events and is trimmed once a minute, so it swings by a minute's events between trims, and
/// an audit samples it at a moment that drifts against the trim: its bytes are reported, and
/// left out of the growth (what it keeps is bounded by the trim, `trim_outbox`).
fn redis_used(url: &str) -> (u64, u64) {
    let Ok(client) = redis::Client::open(url) else {
        return (0, 0);
    };
    let Ok(mut conn) = client.get_connection() else {
        return (0, 0);
    };
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query(&mut conn)
        .unwrap_or_default();
    let used = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let outboxes: Vec<String> = redis::cmd("KEYS")
        .arg("sy:*:outbox")
        .query(&mut conn)
        .unwrap_or_default();
    let outbox = outboxes
        .iter()
        .map(|k| {
            redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(k)
                .arg("SAMPLES")
                .arg(0)
                .query::<Option<u64>>(&mut conn)
                .ok()
                .flatten()
                .unwrap_or(0)
        })
        .sum();
    (used, outbox)
}

/// (channel, muted) of the callers in a room on the node (its control leg left out).
async fn node_members(node: &Client, room: &str) -> BTreeMap<String, bool> {
    let Ok(cmd) = switchyard::esl::ApiCommand::new("conference")
        .and_then(|c| c.arg(room))
        .and_then(|c| c.arg("json_list"))
    else {
        return BTreeMap::new();
    };
    let text = node
        .api(&cmd)
        .await
        .map(|r| r.text().into_owned())
        .unwrap_or_default();
    let list: Value = serde_json::from_str(&text).unwrap_or_default();
    let mut out = BTreeMap::new();
    for m in list[0]["members"].as_array().into_iter().flatten() {
        let uuid = m["uuid"].as_str().unwrap_or_default();
        let Ok(getvar) = switchyard::esl::ApiCommand::new("uuid_getvar")
            .and_then(|c| c.arg(uuid))
            .and_then(|c| c.arg("switchyard_role"))
        else {
            continue;
        };
        let role = node
            .api(&getvar)
            .await
            .map(|r| r.text().trim().to_owned())
            .unwrap_or_default();
        if m["type"] == "caller" && role != "control" {
            let muted = !m["flags"]["can_speak"].as_bool().unwrap_or(true);
            out.insert(uuid.to_owned(), muted);
        }
    }
    out
}

async fn run(
    fs: &FreeSwitch,
    redis: &RedisServer,
    minutes: u64,
    calls: usize,
    audit_every: Duration,
) -> anyhow::Result<()> {
    let seen = Arc::new(Seen::default());
    let (hook_url, wav) = http(seen.clone()).await?;
    let node = watch_parks(fs, seen.clone()).await?;
    let port = freeswitch::free_tcp_port();
    let work = std::env::temp_dir().join(format!("switchyard-soak-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let config = work.join("switchyard.toml");
    let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\nredis_url = {}\n{}\
             event_retention_secs = 300\nroom_retention_secs = 300\nsession_retention_secs = 300\n\
             [limits]\nglobal_rps = 0\nconf_play_ms = 0\nconference_control_ms = 0\n\
             conference_ms = 0\nconference_mute_ms = 0\n\
             [webhooks]\nallow_private = true\n\
             [playback]\nallow_hosts = [\"127.0.0.1\"]\n\
             [[nodes]]\nname = \"soak\"\nprefix = {}\nesl = {}\npassword = {}\nrecordings_dir = {}\n\
             [[apps]]\nid = {}\nkey_sha256 = {}\nwebhook_url = {}\nwebhook_secret = {}\ndids = [{}]\n",
            q(&redis.url()),
            serve::operator_toml(),
            q(PREFIX),
            q(&fs.esl()),
            q(&fs.password),
            q(&fs.recordings().to_string_lossy()),
            q(APP),
            q(&hash_key(KEY)),
            q(&hook_url),
            q(SECRET),
            q(DID),
        ),
    )?;
    let log = std::fs::File::create(work.join("serve.log"))?;
    let serve = Killed(
        Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?,
    );
    let pid = serve.0.id();
    let api = Api {
        base: format!("http://127.0.0.1:{port}"),
        app: APP.to_owned(),
        key: KEY.to_owned(),
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .timeout(Duration::from_secs(10))
            .build()?,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while api.call("GET", "/readyz", None).await.0 != 200 {
        if Instant::now() > deadline {
            bail!("switchyard serve is not ready; its log: {}", work.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut rooms = Vec::new();
    for i in 0..ROOMS {
        let (status, body) = api
            .call(
                "POST",
                "/api/v1/conferences",
                Some(json!({ "name": format!("soak-{i}") })),
            )
            .await;
        if status != 201 {
            bail!("creating a room: {status} {body}");
        }
        rooms.push(body["room_id"].as_str().unwrap_or_default().to_owned());
    }
    // Each room takes joins once its control leg is in.
    for room in &rooms {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, body) = api
                .call("GET", &format!("/api/v1/conferences/{room}"), None)
                .await;
            if body["status"] == "progressing" {
                break;
            }
            if Instant::now() > deadline {
                bail!("room {room} is not progressing: {body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let gate = Arc::new(Gate::default());
    let counts = Arc::new(Counts::default());
    for room in &rooms {
        tokio::spawn(room_work(
            api.clone(),
            room.clone(),
            wav.clone(),
            gate.clone(),
            counts.clone(),
        ));
    }
    // SIPp keeps `calls` calls up, placing a new one as each ends.
    let tag = format!(
        "sy-soak-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let media = 30_000 + 4 * fastrand::u16(0..200);
    let _sipp = Killed(
        Command::new("sipp")
            .arg(fs.sip().to_string())
            .arg("-sf")
            .arg(sipp::scenario_path())
            .args([
                "-s",
                DID,
                "-key",
                "caller",
                "20000",
                "-key",
                "caller_name",
                "Soak",
            ])
            .args(["-i", "127.0.0.1", "-mi", "127.0.0.1"])
            .args(["-mp", &media.to_string()])
            .args(["-cid_str", &format!("{tag}-%u")])
            .args(["-r", "10", "-m", "10000000", "-l", &calls.to_string()])
            .arg("-nostdin")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start sipp (apt-get install sip-tester)")?,
    );
    eprintln!(
        "soak: {calls} calls churning through {ROOMS} rooms for {minutes} min; an audit every {audit_every:?}"
    );
    println!(
        "| min | RSS (MiB) | live heap (MiB) | fds | Redis used less the outbox (MiB) | outbox (MiB) | drift | members | calls done | webhooks | load |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let started = Instant::now();
    let end = started + Duration::from_secs(minutes * 60);
    let mut next_audit = started + audit_every;
    let mut audits: Vec<Audit> = Vec::new();
    let mut n = 0usize;
    while Instant::now() < end {
        let parked: Vec<String> = std::mem::take(&mut *seen.parked.lock().unwrap());
        for channel in parked {
            let room = rooms[n % rooms.len()].clone();
            n += 1;
            tokio::spawn(lifecycle(
                api.clone(),
                channel,
                room,
                gate.clone(),
                counts.clone(),
            ));
        }
        if Instant::now() >= next_audit {
            next_audit += audit_every;
            // Nothing in flight: the store and the node must agree.
            gate.paused.store(true, Ordering::Relaxed);
            let quiet = Instant::now() + Duration::from_secs(15);
            while gate.in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < quiet {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let (mut drift, mut members) = (0, 0);
            for room in &rooms {
                // `Api::members`: (channel, muted) pairs, the channel after `<prefix>-`.
                let shown: BTreeMap<String, bool> = api.members(room).await.into_iter().collect();
                let on_node = node_members(&node, room).await;
                members += on_node.len();
                let keys: HashSet<&String> = shown.keys().chain(on_node.keys()).collect();
                drift += keys
                    .into_iter()
                    .filter(|k| shown.get(*k) != on_node.get(*k))
                    .count();
            }
            gate.paused.store(false, Ordering::Relaxed);
            let (used, outbox) = redis_used(&redis.url());
            let a = Audit {
                at_min: started.elapsed().as_secs_f64() / 60.0,
                rss_kib: rss_kib(pid),
                heap_bytes: heap_bytes(&api).await,
                fds: fds(pid),
                redis_bytes: used.saturating_sub(outbox),
                outbox_bytes: outbox,
                drift,
                members,
                lifecycles: counts.lifecycles.load(Ordering::Relaxed),
                hooks: seen.hooks.load(Ordering::Relaxed),
            };
            println!(
                "| {:.1} | {:.1} | {} | {} | {:.1} | {:.1} | {} | {} | {} | {} | {} |",
                a.at_min,
                a.rss_kib as f64 / 1024.0,
                a.heap_bytes
                    .map_or("-".into(), |b| format!("{:.2}", b as f64 / 1_048_576.0)),
                a.fds,
                a.redis_bytes as f64 / 1_048_576.0,
                a.outbox_bytes as f64 / 1_048_576.0,
                a.drift,
                a.members,
                a.lifecycles,
                a.hooks,
                loadavg()
            );
            audits.push(a);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = counts.refused.lock().unwrap().clone();
    println!(
        "soak: {} requests, refused by status {refused:?}; {} calls went through their whole life",
        counts.requests.load(Ordering::Relaxed),
        counts.lifecycles.load(Ordering::Relaxed)
    );
    let Some(last) = audits.last() else {
        bail!("no audit ran (SOAK_AUDIT_SECS is longer than the run)");
    };
    let base = audits
        .iter()
        .find(|a| a.at_min >= 10.0 - 1e-9)
        .filter(|a| a.at_min < last.at_min)
        .unwrap_or(&audits[0]);
    let growth = |a: f64, b: f64| if a > 0.0 { (b - a) / a * 100.0 } else { 0.0 };
    // RSS swings by tens of percent between audits (the allocator keeps and returns arenas as
    // the load comes and goes): a leak shows as a rising peak, so the highest RSS of the ten
    // minutes from the base is set against the highest of the last ten (one audit each on a
    // run too short for that).
    // The outbox, a saw-tooth between trims, likewise by its peaks; and the open fds, which
    // count the HTTP connections of the moment (36 to 52 an audit, with no trend).
    let peak = |from: f64, to: f64, of: fn(&Audit) -> u64| {
        audits
            .iter()
            .filter(|a| a.at_min >= from - 1e-9 && a.at_min <= to + 1e-9)
            .map(of)
            .max()
            .unwrap_or(0) as f64
    };
    let peaks = |of: fn(&Audit) -> u64| match last.at_min - base.at_min >= 20.0 {
        true => (
            peak(base.at_min, base.at_min + 10.0, of),
            peak(last.at_min - 10.0, last.at_min, of),
        ),
        false => (of(base) as f64, of(last) as f64),
    };
    let (early, late) = peaks(|a| a.rss_kib);
    let (fds_early, fds_late) = peaks(|a| a.fds as u64);
    let (outbox_early, outbox_late) = peaks(|a| a.outbox_bytes);
    let figures: HashMap<&str, f64> = [
        ("RSS", growth(early, late)),
        ("outbox", growth(outbox_early, outbox_late)),
        ("fds", growth(fds_early, fds_late)),
        (
            "Redis used memory",
            growth(base.redis_bytes as f64, last.redis_bytes as f64),
        ),
    ]
    .into_iter()
    .collect();
    // The live heap, read at the audits' quiet points (nothing in flight), when counted: what
    // the allocator has handed out and not had back, whatever pages it keeps.
    if let (Some(a), Some(b)) = (base.heap_bytes, last.heap_bytes) {
        println!(
            "soak: live heap from minute {:.1} to minute {:.1}: {:.2} -> {:.2} MiB ({:+.1} %)",
            base.at_min,
            last.at_min,
            a as f64 / 1_048_576.0,
            b as f64 / 1_048_576.0,
            growth(a as f64, b as f64)
        );
    }
    println!(
        "soak: growth from minute {:.1} to minute {:.1}: RSS (peaks) {:+.1} %, fds (peaks) {:+.1} %, Redis (less the outbox) {:+.1} %, outbox (peaks) {:+.1} %; drift at every audit: {:?}",
        base.at_min,
        last.at_min,
        figures["RSS"],
        figures["fds"],
        figures["Redis used memory"],
        figures["outbox"],
        audits.iter().map(|a| a.drift).collect::<Vec<_>>()
    );
    let drifted: Vec<&Audit> = audits.iter().filter(|a| a.drift > 0).collect();
    if !drifted.is_empty() {
        bail!(
            "the store and the node differed at {} audits: {drifted:?}",
            drifted.len()
        );
    }
    let over: Vec<String> = figures
        .iter()
        .filter(|(_, g)| **g > 5.0)
        .map(|(k, g)| format!("{k} {g:+.1} %"))
        .collect();
    if !over.is_empty() {
        bail!(
            "grew more than 5 % after minute {:.1}: {}",
            base.at_min,
            over.join(", ")
        );
    }
    Ok(())
}
