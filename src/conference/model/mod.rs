//! The room state the controller keeps: rooms, their members (conferencecalls), playback,
//! recordings, and the sessions (calls) on the nodes. Plain data, serialized as JSON by the stores.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::ids::{AppId, NodePrefix, RoomId, SessionId};

mod dialout;
mod member;
mod stream;

pub use dialout::{Dialout, DialoutFailure, DialoutState};
pub use member::{Bridge, Carried, Exit, LeaveReason, Level, Member, MemberStatus, Switch};
pub use stream::{Protocol, STREAMS_KEPT, Stream, StreamStatus, Track, UNCLAIMED};

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Microseconds since the Unix epoch.
pub type Micros = i64;

/// `secs` seconds after `from`, saturating.
fn secs_after(from: Micros, secs: u64) -> Micros {
    from.saturating_add(
        i64::try_from(secs)
            .unwrap_or(i64::MAX / 2)
            .saturating_mul(1_000_000),
    )
}

/// Longest a room's `timeout`, `empty_timeout` or `departure_timeout` may be (30 days).
pub const MAX_TIMEOUT_SECS: u64 = 30 * 24 * 3600;

/// How many ended participations a room keeps (`Room::retire`): their conferencecalls stay
/// readable, and events of theirs that come late are still recognised. Older ones were told by
/// webhooks and are gone from the room.
pub const PAST_MEMBERS_KEPT: usize = 100;

/// An application's own data on a room or a member: a JSON object.
pub type Metadata = serde_json::Map<String, serde_json::Value>;

/// The most a room's or a member's metadata may take, serialized.
pub const METADATA_MAX_BYTES: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomStatus {
    Starting,
    Progressing,
    Terminating,
    Terminated,
}

impl RoomStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RoomStatus::Starting => "starting",
            RoomStatus::Progressing => "progressing",
            RoomStatus::Terminating => "terminating",
            RoomStatus::Terminated => "terminated",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomType {
    /// Stays up with 0 or 1 participants until deleted or timed out.
    Conference,
    /// A two-party bridge: when one leaves, the other is ejected and the room terminates.
    Connect,
}

