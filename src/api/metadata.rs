//! `PATCH /api/v1/conferences/{room_id}` and `PATCH …/members/{uuid}`: the application's own
//! data about a room or a member (`metadata`), replaced whole.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::patch;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::conferences::{room_id, room_view};
use super::extract::{IdPath, JsonBody, PairPath, metadata};
use super::openapi::errors::{BadRequest, Forbidden, NotFound};
use super::openapi::params::{RoomPath, SessionPath};
use super::openapi::schemas as doc;
use super::{ApiError, ApiState, Caller, views};
use crate::conference::SessionId;
use crate::store::Store;

pub fn routes<S: Store>() -> Router<ApiState<S>> {
    Router::new()
        .route("/api/v1/conferences/{room_id}", patch(room::<S>))
        .route(
            "/api/v1/conferences/{room_id}/members/{uuid}",
            patch(member::<S>),
        )
}

/// What a `PATCH` changes: the metadata, replaced whole.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetadataBody {
    /// A JSON object of at most 4096 bytes serialized, or `null` to clear it.
    #[schema(value_type = Option<Object>)]
    #[serde(default)]
    metadata: Option<Value>,
}

#[utoipa::path(
    patch,
    path = "/api/v1/conferences/{room_id}",
    operation_id = "conferences_update",
    tag = "conferences",
    summary = "Change a room's metadata",
    description = "Replaces the application's data about the room (`null` clears it). \
        Webhook: `conference.metadata.updated` (`uuid` null), once, when it changed; every \
        later webhook about the room carries it as `room_metadata`.",
    params(RoomPath),
    request_body = MetadataBody,
    responses(
        (status = 200, description = "The room", body = doc::ConferenceDetail),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = super::openapi::errors::Conflict),
    )
)]
async fn room<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(body): JsonBody<MetadataBody>,
) -> Result<Response, ApiError> {
    let id = room_id(&raw)?;
    let metadata = metadata(body.metadata)?;
    let room = st.rooms().set_room_metadata(&app, &id, metadata).await?;
    Ok(Json(room_view(&room)).into_response())
}

#[utoipa::path(
    patch,
    path = "/api/v1/conferences/{room_id}/members/{uuid}",
    operation_id = "conferences_update_member",
    tag = "conferences",
    summary = "Change a member's metadata",
    description = "Replaces the application's data about the session's participation in the \
        room (`null` clears it); 404 when the session is not in the room. Webhook: \
        `conference.metadata.updated` (the member's data), once, when it changed; every later \
        webhook about the member carries it as `metadata`.",
    params(RoomPath, SessionPath),
    request_body = MetadataBody,
    responses(
        (status = 200, description = "The member", body = doc::MemberView),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = super::openapi::errors::Conflict),
    )
)]
async fn member<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    PairPath(raw_room, raw_session): PairPath,
    JsonBody(body): JsonBody<MetadataBody>,
) -> Result<Response, ApiError> {
    let id = room_id(&raw_room)?;
    let session = SessionId::parse(&raw_session)
        .map_err(|_| ApiError::NotFound("Member not found".into()))?;
    let metadata = metadata(body.metadata)?;
    let member = st
        .rooms()
        .set_member_metadata(&app, &id, &session, metadata)
        .await?;
    Ok(Json(views::member(&member)).into_response())
}
