//! The shapes of what the handlers answer, for the document only: the handlers build their JSON
//! with `json!`, and these types describe it field by field, in the same order. The domain's
//! enums are mirrored here (the domain knows nothing of OpenAPI); a test keeps both in step, and
//! `tests/api/openapi.rs` checks real answers against these schemas.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};
use uuid::Uuid;

use crate::api::resource::ConferenceBody;

// ---- the domain's vocabularies ----

/// `conference` stays up until deleted or timed out; `connect` bridges two parties and ends
/// when one leaves.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoomType {
    Conference,
    Connect,
}

/// When a room beeps: as a member joins, leaves, both, or never.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Beep {
    None,
    Enter,
    Exit,
    Both,
}

/// `starting` until the room's FreeSWITCH conference exists, then `progressing`; `terminating`
/// once deleted (or timed out), `terminated` when the node has let it go.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoomStatus {
    Starting,
    Progressing,
    Terminating,
    Terminated,
}

/// A participation: `joining` until the node confirms it, `leaving` until the node confirms
/// the departure, then `leaved` (the seeds' word).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MemberStatus {
    Joining,
    Joined,
    Leaving,
    Leaved,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PlaybackStatus {
    Playing,
    Paused,
    Stopped,
}

/// The recording's own life, on the media node. `initiating` (asked; the node has not
/// confirmed) → `recording` (its start-recording: webhook `conference.recording.started`) ⇄
/// `paused` (`conference.recording.paused` / `conference.recording.resumed`); from
/// `recording` or `paused` → `stopping` (a stop asked, not confirmed) → `ended`
/// (`conference.recording.finished`, with the node's `duration_ms`). A recording also ends
/// from `initiating`, `recording` or `paused` without a stop when its room ends or the node
/// refuses or loses it (`finished` too, with `error`). `ended` is final; the file downloads
/// from then (`local`). With `s3`, wait on `upload_status` instead.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecordingStatus {
    Initiating,
    Recording,
    Paused,
    Stopping,
    Ended,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionState {
    Ringing,
    Answered,
    Parked,
    Active,
    Ended,
}

/// Characters a `talk` text may not contain (controls, and `' " \ ^ | { } `` ` ``), and the
/// whitespace it may not consist of only: the rule of `conference::actions`, as a pattern.
const NOT_SPOKEN: &str = r#"'"\\^|{}`\u0000-\u001f\u007f-\u009f"#;
const BLANK: &str = r" \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// The pattern of a `talk` text.
pub fn talk_text_pattern() -> String {
    format!("^[^{NOT_SPOKEN}]*[^{NOT_SPOKEN}{BLANK}][^{NOT_SPOKEN}]*$")
}

/// An audio file to play: an http/https URL, at most 2048 characters, in RFC 3986's characters
/// without `'` and `,`.
pub struct PlayUrl;

impl PartialSchema for PlayUrl {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::Custom("uri".into())))
            .max_length(Some(2048))
            .pattern(Some(crate::api::playback::URL_PATTERN))
            .into()
    }
}

impl ToSchema for PlayUrl {}

/// Text the node speaks (a room play, an announcement): as a talk action's `text`.
pub struct SpokenText;

impl PartialSchema for SpokenText {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "1 to 1024 characters, not only whitespace, without control characters or any \
                 of ' \" \\ ^ | { } ` (they would change a FreeSWITCH command line)",
            ))
            .min_length(Some(1))
            .max_length(Some(1024))
            .pattern(Some(talk_text_pattern()))
            .examples([Value::from("You have one minute left.")])
            .into()
    }
}

impl ToSchema for SpokenText {}

/// The only action type a room accepts.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ActionType {
    Talk,
}

/// The languages `talk` speaks (flite's English voices).
#[derive(Serialize, ToSchema)]
pub enum TalkLanguage {
    #[serde(rename = "en-US")]
    EnUs,
    #[serde(rename = "en")]
    En,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TalkGender {
    Female,
    Male,
    Neutral,
}

/// What a `talk` says and in which voice. Other fields are kept and ignored.
pub struct TalkOption;

impl PartialSchema for TalkOption {
    fn schema() -> RefOr<Schema> {
        let text = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "1 to 1024 characters, not only whitespace, without control characters or any \
                 of ' \" \\ ^ | { } ` (they would change a FreeSWITCH command line)",
            ))
            .min_length(Some(1))
            .max_length(Some(1024))
            .pattern(Some(talk_text_pattern()))
            .examples([Value::from("Welcome to the conference.")]);
        ObjectBuilder::new()
            .property("text", text)
            .required("text")
            .property("language", Ref::from_schema_name(TalkLanguage::name()))
            .property("gender", Ref::from_schema_name(TalkGender::name()))
            .into()
    }
}

