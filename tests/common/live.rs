//! The live suite's harness: a controller started exactly as `switchyard serve` starts it (a
//! configuration, [`start_controller`], a real Redis) against a real FreeSWITCH, driven through
//! its router; real SIP callers (SIPp) dialing the node's DID; an operator's Event Socket
//! connection that looks at the node; and a clean-up that leaves the node as found.
//!
//! The node is one this test starts ([`FreeSwitch`]: `freeswitch-conf/` on free ports, killed at
//! the end), unless `SWITCHYARD_LIVE_ESL` names a running one. Calls are SIP calls from SIPp
//! (`SWITCHYARD_LIVE_SIP`, default the Event Socket's host on port 5060, for a running node);
//! [`Live::call`] finds each call's channel by its SIP Call-ID in the node's CHANNEL_PARK.
//! Control legs are ended by deleting the rooms (and, after a failure, by `uuid_kill`).
//! [`Live::finish`] checks that nothing of the run is left on the node; a test that panics before
//! it is cleaned up by `Drop`.
//!
//! Settings (environment): `SWITCHYARD_LIVE_ESL` (host:port), `SWITCHYARD_LIVE_ESL_PASSWORD`
//! (default `ClueCon`), `SWITCHYARD_LIVE_PROFILE` (default `switchyard`),
//! `SWITCHYARD_LIVE_RECORDINGS_DIR` (on the node, default `/var/lib/switchyard/recordings`),
//! `SWITCHYARD_LIVE_RECORDINGS_LOCAL_DIR` (the same directory as this machine sees it),
//! `SWITCHYARD_LIVE_DID` (default `15551230000`), and for playback `SWITCHYARD_LIVE_PLAY_URL`
//! or `SWITCHYARD_LIVE_HTTP_BIND` / `SWITCHYARD_LIVE_HTTP_HOST` (see [`Live::tone`]).

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::future::Future;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use switchyard::api::{ApiState, hash_key, router};
use switchyard::conference::{
    AppId, DomainEvent, EventKind, MemberStatus, Room, RoomId, SessionId, SessionState,
};
use switchyard::esl::{
    ApiCommand, Client, ClientConfig, EventFormat, EventName, EventSet, EventStream, Password,
};
use switchyard::server::config::Config;
use switchyard::server::start_controller;
use switchyard::store::Store;
use switchyard::store::redis::RedisStore;

use crate::common::api::{Reply, raw_get, send};
use crate::common::freeswitch::FreeSwitch;
use crate::common::proxy::Proxy;
use crate::common::redis_server::RedisServer;
use crate::common::sipp::Caller;

/// The node prefix of the live controller: every room and session id starts with it.
pub const PREFIX: &str = "live1";

/// The channel uuid of a session id (`{prefix}-{uuid}`, the prefix being [`PREFIX`]).
pub fn channel_of(session: &str) -> &str {
    session
        .strip_prefix(PREFIX)
        .and_then(|s| s.strip_prefix('-'))
        .unwrap_or(session)
}

/// The WAV the playback test plays (2 s of 440 Hz, 8 kHz mono).
pub const TONE: &[u8] = include_bytes!("../../fixtures/audio/tone-440hz-2s.wav");

/// Says something in the test output even when the test passes (libtest captures only the
/// print macros, not writes to the stderr handle).
pub fn notice(text: &str) {
    let _ = writeln!(std::io::stderr(), "live: {text}");
}

/// What the environment says about the node under test.
#[derive(Debug, Clone)]
pub struct Settings {
    pub esl: String,
    pub password: String,
    pub profile: String,
    pub recordings_dir: String,
    pub recordings_local_dir: Option<PathBuf>,
    pub did: String,
    pub play_url: Option<String>,
    pub http_bind: String,
    pub http_host: Option<String>,
    /// The node's SIP profile, where the callers dial.
    pub sip: SocketAddr,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Settings {
    /// A running node named by `SWITCHYARD_LIVE_ESL`.
    pub fn from_env() -> Settings {
        let esl = var("SWITCHYARD_LIVE_ESL").expect("SWITCHYARD_LIVE_ESL=host:port");
        let sip = var("SWITCHYARD_LIVE_SIP").unwrap_or_else(|| {
            let host = esl.rsplit_once(':').map_or(esl.as_str(), |(h, _)| h);
            format!("{host}:5060")
        });
        Settings {
            sip: sip
                .parse()
                .unwrap_or_else(|e| panic!("SWITCHYARD_LIVE_SIP={sip}: {e} (ip:port)")),
            esl,
            password: var("SWITCHYARD_LIVE_ESL_PASSWORD").unwrap_or_else(|| "ClueCon".into()),
            profile: var("SWITCHYARD_LIVE_PROFILE").unwrap_or_else(|| "switchyard".into()),
            recordings_dir: var("SWITCHYARD_LIVE_RECORDINGS_DIR")
                .unwrap_or_else(|| "/var/lib/switchyard/recordings".into()),
            recordings_local_dir: var("SWITCHYARD_LIVE_RECORDINGS_LOCAL_DIR").map(PathBuf::from),
            did: var("SWITCHYARD_LIVE_DID").unwrap_or_else(|| "15551230000".into()),
            play_url: var("SWITCHYARD_LIVE_PLAY_URL"),
            http_bind: var("SWITCHYARD_LIVE_HTTP_BIND").unwrap_or_else(|| "0.0.0.0:0".into()),
            http_host: var("SWITCHYARD_LIVE_HTTP_HOST"),
        }
    }

    /// The node this test started.
    pub fn of(node: &FreeSwitch) -> Settings {
        Settings {
            esl: node.esl(),
            password: node.password.clone(),
            profile: "switchyard".into(),
            recordings_dir: node.recordings().to_string_lossy().into_owned(),
            recordings_local_dir: None,
            did: "15551230000".into(),
            play_url: None,
            http_bind: "127.0.0.1:0".into(),
            http_host: None,
            sip: node.sip(),
        }
    }

    /// Where this machine reads the node's recordings.
    pub fn local_recordings(&self) -> PathBuf {
        self.recordings_local_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(&self.recordings_dir))
    }

