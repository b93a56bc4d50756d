//! `/api/v1/conferences`: create, list, read, members, delete, and room playback.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::conference::actions::speech;
use crate::node::commands::tts_file;

use super::extract::{IdPath, JsonBody, PageQuery, integer, iso8601};
use super::openapi::errors::{BadRequest, Conflict, Forbidden, NameTakenError, NotFound};
use super::openapi::errors::{NodeRejected, NodeTimeout, RateLimited};
use super::openapi::params::{Paging, RoomPath};
use super::openapi::schemas as doc;
use super::resource::ConferenceBody;
use super::{ApiError, ApiState, Caller, views};
use crate::conference::{Action, AppId, Beep, PlaybackStatus, Room, RoomId, RoomStatus, RoomType};
use crate::rooms::{PlaybackState, ServiceError};
use crate::store::Store;

type Answer = Result<(StatusCode, Json<Value>), ApiError>;

pub fn routes<S: Store>() -> Router<ApiState<S>> {
    Router::new()
        .route("/api/v1/conferences", post(create::<S>).get(list::<S>))
        .route(
            "/api/v1/conferences/{room_id}",
            get(show::<S>).delete(destroy::<S>),
        )
        .route("/api/v1/conferences/{room_id}/members", get(members::<S>))
        .route("/api/v1/conferences/{room_id}/play", post(play::<S>))
        .route("/api/v1/conferences/{room_id}/pause", post(pause::<S>))
        .route("/api/v1/conferences/{room_id}/stop", post(stop::<S>))
        .route("/api/v1/conferences/{room_id}/volume", post(volume::<S>))
}

/// `^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
}

pub fn room_id(raw: &str) -> Result<RoomId, ApiError> {
    RoomId::parse(raw).map_err(|_| {
        ApiError::bad_request_with(
            "Invalid room_id format: expected {5-char-prefix}-room-{uuid}",
            json!({ "room_id": raw.chars().take(100).collect::<String>() }),
        )
    })
}

fn rooms_scope(app: &AppId) -> String {
    format!("rooms {app}")
}

/// `name` is required here and follows the contract's pattern; the conference resource's
/// fields (type, detail, data, timeout, pre/post actions) are optional.
#[utoipa::path(
    post,
    path = "/api/v1/conferences",
    operation_id = "conferences_create",
    tag = "conferences",
    summary = "Create a room",
    description = "Places the room on the least-loaded healthy node (503 when there is none); it \
        is `starting` until the node holds its conference open. Webhook: `conference.created`.",
    request_body = doc::NewConference,
    responses(
        (status = 201, description = "Created", body = doc::ConferenceCreated),
        (status = 400, response = BadRequest),
        (status = 409, description = "The name is taken for this application; `detail.room_id` \
            is the existing room", body = NameTakenError),
    )
)]
async fn create<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    JsonBody(mut body): JsonBody<ConferenceBody>,
) -> Answer {
    let Some(name) = body.name.take() else {
        return Err(ApiError::bad_request("Missing name"));
    };
    if !valid_name(&name) {
        return Err(ApiError::bad_request_with(
            "Invalid name: alphanumeric, hyphens and underscores only, starting with an alphanumeric, at most 64 characters",
            json!({ "name": name.chars().take(100).collect::<String>() }),
        ));
    }
    let room = st.rooms().create(&app, body.into_new_room(name)?).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "room_id": room.id, "type": room.kind, "status": room.status })),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/conferences",
    operation_id = "conferences_list",
    tag = "conferences",
    summary = "List the application's rooms",
    description = "Live rooms, oldest first, one page at a time.",
    params(Paging),
    responses(
        (status = 200, description = "A page of rooms", body = doc::ConferenceList),
        (status = 400, response = BadRequest),
    )
)]
async fn list<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    page: PageQuery,
) -> Answer {
    let scope = rooms_scope(&app);
    let after = match &page.cursor {
        Some(c) => Some(
            st.cursors()
                .decode_at(&scope, c)
                .map_err(|_| ApiError::bad_request("Invalid cursor"))?,
        ),
        None => None,
    };
    let found = st.rooms().list(&app, after, page.limit(200), true).await?;
    let conferences: Vec<Value> = found
        .items
        .iter()
        .map(|r| {
            json!({
                "room_id": r.id,
                "name": r.name,
                "members": r.confirmed_members().count(),
                "created_at": iso8601(r.created_at),
            })
        })
        .collect();
    let cursor = found
        .next
        .map(|n| st.cursors().encode_at(&scope, &n))
        .unwrap_or_default();
    Ok((
        StatusCode::OK,
        Json(json!({ "conferences": conferences, "cursor": cursor })),
    ))
}

