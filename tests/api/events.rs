//! The event feed: `GET /api/v1/events` pages through an app's events in order, and
//! `GET /api/v1/events/stream` streams them (Server-Sent Events), resuming after Last-Event-ID.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use switchyard::store::memory::MemoryStore;
use tower::ServiceExt;

use common::api::{A, B, TestLab, assert_error, options};

#[tokio::test]
async fn the_feed_pages_through_the_apps_events_in_order() {
    let t = TestLab::start(MemoryStore::new(), options()).await;
    let room = t.room(A, "feed").await;
    let s = t.call(A, "1001").await;
    t.joined(A, &room, &s).await;
    let outbox = t.events(A).await;
    assert!(outbox.len() >= 4, "{outbox:?}");
    // Page by 2 until the cursor stops moving.
    let mut seen: Vec<Value> = Vec::new();
    let mut after = String::new();
    loop {
        let r = t
            .get(&format!("/api/v1/events?limit=2&after={after}"), A)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let page = r.body["events"].as_array().unwrap().clone();
        assert!(page.len() <= 2);
        if page.is_empty() {
            assert_eq!(
                r.body["cursor"],
                after.as_str(),
                "an empty page keeps the cursor"
            );
            break;
        }
        seen.extend(page);
        after = r.body["cursor"].as_str().unwrap().to_owned();
    }
    let types: Vec<&str> = seen.iter().map(|e| e["type"].as_str().unwrap()).collect();
    let want: Vec<&str> = outbox.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(types, want);
    // The webhook envelope: same ids as the webhooks carry.
    let first = &seen[0];
    for k in [
        "id",
        "type",
        "timestamp",
        "app_id",
        "room_id",
        "seq",
        "data",
    ] {
        assert!(first.get(k).is_some(), "{k} in {first}");
    }
    assert!(first["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(first["app_id"], A.0);
    // Another app's feed holds none of it; a malformed cursor is refused.
    let other = t.get("/api/v1/events", B).await;
    assert_eq!(other.body["events"], json!([]));
    assert_error(
        &t.get("/api/v1/events?after=not-a-cursor", A).await,
        StatusCode::BAD_REQUEST,
    );
    assert_error(
        &t.get("/api/v1/events?limit=0", A).await,
        StatusCode::BAD_REQUEST,
    );
    assert_error(
        &t.req("GET", "/api/v1/events", None, None).await,
        StatusCode::UNAUTHORIZED,
    );
}

/// App A's event stream, resuming after `last` if given.
fn stream_request(last: Option<&str>) -> Request<Body> {
    let mut b = Request::builder()
        .uri("/api/v1/events/stream")
        .header("x-app-id", A.0)
        .header("x-api-key", A.1);
    if let Some(id) = last {
        b = b.header("last-event-id", id);
    }
    b.body(Body::empty()).unwrap()
}

/// Reads Server-Sent Events from a streaming body until `n` events have arrived.
async fn read_events(body: &mut Body, n: usize) -> Vec<(String, String, Value)> {
    let mut text = String::new();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), async {
        while out.len() < n {
            let frame = body.frame().await.expect("stream open").unwrap();
            if let Ok(data) = frame.into_data() {
                text.push_str(std::str::from_utf8(&data).unwrap());
            }
            while let Some(end) = text.find("\n\n") {
                let block: String = text.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(&format!("{name}:")))
                        .map(|v| v.trim_start().to_owned())
                };
                if let (Some(id), Some(kind), Some(data)) =
                    (field("id"), field("event"), field("data"))
                {
                    out.push((id, kind, serde_json::from_str(&data).unwrap()));
                }
            }
        }
    })
    .await
    .expect("events within 5 s");
    out
}