    /// The configuration `switchyard serve` would read for this node and one application.
    fn config(&self, redis_url: &str, app: &str, key: &str) -> Config {
        let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
        let mut text = format!(
            "redis_url = {}\n\
             [limits]\nglobal_rps = 0\nconf_play_ms = 300\nconference_control_ms = 100\n\
             conference_ms = 300\nconference_mute_ms = 300\ncommand_timeout_ms = 5000\n\
             join_timeout_ms = 10000\n\
             [playback]\nallow_hosts = [\"127.0.0.1\"]\n\
             [streams]\nallow_private = true\nrequire_wss = false\nconnect_timeout_ms = 2000\n\
             [quotas]\nstreams = 3\n\
             [[nodes]]\nname = \"live\"\nprefix = {}\nesl = {}\npassword = {}\nprofile = {}\n\
             recordings_dir = {}\ngateway = \"carrier\"\n",
            q(redis_url),
            q(PREFIX),
            q(&self.esl),
            q(&self.password),
            q(&self.profile),
            q(&self.recordings_dir),
        );
        if let Some(dir) = &self.recordings_local_dir {
            text.push_str(&format!(
                "recordings_local_dir = {}\n",
                q(&dir.to_string_lossy())
            ));
        }
        // Dial-outs may go to SIP callees on this machine (tests/live/dialout.rs): listed by
        // name, since `*` reaches public hosts only; they show `+1555…` caller ids.
        text.push_str(&format!(
            "[[apps]]\nid = {}\nkey_sha256 = {}\ndids = [{}]\ndialout_hosts = [\"127.0.0.1\"]\ndialout_numbers = [\"+1555\"]\ncaller_ids = [\"+1555*\"]\n",
            q(app),
            q(&hash_key(key)),
            q(&self.did)
        ));
        Config::parse(&text, |_| None).expect("the live configuration is valid")
    }
}

/// A controller as `serve` runs it, minus the HTTP listener: requests go through its router.
pub struct Controller {
    pub state: ApiState<RedisStore>,
    pub router: axum::Router,
    stop: CancellationToken,
}

impl Controller {
    pub async fn start(config: &Config) -> Controller {
        let url = config.redis_url.as_deref().expect("redis_url");
        let mut store = RedisStore::connect(url).await.expect("Redis");
        if let Some(secs) = config.room_retention_secs {
            store = store.with_retention(Duration::from_secs(secs));
        }
        let stop = CancellationToken::new();
        let state = start_controller(Arc::new(store), config, &stop).expect("controller starts");
        for node in state.rooms().pool().nodes().iter() {
            assert!(
                node.wait_up(Duration::from_secs(15)).await,
                "the node at {} is not up after 15 s: {:?} (address, password, ACL?)",
                config.nodes[0].esl,
                node.state()
            );
        }
        let router = router(state.clone());
        Controller {
            state,
            router,
            stop,
        }
    }