/// One room as `GET` shows it; `created_at` is Unix seconds as a string (the contract says so).
/// Serialized straight from the room (no intermediate `Value`): this is the hottest read.
#[derive(serde::Serialize)]
struct RoomView<'a> {
    room_id: &'a RoomId,
    name: &'a str,
    created_at: String,
    members: usize,
    playback_status: PlaybackStatus,
    playback_volume: i32,
    playback_urls: &'a [String],
    playback_operation_id: String,
    #[serde(rename = "type")]
    kind: RoomType,
    status: RoomStatus,
    detail: &'a str,
    data: &'a Value,
    timeout: u64,
    max_participants: u64,
    wait_for_moderator: bool,
    waiting_for_moderator: bool,
    beep: Beep,
    pre_actions: &'a [Action],
    post_actions: &'a [Action],
    #[serde(serialize_with = "ids")]
    conferencecall_ids: &'a Room,
    recording_id: uuid::Uuid,
    recording_ids: Vec<uuid::Uuid>,
}

/// The room's conferencecall ids, written without collecting them first.
fn ids<S: serde::Serializer>(r: &&Room, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(r.members.values().map(|m| m.conferencecall_id))
}

fn room_view(r: &Room) -> RoomView<'_> {
    RoomView {
        room_id: &r.id,
        name: &r.name,
        created_at: r.created_at.div_euclid(1_000_000).to_string(),
        members: r.confirmed_members().count(),
        playback_status: r.playback.status,
        playback_volume: r.playback.volume,
        playback_urls: &r.playback.urls,
        playback_operation_id: r
            .playback
            .operation_id
            .map(|u| u.to_string())
            .unwrap_or_default(),
        kind: r.kind,
        status: r.status,
        detail: &r.detail,
        data: &r.data,
        timeout: r.timeout,
        max_participants: r.max_participants,
        wait_for_moderator: r.wait_for_moderator,
        waiting_for_moderator: r.waiting_for_moderator,
        beep: r.beep,
        pre_actions: &r.pre_actions,
        post_actions: &r.post_actions,
        conferencecall_ids: r,
        recording_id: r.recording.unwrap_or(uuid::Uuid::nil()),
        recording_ids: views::recording_ids(r),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/conferences/{room_id}",
    operation_id = "conferences_show",
    tag = "conferences",
    summary = "Read a room",
    params(RoomPath),
    responses(
        (status = 200, description = "The room", body = doc::ConferenceDetail),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
async fn show<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
) -> Result<axum::response::Response, ApiError> {
    let room = st.rooms().room(&app, &room_id(&raw)?).await?;
    Ok(Json(room_view(&room)).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/conferences/{room_id}/members",
    operation_id = "conferences_members",
    tag = "conferences",
    summary = "List a room's members",
    description = "The members the node has confirmed, one page at a time. Another \
        application's room is a 404 here.",
    params(RoomPath, Paging),
    responses(
        (status = 200, description = "A page of members", body = doc::MemberList),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
    )
)]
async fn members<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    page: PageQuery,
) -> Answer {
    let id = room_id(&raw)?;
    let scope = format!("members {app} {id}");
    let after = match &page.cursor {
        Some(c) => Some(
            st.cursors()
                .decode(&scope, c)
                .map_err(|_| ApiError::bad_request("Invalid cursor"))?,
        ),
        None => None,
    };
    let (members, next) = st
        .rooms()
        .members(&app, &id, after.as_deref(), page.limit(1000))
        .await
        // The members list hides another app's room entirely (seed 004).
        .map_err(|e| match e {
            ServiceError::Forbidden(what) => ServiceError::NotFound(what),
            e => e,
        })?;
    let members: Vec<Value> = members
        .iter()
        .map(|m| {
            json!({
                "uuid": m.session,
                "did": m.did,
                "caller_id": m.caller_id,
                "muted": m.muted,
                "deaf": m.deaf,
                "held": m.held,
                "moderator": m.moderator,
                "coaching": m.coaching,
                "talking": m.talking,
            })
        })
        .collect();
    let cursor = next
        .map(|n| st.cursors().encode(&scope, &n))
        .unwrap_or_default();
    Ok((
        StatusCode::OK,
        Json(json!({ "room_id": id, "members": members, "cursor": cursor })),
    ))
}

