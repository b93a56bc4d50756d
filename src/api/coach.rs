//! Coaching (whisper): `POST …/conference/coach` makes the session's member heard by one other
//! member of its room alone (it still hears everyone); `POST …/conference/uncoach` makes it
//! heard by everyone again. The node has no event for either: the answer comes when the node
//! has applied it, and `conference.member.coaching` tells it.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::extract::{IdPath, JsonBody};
use super::openapi::errors::{BadRequest, Conflict, Forbidden, NotFound, Unprocessable};
use super::openapi::errors::{NodeRejected, NodeTimeout, RateLimited};
use super::openapi::params::SessionPath;
use super::openapi::schemas as doc;
use super::sessions::{CommandBody, once, session_id};
use super::{ApiError, ApiState, Caller};
use crate::store::Store;

pub fn routes<S: Store>() -> Router<ApiState<S>> {
    let cmd = "/api/v1/sessions/{uuid}/commands/conference";
    Router::new()
        .route(&format!("{cmd}/coach"), post(coach::<S>))
        .route(&format!("{cmd}/uncoach"), post(uncoach::<S>))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CoachBody {
    /// The session whose member alone hears this one: a member of the same room.
    #[schema(
        pattern = r"^[A-Za-z0-9]{5}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        example = "acW68-0b3c2a54-6f7e-4f4c-9a51-2d3f4b5c6d7e"
    )]
    member: String,
    /// As for every session command: an idempotency key.
    #[schema(min_length = 1, max_length = 128)]
    command_uid: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/sessions/{uuid}/commands/conference/coach",
    operation_id = "sessions_coach",
    tag = "sessions",
    summary = "Make a member heard by one other member alone (coach, whisper)",
    description = "The session's member is heard only by `member`'s (everyone else in the room, \
        and whoever joins later, stops hearing it; the room's recording still does); it hears \
        everyone. 404 when the session is in no room; 409 while joining, when `member` is not a \
        member of the same room, is the session itself, or is already the one coached. Rate \
        limit: `conference_coach`, 2 s per session, shared with uncoach. Webhook: \
        `conference.member.coaching` with `coaching` (the coached session).",
    params(SessionPath),
    request_body = CoachBody,
    responses(
        (status = 200, description = "Coaching", body = doc::CoachAnswer),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        (status = 429, response = RateLimited),
        (status = 502, response = NodeRejected),
        (status = 504, response = NodeTimeout),
    )
)]
async fn coach<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(body): JsonBody<CoachBody>,
) -> Result<Response, ApiError> {
    let id = session_id(&raw)?;
    let target = session_id(&body.member).map_err(|_| {
        ApiError::bad_request_with(
            "Invalid member: a session id",
            json!({ "member": body.member.chars().take(128).collect::<String>() }),
        )
    })?;
    let request = format!("conference/coach {target}");
    once(&st, &app, &id, body.command_uid, request, |_| async {
        let room = st.rooms().coach(&app, &id, Some(&target)).await?;
        Ok((
            StatusCode::OK,
            json!({ "status": "coaching", "room_id": room, "coaching": target }),
        ))
    })
    .await
}

#[utoipa::path(
    post,
    path = "/api/v1/sessions/{uuid}/commands/conference/uncoach",
    operation_id = "sessions_uncoach",
    tag = "sessions",
    summary = "Make a coaching member heard by everyone again",
    description = "404 when the session is in no room; 409 when it is not coaching. Rate limit: \
        `conference_coach`, shared with coach. Webhook: `conference.member.coaching` with \
        `coaching: null`.",
    params(SessionPath),
    request_body(content = Option<CommandBody>, description = "Nothing, `{}`, or a `command_uid`"),
    responses(
        (status = 200, description = "Heard by everyone", body = doc::UncoachAnswer),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        (status = 429, response = RateLimited),
        (status = 502, response = NodeRejected),
        (status = 504, response = NodeTimeout),
    )
)]
async fn uncoach<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(body): JsonBody<CommandBody>,
) -> Result<Response, ApiError> {
    let id = session_id(&raw)?;
    once(
        &st,
        &app,
        &id,
        body.command_uid,
        "conference/uncoach".into(),
        |_| async {
            let room = st.rooms().coach(&app, &id, None).await?;
            Ok((
                StatusCode::OK,
                json!({ "status": "heard_by_all", "room_id": room }),
            ))
        },
    )
    .await
}
