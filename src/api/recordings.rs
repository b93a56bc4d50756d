//! `/api/v1` recordings and conferencecalls: start and stop recording a room, read a recording
//! and download its WAV file, read or kick a conferencecall.

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;

use super::conferences::room_id;
use super::extract::{IdPath, JsonBody, QueryParams, known_params};
use super::openapi::errors::{
    BadRequest, Conflict, Forbidden, NodeRejected, NodeTimeout, NotFound,
};
use super::openapi::params::{RoomPath, UuidPath};
use super::openapi::schemas as doc;
use super::playback::NoBody;
use super::resource::uuid_id;
use super::{ApiError, ApiState, Caller, views};
use crate::conference::AppId;
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
        .route(
            "/api/v1/conferences/{room_id}/recording/pause",
            post(pause::<S>),
        )
        .route(
            "/api/v1/conferences/{room_id}/recording/resume",
            post(resume::<S>),
        )
        .route(
            "/api/v1/recordings/{id}",
            get(show::<S>).delete(delete_recording::<S>),
        )
        .route("/api/v1/recordings/{id}/file", get(file::<S>))
        .route(
            "/api/v1/conferencecalls/{id}",
            get(conferencecall::<S>).delete(kick::<S>),
        )
}

/// 202: the node is asked; `conference.recording.started` follows its confirmation.
#[utoipa::path(
    post,
    path = "/api/v1/conferences/{room_id}/recording/start",
    operation_id = "recordings_start",
    tag = "recordings",
    summary = "Start recording a room",
    description = "A WAV file on the room's node; the recording is `initiating` until the node \
        confirms. Webhook: `conference.recording.started`.",
    params(RoomPath),
    request_body(content = Option<NoBody>, description = "Nothing, or `{}`"),
    responses(
        (status = 202, description = "Asked of the node", body = doc::Recording),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 502, response = NodeRejected),
        (status = 504, response = NodeTimeout),
    )
)]
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
#[utoipa::path(
    post,
    path = "/api/v1/conferences/{room_id}/recording/stop",
    operation_id = "recordings_stop",
    tag = "recordings",
    summary = "Stop recording a room",
    description = "The recording is `stopping` until the node confirms. Webhook: \
        `conference.recording.finished`, with the duration.",
    params(RoomPath),
    request_body(content = Option<NoBody>, description = "Nothing, or `{}`"),
    responses(
        (status = 202, description = "Asked of the node", body = doc::Recording),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 502, response = NodeRejected),
        (status = 504, response = NodeTimeout),
    )
)]
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

/// 202: `conference.recording.paused` follows the node's confirmation.
#[utoipa::path(
    post,
    path = "/api/v1/conferences/{room_id}/recording/pause",
    operation_id = "recordings_pause",
    tag = "recordings",
    summary = "Pause a room's recording",
    description = "The node writes nothing while the recording is paused: the file leaves the \
        pause out, and its duration is what was recorded. 409 when the room is not recording, \
        the recording is still starting or stopping, or it is already paused (as last asked). \
        Webhook: `conference.recording.paused`.",
    params(RoomPath),
    request_body(content = Option<NoBody>, description = "Nothing, or `{}`"),
    responses(
        (status = 202, description = "Asked of the node", body = doc::Recording),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 502, response = NodeRejected),
        (status = 504, response = NodeTimeout),
    )
)]
async fn pause<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(NoBody {}): JsonBody<NoBody>,
) -> Answer {
    paused(st, app, raw, true).await
}

/// 202: `conference.recording.resumed` follows the node's confirmation.
#[utoipa::path(
    post,
    path = "/api/v1/conferences/{room_id}/recording/resume",
    operation_id = "recordings_resume",
    tag = "recordings",
    summary = "Resume a room's paused recording",
    description = "409 when the room is not recording, or the recording is not paused (as last \
        asked). Webhook: `conference.recording.resumed`.",
    params(RoomPath),
    request_body(content = Option<NoBody>, description = "Nothing, or `{}`"),
    responses(
        (status = 202, description = "Asked of the node", body = doc::Recording),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 502, response = NodeRejected),
        (status = 504, response = NodeTimeout),
    )
)]
async fn resume<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(NoBody {}): JsonBody<NoBody>,
) -> Answer {
    paused(st, app, raw, false).await
}

