//! Domain events: what happened to a room, in the words webhooks carry. Each carries the room's
//! `seq` at the change, so receivers can order and de-duplicate.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ids::{AppId, RoomId};
use super::model::Micros;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "conference.created")]
    Created,
    #[serde(rename = "conference.destroyed")]
    Destroyed,
    #[serde(rename = "conference.progressing")]
    Progressing,
    #[serde(rename = "conference.terminating")]
    Terminating,
    #[serde(rename = "conference.terminated")]
    Terminated,
    #[serde(rename = "conference.member.joining")]
    MemberJoining,
    #[serde(rename = "conference.member.joined")]
    MemberJoined,
    #[serde(rename = "conference.member.join_failed")]
    MemberJoinFailed,
    #[serde(rename = "conference.member.leaving")]
    MemberLeaving,
    #[serde(rename = "conference.member.left")]
    MemberLeft,
    #[serde(rename = "conference.member.muted")]
    MemberMuted,
    #[serde(rename = "conference.member.unmuted")]
    MemberUnmuted,
    #[serde(rename = "conference.member.deaf")]
    MemberDeaf,
    #[serde(rename = "conference.member.undeaf")]
    MemberUndeaf,
    #[serde(rename = "conference.member.held")]
    MemberHeld,
    #[serde(rename = "conference.member.unheld")]
    MemberUnheld,
    #[serde(rename = "conference.member.dtmf")]
    MemberDtmf,
    #[serde(rename = "conference.member.talking")]
    MemberTalking,
    /// A member moved here from another room of the application (`conference/move`): told
    /// once, by the room it moved to, instead of a leave and a join.
    #[serde(rename = "conference.member.moved")]
    MemberMoved,
    /// A member's volume in or out, or energy threshold, changed.
    #[serde(rename = "conference.member.audio")]
    MemberAudio,
    #[serde(rename = "conference.member.announcement.finished")]
    MemberAnnouncementFinished,
    #[serde(rename = "conference.member.coaching")]
    MemberCoaching,
    #[serde(rename = "conference.participant.ringing")]
    ParticipantRinging,
    #[serde(rename = "conference.participant.answered")]
    ParticipantAnswered,
    #[serde(rename = "conference.participant.failed")]
    ParticipantFailed,
    #[serde(rename = "conference.play.started")]
    PlayStarted,
    #[serde(rename = "conference.play.finished")]
    PlayFinished,
    #[serde(rename = "conference.play.paused")]
    PlayPaused,
    #[serde(rename = "conference.play.resumed")]
    PlayResumed,
    #[serde(rename = "conference.play.stopped")]
    PlayStopped,
    #[serde(rename = "conference.play.volume_changed")]
    PlayVolumeChanged,
    #[serde(rename = "conference.recording.started")]
    RecordingStarted,
    #[serde(rename = "conference.recording.paused")]
    RecordingPaused,
    #[serde(rename = "conference.recording.resumed")]
    RecordingResumed,
    #[serde(rename = "conference.recording.finished")]
    RecordingFinished,
    #[serde(rename = "conference.recording.ready")]
    RecordingReady,
    #[serde(rename = "conference.migrated")]
    Migrated,
    #[serde(rename = "conference.locked")]
    Locked,
    #[serde(rename = "conference.unlocked")]
    Unlocked,
    #[serde(rename = "conference.metadata.updated")]
    MetadataUpdated,
    #[serde(rename = "conference.stream.started")]
    StreamStarted,
    #[serde(rename = "conference.stream.stopped")]
    StreamStopped,
    #[serde(rename = "conference.stream.failed")]
    StreamFailed,
}

impl EventKind {
    /// The event a member's switch turned on (`on`) or off announces.
    pub fn switched(switch: super::model::Switch, on: bool) -> EventKind {
        use super::model::Switch;
        match (switch, on) {
            (Switch::Mute, true) => EventKind::MemberMuted,
            (Switch::Mute, false) => EventKind::MemberUnmuted,
            (Switch::Deaf, true) => EventKind::MemberDeaf,
            (Switch::Deaf, false) => EventKind::MemberUndeaf,
            (Switch::Hold, true) => EventKind::MemberHeld,
            (Switch::Hold, false) => EventKind::MemberUnheld,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "conference.created",
            EventKind::Destroyed => "conference.destroyed",
            EventKind::Progressing => "conference.progressing",
            EventKind::Terminating => "conference.terminating",
            EventKind::Terminated => "conference.terminated",
            EventKind::MemberJoining => "conference.member.joining",
            EventKind::MemberJoined => "conference.member.joined",
            EventKind::MemberJoinFailed => "conference.member.join_failed",
            EventKind::MemberLeaving => "conference.member.leaving",
            EventKind::MemberLeft => "conference.member.left",
            EventKind::MemberMuted => "conference.member.muted",
            EventKind::MemberUnmuted => "conference.member.unmuted",
            EventKind::MemberDeaf => "conference.member.deaf",
            EventKind::MemberUndeaf => "conference.member.undeaf",
            EventKind::MemberHeld => "conference.member.held",
            EventKind::MemberUnheld => "conference.member.unheld",
            EventKind::MemberDtmf => "conference.member.dtmf",
            EventKind::MemberTalking => "conference.member.talking",
            EventKind::MemberAudio => "conference.member.audio",
            EventKind::MemberMoved => "conference.member.moved",
            EventKind::MemberAnnouncementFinished => "conference.member.announcement.finished",
            EventKind::MemberCoaching => "conference.member.coaching",
            EventKind::ParticipantRinging => "conference.participant.ringing",
            EventKind::ParticipantAnswered => "conference.participant.answered",
            EventKind::ParticipantFailed => "conference.participant.failed",
            EventKind::PlayStarted => "conference.play.started",
            EventKind::PlayFinished => "conference.play.finished",
            EventKind::PlayPaused => "conference.play.paused",
            EventKind::PlayResumed => "conference.play.resumed",
            EventKind::PlayStopped => "conference.play.stopped",
            EventKind::PlayVolumeChanged => "conference.play.volume_changed",
            EventKind::RecordingStarted => "conference.recording.started",
            EventKind::RecordingPaused => "conference.recording.paused",
            EventKind::RecordingResumed => "conference.recording.resumed",
            EventKind::RecordingFinished => "conference.recording.finished",
            EventKind::RecordingReady => "conference.recording.ready",
            EventKind::Migrated => "conference.migrated",
            EventKind::Locked => "conference.locked",
            EventKind::Unlocked => "conference.unlocked",
            EventKind::MetadataUpdated => "conference.metadata.updated",
            EventKind::StreamStarted => "conference.stream.started",
            EventKind::StreamStopped => "conference.stream.stopped",
            EventKind::StreamFailed => "conference.stream.failed",
        }
    }
}

/// One domain event of one room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainEvent {
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub app: AppId,
    pub room: RoomId,
    pub seq: u64,
    pub at: Micros,
    pub data: Value,
    /// Set on a dead-lettered webhook sent again on request: the message id it re-delivers,
    /// which the new delivery keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redelivers: Option<String>,
}
