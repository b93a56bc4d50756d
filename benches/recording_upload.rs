//! Recordings to object storage (issue 38): the time from a recording's stop to `ready`, and
//! where it goes. One real FreeSWITCH, a real Garage, `switchyard serve` with `[recordings]
//! store = "s3"`, and a SIPp caller sending a tone into a room that records it for
//! `UPLOAD_RECORD_SECS` (default 600: a 10-minute recording). Then:
//! - stop → `ended` (the node's stop-recording) and stop → `ready` (the node's `http_put` of
//!   the file, the controller reading the object back whole for its sha256, the uploader's
//!   1-second tick), through the API as an application sees it;
//! - the two transfers apart, on the same file: the node putting it into the bucket
//!   (`http_put`, mod_http_cache) and the controller reading it back (`ObjectStore::check`),
//!   each three times, as MB/s.
//!
//! `cargo bench --bench recording_upload` (`UPLOAD_RECORD_SECS=60` for a short one). It starts
//! everything itself and stops it all by pid; without `--bench` it does nothing. Not in CI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[path = "../tests/common/freeswitch.rs"]
mod freeswitch;
#[path = "../tests/common/garage.rs"]
mod garage;
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

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use serde_json::json;

use freeswitch::FreeSwitch;
use garage::Garage;
use serve::{Api, Serve, until};
use support::RedisServer;

const DID: &str = "15551230000";
const KEY: &str = "upload-bench-key";

fn main() -> anyhow::Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("recording_upload: run it with `cargo bench --bench recording_upload`");
        return Ok(());
    }
    freeswitch::binary().map_err(|e| anyhow!("the bench needs a real node: {e}"))?;
    let secs: u64 = std::env::var("UPLOAD_RECORD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(secs))
}

