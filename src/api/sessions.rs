//! `/api/v1/sessions`: the app's calls (list, read) and the session commands (conference
//! join/leave, hangup; the member switches, mute, deaf and hold, are in `switches`), with optional `command_uid` idempotency: a repeat of the
//! same request within 10 minutes gets the first answer and sends nothing; the same key with
//! another command or other parameters is refused (422).

use std::future::Future;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::conferences::room_id;
use super::extract::{IdPath, JsonBody, PageQuery, QueryParams, iso8601, known_params};
use super::openapi::errors::{BadRequest, Conflict, Forbidden, NotFound, Unprocessable};
use super::openapi::errors::{NodeRejected, NodeTimeout, RateLimited};
use super::openapi::params::{Paging, SessionPath};
use super::openapi::schemas as doc;
use super::{ApiError, ApiState, Caller};
use crate::conference::ops::JoinAs;
use crate::conference::{AppId, Session, SessionId};
use crate::rooms::JoinOutcome;
use crate::store::Store;

/// How long a command's answer is remembered under its `command_uid`.
pub const COMMAND_UID_WINDOW: Duration = Duration::from_secs(600);
const MAX_COMMAND_UID: usize = 128;

pub fn routes<S: Store>() -> Router<ApiState<S>> {
    let cmd = "/api/v1/sessions/{uuid}/commands";
    Router::new()
        .route("/api/v1/sessions", get(list::<S>))
        .route("/api/v1/sessions/{uuid}", get(show::<S>))
        .route(&format!("{cmd}/hangup"), post(hangup::<S>))
        .route(&format!("{cmd}/conference/join"), post(join::<S>))
        .route(&format!("{cmd}/conference/leave"), post(leave::<S>))
}

/// A session id from the path; one that cannot exist is simply not found.
pub(super) fn session_id(raw: &str) -> Result<SessionId, ApiError> {
    SessionId::parse(raw).map_err(|_| ApiError::NotFound("Session not found".into()))
}

fn session_view(s: &Session) -> Value {
    json!({
        "uuid": s.id,
        "did": s.did,
        "caller_id": s.caller_id,
        "caller_name": s.caller_name,
        "state": s.state,
        "created_at": iso8601(s.created_at),
        "answered_at": s.answered_at.map(iso8601),
        "ended_at": s.ended_at.map(iso8601),
        "hangup_cause": s.hangup_cause,
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/sessions",
    operation_id = "sessions_list",
    tag = "sessions",
    summary = "List the application's live calls",
    description = "Oldest first, one page at a time. A query parameter other than `limit` \
        and `cursor` is a 400.",
    params(Paging),
    responses(
        (status = 200, description = "A page of sessions", body = doc::SessionList),
        (status = 400, response = BadRequest),
    )
)]
async fn list<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    page: PageQuery,
    QueryParams(query): QueryParams<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    known_params(&query, &["limit", "cursor"])?;
    let scope = format!("sessions {app}");
    let after = match &page.cursor {
        Some(c) => Some(
            st.cursors()
                .decode_at(&scope, c)
                .map_err(|_| ApiError::bad_request("Invalid cursor"))?,
        ),
        None => None,
    };
    let found = st.rooms().sessions(&app, after, page.limit(200)).await?;
    let sessions: Vec<Value> = found.items.iter().map(session_view).collect();
    let cursor = found
        .next
        .map(|n| st.cursors().encode_at(&scope, &n))
        .unwrap_or_default();
    Ok(Json(json!({ "sessions": sessions, "cursor": cursor })))
}

#[utoipa::path(
    get,
    path = "/api/v1/sessions/{uuid}",
    operation_id = "sessions_show",
    tag = "sessions",
    summary = "Read a call",
    description = "Live or ended, with the room it is in.",
    params(SessionPath),
    responses(
        (status = 200, description = "The session", body = doc::SessionDetail),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
async fn show<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
) -> Result<Json<Value>, ApiError> {
    let id = session_id(&raw)?;
    let session = st.rooms().session(&app, &id).await?;
    let room = st.rooms().room_of_session(&app, &id).await?;
    let mut view = session_view(&session);
    view["room_id"] = json!(room);
    Ok(Json(view))
}

