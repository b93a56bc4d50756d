//! Live audio streams of a room: `POST /api/v1/conferences/{room_id}/streams` sends the room's
//! audio (or one member's) to the application's WebSocket server and plays what it sends back;
//! `GET …/streams`, `GET …/streams/{stream_id}`, `DELETE …/streams/{stream_id}`.
//! Webhooks: `conference.stream.started`, `conference.stream.stopped`,
//! `conference.stream.failed`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::conferences::room_id;
use super::extract::{IdPath, JsonBody, PairPath, iso8601};
use super::openapi::errors::{
    BadRequest, Conflict, Forbidden, NotFound, RateLimited, Unavailable, Unprocessable,
};
use super::openapi::params::RoomPath;
use super::openapi::schemas as doc;
use super::{ApiError, ApiState, Caller};
use crate::conference::{Protocol, Room, SessionId, Stream, Track};
use crate::rooms::streams::StreamRequest;
use crate::store::Store;

type Answer = Result<(StatusCode, Json<Value>), ApiError>;

/// Most bytes of a stream's `parameters`, serialized.
pub const MAX_PARAMETERS_BYTES: usize = 4096;

pub fn routes<S: Store>() -> Router<ApiState<S>> {
    Router::new()
        .route(
            "/api/v1/conferences/{room_id}/streams",
            get(list::<S>).post(start::<S>),
        )
        .route(
            "/api/v1/conferences/{room_id}/streams/{stream_id}",
            get(show::<S>).delete(stop::<S>),
        )
}

/// A stream as the API shows it.
pub fn view(room: &Room, s: &Stream) -> Value {
    let mut v = crate::conference::ops::stream_data(room, s);
    if let Some(o) = v.as_object_mut() {
        o.insert("parameters".into(), Value::Object(s.parameters.clone()));
        o.insert("created_at".into(), iso8601(s.created_at).into());
        o.insert("started_at".into(), s.started_at.map(iso8601).into());
        o.insert("ended_at".into(), s.ended_at.map(iso8601).into());
    }
    v
}

/// The room's live streams, for the room's view.
pub fn live(room: &Room) -> Vec<Value> {
    room.streams
        .iter()
        .filter(|s| s.is_live())
        .map(|s| view(room, s))
        .collect()
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStream {
    /// The server: `wss://` (its certificate is verified), or `ws://` where the operator allows
    /// it (a 400 otherwise). A host name (its last label begins with a letter) or an IPv4
    /// address, no credentials (send them in
    /// `parameters`); private, loopback and reserved addresses are refused unless the operator
    /// allows them.
    #[schema(
        max_length = 2048,
        pattern = r"^wss?://(([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?|((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9]))(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(/[A-Za-z0-9._~!$&'()*+,;=:@/%-]*)?(\?[A-Za-z0-9._~!$&'()*+,;=:@/?%-]*)?$",
        example = "wss://agent.example.com/media"
    )]
    url: String,
    /// `room` (default): the server hears the room's mix, and what it sends is heard by the
    /// whole room. `member`: it hears only what `session` says, and what it sends is heard by
    /// that member alone.
    #[schema(value_type = Option<doc::StreamTrack>)]
    track: Option<Value>,
    /// The member's session id, for `track: member` and only then (422 otherwise); 400 naming
    /// `session` when that session is not a member of the room.
    #[schema(
        value_type = Option<String>,
        pattern = r"^[A-Za-z0-9]{5}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        example = "acW68-0b3c2a54-6f7e-4f4c-9a51-2d3f4b5c6d7e"
    )]
    session: Option<Value>,
    /// `twilio` (default): Twilio's bidirectional Media Streams, message for message (µ-law,
    /// 8 kHz). `l16`: binary L16 frames after one JSON text frame.
    #[schema(value_type = Option<doc::StreamProtocol>)]
    protocol: Option<Value>,
    /// 8000 (default) or 16000 (`l16` only: 422 with `twilio`).
    #[schema(value_type = Option<u32>, minimum = 8000, maximum = 16000, multiple_of = 8000)]
    sample_rate: Option<Value>,
    /// Whether audio the server sends is played (default `false`: the server only listens).
    #[schema(value_type = Option<bool>)]
    bidirectional: Option<Value>,
    /// The application's own values, sent to the server in the first message (Twilio's
    /// `customParameters`); at most 4 KiB serialized.
    #[schema(value_type = Option<Object>)]
    parameters: Option<Value>,
}

