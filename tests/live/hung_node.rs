//! A real FreeSWITCH node that hangs: paused by pid with SIGSTOP for 10 s under traffic (its
//! sockets stay open, nothing answers), then resumed with SIGCONT. Two `switchyard serve`
//! instances on one Redis share it: one applies its events, the other stands by with command
//! connections only. Every instance finds the hang within 3 s (its probe, `node/probe.rs`), and
//! from then on answers the node's commands at once with 503 and `Retry-After` (not a 504 after
//! `command_timeout_ms`); `/readyz` and `GET /api/v1/nodes` say `hung`. Within a second or two of
//! SIGCONT a mute is 202 again on every instance and is applied on the node. The node is this
//! test's own (`FreeSwitch::start`): a shared one is never paused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::live;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::freeswitch::{FreeSwitch, free_tcp_port};
use common::redis_server::RedisServer;
use common::serve::{Api, Serve, node_toml, until};
use common::sipp::Caller;
use live::caller_members;

const DID: &str = "15551230000";
const KEY: &str = "hung-node-key";
const PREFIX: &str = "hung1";
/// How long the node stays paused.
const PAUSE: Duration = Duration::from_secs(10);

/// One answer of the API: its status (0: none within the client's 8 s), `Retry-After`, and how
/// long it took.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    took: Duration,
}

async fn switch(api: &Api, session: &str, verb: &str) -> Answer {
    let path = format!("/api/v1/sessions/{session}/commands/conference/{verb}");
    let started = Instant::now();
    let sent = api
        .http
        .post(format!("{}{path}", api.base))
        .header("X-App-ID", &api.app)
        .header("X-API-Key", &api.key)
        .header("Content-Type", "application/json")
        .body("{}")
        .timeout(Duration::from_secs(8))
        .send()
        .await;
    let (status, retry_after) = match sent {
        Ok(r) => (
            r.status().as_u16(),
            r.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        ),
        Err(_) => (0, None),
    };
    Answer {
        status,
        retry_after,
        took: started.elapsed(),
    }
}

/// `signal` (`-STOP`, `-CONT`) to the process `pid`.
fn signal(pid: u32, signal: &str) {
    let sent = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status();
    assert!(sent.is_ok_and(|s| s.success()), "kill {signal} {pid}");
}

/// Whether the node has `channel` in `room` muted (`None`: not a member there, or no answer).
fn muted_on_node(fs: &FreeSwitch, room: &str, channel: &str) -> Option<bool> {
    let text = fs.api(&format!("conference {room} json_list"))?;
    caller_members(&text, "")
        .into_iter()
        .find(|(ch, _, _)| ch == channel)
        .map(|(_, _, muted)| muted)
}

/// The session's member as one instance's API lists it: muted or not.
async fn muted_listed(api: &Api, room: &str, session: &str) -> Option<bool> {
    api.members(room)
        .await
        .into_iter()
        .find(|(ch, _)| ch == &session[6..])
        .map(|(_, muted)| muted)
}

/// An instance's `/readyz` body.
async fn readyz(api: &Api) -> Option<Value> {
    let r = api
        .http
        .get(format!("{}/readyz", api.base))
        .send()
        .await
        .ok()?;
    serde_json::from_slice(&r.bytes().await.ok()?).ok()
}