#[utoipa::path(
    delete,
    path = "/api/v1/conferences/{room_id}",
    operation_id = "conferences_delete",
    tag = "conferences",
    summary = "Delete a room",
    description = "Stops recording, moves every member out (their calls live on, parked), \
        releases the room on the node and removes it. Webhook: `conference.destroyed`.",
    params(RoomPath),
    responses(
        (status = 200, description = "Deleted", body = doc::RoomRef),
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
    let id = room_id(&raw)?;
    st.rooms().delete(&app, &id).await?;
    Ok((StatusCode::OK, Json(json!({ "room_id": id }))))
}

/// The play body as read (the document describes it as [`doc::PlayRequest`]: one or the
/// other).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlayBody {
    /// HTTP/HTTPS URLs of audio files, played in order (not with `text`).
    urls: Option<Vec<String>>,
    /// Text the node speaks to the room (not with `urls`): 1 to 1024 characters, none of
    /// ' " \ ^ | { } ` or control characters. Listed in `playback_urls` as
    /// `tts://flite|<voice>|<text>`.
    text: Option<String>,
    /// With `text`: `en-US` (the default) or `en`.
    language: Option<String>,
    /// With `text`: the voice, `female` (the default), `male` or `neutral`.
    gender: Option<String>,
}

/// Most files one play request may carry.
const MAX_URLS: usize = 128;
const MAX_URL_LEN: usize = 2048;

/// The URLs a play accepts: `http`/`https` (any case) `://`, an optional user info, a host of
/// at least one character, an optional port of digits, then path, query and one optional
/// fragment; all in RFC 3986's characters (others percent-encoded) except `'` and `,`, which
/// would split a FreeSWITCH command line; at most 2048 characters. [`valid_url`] is this
/// pattern; the document says the same.
pub const URL_PATTERN: &str = r"^[Hh][Tt][Tt][Pp][Ss]?://(?:(?:[A-Za-z0-9._~!$&()*+;=:-]|%[0-9A-Fa-f]{2})*@)?(?:[A-Za-z0-9._~!$&()*+;=-]|%[0-9A-Fa-f]{2})+(?::[0-9]*)?(?:[/?](?:[A-Za-z0-9._~!$&()*+;=:@/?-]|%[0-9A-Fa-f]{2})*)?(?:#(?:[A-Za-z0-9._~!$&()*+;=:@/?-]|%[0-9A-Fa-f]{2})*)?$";

