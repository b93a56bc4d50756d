//! The error answers of [`crate::api::error`] in the document: the body
//! `{"success": false, "error": "...", "detail": ...}` and one reusable response per status
//! code, so each operation names the statuses it can answer with and nothing more.

use serde_json::Value;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToResponse, ToSchema};

use super::schemas::RoomRef;

/// `false`, the only value `success` takes.
pub struct AlwaysFalse;

impl PartialSchema for AlwaysFalse {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Boolean)
            .enum_values(Some([false]))
            .into()
    }
}

impl ToSchema for AlwaysFalse {}

/// Every failure has this body.
#[derive(ToSchema)]
pub struct ErrorBody {
    #[schema(inline)]
    pub success: AlwaysFalse,
    /// What went wrong, for a person.
    #[schema(example = "Room not found")]
    pub error: String,
    /// More about it, or `null`: the offending value (`{"room_id": …}`, `{"volume": …}`), the
    /// parser's `reason`, the media node's refusal `code`, the `node` that is down…
    pub detail: Value,
}

/// The body of a 429.
#[derive(ToSchema)]
pub struct RateLimitError {
    #[schema(inline)]
    pub success: AlwaysFalse,
    #[schema(example = "Rate limit exceeded")]
    pub error: String,
    pub detail: RateLimitDetail,
}

/// Which limit refused, and for how long.
#[derive(ToSchema)]
pub struct RateLimitDetail {
    pub group: RateLimitGroup,
    /// Milliseconds until the group lets this request through, rounded up.
    pub retry_after_ms: u64,
}

/// `global` is the per-application request rate; the others are the contract's cooldowns:
/// `conf_play` (play, 2 s per room), `conference_control` (pause/stop/volume, 200 ms per room),
/// `conference` (join/leave, 2 s per session), `conference_mute` (mute/unmute, 2 s per session),
/// `conference_deaf` (deaf/undeaf) and `conference_hold` (hold/unhold), each 2 s per session,
/// `conference_announce` (announce to a member, 2 s per session, the `conf_play` window),
/// `conference_coach` (coach/uncoach, 2 s per session) and `conference_dialout` (dial-out, 2 s
/// per destination, the `conference` window).
/// `auth_failures`: too many wrong keys from this client address in the last minute (every
/// keyed request from it is refused until the minute is over).
#[derive(serde::Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitGroup {
    Global,
    AuthFailures,
    ConfPlay,
    ConferenceControl,
    Conference,
    ConferenceMute,
    ConferenceDeaf,
    ConferenceHold,
    ConferenceAnnounce,
    ConferenceCoach,
    ConferenceAudio,
    ConferenceDialout,
}

/// The body of a 429 for a share or a quota the application holds whole.
#[derive(ToSchema)]
pub struct ShareError {
    #[schema(inline)]
    pub success: AlwaysFalse,
    #[schema(example = "Quota reached: this application may have at most 1000 live rooms")]
    pub error: String,
    pub detail: ShareDetail,
}

/// Which share (`limit`: `requests_in_flight_per_app`, `event_streams_per_app`) or quota
/// (`quota`: `live_rooms`, `members_per_room`, `dialouts_in_flight`, `recordings`), and how
/// many the application may hold.
#[derive(ToSchema)]
pub struct ShareDetail {
    pub limit: Option<String>,
    pub quota: Option<String>,
    pub most: u64,
}

/// A 429: a rate limit or cooldown ([`RateLimitError`], `detail.group`), or a share or quota
/// held whole ([`ShareError`], `detail.most`).
pub struct RateLimitAnswer;

impl PartialSchema for RateLimitAnswer {
    fn schema() -> RefOr<Schema> {
        utoipa::openapi::schema::OneOfBuilder::new()
            .item(utoipa::openapi::Ref::from_schema_name("RateLimitError"))
            .item(utoipa::openapi::Ref::from_schema_name("ShareError"))
            .into()
    }
}

impl ToSchema for RateLimitAnswer {}

/// The 409 of a create whose name is taken: `detail.room_id` is the existing room.
#[derive(ToSchema)]
pub struct NameTakenError {
    #[schema(inline)]
    pub success: AlwaysFalse,
    #[schema(example = "Conference name already taken for this application")]
    pub error: String,
    pub detail: RoomRef,
}

/// Invalid input: a malformed or unknown path id, a malformed query parameter or one the
/// operation does not take ("Invalid query", `detail.reason` naming it), a malformed JSON body,
/// an unknown field, a value out of its range, or a page token (`cursor`, `page_token`) that
/// this API did not hand out for this listing ("Invalid cursor", "Invalid page_token").
#[derive(ToResponse)]
pub struct BadRequest(pub ErrorBody);

/// `X-App-ID` or `X-API-Key` missing, or the pair is wrong.
#[derive(ToResponse)]
pub struct Unauthorized(pub ErrorBody);

/// The room, session, recording or conferencecall belongs to another application.
#[derive(ToResponse)]
pub struct Forbidden(pub ErrorBody);

/// No such room, session, recording or conferencecall (or not in the state asked about).
#[derive(ToResponse)]
pub struct NotFound(pub ErrorBody);

/// The request conflicts with the current state.
#[derive(ToResponse)]
pub struct Conflict(pub ErrorBody);

/// "command_uid was already used for a different request": the key was used for another
/// command, or other parameters, of this session within its window (`detail.used_for` names the
/// first command), or for a dial-out of this room to another destination (`detail.used_for` is
/// that destination). On a stream or a listen-in: values that are each well-formed but do not
/// go together (`detail.field` names the one refused).
#[derive(ToResponse)]
pub struct Unprocessable(pub ErrorBody);

/// The body is longer than the API reads (64 KiB); `detail.limit_bytes` says how long it may be.
#[derive(ToResponse)]
pub struct PayloadTooLarge(pub ErrorBody);

/// A body that is not declared `Content-Type: application/json`.
#[derive(ToResponse)]
pub struct UnsupportedMediaType(pub ErrorBody);

/// A limit refused the request: the application's global request rate, the operation's
/// cooldown group or the address's wrong-key throttle (`detail.group`, `detail.retry_after_ms`),
/// or the application holds its whole share of the requests in progress or of event streams,
/// or one of its quotas (`detail.limit` or `detail.quota`, `detail.most`). Nothing was sent to
/// the media node.
#[derive(ToResponse)]
#[response(headers(
    ("Retry-After" = u64, description = "Seconds to wait before retrying, rounded up (at least 1)")
))]
pub struct RateLimited(pub RateLimitAnswer);

/// The body did not arrive whole within the instance's `body_timeout_ms` (10 s by default);
/// `detail.limit_ms` says how long it may take.
#[derive(ToResponse)]
pub struct RequestTimeout(pub ErrorBody);

/// The media node refused the command (it answered `-ERR`); `detail.code` is
/// `node_rejected`. The node's own answer is logged, never returned.
#[derive(ToResponse)]
pub struct NodeRejected(pub ErrorBody);

/// The media node (`detail.node`) or the store (`detail.reason`) cannot be reached, the node is
/// draining, or no healthy node can take a new room. Worth a retry (here or on another
/// controller instance) after `Retry-After`.
#[derive(ToResponse)]
#[response(headers(
    ("Retry-After" = u64, description = "Seconds to wait before retrying (1)")
))]
pub struct Unavailable(pub ErrorBody);

/// The media node did not answer in time.
#[derive(ToResponse)]
pub struct NodeTimeout(pub ErrorBody);

/// Stored data could not be read.
#[derive(ToResponse)]
pub struct Internal(pub ErrorBody);