/// The node's state in `/readyz` and in `GET /api/v1/nodes`.
async fn node_says(api: &Api) -> (String, String) {
    let ready = readyz(api).await.unwrap_or(Value::Null);
    let (_, nodes) = api.call("GET", "/api/v1/nodes", None).await;
    let listed = nodes["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["node"] == PREFIX)
        .map(|n| n["state"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    (
        ready["nodes"][PREFIX]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        listed,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(live_fs),
    ignore = "needs a real FreeSWITCH: run scripts/test-deps.sh"
)]
async fn live_a_node_paused_for_10_s_is_refused_at_once_by_every_instance_and_serves_on_resume() {
    common::sipp::require();
    let fs = tokio::task::spawn_blocking(FreeSwitch::start)
        .await
        .unwrap();
    let pid = fs.pid().expect("the node runs");
    let redis = RedisServer::start();
    let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let dir = fs.dir.join("controllers");
    std::fs::create_dir_all(&dir).unwrap();
    let mut instances = Vec::new();
    let mut apis = Vec::new();
    for name in ["a", "b"] {
        let base = format!("http://127.0.0.1:{}", free_tcp_port());
        let config = dir.join(format!("{name}.toml"));
        let mut text = format!(
            "listen = {}\nredis_url = {}\nnode_lease_ms = 1000\n\
             cursor_secret = \"hung-node-cursor-secret-0123456789\"\n\
             [limits]\nglobal_rps = 0\nconference_mute_ms = 0\ncommand_timeout_ms = 5000\n",
            q(base.trim_start_matches("http://")),
            q(&redis.url()),
        );
        text.push_str(&node_toml(PREFIX, &fs.esl(), &fs.password, ""));
        text.push_str(&format!(
            "[[apps]]\nid = \"app1\"\nkey_sha256 = {}\ndids = [{}]\n",
            q(&switchyard::api::hash_key(KEY)),
            q(DID)
        ));
        std::fs::write(&config, &text).unwrap();
        instances.push(Serve::start_logged(&config, &base).await);
        apis.push(Api::new(&base, "app1", KEY));
    }
    // Each instance's role: one applies the node's events (once the leases settle).
    let owner = until(
        Duration::from_secs(15),
        "one instance owns the node",
        || async {
            let mut owners = Vec::new();
            for (i, api) in apis.iter().enumerate() {
                let ready = readyz(api).await?;
                if ready["applies_events"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|n| n == PREFIX))
                {
                    owners.push(i);
                }
            }
            (owners.len() == 1).then(|| owners[0])
        },
    )
    .await;
    let role = |i: usize| if i == owner { "owner" } else { "standby" };

    // Four callers in one room: for each instance one for the checks and one for its traffic
    // (a switch of a member another instance has in flight would be refused 409 first).
    let callers: Vec<Caller> = (0..4)
        .map(|n| Caller::dial(fs.sip(), DID, &format!("500{n}"), &format!("Caller {n}")))
        .collect();
    let api = &apis[0];
    let sessions: Vec<String> = until(Duration::from_secs(20), "four sessions listed", || async {
        let (_, body) = api.call("GET", "/api/v1/sessions?limit=100", None).await;
        let sessions: Vec<String> = body["sessions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["uuid"].as_str().map(str::to_owned))
            .collect();
        (sessions.len() == callers.len()).then_some(sessions)
    })
    .await;
    let (status, body) = api
        .call(
            "POST",
            "/api/v1/conferences",
            Some(json!({ "name": "hung" })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let room = body["room_id"].as_str().unwrap().to_owned();
    for s in &sessions {
        let path = format!("/api/v1/sessions/{s}/commands/conference/join");
        until(Duration::from_secs(10), "the join is accepted", || async {
            let (status, _) = api
                .call("POST", &path, Some(json!({ "room_id": room })))
                .await;
            (status == 202).then_some(())
        })
        .await;
    }
    until(Duration::from_secs(20), "every member joined", || async {
        (api.members(&room).await.len() == sessions.len()).then_some(())
    })
    .await;
    let checked = [sessions[0].clone(), sessions[1].clone()];
    // The checked members start unmuted, so a mute is a change to send.
    for checked in &checked {
        assert_eq!(switch(api, checked, "unmute").await.status, 202);
        until(Duration::from_secs(10), "the member is unmuted", || async {
            (muted_on_node(&fs, &room, &checked[6..]) == Some(false)
                && muted_listed(api, &room, checked).await == Some(false))
            .then_some(())
        })
        .await;
    }

    // Traffic: each instance mutes and unmutes a member of its own, every 100 ms.
    let log: Arc<Mutex<Vec<(usize, Instant, Answer)>>> = Arc::default();
    let traffic_on = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let traffic: Vec<_> = apis
        .iter()
        .enumerate()
        .map(|(i, api)| {
            let (api, log, on) = (api.clone(), log.clone(), traffic_on.clone());
            let busy = sessions[i + 2].clone();
            tokio::spawn(async move {
                let mut n = 0;
                while on.load(std::sync::atomic::Ordering::Relaxed) {
                    let verb = if n % 2 == 0 { "mute" } else { "unmute" };
                    let at = Instant::now();
                    let answer = switch(&api, &busy, verb).await;
                    log.lock().unwrap().push((i, at, answer));
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // The node hangs.
    signal(pid, "-STOP");
    let paused = Instant::now();
    let resume = scopeguard(pid);
    // Every instance, asked to mute its checked member from the moment of the pause on, answers
    // 503 with Retry-After within 3 s of it.
    let found: Vec<Duration> =
        futures_util::future::join_all(apis.iter().enumerate().map(|(i, api)| {
            let checked = checked[i].clone();
            async move {
                let mut answers = Vec::new();
                loop {
                    let answer = switch(api, &checked, "mute").await;
                    answers.push(answer.clone());
                    if answer.status == 503 {
                        assert!(
                            answer.retry_after.is_some(),
                            "{}: 503 without Retry-After",
                            role(i)
                        );
                        return paused.elapsed();
                    }
                    assert!(
                        paused.elapsed() < Duration::from_secs(3),
                        "{}: no 503 within 3 s of the pause; answers: {answers:?}",
                        role(i)
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }))
        .await;
    for (i, at) in found.iter().enumerate() {
        assert!(
            *at < Duration::from_secs(3),
            "{}: 503 only {at:?} after the pause",
            role(i)
        );
    }
    // From then on each answers at once, and says the node is hung.
    for (i, api) in apis.iter().enumerate() {
        let answer = switch(api, &checked[i], "mute").await;
        assert_eq!(answer.status, 503, "{}: {answer:?}", role(i));
        assert_eq!(answer.retry_after.as_deref(), Some("1"), "{}", role(i));
        assert!(
            answer.took < Duration::from_millis(300),
            "{}: {answer:?}",
            role(i)
        );
        let (ready, listed) = node_says(api).await;
        assert_eq!(ready, "hung", "{}: /readyz", role(i));
        assert_eq!(listed, "hung", "{}: GET /api/v1/nodes", role(i));
    }
    let hung_from = paused + found.iter().copied().max().unwrap_or_default();
    tokio::time::sleep(PAUSE.saturating_sub(paused.elapsed())).await;

    // The node answers again.
    signal(pid, "-CONT");
    let resumed = Instant::now();
    drop(resume);
    tokio::time::sleep(Duration::from_secs(3)).await;
    traffic_on.store(false, std::sync::atomic::Ordering::Relaxed);
    for t in traffic {
        t.await.unwrap();
    }
    let log = log.lock().unwrap().clone();
    // Each instance's traffic is accepted again within 2.5 s of SIGCONT.
    let back: Vec<Duration> = (0..apis.len())
        .map(|i| {
            log.iter()
                .filter(|(j, at, a)| *j == i && *at > resumed && a.status == 202)
                .map(|(_, at, a)| *at + a.took - resumed)
                .min()
                .unwrap_or_else(|| panic!("{}: no 202 after SIGCONT: {log:?}", role(i)))
        })
        .collect();
    for (i, took) in back.iter().enumerate() {
        assert!(
            *took < Duration::from_millis(2500),
            "{}: the first 202 came {took:?} after SIGCONT",
            role(i)
        );
    }
    // Each instance switches its checked member to the other state: 202, and the node has it
    // so.
    for (i, api) in apis.iter().enumerate() {
        let checked = &checked[i];
        let want = until(Duration::from_secs(5), "a switch is accepted", || async {
            let muted = muted_on_node(&fs, &room, &checked[6..])?;
            let verb = if muted { "unmute" } else { "mute" };
            let answer = switch(api, checked, verb).await;
            (answer.status == 202).then_some(!muted)
        })
        .await;
        until(
            Duration::from_secs(5),
            "the switch is applied on the node",
            || async { (muted_on_node(&fs, &room, &checked[6..]) == Some(want)).then_some(()) },
        )
        .await;
        let what = format!("{}: the API lists the member as the node has it", role(i));
        until(Duration::from_secs(5), &what, || async {
            (muted_listed(api, &room, checked).await == Some(want)).then_some(())
        })
        .await;
    }
    // While the node was known hung, the traffic was answered at once: 503, or 409 for a switch
    // the store already has (answered without the node).
    let during: Vec<&(usize, Instant, Answer)> = log
        .iter()
        .filter(|(_, at, _)| *at > hung_from && *at < paused + PAUSE)
        .collect();
    assert!(during.len() > 20, "traffic during the hang: {during:?}");
    assert!(during.iter().filter(|(_, _, a)| a.status == 503).count() > 10);
    for (i, _, answer) in &during {
        assert!(
            [503, 409].contains(&answer.status),
            "{}: {answer:?}",
            role(*i)
        );
        assert!(
            answer.took < Duration::from_millis(500),
            "{}: {answer:?}",
            role(*i)
        );
    }
    let slowest: BTreeMap<&str, Duration> = log
        .iter()
        .filter(|(_, at, _)| *at > paused && *at < resumed)
        .fold(BTreeMap::new(), |mut m, (i, _, a)| {
            let e = m.entry(role(*i)).or_default();
            *e = (*e).max(a.took);
            m
        });
    // The figures docs/operations.md gives.
    eprintln!(
        "hung node: 503 after {:?} ({}) and {:?} ({}); slowest answer while paused {slowest:?}; \
         first 202 after SIGCONT {:?} ({}) and {:?} ({})",
        found[0],
        role(0),
        found[1],
        role(1),
        back[0],
        role(0),
        back[1],
        role(1),
    );
    drop(instances);
    drop(callers);
}

/// Sends SIGCONT to `pid` when dropped: a failed assertion never leaves the node stopped.
fn scopeguard(pid: u32) -> impl Drop {
    struct Resume(u32);
    impl Drop for Resume {
        fn drop(&mut self) {
            let _ = std::process::Command::new("kill")
                .args(["-CONT", &self.0.to_string()])
                .status();
        }
    }
    Resume(pid)
}
