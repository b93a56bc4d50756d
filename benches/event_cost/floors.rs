//! What an event cannot cost less than here, measured in the same run before the load: Redis's
//! CPU per lone round trip and per atomic room write sent alone, and the CPU of two minimal
//! processes on the crates `switchyard serve` runs on: an applier (an event in, its write out)
//! and an API (a command's write, node command and answer, and its webhook).

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::redis_figures;
use crate::support::cpu_secs;

/// The sizes of a room record's live part and of one outbox event in this load (`MONITOR`).
pub const ROOM_BYTES: usize = 2000;
pub const EVENT_BYTES: usize = 700;

/// A JSON value of about `bytes` bytes.
fn padded(bytes: usize) -> String {
    format!("{{\"pad\":\"{}\"}}", "p".repeat(bytes))
}

/// A tick every 1/`per_sec` s, missed ticks caught up at once (the pace holds).
fn pace(per_sec: u64) -> tokio::time::Interval {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_sec.max(1) as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    tick
}

/// Calls `each` at `per_sec`: a second to settle (connections made, scripts cached), then for
/// `window`, while the CPU of process `pid` is measured. Returns the calls made in all and the
/// CPU seconds per call in the window.
async fn paced(per_sec: u64, window: Duration, pid: u32, mut each: impl FnMut()) -> (u64, f64) {
    let mut tick = pace(per_sec);
    for _ in 0..per_sec {
        tick.tick().await;
        each();
    }
    let before = cpu_secs(pid);
    let began = Instant::now();
    let mut sent = 0u64;
    while began.elapsed() < window {
        tick.tick().await;
        each();
        sent += 1;
    }
    let cpu = cpu_secs(pid) - before;
    (per_sec + sent, cpu / sent.max(1) as f64)
}

/// Runs a minimal process's work on a Tokio runtime as `switchyard serve` has (a worker a core).
fn on_runtime(run: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run)
}

/// Redis's CPU per lone round trip: `PING`s at `per_sec` from one connection for `window`,
/// each waiting for its answer (µs per `PING`).
pub async fn round_trip_floor(
    conn: &mut redis::aio::MultiplexedConnection,
    per_sec: u64,
    window: Duration,
) -> f64 {
    let mut tick = pace(per_sec);
    let before = redis_figures(conn).await.cpu;
    let began = Instant::now();
    let mut pings = 0u64;
    while began.elapsed() < window {
        tick.tick().await;
        let _: redis::RedisResult<String> = redis::cmd("PING").query_async(conn).await;
        pings += 1;
    }
    (redis_figures(conn).await.cpu - before) * 1e6 / pings.max(1) as f64
}

/// Redis's CPU per atomic room write alone: the store's own room script (`save_room.lua`: the
/// room's `seq` checked, its record replaced, one event appended to the outbox), at `per_sec`
/// from one connection for `window`, a room of `room_bytes` and an event of `event_bytes` (µs
/// per write). The least an applied event can cost Redis while its state and its outbox entry
/// stay one atomic step, before the webhook's read and verdict.
pub async fn write_floor(
    conn: &mut redis::aio::MultiplexedConnection,
    per_sec: u64,
    window: Duration,
    room_bytes: usize,
    event_bytes: usize,
) -> anyhow::Result<f64> {
    let sha = load_script(conn).await?;
    let (json, event) = (padded(room_bytes), padded(event_bytes));
    new_room(conn, "floor").await?;
    let mut tick = pace(per_sec);
    let before = redis_figures(conn).await.cpu;
    let began = Instant::now();
    let mut writes = 0u64;
    while began.elapsed() < window {
        tick.tick().await;
        let done: redis::RedisResult<(i64,)> =
            room_write(&sha, "floor", &json, event.as_bytes(), writes)
                .query_async(conn)
                .await;
        if !matches!(done, Ok((1,))) {
            anyhow::bail!("the floor's room write {writes} was not made: {done:?}");
        }
        writes += 1;
    }
    Ok((redis_figures(conn).await.cpu - before) * 1e6 / writes.max(1) as f64)
}

