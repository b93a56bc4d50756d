//! The API accepts only what its document describes, and every refusal is the contract's JSON
//! error body with its proper status: bad queries, wrong methods, oversized bodies, bodies that
//! are not declared JSON, arrays where an object is expected; error texts speak JSON, not Rust.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use axum::http::StatusCode;
use serde_json::json;
use switchyard::store::memory::MemoryStore;

use common::api::{A, Reply, TestLab, assert_error, options};

async fn lab() -> TestLab<MemoryStore> {
    TestLab::start(MemoryStore::new(), options()).await
}

/// No Rust type or serde wording leaks into an error.
fn assert_plain(r: &Reply) {
    let text = r.body.to_string();
    for rust in [
        "struct ", "u64", "i64", "u32", "i32", "f64", "sequence", "a map", "Vec<", "Option<",
    ] {
        assert!(!text.contains(rust), "{rust:?} in {text}");
    }
}

#[tokio::test]
async fn a_bad_query_is_a_json_400_on_every_listing() {
    let t = lab().await;
    for path in [
        "/api/v1/conferences?limit=1&limit=2",
        "/api/v1/sessions?limit=1&limit=2",
        "/api/v1/events?limit=1&limit=2",
        "/api/v1/events?after=1-0&after=2-0",
        "/api/v1/webhooks/deliveries?limit=1&limit=2",
        "/v1.0/conferences?page_size=1&page_size=2",
        "/api/v1/conferences?limit=9223372036854775808",
        "/api/v1/events?limit=0",
    ] {
        let r = t.get(path, A).await;
        assert_error(&r, StatusCode::BAD_REQUEST);
        assert_plain(&r);
    }
    // The largest int64 is a limit like any other (clamped).
    let r = t
        .get("/api/v1/conferences?limit=9223372036854775807", A)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
}

/// A query parameter an endpoint does not take is refused as an unknown body field is: a
/// JSON 400 naming it, on every endpoint that reads its query; what each documents (paging,
/// `ended`, the `metadata.<key>` filters where listings filter, `after`, the delivery log's
/// filters) is still taken.
#[tokio::test]
async fn an_unknown_query_parameter_is_a_json_400_naming_it() {
    let t = lab().await;
    let room = t.room(A, "strictq").await;
    let recording = uuid::Uuid::new_v4();
    for (path, name) in [
        ("/api/v1/conferences?limti=5".to_owned(), "limti"),
        ("/api/v1/conferences?meta.role=x".to_owned(), "meta.role"),
        (
            format!("/api/v1/conferences/{room}/members?limit=5&page_size=2"),
            "page_size",
        ),
        ("/api/v1/sessions?ended=true".to_owned(), "ended"),
        (
            "/api/v1/sessions?metadata.role=x".to_owned(),
            "metadata.role",
        ),
        ("/api/v1/events?since=1-0".to_owned(), "since"),
        ("/api/v1/events/stream?limit=5".to_owned(), "limit"),
        ("/api/v1/webhooks/deliveries?after=1-0".to_owned(), "after"),
        ("/v1.0/conferences?limit=5".to_owned(), "limit"),
        (
            format!("/api/v1/recordings/{recording}/file?format=mp3"),
            "format",
        ),
    ] {
        let r = t.get(&path, A).await;
        assert_error(&r, StatusCode::BAD_REQUEST);
        assert_plain(&r);
        assert_eq!(r.body["error"], "Invalid query", "{path}: {r:?}");
        let reason = r.body["detail"]["reason"].as_str().unwrap();
        assert!(
            reason.starts_with(&format!("unknown field `{name}`, expected")),
            "{path}: {reason}"
        );
    }
    // What each listing documents is still taken.
    for path in [
        "/api/v1/conferences?limit=5&cursor=&ended=false&metadata.meeting=1".to_owned(),
        format!("/api/v1/conferences/{room}/members?limit=5&cursor=&metadata.role=x"),
        "/api/v1/sessions?limit=5&cursor=".to_owned(),
        "/api/v1/events?after=&limit=5".to_owned(),
        "/api/v1/webhooks/deliveries?cursor=&limit=5".to_owned(),
        format!(
            "/api/v1/webhooks/deliveries?outcome=dead_letter&room_id={room}&type=conference.created"
        ),
        "/v1.0/conferences?page_size=5&page_token=".to_owned(),
    ] {
        let r = t.get(&path, A).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {r:?}");
    }
}