/// The stream id in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct StreamPath {
    pub stream_id: Uuid,
}

pub(super) fn bad(field: &str, error: impl Into<String>) -> ApiError {
    ApiError::bad_request_with(error.into(), json!({ "field": field }))
}

/// Well-formed values that do not go together (a 422 naming the field).
fn unfit(field: &str, error: impl Into<String>) -> ApiError {
    ApiError::Unprocessable {
        error: error.into(),
        detail: json!({ "field": field }),
    }
}

/// The request, checked field by field; each refusal names its field.
/// The track asked for, and the member's session of a member track (`null`s already taken
/// out).
pub(super) fn track_of(
    track: Option<&Value>,
    session: Option<&Value>,
) -> Result<(Track, Option<SessionId>), ApiError> {
    let track = match track.map(Value::as_str) {
        None | Some(Some("room")) => Track::Room,
        Some(Some("member")) => Track::Member,
        _ => return Err(bad("track", "track must be \"room\" or \"member\"")),
    };
    let session = match (session, track) {
        (None, Track::Room) => None,
        (Some(_), Track::Room) => {
            return Err(unfit("session", "session is only for track \"member\""));
        }
        (None, Track::Member) => {
            return Err(unfit(
                "session",
                "session is required with track \"member\"",
            ));
        }
        (Some(v), Track::Member) => Some(
            v.as_str()
                .and_then(|s| SessionId::parse(s).ok())
                .ok_or_else(|| bad("session", "session must be a session id"))?,
        ),
    };
    Ok((track, session))
}

fn request(mut body: NewStream) -> Result<StreamRequest, ApiError> {
    // `null` is the same as leaving a field out.
    for v in [
        &mut body.track,
        &mut body.session,
        &mut body.protocol,
        &mut body.sample_rate,
        &mut body.bidirectional,
        &mut body.parameters,
    ] {
        if v.as_ref().is_some_and(Value::is_null) {
            *v = None;
        }
    }
    let (track, session) = track_of(body.track.as_ref(), body.session.as_ref())?;
    let protocol = match body.protocol.as_ref().map(Value::as_str) {
        None | Some(Some("twilio")) => Protocol::Twilio,
        Some(Some("l16")) => Protocol::L16,
        _ => return Err(bad("protocol", "protocol must be \"twilio\" or \"l16\"")),
    };
    // JSON Schema's integers include `8000.0`.
    let rate = |v: &Value| v.as_f64().filter(|f| *f == 8000.0 || *f == 16000.0);
    let sample_rate = match body.sample_rate.as_ref().map(rate) {
        None => 8000,
        Some(Some(8000.0)) => 8000,
        Some(Some(_)) if protocol == Protocol::L16 => 16000,
        Some(Some(_)) => {
            return Err(unfit(
                "sample_rate",
                "sample_rate must be 8000 with protocol \"twilio\" (µ-law, 8 kHz)",
            ));
        }
        _ => return Err(bad("sample_rate", "sample_rate must be 8000 or 16000")),
    };
    let bidirectional = match &body.bidirectional {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("bidirectional", "bidirectional must be true or false")),
    };
    let parameters = match body.parameters {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(bad("parameters", "parameters must be a JSON object")),
    };
    if Value::Object(parameters.clone()).to_string().len() > MAX_PARAMETERS_BYTES {
        return Err(bad(
            "parameters",
            format!("parameters must be at most {MAX_PARAMETERS_BYTES} bytes"),
        ));
    }
    Ok(StreamRequest {
        url: body.url,
        track,
        session,
        protocol,
        sample_rate,
        bidirectional,
        parameters,
    })
}

