//! The OpenAPI 3.1 document of the HTTP surface, generated from the code with utoipa: each
//! handler carries its `#[utoipa::path]` (operation, parameters, body, statuses), the shapes
//! of the answers are in [`schemas`] and [`errors`], the parameters in [`params`], and
//! [`document`] assembles them. It is served at `GET /api/v1/openapi.json`, printed by
//! `switchyard openapi`, and committed as `openapi.json`; `tests/api/openapi.rs` and
//! `tests/api/openapi_answers.rs` fail when the committed file, the router or the answers
//! drift from it.
//!
//! What every application route shares is added here, once, rather than on each handler: the
//! `X-App-ID` + `X-API-Key` requirement, 401 (admission and the [`super::Caller`]
//! extractor), 429 with `Retry-After` (the global per-application limit, the wrong-key
//! throttle, an app's share of requests or streams, its quotas), 500/503 (the store), and on
//! routes that read a body, 408 (admission's body time limit), 413 and 415 (the
//! [`super::extract::JsonBody`] extractor).

pub mod errors;
pub mod hooks;
pub mod params;
pub mod schemas;

use std::sync::LazyLock;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::openapi::request_body::RequestBody;
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Components, OpenApi as Document, PathItem, Ref, RefOr, Required};
use utoipa::{Modify, OpenApi};

use super::{ApiError, ApiState};
use super::{
    announce, coach, conferences, drain, events, health, lab, metrics, nodes, participants,
    playback, recordings, resource, sessions, streams, switches, webhooks,
};
use crate::store::Store;

/// The routes that need no key (a listen-in's socket is opened with its ticket instead).
pub const PUBLIC_PATHS: &[&str] = &[
    "/healthz",
    "/readyz",
    "/api/v1/openapi.json",
    "/api/v1/listen/{ticket}",
];

/// The routes that take the operator's key (`X-Admin-Key`) rather than an application's.
pub const OPERATOR_PATHS: &[&str] = &[
    "/api/v1/operator/overview",
    "/api/v1/operator/nodes/{node}/drain",
    "/api/v1/operator/nodes/{node}/undrain",
    "/metrics",
];

/// The operator's routes that also take its key as `Authorization: Bearer`, what a scraper
/// (Prometheus's `authorization` setting) sends.
pub const BEARER_PATHS: &[&str] = &["/metrics"];

/// The answers every route that reads a body can give besides its own, by status.
const BODY_RESPONSES: &[(&str, &str)] = &[
    ("408", "RequestTimeout"),
    ("413", "PayloadTooLarge"),
    ("415", "UnsupportedMediaType"),
];

