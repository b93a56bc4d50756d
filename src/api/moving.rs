//! `POST /api/v1/sessions/{uuid}/commands/conference/move`: a member to another room of the
//! application in one step (breakout rooms), told by one `conference.member.moved`.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::conferences::room_id;
use super::extract::{IdPath, JsonBody};
use super::openapi::errors::{BadRequest, Conflict, Forbidden, NotFound, Unprocessable};
use super::openapi::errors::{NodeRejected, NodeTimeout, RateLimited, Unavailable};
use super::openapi::params::SessionPath;
use super::openapi::schemas as doc;
use super::sessions::{once, session_id};
use super::{ApiError, ApiState, Caller};
use crate::store::Store;

pub fn routes<S: Store>() -> Router<ApiState<S>> {
    Router::new().route(
        "/api/v1/sessions/{uuid}/commands/conference/move",
        post(move_member::<S>),
    )
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MoveBody {
    /// The room to move to: another room of the same application, on any node.
    #[schema(
        pattern = r"^[A-Za-z0-9]{5}-room-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        example = "acW68-room-550e8400-e29b-41d4-a716-446655440000"
    )]
    room_id: String,
    /// Muted in the new room; default: as the member is now.
    muted: Option<bool>,
    /// As for every session command: an idempotency key.
    #[schema(min_length = 1, max_length = 128)]
    command_uid: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/sessions/{uuid}/commands/conference/move",
    operation_id = "sessions_move",
    tag = "sessions",
    summary = "Move a member to another room",
    description = "The call goes straight from its room to `room_id` (on one node \
        `uuid_transfer … conference:<room> inline`: no park between; across nodes, as a join \
        across nodes is bridged), keeping its moderator and end-on-exit flags, its metadata, \
        its deafness and its levels, muted as asked (default: as it is). One \
        `conference.member.moved` (`from_room`, `to_room`, the member in its new room with a \
        new `conferencecall_id`) once the node has it there; nothing is told by the room it \
        left. A move that does not reach the new room ends with \
        `conference.member.join_failed` there. 404 when the session is in no room; 409 while \
        joining or leaving, held, already in that room, or when that room is locked, full or \
        not live; 503 while either room moves to another node. Rate limit: `conference`, \
        shared with join and leave.",
    params(SessionPath),
    request_body = MoveBody,
    responses(
        (status = 202, description = "Moving", body = doc::MoveAnswer),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        (status = 429, response = RateLimited),
        (status = 502, response = NodeRejected),
        (status = 503, response = Unavailable),
        (status = 504, response = NodeTimeout),
    )
)]
async fn move_member<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(body): JsonBody<MoveBody>,
) -> Result<Response, ApiError> {
    let id = session_id(&raw)?;
    let to = room_id(&body.room_id)?;
    let request = format!("conference/move room_id={to} muted={:?}", body.muted);
    let muted = body.muted;
    once(&st, &app, &id, body.command_uid, request, |uid| async {
        let from = st.rooms().move_member(&app, &id, &to, muted, uid).await?;
        Ok((
            StatusCode::ACCEPTED,
            json!({ "status": "moving", "room_id": to, "from_room": from }),
        ))
    })
    .await
}