/// The store's own room script.
const SAVE_ROOM: &str = include_str!("../../src/store/lua/save_room.lua");

/// The size of one event frame the minimal applier reads (about an ESL event of this load).
const FRAME: usize = 1000;
/// The environment variable that makes the bench binary the minimal applier: `<addr>,<redis url>`.
const APPLIER: &str = "EVENT_COST_APPLIER";

/// The room write one event costs: the store's room script (the room's `seq` checked, its
/// record replaced, the event appended to the outbox), as the instances write an event of a
/// room they keep (tracked through its notice key: nothing read after it); the room
/// `floor:<id>`.
fn room_write(sha: &str, id: &str, json: &str, event: &[u8], seq: u64) -> redis::Pipeline {
    let room = format!("sy:{{floor}}:room:{id}");
    let notice = format!("sy:{{floor}}:notice:{id}");
    let mut pipe = redis::pipe();
    pipe.cmd("EVALSHA")
        .arg(sha)
        .arg(1)
        .arg(&notice)
        .arg(seq)
        .arg(seq + 1)
        .arg(json)
        .arg(id)
        .arg(0)
        .arg(0)
        .arg(0)
        .arg("")
        .arg("sy:{floor}:outbox")
        .arg("sy:{floor}:name")
        .arg("sy:{floor}:ended")
        .arg("sy:{floor}:live")
        .arg("")
        .arg("sy:{floor}:media")
        .arg(&room)
        .arg(&notice)
        .arg("floor")
        .arg(0)
        .arg(event);
    pipe
}

/// The room script, loaded: its sha.
async fn load_script(conn: &mut redis::aio::MultiplexedConnection) -> redis::RedisResult<String> {
    redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(SAVE_ROOM)
        .query_async(conn)
        .await
}

/// A room at `seq` 0 for [`room_write`].
async fn new_room(
    conn: &mut redis::aio::MultiplexedConnection,
    id: &str,
) -> redis::RedisResult<()> {
    redis::cmd("HSET")
        .arg(format!("sy:{{floor}}:room:{id}"))
        .arg("seq")
        .arg(0)
        .query_async(conn)
        .await
}

/// In the child process (`EVENT_COST_APPLIER` set): reads event frames from the bench and
/// writes each to Redis before reading the next, on a Tokio runtime of one worker a core and
/// redis-rs's multiplexed connection, as `switchyard serve` runs. `None` when not the child.
pub fn applier_process() -> Option<anyhow::Result<()>> {
    let spec = std::env::var(APPLIER).ok()?;
    let (addr, url) = spec.split_once(',')?;
    let (addr, url) = (addr.to_owned(), url.to_owned());
    let run = async move {
        let mut conn = redis::Client::open(url)?
            .get_multiplexed_async_connection()
            .await?;
        let sha = load_script(&mut conn).await?;
        new_room(&mut conn, "applier").await?;
        let mut events = tokio::net::TcpStream::connect(addr).await?;
        let json = padded(ROOM_BYTES);
        let mut frame = vec![0u8; FRAME];
        let mut seq = 0u64;
        while events.read_exact(&mut frame).await.is_ok() {
            // The event as the applier would keep it (the frame's first part).
            let event = frame[..EVENT_BYTES].to_vec();
            let _: redis::RedisResult<(i64,)> = room_write(&sha, "applier", &json, &event, seq)
                .query_async(&mut conn)
                .await;
            seq += 1;
        }
        anyhow::Ok(())
    };
    Some(on_runtime(run))
}