impl ToSchema for TalkOption {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((TalkLanguage::name().into(), TalkLanguage::schema()));
        schemas.push((TalkGender::name().into(), TalkGender::schema()));
    }
}

/// A flow action: `talk` is the one a room accepts (`language` defaults to `en-US`, `gender`
/// to `female`). Sent without `id`/`next_id`, they default to the nil uuid; answers always
/// carry all four.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Action {
    #[schema(required = false)]
    pub id: Uuid,
    #[schema(required = false)]
    pub next_id: Uuid,
    #[serde(rename = "type")]
    pub kind: ActionType,
    #[schema(value_type = TalkOption)]
    pub option: Value,
}

// ---- /api/v1/conferences ----

/// The body of `POST /api/v1/conferences`: a [`ConferenceBody`] whose `name` is required and
/// follows the contract's pattern.
pub struct NewConference;

impl PartialSchema for NewConference {
    fn schema() -> RefOr<Schema> {
        let name = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"))
            .max_length(Some(64));
        let named = ObjectBuilder::new().property("name", name).required("name");
        AllOfBuilder::new()
            .item(Ref::from_schema_name(ConferenceBody::name()))
            .item(named)
            .into()
    }
}

impl ToSchema for NewConference {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((ConferenceBody::name().into(), ConferenceBody::schema()));
        ConferenceBody::schemas(schemas);
    }
}

#[derive(Serialize, ToSchema)]
pub struct ConferenceCreated {
    pub room_id: String,
    #[serde(rename = "type")]
    pub kind: RoomType,
    pub status: RoomStatus,
}

#[derive(Serialize, ToSchema)]
pub struct ConferenceList {
    pub conferences: Vec<ConferenceSummary>,
    /// Pass back as `?cursor=` for the next page; empty when this was the last.
    pub cursor: String,
}

#[derive(Serialize, ToSchema)]
pub struct ConferenceSummary {
    pub room_id: String,
    pub name: String,
    /// Confirmed members.
    pub members: u64,
    /// ISO-8601, UTC, to the second.
    #[schema(example = "2026-05-06T12:34:56Z")]
    pub created_at: String,
    /// When the room last changed (a member, a switch, a play, a recording…): ISO-8601, UTC,
    /// to the second.
    #[schema(example = "2026-05-06T12:35:10Z")]
    pub updated_at: String,
    #[serde(rename = "type")]
    pub kind: RoomType,
    pub status: RoomStatus,
    /// The media node that hosts the room now. A new room is on the node its id's first 5
    /// characters name; a room moved off a drained node keeps its id.
    pub node: String,
    pub playback_status: PlaybackStatus,
    /// dB, −50…7.
    pub playback_volume: i32,
    pub playback_urls: Vec<String>,
    /// The active recording; the nil uuid when none.
    pub recording_id: Uuid,
    /// The application's own data about the room (`null`: none).
    #[schema(value_type = Option<Object>, required = true)]
    pub metadata: Option<serde_json::Value>,
}

/// A room's move to another node (a drain with `migrate: true`).
#[derive(Serialize, ToSchema)]
pub struct Migrating {
    pub from_node: String,
    pub to_node: String,
    /// When the move began (ISO 8601, UTC).
    pub since: String,
}

