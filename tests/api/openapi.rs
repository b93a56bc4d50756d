//! The OpenAPI document against the code: the committed `openapi.json` is what the code
//! generates; every route the router serves is documented and every documented operation is
//! served; auth and the global rate limit are documented exactly where the router applies them;
//! the document is well-formed OpenAPI 3.1; the mirrored vocabularies match the domain's; the
//! 400 of a forged page token and the 422 of a reused `command_uid` are documented wherever
//! they can be answered.
//! (`tests/api/openapi_answers.rs` checks real answers against the schemas.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use regex::Regex;
use serde_json::{Value, json};
use tower::ServiceExt;

use switchyard::api::ApiOptions;
use switchyard::api::openapi::{self, BEARER_PATHS, OPERATOR_PATHS, PUBLIC_PATHS};
use switchyard::server::lab::{Lab, LabOptions};
use switchyard::store::memory::MemoryStore;

use common::api::{A, options};
use common::openapi::Doc;

#[test]
fn the_committed_document_is_what_the_code_generates() {
    let generated = openapi::to_json().unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        panic!(
            "openapi.json is not what the code describes (first difference at line {}): \
             run `cargo run -- openapi > openapi.json` and commit it",
            line + 1
        );
    }
}

/// (method, path) of every `.route(...)` in `src/api/`, read from the source: a path literal
/// (or a `format!` over a `let` binding of one) and the method routers chained after it.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let literal = Regex::new(r#"^\s*(?:&format!\(\s*)?"([^"]*)""#).unwrap();
    let binding = Regex::new(r#"let (\w+) = "([^"]*)";"#).unwrap();
    let method = Regex::new(r"\b(get|post|put|patch|delete)\(").unwrap();
    let mut found = BTreeSet::new();
    for file in rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api")) {
        let text = std::fs::read_to_string(&file).unwrap();
        let bindings: HashMap<String, String> = binding
            .captures_iter(&text)
            .map(|c| (c[1].to_owned(), c[2].to_owned()))
            .collect();
        for (start, _) in text.match_indices(".route(") {
            let call = balanced(&text[start + ".route(".len()..]);
            let path = literal.captures(call).unwrap_or_else(|| {
                panic!("{}: cannot read the path of .route({call}", file.display())
            });
            let mut path = path[1].to_owned();
            for (name, value) in &bindings {
                path = path.replace(&format!("{{{name}}}"), value);
            }
            let methods: Vec<_> = method
                .captures_iter(call)
                .map(|c| c[1].to_uppercase())
                .collect();
            assert!(
                !methods.is_empty(),
                "{}: no method in .route({call}",
                file.display()
            );
            for m in methods {
                found.insert((m, path.clone()));
            }
        }
    }
    found
}

fn rust_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The text up to the parenthesis that closes the one just opened.
fn balanced(text: &str) -> &str {
    let mut depth = 1;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &text[..i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced .route(")
}

#[test]
fn every_route_in_the_source_is_documented_and_nothing_else() {
    let doc = Doc::generated();
    let documented: BTreeSet<(String, String)> = doc
        .operations()
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect();
    let routed = routes_in_source();
    assert!(
        routed.len() > 30,
        "the source scan found too little: {routed:?}"
    );
    let missing: Vec<_> = routed.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routed).collect();
    assert!(
        missing.is_empty(),
        "routes without a #[utoipa::path] in the document (add one on the handler and list it \
         in `paths(...)` of src/api/openapi/mod.rs): {missing:?}"
    );
    assert!(extra.is_empty(), "documented but not routed: {extra:?}");
}

async fn lab(api: ApiOptions) -> (Lab<MemoryStore>, axum::Router) {
    let lab = Lab::start(
        Arc::new(MemoryStore::new()),
        LabOptions { api, ..options() },
    )
    .await
    .unwrap();
    let router = lab.router();
    (lab, router)
}

async fn send(
    router: &axum::Router,
    method: &str,
    path: &str,
    app: Option<(&str, &str)>,
) -> (StatusCode, HeaderMap, Value) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some((id, key)) = app {
        request = request.header("x-app-id", id).header("x-api-key", key);
    }
    let body = if method == "GET" || method == "DELETE" {
        Body::empty()
    } else {
        Body::from("{}")
    };
    let request = request
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    if headers
        .get("content-type")
        .is_some_and(|t| t == "text/event-stream")
    {
        // An event stream does not end; its status and headers are the answer.
        return (status, headers, Value::Null);
    }
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, body)
}