    /// Stops the supervisors, webhooks and timeouts (the rooms stay on the node), and gives
    /// them a moment to drop their connections, so nothing the node does next reaches them.
    pub async fn stop(&self) {
        self.stop.cancel();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A node of the pool, with what kills it when the process exits.
type Pooled = (FreeSwitch, std::process::ChildStdin);

/// Nodes that live tests of this binary left clean, for the next test: one test at a time on a
/// node (two controllers of one node prefix would take each other's rooms), about as many nodes
/// as tests run at once, each killed when the process exits.
static POOL: Mutex<Vec<Pooled>> = Mutex::new(Vec::new());

/// A node from the pool, or a new one.
fn pooled_node() -> Pooled {
    let reused = POOL.lock().unwrap_or_else(|e| e.into_inner()).pop();
    reused.unwrap_or_else(|| {
        let fs = FreeSwitch::start();
        let reaper = fs.killed_when_this_process_exits();
        (fs, reaper)
    })
}

/// What a run made on the node, for the clean-up.
#[derive(Debug, Clone, Default)]
struct Made {
    rooms: Vec<String>,
    /// Calls and control legs.
    channels: Vec<String>,
}

/// One live test: a run id, a Redis, a controller, and the operator's connection to the node.
pub struct Live {
    pub settings: Settings,
    pub run: String,
    app_id: String,
    key: String,
    config: Config,
    pub ctl: Controller,
    node: Client,
    _node_events: AbortOnDrop,
    /// The address this machine has towards the node.
    local_ip: IpAddr,
    made: Mutex<Made>,
    /// SIP Call-ID → channel uuid, from the node's CHANNEL_PARK events.
    parked: Parked,
    callers: Mutex<Vec<Caller>>,
    finished: bool,
    /// The node this test started or took from the pool (`None`: `SWITCHYARD_LIVE_ESL`'s).
    pub fs: Option<FreeSwitch>,
    /// A node from the pool: what kills it at exit; it goes back to the pool once the test
    /// finished clean.
    reaper: Option<std::process::ChildStdin>,
    /// Between the controller and the node, with [`Live::start_proxied`].
    pub proxy: Option<Proxy>,
    // Dropped last: the controller's store.
    _redis: RedisServer,
}

impl Live {
    pub async fn start() -> Live {
        Live::start_inner(false, false, false, Vec::new(), None).await
    }

    /// With `[recordings]` as given (an object store the test started).
    pub async fn start_with_recordings(recordings: switchyard::server::config::Recordings) -> Live {
        Live::start_inner(false, false, false, Vec::new(), Some(recordings)).await
    }

    /// With extra environment for the node this test starts (variables `vars.xml` reads; with
    /// `SWITCHYARD_LIVE_ESL`'s node, not used).
    pub async fn start_with_node_env(env: &[(&str, &str)]) -> Live {
        let env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Live::start_inner(false, false, true, env, None).await
    }

    /// With talking events for the app (`talking_events = true`).
    pub async fn start_talking() -> Live {
        Live::start_inner(false, true, false, Vec::new(), None).await
    }

    /// With the controller's Event Socket connections going through a [`Proxy`] that the test
    /// can cut ([`Live::proxy`]).
    pub async fn start_proxied() -> Live {
        Live::start_inner(true, false, false, Vec::new(), None).await
    }

    /// With a node of its own, to crash and restart ([`Live::crash_and_restart_node`]).
    pub async fn start_own_node() -> Live {
        Live::start_inner(false, false, true, Vec::new(), None).await
    }

    async fn start_inner(
        proxied: bool,
        talking: bool,
        own_node: bool,
        env: Vec<(String, String)>,
        recordings: Option<switchyard::server::config::Recordings>,
    ) -> Live {
        // The controller's logs, with RUST_LOG (e.g. RUST_LOG=switchyard=debug).
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
        // Tests take turns on the nodes of a pool unless they need one of their own (an
        // environment for it, or a crash): each removes what it made, as on a staging node
        // (SWITCHYARD_LIVE_ESL), and gives the node back only once it is clean.
        let mut reaper = None;
        let fs = match var("SWITCHYARD_LIVE_ESL") {
            Some(_) => None,
            None if !own_node => {
                let (fs, r) = tokio::task::spawn_blocking(pooled_node)
                    .await
                    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
                reaper = Some(r);
                Some(fs)
            }
            None => Some(
                tokio::task::spawn_blocking(move || {
                    let env: Vec<(&str, &str)> =
                        env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    FreeSwitch::start_with(&env)
                })
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())),
            ),
        };
        let settings = fs.as_ref().map_or_else(Settings::from_env, Settings::of);
        let run = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        let (app_id, key) = (format!("live-{run}"), uuid::Uuid::new_v4().to_string());
        let parked = Arc::new(Mutex::new(std::collections::HashMap::new()));
        let (node, node_events, local_ip) = operator(&settings, &parked).await;
        let redis = RedisServer::start();
        let proxy = match proxied {
            true => Some(Proxy::start(settings.esl.clone()).await),
            false => None,
        };
        let mut config = settings.config(&redis.url(), &app_id, &key);
        if let Some(p) = &proxy {
            config.nodes[0].esl = p.addr.to_string();
        }
        config.apps[0].talking_events = talking;
        if let Some(r) = recordings {
            config.recordings = r;
        }
        let ctl = Controller::start(&config).await;
        Live {
            settings,
            run,
            app_id,
            key,
            config,
            ctl,
            node,
            _node_events: node_events,
            local_ip,
            made: Mutex::new(Made::default()),
            parked,
            callers: Mutex::new(Vec::new()),
            finished: false,
            fs,
            reaper,
            proxy,
            _redis: redis,
        }
    }

    /// The application's (id, key), as the API wants them.
    pub fn app(&self) -> (&str, &str) {
        (&self.app_id, &self.key)
    }

    pub fn app_id(&self) -> AppId {
        AppId::parse(&self.app_id).unwrap()
    }

    pub fn store(&self) -> &RedisStore {
        self.ctl.state.rooms().store()
    }

    /// The configuration the controller runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A new controller on the same Redis and configuration (the old one must be stopped).
    pub async fn start_controller(&mut self) {
        self.ctl = Controller::start(&self.config).await;
    }

    /// A room name unique to this run.
    pub fn name(&self, name: &str) -> String {
        format!("{}-{name}", self.run)
    }

    // --- the API ---