/// One room as `GET` shows it: the contract's fields, then the conference resource's.
#[derive(Serialize, ToSchema)]
pub struct ConferenceDetail {
    pub room_id: String,
    pub name: String,
    /// Unix seconds, as a string (the contract says so).
    #[schema(example = "1711036800")]
    pub created_at: String,
    /// When the room last changed: ISO-8601, UTC, to the second.
    #[schema(example = "2026-05-06T12:35:10Z")]
    pub updated_at: String,
    /// Confirmed members.
    pub members: u64,
    pub playback_status: PlaybackStatus,
    /// dB, −50…7.
    pub playback_volume: i32,
    pub playback_urls: Vec<String>,
    /// The operation id of the current or last play; empty when there was none.
    pub playback_operation_id: String,
    #[serde(rename = "type")]
    pub kind: RoomType,
    pub status: RoomStatus,
    pub detail: String,
    #[schema(value_type = Object)]
    pub data: Value,
    /// Seconds after creation at which the room ends; 0 = never.
    pub timeout: u64,
    /// Seconds after creation at which the room ends if nobody joined; 0 = never.
    pub empty_timeout: u64,
    /// Seconds after the last member left at which the room ends; 0 = never.
    pub departure_timeout: u64,
    /// When the room's lifetime rules will end it, if one is due now (an empty room with
    /// `empty_timeout` or `departure_timeout`, or a `timeout`); `null` otherwise.
    #[schema(required = true)]
    pub ends_at: Option<EndsAt>,
    /// Most participants at once; 0 = no limit.
    pub max_participants: u64,
    /// Created to wait for a moderator.
    pub wait_for_moderator: bool,
    /// No moderator has joined yet: the members wait, hearing hold music (as the node says:
    /// a moderator joined on the node by other means starts the room too).
    pub waiting_for_moderator: bool,
    /// Locked (`POST …/lock`): joins and dial-outs are refused (409 "Room is locked"); the
    /// members in it stay.
    pub locked: bool,
    /// The application's own data about the room (`null`: none).
    #[schema(value_type = Option<Object>, required = true)]
    pub metadata: Option<serde_json::Value>,
    pub beep: Beep,
    pub pre_actions: Vec<Action>,
    pub post_actions: Vec<Action>,
    pub conferencecall_ids: Vec<Uuid>,
    /// The active recording; the nil uuid when none.
    pub recording_id: Uuid,
    pub recording_ids: Vec<Uuid>,
    /// Calls the room is placing that are not in it yet (`POST …/participants`).
    pub dialing: Vec<Dialing>,
    /// Its live audio streams (`POST …/streams`).
    pub streams: Vec<StreamView>,
    /// The media node that hosts the room now (a room moved off a drained node keeps its id,
    /// which names the node it began on).
    pub node: String,
    /// The room's move to another node, while it is under way (a second or so; commands
    /// meanwhile are answered 503 with `Retry-After`); `null` otherwise.
    #[schema(required = true)]
    pub migrating: Option<Migrating>,
}

/// A live audio stream of a room.
#[derive(Serialize, ToSchema)]
pub struct StreamView {
    pub room_id: String,
    pub stream_id: Uuid,
    pub url: String,
    pub track: StreamTrack,
    /// The member's session id of a `member` track; `null` for `room`.
    #[schema(required = true)]
    pub session: Option<String>,
    pub protocol: StreamProtocol,
    /// 8000 or 16000.
    pub sample_rate: u32,
    pub bidirectional: bool,
    pub status: StreamStatusName,
    /// Why it stopped (`deleted`, `server_closed`, `room_ended`, `member_left`) or failed
    /// (`refused`, `unreachable`, `timeout`, `tls`, `unresolved`, `address_refused`,
    /// `media_unavailable`, `media_lost`, `lost`); `null` while live.
    #[schema(required = true)]
    pub reason: Option<String>,
    /// What went wrong, in words; `null` unless it failed.
    #[schema(required = true)]
    pub error: Option<String>,
    /// Sockets opened to the server so far (more than one after a takeover).
    pub connections: u32,
    /// `server`: the application's server (`POST …/streams`); `listen`: a listen-in, whose
    /// socket a listener opened on the controller (`POST …/listen`).
    pub kind: StreamKind,
    #[schema(value_type = Object)]
    pub parameters: serde_json::Value,
    /// ISO 8601, UTC.
    pub created_at: String,
    #[schema(required = true)]
    pub started_at: Option<String>,
    #[schema(required = true)]
    pub ended_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    Server,
    Listen,
}

