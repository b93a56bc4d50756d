//! The path and query parameters of the document: the id formats the handlers parse and the
//! paging parameters of the listings.

use utoipa::IntoParams;
use uuid::Uuid;

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

/// A page of the delivery log.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// The `cursor` of the previous page (an attempt id, `<ms>-<n>`).
    #[param(pattern = r"^([0-9]{1,19}-[0-9]{1,19})?$")]
    pub cursor: Option<String>,
    /// At most this many attempts (default 50, at most 500 are returned).
    #[param(minimum = 1, maximum = 9223372036854775807_i64)]
    pub limit: Option<u64>,
}

/// A webhook message id, `msg_…`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MessagePath {
    #[param(example = "msg_1714000000000-0")]
    pub id: String,
}