    pub async fn req(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        send(&self.ctl.router, method, path, Some(self.app()), body).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.req("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.req("POST", path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.req("DELETE", path, None).await
    }

    /// `GET /readyz` (no key).
    pub async fn readyz(&self) -> Reply {
        send(&self.ctl.router, "GET", "/readyz", None, None).await
    }

    /// The node this test started, killed with SIGKILL (a crash) and started again on the same
    /// ports, directories and password.
    pub async fn crash_and_restart_node(&mut self) {
        let mut fs = self
            .fs
            .take()
            .expect("a test that crashes its node starts it with Live::start_own_node (and without SWITCHYARD_LIVE_ESL)");
        fs.kill();
        let fs = tokio::task::spawn_blocking(move || {
            fs.restart();
            fs
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        self.fs = Some(fs);
        // The operator's connection died with the node.
        let (node, events, _) = operator(&self.settings, &self.parked).await;
        self.node = node;
        self._node_events = events;
    }

    pub async fn raw_get(&self, path: &str) -> (StatusCode, HeaderMap, axum::body::Bytes) {
        raw_get(&self.ctl.router, path, self.app()).await
    }

    /// [`Live::raw_get`] with more request headers (a `Range`).
    pub async fn raw_get_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, axum::body::Bytes) {
        crate::common::api::raw_get_with(&self.ctl.router, path, self.app(), headers).await
    }

    /// A request repeated while it is refused by a cooldown, after the wait the answer names.
    pub async fn patiently(&self, method: &str, path: &str, body: Value) -> Reply {
        loop {
            let r = self.req(method, path, Some(body.clone())).await;
            if r.status != StatusCode::TOO_MANY_REQUESTS {
                return r;
            }
            let wait = r.body["detail"]["retry_after_ms"].as_u64().unwrap_or(100);
            tokio::time::sleep(Duration::from_millis(wait + 10)).await;
        }
    }

    /// A `/api/v1` room named `name` (made unique), once its control leg is in.
    pub async fn room(&self, name: &str) -> String {
        self.room_with(json!({ "name": name })).await
    }

    /// The same with more of the create body (its `name` made unique).
    pub async fn room_with(&self, mut body: Value) -> String {
        if let Some(name) = body["name"].as_str() {
            body["name"] = json!(self.name(name));
        }
        let r = self.post("/api/v1/conferences", body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let id = r.body["room_id"].as_str().unwrap().to_owned();
        self.made_room(&id).await;
        id
    }

    /// A `/v1.0` conference (its name made unique), once it is progressing.
    pub async fn conference(&self, mut body: Value) -> Value {
        if let Some(name) = body["name"].as_str() {
            body["name"] = json!(self.name(name));
        }
        let r = self.post("/v1.0/conferences", body).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let id = r.body["id"].as_str().unwrap().to_owned();
        self.made_room(&id).await;
        self.resource(&id).await
    }

    async fn made_room(&self, id: &str) {
        let room = self.stored_room(id).await;
        {
            let mut made = self.made.lock().unwrap();
            made.rooms.push(id.to_owned());
            made.channels.push(room.control.channel.clone());
        }
        self.eventually(
            "the room is progressing (its control leg is in)",
            || async {
                self.stored_room(id).await.status == switchyard::conference::RoomStatus::Progressing
            },
        )
        .await;
    }

    pub async fn resource(&self, id: &str) -> Value {
        let r = self.get(&format!("/v1.0/conferences/{id}")).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        r.body
    }

    pub async fn stored_room(&self, id: &str) -> Room {
        self.store()
            .room(&self.app_id(), &RoomId::parse(id).unwrap())
            .await
            .unwrap()
            .expect("the room is stored")
    }

    pub async fn members(&self, room: &str) -> Vec<Value> {
        let r = self
            .get(&format!("/api/v1/conferences/{room}/members"))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        r.body["members"].as_array().unwrap().clone()
    }

    pub async fn session(&self, s: &str) -> Value {
        let r = self.get(&format!("/api/v1/sessions/{s}")).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        r.body
    }

    pub async fn join(&self, session: &str, room: &str) -> Reply {
        self.patiently(
            "POST",
            &format!("/api/v1/sessions/{session}/commands/conference/join"),
            json!({ "room_id": room }),
        )
        .await
    }

    /// A session joined: FreeSWITCH's add-member arrived.
    pub async fn joined(&self, room: &str, session: &str) {
        let r = self.join(session, room).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
        self.eventually("add-member confirms the join", || async {
            self.members(room)
                .await
                .iter()
                .any(|m| m["uuid"] == session)
        })
        .await;
    }

    /// `POST /api/v1/sessions/{session}/commands/{verb}`, waiting out cooldowns.
    pub async fn command(&self, session: &str, verb: &str) -> Reply {
        self.patiently(
            "POST",
            &format!("/api/v1/sessions/{session}/commands/{verb}"),
            json!({}),
        )
        .await
    }

    /// The domain events of `room` in the application's outbox.
    pub async fn events(&self, room: &str) -> Vec<DomainEvent> {
        self.store()
            .outbox(&self.app_id(), None, 10_000)
            .await
            .unwrap()
            .into_iter()
            .map(|row| row.event)
            .filter(|e| e.room.as_str() == room)
            .collect()
    }

    pub async fn count(&self, room: &str, kind: EventKind) -> usize {
        self.events(room)
            .await
            .iter()
            .filter(|e| e.kind == kind)
            .count()
    }

    /// Waits (up to 20 s: a real node is slower than the simulator) until `check` holds.
    pub async fn eventually<F, Fut>(&self, what: &str, check: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        within(Duration::from_secs(20), what, check).await;
    }

    // --- the node ---

    /// An `api` command on the operator's connection; the reply's text.
    pub async fn node_api(&self, line: &str) -> String {
        api(&self.node, line).await
    }

    /// A SIP call from `caller` to the application's DID, answered and parked by the node's
    /// dialplan; its session id once the controller has stored it parked.
    pub async fn call(&self, caller: &str) -> String {
        self.call_named(caller, &format!("Caller {caller}")).await
    }

    /// The same with a caller name (the From header's display name).
    pub async fn call_named(&self, caller: &str, name: &str) -> String {
        let call_id = self.dial(caller, name);
        self.parked_session(&call_id).await
    }

    /// `n` SIP calls placed as fast as the node takes them (callers `{first}`, `{first}+1`…):
    /// 25 a second, under `sessions-per-second` (30) of `switch.conf.xml`, which counts control
    /// legs too and refuses the excess (`Throttle Error!`, 503). Their session ids, in that order,
    /// once all are stored parked.
    pub async fn burst(&self, first: u64, n: u64) -> Vec<String> {
        let mut pace = tokio::time::interval(Duration::from_millis(40));
        let mut calls = Vec::new();
        for c in first..first + n {
            pace.tick().await;
            calls.push(self.dial(&c.to_string(), &format!("Caller {c}")));
        }
        let mut sessions = Vec::new();
        for call_id in &calls {
            sessions.push(self.parked_session(call_id).await);
        }
        sessions
    }

    /// A key pressed on the call: `uuid_recv_dtmf` hands the digit to the channel as if it came
    /// from the caller (it goes the same way as an RFC 2833 digit from then on, and fires the
    /// same core `DTMF` event, with another `DTMF-Source`).
    pub async fn press_key(&self, channel: &str) {
        let reply = self.node_api(&format!("uuid_recv_dtmf {channel} 5")).await;
        assert!(reply.starts_with("+OK"), "uuid_send_info: {reply}");
    }

    /// Starts a SIP call; its SIP Call-ID.
    /// A call like [`Live::call`] whose caller sends a tone of `freq` Hz.
    pub async fn call_tone(&self, caller: &str, freq: f64) -> String {
        let name = format!("Caller {caller}");
        let sip = Caller::dial_tone(self.settings.sip, &self.settings.did, caller, &name, freq);
        let call_id = sip.call_id.clone();
        self.callers.lock().unwrap().push(sip);
        self.parked_session(&call_id).await
    }

    fn dial(&self, caller: &str, name: &str) -> String {
        let sip = Caller::dial(self.settings.sip, &self.settings.did, caller, name);
        let call_id = sip.call_id.clone();
        self.callers.lock().unwrap().push(sip);
        call_id
    }

    /// The session of the SIP call `call_id`, once the node parked it and the controller stored
    /// it parked.
    async fn parked_session(&self, call_id: &str) -> String {
        let mut channel = String::new();
        self.eventually("the node parks the SIP call", || {
            let found = self.parked.lock().unwrap().get(call_id).cloned();
            if let Some(c) = found {
                channel = c;
            }
            std::future::ready(!channel.is_empty())
        })
        .await;
        self.made.lock().unwrap().channels.push(channel.clone());
        let id = SessionId::new(
            &switchyard::conference::NodePrefix::parse(PREFIX).unwrap(),
            &channel,
        );
        self.eventually("the call is stored as a parked session", || async {
            self.store()
                .session(&self.app_id(), &id)
                .await
                .unwrap()
                .is_some_and(|s| s.state == SessionState::Parked)
        })
        .await;
        id.to_string()
    }

    pub async fn channel_exists(&self, channel: &str) -> bool {
        self.node_api(&format!("uuid_exists {channel}"))
            .await
            .trim()
            == "true"
    }

    /// What a call hears for `millis`, as the node sends it (`uuid_record` of the channel's
    /// write direction only, `RECORD_WRITE_ONLY`): the WAV's bytes.
    pub async fn ear(&self, channel: &str, millis: u64) -> Vec<u8> {
        let name = format!("switchyard-ear-{}.wav", uuid::Uuid::new_v4());
        let on_node = format!("{}/{name}", self.settings.recordings_dir);
        let set = self
            .node_api(&format!("uuid_setvar {channel} RECORD_WRITE_ONLY true"))
            .await;
        assert!(set.starts_with("+OK"), "{set}");
        let start = self
            .node_api(&format!("uuid_record {channel} start {on_node}"))
            .await;
        assert!(start.starts_with("+OK"), "{start}");
        tokio::time::sleep(Duration::from_millis(millis)).await;
        let stop = self
            .node_api(&format!("uuid_record {channel} stop {on_node}"))
            .await;
        assert!(stop.starts_with("+OK"), "{stop}");
        let local = self.settings.local_recordings().join(&name);
        let mut bytes = Vec::new();
        self.eventually("the node closes the recording", || {
            bytes = std::fs::read(&local).unwrap_or_default();
            std::future::ready(bytes.len() > 44)
        })
        .await;
        let _ = std::fs::remove_file(&local);
        bytes
    }

    /// A member's flags (`can_hear`, `can_speak`, `hold`…) as the node lists it.
    pub async fn node_flags(&self, room: &str, channel: &str) -> Value {
        let text = self.node_api(&format!("conference {room} json_list")).await;
        let list: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        list[0]["members"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["uuid"] == channel)
            .map(|m| m["flags"].clone())
            .unwrap_or(Value::Null)
    }

    /// The room view's `waiting_for_moderator`.
    pub async fn waiting_for_moderator(&self, room: &str) -> Value {
        self.get(&format!("/api/v1/conferences/{room}")).await.body["waiting_for_moderator"].clone()
    }

    /// An operator moves `session`'s call into `room` as a moderator, on the node (not through
    /// the API); the node's reply is checked.
    pub async fn operator_joins_moderator(&self, room: &str, session: &str) {
        let line = format!(
            "uuid_transfer {} conference:{room}@{}+flags{{moderator}},park: inline",
            channel_of(session),
            self.settings.profile
        );
        let reply = self.node_api(&line).await;
        assert!(reply.starts_with("+OK"), "{line}: {reply}");
    }

    /// Whether the node has a conference named `room`.
    pub async fn conference_on_node(&self, room: &str) -> bool {
        !self
            .node_api(&format!("conference {room} json_list"))
            .await
            .starts_with("-ERR")
    }

    /// (channel, member id, muted) of the room's members on the node, control leg left out.
    pub async fn node_members(&self, room: &str) -> BTreeSet<(String, u32, bool)> {
        let control = self.stored_room(room).await.control.channel;
        let text = self.node_api(&format!("conference {room} json_list")).await;
        caller_members(&text, &control)
    }

    /// The same as the store holds them (joined members only).
    pub async fn store_members(&self, room: &str) -> BTreeSet<(String, u32, bool)> {
        self.stored_room(room)
            .await
            .members
            .values()
            .filter(|m| m.status == MemberStatus::Joined)
            .map(|m| (m.channel().to_owned(), m.member_id.unwrap_or(0), m.muted))
            .collect()
    }

    /// A second connection that sees conference events and the applications channels run.
    pub async fn watch(&self) -> (Client, EventStream) {
        let (client, events) = connect(&self.settings).await;
        let set = EventSet::new()
            .names([EventName::ChannelExecute, EventName::ChannelPark])
            .subclass("conference::maintenance")
            .unwrap();
        client.subscribe(EventFormat::Plain, set).await.unwrap();
        (client, events)
    }

    /// A URL the node can fetch the fixture WAV from: `SWITCHYARD_LIVE_PLAY_URL` when set (any
    /// http(s) URL the node reaches; the API plays nothing else), otherwise a small HTTP server
    /// of this test bound to `SWITCHYARD_LIVE_HTTP_BIND` (default `0.0.0.0:0`) and advertised as
    /// `SWITCHYARD_LIVE_HTTP_HOST` (a host, or host:port behind NAT; default the address this
    /// machine has on its Event Socket connection to the node, with the bound port).
    pub async fn tone(&self) -> Tone {
        if let Some(url) = &self.settings.play_url {
            notice(&format!("playing {url} (SWITCHYARD_LIVE_PLAY_URL)"));
            return Tone {
                url: url.clone(),
                fetches: None,
                _stop: None,
            };
        }
        let listener = tokio::net::TcpListener::bind(&self.settings.http_bind)
            .await
            .unwrap_or_else(|e| {
                panic!("SWITCHYARD_LIVE_HTTP_BIND={}: {e}", self.settings.http_bind)
            });
        let port = listener.local_addr().unwrap().port();
        let authority = advertised(self.settings.http_host.as_deref(), self.local_ip, port);
        let path = format!("/switchyard-live/{}/tone-440hz-2s.wav", self.run);
        let fetches = Arc::new(AtomicUsize::new(0));
        let counter = fetches.clone();
        let app = axum::Router::new().route(
            &path,
            axum::routing::get(move || {
                counter.fetch_add(1, Ordering::Relaxed);
                async { ([("content-type", "audio/wav")], TONE) }
            }),
        );
        let stop = CancellationToken::new();
        let until = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { until.cancelled().await })
                .await;
        });
        let url = format!("http://{authority}{path}");
        notice(&format!("serving the fixture WAV to the node at {url}"));
        Tone {
            url,
            fetches: Some(fetches),
            _stop: Some(stop.drop_guard()),
        }
    }