/// A documented path with a placeholder in each parameter: handlers refuse it with their own
/// answer, never the router's.
fn concrete(template: &str) -> String {
    Regex::new(r"\{[^}]+\}")
        .unwrap()
        .replace_all(template, "x")
        .into_owned()
}

fn is_the_fallback(status: StatusCode, body: &Value) -> bool {
    status == StatusCode::NOT_FOUND && body["error"] == "Not found"
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let doc = Doc::generated();
    let (_lab, router) = lab(ApiOptions {
        global_rate: 0.0,
        ..ApiOptions::default()
    })
    .await;
    // The probe itself can tell: an unknown path is the fallback, a wrong method a 405.
    let (status, _, body) = send(&router, "GET", "/api/v1/nothing-here", Some(A)).await;
    assert!(is_the_fallback(status, &body), "{status} {body}");
    let (status, _, _) = send(&router, "PATCH", "/api/v1/conferences", Some(A)).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    for (method, template, _) in doc.operations() {
        let path = concrete(&template);
        let (status, _, body) = send(&router, &method, &path, Some(A)).await;
        assert!(
            !is_the_fallback(status, &body) && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {template} is documented but the router does not serve it: {status} {body}"
        );
    }
}

/// Whether the operation requires a key: an application's (or the operator's acting as an
/// application, with `X-App-ID`), or, on the operator's routes, the operator's alone.
fn requires_app_key(doc: &Doc, template: &str, op: &Value) -> bool {
    let security = op["security"].as_array().cloned().unwrap_or_default();
    for scheme in ["app_id", "api_key", "admin_key", "admin_bearer"] {
        assert!(
            doc.root["components"]["securitySchemes"]
                .get(scheme)
                .is_some()
        );
    }
    match security.as_slice() {
        [] => false,
        [operator, bearer] if bearer.get("admin_bearer").is_some() => {
            assert_eq!(operator, &json!({ "admin_key": [] }));
            assert_eq!(bearer, &json!({ "admin_bearer": [] }));
            assert!(BEARER_PATHS.contains(&template), "{template}");
            assert!(OPERATOR_PATHS.contains(&template), "{template}");
            true
        }
        [both, as_app] => {
            assert_eq!(both, &json!({ "app_id": [], "api_key": [] }));
            assert_eq!(as_app, &json!({ "app_id": [], "admin_key": [] }));
            assert!(!OPERATOR_PATHS.contains(&template), "{template}");
            true
        }
        [operator] => {
            assert_eq!(operator, &json!({ "admin_key": [] }));
            assert!(OPERATOR_PATHS.contains(&template), "{template}");
            assert!(!BEARER_PATHS.contains(&template), "{template}");
            true
        }
        other => panic!("unexpected security {other:?}"),
    }
}

#[tokio::test]
async fn auth_is_documented_where_the_router_asks_for_it() {
    let doc = Doc::generated();
    let (_lab, router) = lab(ApiOptions::default()).await;
    for (method, template, op) in doc.operations() {
        let (status, _, body) = send(&router, &method, &concrete(&template), None).await;
        let refused = status == StatusCode::UNAUTHORIZED;
        assert_eq!(
            refused,
            requires_app_key(&doc, &template, op),
            "{method} {template}: without a key the router answers {status} {body}, the \
             document's security says otherwise"
        );
        assert_eq!(
            refused,
            doc.response(op, 401).is_some(),
            "{method} {template}: 401 documented or not, as the router does"
        );
        assert_eq!(
            !refused,
            PUBLIC_PATHS.contains(&template.as_str()),
            "{template}"
        );
    }
}