/// The hidden leg that keeps the FreeSWITCH conference open; never listed as a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlLeg {
    pub channel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlaybackStatus {
    Playing,
    Paused,
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Playback {
    pub status: PlaybackStatus,
    /// dB, −50…7.
    pub volume: i32,
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<Uuid>,
    /// Files of the operation not yet done.
    pub pending: u32,
    /// Files FreeSWITCH could not play.
    pub failed: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_uid: Option<String>,
}

impl Playback {
    /// Nothing played, nothing asked: how a new room starts (and is stored without it).
    pub fn is_idle(&self) -> bool {
        *self == Playback::default()
    }
}

impl Default for Playback {
    fn default() -> Playback {
        Playback {
            status: PlaybackStatus::Stopped,
            volume: 0,
            urls: Vec::new(),
            operation_id: None,
            pending: 0,
            failed: Vec::new(),
            command_uid: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordingStatus {
    /// Asked of the node; `start-recording` has not confirmed it yet.
    Initiating,
    Recording,
    /// Paused: the node writes nothing meanwhile (the file leaves the pause out).
    Paused,
    /// Stop asked of the node; `stop-recording` has not confirmed it yet.
    Stopping,
    /// Over: the file is complete (or, with `error`, was never written).
    Ended,
}

/// One recording of a room: a WAV file the node writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recording {
    pub id: Uuid,
    /// Where the node writes the file.
    pub path: String,
    /// The node that writes it (`None` in records older than this field: the room's node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodePrefix>,
    pub format: String,
    pub status: RecordingStatus,
    pub requested_at: Micros,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Micros>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Micros>,
    /// As the node measured it when the recording stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A pause (`true`) or resume asked and not confirmed yet; a new one is judged against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_requested: Option<bool>,
    /// The file's size as the node closed it (`Record-File-Size` of stop-recording).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// Its copy in the object store (`[recordings] store = "s3"`), made once the file is
    /// complete; `None`: the file stays on the node's disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<Upload>,
    /// The files written before `path`, oldest first: the room moved to another node while
    /// recording (`rooms::migrate`), and each node wrote its part.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<Segment>,
    pub updated_at: Micros,
}

/// Where a recording's upload to the object store is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadStatus {
    /// The recording goes on; its file is not complete.
    Waiting,
    /// Complete on the node, not (yet) checked in the bucket: being put, or waiting to try
    /// again.
    Uploading,
    /// In the bucket, its size and sha256 read back from there.
    Ready,
    /// Given up (the node lost the file, or the bucket refused it for good).
    Failed,
}

/// A recording's copy in the object store: put there by the node that wrote the file (a
/// signed URL), then read back whole by the controller (`rooms/uploads.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    /// The object's key in the bucket.
    pub key: String,
    pub status: UploadStatus,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub attempts: u32,
    /// When to try again after a failed attempt (µs; 0: now).
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub next_at: Micros,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_at: Option<Micros>,
}

impl Upload {
    /// A copy to make once its file is complete, to `key`.
    pub fn waiting(key: String) -> Upload {
        Upload {
            key,
            status: UploadStatus::Waiting,
            attempts: 0,
            next_at: 0,
            size_bytes: None,
            sha256: None,
            error: None,
            ready_at: None,
        }
    }

    /// The key of a recording's finished part `n` (1: the first) beside the recording's own
    /// (`…/<recording>.wav` → `…/<recording>.part1.wav`).
    pub fn part_key(&self, n: usize) -> String {
        let stem = self.key.strip_suffix(".wav").unwrap_or(&self.key);
        format!("{stem}.part{n}.wav")
    }

    /// Made or given up.
    pub fn settled(&self) -> bool {
        matches!(self.status, UploadStatus::Ready | UploadStatus::Failed)
    }
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}

/// A finished part of a recording: a file on the node that hosted the room then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub node: NodePrefix,
    pub path: String,
    /// When the next part began.
    pub ended_at: Micros,
    /// Its copy in the object store, as the recording's own (`Upload::part_key`): made once the
    /// room's move is over and the old node has closed the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<Upload>,
}

/// A room on its way to another node (`rooms::migrate`). Before the switch the room lives on
/// `from`; the switch (the control leg's add-member on `to`) makes `to` the room's node, and
/// its members move one by one (each `moving` until `to` reports it). The migration ends
/// once none is moving: the old conference is released and `conference.migrated` told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migration {
    pub from: NodePrefix,
    pub to: NodePrefix,
    /// The FreeSWITCH process on `to` (its Core-UUID as the migration began): its facts about
    /// the room are the new conference's.
    pub core_uuid: String,
    /// The control leg that opens the room on `to`; after the switch, the one left on `from`.
    pub control: String,
    /// Whether the room lives on `to` yet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub switched: bool,
    /// Whether the room's recording and playback were carried on on `to` (asked once).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub media_moved: bool,
    pub started_at: Micros,
}

impl Recording {
    /// Paused as last asked: the pending pause or resume, else what the node reported.
    pub fn paused_as_asked(&self) -> bool {
        self.pause_requested
            .unwrap_or(self.status == RecordingStatus::Paused)
    }

    pub fn is_active(&self) -> bool {
        self.status != RecordingStatus::Ended
    }

    /// The node that holds `path` (a room that moved after the recording ended is elsewhere).
    pub fn file_node<'a>(&'a self, room: &'a Room) -> &'a NodePrefix {
        self.node.as_ref().unwrap_or(&room.node)
    }
}

/// A flow action (`talk` is the one FreeSWITCH can perform here).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    #[serde(default)]
    pub id: Uuid,
    #[serde(default)]
    pub next_id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub option: Value,
}

/// When a room beeps: as a member joins, leaves, both, or never.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Beep {
    #[default]
    None,
    Enter,
    Exit,
    Both,
}

impl Beep {
    pub fn is_none(&self) -> bool {
        *self == Beep::None
    }

