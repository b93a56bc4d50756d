//! A member's audio levels: `POST …/conference/audio` with any of `volume_in`, `volume_out`
//! (−4…4, mod_conference's steps) and `energy` (the noise gate, 0…1800). Each given level is one
//! command on the room's node; the node's event confirms it, and `conference.member.audio`
//! tells each one that changed.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::extract::{IdPath, JsonBody, optional_integer};
use super::openapi::errors::{BadRequest, Conflict, Forbidden, NotFound, Unprocessable};
use super::openapi::errors::{NodeRejected, NodeTimeout, RateLimited};
use super::openapi::params::SessionPath;
use super::openapi::schemas as doc;
use super::sessions::{once, session_id};
use super::{ApiError, ApiState, Caller};
use crate::conference::Level;
use crate::store::Store;

/// The body's fields, for the document (which also says at least one level is given).
pub(super) fn body_schema() -> (
    &'static str,
    utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
) {
    ("AudioBody", <AudioBody as utoipa::PartialSchema>::schema())
}

pub fn routes<S: Store>() -> Router<ApiState<S>> {
    Router::new().route(
        "/api/v1/sessions/{uuid}/commands/conference/audio",
        post(audio::<S>),
    )
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AudioBody {
    /// The volume of what the member says, as the room hears it: −4 (quietest) to 4; 0 leaves
    /// it as it comes.
    #[schema(value_type = i32, required = false, minimum = -4, maximum = 4)]
    #[serde(default, deserialize_with = "optional_integer")]
    volume_in: Option<i64>,
    /// The volume of what the member hears: −4 to 4; 0 leaves it as it comes.
    #[schema(value_type = i32, required = false, minimum = -4, maximum = 4)]
    #[serde(default, deserialize_with = "optional_integer")]
    volume_out: Option<i64>,
    /// The energy under which what the member says is not heard (a noisy line's noise gate):
    /// 0 (everything is heard) to 1800; the room profile's is 100.
    #[schema(value_type = u32, required = false, minimum = 0, maximum = 1800)]
    #[serde(default, deserialize_with = "optional_integer")]
    energy: Option<i64>,
    /// As for every session command: an idempotency key.
    #[schema(min_length = 1, max_length = 128)]
    command_uid: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/sessions/{uuid}/commands/conference/audio",
    operation_id = "sessions_audio",
    tag = "sessions",
    summary = "Set a member's volume in and out, or its energy threshold",
    description = "At least one of `volume_in`, `volume_out`, `energy`; each is set on the \
        node in that order, and the member view shows it once the node confirms it. 400 for a \
        value out of range or none given; 404 when the session is in no room; 409 while \
        joining; 503 while the room moves to another node. Rate limit: `conference_audio`, 2 s \
        per session. Webhook: `conference.member.audio` for each level that changed, with the \
        member's three levels and `changed` (which one).",
    params(SessionPath),
    request_body = doc::AudioRequest,
    responses(
        (status = 202, description = "Sent to the node", body = doc::AudioAnswer),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        (status = 429, response = RateLimited),
        (status = 502, response = NodeRejected),
        (status = 503, response = super::openapi::errors::Unavailable),
        (status = 504, response = NodeTimeout),
    )
)]
async fn audio<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(body): JsonBody<AudioBody>,
) -> Result<Response, ApiError> {
    let id = session_id(&raw)?;
    let mut levels = Vec::new();
    for (level, value) in [
        (Level::VolumeIn, body.volume_in),
        (Level::VolumeOut, body.volume_out),
        (Level::Energy, body.energy),
    ] {
        let Some(value) = value else { continue };
        let range = level.range();
        let Some(value) = i32::try_from(value).ok().filter(|v| range.contains(v)) else {
            return Err(ApiError::bad_request_with(
                format!(
                    "Invalid {}: {} to {}",
                    level.verb(),
                    range.start(),
                    range.end()
                ),
                json!({ level.verb(): value }),
            ));
        };
        levels.push((level, value));
    }
    if levels.is_empty() {
        return Err(ApiError::bad_request(
            "Missing volume_in, volume_out or energy",
        ));
    }
    let asked: Vec<String> = levels
        .iter()
        .map(|(l, v)| format!("{}={v}", l.verb()))
        .collect();
    let request = format!("conference/audio {}", asked.join(" "));
    let levels = &levels;
    once(&st, &app, &id, body.command_uid, request, |_| async {
        let room = st.rooms().set_levels(&app, &id, levels).await?;
        let mut answer = json!({ "status": "sent", "room_id": room });
        for (level, value) in levels {
            answer[level.verb()] = (*value).into();
        }
        Ok((StatusCode::ACCEPTED, answer))
    })
    .await
}