    // --- the end ---

    /// Deletes the run's rooms through the API, stops the controller, ends what is left of the
    /// run on the node, and checks that nothing of it remains.
    pub async fn finish(mut self) {
        let made = self.made.lock().unwrap().clone();
        for room in &made.rooms {
            let _ = self.delete(&format!("/api/v1/conferences/{room}")).await;
        }
        for room in &made.rooms {
            within(
                Duration::from_secs(10),
                "the node releases the room",
                || async { !self.conference_on_node(room).await },
            )
            .await;
        }
        self.ctl.stop().await;
        sweep(&self.node, &self.run, &made).await;
        for channel in &made.channels {
            within(
                Duration::from_secs(10),
                "the run's channels are gone",
                || async { !self.channel_exists(channel).await },
            )
            .await;
        }
        self.finished = true;
        if let (Some(reaper), Some(fs)) = (self.reaper.take(), self.fs.take()) {
            POOL.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((fs, reaper));
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // A failed test: clean the node from another thread with its own runtime (this one is
        // busy unwinding).
        let made = self.made.lock().map(|m| m.clone()).unwrap_or_default();
        let (settings, run) = (self.settings.clone(), self.run.clone());
        notice(&format!(
            "run {run} did not finish: hanging up its calls and {} room(s) on the node",
            made.rooms.len()
        ));
        let cleaned = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let connected = tokio::time::timeout(
                    Duration::from_secs(10),
                    Client::connect(
                        &settings.esl,
                        &Password::new(&settings.password).unwrap(),
                        ClientConfig::default(),
                    ),
                )
                .await;
                match connected {
                    Ok(Ok((client, _events))) => sweep(&client, &run, &made).await,
                    _ => notice(&format!("run {run}: cannot reach the node to clean up")),
                }
            });
        })
        .join();
        if cleaned.is_err() {
            notice("the clean-up failed");
        }
    }
}

