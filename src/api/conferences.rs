//! `/api/v1/conferences`: create, list, read, members, delete, and room playback.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::extract::known_params;
use super::extract::{IdPath, JsonBody, METADATA_FILTER, PageQuery, QueryParams, iso8601};
use super::openapi::errors::{BadRequest, Forbidden, NameTakenError, NotFound};
use super::openapi::errors::{NodeRejected, NodeTimeout};
use super::openapi::params::{Paging, RoomPath, RoomsListed};
use super::openapi::schemas as doc;
use super::resource::ConferenceBody;
use super::{ApiError, ApiState, Caller, views};
use crate::conference::RoomType;
use crate::conference::{Action, AppId, Beep, Metadata, PlaybackStatus, Room, RoomId, RoomStatus};
use crate::rooms::ServiceError;
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
        .route("/api/v1/conferences/{room_id}/lock", post(lock::<S>))
        .route("/api/v1/conferences/{room_id}/unlock", post(unlock::<S>))
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
    description = "Live rooms, oldest first, one page at a time, each with its status, type, \
        node, playback, active recording and metadata; with `?ended=true`, the rooms that \
        ended and are still kept (the retention) instead. `?metadata.<key>=<value>` (one or \
        more) keeps the rooms whose metadata has that top-level key with that value (a string \
        equal to it, or a number or boolean written so); a filtered page may hold fewer rooms \
        than `limit`, and the cursor still leads on. Any other query parameter is a 400.",
    params(Paging, RoomsListed),
    responses(
        (status = 200, description = "A page of rooms", body = doc::ConferenceList),
        (status = 400, response = BadRequest),
    )
)]
async fn list<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    page: PageQuery,
    QueryParams(query): QueryParams<Vec<(String, String)>>,
) -> Answer {
    known_params(&query, &["limit", "cursor", "ended", METADATA_FILTER])?;
    let ended = match query
        .iter()
        .find(|(k, _)| k == "ended")
        .map(|(_, v)| v.as_str())
    {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::bad_request("Invalid ended: true or false")),
    };
    let wanted = metadata_filter(query);
    let scope = rooms_scope(&app);
    let after = match &page.cursor {
        Some(c) => Some(
            st.cursors()
                .decode_at(&scope, c)
                .map_err(|_| ApiError::bad_request("Invalid cursor"))?,
        ),
        None => None,
    };
    let found = st
        .rooms()
        .list(&app, after, page.limit(200), !ended)
        .await?;
    let conferences: Vec<Value> = found
        .items
        .iter()
        .filter(|r| !ended || r.status == RoomStatus::Terminated)
        .filter(|r| matches(r.metadata.as_ref(), &wanted))
        .map(|r| {
            json!({
                "room_id": r.id,
                "name": r.name,
                "members": r.confirmed_members().count(),
                "created_at": iso8601(r.created_at),
                "updated_at": iso8601(r.updated_at),
                "type": r.kind,
                "status": r.status,
                "node": r.node,
                "playback_status": r.playback.status,
                "playback_volume": r.playback.volume,
                "playback_urls": r.playback.urls,
                "recording_id": r.recording.unwrap_or(uuid::Uuid::nil()),
                "metadata": r.metadata,
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

/// The `metadata.<key>=<value>` pairs of a listing's query.
fn metadata_filter(query: Vec<(String, String)>) -> Vec<(String, String)> {
    query
        .into_iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("metadata.")?.to_owned(), v)))
        .collect()
}

/// Whether the metadata (a room's or a member's) holds every `key` of `wanted` with its value.
fn matches(metadata: Option<&Metadata>, wanted: &[(String, String)]) -> bool {
    wanted.iter().all(|(k, v)| metadata_has(metadata, k, v))
}

/// Whether the metadata holds `key` with `value` (a string equal to it, or another JSON value
/// written as it).
fn metadata_has(metadata: Option<&Metadata>, key: &str, value: &str) -> bool {
    match metadata.and_then(|m| m.get(key)) {
        Some(Value::String(s)) => s == value,
        Some(Value::Null) | None => false,
        Some(other) => value.parse::<Value>().is_ok_and(|v| v == *other),
    }
}

/// One room as `GET` shows it; `created_at` is Unix seconds as a string (the contract says so).
/// Serialized straight from the room (no intermediate `Value`): this is the hottest read.
#[derive(serde::Serialize)]
pub(super) struct RoomView<'a> {
    room_id: &'a RoomId,
    name: &'a str,
    created_at: String,
    updated_at: String,
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
    empty_timeout: u64,
    departure_timeout: u64,
    /// When the room's lifetime rules end it (`timeout`, `empty_timeout`,
    /// `departure_timeout`), if one is due.
    #[serde(serialize_with = "ends_at")]
    ends_at: &'a Room,
    max_participants: u64,
    wait_for_moderator: bool,
    waiting_for_moderator: bool,
    locked: bool,
    metadata: &'a Option<crate::conference::Metadata>,
    beep: Beep,
    pre_actions: &'a [Action],
    post_actions: &'a [Action],
    #[serde(serialize_with = "ids")]
    conferencecall_ids: &'a Room,
    recording_id: uuid::Uuid,
    recording_ids: Vec<uuid::Uuid>,
    #[serde(serialize_with = "dialing")]
    dialing: &'a Room,
    node: &'a crate::conference::NodePrefix,
    #[serde(serialize_with = "migrating")]
    migrating: &'a Room,
    #[serde(serialize_with = "streams")]
    streams: &'a Room,
}