/// A listen-in, and where to open its socket.
#[derive(Serialize, ToSchema)]
pub struct ListenView {
    #[serde(flatten)]
    pub stream: StreamView,
    /// Where to open the socket on this controller (a WebSocket, `ws://` or `wss://` as the
    /// API is served): spent by the first socket, good until `expires_at`.
    pub socket_path: String,
    /// ISO 8601, UTC.
    pub expires_at: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StreamTrack {
    Room,
    Member,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StreamProtocol {
    Twilio,
    L16,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = StreamStatus)]
pub enum StreamStatusName {
    Starting,
    Streaming,
    Stopped,
    Failed,
}

#[derive(Serialize, ToSchema)]
pub struct StreamList {
    pub room_id: String,
    pub streams: Vec<StreamView>,
}

/// When and by which rule a room will end.
#[derive(Serialize, ToSchema)]
pub struct EndsAt {
    /// ISO 8601, UTC.
    pub at: String,
    pub reason: EndReason,
}

/// The lifetime rule that ends a room; the `reason` of its `conference.destroyed`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    Timeout,
    EmptyTimeout,
    DepartureTimeout,
}

/// A call the room is placing.
#[derive(Serialize, ToSchema)]
pub struct Dialing {
    pub participant_id: Uuid,
    /// The call's session id (a session of the application from its first ring).
    #[schema(example = "acW68-0b3c2a54-6f7e-4f4c-9a51-2d3f4b5c6d7e")]
    pub uuid: String,
    pub to: String,
    pub state: DialingState,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DialingState {
    Dialing,
    Ringing,
    Answered,
}

#[derive(Serialize, ToSchema)]
pub struct MemberList {
    pub room_id: String,
    pub members: Vec<MemberView>,
    /// Pass back as `?cursor=` for the next page; empty when this was the last.
    pub cursor: String,
}

/// A member the node has confirmed.
#[derive(Serialize, ToSchema)]
pub struct MemberView {
    /// The session id.
    pub uuid: String,
    pub did: String,
    pub caller_id: String,
    /// Not heard by the room (as the node reported).
    pub muted: bool,
    /// Does not hear the room.
    pub deaf: bool,
    /// On hold: hears hold music instead of the room, and is not heard.
    pub held: bool,
    /// Joined as a moderator.
    pub moderator: bool,
    /// Coaching: the session whose member alone hears this one (`null`: heard by everyone).
    pub coaching: Option<String>,
    /// Speaking, as the node's talking events said (for an app with `talking_events`; else
    /// always false), at most the talking interval late.
    pub talking: bool,
    /// The participation's id (`DELETE /api/v1/conferencecalls/{id}` kicks it).
    pub conferencecall_id: Uuid,
    /// When the node confirmed the join (ISO 8601, UTC); `null` while it is joining.
    #[schema(required = true)]
    pub joined_at: Option<String>,
    /// The application's own data about the participation (`null`: none).
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// The volume of what the member says, −4…4, as the node confirmed it (0: unchanged).
    pub volume_in: i32,
    /// The volume of what the member hears, −4…4 (0: unchanged).
    pub volume_out: i32,
    /// The member's energy threshold as the node confirmed it; `null`: the room profile's.
    #[schema(required = true)]
    pub energy: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct RoomRef {
    pub room_id: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlayStatus {
    InProgress,
}

#[derive(Serialize, ToSchema)]
pub struct PlayAccepted {
    /// Names the play in `conference.play.*` webhooks.
    pub operation_id: Uuid,
    pub status: PlayStatus,
}

/// The room's playback after pause, stop or volume.
#[derive(Serialize, ToSchema)]
pub struct PlaybackAnswer {
    pub room_id: String,
    pub status: PlaybackStatus,
    /// The current or last play; empty when there was none.
    pub operation_id: String,
    /// dB, −50…7.
    pub volume: i32,
}

// ---- /api/v1/sessions ----

#[derive(Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionView>,
    /// Pass back as `?cursor=` for the next page; empty when this was the last.
    pub cursor: String,
}

/// A call of the application.
#[derive(Serialize, ToSchema)]
pub struct SessionView {
    pub uuid: String,
    /// The number dialled.
    pub did: String,
    pub caller_id: String,
    pub caller_name: String,
    pub state: SessionState,
    /// ISO-8601, UTC, to the second.
    pub created_at: String,
    #[schema(required = true)]
    pub answered_at: Option<String>,
    #[schema(required = true)]
    pub ended_at: Option<String>,
    #[schema(required = true)]
    pub hangup_cause: Option<String>,
}

/// A call with the room it is in.
#[derive(Serialize, ToSchema)]
pub struct SessionDetail {
    #[serde(flatten)]
    pub session: SessionView,
    /// The room the session is in (joining, joined or leaving), if any.
    #[schema(required = true)]
    pub room_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JoinStatus {
    Joining,
    AlreadyJoined,
}

/// 202 `joining` (confirmed later by `conference.member.joined`), or 200 `already_joined`.
#[derive(Serialize, ToSchema)]
pub struct JoinAnswer {
    pub status: JoinStatus,
    pub room_id: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MembershipStatus {
    Leaving,
    Muted,
    Unmuted,
    Deaf,
    Undeaf,
    Held,
    Unheld,
}

/// Spoken text, as a talk action's options: what the node's voice says.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Speech {
    #[schema(value_type = SpokenText)]
    pub text: String,
    /// `en-US` (the default) or `en`.
    pub language: Option<TalkLanguage>,
    /// The voice: `female` (the default), `male` or `neutral`.
    pub gender: Option<TalkGender>,
    /// As for every session command: an idempotency key (announce only).
    #[schema(min_length = 1, max_length = 128)]
    pub command_uid: Option<String>,
}

/// A file played to one member.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnnounceUrl {
    /// An HTTP/HTTPS URL of an audio file.
    #[schema(value_type = PlayUrl, example = "https://cdn.example.com/one-minute-left.wav")]
    pub url: String,
    /// As for every session command: an idempotency key.
    #[schema(min_length = 1, max_length = 128)]
    pub command_uid: Option<String>,
}

/// What one member hears: a URL, or spoken text.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum AnnounceRequest {
    Url(AnnounceUrl),
    Speech(Speech),
}

/// Files played into a room, in order.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlayUrls {
    /// HTTP/HTTPS URLs of audio files, played in order.
    #[schema(min_items = 1, max_items = 128, value_type = Vec<PlayUrl>, example = json!(["https://cdn.example.com/announcement.wav"]))]
    pub urls: Vec<String>,
}