/// Ends every call of `run` (by its variable), the rooms' members and the control legs.
async fn sweep(node: &Client, run: &str, made: &Made) {
    api(
        node,
        &format!("hupall NORMAL_CLEARING switchyard_live_test {run}"),
    )
    .await;
    for room in &made.rooms {
        api(node, &format!("conference {room} hup all")).await;
    }
    for channel in &made.channels {
        if api(node, &format!("uuid_exists {channel}")).await.trim() == "true" {
            api(node, &format!("uuid_kill {channel}")).await;
        }
    }
}

/// The fixture WAV as the node fetches it.
pub struct Tone {
    pub url: String,
    /// How often the node fetched it (`None`: an operator's URL).
    pub fetches: Option<Arc<AtomicUsize>>,
    _stop: Option<tokio_util::sync::DropGuard>,
}

impl Tone {
    pub fn fetched(&self) -> Option<usize> {
        self.fetches.as_ref().map(|f| f.load(Ordering::Relaxed))
    }
}

/// `host:port` for the tone URL: the operator's host (with the bound port unless it names one),
/// or the address this machine has towards the node.
fn advertised(host: Option<&str>, local: IpAddr, port: u16) -> String {
    match host {
        None => SocketAddr::new(local, port).to_string(),
        Some(h) => {
            if let Ok(ip) = h.parse::<IpAddr>() {
                SocketAddr::new(ip, port).to_string()
            } else if h.parse::<SocketAddr>().is_ok() || h.contains(':') {
                h.to_owned()
            } else {
                format!("{h}:{port}")
            }
        }
    }
}