/// A session command's body: nothing, `{}`, or an idempotency key.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CommandBody {
    /// An idempotency key (1 to 128 characters): a repeat of the same command with the same
    /// key for the same session within 10 minutes gets the first answer (marked
    /// `Idempotent-Replayed: true`) and sends nothing to the node. The key used with another
    /// command or other parameters is a 422; a repeat while the first is running is a 409.
    #[schema(min_length = 1, max_length = 128)]
    pub(super) command_uid: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct JoinBody {
    /// A room of the same application, on the session's node.
    #[schema(
        pattern = r"^[A-Za-z0-9]{5}-room-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        example = "acW68-room-550e8400-e29b-41d4-a716-446655440000"
    )]
    room_id: String,
    /// Join as a moderator: a room created with `wait_for_moderator` starts when its first
    /// moderator joins. Default false.
    #[serde(default)]
    moderator: bool,
    /// The room ends when this member leaves (the others are moved out, their calls live on,
    /// as when the room is deleted; `conference.destroyed` says `end_on_exit`). Default false.
    #[serde(default)]
    end_on_exit: bool,
    /// The application's own data about this participation (a meeting id, a display name, a
    /// role): a JSON object of at most 4096 bytes serialized. Shown with the member and carried
    /// in every webhook about it; changed with `PATCH /api/v1/conferences/{room_id}/members/{uuid}`.
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
    /// As in [`CommandBody`].
    #[schema(min_length = 1, max_length = 128)]
    command_uid: Option<String>,
}

fn check_uid(uid: Option<String>) -> Result<Option<String>, ApiError> {
    match uid {
        Some(u) if u.is_empty() || u.chars().count() > MAX_COMMAND_UID => Err(
            ApiError::bad_request("Invalid command_uid: 1 to 128 characters"),
        ),
        other => Ok(other),
    }
}

/// What a remembered `command_uid` holds: the request it was first used for (the command and
/// its parameters, `command_uid` aside) and, once that request succeeded, its answer.
#[derive(Serialize, Deserialize)]
struct Remembered {
    request: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<Value>,
}

/// The earlier use of `uid` answers this request: its answer replayed (marked
/// `Idempotent-Replayed: true`) when it was the same request; 422 when it was another; 409
/// while the first is still running.
fn replay(earlier: &str, request: &str, uid: &str) -> Result<Response, ApiError> {
    let stored: Remembered = serde_json::from_str(earlier)
        .map_err(|e| ApiError::Internal(format!("remembered answer: {e}")))?;
    if stored.request != request {
        return Err(ApiError::Unprocessable {
            error: "command_uid was already used for a different request".into(),
            detail: json!({
                "command_uid": uid,
                "used_for": stored.request.split(' ').next().unwrap_or_default(),
            }),
        });
    }
    let (Some(status), Some(body)) = (stored.status, stored.body) else {
        return Err(ApiError::Conflict {
            error: "A request with this command_uid is still in progress".into(),
            detail: json!({ "command_uid": uid }),
        });
    };
    let status = StatusCode::from_u16(status)
        .map_err(|_| ApiError::Internal("remembered answer with a bad status".into()))?;
    Ok((status, [(REPLAYED, "true")], Json(body)).into_response())
}

/// The header that marks an answer replayed from an earlier request with the same key.
const REPLAYED: &str = "idempotent-replayed";
/// How long a `command_uid` stays reserved while its command runs (longer than any command's
/// deadline; a controller that dies mid-command frees it after this).
const IN_FLIGHT: Duration = Duration::from_secs(60);