    pub fn on_enter(self) -> bool {
        matches!(self, Beep::Enter | Beep::Both)
    }

    pub fn on_exit(self) -> bool {
        matches!(self, Beep::Exit | Beep::Both)
    }
}

/// Stored as JSON without its empty fields (`None`, empty lists, an idle playback): every
/// event rewrites the room in Redis, and bytes are most of what a write costs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Room {
    pub id: RoomId,
    pub app: AppId,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    pub data: Value,
    pub kind: RoomType,
    pub status: RoomStatus,
    /// Seconds after creation at which the room terminates; 0 = never.
    pub timeout: u64,
    /// Seconds after creation at which a room nobody has joined yet ends; 0 = never.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub empty_timeout: u64,
    /// Seconds after the last member left at which the room ends; 0 = never.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub departure_timeout: u64,
    /// When a member first joined (kept only for a room with an empty or departure timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_joined_at: Option<Micros>,
    /// Since when nobody has been in the room, nor joining it or being dialed, once someone
    /// had joined (kept only for a room with a departure timeout, see [`Room::note_occupancy`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vacated_at: Option<Micros>,
    /// Most participants (joining, joined or leaving) at once; 0 = no limit of its own.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_participants: u64,
    /// Members wait (hearing hold music, not heard) until a moderator joins (FreeSWITCH's
    /// `wait-mod`, set when the conference is created).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub wait_for_moderator: bool,
    /// No moderator has joined yet in a room that waits for one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub waiting_for_moderator: bool,
    /// The application's own data about the room (a JSON object, at most
    /// [`METADATA_MAX_BYTES`] serialized).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// Locked by the application: no new joins or dial-outs (members in stay).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub locked: bool,
    /// The tones played to the room when a member joins and leaves.
    #[serde(default, skip_serializing_if = "Beep::is_none")]
    pub beep: Beep,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_actions: Vec<Action>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_actions: Vec<Action>,
    pub node: NodePrefix,
    /// The FreeSWITCH process the room lives in; events from another one are stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conference_uuid: Option<String>,
    pub control: ControlLeg,
    /// Current participants by channel uuid; stored as a list (the key is each member's
    /// channel, which its session holds).
    #[serde(with = "member_list")]
    pub members: BTreeMap<String, Member>,
    /// Participations that ended, oldest first. Not in the room's JSON: a store keeps them
    /// apart and writes them only when they change (the Redis store's `past` field), so a
    /// mute in a room with a long history does not rewrite the history. Read from the JSON
    /// still, where stores before that kept them.
    /// Shared: a copy of the room (every change starts from one) shares them until one of the
    /// two changes them (`Arc::make_mut`).
    #[serde(default, skip_serializing)]
    pub past_members: Arc<Vec<Member>>,
    /// Calls the room is placing that are not members yet (see [`Dialout`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dialouts: Vec<Dialout>,
    #[serde(default, skip_serializing_if = "Playback::is_idle")]
    pub playback: Playback,
    /// The active recording, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<Uuid>,
    /// Every recording of the room's life, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recordings: Vec<Recording>,
    /// Its live audio streams, and the latest ended ones (at most [`STREAMS_KEPT`]), oldest
    /// first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub streams: Vec<Stream>,
    pub created_at: Micros,
    pub updated_at: Micros,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Micros>,
    /// Grows by one with every change; carried by every webhook.
    pub seq: u64,
    /// The `Event-Sequence` of the room's newest facts about the room itself (not one member)
    /// applied from its node, at most [`Room::FACT_MARKS`], ascending: a fact heard again (a
    /// new owner of the node replaying what it kept, see `node/supervisor/standby.rs`) changes
    /// nothing. Members keep marks of their own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fact_seqs: Vec<u64>,
    /// A move to another node under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<Migration>,
    /// Per node, the greatest fencing token (the generation of the node's lease in the fleet)
    /// of the instances that wrote the room applying that node's events: a write under an
    /// older one, from an instance paused past its lease, is refused ([`Room::fence`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fences: BTreeMap<NodePrefix, u64>,
}