#[tokio::test]
async fn a_wrong_method_is_a_json_405_with_allow() {
    let t = lab().await;
    let room = t.room(A, "methods").await;
    for (method, path, allowed) in [
        ("DELETE", "/api/v1/conferences".to_owned(), "GET"),
        ("PUT", format!("/api/v1/conferences/{room}"), "DELETE"),
        ("GET", format!("/api/v1/conferences/{room}/play"), "POST"),
        ("PATCH", "/v1.0/conferences".to_owned(), "POST"),
    ] {
        let r = t.req(method, &path, Some(A), None).await;
        assert_error(&r, StatusCode::METHOD_NOT_ALLOWED);
        let allow = r.headers["allow"].to_str().unwrap();
        assert!(allow.contains(allowed), "{method} {path}: Allow {allow}");
    }
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let t = lab().await;
    let big = json!({ "name": "big", "data": { "x": "y".repeat(70 * 1024) } });
    let r = t.post("/api/v1/conferences", A, big).await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.body["error"], "Request body too large");
    // Under the limit but over the data limit: the field's own 400.
    let r = t
        .post(
            "/api/v1/conferences",
            A,
            json!({ "name": "big", "data": { "x": "y".repeat(20 * 1024) } }),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_body_not_declared_json_is_415() {
    let t = lab().await;
    let body = br#"{"name":"typed"}"#.to_vec();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let r = t
            .req_typed("POST", "/api/v1/conferences", A, content_type, body.clone())
            .await;
        assert_error(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let r = t
        .req_typed(
            "POST",
            "/api/v1/conferences",
            A,
            Some("application/json; charset=utf-8"),
            body,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    // A command without a body needs no Content-Type.
    let room = t.room(A, "typed-stop").await;
    let r = t
        .req_typed(
            "POST",
            &format!("/api/v1/conferences/{room}/stop"),
            A,
            None,
            Vec::new(),
        )
        .await;
    // Read as `{}`: the command itself answers.
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_eq!(r.body["status"], "stopped", "{r:?}");
}

#[tokio::test]
async fn arrays_and_scalars_are_not_objects() {
    let t = lab().await;
    let room = t.room(A, "arrays").await;
    for (path, body) in [
        (format!("/api/v1/conferences/{room}/stop"), json!([])),
        (format!("/api/v1/conferences/{room}/pause"), json!(null)),
        (format!("/api/v1/conferences/{room}/volume"), json!([3])),
        (
            format!("/api/v1/conferences/{room}/play"),
            json!(["https://x/a.wav"]),
        ),
        (
            "/api/v1/conferences".to_owned(),
            json!(["x", null, null, null, null, null, null]),
        ),
        ("/v1.0/conferences".to_owned(), json!([null])),
        (
            "/v1.0/conferences".to_owned(),
            json!({ "pre_actions": [[null, null, "talk", { "text": "hi" }]] }),
        ),
        ("/api/v1/conferences".to_owned(), json!("weekly")),
    ] {
        let r = t.post(&path, A, body.clone()).await;
        assert_error(&r, StatusCode::BAD_REQUEST);
        assert_plain(&r);
    }
    // Field types are told in JSON's words.
    let r = t
        .post(
            &format!("/api/v1/conferences/{room}/volume"),
            A,
            json!({ "volume": "loud" }),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST);
    assert_plain(&r);
    assert!(
        r.body["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains("expected an integer"),
        "{r:?}"
    );
}

#[tokio::test]
async fn the_conference_resource_body_is_optional_as_documented() {
    let t = lab().await;
    let doc: serde_json::Value = serde_json::from_str(include_str!("../../openapi.json")).unwrap();
    let body = &doc["paths"]["/v1.0/conferences"]["post"]["requestBody"];
    assert_ne!(body["required"], true, "{body}");
    for sent in [None, Some(json!({}))] {
        let r = t.req("POST", "/v1.0/conferences", Some(A), sent).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["name"], "", "{r:?}");
    }
}

#[tokio::test]
async fn command_uid_length_is_counted_in_characters() {
    let t = lab().await;
    let room = t.room(A, "uidlen").await;
    let s = t.call(A, "1001").await;
    let join = format!("/api/v1/sessions/{s}/commands/conference/join");
    let r = t
        .post(
            &join,
            A,
            json!({ "room_id": room, "command_uid": "é".repeat(129) }),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST);
    // 128 characters, 256 bytes: accepted.
    let r = t
        .post(
            &join,
            A,
            json!({ "room_id": room, "command_uid": "é".repeat(128) }),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
}

#[tokio::test]
async fn integers_may_be_written_as_whole_numbers_as_json_schema_allows() {
    let t = lab().await;
    let room = t.room(A, "whole").await;
    let volume = format!("/api/v1/conferences/{room}/volume");
    let r = t.post(&volume, A, json!({ "volume": -3.0 })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_eq!(r.body["volume"], -3);
    let r = t.post(&volume, A, json!({ "volume": 2.5 })).await;
    assert_error(&r, StatusCode::BAD_REQUEST);
    assert_plain(&r);
    let r = t
        .post("/v1.0/conferences", A, json!({ "timeout": 60.0 }))
        .await;
    assert_eq!((r.status, &r.body["timeout"]), (StatusCode::OK, &json!(60)));
    let r = t
        .post("/v1.0/conferences", A, json!({ "timeout": null }))
        .await;
    assert_eq!((r.status, &r.body["timeout"]), (StatusCode::OK, &json!(0)));
    let r = t
        .post("/v1.0/conferences", A, json!({ "timeout": -1 }))
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST);
}