#[tokio::test]
async fn the_global_limit_and_its_retry_after_are_documented_on_every_app_route() {
    let doc = Doc::generated();
    // One request a minute: the first one spends it, every other one is refused.
    let (_lab, router) = lab(ApiOptions {
        global_rate: 1.0 / 60.0,
        global_burst: 1.0,
        ..ApiOptions::default()
    })
    .await;
    let (status, _, _) = send(&router, "GET", "/api/v1/conferences", Some(A)).await;
    assert_eq!(status, StatusCode::OK);
    for (method, template, op) in doc.operations() {
        let (status, headers, body) = send(&router, &method, &concrete(&template), Some(A)).await;
        if status != StatusCode::TOO_MANY_REQUESTS {
            // The operator is not an application: no per-application rate (its 429s are the
            // wrong-key throttle's and its share's, documented all the same).
            assert!(
                PUBLIC_PATHS.contains(&template.as_str())
                    || OPERATOR_PATHS.contains(&template.as_str()),
                "{method} {template}: {status}"
            );
            assert_eq!(
                doc.response(op, 429).is_some(),
                OPERATOR_PATHS.contains(&template.as_str()),
                "{method} {template}: 429 documented on operator routes only"
            );
            continue;
        }
        assert!(headers.contains_key("retry-after"), "{method} {template}");
        assert_eq!(body["detail"]["group"], "global");
        let documented = doc
            .response(op, 429)
            .unwrap_or_else(|| panic!("{method} {template} answers 429 but does not document it"));
        assert!(
            documented["headers"].get("Retry-After").is_some(),
            "{method} {template}: 429 without Retry-After"
        );
        let schema = &documented["content"]["application/json"]["schema"];
        doc.check(&body, schema)
            .unwrap_or_else(|e| panic!("{method} {template}: {e}"));
    }
}