impl Room {
    /// Whether a write under `node`'s lease of generation `token` may change the room: not if
    /// an instance holding a later lease of that node has written it already.
    pub fn fenced_off(&self, node: &NodePrefix, token: u64) -> bool {
        self.fences.get(node).is_some_and(|newest| *newest > token)
    }

    /// Marks the room as written under `node`'s lease of generation `token` (see
    /// [`Room::fenced_off`]).
    pub fn fence(&mut self, node: &NodePrefix, token: u64) {
        // Every write from a node's events comes here: the key is cloned only the first time.
        match self.fences.get_mut(node) {
            Some(newest) => *newest = (*newest).max(token),
            None => {
                self.fences.insert(node.clone(), token);
            }
        }
    }

    /// How many of the room's own facts are remembered (see [`Room::fact_seqs`]).
    pub const FACT_MARKS: usize = 16;

    /// A new room, `starting` until its control leg is in.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: RoomId,
        app: AppId,
        name: String,
        kind: RoomType,
        control_channel: String,
        now: Micros,
    ) -> Room {
        Room {
            node: id.prefix(),
            id,
            app,
            name,
            detail: String::new(),
            data: Value::Object(Default::default()),
            kind,
            status: RoomStatus::Starting,
            timeout: 0,
            empty_timeout: 0,
            departure_timeout: 0,
            first_joined_at: None,
            vacated_at: None,
            max_participants: 0,
            wait_for_moderator: false,
            waiting_for_moderator: false,
            locked: false,
            metadata: None,
            beep: Beep::None,
            pre_actions: Vec::new(),
            post_actions: Vec::new(),
            core_uuid: None,
            conference_uuid: None,
            control: ControlLeg {
                channel: control_channel,
                member_id: None,
            },
            members: BTreeMap::new(),
            past_members: Arc::default(),
            dialouts: Vec::new(),
            playback: Playback::default(),
            recording: None,
            recordings: Vec::new(),
            streams: Vec::new(),
            created_at: now,
            updated_at: now,
            deleted_at: None,
            seq: 0,
            fact_seqs: Vec::new(),
            fences: BTreeMap::new(),
            migration: None,
        }
    }

    /// Whether the room is on `node`, or moving to or from it.
    pub fn touches(&self, node: &NodePrefix) -> bool {
        &self.node == node
            || self
                .migration
                .as_ref()
                .is_some_and(|m| &m.from == node || &m.to == node)
    }

    /// Members FreeSWITCH has confirmed (joined or leaving).
    pub fn confirmed_members(&self) -> impl Iterator<Item = &Member> {
        self.members
            .values()
            .filter(|m| matches!(m.status, MemberStatus::Joined | MemberStatus::Leaving))
    }

    pub fn member_by_session(&self, session: &SessionId) -> Option<&Member> {
        self.members.get(session.channel())
    }

    /// The member key (its call's channel) of a channel the room's node names: the channel
    /// itself, or the call a node-to-node leg carries (current members first, then past ones).
    pub fn member_key<'a>(&'a self, channel: &'a str) -> &'a str {
        if self.members.contains_key(channel) {
            return channel;
        }
        self.members
            .values()
            .chain(self.past_members.iter().rev())
            .find(|m| m.leg() == Some(channel))
            .map_or(channel, Member::channel)
    }

    /// A participation that ended, kept among the past ones; past [`PAST_MEMBERS_KEPT`] the
    /// oldest goes (a long-lived room with callers coming and going would otherwise grow
    /// without end, and with it every write of the room: 325 KB after 15 minutes of the soak).
    pub fn retire(&mut self, member: Member) {
        let past = Arc::make_mut(&mut self.past_members);
        past.push(member);
        if past.len() > PAST_MEMBERS_KEPT {
            let over = past.len() - PAST_MEMBERS_KEPT;
            past.drain(..over);
        }
    }

    /// The participation with this conferencecall id, current or past.
    pub fn conferencecall(&self, id: Uuid) -> Option<&Member> {
        self.members
            .values()
            .chain(self.past_members.iter().rev())
            .find(|m| m.conferencecall_id == id)
    }

    pub fn recording_by_id(&self, id: Uuid) -> Option<&Recording> {
        self.recordings.iter().find(|r| r.id == id)
    }

    /// The active recording, if any.
    pub fn active_recording(&self) -> Option<&Recording> {
        self.recording.and_then(|id| self.recording_by_id(id))
    }

    /// When the room's timeout ends it, if it has one.
    pub fn timeout_at(&self) -> Option<Micros> {
        (self.timeout > 0).then(|| secs_after(self.created_at, self.timeout))
    }

    /// Whether anyone is in the room, joining it, or being dialed into it.
    pub fn occupied(&self) -> bool {
        !self.members.is_empty() || !self.dialouts.is_empty()
    }

    /// Keeps [`Room::first_joined_at`] and [`Room::vacated_at`] up to date after a change at
    /// `now` (only in a room whose end they decide).
    pub fn note_occupancy(&mut self, now: Micros) {
        if self.empty_timeout == 0 && self.departure_timeout == 0 {
            return;
        }
        if self.first_joined_at.is_none() && self.confirmed_members().next().is_some() {
            self.first_joined_at = Some(now);
        }
        if self.occupied() {
            self.vacated_at = None;
        } else if self.first_joined_at.is_some() && self.vacated_at.is_none() {
            self.vacated_at = Some(now);
        }
    }

    /// Recording or carrying a live audio stream (a listen-in among them): what the store's
    /// media index (`rooms:media`) holds, so that a look at every live stream or recording
    /// reads these rooms, not every live room.
    pub fn has_media(&self) -> bool {
        self.status < RoomStatus::Terminated
            && (self.recording.is_some() || self.streams.iter().any(Stream::is_live))
    }

    /// When the room's lifetime rules end it, and which rule does: its `timeout`; its
    /// `empty_timeout` while nobody has joined yet; its `departure_timeout` once everybody
    /// left. A room with someone in it, joining it or being dialed is kept by the last two.
    /// `None` for a room that is ending already, or that nothing ends.
    pub fn lifetime_end(&self) -> Option<(Micros, EndRule)> {
        if self.status >= RoomStatus::Terminating {
            return None;
        }
        let vacant = match (self.occupied(), self.first_joined_at) {
            (true, _) => None,
            (false, None) if self.empty_timeout > 0 => Some((
                secs_after(self.created_at, self.empty_timeout),
                EndRule::EmptyTimeout,
            )),
            (false, Some(_)) if self.departure_timeout > 0 => Some((
                secs_after(
                    self.vacated_at.unwrap_or(self.updated_at),
                    self.departure_timeout,
                ),
                EndRule::DepartureTimeout,
            )),
            (false, _) => None,
        };
        let timeout = self.timeout_at().map(|at| (at, EndRule::Timeout));
        match (timeout, vacant) {
            (Some(t), Some(v)) => Some(if v.0 < t.0 { v } else { t }),
            (t, v) => t.or(v),
        }
    }

    /// Whether a lifetime rule may end the room (so an end is scheduled for it).
    pub fn has_lifetime_rules(&self) -> bool {
        self.timeout > 0 || self.empty_timeout > 0 || self.departure_timeout > 0
    }

    /// Ids another record may be looked up by: its conferencecalls and recordings.
    pub fn refs(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.members
            .values()
            .chain(self.past_members.iter())
            .map(|m| m.conferencecall_id)
            .chain(self.recordings.iter().map(|r| r.id))
    }
}