/// The answers every application route can give besides its own, by status.
const COMMON_RESPONSES: &[(&str, &str)] = &[
    ("401", "Unauthorized"),
    ("429", "RateLimited"),
    ("500", "Internal"),
    ("503", "Unavailable"),
];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchyard",
        description = "Conference rooms on FreeSWITCH media nodes: the REST API of seed 004 \
            under `/api/v1`, the conference resource of seeds 000–003 under `/v1.0`, and the \
            operations endpoints. Every failure answers `{\"success\": false, \"error\": \
            \"...\", \"detail\": ...}`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        conferences::create,
        conferences::list,
        conferences::show,
        conferences::destroy,
        conferences::members,
        conferences::lock,
        conferences::unlock,
        super::metadata::room,
        super::metadata::member,
        super::moderation::mute_all,
        super::moderation::unmute_all,
        super::levels::audio,
        super::moving::move_member,
        participants::dial,
        playback::play,
        playback::pause,
        playback::stop,
        playback::volume,
        streams::start,
        streams::list,
        streams::show,
        streams::stop,
        super::listen::listen,
        super::listen::open,
        recordings::start,
        recordings::stop,
        recordings::pause,
        recordings::resume,
        recordings::show,
        recordings::file,
        recordings::delete_recording,
        recordings::conferencecall,
        recordings::kick,
        sessions::list,
        sessions::show,
        sessions::hangup,
        sessions::join,
        sessions::leave,
        switches::mute,
        switches::unmute,
        switches::deaf,
        switches::undeaf,
        switches::hold,
        switches::unhold,
        announce::announce,
        coach::coach,
        coach::uncoach,
        resource::list,
        resource::create,
        resource::show,
        resource::destroy,
        resource::recording_start,
        resource::recording_stop,
        resource::conferencecall,
        resource::kick,
        resource::recording,
        events::list,
        events::stream,
        webhooks::list,
        webhooks::retry,
        lab::call,
        lab::hang_up,
        lab::talk,
        health::healthz,
        health::ready,
        nodes::nodes,
        nodes::overview,
        drain::drain,
        drain::undrain,
        metrics::exposition,
        openapi_json,
    ),
    components(schemas(errors::ErrorBody, errors::RateLimitError, errors::ShareError, errors::RateLimitAnswer), responses(
        errors::BadRequest,
        errors::Unauthorized,
        errors::Forbidden,
        errors::NotFound,
        errors::Conflict,
        errors::RateLimited,
        errors::NodeRejected,
        errors::Unavailable,
        errors::NodeTimeout,
        errors::Internal,
        errors::Unprocessable,
        errors::PayloadTooLarge,
        errors::UnsupportedMediaType,
        errors::RequestTimeout,
    )),
    modifiers(&AppAuth, &RequestIds),
    tags(
        (name = "conferences", description = "Rooms of the application (seed 004): create, \
            list, read, members, delete, playback."),
        (name = "sessions", description = "The application's calls and the commands that move \
            them in and out of rooms. Commands take an optional `command_uid`: a repeat within \
            10 minutes gets the first answer and sends nothing."),
        (name = "recordings", description = "Recording a room, reading recordings and \
            downloading their files."),
        (name = "streams", description = "Live audio of a room (or one member) to and from a \
            WebSocket server of the application: Twilio Media Streams or L16 frames, for voice \
            AI, captions and listening in."),
        (name = "conferencecalls", description = "Participations of sessions in rooms: read \
            one, or kick it out of its room."),
        (name = "v1.0", description = "The conference resource of seeds 000–003, in their \
            JSON shapes."),
        (name = "events", description = "The event feed: the app's events (what webhooks \
            deliver) in order, paged or streamed, to catch up after missed webhooks."),
        (name = "webhooks", description = "The delivery log of the app's webhooks, and \
            sending a dead-lettered one again."),
        (name = "lab", description = "Only in `switchyard lab` (absent from `switchyard \
            serve`): calls into the simulated nodes."),
        (name = "operations", description = "Liveness, readiness, metrics and this document; \
            no application key (metrics take the operator's)."),
    )
)]
struct ApiDoc;

/// Adds the application-key requirement and the shared answers to every route that is not
/// public (see the module documentation).
struct AppAuth;

impl Modify for AppAuth {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Components::new);
        for (name, header, what) in [
            ("app_id", "X-App-ID", "The application's id, as configured."),
            ("api_key", "X-API-Key", "The application's key."),
            (
                "admin_key",
                "X-Admin-Key",
                "The operator's key (`admin_key_sha256`): with `X-App-ID`, acts as that \
                 application; alone, reads the operator's overview.",
            ),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(header, what))),
            );
        }
        components.add_security_scheme("admin_bearer", admin_bearer());
        let both = SecurityRequirement::new("app_id", Vec::<String>::new())
            .add("api_key", Vec::<String>::new());
        let operator_as_app = SecurityRequirement::new("app_id", Vec::<String>::new())
            .add("admin_key", Vec::<String>::new());
        let operator = SecurityRequirement::new("admin_key", Vec::<String>::new());
        let bearer = SecurityRequirement::new("admin_bearer", Vec::<String>::new());
        for (path, item) in doc.paths.paths.iter_mut() {
            if PUBLIC_PATHS.contains(&path.as_str()) {
                continue;
            }
            let by_operator = OPERATOR_PATHS.contains(&path.as_str());
            let security = match (by_operator, BEARER_PATHS.contains(&path.as_str())) {
                (true, true) => vec![operator.clone(), bearer.clone()],
                (true, false) => vec![operator.clone()],
                (false, _) => vec![both.clone(), operator_as_app.clone()],
            };
            for op in operations(item) {
                op.security = Some(security.clone());
                if let Some(body) = &mut op.request_body {
                    absent_not_null(body);
                    for (status, response) in BODY_RESPONSES {
                        op.responses
                            .responses
                            .entry((*status).to_owned())
                            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(*response)));
                    }
                }
                // The operator has no per-application rate, but shares an address's
                // wrong-key throttle and holds a share of the requests in progress.
                for (status, response) in COMMON_RESPONSES {
                    op.responses
                        .responses
                        .entry((*status).to_owned())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(*response)));
                }
            }
        }
    }
}

/// The operator's key as a bearer token (`Authorization: Bearer <key>`), on [`BEARER_PATHS`].
fn admin_bearer() -> SecurityScheme {
    let mut http = Http::new(HttpAuthScheme::Bearer);
    http.description = Some(
        "The operator's key (`admin_key_sha256`) as a bearer token, as Prometheus's \
         `authorization` scrape setting sends it; on `/metrics` only."
            .into(),
    );
    SecurityScheme::Http(http)
}