async fn paused<S: Store>(st: ApiState<S>, app: AppId, raw: String, pause: bool) -> Answer {
    let id = room_id(&raw)?;
    let rec = st.rooms().pause_recording(&app, &id, pause).await?;
    let room = st.rooms().room_any(&app, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(views::recording(&room, &rec))))
}

#[utoipa::path(
    get,
    path = "/api/v1/recordings/{id}",
    operation_id = "recordings_show",
    tag = "recordings",
    summary = "Read a recording",
    params(UuidPath),
    responses(
        (status = 200, description = "The recording", body = doc::Recording),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
pub(super) async fn show<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
) -> Answer {
    let (room, rec) = st.rooms().recording(&app, uuid_id(&raw)?).await?;
    Ok((StatusCode::OK, Json(views::recording(&room, &rec))))
}

#[utoipa::path(
    delete,
    path = "/api/v1/recordings/{id}",
    operation_id = "recordings_delete",
    tag = "recordings",
    summary = "Delete a finished recording",
    description = "Removes its object from the bucket (`s3` storage; or its file, where this \
        controller sees the node's recording directory) and its record: it is then unknown \
        (404). 409 while it records or its copy is being made; 503 when the bucket cannot be \
        reached (nothing is removed).",
    params(UuidPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = super::openapi::errors::Unavailable),
    )
)]
async fn delete_recording<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
) -> Result<StatusCode, ApiError> {
    st.rooms().delete_recording(&app, uuid_id(&raw)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET …/file`'s query: `redirect=true|false`, `part=N` (anything else is a 400).
#[derive(serde::Deserialize)]
struct FileQuery {
    #[serde(default)]
    redirect: bool,
    part: Option<u32>,
}

/// The WAV file of a finished recording: from where the node wrote it (`store = "local"`), or
/// from the bucket (`store = "s3"`).
#[utoipa::path(
    get,
    path = "/api/v1/recordings/{id}/file",
    operation_id = "recordings_file",
    tag = "recordings",
    summary = "Download a recording's WAV file",
    description = "With `[recordings] store = \"local\"`: streamed from where the node wrote \
        it (the controller must see the node's recording directory); 404 when the file is not \
        on this controller. With `store = \"s3\"`: from the bucket, by any instance, once \
        `upload_status` is `ready`: streamed through (a `Range` is honoured: 206), or, with \
        `?redirect=true`, a 302 to a signed URL that lasts `url_expires_secs`. 409 while the \
        recording is in progress (or uploading); 404 when it failed. A recording whose room \
        moved to another node while it recorded has earlier parts (`segments`): `?part=N` \
        serves part N (from 1) the same way; without it, the file (the last part).",
    params(UuidPath,
        ("redirect" = Option<bool>, Query, description = "`true`: a 302 to a signed URL of the object (`s3` storage)"),
        ("part" = Option<u32>, Query, description = "An earlier part of the recording (`segments[].part`), from 1"),
    ),
    responses(
        (status = 200, description = "The file", content_type = "audio/wav", body = doc::WavFile,
            headers(
                ("Content-Disposition" = String, description = "`attachment; filename=\"{id}.wav\"`"),
                ("Content-Length" = u64, description = "The file's size, when known"),
            )),
        (status = 206, description = "The bytes a `Range` asked for (`s3` storage)", content_type = "audio/wav", body = doc::WavFile,
            headers(("Content-Range" = String, description = "`bytes <first>-<last>/<size>`"))),
        (status = 302, description = "To a signed URL of the object (`?redirect=true`, `s3` storage)",
            headers(("Location" = String, description = "The signed URL"))),
        (status = 503, response = super::openapi::errors::Unavailable),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    )
)]
async fn file<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    QueryParams(FileQuery { redirect, part }): QueryParams<FileQuery>,
    QueryParams(query): QueryParams<Vec<(String, String)>>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    known_params(&query, &["redirect", "part"])?;
    let id = uuid_id(&raw)?;
    let part = part.map(|n| n as usize);
    let name = match part {
        Some(n) => format!("{id}.part{n}.wav"),
        None => format!("{id}.wav"),
    };
    if let Some(objects) = st.rooms().objects() {
        let (_, rec) = st.rooms().recording(&app, id).await?;
        let upload = match part {
            None => rec.upload.as_ref(),
            Some(n) => n
                .checked_sub(1)
                .and_then(|i| rec.segments.get(i))
                .ok_or_else(|| ApiError::NotFound("Recording part not found".into()))?
                .upload
                .as_ref(),
        };
        if let Some(upload) = upload {
            let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
            let ttl = st.rooms().url_ttl();
            return from_bucket(objects, &name, upload, redirect, range, ttl).await;
        }
    }
    let path = st.rooms().recording_file(&app, id, part).await?;
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
                format!("attachment; filename=\"{name}\""),
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