/// The CPU a minimal applier process spends per event: `per_sec` event frames of about an ESL
/// event's size over TCP for `window`, each written to Redis as one room write (what the
/// applying instance does at the least, before parsing, applying and its bookkeeping); µs
/// per event.
pub async fn applier_floor(redis_url: &str, per_sec: u64, window: Duration) -> anyhow::Result<f64> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .env(APPLIER, format!("{addr},{redis_url}"))
        .spawn()?;
    let (mut stream, _) =
        tokio::time::timeout(Duration::from_secs(10), listener.accept()).await??;
    stream.set_nodelay(true)?;
    // The frames go out from a task of their own, at the ticks.
    let (frames, mut to_send) = tokio::sync::mpsc::unbounded_channel::<()>();
    let writer = tokio::spawn(async move {
        let frame = vec![b'e'; FRAME];
        while to_send.recv().await.is_some() {
            if stream.write_all(&frame).await.is_err() {
                return;
            }
        }
    });
    let (all, cpu) = paced(per_sec, window, child.id(), || {
        let _ = frames.send(());
    })
    .await;
    // Every event written, or the floor measured less than the work.
    let mut conn = redis::Client::open(redis_url)?
        .get_multiplexed_async_connection()
        .await?;
    let mut written = 0;
    let waited = Instant::now();
    while written < all && waited.elapsed() < Duration::from_secs(5) {
        let seq: Option<u64> = redis::cmd("HGET")
            .arg("sy:{floor}:room:applier")
            .arg("seq")
            .query_async(&mut conn)
            .await?;
        written = seq.unwrap_or(0);
        if written < all {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    anyhow::ensure!(
        written >= all,
        "the minimal applier wrote {written} of {all} events"
    );
    drop(frames);
    let _ = writer.await;
    let _ = child.kill();
    let _ = child.wait();
    Ok(cpu * 1e6)
}

/// The environment variable that makes the bench binary the minimal API instance:
/// `<node addr>,<redis url>,<webhook url>`.
const API: &str = "EVENT_COST_API";
/// The size of a node command and of its reply on the minimal API's node connection.
const LINE: usize = 100;
/// The rooms the minimal API's commands go to in turn.
const ROOMS: u64 = 16;

/// What the minimal API instance shares between its requests.
struct MinimalApi {
    redis: redis::aio::MultiplexedConnection,
    sha: String,
    node: tokio::sync::Mutex<tokio::net::TcpStream>,
    http: reqwest::Client,
    hook: String,
    /// The room record every command writes, and its event (the webhook's body too).
    json: String,
    event: bytes::Bytes,
    seq: std::sync::atomic::AtomicU64,
}

impl MinimalApi {
    /// One command: its room write (the intent), its node command and the node's reply, then
    /// the answer; its webhook read from the outbox, sent and logged on a task of its own.
    async fn command(self: std::sync::Arc<Self>) -> axum::http::StatusCode {
        // The commands go to the rooms in turn, as the load's do: one at a time per room.
        let n = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (room, seq) = (format!("api-{}", n % ROOMS), n / ROOMS);
        let mut redis = self.redis.clone();
        let written: redis::RedisResult<(i64,)> =
            room_write(&self.sha, &room, &self.json, &self.event, seq)
                .query_async(&mut redis)
                .await;
        match written {
            Ok((1,)) => {}
            Ok(_) => return axum::http::StatusCode::CONFLICT,
            Err(_) => return axum::http::StatusCode::SERVICE_UNAVAILABLE,
        }
        {
            let mut node = self.node.lock().await;
            let mut reply = [0u8; LINE];
            if node.write_all(&[b'c'; LINE]).await.is_err()
                || node.read_exact(&mut reply).await.is_err()
            {
                return axum::http::StatusCode::BAD_GATEWAY;
            }
        }
        let api = self.clone();
        tokio::spawn(async move {
            let mut redis = api.redis.clone();
            let entries: redis::RedisResult<redis::Value> = redis::cmd("XRANGE")
                .arg("sy:{floor}:outbox")
                .arg("-")
                .arg("+")
                .arg("COUNT")
                .arg(1)
                .query_async(&mut redis)
                .await;
            if entries.is_err() {
                return;
            }
            let sent = api
                .http
                .post(&api.hook)
                .body(api.event.clone())
                .send()
                .await;
            if sent.is_ok() {
                let _: redis::RedisResult<String> = redis::cmd("XADD")
                    .arg("sy:{floor}:log")
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(1000)
                    .arg("*")
                    .arg("attempt")
                    .arg(n)
                    .query_async(&mut redis)
                    .await;
            }
        });
        axum::http::StatusCode::ACCEPTED
    }
}

/// In the child process (`EVENT_COST_API` set): the least an API instance does per command,
/// on the same crates as `switchyard serve` (axum, redis-rs, reqwest, Tokio with a worker a
/// core). Prints the port it listens on. `None` when not the child.
pub fn api_process() -> Option<anyhow::Result<()>> {
    let spec = std::env::var(API).ok()?;
    let mut parts = spec.splitn(3, ',');
    let (node, url, hook) = (
        parts.next()?.to_owned(),
        parts.next()?.to_owned(),
        parts.next()?.to_owned(),
    );
    let run = async move {
        let mut redis = redis::Client::open(url)?
            .get_multiplexed_async_connection()
            .await?;
        let sha = load_script(&mut redis).await?;
        for r in 0..ROOMS {
            new_room(&mut redis, &format!("api-{r}")).await?;
        }
        let node = tokio::net::TcpStream::connect(node).await?;
        node.set_nodelay(true)?;
        let api = std::sync::Arc::new(MinimalApi {
            redis,
            sha,
            node: tokio::sync::Mutex::new(node),
            http: reqwest::Client::new(),
            hook,
            json: padded(ROOM_BYTES),
            event: padded(EVENT_BYTES).into(),
            seq: std::sync::atomic::AtomicU64::new(0),
        });
        let app =
            axum::Router::new().route("/cmd", axum::routing::post(move || api.clone().command()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", listener.local_addr()?.port());
        axum::serve(listener, app).await?;
        anyhow::Ok(())
    };
    Some(on_runtime(run))
}

/// The CPU a minimal API instance spends per command: `per_sec` requests for `window`, each
/// one room write, one node command and its reply, the answer, and one webhook (read from the
/// outbox, sent, logged); µs per command.
pub async fn api_floor(redis_url: &str, per_sec: u64, window: Duration) -> anyhow::Result<f64> {
    // The node: answers every command line with a reply line.
    let node = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let node_addr = node.local_addr()?;
    tokio::spawn(async move {
        let Ok((mut conn, _)) = node.accept().await else {
            return;
        };
        let _ = conn.set_nodelay(true);
        let mut line = [0u8; LINE];
        while conn.read_exact(&mut line).await.is_ok() {
            if conn.write_all(&[b'r'; LINE]).await.is_err() {
                return;
            }
        }
    });
    // The webhook receiver.
    let hooks = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook = format!("http://{}/hooks", hooks.local_addr()?);
    let received = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = received.clone();
    tokio::spawn(async move {
        let app = axum::Router::new().fallback(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async { "ok" }
        });
        let _ = axum::serve(hooks, app).await;
    });
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .env(API, format!("{node_addr},{redis_url},{hook}"))
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let port = tokio::task::spawn_blocking(move || {
        let mut port = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut port).map(|_| port)
    })
    .await??;
    let url = format!("http://127.0.0.1:{}/cmd", port.trim());
    let http = reqwest::Client::new();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (all, cpu) = paced(per_sec, window, pid, || {
        let request = http.post(&url).send();
        let accepted = accepted.clone();
        tokio::spawn(async move {
            if request.await.is_ok_and(|r| r.status() == 202) {
                accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
    })
    .await;
    // Every command answered and its webhook received, or the floor measured less than the work.
    let done = || {
        accepted.load(std::sync::atomic::Ordering::Relaxed) >= all
            && received.load(std::sync::atomic::Ordering::Relaxed) >= all
    };
    let waited = Instant::now();
    while !done() && waited.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    anyhow::ensure!(
        done(),
        "the minimal API answered {} and delivered {} of {all} commands",
        accepted.load(std::sync::atomic::Ordering::Relaxed),
        received.load(std::sync::atomic::Ordering::Relaxed)
    );
    Ok(cpu * 1e6)
}
