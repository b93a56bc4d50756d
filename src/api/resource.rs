//! The conference resource of seeds 000–003 under `/v1.0`: conferences (paginated with
//! `page_size`/`page_token`), conferencecalls, recordings, in the seeds' JSON shapes. Same
//! authentication and ownership rules as `/api/v1`; ended rooms stay readable here (with
//! `tm_delete` set) while the store retains them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use super::extract::{IdPath, JsonBody, QueryParams, known_params, optional_integer, positive};
use super::openapi::errors::{BadRequest, Conflict, Forbidden, NameTakenError, NotFound};
use super::openapi::errors::{NodeRejected, NodeTimeout};
use super::openapi::params::{ConferencePath, UuidPath, V10Paging};
use super::openapi::schemas as doc;
use super::{ApiError, ApiState, Caller, views};
use crate::conference::{Action, AppId, Beep, RoomId, RoomStatus, RoomType};
use crate::rooms::NewRoom;
use crate::store::Store;

type Answer = Result<(StatusCode, Json<Value>), ApiError>;

pub fn routes<S: Store>() -> Router<ApiState<S>> {
    Router::new()
        .route("/v1.0/conferences", get(list::<S>).post(create::<S>))
        .route(
            "/v1.0/conferences/{id}",
            get(show::<S>).delete(destroy::<S>),
        )
        .route(
            "/v1.0/conferences/{id}/recording_start",
            post(recording_start::<S>),
        )
        .route(
            "/v1.0/conferences/{id}/recording_stop",
            post(recording_stop::<S>),
        )
        .route(
            "/v1.0/conferencecalls/{id}",
            get(conferencecall::<S>).delete(kick::<S>),
        )
        .route("/v1.0/recordings/{id}", get(recording::<S>))
}

pub use crate::conference::MAX_TIMEOUT_SECS;
const MAX_NAME: usize = 255;
const MAX_DETAIL: usize = 4096;
const MAX_DATA: usize = 16 * 1024;

/// The body that creates a room, in either API: the seed-004 `name` plus the conference
/// resource's fields.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConferenceBody {
    /// `/api/v1`: required, `^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`. `/v1.0`: free text, at most
    /// 255 characters, no control characters.
    #[schema(
        example = "weekly-standup",
        max_length = 255,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: Option<String>,
    /// `conference` (the default) or `connect`.
    #[serde(rename = "type")]
    #[schema(value_type = Option<doc::RoomType>)]
    pub kind: Option<String>,
    /// At most 4096 characters, no control characters.
    #[schema(max_length = 4096, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub detail: Option<String>,
    /// A JSON object of at most 16 KiB, kept with the room.
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
    /// Seconds after creation at which the room ends; 0 (the default) = never.
    #[schema(value_type = Option<u64>, minimum = 0, maximum = 2592000)]
    #[serde(default, deserialize_with = "optional_integer")]
    pub timeout: Option<i64>,
    /// Seconds after creation at which the room ends if nobody has joined it (dial-outs
    /// ringing and joins under way keep it); 0 = never. Default: the application's
    /// `empty_timeout` (0 unless configured). The room ends with `reason: empty_timeout`.
    #[schema(value_type = Option<u64>, minimum = 0, maximum = 2592000)]
    #[serde(default, deserialize_with = "optional_integer")]
    pub empty_timeout: Option<i64>,
    /// Seconds after the last member left at which the room ends, unless someone joins
    /// again (or is joining, or being dialed) by then; 0 = never. Default: the application's
    /// `departure_timeout` (0 unless configured). The room ends with
    /// `reason: departure_timeout`.
    #[schema(value_type = Option<u64>, minimum = 0, maximum = 2592000)]
    #[serde(default, deserialize_with = "optional_integer")]
    pub departure_timeout: Option<i64>,
    /// Most participants in the room at once (joining, joined or leaving); a join into a full
    /// room is 409. 0 (the default) = no limit; a `connect` room takes two whatever this says.
    #[schema(value_type = Option<u64>, minimum = 0, maximum = 10000)]
    #[serde(default, deserialize_with = "optional_integer")]
    pub max_participants: Option<i64>,
    /// Members wait, hearing the node's hold music and not heard, until a member joins with
    /// `moderator: true` (FreeSWITCH's `wait-mod`). Default false.
    pub wait_for_moderator: Option<bool>,
    /// A tone as members join (`enter`), leave (`exit`), `both`, or `none` (the default).
    #[schema(value_type = Option<doc::Beep>)]
    pub beep: Option<String>,
    /// Said to each participant who joins (at most 16 `talk` actions).
    #[schema(value_type = Option<Vec<doc::Action>>, max_items = 16)]
    pub pre_actions: Option<Vec<ActionObject>>,
    /// Said to each participant who leaves or is kicked (at most 16 `talk` actions).
    #[schema(value_type = Option<Vec<doc::Action>>, max_items = 16)]
    pub post_actions: Option<Vec<ActionObject>>,
    /// The application's own data about the room (a meeting id, an owner): a JSON object of
    /// at most 4096 bytes serialized. Shown with the room, carried in every webhook about it
    /// (as `room_metadata`), changed with `PATCH /api/v1/conferences/{room_id}`; listings
    /// filter by a top-level key (`?metadata.meeting=42`).
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

