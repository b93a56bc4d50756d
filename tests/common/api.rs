//! A lab for API tests: simulated node(s), a store, the router; requests go through
//! `Router::oneshot`, exactly as HTTP would deliver them.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use switchyard::api::ApiOptions;
use switchyard::conference::{AppId, DomainEvent, EventKind, RoomId, RoomStatus};
use switchyard::rooms::Cooldowns;
use switchyard::server::lab::{Lab, LabOptions};
use switchyard::store::Store;

pub const A: (&str, &str) = ("app-a", "key-a");
pub const B: (&str, &str) = ("app-b", "key-b");

/// Short cooldowns, so flows do not wait for the contract's 2 s.
pub fn quick_cooldowns() -> Cooldowns {
    Cooldowns {
        conf_play: Duration::from_millis(300),
        conference_control: Duration::from_millis(100),
        conference: Duration::from_millis(300),
        conference_mute: Duration::from_millis(300),
    }
}

pub fn options() -> LabOptions {
    LabOptions {
        apps: vec![
            (AppId::parse(A.0).unwrap(), A.1.into()),
            (AppId::parse(B.0).unwrap(), B.1.into()),
        ],
        cooldowns: quick_cooldowns(),
        api: ApiOptions {
            global_rate: 0.0,
            // The simulated node fetches nothing: names that do not resolve on a machine
            // without DNS (`cdn.example.com`) may be played, as in the lab.
            media_urls: switchyard::api::media_url::MediaUrlPolicy {
                unresolved_ok: true,
                ..Default::default()
            },
            ..ApiOptions::default()
        },
        join_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(2),
        play_duration: Duration::from_millis(300),
        ..LabOptions::default()
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.body)
    }
}

pub struct TestLab<S> {
    pub lab: Lab<S>,
    router: axum::Router,
}

impl<S: Store> TestLab<S> {
    pub async fn start(store: S, options: LabOptions) -> TestLab<S> {
        let lab = Lab::start(Arc::new(store), options).await.unwrap();
        assert!(lab.wait_ready(Duration::from_secs(5)).await, "nodes up");
        let router = lab.router();
        TestLab { lab, router }
    }

    pub fn store(&self) -> &S {
        self.lab.state.rooms().store()
    }

    /// The simulated node's json_list entries of a room's members.
    pub fn node_members(&self, room: &str) -> Vec<Value> {
        let list: Value =
            serde_json::from_str(&self.sim().api(&format!("conference {room} json_list")))
                .unwrap_or(Value::Null);
        list[0]["members"].as_array().cloned().unwrap_or_default()
    }

    /// The simulated node's json_list entry of a session's member (`Null` when not listed).
    pub fn node_member(&self, room: &str, session: &str) -> Value {
        let channel = session.split_once('-').map_or("", |(_, c)| c);
        self.node_members(room)
            .into_iter()
            .find(|m| m["uuid"] == channel)
            .unwrap_or(Value::Null)
    }

    pub fn sim(&self) -> &switchyard::sim::Simulator {
        &self.lab.sims[0].1
    }

    /// One request; `body` `None` sends no body, a `Value::String` is sent raw.
    pub async fn req(
        &self,
        method: &str,
        path: &str,
        app: Option<(&str, &str)>,
        body: Option<Value>,
    ) -> Reply {
        send(&self.router, method, path, app, body).await
    }

    /// One request with these body bytes, declared as `content_type`.
    pub async fn req_typed(
        &self,
        method: &str,
        path: &str,
        app: (&str, &str),
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        send_typed(&self.router, method, path, Some(app), content_type, body).await
    }

    /// A GET whose answer is not JSON (a file): status, headers, bytes.
    pub async fn raw_get(
        &self,
        path: &str,
        app: (&str, &str),
    ) -> (StatusCode, HeaderMap, axum::body::Bytes) {
        raw_get(&self.router, path, app).await
    }

    pub async fn get(&self, path: &str, app: (&str, &str)) -> Reply {
        self.req("GET", path, Some(app), None).await
    }

    pub async fn delete(&self, path: &str, app: (&str, &str)) -> Reply {
        self.req("DELETE", path, Some(app), None).await
    }

    pub async fn post(&self, path: &str, app: (&str, &str), body: Value) -> Reply {
        self.req("POST", path, Some(app), Some(body)).await
    }

    /// A room of `app`, once its control leg is in (playback and joins need that).
    pub async fn room(&self, app: (&str, &str), name: &str) -> String {
        self.room_with(app, json!({ "name": name })).await
    }