/// Text the node speaks into a room (listed in `playback_urls` as `tts://flite|<voice>|<text>`).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaySpeech {
    #[schema(value_type = SpokenText)]
    pub text: String,
    /// `en-US` (the default) or `en`.
    pub language: Option<TalkLanguage>,
    /// The voice: `female` (the default), `male` or `neutral`.
    pub gender: Option<TalkGender>,
}

/// What a room hears: URLs, or spoken text.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum PlayRequest {
    Urls(PlayUrls),
    Speech(PlaySpeech),
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AnnounceStatus {
    Announcing,
}

/// Queued on the node; `conference.member.announcement.finished` carries `operation_id`.
#[derive(Serialize, ToSchema)]
pub struct AnnounceAnswer {
    pub status: AnnounceStatus,
    pub room_id: String,
    pub operation_id: Uuid,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CoachStatus {
    Coaching,
}

/// Applied on the node: the member is heard by `coaching` alone.
#[derive(Serialize, ToSchema)]
pub struct CoachAnswer {
    pub status: CoachStatus,
    pub room_id: String,
    /// The session whose member alone hears this one.
    pub coaching: String,
}

/// A move's answer.
#[derive(Serialize, ToSchema)]
pub struct MoveAnswer {
    /// Always `moving`; `conference.member.moved` tells its end.
    #[schema(example = "moving")]
    pub status: String,
    /// The room it goes to.
    pub room_id: String,
    /// The room it leaves.
    pub from_room: String,
}

/// `POST …/conference/audio`: the fields of `AudioBody`, at least one of `volume_in`,
/// `volume_out` and `energy` among them.
pub struct AudioRequest;

impl PartialSchema for AudioRequest {
    fn schema() -> RefOr<Schema> {
        let one_of_them = ["volume_in", "volume_out", "energy"].into_iter().fold(
            utoipa::openapi::schema::AnyOfBuilder::new(),
            |any, field| any.item(ObjectBuilder::new().required(field)),
        );
        AllOfBuilder::new()
            .item(Ref::from_schema_name(crate::api::levels::body_schema().0))
            .item(one_of_them)
            .into()
    }
}

impl ToSchema for AudioRequest {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        let (name, schema) = crate::api::levels::body_schema();
        schemas.push((name.into(), schema));
    }
}