/// The lifetime rule that ends a room (see [`Room::lifetime_end`]); its name is the
/// `reason` of `conference.destroyed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndRule {
    Timeout,
    EmptyTimeout,
    DepartureTimeout,
}

impl EndRule {
    pub fn as_str(self) -> &'static str {
        match self {
            EndRule::Timeout => "timeout",
            EndRule::EmptyTimeout => "empty_timeout",
            EndRule::DepartureTimeout => "departure_timeout",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionState {
    Ringing,
    Answered,
    Parked,
    /// In a conference (or being moved by the controller).
    Active,
    Ended,
}

/// A call on a node that belongs to an application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id: SessionId,
    pub app: AppId,
    pub did: String,
    pub caller_id: String,
    pub caller_name: String,
    pub state: SessionState,
    pub core_uuid: String,
    pub created_at: Micros,
    pub answered_at: Option<Micros>,
    pub ended_at: Option<Micros>,
    pub hangup_cause: Option<String>,
    pub seq: u64,
}

/// A room's members as stored: a list, each keyed again by its channel when read. Records
/// written before stored them as a map by channel; those read the same.
mod member_list {
    use std::collections::BTreeMap;
    use std::fmt;

    use serde::de::{MapAccess, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    use super::Member;

    pub fn serialize<S: Serializer>(
        members: &BTreeMap<String, Member>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(members.values())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<String, Member>, D::Error> {
        deserializer.deserialize_any(Members)
    }

    struct Members;

    impl<'de> Visitor<'de> for Members {
        type Value = BTreeMap<String, Member>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of members")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut members = BTreeMap::new();
            while let Some(member) = seq.next_element::<Member>()? {
                members.insert(member.channel().to_owned(), member);
            }
            Ok(members)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut members = BTreeMap::new();
            while let Some((_, member)) = map.next_entry::<String, Member>()? {
                members.insert(member.channel().to_owned(), member);
            }
            Ok(members)
        }
    }
}

#[cfg(test)]
mod lifetime_tests {
    use super::*;

