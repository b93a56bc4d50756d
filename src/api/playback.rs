//! `/api/v1/conferences/{room_id}/play|pause|stop|volume`: what a room hears, URLs or spoken
//! text, and the controls of its playback; the URL rule every played file follows.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::conferences::room_id;
use super::extract::{IdPath, JsonBody, integer};
use super::openapi::errors::{BadRequest, Conflict, Forbidden, NotFound};
use super::openapi::errors::{NodeRejected, NodeTimeout, RateLimited};
use super::openapi::params::RoomPath;
use super::openapi::schemas as doc;
use super::{ApiError, ApiState, Caller};
use crate::conference::actions::speech;
use crate::conference::{PlaybackStatus, RoomId};
use crate::node::commands::tts_file;
use crate::rooms::PlaybackState;
use crate::store::Store;

type Answer = Result<(StatusCode, Json<Value>), ApiError>;

pub fn routes<S: Store>() -> Router<ApiState<S>> {
    Router::new()
        .route("/api/v1/conferences/{room_id}/play", post(play::<S>))
        .route("/api/v1/conferences/{room_id}/pause", post(pause::<S>))
        .route("/api/v1/conferences/{room_id}/stop", post(stop::<S>))
        .route("/api/v1/conferences/{room_id}/volume", post(volume::<S>))
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
    let files = match (body.urls, body.text) {
        (Some(urls), None) => checked_urls(&st, &urls).await?,
        (None, Some(text)) => vec![spoken(
            &text,
            body.language.as_deref(),
            body.gender.as_deref(),
        )?],
        _ => {
            return Err(ApiError::bad_request(
                "Give either urls or text (exactly one)",
            ));
        }
    };
    let op = st.rooms().play(&app, &id, &files, None).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "operation_id": op, "status": "in_progress" })),
    ))
}

/// A play's URLs as the node gets them (1 to 128, each one http/https URL of the rule, each
/// one the node may fetch).
async fn checked_urls<S: Store>(
    st: &ApiState<S>,
    urls: &[String],
) -> Result<Vec<String>, ApiError> {
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
    for url in urls {
        st.fetchable("url", url).await?;
    }
    Ok(urls.iter().map(|u| node_url(u)).collect())
}

/// Text the node speaks, checked as a talk action's, as the file it plays
/// (`tts://flite|<voice>|<text>`): for a room's play and a member's announcement.
pub(super) fn spoken(
    text: &str,
    language: Option<&str>,
    gender: Option<&str>,
) -> Result<String, ApiError> {
    let invalid = |e: &dyn std::fmt::Display| ApiError::bad_request(format!("Invalid text: {e}"));
    let talk = speech(text, language, gender).map_err(|e| invalid(&e))?;
    tts_file(&talk).map_err(|e| invalid(&e))
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
    fn urls_follow_the_contract() {
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
