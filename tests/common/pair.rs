//! Two media nodes under one controller (rooms that span media nodes): two real FreeSWITCH
//! nodes started by the test from `freeswitch-conf/` on free ports (each with its node-to-node
//! profile), or two simulators linked the same way (`SimConfig::node_sip`) — the same scenarios
//! run on both. A real Redis, and a controller started as `switchyard serve` starts it with both
//! nodes configured, their `node_sip` addresses included. Calls are SIPp callers dialing either
//! real node's DID, or the simulator's SIP callers (`Simulator::inbound_call`); a call's session
//! is found in the store by its caller number. Included with `#[path]` next to `common/live.rs`
//! (it uses its controller and helpers).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use switchyard::api::hash_key;
use switchyard::conference::{AppId, DomainEvent, EventKind, Room, RoomId, SessionState};
use switchyard::server::config::Config;
use switchyard::sim::{SimConfig, Simulator};
use switchyard::store::Store;
use switchyard::store::redis::RedisStore;

use crate::common::api::{Reply, raw_get, send};
use crate::common::freeswitch::FreeSwitch;
use crate::common::redis_server::RedisServer;
use crate::common::sipp::Caller;
use crate::live::{Controller, within};

/// The nodes' prefixes, in the order of [`Pair::nodes`] (a pair uses the first two).
pub const PREFIXES: [&str; 3] = ["xnoda", "xnodb", "xnodc"];
pub const DID: &str = "15551230000";
/// The operator's key (`X-Admin-Key`).
pub const OPERATOR: &str = "pair-operator-key";

/// One media node of a pair.
pub enum Node {
    Real(FreeSwitch),
    /// A simulator (`None` once killed) and the addresses it keeps across restarts.
    Sim {
        sim: Option<Simulator>,
        esl: SocketAddr,
        node_sip: SocketAddr,
        recordings: PathBuf,
    },
}