    fn room() -> Room {
        let id = RoomId::parse("abcde-room-3f1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d").unwrap();
        let mut r = Room::new(
            id,
            AppId::parse("app").unwrap(),
            "r".into(),
            RoomType::Conference,
            "ctl".into(),
            0,
        );
        r.status = RoomStatus::Progressing;
        r.empty_timeout = 10;
        r.departure_timeout = 3;
        r
    }

    fn member(status: MemberStatus) -> Member {
        let session = SessionId::parse("abcde-0b3c2a54-6f7e-4f4c-9a51-2d3f4b5c6d7e").unwrap();
        let mut m = Member::new(session, "d".into(), "c".into(), None, 0);
        m.status = status;
        m
    }

    const S: Micros = 1_000_000;

    #[test]
    fn a_room_ends_empty_then_only_after_its_last_member_left() {
        let mut r = room();
        assert_eq!(r.lifetime_end(), Some((10 * S, EndRule::EmptyTimeout)));
        // A join under way keeps the room; its failure leaves the empty timeout in force.
        r.members.insert("m".into(), member(MemberStatus::Joining));
        r.note_occupancy(S);
        assert_eq!(r.lifetime_end(), None);
        r.members.clear();
        r.note_occupancy(2 * S);
        assert_eq!(r.lifetime_end(), Some((10 * S, EndRule::EmptyTimeout)));
        // Joined, then gone: the departure timeout from the leave, not the empty one.
        r.members.insert("m".into(), member(MemberStatus::Joined));
        r.note_occupancy(3 * S);
        assert_eq!((r.first_joined_at, r.lifetime_end()), (Some(3 * S), None));
        r.members.clear();
        r.note_occupancy(20 * S);
        assert_eq!(r.lifetime_end(), Some((23 * S, EndRule::DepartureTimeout)));
        // A timeout due earlier wins; an ending room has nothing due.
        r.timeout = 21;
        assert_eq!(r.lifetime_end(), Some((21 * S, EndRule::Timeout)));
        r.status = RoomStatus::Terminating;
        assert_eq!(r.lifetime_end(), None);
    }

    #[test]
    fn without_lifetime_rules_nothing_is_kept_about_occupancy() {
        let mut r = room();
        (r.empty_timeout, r.departure_timeout) = (0, 0);
        r.members.insert("m".into(), member(MemberStatus::Joined));
        r.note_occupancy(S);
        r.members.clear();
        r.note_occupancy(2 * S);
        assert_eq!(
            (r.first_joined_at, r.vacated_at, r.lifetime_end()),
            (None, None, None)
        );
    }
}