/// An action as the API accepts it: a JSON object (serde would also take a struct from an
/// array of its fields).
#[derive(Debug)]
pub struct ActionObject(Action);

impl<'de> Deserialize<'de> for ActionObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ActionObject, D::Error> {
        let fields = serde_json::Map::<String, Value>::deserialize(d)?;
        if let Some(unknown) = fields.keys().find(|k| !ACTION_FIELDS.contains(&k.as_str())) {
            return Err(serde::de::Error::unknown_field(unknown, ACTION_FIELDS));
        }
        serde_json::from_value(Value::Object(fields))
            .map(ActionObject)
            .map_err(serde::de::Error::custom)
    }
}

/// The largest `max_participants` a room may be created with.
const MAX_PARTICIPANTS: u64 = 10_000;

const ACTION_FIELDS: &[&str] = &["id", "next_id", "type", "option"];

fn actions(list: Option<Vec<ActionObject>>) -> Vec<Action> {
    list.unwrap_or_default().into_iter().map(|a| a.0).collect()
}

impl ConferenceBody {
    /// The room these fields describe; `name` has been checked by the caller's own rule.
    pub fn into_new_room(self, name: String) -> Result<NewRoom, ApiError> {
        let kind = match self.kind.as_deref().unwrap_or("conference") {
            "conference" => RoomType::Conference,
            "connect" => RoomType::Connect,
            other => {
                return Err(ApiError::bad_request_with(
                    "Invalid type: conference or connect",
                    json!({ "type": other.chars().take(40).collect::<String>() }),
                ));
            }
        };
        let detail = self.detail.unwrap_or_default();
        if detail.chars().count() > MAX_DETAIL || detail.chars().any(char::is_control) {
            return Err(ApiError::bad_request(
                "Invalid detail: at most 4096 characters, no control characters",
            ));
        }
        let data = self.data.unwrap_or_else(|| json!({}));
        if !data.is_object() || data.to_string().len() > MAX_DATA {
            return Err(ApiError::bad_request(
                "Invalid data: a JSON object of at most 16 KiB",
            ));
        }
        let timeout = seconds("timeout", self.timeout)?.unwrap_or(0);
        let empty_timeout = seconds("empty_timeout", self.empty_timeout)?;
        let departure_timeout = seconds("departure_timeout", self.departure_timeout)?;
        let most = self.max_participants.unwrap_or(0);
        let Some(max_participants) = u64::try_from(most).ok().filter(|m| *m <= MAX_PARTICIPANTS)
        else {
            return Err(ApiError::bad_request_with(
                "Invalid max_participants: 0 (no limit) to 10000",
                json!({ "max_participants": most }),
            ));
        };
        let beep = match self.beep.as_deref().unwrap_or("none") {
            "none" => Beep::None,
            "enter" => Beep::Enter,
            "exit" => Beep::Exit,
            "both" => Beep::Both,
            other => {
                return Err(ApiError::bad_request_with(
                    "Invalid beep: none, enter, exit or both",
                    json!({ "beep": other.chars().take(40).collect::<String>() }),
                ));
            }
        };
        Ok(NewRoom {
            name,
            kind,
            detail,
            data,
            timeout,
            empty_timeout,
            departure_timeout,
            max_participants,
            wait_for_moderator: self.wait_for_moderator.unwrap_or(false),
            beep,
            pre_actions: actions(self.pre_actions),
            post_actions: actions(self.post_actions),
            metadata: super::extract::metadata(self.metadata)?,
        })
    }
}