/// 201 with the stream: `streaming`, or `failed` with why.
#[utoipa::path(
    post,
    path = "/api/v1/conferences/{room_id}/streams",
    operation_id = "streams_start",
    tag = "streams",
    summary = "Stream a room's audio to a WebSocket server, and back",
    description = "Opens a live, two-way audio stream between the room (or one member of it) \
        and the application's WebSocket server, and answers with it once audio flows \
        (`streaming`) or once it could not be opened (`failed`, with `reason` and `error`: \
        the server refused, or did not answer within the connect timeout, or the node sent no \
        audio). It ends with the room or the member, on `DELETE`, or when the server closes \
        the socket. 429 past the application's quota of live streams (`detail.quota`: \
        `streams`); 409 past a room's 10; 400 when `session` is not a member of the room. \
        Webhooks: `conference.stream.started`, `conference.stream.stopped`, \
        `conference.stream.failed`.",
    params(RoomPath),
    request_body = NewStream,
    responses(
        (status = 201, description = "The stream: `streaming`, or `failed` with why", body = doc::StreamView),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
async fn start<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(body): JsonBody<NewStream>,
) -> Answer {
    let id = room_id(&raw)?;
    let req = request(body)?;
    let stream = st.rooms().start_stream(&app, &id, req).await?;
    let room = st.rooms().room_any(&app, &id).await?;
    Ok((StatusCode::CREATED, Json(view(&room, &stream))))
}

#[utoipa::path(
    get,
    path = "/api/v1/conferences/{room_id}/streams",
    operation_id = "streams_list",
    tag = "streams",
    summary = "A room's streams",
    description = "Its live streams and the latest ended ones (at most 50), oldest first.",
    params(RoomPath),
    responses(
        (status = 200, description = "The streams", body = doc::StreamList),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
async fn list<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
) -> Answer {
    let id = room_id(&raw)?;
    let room = st.rooms().room_any(&app, &id).await?;
    let streams: Vec<Value> = room.streams.iter().map(|s| view(&room, s)).collect();
    Ok((
        StatusCode::OK,
        Json(json!({ "room_id": room.id, "streams": streams })),
    ))
}

fn stream_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(raw).map_err(|_| ApiError::NotFound("Stream not found".into()))
}

#[utoipa::path(
    get,
    path = "/api/v1/conferences/{room_id}/streams/{stream_id}",
    operation_id = "streams_show",
    tag = "streams",
    summary = "One stream",
    params(RoomPath, StreamPath),
    responses(
        (status = 200, description = "The stream", body = doc::StreamView),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
async fn show<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    PairPath(raw_room, raw_stream): PairPath,
) -> Answer {
    let id = room_id(&raw_room)?;
    let sid = stream_id(&raw_stream)?;
    let room = st.rooms().room_any(&app, &id).await?;
    let stream = room
        .streams
        .iter()
        .find(|s| s.id == sid)
        .ok_or_else(|| ApiError::NotFound("Stream not found".into()))?;
    Ok((StatusCode::OK, Json(view(&room, stream))))
}

#[utoipa::path(
    delete,
    path = "/api/v1/conferences/{room_id}/streams/{stream_id}",
    operation_id = "streams_stop",
    tag = "streams",
    summary = "End a stream",
    description = "The server gets `stop` and the socket is closed; the stream's media legs \
        leave the room. A stream already over is answered as it is. Webhook: \
        `conference.stream.stopped` (reason `deleted`).",
    params(RoomPath, StreamPath),
    responses(
        (status = 200, description = "The stream, ended", body = doc::StreamView),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
async fn stop<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    PairPath(raw_room, raw_stream): PairPath,
) -> Answer {
    let id = room_id(&raw_room)?;
    let sid = stream_id(&raw_stream)?;
    let stream = st.rooms().stop_stream(&app, &id, &sid).await?;
    let room = st.rooms().room_any(&app, &id).await?;
    Ok((StatusCode::OK, Json(view(&room, &stream))))
}
