//! Live audio streams on a real FreeSWITCH (issue 58): the round trip of a caller's audio through
//! a bidirectional stream and back, against FreeSWITCH's own `echo`; many streams at once, frame
//! by frame; and what they cost the controller and the node in CPU.
//!
//! Everything is started here, on free ports, and killed by pid at the end (or on a panic,
//! Ctrl-C or SIGTERM): a `redis-server`, a FreeSWITCH with `freeswitch-conf/`
//! (`tests/common/freeswitch.rs`; `SWITCHYARD_FREESWITCH` picks the binary), SIPp callers (one
//! SIPp process per part), the controller as `switchyard serve` with a generated configuration
//! (`[streams]` open to `ws://127.0.0.1`, `[quotas] streams = 400`), and a WebSocket server in
//! this process that answers every stream.
//!
//! 1. **Echo round trip.** One caller sends a tone burst every second (200 ms of 1000 Hz, then
//!    800 ms of silence), joined to a room and unmuted. One echo path at a time is in the room:
//!    the floor, FreeSWITCH's `echo` app on a loopback leg (`originate loopback/echo/default/inline
//!    &conference(<room>@switchyard)`); a room-track `twilio` stream whose server sends each
//!    `media` payload straight back; the same with `l16` at 16 kHz. The caller's leg is recorded
//!    in stereo (`RECORD_STEREO`: left what it sends, right what it hears); each burst's onset on
//!    the left and its echo's onset on the right (1000 Hz in 5 ms windows, then the first sample
//!    over 30 % of the burst's peak) give one round trip. The server stamps each burst's first
//!    tone frame, which splits the stream's round trip into "to the server" and "back", up to
//!    where the recording starts (within one 20 ms frame of the `uuid_record start` answer).
//! 2. **Continuity.** `STREAMS_COUNT` (default 50) room-track `l16` 8 kHz bidirectional streams
//!    at once, five a room, each room with one caller sending a 440 Hz tone, unmuted. The server
//!    notes every frame's arrival and sends back 20 ms of a 2000 Hz tone every 20 ms (a tokio
//!    interval per stream). Over `STREAMS_SECS` (default 60): frames per second per stream,
//!    the largest gap between frames on any stream, the streams with a gap over 40 ms, and one
//!    caller's ear (`RECORD_WRITE_ONLY`, 5 s): the share of 100 ms windows carrying the tone
//!    sent back, and the longest 20 ms-window stretch without it.
//! 3. **CPU.** The controller's and FreeSWITCH's CPU (`/proc/<pid>/stat`) over each window: the
//!    same rooms and callers with no stream (baseline), one stream a room, `STREAMS_COUNT`
//!    streams at 8 kHz, and (unless `STREAMS_16K=0`) at 16 kHz; per stream over the baseline,
//!    and the streams one core of the controller carries.
//!
//! `cargo bench --bench streams`. `STREAMS_ECHO_SECS` (default 30) is each echo path's
//! recording; `STREAMS_SMALL_SECS` (default 30) the baseline's, one-a-room's and 16 kHz's
//! windows; `STREAMS_PARTS` (default `echo,load`) picks the parts; `STREAMS_LOG_COPY=<file>`
//! keeps the controller's log (`SERVE_LOG` sets its filter). Without `--bench` (as
//! `cargo test --benches` runs it) it does nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[path = "../tests/common/freeswitch.rs"]
mod freeswitch;
#[path = "../tests/common/ports.rs"]
mod ports;
/// Its API client only (the bench starts the controller itself, to know its pid and keep its log).
#[allow(dead_code)]
#[path = "../tests/common/serve.rs"]
mod serve;
#[allow(dead_code)]
#[path = "../tests/common/sipp.rs"]
mod sipp;
#[allow(dead_code)]
mod support;
/// Its audio helpers (µ-law decoding, the tone detector); the bench's own server answers.
#[allow(dead_code)]
#[path = "../tests/common/ws_server.rs"]
mod ws_server;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use freeswitch::FreeSwitch;
use serve::Api;
use support::prom::{self, Histograms, quantile};
use support::{
    AbortOnDrop, KillOnDrop, RedisServer, SippLoad, binary, cpu_secs, dist, env_or, loadavg, within,
};
use switchyard::api::hash_key;
use switchyard::esl::{
    ApiCommand, Client, ClientConfig, EventFormat, EventName, EventSet, Password,
};

const DID: &str = "15551230000";
const APP: &str = "bench";
const KEY: &str = "streams-bench-key";
const PREFIX: &str = "bench";
const BURST_HZ: f64 = 1000.0;
const BACK_HZ: f64 = 2000.0;
const SETTLE: Duration = Duration::from_secs(20);

fn main() -> anyhow::Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("streams: run it with `cargo bench --bench streams`");
        return Ok(());
    }
    support::preflight("streams", freeswitch::binary())?;
    let (rtp_start, rtp_end) = freeswitch::free_rtp_range(800);
    let (rtp_start, rtp_end) = (rtp_start.to_string(), rtp_end.to_string());
    eprintln!("streams: starting FreeSWITCH, redis-server and the controller…");
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
            r = run(&fs, &redis) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
            _ = support::terminated() => Err(anyhow!("terminated")),
        }
    });
    drop(rt);
    if let Err(e) = &result {
        eprintln!(
            "streams: failed ({e:#}); FreeSWITCH's log was in {} (removed on exit)",
            fs.dir.display()
        );
    }
    drop(fs);
    drop(redis);
    result
}