/// A room lifetime field: seconds, 0 (none) to [`MAX_TIMEOUT_SECS`]; `None` when absent.
fn seconds(field: &str, value: Option<i64>) -> Result<Option<u64>, ApiError> {
    let Some(value) = value else { return Ok(None) };
    u64::try_from(value)
        .ok()
        .filter(|t| *t <= MAX_TIMEOUT_SECS)
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request_with(
                format!("Invalid {field}: seconds, 0 (none) to {MAX_TIMEOUT_SECS}"),
                json!({ field: value }),
            )
        })
}

/// A `/v1.0` name: free text, possibly empty, at most 255 characters, no control characters.
fn resource_name(name: Option<String>) -> Result<String, ApiError> {
    let name = name.unwrap_or_default();
    if name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "Invalid name: at most 255 characters, no control characters",
        ));
    }
    Ok(name)
}

fn conference_id(raw: &str) -> Result<RoomId, ApiError> {
    RoomId::parse(raw).map_err(|_| {
        ApiError::bad_request_with(
            "Invalid conference id: expected {5-char-prefix}-room-{uuid}",
            json!({ "id": raw.chars().take(100).collect::<String>() }),
        )
    })
}

pub(crate) fn uuid_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(raw).map_err(|_| {
        ApiError::bad_request_with(
            "Invalid id: expected a UUID",
            json!({ "id": raw.chars().take(100).collect::<String>() }),
        )
    })
}

#[derive(Deserialize)]
struct PageParams {
    page_size: Option<String>,
    page_token: Option<String>,
}

fn scope(app: &AppId) -> String {
    format!("v1.0 conferences {app}")
}

#[utoipa::path(
    get,
    path = "/v1.0/conferences",
    operation_id = "v1_0_conferences_list",
    tag = "v1.0",
    summary = "List the application's conferences",
    description = "Oldest first, ended ones included while the store keeps them.",
    params(V10Paging),
    responses(
        (status = 200, description = "A page of conferences", body = doc::ConferencePage),
        (status = 400, response = BadRequest),
    )
)]
async fn list<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    QueryParams(params): QueryParams<PageParams>,
    QueryParams(query): QueryParams<Vec<(String, String)>>,
) -> Answer {
    known_params(&query, &["page_size", "page_token"])?;
    let size = match params.page_size.as_deref() {
        None => 10,
        Some(s) => positive("page_size", s)?.min(100) as usize,
    };
    let after = match params.page_token.as_deref().filter(|t| !t.is_empty()) {
        Some(token) => Some(
            st.cursors()
                .decode_at(&scope(&app), token)
                .map_err(|_| ApiError::bad_request("Invalid page_token"))?,
        ),
        None => None,
    };
    let page = st.rooms().list(&app, after, size, false).await?;
    let result: Vec<Value> = page.items.iter().map(views::conference).collect();
    let next = page
        .next
        .map(|n| st.cursors().encode_at(&scope(&app), &n))
        .unwrap_or_default();
    Ok((
        StatusCode::OK,
        Json(json!({ "result": result, "next_page_token": next })),
    ))
}

#[utoipa::path(
    post,
    path = "/v1.0/conferences",
    operation_id = "v1_0_conferences_create",
    tag = "v1.0",
    summary = "Create a conference",
    description = "As `POST /api/v1/conferences`, with a free-text name that may be empty. \
        Webhook: `conference.created`.",
    request_body(content = Option<ConferenceBody>, description = "Every field is optional: \
        no body (or `{}`) creates an unnamed conference"),
    responses(
        (status = 200, description = "Created", body = doc::Conference),
        (status = 400, response = BadRequest),
        (status = 409, description = "The (non-empty) name is taken for this application; \
            `detail.room_id` is the existing room", body = NameTakenError),
    )
)]
async fn create<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    JsonBody(body): JsonBody<ConferenceBody>,
) -> Answer {
    let name = resource_name(body.name.clone())?;
    let spec = body.into_new_room(name)?;
    let room = st.rooms().create(&app, spec).await?;
    Ok((StatusCode::OK, Json(views::conference(&room))))
}

#[utoipa::path(
    get,
    path = "/v1.0/conferences/{id}",
    operation_id = "v1_0_conferences_show",
    tag = "v1.0",
    summary = "Read a conference",
    description = "Live or ended.",
    params(ConferencePath),
    responses(
        (status = 200, description = "The conference", body = doc::Conference),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
async fn show<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
) -> Answer {
    let room = st.rooms().room_any(&app, &conference_id(&raw)?).await?;
    Ok((StatusCode::OK, Json(views::conference(&room))))
}