/// The room's live audio streams.
fn streams<S: serde::Serializer>(r: &&Room, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(super::streams::live(r))
}

/// The room's move to another node under way, or `null`.
fn migrating<S: serde::Serializer>(r: &&Room, s: S) -> Result<S::Ok, S::Error> {
    use serde::Serialize;
    match &r.migration {
        None => s.serialize_none(),
        Some(m) => json!({
            "from_node": m.from,
            "to_node": m.to,
            "since": iso8601(m.started_at),
        })
        .serialize(s),
    }
}

/// When and why the room's lifetime rules end it, or `null`.
fn ends_at<S: serde::Serializer>(r: &&Room, s: S) -> Result<S::Ok, S::Error> {
    use serde::Serialize;
    match r.lifetime_end() {
        None => s.serialize_none(),
        Some((at, rule)) => json!({ "at": iso8601(at), "reason": rule.as_str() }).serialize(s),
    }
}

/// The calls the room is placing (dial-outs not answered and in yet).
fn dialing<S: serde::Serializer>(r: &&Room, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(r.dialouts.iter().map(|d| {
        json!({
            "participant_id": d.id,
            "uuid": d.session,
            "to": d.to,
            "state": d.state.as_str(),
        })
    }))
}

/// The room's conferencecall ids, written without collecting them first.
fn ids<S: serde::Serializer>(r: &&Room, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(r.members.values().map(|m| m.conferencecall_id))
}

pub(super) fn room_view(r: &Room) -> RoomView<'_> {
    RoomView {
        node: &r.node,
        migrating: r,
        room_id: &r.id,
        name: &r.name,
        created_at: r.created_at.div_euclid(1_000_000).to_string(),
        updated_at: iso8601(r.updated_at),
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
        empty_timeout: r.empty_timeout,
        departure_timeout: r.departure_timeout,
        ends_at: r,
        max_participants: r.max_participants,
        wait_for_moderator: r.wait_for_moderator,
        waiting_for_moderator: r.waiting_for_moderator,
        locked: r.locked,
        metadata: &r.metadata,
        beep: r.beep,
        pre_actions: &r.pre_actions,
        post_actions: &r.post_actions,
        conferencecall_ids: r,
        recording_id: r.recording.unwrap_or(uuid::Uuid::nil()),
        recording_ids: views::recording_ids(r),
        dialing: r,
        streams: r,
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/conferences/{room_id}/lock",
    operation_id = "conferences_lock",
    tag = "conferences",
    summary = "Lock a room",
    description = "No body (or `{}`). A locked room refuses joins and dial-outs (409 \
        \"Room is locked\"); the members in it stay, and a move to another node carries the \
        lock. Locking a locked room changes nothing. Webhook: `conference.locked`, once.",
    params(RoomPath),
    request_body(content = Option<super::playback::NoBody>, description = "Nothing, or `{}`"),
    responses(
        (status = 200, description = "The room, locked", body = doc::ConferenceDetail),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = super::openapi::errors::Conflict),
    )
)]
async fn lock<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(super::playback::NoBody {}): JsonBody<super::playback::NoBody>,
) -> Result<axum::response::Response, ApiError> {
    let room = st.rooms().set_lock(&app, &room_id(&raw)?, true).await?;
    Ok(Json(room_view(&room)).into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/conferences/{room_id}/unlock",
    operation_id = "conferences_unlock",
    tag = "conferences",
    summary = "Unlock a room",
    description = "No body (or `{}`). Joins and dial-outs are taken again. Unlocking an \
        unlocked room changes nothing. Webhook: `conference.unlocked`, once.",
    params(RoomPath),
    request_body(content = Option<super::playback::NoBody>, description = "Nothing, or `{}`"),
    responses(
        (status = 200, description = "The room, unlocked", body = doc::ConferenceDetail),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = super::openapi::errors::Conflict),
    )
)]
async fn unlock<S: Store>(
    State(st): State<ApiState<S>>,
    Caller(app): Caller,
    IdPath(raw): IdPath,
    JsonBody(super::playback::NoBody {}): JsonBody<super::playback::NoBody>,
) -> Result<axum::response::Response, ApiError> {
    let room = st.rooms().set_lock(&app, &room_id(&raw)?, false).await?;
    Ok(Json(room_view(&room)).into_response())
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
        application's room is a 404 here. `?metadata.<key>=<value>` (one or more) keeps the \
        members whose metadata has that top-level key with that value (a string equal to it, \
        or a number or boolean written so), as the rooms listing does; a filtered page may \
        hold fewer members than `limit`, and the cursor still leads on. Any other query \
        parameter is a 400.",
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
    QueryParams(query): QueryParams<Vec<(String, String)>>,
) -> Answer {
    known_params(&query, &["limit", "cursor", METADATA_FILTER])?;
    let wanted = metadata_filter(query);
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
        .filter(|m| matches(m.metadata.as_ref(), &wanted))
        .map(views::member)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_contract() {
        for ok in ["a", "weekly-standup", "A_1", &"x".repeat(64)] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-a", "_a", "a b", "ä", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
