//! `/api/v1` recordings and conferencecalls: start and stop recording a room, read a recording
//! and download its WAV file, read or kick a conferencecall.

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use super::conferences::room_id;
use super::extract::{IdPath, JsonBody};
use super::resource::uuid_id;
use super::{ApiError, ApiState, Caller, views};
use crate::store::Store;

type Answer = Result<(StatusCode, Json<Value>), ApiError>;

pub fn routes<S: Store>() -> Router<ApiState<S>> {
    Router::new()
        .route(
            "/api/v1/conferences/{room_id}/recording/start",
            post(start::<S>),
        )
        .route(
            "/api/v1/conferences/{room_id}/recording/stop",
            post(stop::<S>),
        )
        .route("/api/v1/recordings/{id}", get(show::<S>))
        .route("/api/v1/recordings/{id}/file", get(file::<S>))
        .route(
            "/api/v1/conferencecalls/{id}",
            get(conferencecall::<S>).delete(kick::<S>),
        )
}

/// Commands on a room take no body; an empty object is accepted, anything else is not.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoBody {}

/// 202: the node is asked; `conference.recording.started` follows its confirmation.
async fn start<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(NoBody {}): JsonBody<NoBody>,
) -> Answer {
    let id = room_id(&raw)?;
    let rec = st.rooms().start_recording(&app, &id).await?;
    let room = st.rooms().room_any(&app, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(views::recording(&room, &rec))))
}

/// 202: `conference.recording.finished` (with the duration) follows the node's confirmation.
async fn stop<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(NoBody {}): JsonBody<NoBody>,
) -> Answer {
    let id = room_id(&raw)?;
    let rec = st.rooms().stop_recording(&app, &id).await?;
    let room = st.rooms().room_any(&app, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(views::recording(&room, &rec))))
}

async fn show<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
) -> Answer {
    let (room, rec) = st.rooms().recording(&app, uuid_id(&raw)?).await?;
    Ok((StatusCode::OK, Json(views::recording(&room, &rec))))
}

/// The WAV file of a finished recording, streamed from where the node wrote it.
async fn file<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
) -> Result<Response, ApiError> {
    let (rec, path) = st.rooms().recording_file(&app, uuid_id(&raw)?).await?;
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::NotFound(
                "Recording file not found on this controller".into(),
            ));
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot open a recording");
            return Err(ApiError::Unavailable {
                error: "Recording file cannot be read".into(),
                detail: Value::Null,
            });
        }
    };
    let len = file.metadata().await.map(|m| m.len()).ok();
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    let mut response = (
        [
            (header::CONTENT_TYPE, "audio/wav".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}.wav\"", rec.id),
            ),
        ],
        body,
    )
        .into_response();
    if let Some(len) = len
        && let Ok(v) = len.to_string().parse()
    {
        response.headers_mut().insert(header::CONTENT_LENGTH, v);
    }
    Ok(response)
}

async fn conferencecall<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
) -> Answer {
    let id = uuid_id(&raw)?;
    let room = st.rooms().room_of_ref(&app, id, "conferencecall").await?;
    let member = room
        .conferencecall(id)
        .ok_or(ApiError::NotFound("Conferencecall not found".into()))?;
    Ok((StatusCode::OK, Json(views::conferencecall(&room, member))))
}

/// Kicks the participant (it hears the post-actions and is parked); answers `leaving`.
async fn kick<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
) -> Answer {
    let (room, member) = st.rooms().kick(&app, uuid_id(&raw)?).await?;
    Ok((StatusCode::OK, Json(views::conferencecall(&room, &member))))
}
