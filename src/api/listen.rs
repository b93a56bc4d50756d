//! Listening in (the dashboard's Listen and Talk): `POST /api/v1/conferences/{room_id}/listen`
//! makes a stream of the room (or one member) whose socket is the caller's own, and answers
//! with a one-time path to open it on, `GET /api/v1/listen/{ticket}` (a WebSocket upgrade: a
//! browser's WebSocket cannot send the API's key headers, so the ticket, signed and short-lived,
//! stands for them). What the socket carries is the `l16` protocol at 16 kHz.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::conferences::room_id;
use super::cursor::Cursors;
use super::extract::{IdPath, JsonBody, iso8601};
use super::openapi::errors::{
    BadRequest, Conflict, Forbidden, NotFound, RateLimited, Unavailable, Unprocessable,
};
use super::openapi::params::RoomPath;
use super::openapi::schemas as doc;
use super::streams::{bad, track_of, view};
use super::{ApiError, ApiState, Caller};
use crate::conference::{AppId, RoomId};
use crate::node::supervisor::now_micros;
use crate::rooms::streams::{LISTEN_PATH, ListenRequest, TICKET_LIFE};
use crate::store::Store;

/// How long the upgraded connection has to be handed over.
const UPGRADE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

pub fn routes<S: Store>() -> axum::Router<ApiState<S>> {
    axum::Router::new()
        .route("/api/v1/conferences/{room_id}/listen", post(listen::<S>))
        .route("/api/v1/listen/{ticket}", get(open::<S>))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewListen {
    #[schema(value_type = Option<doc::StreamTrack>)]
    track: Option<Value>,
    #[schema(
        value_type = Option<String>,
        pattern = r"^[A-Za-z0-9]{5}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        example = "acW68-0b3c2a54-6f7e-4f4c-9a51-2d3f4b5c6d7e"
    )]
    session: Option<Value>,
    /// The listener may talk: what it sends is heard by the room (or by the member alone).
    #[schema(value_type = Option<bool>)]
    talk: Option<Value>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TicketPath {
    /// The ticket `POST …/listen` answered with (in its `socket_path`).
    pub ticket: String,
}

/// What a ticket stands for.
#[derive(Debug, PartialEq, Eq)]
struct Ticket {
    app: AppId,
    room: RoomId,
    stream: Uuid,
    expires: i64,
}

const SCOPE: &str = "listen";

fn sign(cursors: &Cursors, t: &Ticket) -> String {
    let position = format!("{} {} {} {}", t.app.as_str(), t.room, t.stream, t.expires);
    cursors.encode(SCOPE, &position)
}

/// The ticket's app, room, stream and expiry, if it is one this controller (or one sharing its
/// `cursor_secret`) signed.
fn read(cursors: &Cursors, raw: &str) -> Option<Ticket> {
    let position = cursors.decode(SCOPE, raw).ok()?;
    let mut parts = position.split(' ');
    let app = AppId::parse(parts.next()?).ok()?;
    let room = RoomId::parse(parts.next()?).ok()?;
    let stream = Uuid::try_parse(parts.next()?).ok()?;
    let expires = parts.next()?.parse().ok()?;
    Some(Ticket {
        app,
        room,
        stream,
        expires,
    })
}

#[utoipa::path(
    post,
    path = "/api/v1/conferences/{room_id}/listen",
    operation_id = "listen_start",
    tag = "streams",
    summary = "Listen in on a room (or one member), and talk into it",
    description = "Makes a stream of the room (`track: room`) or of one member (`track: \
        member`, `session`) whose socket is the caller's: open a WebSocket on `socket_path`, \
        on this controller (`ws://` or `wss://` as the API is served), within 30 s \
        (`expires_at`); the first socket claims it, and the path is spent. The socket carries \
        the `l16` protocol at 16 kHz: a JSON text frame of metadata, then binary frames of \
        little-endian 16-bit PCM, 20 ms each; with `talk: true` what the socket sends is heard \
        by the room (or by the member alone). The listen-in is a stream like any other \
        (`kind: listen`): listed, counted in the quota, ended by `DELETE` or when the socket \
        closes. A path no socket opened in time ends it (`failed`, `not_opened`).",
    params(RoomPath),
    request_body = NewListen,
    responses(
        (status = 201, description = "The listen-in, `starting`, and where to open its socket", body = doc::ListenView),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable),
    )
)]
async fn listen<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(body): JsonBody<NewListen>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = room_id(&raw)?;
    let nonnull = |v: Option<Value>| v.filter(|v| !v.is_null());
    let (track, session) = track_of(nonnull(body.track).as_ref(), nonnull(body.session).as_ref())?;
    let talk = match nonnull(body.talk) {
        None => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(bad("talk", "talk must be true or false")),
    };
    let req = ListenRequest {
        track,
        session,
        talk,
    };
    let stream = st.rooms().request_listen(&app, &id, req).await?;
    let expires = now_micros() + TICKET_LIFE.as_micros() as i64;
    let ticket = sign(
        st.cursors(),
        &Ticket {
            app: app.clone(),
            room: id.clone(),
            stream: stream.id,
            expires,
        },
    );
    let room = st.rooms().room_any(&app, &id).await?;
    let mut v = view(&room, &stream);
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "socket_path".into(),
            format!("{LISTEN_PATH}/{ticket}").into(),
        );
        o.insert("expires_at".into(), iso8601(expires).into());
    }
    Ok((StatusCode::CREATED, Json(v)))
}