/// Every operation takes an optional `X-Request-Id` and every answer carries one (see
/// [`crate::api::request_id`]).
struct RequestIds;

impl Modify for RequestIds {
    fn modify(&self, doc: &mut Document) {
        use utoipa::openapi::header::Header;
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::schema::ObjectBuilder;
        // Any string: one that is not a sane id is replaced, not refused.
        let string = || {
            RefOr::T(Schema::Object(
                ObjectBuilder::new()
                    .schema_type(SchemaType::Type(Type::String))
                    .build(),
            ))
        };
        let mut header = Header::new(string());
        header.description = Some(
            "The request's id: the caller's `X-Request-Id` when it is sane, else a new one. Log \
             lines about the request carry it."
                .into(),
        );
        let param = ParameterBuilder::new()
            .name("X-Request-Id")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "Your id for the request, echoed in the answer's `X-Request-Id` when it is sane \
                 (1 to 128 visible ASCII characters); otherwise (or when absent) a new one is \
                 made. Never refused.",
            ))
            .schema(Some(string()))
            .build();
        for item in doc.paths.paths.values_mut() {
            for op in operations(item) {
                op.parameters
                    .get_or_insert_with(Vec::new)
                    .push(param.clone());
                for response in op.responses.responses.values_mut() {
                    if let RefOr::T(response) = response {
                        response
                            .headers
                            .insert("X-Request-Id".into(), header.clone());
                    }
                }
            }
        }
        if let Some(components) = doc.components.as_mut() {
            for response in components.responses.values_mut() {
                if let RefOr::T(response) = response {
                    response
                        .headers
                        .insert("X-Request-Id".into(), header.clone());
                }
            }
        }
    }
}

/// utoipa writes an optional request body (`Option<T>`) as "`null` or `T`"; the handlers take
/// an absent body as `{}` but refuse a `null` one, so the schema becomes `T`, not required.
fn absent_not_null(body: &mut RequestBody) {
    if body.required == Some(Required::True) {
        return;
    }
    for content in body.content.values_mut() {
        if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema
            && let [null, only] = one_of.items.as_slice()
            && is_null(null)
        {
            content.schema = Some(only.clone());
        }
    }
}

fn is_null(schema: &RefOr<Schema>) -> bool {
    matches!(schema, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null))
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// The document, as the code describes the API now.
pub fn document() -> Document {
    ApiDoc::openapi()
}

/// The document as `openapi.json` holds it: pretty-printed, keys in a stable order, with a
/// final newline.
pub fn to_json() -> Result<String, serde_json::Error> {
    let mut doc = serde_json::to_value(document())?;
    hooks::add_to(&mut doc);
    let mut text = serde_json::to_string_pretty(&doc)?;
    text.push('\n');
    Ok(text)
}

static JSON: LazyLock<Result<String, String>> =
    LazyLock::new(|| to_json().map_err(|e| e.to_string()));

pub fn routes<S: Store>() -> Router<ApiState<S>> {
    Router::new().route("/api/v1/openapi.json", get(openapi_json))
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    summary = "This OpenAPI document",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
async fn openapi_json() -> Result<Response, ApiError> {
    match &*JSON {
        Ok(text) => Ok(([(CONTENT_TYPE, "application/json")], text.clone()).into_response()),
        Err(e) => Err(ApiError::Internal(e.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request id is documented where it is: a header every operation takes and every
    /// answer (its own, or a shared one) carries.
    #[test]
    fn every_operation_documents_the_request_id() {
        let doc = document();
        let shared = doc.components.as_ref().map(|c| &c.responses);
        let mut operations_seen = 0;
        for item in doc.paths.paths.clone().values_mut() {
            for op in operations(item) {
                operations_seen += 1;
                let params = op.parameters.as_deref().unwrap_or_default();
                assert!(
                    params.iter().any(|p| p.name == "X-Request-Id"),
                    "{:?} takes no X-Request-Id",
                    op.operation_id
                );
                for (status, response) in &op.responses.responses {
                    let headers = match response {
                        RefOr::T(r) => &r.headers,
                        RefOr::Ref(r) => {
                            let name = r.ref_location.rsplit('/').next().unwrap_or_default();
                            match shared.and_then(|s| s.get(name)) {
                                Some(RefOr::T(r)) => &r.headers,
                                _ => panic!("{status}: unknown shared response {name}"),
                            }
                        }
                    };
                    assert!(
                        headers.contains_key("X-Request-Id"),
                        "{:?} {status} carries no X-Request-Id",
                        op.operation_id
                    );
                }
            }
        }
        assert!(operations_seen > 40, "{operations_seen} operations");
    }
}
