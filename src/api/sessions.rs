//! `/api/v1/sessions`: the app's calls (list, read) and the session commands (conference
//! join/leave/mute/unmute, hangup), with optional `command_uid` idempotency: a repeat within
//! 10 minutes gets the first answer and sends nothing.

use std::future::Future;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::conferences::room_id;
use super::extract::{IdPath, JsonBody, PageQuery, iso8601};
use super::{ApiError, ApiState, Caller};
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
        .route(&format!("{cmd}/conference/mute"), post(mute::<S>))
        .route(&format!("{cmd}/conference/unmute"), post(unmute::<S>))
}

/// A session id from the path; one that cannot exist is simply not found.
fn session_id(raw: &str) -> Result<SessionId, ApiError> {
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

async fn list<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    page: PageQuery,
) -> Result<Json<Value>, ApiError> {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandBody {
    command_uid: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinBody {
    room_id: String,
    command_uid: Option<String>,
}

fn check_uid(uid: Option<String>) -> Result<Option<String>, ApiError> {
    match uid {
        Some(u) if u.is_empty() || u.len() > MAX_COMMAND_UID => Err(ApiError::bad_request(
            "Invalid command_uid: 1 to 128 characters",
        )),
        other => Ok(other),
    }
}

fn replay(answer: &str) -> Result<Response, ApiError> {
    let stored: Value = serde_json::from_str(answer)
        .map_err(|e| ApiError::Internal(format!("remembered answer: {e}")))?;
    let status = stored["status"]
        .as_u64()
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
        .ok_or_else(|| ApiError::Internal("remembered answer without status".into()))?;
    Ok((status, Json(stored["body"].clone())).into_response())
}

/// Runs a session command once per `command_uid`: a repeat is answered from the store. Only
/// successful answers are remembered, so a refused or failed command may be retried.
async fn once<S, Fut>(
    st: &ApiState<S>,
    app: &AppId,
    session: &SessionId,
    uid: Option<String>,
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
    if let Some(earlier) = store.recall(app, &key).await? {
        return replay(&earlier);
    }
    let (status, body) = run(Some(uid)).await?;
    let answer = json!({ "status": status.as_u16(), "body": body }).to_string();
    if let Some(earlier) = store
        .remember(app, &key, &answer, COMMAND_UID_WINDOW)
        .await?
    {
        return replay(&earlier);
    }
    Ok((status, Json(body)).into_response())
}

async fn join<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(body): JsonBody<JoinBody>,
) -> Result<Response, ApiError> {
    let id = session_id(&raw)?;
    let room = room_id(&body.room_id)?;
    once(&st, &app, &id, body.command_uid, |uid| async {
        let outcome = st.rooms().join(&app, &id, &room, uid).await?;
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

async fn leave<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(body): JsonBody<CommandBody>,
) -> Result<Response, ApiError> {
    let id = session_id(&raw)?;
    once(&st, &app, &id, body.command_uid, |_| async {
        let room = st.rooms().leave(&app, &id).await?;
        Ok((
            StatusCode::ACCEPTED,
            json!({ "status": "leaving", "room_id": room }),
        ))
    })
    .await
}

async fn set_muted<S: Store>(
    st: ApiState<S>,
    app: AppId,
    raw: String,
    body: CommandBody,
    muted: bool,
) -> Result<Response, ApiError> {
    let id = session_id(&raw)?;
    once(&st, &app, &id, body.command_uid, |_| async {
        let room = st.rooms().set_muted(&app, &id, muted).await?;
        let status = if muted { "muted" } else { "unmuted" };
        Ok((
            StatusCode::ACCEPTED,
            json!({ "status": status, "room_id": room }),
        ))
    })
    .await
}

async fn mute<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(body): JsonBody<CommandBody>,
) -> Result<Response, ApiError> {
    set_muted(st, app, raw, body, true).await
}

async fn unmute<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(body): JsonBody<CommandBody>,
) -> Result<Response, ApiError> {
    set_muted(st, app, raw, body, false).await
}

async fn hangup<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(body): JsonBody<CommandBody>,
) -> Result<Response, ApiError> {
    let id = session_id(&raw)?;
    once(&st, &app, &id, body.command_uid, |_| async {
        st.rooms().hangup(&app, &id).await?;
        Ok((
            StatusCode::ACCEPTED,
            json!({ "status": "hanging_up", "uuid": id }),
        ))
    })
    .await
}
