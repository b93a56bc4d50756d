//! What the webhook tests share: a real HTTP receiver on a local port that records every request
//! and answers as a script says, rooms whose changes fill the outbox, and a test dispatcher
//! configuration with a schedule in milliseconds.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use switchyard::conference::{AppId, DomainEvent, EventKind, NodePrefix, Room, RoomId, RoomType};
use switchyard::store::{Created, Saved, Store};
use switchyard::webhook::DispatcherConfig;
use switchyard::webhook::deliver::RetrySchedule;
use switchyard::webhook::sign::Signer;

/// One request the receiver got, and what it answered.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub json: Value,
    pub status: u16,
    pub at: Instant,
}

impl Received {
    pub fn id(&self) -> &str {
        self.headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    pub fn room(&self) -> &str {
        self.json["room_id"].as_str().unwrap_or("")
    }
    pub fn seq(&self) -> u64 {
        self.json["seq"].as_u64().unwrap_or(0)
    }
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Decides the answer to a request from the body and the earlier requests with the same id.
pub type Script = dyn Fn(&Value, usize) -> (u16, Option<&'static str>) + Send + Sync;

#[derive(Clone)]
struct ReceiverState {
    log: Arc<Mutex<Vec<Received>>>,
    script: Arc<Script>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Received>>>,
    stop: CancellationToken,
}

impl Receiver {
    /// Starts on `addr` (port 0 for any) with an answering script.
    pub async fn start(
        addr: SocketAddr,
        script: impl Fn(&Value, usize) -> (u16, Option<&'static str>) + Send + Sync + 'static,
    ) -> Receiver {
        let log = Arc::new(Mutex::new(Vec::new()));
        let state = ReceiverState {
            log: log.clone(),
            script: Arc::new(script),
        };
        let router = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let until = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { until.cancelled().await })
                .await
        });
        Receiver { addr, log, stop }
    }

    /// Answers 200 to everything.
    pub async fn ok() -> Receiver {
        Receiver::start(any_port(), |_, _| (200, None)).await
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn requests(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    /// The requests answered 2xx.
    pub fn delivered(&self) -> Vec<Received> {
        self.requests().into_iter().filter(|r| r.ok()).collect()
    }

    /// Waits until `n` requests were answered 2xx.
    pub async fn wait_delivered(&self, n: usize, within: Duration) -> Vec<Received> {
        let log = self.log.clone();
        wait_for(within, || {
            log.lock().unwrap().iter().filter(|r| r.ok()).count() >= n
        })
        .await;
        self.delivered()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn hook(State(state): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> Response {
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut log = state.log.lock().unwrap();
    let earlier = log.iter().filter(|r| r.id() == id).count();
    let (status, retry_after) = (state.script)(&json, earlier);
    log.push(Received {
        headers,
        body,
        json,
        status,
        at: Instant::now(),
    });
    let code = StatusCode::from_u16(status).unwrap();
    match retry_after {
        Some(v) => (code, [("retry-after", v)]).into_response(),
        None => code.into_response(),
    }
}

/// The rooms' names by id, as the receiver learns them from each room's `conference.created`
/// (which comes first; the room's other events do not carry its name).
#[derive(Default)]
pub struct RoomNames(std::sync::Mutex<std::collections::HashMap<String, String>>);

impl RoomNames {
    /// The name of the room of this webhook ("" if unknown).
    pub fn of(&self, json: &Value) -> String {
        let room = json["room_id"].as_str().unwrap_or_default().to_owned();
        let mut names = self.0.lock().unwrap();
        if let Some(name) = json["data"]["name"].as_str() {
            names.insert(room.clone(), name.to_owned());
        }
        names.get(&room).cloned().unwrap_or_default()
    }
}

pub fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A local address nothing listens on (yet).
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

pub async fn wait_for(within: Duration, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "condition not met in {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn app() -> AppId {
    AppId::parse("hook-app").unwrap()
}

pub fn secret() -> String {
    // 32 bytes: "switchyard webhook test secret!!"
    "whsec_c3dpdGNoeWFyZCB3ZWJob29rIHRlc3Qgc2VjcmV0ISE=".to_owned()
}

/// A dispatcher for tests: private addresses allowed, retries after 30, 60, 90… ms.
pub fn config(url: &str, retries: usize) -> DispatcherConfig {
    let mut c = DispatcherConfig::new(app(), url, Signer::parse(&secret()).unwrap());
    c.allow_private = true;
    c.retry = RetrySchedule {
        delays: (1..=retries as u64)
            .map(|i| Duration::from_millis(30 * i.min(3)))
            .collect(),
        jitter: 0.1,
    };
    c.timeout = Duration::from_secs(2);
    c.waits.poll = Duration::from_millis(20);
    // A killed dispatcher's lease runs out quickly for the next one.
    c.lease_ttl = Duration::from_millis(300);
    c
}

/// A room whose changes put events in the outbox.
pub struct TestRoom {
    pub room: Room,
}

impl TestRoom {
    /// Creates the room with its `conference.created` event.
    pub async fn create<S: Store>(store: &S, name: &str) -> TestRoom {
        let node = NodePrefix::parse("hook1").unwrap();
        let room = Room::new(
            RoomId::new(&node, store.new_room_uuid(name)),
            app(),
            name.into(),
            RoomType::Conference,
            uuid::Uuid::new_v4().to_string(),
            1_778_070_896_000_000,
        );
        let event = event_of(&room, EventKind::Created, json!({"name": name}));
        assert_eq!(
            store.create_room(&room, &[event]).await.unwrap(),
            Created::Created
        );
        TestRoom { room }
    }

    /// One change of the room with one event.
    pub async fn emit<S: Store>(&mut self, store: &S, kind: EventKind, data: Value) {
        let old = self.room.clone();
        self.room.seq += 1;
        self.room.updated_at += 1_000_000;
        let event = event_of(&self.room, kind, data);
        assert_eq!(
            store.save_room(&old, &self.room, &[event]).await.unwrap(),
            Saved::Saved
        );
    }

    pub fn id(&self) -> &str {
        self.room.id.as_str()
    }
}

fn event_of(room: &Room, kind: EventKind, data: Value) -> DomainEvent {
    DomainEvent {
        kind,
        app: room.app.clone(),
        room: room.id.clone(),
        seq: room.seq,
        at: room.updated_at,
        data,
        redelivers: None,
    }
}

/// The seqs a room's 2xx-answered messages arrived with, in arrival order.
pub fn seqs_of(delivered: &[Received], room: &str) -> Vec<u64> {
    delivered
        .iter()
        .filter(|r| r.room() == room)
        .map(|r| r.seq())
        .collect()
}