async fn connect(settings: &Settings) -> (Client, EventStream) {
    Client::connect(
        &settings.esl,
        &Password::new(&settings.password).unwrap(),
        ClientConfig::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("cannot log in to {}: {e}", settings.esl))
}

/// SIP Call-ID → channel uuid, as the node's CHANNEL_PARK events tell them.
type Parked = Arc<Mutex<std::collections::HashMap<String, String>>>;

/// The operator's connection, the task that notes the SIP calls it sees parked into `parked`,
/// and the local address it uses (where the node reaches us).
async fn operator(settings: &Settings, parked: &Parked) -> (Client, AbortOnDrop, IpAddr) {
    let stream = tokio::net::TcpStream::connect(&settings.esl)
        .await
        .unwrap_or_else(|e| panic!("cannot reach SWITCHYARD_LIVE_ESL={}: {e}", settings.esl));
    let local = stream.local_addr().unwrap().ip();
    let (client, events) = Client::handshake(
        stream,
        &Password::new(&settings.password).unwrap(),
        ClientConfig::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("cannot log in to {}: {e}", settings.esl));
    client
        .subscribe(
            EventFormat::Plain,
            EventSet::new().names([EventName::ChannelPark]),
        )
        .await
        .expect("subscribe to CHANNEL_PARK");
    let (seen, mut events) = (parked.clone(), events);
    let task = tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            if let (Some(call_id), Some(uuid)) = (e.header("variable_sip_call_id"), e.unique_id()) {
                seen.lock()
                    .unwrap()
                    .insert(call_id.into_owned(), uuid.into_owned());
            }
        }
    });
    (client, task.abort_handle().into(), local)
}

/// One `api` line (split on blanks, as FreeSWITCH does); the reply's text, or the error's.
async fn api(node: &Client, line: &str) -> String {
    let mut words = line.split_whitespace();
    let mut cmd = ApiCommand::new(words.next().unwrap()).unwrap();
    for w in words {
        cmd = cmd.arg(w).unwrap();
    }
    match node.api(&cmd).await {
        Ok(reply) => reply.text().into_owned(),
        Err(e) => format!("-ERR {e}"),
    }
}

/// Waits until `check` holds, at most `limit`.
pub async fn within<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The length of a WAV's audio in milliseconds (its `data` chunk over its byte rate).
pub fn wav_millis(bytes: &[u8]) -> u64 {
    assert_eq!(&bytes[0..4], b"RIFF");
    assert_eq!(&bytes[8..12], b"WAVE");
    let mut at = 12;
    let mut byte_rate = 0u64;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        let body = at + 8;
        if id == b"fmt " {
            byte_rate = u32::from_le_bytes(bytes[body + 8..body + 12].try_into().unwrap()) as u64;
        } else if id == b"data" {
            assert!(byte_rate > 0, "fmt before data");
            let len = len.min(bytes.len() - body) as u64;
            return len * 1000 / byte_rate;
        }
        at = body + len + (len & 1);
    }
    panic!("no data chunk");
}