/// URL characters, besides `%HH` escapes: RFC 3986's unreserved and sub-delims (without `'`
/// and `,`), and `extra`.
fn url_chars(part: &[u8], extra: &[u8]) -> bool {
    let mut i = 0;
    while let Some(&b) = part.get(i) {
        if b == b'%' {
            let hex = |j: usize| part.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
        } else if b.is_ascii_alphanumeric() || b"._~!$&()*+;=-".contains(&b) || extra.contains(&b) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// An http/https URL with a host, that is one token on a FreeSWITCH command line: the rule
/// of [`URL_PATTERN`].
pub fn valid_url(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let start = if lower.starts_with("https://") {
        8
    } else if lower.starts_with("http://") {
        7
    } else {
        return false;
    };
    let rest = &url.as_bytes()[start..];
    let (before_fragment, fragment) = match rest.iter().position(|&b| b == b'#') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let authority_end = before_fragment
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(before_fragment.len());
    let (authority, path) = before_fragment.split_at(authority_end);
    let (user, host_port) = match authority.iter().rposition(|&b| b == b'@') {
        Some(at) => (&authority[..at], &authority[at + 1..]),
        None => (&[][..], authority),
    };
    let (host, port) = match host_port.iter().position(|&b| b == b':') {
        Some(at) => (&host_port[..at], &host_port[at + 1..]),
        None => (host_port, &[][..]),
    };
    url.len() <= MAX_URL_LEN
        && url_chars(user, b":")
        && !host.is_empty()
        && url_chars(host, b"")
        && port.iter().all(u8::is_ascii_digit)
        && url_chars(path, b":@/?")
        && url_chars(fragment, b":@/?")
}

/// A URL as sent to the node: its scheme in lowercase (schemes are case-insensitive, and
/// FreeSWITCH picks the module that fetches a file by it).
pub fn node_url(url: &str) -> String {
    match url.find("://") {
        Some(at) => format!("{}{}", url[..at].to_ascii_lowercase(), &url[at..]),
        None => url.to_owned(),
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/conferences/{room_id}/play",
    operation_id = "conferences_play",
    tag = "conferences",
    summary = "Play audio into a room",
    description = "Each URL is one `conference play` on the node, queued in order; `text` is \
        spoken by the node's voice instead. Rate limit: `conf_play`, 2 s per room. Webhooks: \
        `conference.play.started`, then `conference.play.finished` when the last file ends.",
    params(RoomPath),
    request_body = doc::PlayRequest,
    responses(
        (status = 202, description = "Playing", body = doc::PlayAccepted),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 429, response = RateLimited),
        (status = 502, response = NodeRejected),
        (status = 504, response = NodeTimeout),
    )
)]
async fn play<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(body): JsonBody<PlayBody>,
) -> Answer {
    let id = room_id(&raw)?;
    let urls = match (body.urls, body.text) {
        (Some(urls), None) => urls,
        (None, Some(text)) => {
            let talk = speech(&text, body.language.as_deref(), body.gender.as_deref())
                .map_err(|e| ApiError::bad_request(format!("Invalid text: {e}")))?;
            let file =
                tts_file(&talk).map_err(|e| ApiError::bad_request(format!("Invalid text: {e}")))?;
            let op = st.rooms().play(&app, &id, &[file], None).await?;
            return Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "operation_id": op, "status": "in_progress" })),
            ));
        }
        _ => {
            return Err(ApiError::bad_request(
                "Give either urls or text (exactly one)",
            ));
        }
    };
    if urls.is_empty() || urls.len() > MAX_URLS {
        return Err(ApiError::bad_request_with(
            "Invalid urls: between 1 and 128 URLs",
            json!({ "count": urls.len() }),
        ));
    }
    if let Some(bad) = urls.iter().find(|u| !valid_url(u)) {
        return Err(ApiError::bad_request_with(
            "Invalid url: HTTP/HTTPS URLs only",
            json!({ "url": bad.chars().take(200).collect::<String>() }),
        ));
    }
    let urls: Vec<String> = urls.iter().map(|u| node_url(u)).collect();
    let op = st.rooms().play(&app, &id, &urls, None).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "operation_id": op, "status": "in_progress" })),
    ))
}

/// Room-level control commands take no body; an empty object is accepted, anything else is not.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NoBody {}