#[test]
fn the_document_is_well_formed_openapi_3_1() {
    let doc = Doc::generated();
    let root = &doc.root;
    assert_eq!(root["openapi"], "3.1.0");
    assert!(
        root["info"]["title"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    assert!(
        root["info"]["version"]
            .as_str()
            .is_some_and(|v| !v.is_empty())
    );
    // It reads back as an OpenAPI document, unchanged. (utoipa writes "any value" as a schema
    // without `type` but cannot read one back, so those get every type first.)
    let mut typed = root.clone();
    // utoipa's document has no `webhooks` (OpenAPI 3.1's): read apart, below.
    typed.as_object_mut().unwrap().remove("webhooks");
    type_the_typeless(&mut typed);
    let parsed: utoipa::openapi::OpenApi = serde_json::from_value(typed.clone()).unwrap();
    assert_eq!(serde_json::to_value(&parsed).unwrap(), typed);

    let declared_tags: BTreeSet<&str> = root["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    let placeholder = Regex::new(r"\{([^}]+)\}").unwrap();
    let mut ids = BTreeSet::new();
    for (method, template, op) in doc.operations() {
        let here = format!("{method} {template}");
        assert!(template.starts_with('/'), "{here}");
        let id = op["operationId"].as_str().unwrap_or_default();
        assert!(
            !id.is_empty() && ids.insert(id.to_owned()),
            "{here}: operationId {id:?}"
        );
        assert!(
            op["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{here}: summary"
        );
        for tag in op["tags"].as_array().unwrap() {
            assert!(
                declared_tags.contains(tag.as_str().unwrap()),
                "{here}: tag {tag}"
            );
        }
        let in_path: BTreeSet<&str> = placeholder
            .captures_iter(&template)
            .map(|c| c.get(1).unwrap().as_str())
            .collect();
        let params: Vec<&Value> = op["parameters"].as_array().into_iter().flatten().collect();
        let declared: BTreeSet<&str> = params
            .iter()
            .filter(|p| p["in"] == "path")
            .map(|p| {
                assert_eq!(p["required"], true, "{here}: path parameter {p}");
                p["name"].as_str().unwrap()
            })
            .collect();
        assert_eq!(in_path, declared, "{here}: path parameters");
        for p in &params {
            assert!(["path", "query", "header", "cookie"].contains(&p["in"].as_str().unwrap()));
            assert!(
                p.get("schema").is_some(),
                "{here}: parameter without a schema"
            );
        }
        let responses = op["responses"].as_object().unwrap();
        // A WebSocket's success is its upgrade (101).
        assert!(
            responses.keys().any(|s| s.starts_with('2') || s == "101"),
            "{here}: no success answer"
        );
        for (status, response) in responses {
            assert!(
                status.len() == 3 && status.parse::<u16>().is_ok_and(|s| (100..600).contains(&s)),
                "{here}: status {status}"
            );
            let response = doc.resolve(response);
            assert!(
                response["description"].is_string(),
                "{here} {status}: description"
            );
        }
    }
    // Every reference leads somewhere.
    let text = serde_json::to_string(root).unwrap();
    for reference in Regex::new(r#""\$ref":"([^"]+)""#)
        .unwrap()
        .captures_iter(&text)
    {
        doc.pointer(&reference[1]);
    }
}

/// Gives every property schema that accepts any value an explicit list of all types.
fn type_the_typeless(value: &mut Value) {
    const SHAPES: &[&str] = &["type", "$ref", "allOf", "oneOf", "anyOf"];
    match value {
        Value::Object(fields) => {
            if let Some(Value::Object(properties)) = fields.get_mut("properties") {
                for schema in properties.values_mut() {
                    if let Value::Object(s) = schema
                        && !SHAPES.iter().any(|k| s.contains_key(*k))
                    {
                        let all = ["null", "boolean", "object", "array", "number", "string"];
                        s.insert("type".into(), json!(all));
                    }
                }
            }
            fields.values_mut().for_each(type_the_typeless);
        }
        Value::Array(items) => items.iter_mut().for_each(type_the_typeless),
        _ => {}
    }
}

#[test]
fn every_error_status_answers_the_error_body() {
    let doc = Doc::generated();
    for (method, template, op) in doc.operations() {
        for (status, response) in op["responses"].as_object().unwrap() {
            let failure = status.starts_with('4') || status.starts_with('5');
            if !failure || template == "/readyz" {
                continue;
            }
            let schema =
                doc.resolve(&doc.resolve(response)["content"]["application/json"]["schema"]);
            // A 429 is one of two bodies (a limit's or a share's): each is the error body.
            let shapes = match schema["oneOf"].as_array() {
                Some(items) => items.iter().map(|i| doc.resolve(i).clone()).collect(),
                None => vec![schema.clone()],
            };
            for shape in shapes {
                assert_eq!(
                    shape["required"],
                    json!(["success", "error", "detail"]),
                    "{method} {template} {status}"
                );
            }
        }
    }
}

/// The values of a schema's `enum`.
fn enum_values(doc: &Doc, name: &str) -> Vec<String> {
    doc.root["components"]["schemas"][name]["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("{name} has no enum"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// Every variant of a domain enum, by an exhaustive match: a variant added to the domain fails
/// to compile here, so its mirror in `src/api/openapi/schemas.rs` is revisited.
macro_rules! mirrors {
    ($doc:expr, $name:literal, $domain:ident, [$($variant:ident),+ $(,)?]) => {{
        let _exhaustive = |v: $domain| match v {
            $($domain::$variant)|+ => (),
        };
        let domain: Vec<String> = vec![$(
            serde_json::to_value($domain::$variant).unwrap().as_str().unwrap().to_owned()
        ),+];
        assert_eq!(enum_values($doc, $name), domain, "{}", $name);
    }};
}

#[test]
fn the_mirrored_vocabularies_match_the_domain() {
    use switchyard::conference::{
        MemberStatus, PlaybackStatus, RecordingStatus, RoomStatus, RoomType, SessionState,
    };
    use switchyard::rooms::CooldownGroup;
    let doc = &Doc::generated();
    mirrors!(doc, "RoomType", RoomType, [Conference, Connect]);
    mirrors!(
        doc,
        "RoomStatus",
        RoomStatus,
        [Starting, Progressing, Terminating, Terminated]
    );
    mirrors!(
        doc,
        "MemberStatus",
        MemberStatus,
        [Joining, Joined, Leaving, Leaved]
    );
    mirrors!(
        doc,
        "PlaybackStatus",
        PlaybackStatus,
        [Playing, Paused, Stopped]
    );
    mirrors!(
        doc,
        "RecordingStatus",
        RecordingStatus,
        [Initiating, Recording, Paused, Stopping, Ended]
    );
    mirrors!(
        doc,
        "SessionState",
        SessionState,
        [Ringing, Answered, Parked, Active, Ended]
    );
    // The delivery log's outcomes, as attempts carry them and `outcome=` filters on them.
    use switchyard::telemetry::WebhookOutcome;
    mirrors!(
        doc,
        "DeliveryOutcome",
        WebhookOutcome,
        [Delivered, Retry, DeadLetter]
    );
    let groups = |g: CooldownGroup| match g {
        CooldownGroup::ConfPlay
        | CooldownGroup::ConferenceControl
        | CooldownGroup::Conference
        | CooldownGroup::ConferenceMute
        | CooldownGroup::ConferenceDeaf
        | CooldownGroup::ConferenceHold
        | CooldownGroup::ConferenceAnnounce
        | CooldownGroup::ConferenceCoach
        | CooldownGroup::ConferenceAudio
        | CooldownGroup::ConferenceDialout => g.as_str(),
    };
    // `global` and `auth_failures` are the admission's, the rest the cooldowns.
    let mut expected = vec!["global".to_owned(), "auth_failures".to_owned()];
    expected.extend(
        [
            CooldownGroup::ConfPlay,
            CooldownGroup::ConferenceControl,
            CooldownGroup::Conference,
            CooldownGroup::ConferenceMute,
            CooldownGroup::ConferenceDeaf,
            CooldownGroup::ConferenceHold,
            CooldownGroup::ConferenceAnnounce,
            CooldownGroup::ConferenceCoach,
            CooldownGroup::ConferenceAudio,
            CooldownGroup::ConferenceDialout,
        ]
        .map(|g| groups(g).to_owned()),
    );
    assert_eq!(enum_values(doc, "RateLimitGroup"), expected);
}

#[tokio::test]
async fn the_document_is_served_as_committed() {
    let (_lab, router) = lab(ApiOptions::default()).await;
    let request = Request::builder()
        .uri("/api/v1/openapi.json")
        .body(Body::empty())
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(bytes, openapi::to_json().unwrap().as_bytes());
}

/// Every event the domain names (`#[serde(rename = "…")]` in src/conference/events.rs) is a
/// webhook of the document, and nothing else is: a POST whose body is the envelope with that
/// `type` and a data schema the document has.
#[test]
fn every_event_kind_is_a_documented_webhook() {
    let doc = Doc::generated();
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/conference/events.rs"),
    )
    .unwrap();
    let named: BTreeSet<String> = Regex::new(r#"#\[serde\(rename = "(conference\.[a-z._]+)"\)\]"#)
        .unwrap()
        .captures_iter(&source)
        .map(|c| c[1].to_owned())
        .collect();
    assert!(named.len() >= 40, "{named:?}");
    let hooks = doc.root["webhooks"].as_object().unwrap();
    let documented: BTreeSet<String> = hooks.keys().cloned().collect();
    assert_eq!(documented, named);
    let mut ids = BTreeSet::new();
    for (name, hook) in hooks {
        let post = &hook["post"];
        assert!(
            ids.insert(post["operationId"].as_str().unwrap().to_owned()),
            "{name}"
        );
        let body = &post["requestBody"]["content"]["application/json"]["schema"]["allOf"];
        assert_eq!(
            body[1]["properties"]["type"]["enum"],
            json!([name]),
            "{name}"
        );
        let data = body[1]["properties"]["data"]["$ref"].as_str().unwrap();
        assert!(doc.pointer(data).is_object(), "{name}: {data}");
        assert_eq!(body[0]["$ref"], "#/components/schemas/WebhookEnvelope");
        for header in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            assert!(
                post["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["name"] == header && p["in"] == "header"),
                "{name}: {header}"
            );
        }
    }
}

/// The operations that take a query parameter named `name`.
fn taking_query<'a>(doc: &'a Doc, name: &str) -> Vec<(String, String, &'a Value)> {
    doc.operations()
        .into_iter()
        .filter(|(_, _, op)| {
            op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query" && p["name"] == name))
        })
        .collect()
}

/// Every listing that pages with a signed token (`cursor`, or `page_token` on `/v1.0`) answers
/// a forged one with 400, and its document says so (issue 60: Schemathesis found these 400s,
/// which its runs avoid by pinning the tokens to the first page, `scripts/schemathesis.toml`).
#[tokio::test]
async fn a_forged_page_token_is_a_documented_400() {
    let doc = Doc::generated();
    let lab = common::api::TestLab::start(MemoryStore::new(), options()).await;
    let room = lab.room(A, "paged").await;
    let mut refused = BTreeSet::new();
    for name in ["cursor", "page_token"] {
        for (method, template, op) in taking_query(&doc, name) {
            let path = template.replace("{room_id}", &room);
            assert!(
                !path.contains('{'),
                "{method} {template}: give this test a value for its path"
            );
            let r = lab
                .req(&method, &format!("{path}?{name}=forged"), Some(A), None)
                .await;
            assert_eq!(
                r.status,
                StatusCode::BAD_REQUEST,
                "{method} {template}: {r:?}"
            );
            assert_eq!(
                r.body["error"],
                format!("Invalid {name}"),
                "{method} {template}: {r:?}"
            );
            let documented = doc.response(op, 400).unwrap_or_else(|| {
                panic!("{method} {template} answers a forged {name} with 400, undocumented")
            });
            doc.check(
                &r.body,
                &documented["content"]["application/json"]["schema"],
            )
            .unwrap_or_else(|e| panic!("{method} {template}: {e}"));
            refused.insert(format!("{method} {template}"));
        }
    }
    for paged in [
        "GET /api/v1/conferences",
        "GET /api/v1/conferences/{room_id}/members",
        "GET /api/v1/sessions",
        "GET /api/v1/webhooks/deliveries",
        "GET /v1.0/conferences",
    ] {
        assert!(
            refused.contains(paged),
            "{paged} takes no page token: {refused:?}"
        );
    }
}

/// Whether a schema (its `$ref`s and `allOf`/`oneOf`/`anyOf` followed) has a property `name`.
fn has_property(doc: &Doc, schema: &Value, name: &str) -> bool {
    let schema = doc.resolve(schema);
    schema["properties"].get(name).is_some()
        || ["allOf", "oneOf", "anyOf"].iter().any(|k| {
            schema[*k]
                .as_array()
                .is_some_and(|items| items.iter().any(|s| has_property(doc, s, name)))
        })
}

/// Every operation whose body takes a `command_uid` documents the 422 of a key already used for
/// a different request, with the error body (issue 60: Schemathesis's stateful phase reuses
/// keys, and is told that 422 is by design in `scripts/schemathesis.toml`).
#[test]
fn every_command_uid_documents_the_422_of_a_key_used_for_another_request() {
    let doc = Doc::generated();
    let mut keyed = BTreeSet::new();
    for (method, template, op) in doc.operations() {
        let body = &op["requestBody"]["content"]["application/json"]["schema"];
        if !has_property(&doc, body, "command_uid") {
            continue;
        }
        let documented = doc.response(op, 422).unwrap_or_else(|| {
            panic!("{method} {template} takes a command_uid but documents no 422")
        });
        let description = documented["description"].as_str().unwrap_or_default();
        assert!(
            description.contains("command_uid was already used for a different request"),
            "{method} {template}: its 422 does not say what a reused command_uid gets: \
             {description}"
        );
        let schema = doc.resolve(&documented["content"]["application/json"]["schema"]);
        assert_eq!(
            schema["required"],
            json!(["success", "error", "detail"]),
            "{method} {template}"
        );
        keyed.insert(format!("{method} {template}"));
    }
    let mut expected: Vec<String> = [
        "hangup",
        "conference/join",
        "conference/leave",
        "conference/mute",
        "conference/unmute",
        "conference/deaf",
        "conference/undeaf",
        "conference/hold",
        "conference/unhold",
        "conference/announce",
        "conference/coach",
        "conference/uncoach",
        "conference/audio",
        "conference/move",
    ]
    .iter()
    .map(|c| format!("POST /api/v1/sessions/{{uuid}}/commands/{c}"))
    .collect();
    expected.push("POST /api/v1/conferences/{room_id}/participants".into());
    for op in expected {
        assert!(keyed.contains(&op), "{op} takes no command_uid: {keyed:?}");
    }
}