    /// A room created with this body, once it is progressing.
    pub async fn room_with(&self, app: (&str, &str), body: Value) -> String {
        let r = self.post("/api/v1/conferences", app, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let id = r.body["room_id"].as_str().unwrap().to_owned();
        let app_id = AppId::parse(app.0).unwrap();
        let room = RoomId::parse(&id).unwrap();
        eventually("the room is progressing", || async {
            self.store()
                .room(&app_id, &room)
                .await
                .unwrap()
                .is_some_and(|r| r.status == RoomStatus::Progressing)
        })
        .await;
        id
    }

    /// An inbound call owned by `app`, parked.
    pub async fn call(&self, app: (&str, &str), caller: &str) -> String {
        let r = self
            .post(
                "/lab/v1/calls",
                app,
                json!({ "did": "15551230000", "caller_id": caller }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        r.body["uuid"].as_str().unwrap().to_owned()
    }

    pub async fn members(&self, app: (&str, &str), room: &str) -> Vec<Value> {
        let r = self
            .get(&format!("/api/v1/conferences/{room}/members"), app)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        r.body["members"].as_array().unwrap().clone()
    }

    /// A session joined (add-member arrived).
    pub async fn joined(&self, app: (&str, &str), room: &str, session: &str) {
        self.joined_with(app, room, session, json!({})).await
    }

    /// Joined with these extra join fields (`moderator`, `end_on_exit`).
    pub async fn joined_with(&self, app: (&str, &str), room: &str, session: &str, extra: Value) {
        let mut body = json!({ "room_id": room });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let path = format!("/api/v1/sessions/{session}/commands/conference/join");
        let r = self.post(&path, app, body).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
        eventually("add-member confirms the join", || async {
            self.members(app, room)
                .await
                .iter()
                .any(|m| m["uuid"] == session)
        })
        .await;
    }

    pub async fn join(&self, app: (&str, &str), session: &str, room: &str) -> Reply {
        self.post(
            &format!("/api/v1/sessions/{session}/commands/conference/join"),
            app,
            json!({ "room_id": room }),
        )
        .await
    }

    pub async fn command(&self, app: (&str, &str), session: &str, verb: &str) -> Reply {
        self.post(
            &format!("/api/v1/sessions/{session}/commands/{verb}"),
            app,
            json!({}),
        )
        .await
    }

    /// A session command, sent again after the cooldown its 429 names, until it is answered
    /// otherwise.
    pub async fn patiently(&self, app: (&str, &str), session: &str, verb: &str) -> Reply {
        let path = format!("/api/v1/sessions/{session}/commands/{verb}");
        self.patiently_post(app, &path, json!({})).await
    }

    /// A POST of `body`, sent again after the cooldown its 429 names, until it is answered
    /// otherwise.
    pub async fn patiently_post(&self, app: (&str, &str), path: &str, body: Value) -> Reply {
        for _ in 0..10 {
            let r = self.post(path, app, body.clone()).await;
            if r.status != StatusCode::TOO_MANY_REQUESTS {
                return r;
            }
            let wait = r.body["detail"]["retry_after_ms"].as_u64().unwrap();
            tokio::time::sleep(Duration::from_millis(wait + 5)).await;
        }
        panic!("{path} is still refused by its cooldown");
    }

    pub async fn events(&self, app: (&str, &str)) -> Vec<DomainEvent> {
        self.store()
            .outbox(&AppId::parse(app.0).unwrap(), None, 10_000)
            .await
            .unwrap()
            .into_iter()
            .map(|row| row.event)
            .collect()
    }

    pub async fn count(&self, app: (&str, &str), kind: EventKind) -> usize {
        self.events(app)
            .await
            .iter()
            .filter(|e| e.kind == kind)
            .count()
    }
}

/// One request through `router`; `body` `None` sends no body, a `Value::String` is sent raw.
pub async fn send(
    router: &axum::Router,
    method: &str,
    path: &str,
    app: Option<(&str, &str)>,
    body: Option<Value>,
) -> Reply {
    let body = match body {
        None => Vec::new(),
        Some(Value::String(raw)) => raw.into_bytes(),
        Some(v) => v.to_string().into_bytes(),
    };
    send_typed(router, method, path, app, Some("application/json"), body).await
}

/// One request through `router` with these body bytes, declared as `content_type`.
pub async fn send_typed(
    router: &axum::Router,
    method: &str,
    path: &str,
    app: Option<(&str, &str)>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Reply {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some((id, key)) = app {
        builder = builder.header("x-app-id", id).header("x-api-key", key);
    }
    if let Some(t) = content_type {
        builder = builder.header("content-type", t);
    }
    let response = router
        .clone()
        .oneshot(builder.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
    };
    Reply {
        status,
        headers,
        body,
    }
}

/// A GET through `router` whose answer is not JSON (a file): status, headers, bytes.
pub async fn raw_get(
    router: &axum::Router,
    path: &str,
    app: (&str, &str),
) -> (StatusCode, HeaderMap, axum::body::Bytes) {
    raw_get_with(router, path, app, &[]).await
}

/// [`raw_get`] with more request headers (a `Range`).
pub async fn raw_get_with(
    router: &axum::Router,
    path: &str,
    app: (&str, &str),
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, axum::body::Bytes) {
    let mut request = Request::builder()
        .uri(path)
        .header("x-app-id", app.0)
        .header("x-api-key", app.1);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Body::empty()).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, bytes)
}

/// Waits (up to 10 s) until `check` holds.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The contract's error body.
pub fn assert_error(r: &Reply, status: StatusCode) {
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.body["success"], false, "{r:?}");
    assert!(
        r.body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{r:?}"
    );
    assert!(r.body.get("detail").is_some(), "{r:?}");
}