#[tokio::test]
async fn the_stream_sends_past_and_live_events_and_resumes_after_last_event_id() {
    let t = TestLab::start(MemoryStore::new(), options()).await;
    let room = t.room(A, "live").await;
    let router = t.lab.router();
    let request = stream_request;
    let response = router.clone().oneshot(request(None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    // What happened before the stream opened: created, progressing.
    let past = read_events(&mut body, 2).await;
    assert_eq!(past[0].1, "conference.created");
    assert_eq!(past[0].2["room_id"], room.as_str());
    assert_eq!(past[0].2["id"], format!("msg_{}", past[0].0));
    // What happens while it is open arrives too.
    let s = t.call(A, "1001").await;
    t.joined(A, &room, &s).await;
    let live = read_events(&mut body, 2).await;
    assert_eq!(live[0].1, "conference.member.joining");
    assert_eq!(live[1].1, "conference.member.joined");
    // A reconnect with Last-Event-ID resumes right after it.
    let resumed = router.oneshot(request(Some(&past[1].0))).await.unwrap();
    let mut body = resumed.into_body();
    let again = read_events(&mut body, 2).await;
    assert_eq!(again[0].0, live[0].0);
    assert_eq!(again[1].0, live[1].0);
}

/// The first block of a stream, as raw text.
async fn first_block(body: &mut Body) -> String {
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(5), async {
        while !text.contains("\n\n") {
            let frame = body.frame().await.expect("stream open").unwrap();
            if let Ok(data) = frame.into_data() {
                text.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    })
    .await
    .expect("a block within 5 s");
    text.split("\n\n").next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn after_now_starts_with_the_position_it_stands_for_then_what_follows_it() {
    let t = TestLab::start(MemoryStore::new(), options()).await;
    let old = t.room(A, "old").await;
    let router = t.lab.router();
    let request = |uri: &str| {
        Request::builder()
            .uri(uri)
            .header("x-app-id", A.0)
            .header("x-api-key", A.1)
            .body(Body::empty())
            .unwrap()
    };
    // The position is announced first, as an id with no data, so a client that drops before
    // any event resumes from it.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let response = router
        .clone()
        .oneshot(request("/api/v1/events/stream?after=now"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let block = first_block(&mut body).await;
    let id = block
        .lines()
        .find_map(|l| l.strip_prefix("id:"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no id in {block:?}"));
    assert!(!block.contains("data:"), "{block:?}");
    let (ms, n) = id.split_once('-').unwrap();
    let ms: u64 = ms.parse().unwrap();
    assert_eq!(n, "0");
    assert!(ms <= now_ms && now_ms - ms <= 3_000, "{ms} vs {now_ms}");
    // Then what follows that position (a few seconds of the past, for clocks a little apart,
    // then the new room's events), each after the announced position.
    let room = t.room(A, "new").await;
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|e: &(String, String, Value)| e.2["room_id"] == room.as_str())
    {
        seen.extend(read_events(&mut body, 1).await);
    }
    let order = |id: &str| {
        let (ms, n) = id.split_once('-').unwrap();
        (ms.parse::<u64>().unwrap(), n.parse::<u64>().unwrap())
    };
    assert!(seen.iter().all(|e| order(&e.0) > order(id)), "{seen:?}");
    assert!(
        seen.iter()
            .all(|e| e.2["room_id"] == room.as_str() || e.2["room_id"] == old.as_str())
    );
    // Resuming from the announced id gives the same events.
    let mut resumed = router
        .oneshot(
            Request::builder()
                .uri("/api/v1/events/stream")
                .header("x-app-id", A.0)
                .header("x-api-key", A.1)
                .header("last-event-id", id)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap()
        .into_body();
    let again = read_events(&mut resumed, seen.len()).await;
    let ids = |v: &[(String, String, Value)]| v.iter().map(|e| e.0.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&again), ids(&seen));
}

/// An app spread over four shards of one Redis (as over a cluster's masters): the feed pages
/// through every room's events once, each room's in order, under one opaque cursor, and the
/// stream resumes after any Last-Event-ID with exactly what followed it.
#[tokio::test]
async fn over_shards_the_feed_and_stream_miss_and_repeat_nothing() {
    let server = common::redis_server::RedisServer::start();
    let store = switchyard::store::redis::RedisStore::connect(&server.url())
        .await
        .unwrap()
        .with_shards(4);
    let t = TestLab::start(store, options()).await;
    let mut rooms = Vec::new();
    for i in 0..8 {
        rooms.push(t.room(A, &format!("sharded{i}")).await);
    }
    let s = t.call(A, "1001").await;
    t.joined(A, &rooms[0], &s).await;
    let mut seen: Vec<Value> = Vec::new();
    let mut after = String::new();
    let mut cursors = Vec::new();
    loop {
        let r = t
            .get(&format!("/api/v1/events?limit=3&after={after}"), A)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let page = r.body["events"].as_array().unwrap().clone();
        if page.is_empty() {
            break;
        }
        seen.extend(page);
        after = r.body["cursor"].as_str().unwrap().to_owned();
        cursors.push(after.clone());
    }
    // The cursor stands in every shard at once.
    assert!(
        cursors.iter().all(|c| c.split(',').count() == 4),
        "{cursors:?}"
    );
    let ids: Vec<&str> = seen.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let unique: std::collections::HashSet<&&str> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "an event twice: {ids:?}");
    assert_eq!(seen.len(), t.events(A).await.len());
    for room in &rooms {
        let seqs: Vec<u64> = seen
            .iter()
            .filter(|e| e["room_id"] == room.as_str())
            .map(|e| e["seq"].as_u64().unwrap())
            .collect();
        assert!(seqs.len() >= 2, "{room}: {seqs:?}");
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{room}: {seqs:?}");
    }
    // The stream: the same events; resumed after the fifth, the rest exactly.
    let router = t.lab.router();
    let request = stream_request;
    let mut body = router
        .clone()
        .oneshot(request(None))
        .await
        .unwrap()
        .into_body();
    let streamed = read_events(&mut body, seen.len()).await;
    let streamed_ids: Vec<&str> = streamed
        .iter()
        .map(|e| e.2["id"].as_str().unwrap())
        .collect();
    assert_eq!(streamed_ids, ids);
    let mut body = router
        .oneshot(request(Some(&streamed[4].0)))
        .await
        .unwrap()
        .into_body();
    let rest = read_events(&mut body, seen.len() - 5).await;
    let rest_ids: Vec<&str> = rest.iter().map(|e| e.2["id"].as_str().unwrap()).collect();
    assert_eq!(rest_ids, ids[5..].to_vec());
    // What the feed hands out is what its document says it takes back.
    let doc = common::openapi::Doc::generated();
    let pattern = |path: &str, name: &str| {
        let op = doc.operation("get", path).unwrap();
        let param = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap();
        regex::Regex::new(param["schema"]["pattern"].as_str().unwrap()).unwrap()
    };
    let (feed, stream, resume) = (
        pattern("/api/v1/events", "after"),
        pattern("/api/v1/events/stream", "after"),
        pattern("/api/v1/events/stream", "Last-Event-ID"),
    );
    for cursor in &cursors {
        assert!(
            feed.is_match(cursor),
            "the feed's `after` refuses its cursor {cursor}"
        );
        assert!(
            stream.is_match(cursor),
            "the stream's `after` refuses {cursor}"
        );
    }
    for (id, ..) in &streamed {
        assert!(
            resume.is_match(id),
            "Last-Event-ID refuses the stream's id {id}"
        );
    }
}
