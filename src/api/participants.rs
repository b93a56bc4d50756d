//! Dial-out: `POST /api/v1/conferences/{room_id}/participants` makes the room's node call
//! someone (a SIP address, or a number through the node's gateway). The answer comes at once
//! (202, dialing); the rest is told by webhooks: `conference.participant.ringing`,
//! `…answered` (then `conference.member.joined`), or `…failed` with the reason and the cause.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::conferences::room_id;
use super::extract::{IdPath, JsonBody, optional_integer};
use super::openapi::errors::{
    BadRequest, Conflict, Forbidden, NotFound, RateLimited, Unprocessable,
};
use super::openapi::params::RoomPath;
use super::openapi::schemas as doc;
use super::{ApiError, ApiState, Caller};
use crate::node::dialout::{caller_name_ok, number_ok};
use crate::rooms::DialRequest;
use crate::store::Store;

pub fn routes<S: Store>() -> Router<ApiState<S>> {
    Router::new().route(
        "/api/v1/conferences/{room_id}/participants",
        post(dial::<S>),
    )
}

/// Seconds a dial-out rings unless the request says otherwise.
const DEFAULT_TIMEOUT_SECS: u32 = 30;

fn yes() -> bool {
    true
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DialBody {
    /// Whom to call: a number (`+` and up to 32 digits, through the node's gateway) or
    /// `sip:<user>@<host>[:<port>]` (user of letters, digits, `+ . _ -`; a host name or an
    /// IPv4 address). The application's configuration says which hosts and number prefixes it
    /// may call; "any host" means public ones that are no media node's.
    #[schema(
        max_length = 300,
        pattern = r"^(\+?[0-9]{1,32}|sip:[A-Za-z0-9+._-]{1,64}@(((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])|([A-Za-z0-9][A-Za-z0-9.-]{0,188}\.)?[A-Za-z][A-Za-z0-9-]{0,62})(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?)$",
        example = "sip:alice@pbx.example.com"
    )]
    to: String,
    /// The number the called party sees (`+` and up to 32 digits): one the application's
    /// configuration gives it (`caller_ids`, by default its DIDs); none given, the node's
    /// default.
    #[schema(pattern = r"^\+?[0-9]{1,32}$", example = "+15550001111")]
    caller_id: Option<String>,
    /// The name the called party sees: letters, digits, `.`, `_`, `-`.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$", example = "Switchyard")]
    caller_id_name: Option<String>,
    /// Seconds to ring before giving up (`no_answer`); default 30.
    #[serde(default, deserialize_with = "optional_integer")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 120)]
    timeout: Option<i64>,
    /// Enters the room muted (default true, as every join).
    #[serde(default = "yes")]
    #[schema(default = true)]
    muted: bool,
    /// Enters as a moderator (releases a room that waits for one).
    #[serde(default)]
    moderator: bool,
    /// The room ends when this participant leaves.
    #[serde(default)]
    end_on_exit: bool,
    /// An idempotency key: a repeat while the call is pending or in the room answers 200 with
    /// the same participant and dials nothing.
    #[schema(min_length = 1, max_length = 128)]
    command_uid: Option<String>,
    /// The application's own data about the participation (a JSON object of at most 4096
    /// bytes serialized): carried by the participant's webhooks and the member's once it is in.
    #[schema(value_type = Option<Object>)]
    metadata: Option<serde_json::Value>,
}

fn pattern_ok(value: &Option<String>, ok: impl Fn(&str) -> bool) -> bool {
    value.as_deref().is_none_or(ok)
}

#[utoipa::path(
    post,
    path = "/api/v1/conferences/{room_id}/participants",
    operation_id = "conferences_dial_out",
    tag = "conferences",
    summary = "Call someone into the room (dial-out)",
    description = "The room's node calls `to`; once answered the call enters the room as a \
        member (muted unless `muted: false`) and is a session of the application. Answers 202 \
        at once with the participant id (the call's channel uuid) and its session id. Webhooks: \
        `conference.participant.ringing`, `conference.participant.answered` then \
        `conference.member.joined`, or `conference.participant.failed` with `reason` (`busy`, \
        `no_answer`, `rejected`, `timeout`, `cancelled`, `failed`) and FreeSWITCH's \
        `hangup_cause`. Pending calls are listed in the room's `dialing` and hold a place \
        against `max_participants`; deleting the room cancels them. 400 for a destination \
        that is not a number or a plain SIP address, or a `caller_id` the application may not \
        present; 403 when the application may not call it (with `*` in its hosts: a private, \
        loopback or reserved address, a media node's, or a name that resolves to one or does \
        not resolve); 409 when the room is not active, full, already placing 20 calls, or the node has no \
        gateway for numbers; 422 when the `command_uid` was used for another destination. Rate limit: `conference_dialout`, 2 s per destination.",
    params(RoomPath),
    request_body = DialBody,
    responses(
        (status = 200, description = "A repeat (`command_uid`): the participant it made", body = doc::DialAnswer),
        (status = 202, description = "Dialing", body = doc::DialAnswer),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        (status = 429, response = RateLimited),
    )
)]
async fn dial<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(body): JsonBody<DialBody>,
) -> Result<Response, ApiError> {
    let room = room_id(&raw)?;
    if !pattern_ok(&body.caller_id, number_ok) {
        return Err(ApiError::bad_request(
            "Invalid caller_id: + and up to 32 digits",
        ));
    }
    if !pattern_ok(&body.caller_id_name, caller_name_ok) {
        return Err(ApiError::bad_request(
            "Invalid caller_id_name: 1 to 64 letters, digits, '.', '_' or '-'",
        ));
    }
    let timeout = match body.timeout {
        None => DEFAULT_TIMEOUT_SECS,
        Some(t @ 1..=120) => t as u32,
        Some(_) => return Err(ApiError::bad_request("Invalid timeout: 1 to 120 seconds")),
    };
    if body
        .command_uid
        .as_deref()
        .is_some_and(|u| u.is_empty() || u.len() > 128)
    {
        return Err(ApiError::bad_request(
            "Invalid command_uid: 1 to 128 characters",
        ));
    }
    if body.to.len() > 300 {
        return Err(ApiError::bad_request("Invalid to: at most 300 characters"));
    }
    let metadata = super::extract::metadata(body.metadata)?;
    let p = st
        .rooms()
        .dial_out(
            &app,
            &room,
            DialRequest {
                to: body.to,
                caller_id_number: body.caller_id,
                caller_id_name: body.caller_id_name,
                timeout_secs: timeout,
                muted: body.muted,
                moderator: body.moderator,
                end_on_exit: body.end_on_exit,
                command_uid: body.command_uid,
                metadata,
            },
        )
        .await?;
    let status = match p.repeated {
        true => StatusCode::OK,
        false => StatusCode::ACCEPTED,
    };
    let answer = json!({
        "status": p.state,
        "room_id": p.room,
        "participant_id": p.id,
        "uuid": p.session,
    });
    Ok((status, Json(answer)).into_response())
}