/// Runs a session command once per `command_uid`. The key is reserved for `request` first, so
/// a concurrent repeat is refused rather than sent twice; a repeat after success is answered
/// from the store and sends nothing; a refused or failed command frees the key for a retry.
/// `request` names the command and its parameters: the key replays only the same request.
pub(super) async fn once<S, Fut>(
    st: &ApiState<S>,
    app: &AppId,
    session: &SessionId,
    uid: Option<String>,
    request: String,
    run: impl FnOnce(Option<String>) -> Fut,
) -> Result<Response, ApiError>
where
    S: Store,
    Fut: Future<Output = Result<(StatusCode, Value), ApiError>>,
{
    let Some(uid) = check_uid(uid)? else {
        let (status, body) = run(None).await?;
        return Ok((status, Json(body)).into_response());
    };
    let store = st.rooms().store();
    let key = format!("cmd:{session}:{uid}");
    let reservation = Remembered {
        request: request.clone(),
        status: None,
        body: None,
    };
    let reservation = serde_json::to_string(&reservation)
        .map_err(|e| ApiError::Internal(format!("command_uid: {e}")))?;
    if let Some(earlier) = store.remember(app, &key, &reservation, IN_FLIGHT).await? {
        return replay(&earlier, &request, &uid);
    }
    match run(Some(uid)).await {
        Ok((status, body)) => {
            let answer = Remembered {
                request,
                status: Some(status.as_u16()),
                body: Some(body.clone()),
            };
            let settled = match serde_json::to_string(&answer) {
                Ok(answer) => store
                    .settle(app, &key, Some(&answer), COMMAND_UID_WINDOW)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(error) = settled {
                tracing::warn!(%app, %session, %error, "command_uid answer not remembered");
            }
            Ok((status, Json(body)).into_response())
        }
        Err(refused) => {
            if let Err(error) = store.settle(app, &key, None, COMMAND_UID_WINDOW).await {
                tracing::warn!(%app, %session, %error, "command_uid not freed");
            }
            Err(refused)
        }
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/sessions/{uuid}/commands/conference/join",
    operation_id = "sessions_join",
    tag = "sessions",
    summary = "Join a call to a room",
    description = "Members join muted, as moderators with `moderator`. 202 `joining` (confirmed later: webhook \
        `conference.member.joined`, or `conference.member.join_failed` past the deadline); 200 \
        `already_joined` when the session is in this room; 409 when it is in another. Rate \
        limit: `conference`, 2 s per session, shared with leave.",
    params(SessionPath),
    request_body = JoinBody,
    responses(
        (status = 202, description = "Joining", body = doc::JoinAnswer),
        (status = 200, description = "Already in this room", body = doc::JoinAnswer),
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
async fn join<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(body): JsonBody<JoinBody>,
) -> Result<Response, ApiError> {
    let id = session_id(&raw)?;
    let room = room_id(&body.room_id)?;
    let metadata = super::extract::metadata(body.metadata)?;
    let request = format!(
        "conference/join room_id={room} moderator={} end_on_exit={} metadata={}",
        body.moderator,
        body.end_on_exit,
        metadata
            .as_ref()
            .map(|m| Value::Object(m.clone()))
            .unwrap_or_default()
    );
    let join_as = JoinAs {
        moderator: body.moderator,
        end_on_exit: body.end_on_exit,
        metadata,
    };
    once(&st, &app, &id, body.command_uid, request, |uid| async {
        let outcome = st.rooms().join(&app, &id, &room, uid, join_as).await?;
        Ok(match outcome {
            JoinOutcome::Joining => (
                StatusCode::ACCEPTED,
                json!({ "status": "joining", "room_id": room }),
            ),
            JoinOutcome::AlreadyJoined => (
                StatusCode::OK,
                json!({ "status": "already_joined", "room_id": room }),
            ),
        })
    })
    .await
}

#[utoipa::path(
    post,
    path = "/api/v1/sessions/{uuid}/commands/conference/leave",
    operation_id = "sessions_leave",
    tag = "sessions",
    summary = "Move a call out of its room",
    description = "The call hears the room's post-actions and is parked; it lives on. 404 when \
        the session is in no room, 409 while it is still joining. Rate limit: `conference`, 2 s \
        per session, shared with join. Webhook: `conference.member.left`.",
    params(SessionPath),
    request_body(content = Option<CommandBody>, description = "Nothing, `{}`, or a `command_uid`"),
    responses(
        (status = 202, description = "Leaving", body = doc::MembershipAnswer),
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
async fn leave<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(body): JsonBody<CommandBody>,
) -> Result<Response, ApiError> {
    let id = session_id(&raw)?;
    let request = "conference/leave".to_owned();
    once(&st, &app, &id, body.command_uid, request, |_| async {
        let room = st.rooms().leave(&app, &id).await?;
        Ok((
            StatusCode::ACCEPTED,
            json!({ "status": "leaving", "room_id": room }),
        ))
    })
    .await
}

#[utoipa::path(
    post,
    path = "/api/v1/sessions/{uuid}/commands/hangup",
    operation_id = "sessions_hangup",
    tag = "sessions",
    summary = "Hang up a call",
    description = "The session ends when the node reports the hangup.",
    params(SessionPath),
    request_body(content = Option<CommandBody>, description = "Nothing, `{}`, or a `command_uid`"),
    responses(
        (status = 202, description = "Hanging up", body = doc::HangupAnswer),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        (status = 502, response = NodeRejected),
        (status = 504, response = NodeTimeout),
    )
)]
async fn hangup<S: Store>(
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
        "hangup".into(),
        |_| async {
            st.rooms().hangup(&app, &id).await?;
            Ok((
                StatusCode::ACCEPTED,
                json!({ "status": "hanging_up", "uuid": id }),
            ))
        },
    )
    .await
}
