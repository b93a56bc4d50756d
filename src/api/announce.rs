//! `POST /api/v1/sessions/{uuid}/commands/conference/announce`: a URL, or text spoken by the
//! node's voice, heard by one member alone (mixed with the room, which goes on hearing nothing of
//! it); `conference.member.announcement.finished` (with the operation id the 202 gave) when it has
//! played, or was cut short by the member leaving.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use serde::Deserialize;
use serde_json::json;

use super::extract::{IdPath, JsonBody};
use super::openapi::errors::{BadRequest, Conflict, Forbidden, NotFound, Unprocessable};
use super::openapi::errors::{NodeRejected, NodeTimeout, RateLimited};
use super::openapi::params::SessionPath;
use super::openapi::schemas as doc;
use super::playback::{node_url, spoken, valid_url};
use super::sessions::{once, session_id};
use super::{ApiError, ApiState, Caller};
use crate::store::Store;

pub fn routes<S: Store>() -> Router<ApiState<S>> {
    Router::new().route(
        "/api/v1/sessions/{uuid}/commands/conference/announce",
        post(announce::<S>),
    )
}

/// What one member hears: `url`, or `text` (with `language` and `gender` as a talk action's);
/// the document describes it as [`doc::AnnounceRequest`] (one or the other).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnnounceBody {
    url: Option<String>,
    text: Option<String>,
    language: Option<String>,
    gender: Option<String>,
    command_uid: Option<String>,
}

impl AnnounceBody {
    /// The file the node plays: the URL, or the text as the voice speaks it.
    fn file(&self) -> Result<String, ApiError> {
        match (&self.url, &self.text) {
            (Some(url), None) if valid_url(url) => Ok(node_url(url)),
            (Some(url), None) => Err(ApiError::bad_request_with(
                "Invalid url: an http or https URL",
                json!({ "url": url.chars().take(256).collect::<String>() }),
            )),
            (None, Some(text)) => spoken(text, self.language.as_deref(), self.gender.as_deref()),
            _ => Err(ApiError::bad_request(
                "Give either url or text (exactly one)",
            )),
        }
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/sessions/{uuid}/commands/conference/announce",
    operation_id = "sessions_announce",
    tag = "sessions",
    summary = "Play a URL or speak text to one member",
    description = "Heard by the member alone, over the room (which hears nothing of it); \
        several queue one after another (at most 10 on their way per member). 404 when the \
        session is in no room; 409 while still joining; 502 when the node cannot play it (a URL \
        it cannot fetch). Rate limit: `conference_announce`, 2 s per session (the `conf_play` \
        window). Webhook: `conference.member.announcement.finished` with the `operation_id` and \
        `completed` (false when the member left first).",
    params(SessionPath),
    request_body = doc::AnnounceRequest,
    responses(
        (status = 202, description = "Announcing", body = doc::AnnounceAnswer),
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
async fn announce<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(body): JsonBody<AnnounceBody>,
) -> Result<Response, ApiError> {
    let id = session_id(&raw)?;
    let file = body.file()?;
    if let Some(url) = &body.url {
        st.fetchable("url", url).await?;
    }
    // What is played is part of the request a command_uid stands for.
    let request = format!("conference/announce {file}");
    once(&st, &app, &id, body.command_uid, request, |_| async {
        let (room, op) = st.rooms().announce(&app, &id, &file).await?;
        Ok((
            StatusCode::ACCEPTED,
            json!({ "status": "announcing", "room_id": room, "operation_id": op }),
        ))
    })
    .await
}