impl Node {
    async fn sim(esl: SocketAddr, node_sip: SocketAddr) -> Simulator {
        for _ in 0..100 {
            let started = Simulator::start(SimConfig {
                listen: esl,
                node_sip: Some(node_sip),
                heartbeat: Some(Duration::from_secs(5)),
                ..SimConfig::default()
            })
            .await;
            match started {
                Ok(sim) => return sim,
                // A killed simulator's listener closes as its task ends.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        panic!("the simulator cannot bind {esl} / {node_sip} again");
    }

    async fn start_sim() -> Node {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let sim = Node::sim(any, any).await;
        let recordings = std::env::temp_dir().join(format!(
            "switchyard-pair-rec-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&recordings).unwrap();
        Node::Sim {
            esl: sim.addr(),
            node_sip: sim.node_sip().unwrap(),
            sim: Some(sim),
            recordings,
        }
    }

    pub fn is_real(&self) -> bool {
        matches!(self, Node::Real(_))
    }

    pub fn esl(&self) -> String {
        match self {
            Node::Real(fs) => fs.esl(),
            Node::Sim { esl, .. } => esl.to_string(),
        }
    }

    fn password(&self) -> String {
        match self {
            Node::Real(fs) => fs.password.clone(),
            Node::Sim { .. } => "ClueCon".into(),
        }
    }

    pub fn node_sip(&self) -> SocketAddr {
        match self {
            Node::Real(fs) => fs.node_sip(),
            Node::Sim { node_sip, .. } => *node_sip,
        }
    }

    pub fn recordings(&self) -> PathBuf {
        match self {
            Node::Real(fs) => fs.recordings(),
            Node::Sim { recordings, .. } => recordings.clone(),
        }
    }

    /// One `api` command; `None` when the node cannot be reached.
    pub fn api(&self, command: &str) -> Option<String> {
        match self {
            Node::Real(fs) => fs.api(command),
            Node::Sim { sim, .. } => sim.as_ref().map(|s| s.api(command)),
        }
    }

    /// The node dies: SIGKILL of FreeSWITCH, [`Simulator::kill`] of a simulator.
    pub fn kill(&mut self) {
        match self {
            Node::Real(fs) => fs.kill(),
            Node::Sim { sim, .. } => {
                if let Some(sim) = sim.take() {
                    sim.kill();
                }
            }
        }
    }

    /// Started again on the same addresses (a new Core-UUID, no calls).
    pub async fn restart(&mut self) {
        match self {
            Node::Real(fs) => tokio::task::block_in_place(|| fs.restart()),
            Node::Sim {
                sim, esl, node_sip, ..
            } => {
                if let Some(old) = sim.take() {
                    old.kill();
                }
                *sim = Some(Node::sim(*esl, *node_sip).await);
            }
        }
    }
}

pub struct Pair {
    pub nodes: Vec<Node>,
    pub ctl: Controller,
    config: Config,
    app_id: String,
    key: String,
    callers: Mutex<Vec<Caller>>,
    _redis: RedisServer,
}

impl Pair {
    /// Two real FreeSWITCH nodes.
    pub async fn start() -> Pair {
        crate::common::sipp::require();
        let (a, b) = tokio::join!(
            tokio::task::spawn_blocking(FreeSwitch::start),
            tokio::task::spawn_blocking(FreeSwitch::start)
        );
        Pair::start_on(vec![Node::Real(a.unwrap()), Node::Real(b.unwrap())], true).await
    }

    /// `n` real FreeSWITCH nodes (up to three), linked as a pair's.
    pub async fn start_real(n: usize) -> Pair {
        crate::common::sipp::require();
        let started = (0..n).map(|_| tokio::task::spawn_blocking(FreeSwitch::start));
        let nodes = futures_util::future::join_all(started).await;
        Pair::start_on(
            nodes.into_iter().map(|n| Node::Real(n.unwrap())).collect(),
            true,
        )
        .await
    }

    /// `n` real FreeSWITCH nodes, their recordings copied to Garage's bucket (`[recordings]
    /// store = "s3"`, prefix `pair`).
    pub async fn start_real_s3(n: usize, g: &crate::common::garage::Garage) -> Pair {
        crate::common::sipp::require();
        let started = (0..n).map(|_| tokio::task::spawn_blocking(FreeSwitch::start));
        let nodes = futures_util::future::join_all(started).await;
        let recordings = g.recordings_toml("pair");
        let vars = g.env();
        let env = |name: &str| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        };
        Pair::start_with(
            nodes.into_iter().map(|n| Node::Real(n.unwrap())).collect(),
            true,
            &recordings,
            &env,
        )
        .await
    }

    /// `n` simulators (up to three), linked as a pair's.
    pub async fn start_sims_n(n: usize) -> Pair {
        let mut nodes = Vec::new();
        for _ in 0..n {
            nodes.push(Node::start_sim().await);
        }
        Pair::start_on(nodes, true).await
    }

    /// Two simulators linked by their `nodes` profiles.
    pub async fn start_sims() -> Pair {
        Pair::start_on(vec![Node::start_sim().await, Node::start_sim().await], true).await
    }

    /// Two simulators whose configuration leaves out `node_sip`: the controller cannot carry a
    /// call from one to the other.
    pub async fn start_sims_unlinked() -> Pair {
        Pair::start_on(
            vec![Node::start_sim().await, Node::start_sim().await],
            false,
        )
        .await
    }

    async fn start_on(nodes: Vec<Node>, linked: bool) -> Pair {
        Pair::start_with(nodes, linked, "", &|_| None).await
    }

    /// As [`Pair::start_on`], with `extra` (TOML tables) at the end of the configuration and
    /// `env` as its environment.
    async fn start_with(
        nodes: Vec<Node>,
        linked: bool,
        extra: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Pair {
        let redis = RedisServer::start();
        let (app_id, key) = (
            format!("x-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            uuid::Uuid::new_v4().to_string(),
        );
        let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
        let mut text = format!(
            "redis_url = {}\nadmin_key_sha256 = {}\n\
             [limits]\nglobal_rps = 0\nconf_play_ms = 300\nconference_control_ms = 100\n\
             conference_ms = 300\nconference_mute_ms = 300\ncommand_timeout_ms = 5000\n\
             join_timeout_ms = 10000\n\
             [playback]\nallow_hosts = [\"127.0.0.1\"]\n\
             [streams]\nallow_private = true\nrequire_wss = false\n",
            q(&redis.url()),
            q(&hash_key(OPERATOR))
        );
        for (node, prefix) in nodes.iter().zip(PREFIXES) {
            text.push_str(&format!(
                "[[nodes]]\nname = {}\nprefix = {}\nesl = {}\npassword = {}\nprofile = \"switchyard\"\n\
                 recordings_dir = {}\n",
                q(prefix),
                q(prefix),
                q(&node.esl()),
                q(&node.password()),
                q(&node.recordings().to_string_lossy()),
            ));
            if linked {
                text.push_str(&format!("node_sip = {}\n", q(&node.node_sip().to_string())));
            }
        }
        text.push_str(&format!(
            "[[apps]]\nid = {}\nkey_sha256 = {}\ndids = [{}]\n",
            q(&app_id),
            q(&hash_key(&key)),
            q(DID)
        ));
        text.push_str(extra);
        let config = Config::parse(&text, env).expect("the configuration is valid");
        let ctl = Controller::start(&config).await;
        let pair = Pair {
            nodes,
            ctl,
            config,
            app_id,
            key,
            callers: Mutex::new(Vec::new()),
            _redis: redis,
        };
        // Each node's node-to-node profile runs (sofia starts profiles after the Event Socket).
        for i in (0..pair.nodes.len()).filter(|i| pair.nodes[*i].is_real()) {
            pair.eventually("the nodes profile runs", || async {
                pair.node_api(i, "sofia status")
                    .await
                    .lines()
                    .any(|l| l.contains("nodes") && l.contains("RUNNING"))
            })
            .await;
        }
        pair
    }

    /// A new controller on the same Redis and configuration (stop the old one first).
    pub async fn start_controller(&mut self) {
        self.ctl = Controller::start(&self.config).await;
    }

    pub fn app(&self) -> (&str, &str) {
        (&self.app_id, &self.key)
    }

    pub fn app_id(&self) -> AppId {
        AppId::parse(&self.app_id).unwrap()
    }

    pub fn store(&self) -> &RedisStore {
        self.ctl.state.rooms().store()
    }

    pub async fn req(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        send(&self.ctl.router, method, path, Some(self.app()), body).await
    }

    /// A request with the operator's key.
    pub async fn operator(&self, method: &str, path: &str, body: Value) -> Reply {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("x-admin-key", OPERATOR)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_string()))
            .unwrap();
        let response = self.ctl.router.clone().oneshot(request).await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.req("GET", path, None).await
    }

    pub async fn raw_get(
        &self,
        path: &str,
    ) -> (StatusCode, axum::http::HeaderMap, axum::body::Bytes) {
        raw_get(&self.ctl.router, path, self.app()).await
    }

    /// A request repeated while a cooldown refuses it, after the wait the answer names.
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

    /// `POST /api/v1/sessions/{session}/commands/{verb}`, waiting out cooldowns.
    pub async fn command(&self, session: &str, verb: &str, body: Value) -> Reply {
        let path = format!("/api/v1/sessions/{session}/commands/{verb}");
        self.patiently("POST", &path, body).await
    }

    /// A new room, once progressing; its id and the index of the node it was placed on.
    pub async fn room(&self, name: &str) -> (String, usize) {
        let r = self
            .req("POST", "/api/v1/conferences", Some(json!({ "name": name })))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let id = r.body["room_id"].as_str().unwrap().to_owned();
        self.eventually("the room is progressing", || async {
            self.stored_room(&id).await.status == switchyard::conference::RoomStatus::Progressing
        })
        .await;
        let node = PREFIXES
            .iter()
            .position(|p| id.starts_with(p))
            .expect("a room of one of the two nodes");
        (id, node)
    }

    /// A SIP call from `number` to node `node`'s DID, parked there; its session id once stored.
    pub async fn call(&self, node: usize, number: &str) -> String {
        self.call_with(node, number, false).await
    }

    /// A call whose caller sends no RTP at all (on real nodes; simulated callers send none).
    pub async fn call_silent(&self, node: usize, number: &str) -> String {
        self.call_with(node, number, true).await
    }

    async fn call_with(&self, node: usize, number: &str, silent: bool) -> String {
        let name = format!("Caller {number}");
        match &self.nodes[node] {
            Node::Real(fs) => {
                let sip = match silent {
                    true => Caller::dial_silent(fs.sip(), DID, number, &name),
                    false => Caller::dial(fs.sip(), DID, number, &name),
                };
                self.callers.lock().unwrap().push(sip);
            }
            Node::Sim { sim, .. } => {
                let placed = sim
                    .as_ref()
                    .and_then(|s| s.inbound_call(DID, number, &name));
                assert!(placed.is_some(), "the simulator places the call");
            }
        }
        self.eventually("the call is stored as a parked session", || async {
            let page = self
                .store()
                .sessions_of_app(&self.app_id(), None, 1000)
                .await;
            page.unwrap()
                .items
                .into_iter()
                .find(|s| {
                    s.caller_id == number
                        && s.state == SessionState::Parked
                        && s.id.as_str().starts_with(PREFIXES[node])
                })
                .map(|s| s.id.to_string())
        })
        .await
        .unwrap_or_default()
    }

    /// One `api` command on node `node` (a fresh connection); its reply, or `-ERR …` when the
    /// node cannot be reached.
    pub async fn node_api(&self, node: usize, command: &str) -> String {
        let node = &self.nodes[node];
        let reply = match node.is_real() {
            true => tokio::task::block_in_place(|| node.api(command)),
            false => node.api(command),
        };
        reply.unwrap_or_else(|| "-ERR the node cannot be reached".into())
    }

    pub async fn channel_exists(&self, node: usize, channel: &str) -> bool {
        self.node_api(node, &format!("uuid_exists {channel}"))
            .await
            .trim()
            == "true"
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

    pub async fn member(&self, room: &str, session: &str) -> Option<Value> {
        self.members(room)
            .await
            .into_iter()
            .find(|m| m["uuid"] == session)
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

    /// The `conference.member.left` reasons told for `session` in `room`, in order.
    pub async fn left_reasons(&self, room: &str, session: &str) -> Vec<String> {
        self.events(room)
            .await
            .iter()
            .filter(|e| e.kind == EventKind::MemberLeft && e.data["uuid"] == session)
            .map(|e| e.data["reason"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Joins `session` into `room` and waits for the node's confirmation (the member listed).
    pub async fn joined(&self, room: &str, session: &str) {
        let r = self
            .command(session, "conference/join", json!({ "room_id": room }))
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
        self.eventually("add-member confirms the join", || async {
            self.member(room, session).await.is_some()
        })
        .await;
    }

    /// Waits (up to 20 s) until `check` holds.
    pub async fn eventually<F, Fut, T>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = T>,
        T: Truthy,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let v = check().await;
            if v.holds() {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after 20 s waiting for: {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits at most `limit` until `check` holds.
    pub async fn within<F, Fut>(&self, limit: Duration, what: &str, check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        within(limit, what, check).await;
    }
}

/// What [`Pair::eventually`] waits for: `true`, or something found.
pub trait Truthy {
    fn holds(&self) -> bool;
}

impl Truthy for bool {
    fn holds(&self) -> bool {
        *self
    }
}

impl<T> Truthy for Option<T> {
    fn holds(&self) -> bool {
        self.is_some()
    }
}
