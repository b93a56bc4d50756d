//! Real answers against the document: a flow over every operation of the lab (simulated node +
//! memory store) where each answer's status must be one its operation documents, its content
//! type the documented one, and its JSON body valid for the documented schema, with no field
//! the schema does not name. Every operation must answer at least one success here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use switchyard::server::lab::LabOptions;
use switchyard::store::memory::MemoryStore;

use common::api::{A, B, TestLab, eventually, options};
use common::openapi::Doc;

/// The lab, with every answer checked against the document.
struct Checked {
    /// Kept for as long as the router is used.
    _lab: TestLab<MemoryStore>,
    router: axum::Router,
    doc: Doc,
    /// (method, template, status) of every answer.
    seen: Mutex<BTreeSet<(String, String, u16)>>,
}

impl Checked {
    async fn start() -> Checked {
        // A webhook receiver that refuses everything: every event is dead-lettered at once,
        // so the delivery log and the retry have something to show.
        let refusing = axum::Router::new().fallback(|| async { StatusCode::BAD_REQUEST });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, refusing).await });
        let signer =
            switchyard::webhook::Signer::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let t = TestLab::start(
            MemoryStore::new(),
            LabOptions {
                // Long enough for pause, volume and stop to find something playing.
                play_duration: Duration::from_secs(30),
                webhook: Some((url, signer)),
                admin_key: Some(ADMIN.into()),
                ..options()
            },
        )
        .await;
        let router = t.lab.router();
        Checked {
            _lab: t,
            router,
            doc: Doc::generated(),
            seen: Mutex::default(),
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        app: Option<(&str, &str)>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let headers = match app {
            Some((id, key)) => vec![("x-app-id", id), ("x-api-key", key)],
            None => Vec::new(),
        };
        self.call_with(method, path, &headers, body).await
    }

    /// A request with these credential headers (the operator's key, say).
    async fn call_with(
        &self,
        method: &str,
        path: &str,
        credentials: &[(&str, &str)],
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in credentials {
            request = request.header(*name, *value);
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let request = request
            .header("content-type", "application/json")
            .body(body)
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();

        let here = format!("{method} {path} → {status}");
        let template = self
            .doc
            .template_of(path)
            .unwrap_or_else(|| panic!("{here}: no such path in the document"));
        let op = self
            .doc
            .operation(method, &template)
            .unwrap_or_else(|| panic!("{here}: no such operation in the document"));
        let documented = self.doc.response(op, status.as_u16()).unwrap_or_else(|| {
            panic!(
                "{here} ({}), but {method} {template} documents only {:?}",
                String::from_utf8_lossy(&bytes),
                op["responses"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .collect::<Vec<_>>()
            )
        });
        for header in documented["headers"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|h| h.0)
        {
            if header != "Content-Length" {
                assert!(headers.contains_key(header.as_str()), "{here}: no {header}");
            }
        }
        let mut value = Value::Null;
        if let Some(content) = documented["content"].as_object() {
            let actual = headers["content-type"].to_str().unwrap();
            let media = content
                .get(actual)
                .unwrap_or_else(|| panic!("{here}: content type {actual} is not documented"));
            if actual == "application/json" {
                value = serde_json::from_slice(&bytes).unwrap();
                self.doc
                    .check(&value, &media["schema"])
                    .unwrap_or_else(|e| panic!("{here}: {e}\n{value:#}"));
            }
        }
        self.seen
            .lock()
            .unwrap()
            .insert((method.to_owned(), template, status.as_u16()));
        (status, value)
    }

    /// A streaming answer (Server-Sent Events): its status and content type are checked, its
    /// endless body is not read.
    async fn stream(&self, path: &str) -> StatusCode {
        let request = Request::builder()
            .uri(path)
            .header("x-app-id", A.0)
            .header("x-api-key", A.1)
            .body(Body::empty())
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let template = self.doc.template_of(path).unwrap();
        let op = self.doc.operation("GET", &template).unwrap();
        let documented = self.doc.response(op, status.as_u16()).unwrap();
        let actual = response.headers()["content-type"].to_str().unwrap();
        assert!(
            documented["content"].get(actual).is_some(),
            "GET {path}: content type {actual} is not documented"
        );
        self.seen
            .lock()
            .unwrap()
            .insert(("GET".into(), template, status.as_u16()));
        status
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call("GET", path, Some(A), None).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", path, Some(A), Some(body)).await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call("DELETE", path, Some(A), None).await
    }

    /// Waits until the value `path` answers satisfies `check`.
    async fn until(&self, what: &str, path: &str, check: impl Fn(&Value) -> bool) -> Value {
        eventually(what, || async { check(&self.get(path).await.1) }).await;
        self.get(path).await.1
    }

    /// A parked call and its joined conferencecall id.
    async fn joined_call(&self, room: &str, caller: &str) -> (String, String) {
        let (status, call) = self
            .post(
                "/lab/v1/calls",
                json!({ "did": "15551230000", "caller_id": caller }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let session = call["uuid"].as_str().unwrap().to_owned();
        let join = format!("/api/v1/sessions/{session}/commands/conference/join");
        let (status, _) = self.post(&join, json!({ "room_id": room })).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let members = format!("/api/v1/conferences/{room}/members");
        self.until("the join is confirmed", &members, |m| {
            m["members"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["uuid"] == session)
        })
        .await;
        let shown = self.get(&format!("/api/v1/sessions/{session}")).await.1;
        assert_eq!(shown["room_id"], room);
        let room_now = self.get(&format!("/api/v1/conferences/{room}")).await.1;
        let ids: Vec<String> = room_now["conferencecall_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        for id in ids {
            let cc = self.get(&format!("/api/v1/conferencecalls/{id}")).await.1;
            if cc["reference_id"] == session {
                return (session, id);
            }
        }
        panic!("no conferencecall for {session}");
    }
}

/// Creates a room and waits until it is `progressing`.
async fn room(c: &Checked, name: &str) -> String {
    let (status, created) = c.post("/api/v1/conferences", json!({ "name": name })).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = created["room_id"].as_str().unwrap().to_owned();
    c.until("progressing", &format!("/api/v1/conferences/{id}"), |r| {
        r["status"] == "progressing"
    })
    .await;
    id
}

async fn rooms_and_their_errors(c: &Checked) -> String {
    let id = room(c, "documented").await;
    c.post("/api/v1/conferences", json!({ "name": "documented" }))
        .await;
    c.post("/api/v1/conferences", json!({ "name": "-bad" }))
        .await;
    c.post("/api/v1/conferences", json!("not json")).await;
    c.get("/api/v1/conferences?limit=1").await;
    c.get("/api/v1/conferences?limit=0").await;
    c.get("/api/v1/conferences?cursor=forged").await;
    c.get("/api/v1/conferences/not-a-room").await;
    c.get("/api/v1/conferences/lab01-room-00000000-0000-4000-8000-000000000000")
        .await;
    c.call("GET", &format!("/api/v1/conferences/{id}"), Some(B), None)
        .await;
    c.call("GET", &format!("/api/v1/conferences/{id}"), None, None)
        .await;
    c.call(
        "GET",
        &format!("/api/v1/conferences/{id}/members"),
        Some(B),
        None,
    )
    .await;
    c.get(&format!("/api/v1/conferences/{id}/members?limit=1"))
        .await;
    id
}

async fn playback(c: &Checked, room: &str) {
    let base = format!("/api/v1/conferences/{room}");
    for verb in ["lock", "lock", "unlock"] {
        let (status, _) = c.post(&format!("{base}/{verb}"), json!({})).await;
        assert_eq!(status, 200, "{verb}");
    }
    c.post(&format!("{base}/lock"), json!({ "why": 1 })).await;
    c.post(&format!("{base}/volume"), json!({ "volume": 99 }))
        .await;
    c.post(
        &format!("{base}/play"),
        json!({ "urls": ["ftp://x/a.wav"] }),
    )
    .await;
    let (status, _) = c
        .post(
            &format!("{base}/play"),
            json!({ "urls": ["https://cdn.example.com/a.wav"] }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    c.post(
        &format!("{base}/play"),
        json!({ "urls": ["https://cdn.example.com/b.wav"] }),
    )
    .await;
    c.until("playing", &base, |r| r["playback_status"] == "playing")
        .await;
    for (verb, body) in [
        ("pause", json!({})),
        ("pause", json!({})),
        ("volume", json!({ "volume": -6 })),
        ("stop", json!({})),
        ("stop", json!({})),
    ] {
        tokio::time::sleep(Duration::from_millis(150)).await;
        c.post(&format!("{base}/{verb}"), body).await;
    }
    c.post(&format!("{base}/pause"), json!({ "extra": 1 }))
        .await;
}

async fn sessions(c: &Checked, room: &str) {
    let (session, conferencecall) = c.joined_call(room, "1001").await;
    let cmd = format!("/api/v1/sessions/{session}/commands");
    for (path, body) in [
        (
            format!("/api/v1/conferences/{room}"),
            json!({ "metadata": { "m": 1 } }),
        ),
        (
            format!("/api/v1/conferences/{room}/members/{session}"),
            json!({ "metadata": { "r": "x" } }),
        ),
        (
            format!("/api/v1/conferences/{room}"),
            json!({ "metadata": 7 }),
        ),
    ] {
        c.call("PATCH", &path, Some(A), Some(body)).await;
    }
    for (verb, body) in [
        ("unmute_all", json!({ "except": [session] })),
        ("mute_all", json!({})),
        ("mute_all", json!({ "except": [1] })),
    ] {
        c.post(&format!("/api/v1/conferences/{room}/{verb}"), body)
            .await;
    }
    c.post(
        &format!("{cmd}/conference/join"),
        json!({ "room_id": room }),
    )
    .await;
    c.post(
        &format!("{cmd}/conference/join"),
        json!({ "room_id": "bad" }),
    )
    .await;
    c.post(&format!("{cmd}/conference/mute"), json!({})).await;
    c.post(
        &format!("{cmd}/conference/unmute"),
        json!({ "command_uid": "u1" }),
    )
    .await;
    c.post(
        &format!("{cmd}/conference/unmute"),
        json!({ "command_uid": "u1" }),
    )
    .await;
    c.post(&format!("{cmd}/conference/unmute"), json!({})).await;
    c.post(
        &format!("{cmd}/conference/mute"),
        json!({ "command_uid": "" }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    c.post(&format!("{cmd}/conference/mute"), json!({})).await;
    // deaf/undeaf and hold/unhold: accepted, repeated (409), a bad music URL (400).
    c.post(&format!("{cmd}/conference/deaf"), json!({})).await;
    c.post(&format!("{cmd}/conference/deaf"), json!({})).await;
    c.post(
        &format!("{cmd}/conference/hold"),
        json!({ "music": "ftp://x" }),
    )
    .await;
    c.post(
        &format!("{cmd}/conference/hold"),
        json!({ "music": "https://cdn.example.com/hold.wav", "command_uid": "h1" }),
    )
    .await;
    c.post(&format!("{cmd}/conference/hold"), json!({})).await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    c.post(&format!("{cmd}/conference/undeaf"), json!({})).await;
    c.post(&format!("{cmd}/conference/unhold"), json!({})).await;
    // announce: a text, a URL, both (400); coach a second member, itself (409), uncoach.
    c.post(
        &format!("{cmd}/conference/announce"),
        json!({ "text": "One minute left.", "gender": "neutral" }),
    )
    .await;
    c.post(
        &format!("{cmd}/conference/announce"),
        json!({ "text": "x", "url": "https://cdn.example.com/a.wav" }),
    )
    .await;
    let (other, _) = c.joined_call(room, "1004").await;
    c.post(
        &format!("{cmd}/conference/coach"),
        json!({ "member": other }),
    )
    .await;
    c.post(
        &format!("{cmd}/conference/coach"),
        json!({ "member": "not-a-session" }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    c.post(
        &format!("{cmd}/conference/coach"),
        json!({ "member": session }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    c.post(
        &format!("{cmd}/conference/announce"),
        json!({ "url": "https://cdn.example.com/a.wav" }),
    )
    .await;
    c.post(&format!("{cmd}/conference/uncoach"), json!({}))
        .await;
    c.post(&format!("{cmd}/conference/uncoach"), json!({}))
        .await;
    // The member's levels: set (202), out of range or none (400), again with its uid.
    let audio = format!("{cmd}/conference/audio");
    c.post(
        &audio,
        json!({ "volume_in": 2, "volume_out": -1, "energy": 300, "command_uid": "v1" }),
    )
    .await;
    c.post(
        &audio,
        json!({ "volume_in": 2, "volume_out": -1, "energy": 300, "command_uid": "v1" }),
    )
    .await;
    c.post(&audio, json!({ "volume_in": 5 })).await;
    c.post(&audio, json!({})).await;
    // A move to the room it is in (409), to a room id that is no id (400).
    let shift = format!("{cmd}/conference/move");
    c.post(&shift, json!({ "room_id": room })).await;
    c.post(&shift, json!({ "room_id": "x" })).await;
    // The coached member moves to a room of its own (202).
    let breakout = self::room(c, "breakout").await;
    c.post(
        &format!("/api/v1/sessions/{other}/commands/conference/move"),
        json!({ "room_id": breakout, "muted": true }),
    )
    .await;
    // Dial-out: a call (202), its repeat (200), a destination that is no address (400).
    let dial = format!("/api/v1/conferences/{room}/participants");
    let call = json!({
        "to": "sip:alice@pbx.example.com",
        "command_uid": "d1",
        "metadata": { "role": "guest" },
    });
    c.post(&dial, call.clone()).await;
    c.post(&dial, call).await;
    c.post(&dial, json!({ "to": "sip:a,b@x" })).await;
    c.get("/api/v1/sessions?limit=1").await;
    c.get("/api/v1/sessions/lab01-00000000-0000-4000-8000-000000000000")
        .await;
    c.call("GET", &format!("/api/v1/sessions/{session}"), Some(B), None)
        .await;
    c.get(&format!("/v1.0/conferencecalls/{conferencecall}"))
        .await;
    c.get("/v1.0/conferencecalls/not-a-uuid").await;
    c.post(&format!("{cmd}/conference/leave"), json!({})).await;
    c.post(&format!("{cmd}/conference/leave"), json!({})).await;
    let (status, _) = c.post(&format!("{cmd}/hangup"), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let (second, kicked) = c.joined_call(room, "1002").await;
    let (status, _) = c.delete(&format!("/api/v1/conferencecalls/{kicked}")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = c.delete(&format!("/lab/v1/calls/{second}")).await;
    assert_eq!(status, StatusCode::OK);
    c.delete("/lab/v1/calls/lab01-00000000-0000-4000-8000-000000000000")
        .await;
    let (_, kicked) = c.joined_call(room, "1003").await;
    let (status, _) = c.delete(&format!("/v1.0/conferencecalls/{kicked}")).await;
    assert_eq!(status, StatusCode::OK);
}

async fn recordings(c: &Checked, room: &str) {
    let base = format!("/api/v1/conferences/{room}/recording");
    c.post(&format!("{base}/stop"), json!({})).await;
    let (status, rec) = c.post(&format!("{base}/start"), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let rec = rec["id"].as_str().unwrap().to_owned();
    c.post(&format!("{base}/start"), json!({})).await;
    let shown = format!("/api/v1/recordings/{rec}");
    c.until("recording", &shown, |r| r["status"] == "recording")
        .await;
    c.get(&format!("{shown}/file")).await;
    c.get(&format!("/v1.0/recordings/{rec}")).await;
    c.post(&format!("{base}/resume"), json!({})).await;
    c.post(&format!("{base}/pause"), json!({})).await;
    c.until("paused", &shown, |r| r["status"] == "paused").await;
    c.post(&format!("{base}/pause"), json!({})).await;
    c.post(&format!("{base}/resume"), json!({})).await;
    c.until("resumed", &shown, |r| r["status"] == "recording")
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.post(&format!("{base}/stop"), json!({})).await;
    c.until("ended", &shown, |r| r["status"] == "ended").await;
    let (status, _) = c.get(&format!("{shown}/file")).await;
    assert_eq!(status, StatusCode::OK);
    c.get("/api/v1/recordings/00000000-0000-4000-8000-000000000000")
        .await;
    // Deleted: unknown from then on.
    let (status, _) = c.delete(&shown).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = c.get(&shown).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = c.delete(&shown).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A stream: the simulated node carries no stream media, so it fails (`media_unavailable`),
/// which is still its 201 and its webhook; read and ended as any.
async fn streams(c: &Checked, room: &str) {
    let server = common::ws_server::WsServer::start().await;
    let base = format!("/api/v1/conferences/{room}/streams");
    let (status, stream) = c
        .post(&base, json!({ "url": server.url("/s"), "protocol": "l16", "sample_rate": 16000, "parameters": { "a": 1 } }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{stream}");
    assert_eq!(stream["status"], "failed", "{stream}");
    let id = stream["stream_id"].as_str().unwrap().to_owned();
    c.post(&base, json!({ "url": "ftp://x" })).await;
    c.post(
        &base,
        json!({ "url": server.url("/s"), "protocol": "twilio", "sample_rate": 16000 }),
    )
    .await;
    c.get(&base).await;
    c.get(&format!("{base}/{id}")).await;
    let (status, _) = c.delete(&format!("{base}/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    c.get(&format!("{base}/00000000-0000-4000-8000-000000000000"))
        .await;

    // A listen-in: its socket path is spent by the first upgrade; it is no upgrade without the
    // WebSocket's headers, and a ticket that is not one is not found.
    let listen = format!("/api/v1/conferences/{room}/listen");
    let (status, made) = c.post(&listen, json!({ "talk": true })).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["kind"], "listen");
    assert_eq!(made["status"], "starting");
    let path = made["socket_path"].as_str().unwrap().to_owned();
    let (status, _) = c.call_with("GET", &path, &[], None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let upgrade = [
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let (status, _) = c.call_with("GET", &path, &upgrade, None).await;
    assert_eq!(status, StatusCode::SWITCHING_PROTOCOLS);
    let (status, _) = c.call_with("GET", &path, &upgrade, None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = c
        .call_with("GET", "/api/v1/listen/bm9wZQ.bm9wZQ", &upgrade, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    c.post(&listen, json!({ "track": "member" })).await;
    c.post(&listen, json!({ "talk": 1 })).await;
}

async fn events_and_deliveries(c: &Checked) {
    let (status, page) = c.get("/api/v1/events?limit=2").await;
    assert_eq!(status, StatusCode::OK);
    let cursor = page["cursor"].as_str().unwrap().to_owned();
    c.get(&format!("/api/v1/events?after={cursor}")).await;
    c.get("/api/v1/events?after=nope").await;
    assert_eq!(c.stream("/api/v1/events/stream").await, StatusCode::OK);
    let log = c
        .until("a dead letter", "/api/v1/webhooks/deliveries", |l| {
            l["deliveries"]
                .as_array()
                .is_some_and(|d| d.iter().any(|a| a["outcome"] == "dead_letter"))
        })
        .await;
    let id = log["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["outcome"] == "dead_letter")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    c.get("/api/v1/webhooks/deliveries?limit=1").await;
    c.get("/api/v1/webhooks/deliveries?cursor=nope").await;
    let (status, dead) = c
        .get("/api/v1/webhooks/deliveries?outcome=dead_letter&type=conference.created&limit=1")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(dead["deliveries"].as_array().is_some_and(|d| d.len() <= 1));
    c.get("/api/v1/webhooks/deliveries?outcome=lost").await;
    let retry = format!("/api/v1/webhooks/deliveries/{id}/retry");
    let (status, _) = c.post(&retry, json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    c.post(&retry, json!({})).await;
    c.post("/api/v1/webhooks/deliveries/msg_999999-0/retry", json!({}))
        .await;
}

async fn the_conference_resource(c: &Checked) {
    c.get("/v1.0/conferences?page_size=1").await;
    c.get("/v1.0/conferences?page_size=0").await;
    c.get("/v1.0/conferences?page_size=1&page_size=2").await;
    let (status, created) = c
        .post(
            "/v1.0/conferences",
            json!({ "name": "", "type": "connect", "timeout": 600 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    c.post("/v1.0/conferences", json!({ "type": "other" }))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/v1.0/conferences/{id}");
    c.until("progressing", &path, |r| r["status"] == "progressing")
        .await;
    let (status, _) = c.post(&format!("{path}/recording_start"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let rec = c.get(&path).await.1["recording_id"]
        .as_str()
        .unwrap()
        .to_owned();
    c.until("recording", &format!("/v1.0/recordings/{rec}"), |r| {
        r["status"] == "recording"
    })
    .await;
    let (status, _) = c.post(&format!("{path}/recording_stop"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    c.post(&format!("{path}/recording_stop"), json!({})).await;
    let (status, _) = c.delete(&path).await;
    assert_eq!(status, StatusCode::OK);
    c.call("GET", &path, Some(B), None).await;
    c.get("/v1.0/conferences/not-a-room").await;
}

const ADMIN: &str = "operator-key";

async fn operations(c: &Checked, room: &str) {
    for path in ["/healthz", "/readyz", "/api/v1/openapi.json"] {
        let (status, _) = c.call("GET", path, None, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let bearer = format!("Bearer {ADMIN}");
    for (credentials, expected) in [
        (&[][..], StatusCode::UNAUTHORIZED),
        (&[("x-admin-key", ADMIN)][..], StatusCode::OK),
        (&[("authorization", bearer.as_str())][..], StatusCode::OK),
    ] {
        let (status, _) = c.call_with("GET", "/metrics", credentials, None).await;
        assert_eq!(status, expected, "/metrics with {credentials:?}");
    }
    let (status, _) = c.get("/api/v1/nodes").await;
    assert_eq!(status, StatusCode::OK);
    let overview = "/api/v1/operator/overview";
    let (status, _) = c
        .call_with("GET", overview, &[("x-admin-key", ADMIN)], None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = c
        .call_with("GET", overview, &[("x-admin-key", "wrong")], None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A node drained and taken back into service.
    let admin = [("x-admin-key", ADMIN)];
    let drain = "/api/v1/operator/nodes/lab01/drain";
    for (path, body, expected) in [
        (drain, json!({}), StatusCode::OK),
        (drain, json!({ "migrate": "yes" }), StatusCode::BAD_REQUEST),
        (
            "/api/v1/operator/nodes/zzz99/drain",
            json!({}),
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/v1/operator/nodes/lab01/undrain",
            json!({}),
            StatusCode::OK,
        ),
    ] {
        let (status, _) = c.call_with("POST", path, &admin, Some(body)).await;
        assert_eq!(status, expected, "{path}");
    }
    // The operator acting as an app is answered as the app is.
    let (status, _) = c
        .call_with(
            "GET",
            "/api/v1/conferences",
            &[("x-admin-key", ADMIN), ("x-app-id", A.0)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (call, _) = c.joined_call(room, "1009").await;
    let talk = format!("/lab/v1/calls/{call}/talk");
    let (status, _) = c.post(&talk, json!({ "talking": true })).await;
    assert_eq!(status, StatusCode::OK);
    c.post(&talk, json!({ "talking": "yes" })).await;
    c.post(
        "/lab/v1/calls/lab01-00000000-0000-4000-8000-000000000000/talk",
        json!({ "talking": false }),
    )
    .await;
    c.post(
        "/lab/v1/calls",
        json!({ "did": "no spaces", "caller_id": "1" }),
    )
    .await;
}

#[tokio::test]
async fn every_answer_is_documented_and_matches_its_schema() {
    let c = Checked::start().await;
    let room = rooms_and_their_errors(&c).await;
    playback(&c, &room).await;
    sessions(&c, &room).await;
    recordings(&c, &room).await;
    streams(&c, &room).await;
    the_conference_resource(&c).await;
    events_and_deliveries(&c).await;
    operations(&c, &room).await;
    // A quota held whole: its 429 is documented, and its body is the share's shape.
    let mut quotas = switchyard::rooms::quotas::Quotas::none();
    quotas.default.live_rooms = 1;
    c._lab.lab.state.rooms().set_quotas(quotas);
    let (status, body) = c
        .post("/api/v1/conferences", json!({ "name": "over" }))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["detail"]["quota"], "live_rooms", "{body}");
    c._lab
        .lab
        .state
        .rooms()
        .set_quotas(switchyard::rooms::quotas::Quotas::none());
    let (status, _) = c.delete(&format!("/api/v1/conferences/{room}")).await;
    assert_eq!(status, StatusCode::OK);
    c.delete(&format!("/api/v1/conferences/{room}")).await;

    // Every webhook the flow caused is its document's entry: the envelope the dispatcher
    // sends (byte for byte what is signed), checked against the schema of its `type`.
    let mut kinds = BTreeSet::new();
    for app in [common::api::A.0, common::api::B.0] {
        let app = switchyard::conference::AppId::parse(app).unwrap();
        let rows = switchyard::store::Store::outbox(c._lab.store(), &app, None, 100_000)
            .await
            .unwrap();
        for row in rows {
            let envelope = switchyard::webhook::envelope::Envelope::new(&row.id, &row.event);
            let body: Value = serde_json::from_slice(&envelope.body()).unwrap();
            let kind = row.event.kind.as_str();
            let schema = &c.doc.root["webhooks"][kind]["post"]["requestBody"]["content"]["application/json"]
                ["schema"];
            assert!(schema.is_object(), "{kind} is not documented");
            if let Err(e) = c.doc.check(&body, schema) {
                panic!("webhook {kind} does not match its document: {e}\n{body:#}");
            }
            kinds.insert(kind);
        }
    }
    assert!(
        kinds.len() >= 25,
        "the flow caused few kinds of event: {kinds:?}"
    );
    eprintln!(
        "webhooks checked against the document: {} kinds",
        kinds.len()
    );
    let seen = c.seen.lock().unwrap().clone();
    let succeeded: BTreeSet<(String, String)> = seen
        .iter()
        // A WebSocket's success is its upgrade.
        .filter(|(_, _, status)| (200..300).contains(status) || *status == 101)
        .map(|(m, t, _)| (m.clone(), t.clone()))
        .collect();
    let untried: Vec<(String, String)> = c
        .doc
        .operations()
        .into_iter()
        .map(|(m, t, _)| (m, t))
        .filter(|op| !succeeded.contains(op))
        .collect();
    assert!(
        untried.is_empty(),
        "operations whose success answer this flow never checked (add them to it): {untried:?}"
    );
    if std::env::var_os("SHOW_ANSWERS").is_some() {
        eprintln!("{seen:#?}");
    }
    let statuses: BTreeSet<u16> = seen.iter().map(|s| s.2).collect();
    for status in [200, 201, 202, 400, 401, 403, 404, 409, 429] {
        assert!(
            statuses.contains(&status),
            "no {status} answer was checked: {seen:?}"
        );
    }
}
