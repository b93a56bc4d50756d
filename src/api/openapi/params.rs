//! The path and query parameters of the document: the id formats the handlers parse and the
//! paging parameters of the listings.

use utoipa::IntoParams;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};
use uuid::Uuid;

use super::schemas::DeliveryOutcome;

/// The room in the path: `{5-character node prefix}-room-{uuid}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RoomPath {
    #[param(
        pattern = r"^[A-Za-z0-9]{5}-room-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        example = "acW68-room-550e8400-e29b-41d4-a716-446655440000"
    )]
    pub room_id: String,
}

/// The conference in a `/v1.0` path: a room id, `{5-character node prefix}-room-{uuid}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ConferencePath {
    #[param(
        pattern = r"^[A-Za-z0-9]{5}-room-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        example = "acW68-room-550e8400-e29b-41d4-a716-446655440000"
    )]
    pub id: String,
}

/// The session in the path: `{5-character node prefix}-{channel uuid}`. An id that cannot
/// exist is a 404, like an unknown one.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SessionPath {
    #[param(
        pattern = r"^[A-Za-z0-9]{5}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        example = "acW68-28ec5c5e-0cdb-4582-983d-48f16177e7f7"
    )]
    pub uuid: String,
}

/// A recording or conferencecall id in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UuidPath {
    pub id: Uuid,
}

/// `?ended=` of the rooms listing.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RoomsListed {
    /// `true`: the rooms that have ended and are still kept (`retention`), instead of the live
    /// ones.
    pub ended: Option<bool>,
}

/// `?limit=&cursor=` of an `/api/v1` listing.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// How many items to return: a positive integer, default 50, clamped to 200 (rooms,
    /// sessions) or 1000 (members).
    #[param(minimum = 1, maximum = 9223372036854775807_i64)]
    pub limit: Option<u64>,
    /// The `cursor` of the previous page, passed through unchanged. Opaque and signed: a
    /// forged or foreign one is a 400.
    pub cursor: Option<String>,
}

/// `?page_size=&page_token=` of a `/v1.0` listing.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct V10Paging {
    /// How many conferences to return: a positive integer, default 10, clamped to 100.
    #[param(minimum = 1, maximum = 9223372036854775807_i64)]
    pub page_size: Option<u64>,
    /// The `next_page_token` of the previous page.
    pub page_token: Option<String>,
}

/// A position in the event feed.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// The `cursor` of an earlier page (an event id, `<ms>-<n>`; over a store that spreads the
    /// app over shards, one `<ms>-<n>` per shard, comma-separated); none (or empty) = from the
    /// oldest.
    #[param(
        pattern = r"^([0-9]{1,19}-[0-9]{1,19}(,[0-9]{1,19}-[0-9]{1,19})*)?$",
        example = "1714000000000-0"
    )]
    pub after: Option<String>,
    /// At most this many events (default 100, at most 1000 are returned).
    #[param(minimum = 1, maximum = 9223372036854775807_i64)]
    pub limit: Option<u64>,
}

/// Where the stream starts.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// An event id (`<ms>-<n>`, or one per shard, comma-separated); the stream sends what
    /// follows it. `now`: only events from
    /// now on (and the last few seconds', to cover clocks a little apart), the stream starting
    /// with an `id:`-only message naming that position to resume from. `Last-Event-ID` (a
    /// reconnecting browser sends it) takes precedence.
    #[param(
        pattern = r"^([0-9]{1,19}-[0-9]{1,19}(,[0-9]{1,19}-[0-9]{1,19})*|now)?$",
        example = "1714000000000-0"
    )]
    pub after: Option<String>,
}

/// Where a reconnecting stream resumes.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct ResumeHeader {
    /// The last event id seen (a reconnecting browser sends it); empty = none. Takes
    /// precedence over `after`.
    #[param(
        rename = "Last-Event-ID",
        nullable = false,
        pattern = r"^([0-9]{1,19}-[0-9]{1,19}(,[0-9]{1,19}-[0-9]{1,19})*)?$",
        example = "1714000000000-0"
    )]
    pub last_event_id: Option<String>,
}

/// A page of the delivery log, and which attempts it holds: those that match every filter
/// given (`outcome`, `room_id`, `type`).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// The `cursor` of the previous page (an attempt id, `<ms>-<n>`, or `<ms>-<n>.<k>` for
    /// one of several attempts written together), with the same filters.
    #[param(pattern = r"^([0-9]{1,19}-[0-9]{1,19}(\.[0-9]{1,9})?)?$")]
    pub cursor: Option<String>,
    /// At most this many attempts (default 50, at most 500 are returned). A filtered page may
    /// hold fewer and still have a `cursor`: it read 2,000 attempts of the log without finding
    /// more.
    #[param(minimum = 1, maximum = 9223372036854775807_i64)]
    pub limit: Option<u64>,
    /// Only the attempts that came to this: `dead_letter` finds every message given up on
    /// (send it again with `POST /api/v1/webhooks/deliveries/{id}/retry`).
    #[param(inline)]
    pub outcome: Option<DeliveryOutcome>,
    /// Only the attempts of this room's webhooks.
    #[param(
        pattern = r"^[A-Za-z0-9]{5}-room-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        example = "acW68-room-550e8400-e29b-41d4-a716-446655440000"
    )]
    pub room_id: Option<String>,
    /// Only the attempts of this type of webhook (described by [`webhook_type`]).
    #[param(rename = "type", schema_with = webhook_type)]
    pub kind: Option<String>,
}

/// The `type` of a webhook: one of the names of the document's `webhooks`. (The parameter's
/// own description is lost with `schema_with`: the schema carries it.)
fn webhook_type() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "Only the attempts of this type of webhook (one of this document's `webhooks`).",
        ))
        .enum_values(Some(super::hooks::KINDS.iter().map(|k| k.as_str())))
        .build()
}

/// A webhook message id, `msg_…`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MessagePath {
    #[param(example = "msg_1714000000000-0")]
    pub id: String,
}
