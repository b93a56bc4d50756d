//! `POST /api/v1/operator/nodes/{node}/drain` and `…/undrain`: the operator takes a media node
//! out of service for maintenance, and back. See `rooms/drain.rs`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{IdPath, JsonBody, iso8601};
use super::openapi::errors::{BadRequest, NotFound, Unauthorized, Unavailable};
use super::{ApiError, ApiState, Operator};
use crate::conference::NodePrefix;
use crate::store::Store;

pub fn routes<S: Store>() -> Router<ApiState<S>> {
    Router::new()
        .route("/api/v1/operator/nodes/{node}/drain", post(drain::<S>))
        .route("/api/v1/operator/nodes/{node}/undrain", post(undrain::<S>))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DrainBody {
    /// Move the node's live rooms to other nodes as well, one at a time, each keeping its
    /// `room_id`, members, their switches and its recording (a new file segment); its
    /// application hears one `conference.migrated`. Without it the rooms end on the node as
    /// their applications end them.
    #[serde(default)]
    pub migrate: bool,
}

/// A node's drain.
#[derive(Serialize, ToSchema)]
pub struct DrainView {
    /// The node's 5-character prefix.
    pub node: String,
    pub draining: bool,
    pub migrate: bool,
    /// When the drain began (ISO 8601, UTC); absent once undrained.
    pub since: Option<String>,
}

/// A configured node's prefix from the path (404 for any other).
fn node<S: Store>(st: &ApiState<S>, raw: &str) -> Result<NodePrefix, ApiError> {
    NodePrefix::parse(raw)
        .ok()
        .filter(|p| st.rooms().pool().get(p).is_ok())
        .ok_or_else(|| ApiError::NotFound("Node not found".into()))
}

#[utoipa::path(
    post,
    path = "/api/v1/operator/nodes/{node}/drain",
    operation_id = "operator_node_drain",
    tag = "operations",
    summary = "Take a media node out of service",
    description = "From now on the node takes no new rooms and places no new dial-outs (503 \
        for a dial-out from one of its rooms), on every controller instance sharing the store. \
        Its rooms go on and its callers can still join rooms, here or on other nodes. \
        `GET /api/v1/nodes`, `/readyz` and `/metrics` show it draining. With `migrate: true` \
        its live rooms move to other healthy nodes, one at a time, while they live: each \
        keeps its `room_id`, members, mute/deaf/hold and recording (a new file segment on the \
        new node), every call stays up, and the room's application hears one \
        `conference.migrated` instead of members leaving and joining. Draining again keeps \
        the first drain's time. Operator's key only.",
    params(("node" = String, Path, description = "The node's 5-character prefix")),
    request_body(content = Option<DrainBody>, description = "Nothing, `{}`, or `{\"migrate\": true|false}`"),
    responses(
        (status = 200, description = "Draining", body = DrainView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
async fn drain<S: Store>(
    State(st): State<ApiState<S>>,
    _: Operator,
    IdPath(raw): IdPath,
    JsonBody(body): JsonBody<DrainBody>,
) -> Result<(StatusCode, Json<DrainView>), ApiError> {
    let node = node(&st, &raw)?;
    let d = st.rooms().drain(&node, body.migrate).await?;
    Ok((
        StatusCode::OK,
        Json(DrainView {
            node: node.to_string(),
            draining: true,
            migrate: d.migrate,
            since: Some(iso8601(d.since)),
        }),
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/operator/nodes/{node}/undrain",
    operation_id = "operator_node_undrain",
    tag = "operations",
    summary = "Take a media node back into service",
    description = "The node takes new rooms and dial-outs again. Operator's key only.",
    params(("node" = String, Path, description = "The node's 5-character prefix")),
    responses(
        (status = 200, description = "In service", body = DrainView),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
async fn undrain<S: Store>(
    State(st): State<ApiState<S>>,
    _: Operator,
    IdPath(raw): IdPath,
) -> Result<Json<DrainView>, ApiError> {
    let node = node(&st, &raw)?;
    st.rooms().undrain(&node).await?;
    Ok(Json(DrainView {
        node: node.to_string(),
        draining: false,
        migrate: false,
        since: None,
    }))
}