// --- the controller and the node ---

fn write_config(path: &Path, listen: &str, redis: &str, fs: &FreeSwitch) -> anyhow::Result<()> {
    let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let text = format!(
        "listen = {}\nredis_url = {}\ncursor_secret = \"streams-bench-cursor-secret-0123456789\"\n{}\
         [limits]\nglobal_rps = 0\nconf_play_ms = 0\nconference_control_ms = 0\n\
         conference_ms = 0\nconference_mute_ms = 0\n\
         [streams]\nallow_private = true\nrequire_wss = false\nconnect_timeout_ms = 5000\n\
         [quotas]\nstreams = 400\n\
         [[nodes]]\nname = \"bench\"\nprefix = {}\nesl = {}\npassword = {}\n\
         profile = \"switchyard\"\nrecordings_dir = {}\n\
         [[apps]]\nid = {}\nkey_sha256 = {}\ndids = [{}]\n",
        q(listen),
        q(redis),
        serve::operator_toml(),
        q(PREFIX),
        q(&fs.esl()),
        q(&fs.password),
        q(&fs.recordings().to_string_lossy()),
        q(APP),
        q(&hash_key(KEY)),
        q(DID),
    );
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The bench's own Event Socket connection.
struct Node {
    client: Client,
    /// SIP Call-ID → channel uuid, from CHANNEL_PARK.
    parked: Arc<Mutex<HashMap<String, String>>>,
}

impl Node {
    async fn connect(fs: &FreeSwitch) -> anyhow::Result<(Node, tokio::task::AbortHandle)> {
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
        let parked = Arc::new(Mutex::new(HashMap::new()));
        let seen = parked.clone();
        let task = tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                if let (Some(call), Some(uuid)) = (e.header("variable_sip_call_id"), e.unique_id())
                {
                    seen.lock()
                        .unwrap()
                        .insert(call.into_owned(), uuid.into_owned());
                }
            }
        });
        Ok((Node { client, parked }, task.abort_handle()))
    }

    /// One `api` line (split on blanks); the reply's text, or the error's.
    async fn api(&self, line: &str) -> String {
        let mut words = line.split_whitespace();
        let Ok(mut cmd) = ApiCommand::new(words.next().unwrap_or("status")) else {
            return format!("-ERR bad command {line}");
        };
        for w in words {
            cmd = match cmd.arg(w) {
                Ok(c) => c,
                Err(e) => return format!("-ERR {e}"),
            };
        }
        match self.client.api(&cmd).await {
            Ok(reply) => reply.text().into_owned(),
            Err(e) => format!("-ERR {e}"),
        }
    }

    /// The channels of the calls whose Call-ID starts with `tag`, once `n` are parked.
    async fn parked(&self, tag: &str, n: usize) -> anyhow::Result<Vec<String>> {
        let ours = || -> Vec<String> {
            let mut v: Vec<String> = self
                .parked
                .lock()
                .unwrap()
                .iter()
                .filter(|(call, _)| call.starts_with(tag))
                .map(|(_, channel)| channel.clone())
                .collect();
            v.sort();
            v
        };
        within(Duration::from_secs(30), "the node parks every call", || {
            std::future::ready(ours().len() >= n)
        })
        .await?;
        Ok(ours())
    }

    /// Records `channel` for `secs` into the node's recordings directory; the WAV's bytes.
    async fn record(
        &self,
        fs: &FreeSwitch,
        channel: &str,
        stereo: bool,
        secs: f64,
    ) -> anyhow::Result<(Vec<u8>, Instant)> {
        let name = format!("streams-bench-{}.wav", uuid::Uuid::new_v4().simple());
        let file = fs.recordings().join(&name);
        let var = if stereo {
            "RECORD_STEREO"
        } else {
            "RECORD_WRITE_ONLY"
        };
        let set = self.api(&format!("uuid_setvar {channel} {var} true")).await;
        if !set.starts_with("+OK") {
            bail!("uuid_setvar {var}: {set}");
        }
        let start = self
            .api(&format!("uuid_record {channel} start {}", file.display()))
            .await;
        let started = Instant::now();
        if !start.starts_with("+OK") {
            bail!("uuid_record start: {start}");
        }
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        let stop = self
            .api(&format!("uuid_record {channel} stop {}", file.display()))
            .await;
        if !stop.starts_with("+OK") {
            bail!("uuid_record stop: {stop}");
        }
        // Closed once its size stops growing (the header is rewritten at close).
        let mut last = 0;
        let mut bytes = Vec::new();
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            bytes = std::fs::read(&file).unwrap_or_default();
            if bytes.len() > 44 && bytes.len() == last {
                break;
            }
            last = bytes.len();
        }
        let _ = std::fs::remove_file(&file);
        if bytes.len() <= 44 {
            bail!("the recording {} is empty", file.display());
        }
        Ok((bytes, started))
    }
}

