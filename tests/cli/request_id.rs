//! `X-Request-Id` on every answer (generated, or the caller's when it is sane) and in every log
//! line the request causes; one line per request with its status, and never the API key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::log_capture;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use tower::ServiceExt;

use common::api::{A, TestLab, options};
use log_capture::Logs;
use switchyard::api::request_id;
use switchyard::store::memory::MemoryStore;

/// One request; `id` is the X-Request-Id sent, as raw bytes. The status and the id answered.
async fn ask(
    router: &Router,
    method: &str,
    path: &str,
    app: Option<(&str, &str)>,
    id: Option<&[u8]>,
    body: Option<Value>,
) -> (StatusCode, Option<String>) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some((app, key)) = app {
        request = request.header("x-app-id", app).header("x-api-key", key);
    }
    if let Some(id) = id {
        request = request.header("x-request-id", HeaderValue::from_bytes(id).unwrap());
    }
    let body = match body {
        Some(Value::String(raw)) => {
            request = request.header("content-type", "application/json");
            Body::from(raw)
        }
        Some(v) => {
            request = request.header("content-type", "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let response = router
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let ids: Vec<_> = response.headers().get_all("x-request-id").iter().collect();
    assert!(ids.len() <= 1, "one X-Request-Id, not {ids:?}");
    let id = ids.first().map(|v| v.to_str().unwrap().to_owned());
    (response.status(), id)
}

fn generated(id: &Option<String>) -> bool {
    id.as_ref()
        .is_some_and(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

async fn lab() -> (TestLab<MemoryStore>, Router) {
    let tl = TestLab::start(MemoryStore::new(), options()).await;
    let router = tl.lab.router();
    (tl, router)
}

#[tokio::test]
async fn every_answer_carries_a_new_request_id_errors_included() {
    let (_tl, router) = lab().await;
    let conferences = "/api/v1/conferences";
    // (method, path, app, body, status; `None`: a refusal, whichever 4xx).
    let cases = [
        ("GET", "/healthz", None, None, Some(StatusCode::OK)),
        ("GET", conferences, Some(A), None, Some(StatusCode::OK)),
        (
            "GET",
            conferences,
            None,
            None,
            Some(StatusCode::UNAUTHORIZED),
        ),
        (
            "GET",
            conferences,
            Some(("app-a", "wrong")),
            None,
            Some(StatusCode::UNAUTHORIZED),
        ),
        (
            "GET",
            "/no/such/path",
            Some(A),
            None,
            Some(StatusCode::NOT_FOUND),
        ),
        (
            "GET",
            "/api/v1/conferences/x",
            None,
            None,
            Some(StatusCode::UNAUTHORIZED),
        ),
        (
            "POST",
            conferences,
            Some(A),
            Some(json!({ "name": 7 })),
            None,
        ),
        (
            "POST",
            conferences,
            Some(A),
            Some(Value::String("{".into())),
            None,
        ),
    ];
    let mut seen = Vec::new();
    for (method, path, app, body, expected) in cases {
        let (status, id) = ask(&router, method, path, app, None, body).await;
        match expected {
            Some(expected) => assert_eq!(status, expected, "{method} {path}"),
            None => assert!(status.is_client_error(), "{method} {path}: {status}"),
        }
        assert!(
            generated(&id),
            "{method} {path} answered {status} with id {id:?}"
        );
        assert!(!seen.contains(&id), "ids are new each time: {id:?}");
        seen.push(id);
    }
}

#[tokio::test]
async fn a_sane_id_sent_is_echoed() {
    let (_tl, router) = lab().await;
    let longest = "r".repeat(request_id::MAX_LEN);
    for sent in ["req-42", "0f9c:trace/1;x=\"y\"", longest.as_str()] {
        let (status, id) = ask(
            &router,
            "GET",
            "/api/v1/conferences",
            Some(A),
            Some(sent.as_bytes()),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(id.as_deref(), Some(sent));
        // Errors echo it too.
        let (status, id) = ask(
            &router,
            "GET",
            "/nowhere",
            None,
            Some(sent.as_bytes()),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(id.as_deref(), Some(sent));
    }
    let (status, id) = ask(
        &router,
        "POST",
        "/api/v1/conferences",
        Some(A),
        Some(b"create-1"),
        Some(json!({ "name": "echo" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(id.as_deref(), Some("create-1"));
}

#[tokio::test]
async fn an_insane_id_is_replaced_by_a_new_one() {
    let (_tl, router) = lab().await;
    let too_long = "x".repeat(300);
    let just_over = "y".repeat(request_id::MAX_LEN + 1);
    let insane: [&[u8]; 6] = [
        too_long.as_bytes(),
        just_over.as_bytes(),
        b"tab\tinside",
        b"two words",
        "caf\u{e9}".as_bytes(),
        b"",
    ];
    for sent in insane {
        for app in [Some(A), None] {
            let (_, id) = ask(&router, "GET", "/api/v1/conferences", app, Some(sent), None).await;
            assert!(
                generated(&id),
                "{:?} answered with {id:?}",
                String::from_utf8_lossy(sent)
            );
        }
    }
}

#[tokio::test]
async fn every_line_a_request_logs_carries_its_id() {
    // A handler that logs, behind the middleware as the API's routes are.
    let router = Router::new()
        .route(
            "/work/{item}",
            post(|| async {
                tracing::warn!(step = 1, "working on it");
                "done"
            }),
        )
        .layer(axum::middleware::from_fn(request_id::layer));
    let (logs, _guard) = Logs::capture();
    let (status, id) = ask(&router, "POST", "/work/7", None, Some(b"job-7"), None).await;
    assert_eq!((status, id.as_deref()), (StatusCode::OK, Some("job-7")));
    let (_, generated_id) = ask(&router, "POST", "/work/8", None, None, None).await;
    assert!(generated(&generated_id));

    let inside = logs.with_message("working on it");
    assert_eq!(inside.len(), 2, "{}", logs.text());
    for (line, id) in inside
        .iter()
        .zip(["job-7", generated_id.as_deref().unwrap()])
    {
        assert_eq!(line["span"]["name"], "request", "{line}");
        assert_eq!(line["span"]["request_id"], id, "{line}");
        assert_eq!(line["span"]["method"], "POST", "{line}");
        assert_eq!(line["span"]["route"], "/work/{item}", "{line}");
        assert_eq!(line["fields"]["step"], 1, "{line}");
    }
    // And the request's own line: status and duration, in the same span.
    let ends = logs.with_message("request");
    assert_eq!(ends.len(), 2, "{}", logs.text());
    assert_eq!(ends[0]["span"]["request_id"], "job-7");
    assert_eq!(ends[0]["fields"]["status"], 200);
    assert_eq!(ends[0]["level"], "INFO");
    assert!(
        ends[0]["fields"]["duration_ms"].as_f64().is_some(),
        "{}",
        ends[0]
    );
}

#[tokio::test]
async fn the_api_logs_one_line_per_request_without_the_key() {
    let (_tl, router) = lab().await;
    let (logs, _guard) = Logs::capture();
    let key = "a-very-recognisable-wrong-key";
    let (status, _) = ask(
        &router,
        "POST",
        "/api/v1/conferences",
        Some(A),
        Some(b"create-2"),
        Some(json!({ "name": "logged" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = ask(
        &router,
        "GET",
        "/api/v1/conferences",
        Some(("app-a", key)),
        Some(b"denied-1"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = ask(&router, "GET", "/nowhere/42", None, Some(b"lost-1"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Probes are logged at debug only.
    let (status, _) = ask(&router, "GET", "/healthz", None, Some(b"probe-1"), None).await;
    assert_eq!(status, StatusCode::OK);

    let ends = logs.with_message("request");
    let by_id = |id: &str| {
        let found: Vec<_> = ends
            .iter()
            .filter(|l| l["span"]["request_id"] == id)
            .collect();
        assert!(found.len() <= 1, "one line per request: {found:?}");
        found.first().map(|l| (*l).clone())
    };
    let created = by_id("create-2").expect("the create is logged");
    assert_eq!(created["span"]["method"], "POST");
    assert_eq!(created["span"]["route"], "/api/v1/conferences");
    assert_eq!(created["fields"]["status"], 201);
    let denied = by_id("denied-1").expect("the 401 is logged");
    assert_eq!(denied["fields"]["status"], 401);
    let lost = by_id("lost-1").expect("the 404 is logged");
    assert_eq!(lost["span"]["route"], "unmatched", "never the raw path");
    assert_eq!(lost["fields"]["status"], 404);
    let probe = by_id("probe-1").expect("the probe is logged");
    assert_eq!(probe["level"], "DEBUG", "probes stay out of info logs");
    assert_eq!(created["level"], "INFO");
    assert_eq!(denied["level"], "INFO");
    let text = logs.text();
    assert!(!text.contains(key), "the API key is never logged: {text}");
    assert!(
        !text.contains("key-a"),
        "the API key is never logged: {text}"
    );
    assert!(!text.contains("/nowhere/42"), "{text}");
}