#[utoipa::path(
    get,
    path = "/api/v1/listen/{ticket}",
    operation_id = "listen_open",
    tag = "streams",
    summary = "Open a listen-in's socket (a WebSocket upgrade)",
    description = "The ticket in `socket_path` stands for the application's key, once, for 30 \
        s. 404 for a ticket that is not one, or has expired; 409 once it was used, or the \
        listen-in is over; 400 when the request is not a WebSocket upgrade.",
    params(TicketPath),
    responses(
        (status = 101, description = "The socket: `l16` at 16 kHz"),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = Unavailable),
    )
)]
async fn open<S: Store>(
    State(st): State<ApiState<S>>,
    Path(raw): Path<String>,
    mut request: Request,
) -> Result<Response, ApiError> {
    let ticket = read(st.cursors(), &raw)
        .filter(|t| t.expires > now_micros())
        .ok_or_else(|| ApiError::NotFound("No such listen-in ticket, or it expired".into()))?;
    let accept = websocket_key(request.headers()).ok_or_else(|| {
        ApiError::bad_request_with(
            "A listen-in's socket is opened with a WebSocket upgrade (version 13)",
            json!({}),
        )
    })?;
    let (room, control) = st
        .rooms()
        .claim_listen(&ticket.app, &ticket.room, ticket.stream)
        .await?;
    let upgrade = hyper::upgrade::on(&mut request);
    let st2 = st.clone();
    tokio::spawn(async move {
        let socket = match tokio::time::timeout(UPGRADE_WAIT, upgrade).await {
            Ok(Ok(io)) => {
                let io: Box<dyn crate::streams::socket::Io> = Box::new(TokioIo::new(io));
                Some(crate::streams::socket::accepted(io).await)
            }
            _ => None,
        };
        st2.rooms()
            .carry_listen(&ticket.app, room, ticket.stream, control, socket);
    });
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = response.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    Ok(response)
}

/// The `Sec-WebSocket-Accept` for a WebSocket upgrade request; `None` when it is not one.
fn websocket_key(headers: &HeaderMap) -> Option<String> {
    let has = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    let version = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    let key = headers.get(header::SEC_WEBSOCKET_KEY)?;
    (has(header::UPGRADE, "websocket") && has(header::CONNECTION, "upgrade") && version)
        .then(|| derive_accept_key(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_says_what_it_was_signed_for_and_nothing_else_reads() {
        let cursors = Cursors::random();
        let t = Ticket {
            app: AppId::parse("app1").unwrap(),
            room: RoomId::parse("nodea-room-550e8400-e29b-41d4-a716-446655440000").unwrap(),
            stream: Uuid::new_v4(),
            expires: 1_700_000_000_000_000,
        };
        let raw = sign(&cursors, &t);
        assert_eq!(read(&cursors, &raw), Some(t));
        // Another controller's secret, a cursor of a listing, and junk: none is a ticket.
        assert_eq!(read(&Cursors::random(), &raw), None);
        assert_eq!(read(&cursors, &cursors.encode("rooms app1", "1 x")), None);
        assert_eq!(read(&cursors, "bm9wZQ.bm9wZQ"), None);
        let (payload, tag) = raw.split_once('.').unwrap();
        let mut flipped = payload.as_bytes().to_vec();
        flipped[3] ^= 1;
        let forged = format!("{}.{tag}", String::from_utf8_lossy(&flipped));
        assert_eq!(read(&cursors, &forged), None);
    }

    #[test]
    fn only_a_websocket_upgrade_is_accepted() {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        h.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        // RFC 6455's own example.
        assert_eq!(
            websocket_key(&h).as_deref(),
            Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
        h.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
        assert_eq!(websocket_key(&h), None);
    }
}