/// A room through the API, once it is progressing.
async fn make_room(api: &Api, name: &str) -> anyhow::Result<String> {
    let (status, body) = api
        .call("POST", "/api/v1/conferences", Some(json!({ "name": name })))
        .await;
    if status != 201 {
        bail!("creating a room: {status} {body}");
    }
    let room = body["room_id"].as_str().unwrap_or_default().to_owned();
    within(SETTLE, "the room is progressing", || async {
        let (_, body) = api
            .call("GET", &format!("/api/v1/conferences/{room}"), None)
            .await;
        body["status"] == "progressing"
    })
    .await?;
    Ok(room)
}

/// The call's session joins `room` and is unmuted.
async fn join_unmuted(api: &Api, channel: &str, room: &str) -> anyhow::Result<()> {
    let session = format!("{PREFIX}-{channel}");
    within(SETTLE, "the controller has the call parked", || async {
        let (status, body) = api
            .call("GET", &format!("/api/v1/sessions/{session}"), None)
            .await;
        status == 200 && body["state"] == "parked"
    })
    .await?;
    let (status, body) = api
        .call(
            "POST",
            &format!("/api/v1/sessions/{session}/commands/conference/join"),
            Some(json!({ "room_id": room })),
        )
        .await;
    if status != 202 {
        bail!("join: {status} {body}");
    }
    within(SETTLE, "the call is a member", || async {
        api.members(room).await.iter().any(|(c, _)| c == channel)
    })
    .await?;
    let (status, body) = api
        .call(
            "POST",
            &format!("/api/v1/sessions/{session}/commands/conference/unmute"),
            Some(json!({})),
        )
        .await;
    if status != 202 {
        bail!("unmute: {status} {body}");
    }
    within(SETTLE, "the call is unmuted", || async {
        api.members(room)
            .await
            .iter()
            .any(|(c, muted)| c == channel && !muted)
    })
    .await
}

/// A stream through the API; its id (a `failed` stream or an error status is an error that
/// says all the API answered).
async fn start_stream(
    api: &Api,
    room: &str,
    url: &str,
    protocol: &str,
    rate: u32,
) -> anyhow::Result<String> {
    let (status, body) = api
        .call(
            "POST",
            &format!("/api/v1/conferences/{room}/streams"),
            Some(json!({
                "url": url,
                "track": "room",
                "protocol": protocol,
                "sample_rate": rate,
                "bidirectional": true,
            })),
        )
        .await;
    if status != 201 || body["status"] != "streaming" {
        bail!("POST …/streams ({protocol} {rate} Hz) answered {status}: {body}");
    }
    Ok(body["stream_id"].as_str().unwrap_or_default().to_owned())
}

async fn stop_stream(api: &Api, room: &str, sid: &str) {
    let (status, body) = api
        .call(
            "DELETE",
            &format!("/api/v1/conferences/{room}/streams/{sid}"),
            None,
        )
        .await;
    if status != 200 {
        eprintln!("streams: DELETE stream {sid}: {status} {body}");
    }
}

// --- the stream server ---

/// What the server saw on one connection (its path names it).
#[derive(Default)]
struct ConnLog {
    /// Each audio frame's arrival, and whether it carries the burst's tone.
    frames: Vec<(Instant, bool)>,
    /// Frames sent back (paced), and the sends that failed.
    sent: usize,
    failed: usize,
    closed: bool,
}

type Logs = Arc<Mutex<HashMap<String, Arc<Mutex<ConnLog>>>>>;

/// A WebSocket server on 127.0.0.1: `/echo/<rate>/…` sends every audio message straight back;
/// `/pace/<rate>/…` sends 20 ms of a 2000 Hz tone every 20 ms (L16 at `rate`).
async fn ws_server(logs: Logs) -> anyhow::Result<(String, tokio::task::AbortHandle)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let logs = logs.clone();
            tokio::spawn(async move {
                let path = Arc::new(Mutex::new(String::new()));
                let seen = path.clone();
                // tungstenite's own handshake callback type: its error is an HTTP response.
                #[allow(clippy::result_large_err)]
                let callback =
                    move |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                          resp| {
                        *seen.lock().unwrap() = req.uri().path().to_owned();
                        Ok(resp)
                    };
                let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                    return;
                };
                let path = path.lock().unwrap().clone();
                let log = Arc::new(Mutex::new(ConnLog::default()));
                logs.lock().unwrap().insert(path.clone(), log.clone());
                let mut parts = path.split('/').skip(1);
                let mode = parts.next().unwrap_or_default().to_owned();
                let rate: u32 = parts.next().and_then(|r| r.parse().ok()).unwrap_or(8000);
                if mode == "echo" {
                    echo(ws, rate, log).await;
                } else {
                    pace(ws, rate, log).await;
                }
            });
        }
    });
    Ok((format!("ws://{addr}"), task.abort_handle()))
}

fn has_burst(samples: &[i16], rate: u32) -> bool {
    let rms = (samples.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>()
        / samples.len().max(1) as f64)
        .sqrt();
    rms > 300.0 && ws_server::tone_share(samples, rate, BURST_HZ) > 0.3
}