/// Ends the room; answers with it as it is now (`terminating`, or `terminated` when nothing
/// was left on the node). A room that is already ending is answered as it is.
#[utoipa::path(
    delete,
    path = "/v1.0/conferences/{id}",
    operation_id = "v1_0_conferences_delete",
    tag = "v1.0",
    summary = "End a conference",
    description = "Answers the conference as it is now: `terminating`, or `terminated` when \
        nothing was left on the node; one already ending is answered as it is. Webhook: \
        `conference.destroyed`.",
    params(ConferencePath),
    responses(
        (status = 200, description = "Ending", body = doc::Conference),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 502, response = NodeRejected),
        (status = 504, response = NodeTimeout),
    )
)]
async fn destroy<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
) -> Answer {
    let room = st.rooms().room_any(&app, &conference_id(&raw)?).await?;
    let room = if room.status < RoomStatus::Terminating {
        st.rooms().end(&app, room, "deleted").await?
    } else {
        room
    };
    Ok((StatusCode::OK, Json(views::conference(&room))))
}

#[utoipa::path(
    post,
    path = "/v1.0/conferences/{id}/recording_start",
    operation_id = "v1_0_conferences_recording_start",
    tag = "v1.0",
    summary = "Start recording a conference",
    description = "Answers the conference; the recording is in `recording_ids`. Webhook: \
        `conference.recording.started` once the node confirms.",
    params(ConferencePath),
    responses(
        (status = 200, description = "Asked of the node", body = doc::Conference),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 502, response = NodeRejected),
        (status = 504, response = NodeTimeout),
    )
)]
async fn recording_start<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
) -> Answer {
    recording_command(st, app, &raw, true).await
}

#[utoipa::path(
    post,
    path = "/v1.0/conferences/{id}/recording_stop",
    operation_id = "v1_0_conferences_recording_stop",
    tag = "v1.0",
    summary = "Stop recording a conference",
    description = "Answers the conference; the recording is in `recording_ids`. Webhook: \
        `conference.recording.finished` once the node confirms.",
    params(ConferencePath),
    responses(
        (status = 200, description = "Asked of the node", body = doc::Conference),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 502, response = NodeRejected),
        (status = 504, response = NodeTimeout),
    )
)]
async fn recording_stop<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
) -> Answer {
    recording_command(st, app, &raw, false).await
}

#[utoipa::path(
    get,
    path = "/v1.0/conferencecalls/{id}",
    operation_id = "v1_0_conferencecalls_show",
    tag = "v1.0",
    summary = "Read a conferencecall",
    params(UuidPath),
    responses(
        (status = 200, description = "The conferencecall", body = doc::Conferencecall),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
async fn conferencecall<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
) -> Answer {
    super::recordings::conferencecall(State(st), Caller(app), IdPath(raw)).await
}

/// Kicks the participant out of the room; answers `leaving` (seed 003).
#[utoipa::path(
    delete,
    path = "/v1.0/conferencecalls/{id}",
    operation_id = "v1_0_conferencecalls_kick",
    tag = "v1.0",
    summary = "Kick a conferencecall out of its conference",
    description = "Answers it `leaving`, or as it is when it already left.",
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
async fn kick<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
) -> Answer {
    super::recordings::kick(State(st), Caller(app), IdPath(raw)).await
}

#[utoipa::path(
    get,
    path = "/v1.0/recordings/{id}",
    operation_id = "v1_0_recordings_show",
    tag = "v1.0",
    summary = "Read a recording",
    params(UuidPath),
    responses(
        (status = 200, description = "The recording", body = doc::Recording),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
async fn recording<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
) -> Answer {
    super::recordings::show(State(st), Caller(app), IdPath(raw)).await
}

/// Starts or stops the room's recording; answers with the conference as it is then.
async fn recording_command<S: Store>(
    st: ApiState<S>,
    app: crate::conference::AppId,
    raw: &str,
    start: bool,
) -> Answer {
    let id = conference_id(raw)?;
    if start {
        st.rooms().start_recording(&app, &id).await?;
    } else {
        st.rooms().stop_recording(&app, &id).await?;
    }
    let room = st.rooms().room_any(&app, &id).await?;
    Ok((StatusCode::OK, Json(views::conference(&room))))
}
