//! `POST /api/v1/conferences/{room_id}/mute_all` and `/unmute_all`: a moderator's controls
//! over a whole room.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::conferences::room_id;
use super::extract::{IdPath, JsonBody};
use super::openapi::errors::{
    BadRequest, Conflict, Forbidden, NodeRejected, NodeTimeout, NotFound,
};
use super::openapi::params::RoomPath;
use super::{ApiError, ApiState, Caller};
use crate::conference::SessionId;
use crate::store::Store;

pub fn routes<S: Store>() -> Router<ApiState<S>> {
    Router::new()
        .route(
            "/api/v1/conferences/{room_id}/mute_all",
            post(mute_all::<S>),
        )
        .route(
            "/api/v1/conferences/{room_id}/unmute_all",
            post(unmute_all::<S>),
        )
}

/// Whom a room-wide mute leaves alone besides the moderators.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct AllBody {
    /// Sessions (members of the room) to leave as they are; at most 1000.
    #[serde(default)]
    #[schema(max_items = 1000)]
    except: Vec<SessionRef>,
}

/// A session id, `{5-character node prefix}-{channel uuid}`.
#[derive(Deserialize, ToSchema)]
#[schema(
    pattern = r"^[A-Za-z0-9]{5}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
    example = "acW68-28ec5c5e-0cdb-4582-983d-48f16177e7f7"
)]
pub struct SessionRef(String);

/// The members a room-wide mute or unmute asked the node to switch.
#[derive(Serialize, ToSchema)]
pub struct AllAnswer {
    pub room_id: String,
    /// Their sessions; each is announced (`conference.member.muted` / `unmuted`) once the node
    /// confirms it.
    pub sessions: Vec<String>,
}

const MAX_EXCEPT: usize = 1000;

fn except(body: AllBody) -> Result<Vec<SessionId>, ApiError> {
    if body.except.len() > MAX_EXCEPT {
        return Err(ApiError::bad_request(
            "Invalid except: at most 1000 sessions",
        ));
    }
    body.except
        .iter()
        .map(|SessionRef(s)| {
            SessionId::parse(s).map_err(|_| {
                ApiError::bad_request_with(
                    "Invalid except: session ids",
                    json!({ "uuid": s.chars().take(100).collect::<String>() }),
                )
            })
        })
        .collect()
}

async fn switch_all<S: Store>(
    st: &ApiState<S>,
    app: &crate::conference::AppId,
    raw: &str,
    mute: bool,
    body: Option<AllBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = room_id(raw)?;
    let except = except(body.unwrap_or_default())?;
    let asked = st.rooms().mute_all(app, &id, mute, &except).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "room_id": id, "sessions": asked })),
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/conferences/{room_id}/mute_all",
    operation_id = "conferences_mute_all",
    tag = "conferences",
    summary = "Mute every member but the moderators",
    description = "Mutes each member of the room in it now that is not a moderator, not named \
        in `except` and not muted already (as last asked), as its own mute would. Webhook: \
        `conference.member.muted`, once per member, as the node confirms.",
    params(RoomPath),
    request_body(content = Option<AllBody>, description = "Nothing, `{}`, or `{\"except\": [uuid…]}`"),
    responses(
        (status = 202, description = "Asked", body = AllAnswer),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 502, response = NodeRejected),
        (status = 504, response = NodeTimeout),
    )
)]
async fn mute_all<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(body): JsonBody<Option<AllBody>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    switch_all(&st, &app, &raw, true, body).await
}

#[utoipa::path(
    post,
    path = "/api/v1/conferences/{room_id}/unmute_all",
    operation_id = "conferences_unmute_all",
    tag = "conferences",
    summary = "Unmute every member but the moderators",
    description = "Unmutes each member of the room in it now that is not a moderator, not named \
        in `except` and not unmuted already (as last asked). Webhook: \
        `conference.member.unmuted`, once per member, as the node confirms.",
    params(RoomPath),
    request_body(content = Option<AllBody>, description = "Nothing, `{}`, or `{\"except\": [uuid…]}`"),
    responses(
        (status = 202, description = "Asked", body = AllAnswer),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 502, response = NodeRejected),
        (status = 504, response = NodeTimeout),
    )
)]
async fn unmute_all<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(body): JsonBody<Option<AllBody>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    switch_all(&st, &app, &raw, false, body).await
}