async fn echo(
    mut ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    rate: u32,
    log: Arc<Mutex<ConnLog>>,
) {
    while let Some(Ok(message)) = ws.next().await {
        let at = Instant::now();
        let (samples, back) = match message {
            Message::Text(text) => {
                let Ok(v) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                if v["event"] != "media" {
                    continue;
                }
                let payload = v["media"]["payload"].as_str().unwrap_or_default();
                let bytes = BASE64.decode(payload).unwrap_or_default();
                let samples: Vec<i16> = bytes.iter().map(|&b| ws_server::ulaw_decode(b)).collect();
                let back = json!({
                    "event": "media",
                    "streamSid": v["streamSid"],
                    "media": { "payload": payload },
                });
                (samples, Message::text(back.to_string()))
            }
            Message::Binary(bytes) => {
                let samples = bytes
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]))
                    .collect();
                (samples, Message::Binary(bytes))
            }
            Message::Close(_) => break,
            _ => continue,
        };
        let ok = ws.send(back).await.is_ok();
        let mut log = log.lock().unwrap();
        log.frames.push((at, has_burst(&samples, rate)));
        log.sent += 1;
        if !ok {
            log.failed += 1;
        }
    }
    log.lock().unwrap().closed = true;
}

async fn pace(
    ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    rate: u32,
    log: Arc<Mutex<ConnLog>>,
) {
    let (mut sink, mut source) = ws.split();
    let writer_log = log.clone();
    let writer = tokio::spawn(async move {
        let per_frame = rate as usize / 50;
        let mut n = 0usize;
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        loop {
            tick.tick().await;
            let frame: Vec<u8> = (n..n + per_frame)
                .flat_map(|i| {
                    let v =
                        (2.0 * std::f64::consts::PI * BACK_HZ * i as f64 / f64::from(rate)).sin();
                    ((v * 3000.0) as i16).to_le_bytes()
                })
                .collect();
            n += per_frame;
            let ok = sink.send(Message::binary(frame)).await.is_ok();
            let mut log = writer_log.lock().unwrap();
            log.sent += 1;
            if !ok {
                log.failed += 1;
                break;
            }
        }
    });
    while let Some(Ok(message)) = source.next().await {
        let at = Instant::now();
        match message {
            Message::Binary(_) => log.lock().unwrap().frames.push((at, false)),
            Message::Close(_) => break,
            _ => {}
        }
    }
    writer.abort();
    log.lock().unwrap().closed = true;
}

// --- part 1: the echo round trip ---

/// Headerless µ-law: `on_ms` of a 1000 Hz tone, then silence, `period_ms` in all.
fn burst_ulaw(on_ms: u32, period_ms: u32) -> Vec<u8> {
    let mut v = sipp::ulaw_tone(BURST_HZ, on_ms);
    v.resize(8 * period_ms as usize, sipp::ulaw(0));
    v
}

/// The onsets (in samples) of the bursts in `x` (8 kHz or so): a 5 ms window with the tone
/// after at least 100 ms without, refined to the first sample over 30 % of the burst's peak.
fn onsets(x: &[i16], rate: u32) -> Vec<usize> {
    let win = rate as usize / 200;
    let toned: Vec<bool> = x.chunks_exact(win).map(|w| has_burst(w, rate)).collect();
    let quiet = 20;
    let mut out = Vec::new();
    let mut since = quiet;
    for (i, &t) in toned.iter().enumerate() {
        if t {
            if since >= quiet {
                let from = i.saturating_sub(1) * win;
                let peak = x[from..(from + rate as usize / 5).min(x.len())]
                    .iter()
                    .map(|s| s.unsigned_abs())
                    .max()
                    .unwrap_or(0);
                let first = x[from..]
                    .iter()
                    .position(|s| f64::from(s.unsigned_abs()) > 0.3 * f64::from(peak))
                    .map_or(i * win, |p| from + p);
                out.push(first);
            }
            since = 0;
        } else {
            since += 1;
        }
    }
    out
}

/// An echo path's figures.
#[derive(Default)]
struct EchoResult {
    name: String,
    bursts: usize,
    rtt: Vec<f64>,
    /// To the server and back (stream paths), ms.
    to_server: Vec<f64>,
    from_server: Vec<f64>,
    note: String,
    /// The controller's own share, from its `switchyard_stream_frame_held_seconds` over the path.
    held: Option<Histograms>,
}

/// Round trips from a stereo recording (left: sent; right: heard), and, with the server's
/// onsets, the split at the server.
fn analyse(name: &str, wav: &[u8], started: Instant, server: &[Instant]) -> EchoResult {
    let mut reader = hound::WavReader::new(std::io::Cursor::new(wav)).unwrap();
    let spec = reader.spec();
    let samples: Vec<i16> = reader.samples::<i16>().map(|s| s.unwrap_or(0)).collect();
    let rate = spec.sample_rate;
    let ms = |n: usize| n as f64 * 1000.0 / f64::from(rate);
    let (left, right): (Vec<i16>, Vec<i16>) = if spec.channels == 2 {
        samples.chunks_exact(2).map(|f| (f[0], f[1])).unzip()
    } else {
        return EchoResult {
            name: name.to_owned(),
            note: format!("the recording has {} channel(s), not 2", spec.channels),
            ..EchoResult::default()
        };
    };
    let sent = onsets(&left, rate);
    let heard = onsets(&right, rate);
    let mut out = EchoResult {
        name: name.to_owned(),
        bursts: sent.len(),
        ..EchoResult::default()
    };
    for &l in &sent {
        let Some(&r) = heard.iter().find(|&&r| r > l && ms(r - l) < 700.0) else {
            continue;
        };
        out.rtt.push(ms(r - l));
        let (lt, rt) = (ms(l), ms(r));
        if let Some(a) = server
            .iter()
            .map(|a| a.saturating_duration_since(started).as_secs_f64() * 1000.0)
            .find(|&a| a > lt && a < rt)
        {
            out.to_server.push(a - lt);
            out.from_server.push(rt - a);
        }
    }
    if out.rtt.len() < sent.len() {
        out.note = format!(
            "{} of {} bursts without an echo ({} onsets heard)",
            sent.len() - out.rtt.len(),
            sent.len(),
            heard.len()
        );
    }
    out
}