/// The levels asked, sent to the node; the member view shows them once it confirms.
#[derive(Serialize, ToSchema)]
pub struct AudioAnswer {
    /// Always `sent`.
    #[schema(example = "sent")]
    pub status: String,
    pub room_id: String,
    /// Those asked, as asked.
    pub volume_in: Option<i32>,
    pub volume_out: Option<i32>,
    pub energy: Option<u32>,
}

/// A dial-out's answer.
#[derive(Serialize, ToSchema)]
pub struct DialAnswer {
    /// `dialing` for a new call; for a repeat, where it is (`joined` once in the room).
    pub status: DialStatus,
    pub room_id: String,
    /// The call's channel uuid; also its conferencecall id once it is in the room.
    pub participant_id: Uuid,
    /// The call's session id.
    #[schema(example = "acW68-0b3c2a54-6f7e-4f4c-9a51-2d3f4b5c6d7e")]
    pub uuid: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DialStatus {
    Dialing,
    Ringing,
    Answered,
    Joined,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UncoachStatus {
    HeardByAll,
}

/// Applied on the node: the member is heard by everyone again.
#[derive(Serialize, ToSchema)]
pub struct UncoachAnswer {
    pub status: UncoachStatus,
    pub room_id: String,
}

/// Sent to the node; the state changes when the node confirms (a webhook follows).
#[derive(Serialize, ToSchema)]
pub struct MembershipAnswer {
    /// The member's state the command asks for (`leaving`, `muted`, `deaf`, `held`…).
    pub status: MembershipStatus,
    pub room_id: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HangupStatus {
    HangingUp,
}

#[derive(Serialize, ToSchema)]
pub struct HangupAnswer {
    pub status: HangupStatus,
    pub uuid: String,
}

/// A WAV file, as bytes.
pub struct WavFile;

impl PartialSchema for WavFile {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .content_media_type("audio/wav")
            .into()
    }
}

impl ToSchema for WavFile {}

// ---- the conference resource (seeds 000–003), shared by /v1.0 and /api/v1 ----

/// `9999-01-01 00:00:00.000000` stands for "not yet" in every `tm_*` field.
#[derive(Serialize, ToSchema)]
pub struct Conference {
    pub id: String,
    /// The application.
    pub customer_id: String,
    #[serde(rename = "type")]
    pub kind: RoomType,
    pub status: RoomStatus,
    pub name: String,
    pub detail: String,
    #[schema(value_type = Object)]
    pub data: Value,
    pub timeout: u64,
    pub pre_actions: Vec<Action>,
    pub post_actions: Vec<Action>,
    pub conferencecall_ids: Vec<Uuid>,
    /// The active recording; the nil uuid when none.
    pub recording_id: Uuid,
    pub recording_ids: Vec<Uuid>,
    #[schema(example = "2022-02-03 06:08:56.672025")]
    pub tm_create: String,
    pub tm_update: String,
    pub tm_delete: String,
}

#[derive(Serialize, ToSchema)]
pub struct ConferencePage {
    pub result: Vec<Conference>,
    /// Pass back as `?page_token=`; empty when this was the last page.
    pub next_page_token: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CallReference {
    Call,
}

/// A participation of a session in a room.
#[derive(Serialize, ToSchema)]
pub struct Conferencecall {
    pub id: Uuid,
    pub customer_id: String,
    pub conference_id: String,
    pub reference_type: CallReference,
    /// The session id.
    pub reference_id: String,
    pub status: MemberStatus,
    pub tm_create: String,
    pub tm_update: String,
    pub tm_delete: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConferenceReference {
    Conference,
}

/// A recording of a room, a WAV file the node writes.
#[derive(Serialize, ToSchema)]
pub struct Recording {
    pub id: Uuid,
    pub customer_id: String,
    pub reference_type: ConferenceReference,
    /// The room id.
    pub reference_id: String,
    pub status: RecordingStatus,
    #[schema(example = "wav")]
    pub format: String,
    pub filename: String,
    /// Where to download the file once the recording has ended.
    #[schema(example = "/api/v1/recordings/2b4f6a52-97a4-4c36-a4a2-8c7e0e6bfa11/file")]
    pub file_url: String,
    #[schema(required = true)]
    pub duration_ms: Option<u64>,
    /// Why the recording failed, if it did.
    #[schema(required = true)]
    pub error: Option<String>,
    pub tm_start: String,
    pub tm_end: String,
    pub tm_create: String,
    pub tm_update: String,
    pub tm_delete: String,
    /// Where the finished file is kept: `local` (the node's disk, `recordings_dir`) or `s3`
    /// (the object store of `[recordings]`, readable from every instance).
    pub storage: Storage,
    /// With `s3`: `waiting` while the room records, `uploading` once the file is complete
    /// (the node puts it in the bucket; tried again with backoff while the bucket is out of
    /// reach), `ready` once read back whole from the bucket (`conference.recording.ready`),
    /// `failed` when given up. `null` with `local`.
    #[schema(required = true)]
    pub upload_status: Option<UploadStatus>,
    /// In bytes: with `s3`, the object's size as the bucket holds it, once `ready`; with
    /// `local`, the file's as the node closed it (its stop-recording's `Record-File-Size`),
    /// once `ended`: what `file_url` downloads.
    #[schema(required = true)]
    pub size_bytes: Option<u64>,
    /// The object's SHA-256 (lowercase hex) as read back from the bucket, once `ready`.
    #[schema(required = true)]
    pub sha256: Option<String>,
    /// Why the last attempt to copy it failed (`uploading`: tried again later; `failed`: the
    /// bucket refused it for good, e.g. bad credentials).
    #[schema(required = true)]
    pub upload_error: Option<String>,
    /// The parts written before the file (`filename`), oldest first: the room moved to another
    /// media node while recording (`conference.migrated`), and each node wrote its part. The
    /// file is the part written on the room's node since; empty for a room that never moved.
    /// With `s3` each part is copied too (`<recording_id>.part<N>.wav` beside the file's
    /// object): the recording is `ready` only once every part is, `failed` if one is lost.
    pub segments: Vec<RecordingSegment>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    Local,
    S3,
}

/// The copy of a recording in the object store (`storage: s3` only). `waiting` while the
/// recording is not `ended` → `uploading` once it is (the file is complete; attempts repeat
/// with backoff while the bucket is out of reach) → `ready` (read back whole from the bucket:
/// webhook `conference.recording.ready`, with `size_bytes`, `sha256` and a signed `url`) or
/// `failed` (given up, or nothing was ever written; no webhook of its own: `upload_error`
/// says why). `ready` and `failed` are final. A client that wants the file waits for
/// `conference.recording.ready`, or polls until `upload_status` is `ready` or `failed`; with
/// `local` it waits for `status: ended` (`conference.recording.finished`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UploadStatus {
    Waiting,
    Uploading,
    Ready,
    Failed,
}

/// A finished part of a recording, on the node that hosted the room then.
#[derive(Serialize, ToSchema)]
pub struct RecordingSegment {
    /// Its number, from 1 (the oldest).
    pub part: u32,
    /// The node's 5-character prefix.
    pub node: String,
    pub filename: String,
    /// When the next part began.
    pub tm_end: String,
    /// Where to download it: `GET /api/v1/recordings/{id}/file?part=N`.
    pub file_url: String,
    /// Its copy to the object store, as the recording's (`null` with `local`).
    #[schema(required = true)]
    pub upload_status: Option<UploadStatus>,
    #[schema(required = true)]
    pub size_bytes: Option<u64>,
    #[schema(required = true)]
    pub sha256: Option<String>,
    #[schema(required = true)]
    pub upload_error: Option<String>,
}

// ---- operations ----

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Liveness {
    Ok,
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: Liveness,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StoreHealth {
    Ok,
    Unavailable,
}

/// A node's link, as this controller instance sees it.
#[derive(Serialize, ToSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NodeHealth {
    Up,
    Connecting,
    /// Connected, reading the node's state before it is used.
    Resyncing,
    /// Unreachable; the controller keeps trying.
    Down,
    /// The node refused the controller's credentials; an operator must act.
    Failed,
    /// Connected, but answering nothing (a probe unanswered past its deadline): its commands
    /// are refused (503 with `Retry-After`) until it answers again.
    Hung,
}

/// Ready when the store answers and every media node is up.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
    pub store: StoreHealth,
    /// Each media node by its 5-character prefix.
    pub nodes: BTreeMap<String, NodeHealth>,
    /// The nodes whose events this controller instance applies (in a fleet of instances on one
    /// store each node's events are applied by one of them; alone, it applies every node's).
    pub applies_events: Vec<String>,
    /// The nodes taken out of service (still up, serving their rooms; no new ones).
    pub draining: Vec<String>,
}

// ---- the lab ----

#[derive(Serialize, ToSchema)]
pub struct CallCreated {
    /// The new session id.
    pub uuid: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CallEndedStatus {
    Hangup,
}

#[derive(Serialize, ToSchema)]
pub struct CallTalking {
    pub uuid: String,
    pub talking: bool,
}

#[derive(Serialize, ToSchema)]
pub struct CallEnded {
    pub uuid: String,
    pub status: CallEndedStatus,
}

// ---- the event feed and the delivery log ----

/// One event, exactly as its webhook carries it.
#[derive(Serialize, ToSchema)]
pub struct Envelope {
    /// The message id (also the `webhook-id` header): de-duplicate on it.
    #[schema(example = "msg_1714000000000-0")]
    pub id: String,
    /// The event type, e.g. `conference.member.joined`.
    #[serde(rename = "type")]
    #[schema(example = "conference.member.joined")]
    pub kind: String,
    /// When it happened, RFC 3339 UTC.
    pub timestamp: String,
    pub app_id: String,
    pub room_id: String,
    /// The room's sequence number at the change: order on it.
    pub seq: u64,
    /// The event's own fields.
    #[schema(value_type = Object)]
    pub data: Value,
}

#[derive(Serialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<Envelope>,
    /// Pass back as `after` for what follows; the same value when nothing new came.
    pub cursor: String,
}

/// One Server-Sent Event of `GET /api/v1/events/stream`: `id` is the event's position (what
/// `Last-Event-ID` resumes from), `event` its type, `data` its envelope as JSON text.
#[derive(Serialize, ToSchema)]
pub struct StreamEvent {
    #[schema(pattern = r"^[0-9]{1,19}-[0-9]{1,19}$", example = "1714000000000-0")]
    pub id: String,
    #[schema(example = "conference.member.joined")]
    pub event: String,
    /// An event envelope, as in `GET /api/v1/events`.
    #[schema(content_media_type = "application/json")]
    pub data: String,
}

/// `delivered` (2xx), `retry` (another attempt follows) or `dead_letter` (given up).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryOutcome {
    Delivered,
    Retry,
    DeadLetter,
}

/// One attempt to deliver a webhook.
#[derive(Serialize, ToSchema)]
pub struct Delivery {
    /// The message id (`webhook-id`).
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub room_id: String,
    pub seq: u64,
    /// 1 for a message's first attempt.
    pub attempt: u32,
    pub outcome: DeliveryOutcome,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    pub error: Option<String>,
    /// ISO-8601.
    pub at: String,
    pub duration_ms: u64,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryPage {
    /// Newest first.
    pub deliveries: Vec<Delivery>,
    /// Pass back as `cursor` for older attempts; empty when there are none.
    pub cursor: String,
}

#[derive(Serialize, ToSchema)]
pub struct RetryQueued {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Always `queued`.
    #[schema(example = "queued")]
    pub status: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conference::{Action as Flow, actions};

    proptest::proptest! {
        #[test]
        fn the_talk_text_pattern_is_the_rule_of_talk(
            text in "[a-zA-Z .'\"\\\\^|{}`\t\n\u{0}\u{7f}\u{85}\u{a0}\u{1680}\u{2003}\u{3000}\u{feff}é]{0,6}",
        ) {
            let pattern = regex::Regex::new(&talk_text_pattern()).map_err(|e| {
                proptest::test_runner::TestCaseError::fail(e.to_string())
            })?;
            let flow = Flow {
                id: Uuid::nil(),
                next_id: Uuid::nil(),
                kind: "talk".into(),
                option: serde_json::json!({ "text": text }),
            };
            let spoken = actions::talks(&[flow]).is_ok();
            proptest::prop_assert_eq!(spoken, pattern.is_match(&text), "{:?}", text);
        }
    }
}