fn playback_answer(id: &RoomId, p: &PlaybackState) -> Json<Value> {
    Json(json!({
        "room_id": id,
        "status": match p.status {
            PlaybackStatus::Playing => "playing",
            PlaybackStatus::Paused => "paused",
            PlaybackStatus::Stopped => "stopped",
        },
        "operation_id": p.operation_id.map(|u| u.to_string()).unwrap_or_default(),
        "volume": p.volume,
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/conferences/{room_id}/pause",
    operation_id = "conferences_pause",
    tag = "conferences",
    summary = "Pause or resume a room's playback",
    description = "A toggle. No body (or `{}`). Rate limit: `conference_control`, 200 ms per \
        room, shared with stop and volume. Webhook: `conference.play.paused` or \
        `conference.play.resumed`.",
    params(RoomPath),
    request_body(content = Option<NoBody>, description = "Nothing, or `{}`"),
    responses(
        (status = 202, description = "Paused or resumed", body = doc::PlaybackAnswer),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 429, response = RateLimited),
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
    let id = room_id(&raw)?;
    let p = st.rooms().pause(&app, &id).await?;
    Ok((StatusCode::ACCEPTED, playback_answer(&id, &p)))
}

#[utoipa::path(
    post,
    path = "/api/v1/conferences/{room_id}/stop",
    operation_id = "conferences_stop",
    tag = "conferences",
    summary = "Stop a room's playback",
    description = "No body (or `{}`). Rate limit: `conference_control`, 200 ms per room, shared \
        with pause and volume. Webhook: `conference.play.stopped`.",
    params(RoomPath),
    request_body(content = Option<NoBody>, description = "Nothing, or `{}`"),
    responses(
        (status = 202, description = "Stopped", body = doc::PlaybackAnswer),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 429, response = RateLimited),
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
    let p = st.rooms().stop(&app, &id).await?;
    Ok((StatusCode::ACCEPTED, playback_answer(&id, &p)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct VolumeBody {
    /// dB: negative attenuates, positive amplifies.
    #[schema(minimum = -50, maximum = 7, example = 2)]
    #[serde(deserialize_with = "integer")]
    volume: i64,
}

#[utoipa::path(
    post,
    path = "/api/v1/conferences/{room_id}/volume",
    operation_id = "conferences_volume",
    tag = "conferences",
    summary = "Set a room's playback volume",
    description = "Applied at once while something plays, and to the next play. Rate limit \
        (only when something plays): `conference_control`, 200 ms per room, shared with pause \
        and stop. Webhook: `conference.play.volume_changed`.",
    params(RoomPath),
    request_body = VolumeBody,
    responses(
        (status = 202, description = "Set", body = doc::PlaybackAnswer),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 429, response = RateLimited),
        (status = 502, response = NodeRejected),
        (status = 504, response = NodeTimeout),
    )
)]
async fn volume<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(body): JsonBody<VolumeBody>,
) -> Answer {
    let id = room_id(&raw)?;
    if !(-50..=7).contains(&body.volume) {
        return Err(ApiError::bad_request_with(
            "Invalid volume: must be between -50 and 7",
            json!({ "volume": body.volume }),
        ));
    }
    let p = st.rooms().volume(&app, &id, body.volume as i32).await?;
    Ok((StatusCode::ACCEPTED, playback_answer(&id, &p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn valid_url_is_the_documented_pattern(
            scheme in "(https?|HTTP|hTtPs|ftp)://|",
            rest in "[a-zA-Z0-9%/?#:@'{},. ~!()*+;=&$_\\\"\\[\\]é-]{0,16}",
        ) {
            let url = format!("{scheme}{rest}");
            let pattern = regex::Regex::new(URL_PATTERN).map_err(|e| {
                proptest::test_runner::TestCaseError::fail(e.to_string())
            })?;
            proptest::prop_assert_eq!(valid_url(&url), pattern.is_match(&url), "{}", url);
        }
    }

    #[test]
    fn names_and_urls_follow_the_contract() {
        for ok in ["a", "weekly-standup", "A_1", &"x".repeat(64)] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-a", "_a", "a b", "ä", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(valid_url("https://cdn.example.com/a.wav"));
        assert!(valid_url("HTTP://x/a.mp3?x=1"));
        assert_eq!(node_url("HtTpS://X/A.wav"), "https://X/A.wav");
        assert!(valid_url(
            "https://user@cdn.example.com:8443/a%20b.wav?sig=a+b&x=(1)#t=2"
        ));
        for bad in [
            "https://x/a%2",
            "https://x/a%zz.wav",
            "https://x/a#b#c",
            "https://x/é.wav",
            "https://x/it's.wav",
            "https://?a",
            "https://:80/a.wav",
            "https://x:8a/a.wav",
            "https://a@b@c/",
            "ftp://x/a.wav",
            "https://",
            "/tmp/a.wav",
            "https://x/a b.wav",
            "https://x/{a}",
            "https://x/a,b",
        ] {
            assert!(!valid_url(bad), "{bad}");
        }
    }
}