/// A background task of the harness, stopped with it.
struct AbortOnDrop(tokio::task::AbortHandle);

impl From<tokio::task::AbortHandle> for AbortOnDrop {
    fn from(handle: tokio::task::AbortHandle) -> Self {
        AbortOnDrop(handle)
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The 16-bit PCM samples and sample rate of a WAV (`fmt ` format 1).
pub fn wav_samples(bytes: &[u8]) -> (Vec<i16>, u32) {
    let mut at = 12;
    let mut rate = 0;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        let body = at + 8;
        if id == b"fmt " {
            assert_eq!(u16::from_le_bytes([bytes[body], bytes[body + 1]]), 1, "PCM");
            assert_eq!(u16::from_le_bytes([bytes[body + 14], bytes[body + 15]]), 16);
            rate = u32::from_le_bytes(bytes[body + 4..body + 8].try_into().unwrap());
        } else if id == b"data" {
            let end = (body + len).min(bytes.len());
            let samples = bytes[body..end]
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
            return (samples, rate);
        }
        at = body + len + (len & 1);
    }
    panic!("no data chunk");
}

/// The share of a WAV's 100 ms windows that are audible (RMS above -40 dBFS).
pub fn sound_share(bytes: &[u8]) -> f64 {
    let (samples, rate) = wav_samples(bytes);
    let windows: Vec<&[i16]> = samples.chunks_exact((rate / 10) as usize).collect();
    if windows.is_empty() {
        return 0.0;
    }
    let loud = windows.iter().filter(|w| {
        let energy: f64 = w.iter().map(|&x| (x as f64 / 32768.0).powi(2)).sum();
        (energy / w.len() as f64).sqrt() > 0.01
    });
    loud.count() as f64 / windows.len() as f64
}

/// The share of a WAV's 100 ms windows that carry a tone of `freq` Hz: audible (RMS above
/// -40 dBFS) with most of the window's energy at that frequency (Goertzel).
pub fn tone_share(bytes: &[u8], freq: f64) -> f64 {
    let (samples, rate) = wav_samples(bytes);
    windows_with_tone(&samples, rate, freq)
}

/// [`tone_share`] of samples already read (a part of a recording).
pub fn windows_with_tone(samples: &[i16], rate: u32, freq: f64) -> f64 {
    let window = (rate / 10) as usize;
    let windows: Vec<&[i16]> = samples.chunks_exact(window).collect();
    if windows.is_empty() {
        return 0.0;
    }
    let toned = windows
        .iter()
        .filter(|w| has_tone(w, freq, rate as usize))
        .count();
    toned as f64 / windows.len() as f64
}

/// What a caller's stereo recording (`RECORD_STEREO`: what it hears on the right) says of the
/// time it heard no 440 Hz tone: the longest stretch (ms, in 20 ms windows, the first and last
/// 200 ms left out), and how much of `wall` the file holds (a recorder that dropped time would
/// hide a gap).
pub fn longest_unheard(bytes: Vec<u8>, wall: std::time::Duration) -> (u64, f64) {
    let mut reader = hound::WavReader::new(std::io::Cursor::new(bytes)).unwrap();
    let spec = reader.spec();
    assert_eq!(spec.channels, 2, "a stereo recording");
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let heard: Vec<i16> = samples.chunks_exact(2).map(|f| f[1]).collect();
    let rate = spec.sample_rate as usize;
    let toned: Vec<bool> = heard
        .chunks_exact(rate / 50)
        .map(|w| has_tone(w, 440.0, rate))
        .collect();
    let inner = &toned[10.min(toned.len())..toned.len().saturating_sub(10)];
    let (mut longest, mut run) = (0, 0);
    for &toned in inner {
        run = if toned { 0 } else { run + 1 };
        longest = longest.max(run);
    }
    let held = heard.len() as f64 / rate as f64 / wall.as_secs_f64();
    ((longest * 20) as u64, held)
}

/// Whether `window` (samples at `rate` Hz) is mostly a tone of `freq` Hz, not silence.
pub fn has_tone(window: &[i16], freq: f64, rate: usize) -> bool {
    let (power, energy) = crate::common::ws_server::goertzel(window, rate as u32, freq);
    let n = window.len().max(1) as f64;
    // A pure tone's Goertzel power is energy * n / 2.
    let tone = 2.0 * power / n;
    let rms = (energy / n).sqrt() / 32768.0;
    rms > 0.01 && tone > 0.5 * energy
}

/// (channel, member id, muted) of the callers in a `conference <room> json_list` answer, the
/// control leg `control` left out; none when the answer is not a list (`-ERR` for no such
/// room). Only `caller` entries: a recording is listed too, as a `recording_node` without a
/// uuid.
pub fn caller_members(json_list: &str, control: &str) -> BTreeSet<(String, u32, bool)> {
    let Ok(rooms) = serde_json::from_str::<Value>(json_list) else {
        return BTreeSet::new();
    };
    rooms[0]["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["type"] == "caller" && m["uuid"] != control)
        .map(|m| {
            (
                m["uuid"].as_str().expect("a caller's uuid").to_owned(),
                m["id"].as_u64().expect("a caller's member id") as u32,
                !m["flags"]["can_speak"]
                    .as_bool()
                    .expect("a caller's can_speak"),
            )
        })
        .collect()
}
