//! The member switches, session commands beside join and leave: mute/unmute, deaf/undeaf
//! (the member stops hearing the room), hold/unhold (hold music instead of the room; neither
//! heard nor hearing it; its mute state kept for when it comes back). Each is sent to the node
//! and confirmed by its event (a webhook follows); judged against the last command asked, so a
//! repeat of one still on its way is a 409.

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
use super::playback::{node_url, valid_url};
use super::sessions::{CommandBody, once, session_id};
use super::{ApiError, ApiState, Caller};
use crate::conference::{AppId, Switch};
use crate::store::Store;

pub fn routes<S: Store>() -> Router<ApiState<S>> {
    let cmd = "/api/v1/sessions/{uuid}/commands/conference";
    Router::new()
        .route(&format!("{cmd}/mute"), post(mute::<S>))
        .route(&format!("{cmd}/unmute"), post(unmute::<S>))
        .route(&format!("{cmd}/deaf"), post(deaf::<S>))
        .route(&format!("{cmd}/undeaf"), post(undeaf::<S>))
        .route(&format!("{cmd}/hold"), post(hold::<S>))
        .route(&format!("{cmd}/unhold"), post(unhold::<S>))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct HoldBody {
    /// What the member hears while held: an HTTP/HTTPS URL of an audio file, played once.
    /// Without it, the node's hold music (`local_stream://moh`), which loops.
    #[schema(value_type = Option<doc::PlayUrl>, example = "https://cdn.example.com/hold.wav")]
    music: Option<String>,
    /// As for every session command: an idempotency key.
    #[schema(min_length = 1, max_length = 128)]
    command_uid: Option<String>,
}

/// Sends a switch command; `music` only for a hold.
async fn switch<S: Store>(
    st: ApiState<S>,
    app: AppId,
    raw: String,
    command_uid: Option<String>,
    (switch, on): (Switch, bool),
    music: Option<String>,
) -> Result<Response, ApiError> {
    let id = session_id(&raw)?;
    let music = match music {
        Some(url) if !valid_url(&url) => {
            return Err(ApiError::bad_request_with(
                "Invalid music: an http or https URL",
                json!({ "music": url.chars().take(256).collect::<String>() }),
            ));
        }
        Some(url) => {
            st.fetchable("music", &url).await?;
            Some(node_url(&url))
        }
        None => None,
    };
    // The parameters are part of the request a command_uid stands for.
    let request = match &music {
        Some(url) => format!("conference/{} {url}", switch.verb(on)),
        None => format!("conference/{}", switch.verb(on)),
    };
    let (state, app_id, session) = (&st, &app, &id);
    let music = music.as_deref();
    once(&st, &app, &id, command_uid, request, |uid| async move {
        let (st, app, id) = (state, app_id, session);
        let room = st
            .rooms()
            .set_switch(app, id, switch, on, music, uid.as_deref())
            .await?;
        Ok((
            StatusCode::ACCEPTED,
            json!({ "status": switch.state(on), "room_id": room }),
        ))
    })
    .await
}

#[utoipa::path(
    post,
    path = "/api/v1/sessions/{uuid}/commands/conference/mute",
    operation_id = "sessions_mute",
    tag = "sessions",
    summary = "Mute a member",
    description = "404 when the session is in no room; 409 when already muted (as last \
        asked: an accepted mute that the node has not confirmed yet counts) or still joining. \
        Rate limit: `conference_mute`, 2 s per session, shared with unmute. Webhook: \
        `conference.member.muted`.",
    params(SessionPath),
    request_body(content = Option<CommandBody>, description = "Nothing, `{}`, or a `command_uid`"),
    responses(
        (status = 202, description = "Muting", body = doc::MembershipAnswer),
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
async fn mute<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(body): JsonBody<CommandBody>,
) -> Result<Response, ApiError> {
    switch(st, app, raw, body.command_uid, (Switch::Mute, true), None).await
}

#[utoipa::path(
    post,
    path = "/api/v1/sessions/{uuid}/commands/conference/unmute",
    operation_id = "sessions_unmute",
    tag = "sessions",
    summary = "Unmute a member",
    description = "404 when the session is in no room; 409 when already unmuted (as last \
        asked: an accepted unmute that the node has not confirmed yet counts) or still joining. \
        Rate limit: `conference_mute`, 2 s per session, shared with mute. Webhook: \
        `conference.member.unmuted`.",
    params(SessionPath),
    request_body(content = Option<CommandBody>, description = "Nothing, `{}`, or a `command_uid`"),
    responses(
        (status = 202, description = "Unmuting", body = doc::MembershipAnswer),
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
async fn unmute<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(body): JsonBody<CommandBody>,
) -> Result<Response, ApiError> {
    switch(st, app, raw, body.command_uid, (Switch::Mute, false), None).await
}

#[utoipa::path(
    post,
    path = "/api/v1/sessions/{uuid}/commands/conference/deaf",
    operation_id = "sessions_deaf",
    tag = "sessions",
    summary = "Stop a member hearing the room",
    description = "The member no longer hears the room (it is still heard unless muted). 404 \
        when the session is in no room; 409 when already deaf (as last asked) or still \
        joining. Rate limit: `conference_deaf`, 2 s per session (the `conference_mute` window), \
        shared with undeaf. Webhook: `conference.member.deaf`.",
    params(SessionPath),
    request_body(content = Option<CommandBody>, description = "Nothing, `{}`, or a `command_uid`"),
    responses(
        (status = 202, description = "Deafening", body = doc::MembershipAnswer),
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
async fn deaf<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(body): JsonBody<CommandBody>,
) -> Result<Response, ApiError> {
    switch(st, app, raw, body.command_uid, (Switch::Deaf, true), None).await
}

#[utoipa::path(
    post,
    path = "/api/v1/sessions/{uuid}/commands/conference/undeaf",
    operation_id = "sessions_undeaf",
    tag = "sessions",
    summary = "Let a member hear the room again",
    description = "404 when the session is in no room; 409 when not deaf (as last asked) or \
        still joining. Rate limit: `conference_deaf`, shared with deaf. Webhook: \
        `conference.member.undeaf`.",
    params(SessionPath),
    request_body(content = Option<CommandBody>, description = "Nothing, `{}`, or a `command_uid`"),
    responses(
        (status = 202, description = "Undeafening", body = doc::MembershipAnswer),
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
async fn undeaf<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(body): JsonBody<CommandBody>,
) -> Result<Response, ApiError> {
    switch(st, app, raw, body.command_uid, (Switch::Deaf, false), None).await
}

#[utoipa::path(
    post,
    path = "/api/v1/sessions/{uuid}/commands/conference/hold",
    operation_id = "sessions_hold",
    tag = "sessions",
    summary = "Put a member on hold",
    description = "The member hears hold music (the node's, or `music`) instead of the room, \
        and is not heard; it stays in the room, and its mute state is kept for when it comes \
        back. 404 when the session is in no room; 409 when already held (as last asked) or \
        still joining. Rate limit: `conference_hold`, 2 s per session (the `conference_mute` \
        window), shared with unhold. Webhook: `conference.member.held`.",
    params(SessionPath),
    request_body(content = Option<HoldBody>, description = "Nothing, `{}`, `music`, a `command_uid`"),
    responses(
        (status = 202, description = "Holding", body = doc::MembershipAnswer),
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
async fn hold<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(body): JsonBody<HoldBody>,
) -> Result<Response, ApiError> {
    let on = (Switch::Hold, true);
    switch(st, app, raw, body.command_uid, on, body.music).await
}

#[utoipa::path(
    post,
    path = "/api/v1/sessions/{uuid}/commands/conference/unhold",
    operation_id = "sessions_unhold",
    tag = "sessions",
    summary = "Take a member off hold",
    description = "The member hears the room again and is heard as its mute state says (the \
        state it had, or what mute/unmute asked while it was held). 404 when the session is in \
        no room; 409 when not held (as last asked) or still joining. Rate limit: \
        `conference_hold`, shared with hold. Webhook: `conference.member.unheld`.",
    params(SessionPath),
    request_body(content = Option<CommandBody>, description = "Nothing, `{}`, or a `command_uid`"),
    responses(
        (status = 202, description = "Unholding", body = doc::MembershipAnswer),
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
async fn unhold<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(body): JsonBody<CommandBody>,
) -> Result<Response, ApiError> {
    switch(st, app, raw, body.command_uid, (Switch::Hold, false), None).await
}