async fn run(secs: u64) -> anyhow::Result<()> {
    let g = tokio::task::spawn_blocking(Garage::start).await?;
    let fs = tokio::task::spawn_blocking(FreeSwitch::start).await?;
    let redis = RedisServer::start().ok_or_else(|| anyhow!("redis-server did not start"))?;
    let base = format!("http://127.0.0.1:{}", serve::free_port());
    let dir = fs.dir.join("controller");
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("switchyard.toml");
    let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let mut text = format!(
        "listen = {}\nredis_url = {}\n[limits]\nglobal_rps = 0\n{}",
        q(base.trim_start_matches("http://")),
        q(&redis.url()),
        g.recordings_toml("bench"),
    );
    let extra = format!(
        "recordings_dir = {}\n",
        q(&fs.recordings().to_string_lossy())
    );
    text.push_str(&serve::node_toml("bench", &fs.esl(), &fs.password, &extra));
    text.push_str(&format!(
        "[[apps]]\nid = \"app1\"\nkey_sha256 = {}\ndids = [{}]\n",
        q(&switchyard::api::hash_key(KEY)),
        q(DID)
    ));
    std::fs::write(&config, &text)?;
    let _serve = Serve::start_env(&config, &base, None, &g.env()).await;
    let api = Api::new(&base, "app1", KEY);

    let _caller = sipp::Caller::dial(fs.sip(), DID, "4001", "Bench");
    let session = until(Duration::from_secs(20), "the call is listed", || async {
        let (_, body) = api.call("GET", "/api/v1/sessions?limit=10", None).await;
        body["sessions"][0]["uuid"].as_str().map(str::to_owned)
    })
    .await;
    let (status, body) = api
        .call(
            "POST",
            "/api/v1/conferences",
            Some(json!({ "name": "bench" })),
        )
        .await;
    if status != 201 {
        bail!("creating the room: {status} {body}");
    }
    let room = body["room_id"].as_str().unwrap_or_default().to_owned();
    let command = |verb: &str| format!("/api/v1/sessions/{session}/commands/conference/{verb}");
    until(Duration::from_secs(20), "the caller is in", || async {
        let _ = api
            .call("POST", &command("join"), Some(json!({ "room_id": room })))
            .await;
        (api.members(&room).await.len() == 1).then_some(())
    })
    .await;
    api.call("POST", &command("unmute"), Some(json!({}))).await;
    let recording = |verb: &str| format!("/api/v1/conferences/{room}/recording/{verb}");
    let (status, body) = api.call("POST", &recording("start"), Some(json!({}))).await;
    if status != 202 {
        bail!("starting the recording: {status} {body}");
    }
    let rec = body["id"].as_str().unwrap_or_default().to_owned();
    let view = format!("/api/v1/recordings/{rec}");
    until(Duration::from_secs(20), "the room records", || async {
        let (_, r) = api.call("GET", &view, None).await;
        (r["status"] == "recording").then_some(())
    })
    .await;
    eprintln!("recording_upload: recording {secs} s of a caller's tone");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (_, r) = api.call("GET", &view, None).await;
        if r["status"] != "recording" {
            bail!("the recording stopped by itself: {r}");
        }
    }

    let (status, body) = api.call("POST", &recording("stop"), Some(json!({}))).await;
    if status != 202 {
        bail!("stopping the recording: {status} {body}");
    }
    let stopped = Instant::now();
    let mut ended = None;
    let shown = loop {
        let (_, r) = api.call("GET", &view, None).await;
        if ended.is_none() && r["status"] == "ended" {
            ended = Some(stopped.elapsed());
        }
        match r["upload_status"].as_str() {
            Some("ready") => break r,
            Some("failed") => bail!("the copy failed: {r}"),
            _ => {}
        }
        if stopped.elapsed() > Duration::from_secs(600) {
            bail!("not ready 10 minutes after the stop: {r}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let ready = stopped.elapsed();
    let ended = ended.unwrap_or(ready);
    let size = shown["size_bytes"].as_u64().unwrap_or(0);
    let mb = size as f64 / 1_000_000.0;

    // The two transfers apart, on the node's same file.
    let s3 = g.object_store("bench");
    let file = fs.recordings().join(format!("{rec}.wav"));
    if !file.exists() {
        bail!("the node's file is not at {}", file.display());
    }
    let (mut puts, mut reads, mut refused) = (Vec::new(), Vec::new(), 0);
    for i in 0..3 {
        let key = s3.key(&format!("again/{rec}-{i}.wav"));
        let url = s3.put_url(&key, Duration::from_secs(600));
        // A put Garage refuses now and then under load (mod_http_cache says only `-ERR …
        // Command not found!`) is tried again, as the uploader does, and counted.
        let mut tries = 0;
        let put = loop {
            tries += 1;
            let t = Instant::now();
            let answer = tokio::task::block_in_place(|| {
                fs.api(&format!("http_put {url} {}", file.display()))
            });
            if answer.as_deref().unwrap_or_default().starts_with("+OK") {
                break t.elapsed();
            }
            if tries == 5 {
                bail!("http_put: {answer:?}");
            }
            refused += 1;
        };
        let t = Instant::now();
        let checked = s3.check(&key).await?.ok_or_else(|| anyhow!("not there"))?;
        reads.push(t.elapsed());
        puts.push(put);
        if checked.size != size {
            bail!("{} bytes put, {size} expected", checked.size);
        }
    }
    puts.sort();
    reads.sort();
    if refused > 0 {
        println!("recording_upload: {refused} of the node's puts were refused and made again");
    }
    let rate = |d: Duration| mb / d.as_secs_f64();
    println!(
        "| recording | size | stop → ended | stop → ready | node's put (median of 3) | controller's read-back (median of 3) |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {:.1} s | {:.1} MB | {} ms | {} ms | {} ms ({:.0} MB/s) | {} ms ({:.0} MB/s) |",
        shown["duration_ms"].as_u64().unwrap_or(0) as f64 / 1000.0,
        mb,
        ended.as_millis(),
        ready.as_millis(),
        puts[1].as_millis(),
        rate(puts[1]),
        reads[1].as_millis(),
        rate(reads[1]),
    );
    Ok(())
}
