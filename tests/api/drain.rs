//! Draining a media node (issue 37): the operator takes a node out of service; it takes no new
//! rooms or dial-outs, on every instance (the mark is in the store), while its rooms and its
//! callers go on; the nodes list, `/readyz` and `/metrics` show it; undrain takes it back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::common;
use common::api::{A, TestLab, eventually, options};
use switchyard::server::lab::LabOptions;
use switchyard::store::memory::MemoryStore;

const ROOT: &str = "drain-root-key";

/// An operator request (`X-Admin-Key: key`): status and body.
async fn operator(
    t: &TestLab<MemoryStore>,
    method: &str,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let mut request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("x-admin-key", key);
    let body = match body {
        Some(b) => {
            request = request.header("content-type", "application/json");
            axum::body::Body::from(b.to_string())
        }
        None => axum::body::Body::empty(),
    };
    let response = t
        .lab
        .router()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

fn node_of(room: &str) -> &str {
    &room[..5]
}

/// The node entry of `GET /api/v1/nodes`.
async fn listed(t: &TestLab<MemoryStore>, node: &str) -> Value {
    let r = t.get("/api/v1/nodes", A).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    r.body["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == node)
        .cloned()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_takes_no_new_rooms_or_dial_outs_and_its_rooms_go_on() {
    let t = TestLab::start(
        MemoryStore::new(),
        LabOptions {
            nodes: 2,
            admin_key: Some(ROOT.into()),
            ..options()
        },
    )
    .await;
    // One room on each node (placement evens them out).
    let first = t.room(A, "first").await;
    let second = t.room(A, "second").await;
    assert_ne!(node_of(&first), node_of(&second));
    let (drained, other) = if node_of(&first) == "lab01" {
        (first.clone(), second.clone())
    } else {
        (second.clone(), first.clone())
    };

    let path = "/api/v1/operator/nodes/lab01/drain";
    let (status, body) = operator(&t, "POST", path, ROOT, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["draining"], true);
    let since = body["since"].clone();
    assert!(since.is_string(), "{body}");
    // Again: the drain keeps its start.
    let (_, again) = operator(&t, "POST", path, ROOT, Some(json!({"migrate": false}))).await;
    assert_eq!(again["since"], since);

    // New rooms all go to the other node.
    for n in 0..4 {
        let r = t
            .post("/api/v1/conferences", A, json!({"name": format!("new{n}")}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        assert_eq!(
            node_of(r.body["room_id"].as_str().unwrap()),
            "lab02",
            "{r:?}"
        );
    }
    // No dial-out from the drained node's room: 503, nothing placed.
    let dial = format!("/api/v1/conferences/{drained}/participants");
    let r = t
        .post(&dial, A, json!({"to": "sip:alice@pbx.example.com"}))
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{r:?}");
    assert!(
        r.body["error"].as_str().unwrap().contains("draining"),
        "{r:?}"
    );
    let r = t
        .post(
            &format!("/api/v1/conferences/{other}/participants"),
            A,
            json!({"to": "sip:bob@pbx.example.com"}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::ACCEPTED,
        "the other node dials: {r:?}"
    );

    // Its room goes on: a caller joins it.
    let caller = t.call(A, "1001").await;
    t.joined(A, &drained, &caller).await;

    // Shown as draining, with what is still on it.
    let view = listed(&t, "lab01").await;
    assert_eq!(view["draining"], true, "{view}");
    assert_eq!(view["rooms"], 1, "{view}");
    assert_eq!(view["members"], 1, "{view}");
    assert_eq!(listed(&t, "lab02").await["draining"], false);
    let ready = common::api::raw_get(&t.lab.router(), "/readyz", A).await;
    let ready: Value = serde_json::from_slice(&ready.2).unwrap();
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["draining"], json!(["lab01"]), "{ready}");
    eventually("the metrics show the drain", || async {
        let operator = [("x-admin-key", ROOT)];
        let m = common::api::raw_get_with(&t.lab.router(), "/metrics", A, &operator).await;
        let text = String::from_utf8_lossy(&m.2).into_owned();
        text.contains("switchyard_node_draining{node=\"lab01\"} 1")
            && text.contains("switchyard_node_draining{node=\"lab02\"} 0")
    })
    .await;

    // Both drained: no room can be made.
    let (status, _) = operator(&t, "POST", "/api/v1/operator/nodes/lab02/drain", ROOT, None).await;
    assert_eq!(status, StatusCode::OK);
    let r = t
        .post("/api/v1/conferences", A, json!({"name": "nowhere"}))
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{r:?}");

    // Back in service: rooms land on lab01 again (it has the fewest).
    let (status, body) = operator(
        &t,
        "POST",
        "/api/v1/operator/nodes/lab01/undrain",
        ROOT,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["draining"], false);
    let r = t
        .post("/api/v1/conferences", A, json!({"name": "back"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(node_of(r.body["room_id"].as_str().unwrap()), "lab01");
    assert_eq!(listed(&t, "lab01").await["draining"], false);
}

#[tokio::test]
async fn draining_is_the_operator_s_alone_and_names_a_configured_node() {
    let t = TestLab::start(
        MemoryStore::new(),
        LabOptions {
            admin_key: Some(ROOT.into()),
            ..options()
        },
    )
    .await;
    let path = "/api/v1/operator/nodes/lab01/drain";
    let (status, _) = operator(&t, "POST", path, "not-the-key", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let r = t.post(path, A, json!({})).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "an app key is not the operator's"
    );
    for unknown in ["zzz99", "not-a-prefix"] {
        let p = format!("/api/v1/operator/nodes/{unknown}/drain");
        let (status, body) = operator(&t, "POST", &p, ROOT, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{unknown}: {body}");
        assert_eq!(body["error"], "Node not found");
    }
    let (status, body) = operator(&t, "POST", path, ROOT, Some(json!({"migrate": 1}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = operator(&t, "POST", path, ROOT, Some(json!({"now": 1}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        listed(&t, "lab01").await["draining"],
        false,
        "nothing was drained"
    );
}