/// A recording's file from the object store: streamed through (a `Range` passed on), or, with
/// `redirect`, a `302` to a signed URL of limited life.
async fn from_bucket(
    objects: &crate::objects::ObjectStore,
    name: &str,
    upload: &crate::conference::Upload,
    redirect: bool,
    range: Option<&str>,
    url_ttl: std::time::Duration,
) -> Result<Response, ApiError> {
    use crate::conference::UploadStatus;
    match upload.status {
        UploadStatus::Ready => {}
        UploadStatus::Failed => {
            return Err(ApiError::NotFound(
                "Recording file not found: its upload failed".into(),
            ));
        }
        UploadStatus::Waiting | UploadStatus::Uploading => {
            return Err(ApiError::Conflict {
                error: "The recording is still in progress or uploading".into(),
                detail: serde_json::json!({ "status": upload.status }),
            });
        }
    }
    if redirect {
        let url = objects.get_url(&upload.key, url_ttl);
        return Ok((StatusCode::FOUND, [(header::LOCATION, url)]).into_response());
    }
    let unavailable = |e: crate::objects::ObjectError| ApiError::Unavailable {
        error: "Object storage unavailable".into(),
        detail: serde_json::json!({ "reason": e.to_string() }),
    };
    let answer = objects.get(&upload.key, range).await.map_err(unavailable)?;
    let status = answer.status().as_u16();
    if status == 416 {
        return Err(ApiError::bad_request_with(
            "Range not satisfiable",
            serde_json::json!({ "size_bytes": upload.size_bytes }),
        ));
    }
    if !(200..300).contains(&status) {
        return Err(unavailable(crate::objects::ObjectError::Status {
            what: "get",
            status,
        }));
    }
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "audio/wav")
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        )
        .header(header::ACCEPT_RANGES, "bytes");
    for name in [header::CONTENT_LENGTH, header::CONTENT_RANGE, header::ETAG] {
        if let Some(v) = answer.headers().get(&name).and_then(|v| v.to_str().ok()) {
            response = response.header(name, v);
        }
    }
    response
        .body(Body::from_stream(answer.bytes_stream()))
        .map_err(|e| ApiError::Internal(e.to_string()))
}

#[utoipa::path(
    get,
    path = "/api/v1/conferencecalls/{id}",
    operation_id = "conferencecalls_show",
    tag = "conferencecalls",
    summary = "Read a conferencecall",
    params(UuidPath),
    responses(
        (status = 200, description = "The conferencecall", body = doc::Conferencecall),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
pub(super) async fn conferencecall<S: Store>(
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
#[utoipa::path(
    delete,
    path = "/api/v1/conferencecalls/{id}",
    operation_id = "conferencecalls_kick",
    tag = "conferencecalls",
    summary = "Kick a conferencecall out of its room",
    description = "The participant hears the room's post-actions and is parked (the call lives \
        on); answers it `leaving`, or as it is when it already left. Webhook: \
        `conference.member.left` (kicked).",
    params(UuidPath),
    responses(
        (status = 200, description = "Leaving", body = doc::Conferencecall),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 502, response = NodeRejected),
        (status = 504, response = NodeTimeout),
    )
)]
pub(super) async fn kick<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
) -> Answer {
    let (room, member) = st.rooms().kick(&app, uuid_id(&raw)?).await?;
    Ok((StatusCode::OK, Json(views::conferencecall(&room, &member))))
}