/// The server's burst onsets on a connection: a tone frame after at least 5 without.
fn server_onsets(log: &ConnLog) -> Vec<Instant> {
    let mut out = Vec::new();
    let mut since = 5;
    for &(at, tone) in &log.frames {
        if tone {
            if since >= 5 {
                out.push(at);
            }
            since = 0;
        } else {
            since += 1;
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
async fn echo_part(
    fs: &FreeSwitch,
    node: &Node,
    api: &Api,
    logs: &Logs,
    ws_base: &str,
    work: &Path,
    secs: f64,
) -> anyhow::Result<Vec<EchoResult>> {
    // The burst caller: the live tests' scenario, with the burst as its audio.
    let audio = work.join("burst-1000hz.ulaw");
    std::fs::write(&audio, burst_ulaw(200, 1000))?;
    let scenario = work.join("uac-burst.xml");
    let text = std::fs::read_to_string(sipp::scenario_path())?.replace(
        &*sipp::audio_path().to_string_lossy(),
        &audio.to_string_lossy(),
    );
    std::fs::write(&scenario, text)?;
    let tag = format!(
        "sy-echo-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let _caller = SippLoad::start(fs.sip(), &scenario, DID, 1, &tag)?;
    let channel = node.parked(&tag, 1).await?.remove(0);
    let room = make_room(api, "echo").await?;
    join_unmuted(api, &channel, &room).await?;
    eprintln!("streams: echo caller {channel} in room {room}");

    let mut results = Vec::new();
    for (name, kind) in [
        ("floor: FreeSWITCH echo", "floor"),
        ("stream twilio 8 kHz", "twilio"),
        ("stream l16 16 kHz", "l16"),
    ] {
        let teardown: Option<String>;
        let mut path = String::new();
        match kind {
            "floor" => {
                let reply = node
                    .api(&format!(
                        "originate loopback/echo/default/inline &conference({room}@switchyard)"
                    ))
                    .await;
                let Some(leg) = reply.trim().strip_prefix("+OK ") else {
                    results.push(EchoResult {
                        name: name.to_owned(),
                        note: format!("originate failed: {}", reply.trim()),
                        ..EchoResult::default()
                    });
                    continue;
                };
                teardown = Some(format!("uuid_kill {}", leg.trim()));
            }
            _ => {
                let (protocol, rate) = if kind == "twilio" {
                    ("twilio", 8000)
                } else {
                    ("l16", 16000)
                };
                path = format!("/echo/{rate}/{protocol}");
                match start_stream(api, &room, &format!("{ws_base}{path}"), protocol, rate).await {
                    Ok(sid) => teardown = Some(sid),
                    Err(e) => {
                        results.push(EchoResult {
                            name: name.to_owned(),
                            note: format!("{e:#}"),
                            ..EchoResult::default()
                        });
                        continue;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let members = node.api(&format!("conference {room} list")).await;
        eprintln!("streams: {name}: members on the node:\n{}", members.trim());
        let before = scrape_held(api).await;
        let recorded = node.record(fs, &channel, true, secs).await;
        let after = scrape_held(api).await;
        match (kind, teardown) {
            ("floor", Some(kill)) => {
                let r = node.api(&kill).await;
                eprintln!("streams: {kill}: {}", r.trim());
            }
            (_, Some(sid)) => stop_stream(api, &room, &sid).await,
            _ => {}
        }
        let (wav, started) = recorded?;
        let server = logs
            .lock()
            .unwrap()
            .get(&path)
            .map(|l| server_onsets(&l.lock().unwrap()))
            .unwrap_or_default();
        let mut r = analyse(name, &wav, started, &server);
        if kind != "floor" {
            r.held = Some(prom::delta(&before, &after));
        }
        eprintln!(
            "streams: {name}: {} bursts, {} round trips, {}",
            r.bursts,
            r.rtt.len(),
            r.note
        );
        results.push(r);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let _ = api
        .call("DELETE", &format!("/api/v1/conferences/{room}"), None)
        .await;
    Ok(results)
}

/// The controller's relay's held times (`switchyard_stream_frame_held_seconds`), by direction.
async fn scrape_held(api: &Api) -> Histograms {
    let Ok(resp) = api.metrics_request().send().await else {
        return Histograms::new();
    };
    let text = resp.text().await.unwrap_or_default();
    prom::parse(&text, |name, labels| {
        (name == "switchyard_stream_frame_held_seconds")
            .then(|| {
                labels
                    .strip_prefix("direction=\"")?
                    .split('"')
                    .next()
                    .map(str::to_owned)
            })
            .flatten()
    })
}

// --- parts 2 and 3: continuity and CPU ---

struct Window {
    name: String,
    streams: usize,
    secs: f64,
    ctl_pct: f64,
    fs_pct: f64,
    /// Per stream: frames per second, the largest gap (ms).
    fps: Vec<f64>,
    gaps: Vec<f64>,
    sent: usize,
    failed: usize,
    closed: usize,
    ear: Option<(f64, u64)>,
    started_in: f64,
}

#[allow(clippy::too_many_arguments)]
async fn window(
    name: &str,
    fs: &FreeSwitch,
    ctl_pid: u32,
    node: &Node,
    api: &Api,
    logs: &Logs,
    ws_base: &str,
    rooms: &[(String, String)],
    per_room: usize,
    rate: u32,
    secs: f64,
) -> anyhow::Result<Window> {
    let fs_pid = fs.pid().unwrap_or(0);
    let run = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
    let t0 = Instant::now();
    let mut sids = Vec::new();
    let mut paths = Vec::new();
    for k in 0..per_room {
        for (i, (room, _)) in rooms.iter().enumerate() {
            let path = format!("/pace/{rate}/{run}-{i}-{k}");
            match start_stream(api, room, &format!("{ws_base}{path}"), "l16", rate).await {
                Ok(sid) => {
                    sids.push((room.clone(), sid));
                    paths.push(path);
                }
                Err(e) => eprintln!("streams: {name}: {e:#}"),
            }
        }
    }
    let started_in = t0.elapsed().as_secs_f64();
    if per_room > 0 {
        eprintln!(
            "streams: {name}: {} streams started in {started_in:.1} s",
            sids.len()
        );
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (c0, f0, w0) = (cpu_secs(ctl_pid), cpu_secs(fs_pid), Instant::now());
    let ear = if per_room > 0 && secs > 8.0 {
        tokio::time::sleep(Duration::from_secs_f64(secs / 2.0 - 2.5)).await;
        let (wav, _) = node.record(fs, &rooms[0].1, false, 5.0).await?;
        let (samples, r) = wav_mono(&wav);
        let w100 = r as usize / 10;
        let windows: Vec<&[i16]> = samples.chunks_exact(w100).collect();
        let share =
            windows.iter().filter(|w| back_tone(w, r)).count() as f64 / windows.len().max(1) as f64;
        let toned: Vec<bool> = samples
            .chunks_exact(r as usize / 50)
            .map(|w| back_tone(w, r))
            .collect();
        let inner = &toned[10.min(toned.len())..toned.len().saturating_sub(10)];
        let (mut longest, mut run) = (0u64, 0u64);
        for &t in inner {
            run = if t { 0 } else { run + 1 };
            longest = longest.max(run);
        }
        let rest = (secs - w0.elapsed().as_secs_f64()).max(0.0);
        tokio::time::sleep(Duration::from_secs_f64(rest)).await;
        Some((share, longest * 20))
    } else {
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        None
    };
    let wall = w0.elapsed().as_secs_f64();
    let (c1, f1, w1) = (cpu_secs(ctl_pid), cpu_secs(fs_pid), Instant::now());
    let mut out = Window {
        name: name.to_owned(),
        streams: sids.len(),
        secs: wall,
        ctl_pct: (c1 - c0) / wall * 100.0,
        fs_pct: (f1 - f0) / wall * 100.0,
        fps: Vec::new(),
        gaps: Vec::new(),
        sent: 0,
        failed: 0,
        closed: 0,
        ear,
        started_in,
    };
    {
        let logs = logs.lock().unwrap();
        for p in &paths {
            let Some(log) = logs.get(p) else {
                out.fps.push(0.0);
                out.gaps.push(wall * 1000.0);
                continue;
            };
            let log = log.lock().unwrap();
            let inside: Vec<Instant> = log
                .frames
                .iter()
                .map(|(at, _)| *at)
                .filter(|at| *at >= w0 && *at <= w1)
                .collect();
            out.fps.push(inside.len() as f64 / wall);
            let mut edges = vec![w0];
            edges.extend(&inside);
            edges.push(w1);
            let gap = edges
                .windows(2)
                .map(|w| (w[1] - w[0]).as_secs_f64() * 1000.0)
                .fold(0.0, f64::max);
            out.gaps.push(gap);
            out.sent += log.sent;
            out.failed += log.failed;
            out.closed += usize::from(log.closed);
        }
    }
    for (room, sid) in &sids {
        stop_stream(api, room, sid).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(out)
}

fn back_tone(w: &[i16], rate: u32) -> bool {
    let rms = (w.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / w.len().max(1) as f64).sqrt();
    rms > 300.0 && ws_server::tone_share(w, rate, BACK_HZ) > 0.5
}

fn wav_mono(bytes: &[u8]) -> (Vec<i16>, u32) {
    let mut reader = hound::WavReader::new(std::io::Cursor::new(bytes)).unwrap();
    let spec = reader.spec();
    let samples: Vec<i16> = reader.samples::<i16>().map(|s| s.unwrap_or(0)).collect();
    let mono = if spec.channels == 2 {
        samples.chunks_exact(2).map(|f| f[1]).collect()
    } else {
        samples
    };
    (mono, spec.sample_rate)
}

async fn load_part(
    fs: &FreeSwitch,
    ctl_pid: u32,
    node: &Node,
    api: &Api,
    logs: &Logs,
    ws_base: &str,
) -> anyhow::Result<Vec<Window>> {
    let count = env_or("STREAMS_COUNT", 50).max(1) as usize;
    let secs = env_or("STREAMS_SECS", 60).max(5) as f64;
    let small = env_or("STREAMS_SMALL_SECS", 30).max(5) as f64;
    let per_room = 5.min(count);
    let n_rooms = count.div_ceil(per_room);
    let tag = format!(
        "sy-load-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let _callers = SippLoad::start(fs.sip(), sipp::scenario_path(), DID, n_rooms, &tag)?;
    let channels = node.parked(&tag, n_rooms).await?;
    let mut rooms = Vec::new();
    for (i, channel) in channels.iter().enumerate() {
        let room = make_room(api, &format!("load-{i}")).await?;
        join_unmuted(api, channel, &room).await?;
        rooms.push((room, channel.clone()));
    }
    eprintln!(
        "streams: {n_rooms} rooms, one 440 Hz caller each, joined and unmuted; load {}",
        loadavg()
    );
    let mut out = Vec::new();
    let w = |name: String, per: usize, rate: u32, s: f64| {
        let rooms = &rooms;
        async move {
            window(
                &name, fs, ctl_pid, node, api, logs, ws_base, rooms, per, rate, s,
            )
            .await
        }
    };
    out.push(w("baseline (no stream)".into(), 0, 8000, small).await?);
    eprintln!("streams: baseline done");
    out.push(w("one a room, l16 8 kHz".into(), 1, 8000, small).await?);
    eprintln!("streams: one a room done");
    let mut big = w(format!("{count} streams, l16 8 kHz"), per_room, 8000, secs).await?;
    // Exactly `count`: the last room's extra streams are not started above when count is not
    // a multiple of five (per_room a room), so nothing to trim.
    big.name = format!("{} streams, l16 8 kHz", big.streams);
    out.push(big);
    eprintln!("streams: 8 kHz done");
    if std::env::var("STREAMS_16K").map_or(true, |v| v != "0") {
        let mut hi = w("16k".into(), per_room, 16000, small).await?;
        hi.name = format!("{} streams, l16 16 kHz", hi.streams);
        out.push(hi);
        eprintln!("streams: 16 kHz done");
    }
    for (room, _) in &rooms {
        let _ = api
            .call("DELETE", &format!("/api/v1/conferences/{room}"), None)
            .await;
    }
    Ok(out)
}

// --- the run and the report ---

async fn run(fs: &FreeSwitch, redis: &RedisServer) -> anyhow::Result<()> {
    let parts = std::env::var("STREAMS_PARTS").unwrap_or_else(|_| "echo,load".into());
    let echo_secs = env_or("STREAMS_ECHO_SECS", 30).max(3) as f64;
    let logs: Logs = Arc::default();
    let (ws_base, ws_task) = ws_server(logs.clone()).await?;
    let (node, node_task) = Node::connect(fs).await?;
    let _tasks = AbortOnDrop(vec![ws_task, node_task]);
    let load_before = loadavg();

    let port = freeswitch::free_tcp_port();
    let work = std::env::temp_dir().join(format!("switchyard-streams-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let config = work.join("switchyard.toml");
    write_config(&config, &format!("127.0.0.1:{port}"), &redis.url(), fs)?;
    let log_path = work.join("serve.log");
    let log = std::fs::File::create(&log_path)?;
    let bin = binary();
    let child = Command::new(&bin)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env(
            "RUST_LOG",
            std::env::var("SERVE_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let serve = KillOnDrop(child);
    let ctl_pid = serve.0.id();
    let api = Api {
        base: format!("http://127.0.0.1:{port}"),
        app: APP.to_owned(),
        key: KEY.to_owned(),
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .timeout(Duration::from_secs(15))
            .build()?,
    };
    within(
        Duration::from_secs(30),
        "switchyard serve is ready",
        || async { api.call("GET", "/readyz", None).await.0 == 200 },
    )
    .await
    .with_context(|| format!("the controller's log: {}", log_path.display()))?;

    let result = async {
        let echo = if parts.contains("echo") {
            echo_part(fs, &node, &api, &logs, &ws_base, &work, echo_secs).await?
        } else {
            Vec::new()
        };
        let load = if parts.contains("load") {
            load_part(fs, ctl_pid, &node, &api, &logs, &ws_base).await?
        } else {
            Vec::new()
        };
        anyhow::Ok((echo, load))
    }
    .await;
    if let Ok(copy) = std::env::var("STREAMS_LOG_COPY") {
        let _ = std::fs::copy(&log_path, copy);
    }
    let log_text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let warnings: Vec<&str> = log_text.lines().collect();
    if !warnings.is_empty() {
        eprintln!(
            "streams: the controller's log ({} lines; last ones):",
            warnings.len()
        );
        for l in &warnings[warnings.len().saturating_sub(15)..] {
            eprintln!("  {l}");
        }
    }
    let (echo, load) = result?;
    report(&echo, &load, echo_secs, &load_before, &loadavg());
    drop(serve);
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

fn report(echo: &[EchoResult], load: &[Window], echo_secs: f64, before: &str, after: &str) {
    println!();
    println!(
        "live audio streams on a real FreeSWITCH {}; {} cores; load average {before} before, \
         {after} after",
        freeswitch::version(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    if !echo.is_empty() {
        println!();
        println!(
            "echo round trip: a 200 ms 1000 Hz burst every second, {echo_secs:.0} s per path, \
             caller's leg recorded in stereo; ms"
        );
        println!(
            "{:<24} {:>6} {:>7} {:>7} {:>7} {:>7}   {:<28}",
            "path", "n", "p50", "p90", "p99", "max", "split at the server (p50)"
        );
        for r in echo {
            let d = dist(r.rtt.iter().copied());
            let split = if r.to_server.is_empty() {
                String::new()
            } else {
                let (a, b) = (
                    dist(r.to_server.iter().copied()),
                    dist(r.from_server.iter().copied()),
                );
                format!(
                    "to server {:.1} (p99 {:.1}), back {:.1} (p99 {:.1}), n {}",
                    a.p50, a.p99, b.p50, b.p99, a.n
                )
            };
            println!(
                "{:<24} {:>2}/{:<3} {:>7.1} {:>7.1} {:>7.1} {:>7.1}   {split}",
                r.name, d.n, r.bursts, d.p50, d.p90, d.p99, d.max
            );
            if !r.note.is_empty() {
                println!("{:<24} {}", "", r.note);
            }
            if let Some(held) = &r.held {
                let one = |direction: &str| {
                    let h = held.get(direction).cloned().unwrap_or_default();
                    let (p50, n) = quantile(&h.buckets, 0.5);
                    let (p99, _) = quantile(&h.buckets, 0.99);
                    format!(
                        "{n:.0} frames, mean {:.2}, p50 {p50:.2}, p99 {p99:.2}",
                        h.mean_ms()
                    )
                };
                println!(
                    "{:<24} the controller held it: to the server {}; back to the node {} \
                     (ms; the quantiles only as fine as its histogram's buckets)",
                    "",
                    one("to_server"),
                    one("to_node")
                );
            }
        }
        let floor = echo.iter().find(|r| r.name.starts_with("floor"));
        if let Some(f) = floor.filter(|f| !f.rtt.is_empty()) {
            let fd = dist(f.rtt.iter().copied());
            for r in echo.iter().filter(|r| !r.name.starts_with("floor")) {
                if r.rtt.is_empty() {
                    println!("  {}: no round trip measured: goal NOT MEASURED", r.name);
                    continue;
                }
                let d = dist(r.rtt.iter().copied());
                println!(
                    "  {}: p50 +{:.1} ms, p99 +{:.1} ms over the floor (goal p99 ≤ +60): {}",
                    r.name,
                    d.p50 - fd.p50,
                    d.p99 - fd.p99,
                    if d.p99 - fd.p99 <= 60.0 {
                        "MET"
                    } else {
                        "NOT MET"
                    }
                );
            }
        }
        println!(
            "  (the split at the server is as exact as the recording's start: up to one 20 ms \
             frame after the `uuid_record start` answer, which moves ms from \"back\" to \"to\")"
        );
    }
    if !load.is_empty() {
        println!();
        println!(
            "continuity and CPU: room-track l16 streams, bidirectional (the server sends 20 ms \
             of 2000 Hz every 20 ms); CPU in % of one core over each window"
        );
        println!(
            "{:<26} {:>4} {:>5} {:>8} {:>8} {:>8} {:>6} {:>7} {:>7} {:>6} {:>6}",
            "window",
            "n",
            "secs",
            "fps min",
            "fps avg",
            "max gap",
            ">40ms",
            "ctl %",
            "fs %",
            "ear",
            "silent"
        );
        let base = load.first();
        for w in load {
            let min = w.fps.iter().copied().fold(f64::INFINITY, f64::min);
            let avg = w.fps.iter().sum::<f64>() / w.fps.len().max(1) as f64;
            let gap = w.gaps.iter().copied().fold(0.0, f64::max);
            let over = w.gaps.iter().filter(|&&g| g > 40.0).count();
            let (ear, silent) = w.ear.map_or(("-".to_owned(), "-".to_owned()), |(s, l)| {
                (format!("{:.0}%", s * 100.0), format!("{l}ms"))
            });
            if w.streams == 0 {
                println!(
                    "{:<26} {:>4} {:>5.0} {:>8} {:>8} {:>8} {:>6} {:>7.1} {:>7.1} {:>6} {:>6}",
                    w.name, 0, w.secs, "-", "-", "-", "-", w.ctl_pct, w.fs_pct, ear, silent
                );
                continue;
            }
            println!(
                "{:<26} {:>4} {:>5.0} {:>8.1} {:>8.1} {:>8.1} {:>6} {:>7.1} {:>7.1} {:>6} {:>6}",
                w.name, w.streams, w.secs, min, avg, gap, over, w.ctl_pct, w.fs_pct, ear, silent
            );
        }
        println!();
        for w in load.iter().filter(|w| w.streams > 0) {
            let b = base.map_or((0.0, 0.0), |b| (b.ctl_pct, b.fs_pct));
            let ctl = (w.ctl_pct - b.0) / w.streams as f64;
            let fsp = (w.fs_pct - b.1) / w.streams as f64;
            println!(
                "  {}: per stream over the baseline: controller {ctl:.2} % of a core, \
                 FreeSWITCH {fsp:.2} %; one controller core carries ~{:.0} streams; \
                 started in {:.1} s; frames sent back {} ({} failed); {} closed early",
                w.name,
                if ctl > 0.0 { 100.0 / ctl } else { f64::NAN },
                w.started_in,
                w.sent,
                w.failed,
                w.closed
            );
        }
    }
}
