//! What FreeSWITCH reported, in the domain's words. The mapping from Event Socket events lives
//! here because it is FreeSWITCH vocabulary, not socket handling: one function turns an
//! [`Event`] into a [`Fact`] (or nothing, for events the controller ignores).

use super::model::{Level, Switch};
use crate::esl::{ConferenceAction, Event, EventName};

/// The channel data every CHANNEL_* event carries that the controller keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    pub channel: String,
    /// The dialed number as the call arrived (`switchyard_did` when the dialplan set it).
    pub did: String,
    pub caller_id: String,
    pub caller_name: String,
    /// `switchyard_app_id` channel variable, when the dialplan names the owner.
    pub app_hint: Option<String>,
    /// `switchyard_role` (`control` for a room's control leg, `dialout` for a call a room
    /// places).
    pub role: Option<String>,
    /// `switchyard_room`: the room a dial-out is for (trusted only when that room holds a
    /// dial-out of this channel).
    pub room: Option<String>,
    /// `X-Switchyard-Session` of a leg another node carries into one of this node's rooms
    /// (`variable_sip_h_X-Switchyard-Session`; trusted only when the room is joining that
    /// session over a node-to-node bridge).
    pub node_session: Option<String>,
}

impl ChannelInfo {
    /// The room of a node-to-node bridge's outbound leg (on the call's node).
    pub fn bridge_room(&self) -> Option<&str> {
        match self.role.as_deref() {
            Some("node_bridge") => self.room.as_deref(),
            _ => None,
        }
    }

    /// The room of a dial-out leg.
    pub fn dialout_room(&self) -> Option<&str> {
        match self.role.as_deref() {
            Some("dialout") => self.room.as_deref(),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelFact {
    Created,
    /// A call we placed rings at the far end (CHANNEL_PROGRESS, or CHANNEL_PROGRESS_MEDIA).
    Ringing,
    Answered,
    Parked,
    HungUp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConferenceFact {
    Created,
    Destroyed,
    MemberAdded {
        channel: String,
        member_id: u32,
        speak: bool,
        /// The node's `Member-Type: moderator` (json_list's `is_moderator`): the member's
        /// `moderator` flag, whoever joined it.
        moderator: bool,
    },
    MemberDeleted {
        channel: String,
        member_id: u32,
        cause: Option<String>,
    },
    MemberMuted {
        channel: String,
        member_id: u32,
    },
    MemberUnmuted {
        channel: String,
        member_id: u32,
    },
    /// deaf-member / undeaf-member, hold-member / unhold-member (`on`: deaf, held).
    MemberSwitched {
        channel: String,
        member_id: u32,
        switch: Switch,
        on: bool,
    },
    MemberKicked {
        channel: String,
        member_id: u32,
    },
    /// volume-in-member, volume-out-member (`Volume-Level`), energy-level-member
    /// (`Energy-Level`): the member's level after a command set it.
    MemberLevel {
        channel: String,
        member_id: u32,
        level: Level,
        value: i32,
    },
    /// start-talking (`talking`) or stop-talking. FreeSWITCH sends one of each per spurt; a
    /// mute, a hold or a leave ends a spurt with no stop-talking.
    MemberTalking {
        channel: String,
        member_id: u32,
        talking: bool,
    },
    /// A file played to one member ended (play-file-member-done): a hold's music, or an
    /// announcement (`op`: its `switchyard_op`).
    MemberFileDone {
        channel: String,
        member_id: u32,
        op: Option<String>,
    },
    /// A file started, or (with `error`) could not be played.
    PlayFile {
        file: String,
        op: Option<String>,
        error: Option<String>,
    },
    PlayFileDone {
        file: String,
        op: Option<String>,
    },
    RecordingStarted {
        path: String,
        error: Option<String>,
    },
    RecordingStopped {
        path: String,
        millis: u64,
        /// `Record-File-Size`: the file's size in bytes once closed (1.10 and 1.11 send it).
        size: Option<u64>,
    },
    /// pause-recording (`paused`) or resume-recording.
    RecordingPaused {
        path: String,
        paused: bool,
    },
}

impl ConferenceFact {
    /// start-talking / stop-talking: frequent, debounced before they are applied.
    pub fn is_talking(&self) -> bool {
        matches!(self, ConferenceFact::MemberTalking { .. })
    }

    /// The same fact about the member keyed `channel` (a node-to-node leg's fact, told about
    /// the call it carries).
    pub fn for_member(&self, channel: &str) -> ConferenceFact {
        let mut fact = self.clone();
        match &mut fact {
            ConferenceFact::MemberAdded { channel: c, .. }
            | ConferenceFact::MemberDeleted { channel: c, .. }
            | ConferenceFact::MemberMuted { channel: c, .. }
            | ConferenceFact::MemberUnmuted { channel: c, .. }
            | ConferenceFact::MemberSwitched { channel: c, .. }
            | ConferenceFact::MemberKicked { channel: c, .. }
            | ConferenceFact::MemberLevel { channel: c, .. }
            | ConferenceFact::MemberTalking { channel: c, .. }
            | ConferenceFact::MemberFileDone { channel: c, .. } => channel.clone_into(c),
            _ => {}
        }
        fact
    }

    /// The channel of a member fact.
    pub fn member_channel(&self) -> Option<&str> {
        match self {
            ConferenceFact::MemberAdded { channel, .. }
            | ConferenceFact::MemberDeleted { channel, .. }
            | ConferenceFact::MemberMuted { channel, .. }
            | ConferenceFact::MemberUnmuted { channel, .. }
            | ConferenceFact::MemberSwitched { channel, .. }
            | ConferenceFact::MemberKicked { channel, .. }
            | ConferenceFact::MemberLevel { channel, .. }
            | ConferenceFact::MemberTalking { channel, .. }
            | ConferenceFact::MemberFileDone { channel, .. } => Some(channel),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    Channel {
        kind: ChannelFact,
        info: ChannelInfo,
        cause: Option<String>,
    },
    /// `room` is the FreeSWITCH conference name (our room id, when it is one of ours).
    Conference {
        room: String,
        conference_uuid: String,
        fact: ConferenceFact,
    },
    Job {
        job_uuid: String,
        body: String,
    },
    /// A dial-out's originate failed (its BACKGROUND_JOB said `-ERR <cause>`): the only word
    /// of a call that never became a channel (a gateway down, a name that does not resolve).
    DialoutFailed {
        room: String,
        channel: String,
        cause: String,
    },
    /// A digit the caller pressed (the core `DTMF` event: FreeSWITCH sends no conference event
    /// for a caller's digits when the room has no caller controls).
    Dtmf {
        channel: String,
        digit: String,
    },
    Heartbeat,
}

/// A fact and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub core_uuid: String,
    /// The event's `Event-Sequence` (0 when it has none): one counter per FreeSWITCH process,
    /// not monotonic in delivery order across threads.
    pub sequence: u64,
    pub fact: Fact,
}

fn text(event: &Event, name: &str) -> String {
    event
        .header(name)
        .map(|v| v.into_owned())
        .unwrap_or_default()
}

fn channel_info(event: &Event) -> Option<ChannelInfo> {
    let channel = event.unique_id()?.into_owned();
    let did = event
        .header("variable_switchyard_did")
        .or_else(|| event.header("Caller-Destination-Number"))
        .map(|v| v.into_owned())
        .unwrap_or_default();
    Some(ChannelInfo {
        channel,
        did,
        caller_id: text(event, "Caller-Caller-ID-Number"),
        caller_name: text(event, "Caller-Caller-ID-Name"),
        app_hint: event
            .header("variable_switchyard_app_id")
            .map(|v| v.into_owned()),
        role: event
            .header("variable_switchyard_role")
            .map(|v| v.into_owned()),
        room: event
            .header("variable_switchyard_room")
            .map(|v| v.into_owned()),
        node_session: event
            .header("variable_sip_h_X-Switchyard-Session")
            .map(|v| v.into_owned()),
    })
}

fn member(event: &Event) -> Option<(String, u32)> {
    Some((event.unique_id()?.into_owned(), event.member_id()?))
}

fn conference_fact(event: &Event) -> Option<ConferenceFact> {
    use ConferenceAction as A;
    let action = event.action()?;
    let fact = match action {
        A::ConferenceCreate => ConferenceFact::Created,
        A::ConferenceDestroy => ConferenceFact::Destroyed,
        A::AddMember => {
            let (channel, member_id) = member(event)?;
            let speak = event.flag("Speak").unwrap_or(true);
            let moderator = event.member_type().is_some_and(|t| t == "moderator");
            ConferenceFact::MemberAdded {
                channel,
                member_id,
                speak,
                moderator,
            }
        }
        A::DelMember => {
            let (channel, member_id) = member(event)?;
            let cause = event.hangup_cause().map(|c| c.into_owned());
            ConferenceFact::MemberDeleted {
                channel,
                member_id,
                cause,
            }
        }
        A::MuteMember => {
            let (channel, member_id) = member(event)?;
            ConferenceFact::MemberMuted { channel, member_id }
        }
        A::UnmuteMember => {
            let (channel, member_id) = member(event)?;
            ConferenceFact::MemberUnmuted { channel, member_id }
        }
        A::DeafMember | A::UndeafMember | A::HoldMember | A::UnholdMember => {
            let (channel, member_id) = member(event)?;
            let (switch, on) = match action {
                A::DeafMember => (Switch::Deaf, true),
                A::UndeafMember => (Switch::Deaf, false),
                A::HoldMember => (Switch::Hold, true),
                _ => (Switch::Hold, false),
            };
            ConferenceFact::MemberSwitched {
                channel,
                member_id,
                switch,
                on,
            }
        }
        A::PlayFileMemberDone => {
            let (channel, member_id) = member(event)?;
            let op = event.header("switchyard_op").map(|v| v.into_owned());
            ConferenceFact::MemberFileDone {
                channel,
                member_id,
                op,
            }
        }
        A::StartTalking | A::StopTalking => {
            let (channel, member_id) = member(event)?;
            ConferenceFact::MemberTalking {
                channel,
                member_id,
                talking: action == A::StartTalking,
            }
        }
        A::VolumeInMember | A::VolumeOutMember | A::EnergyLevelMember => {
            let (channel, member_id) = member(event)?;
            let (level, header) = match action {
                A::VolumeInMember => (Level::VolumeIn, "Volume-Level"),
                A::VolumeOutMember => (Level::VolumeOut, "Volume-Level"),
                _ => (Level::Energy, "Energy-Level"),
            };
            ConferenceFact::MemberLevel {
                channel,
                member_id,
                level,
                value: event.header(header)?.trim().parse().ok()?,
            }
        }
        A::KickMember | A::HupMember => {
            let (channel, member_id) = member(event)?;
            ConferenceFact::MemberKicked { channel, member_id }
        }
        A::PlayFile => ConferenceFact::PlayFile {
            file: text(event, "File"),
            op: event.header("switchyard_op").map(|v| v.into_owned()),
            error: event.error().map(|v| v.into_owned()),
        },
        A::PlayFileDone => ConferenceFact::PlayFileDone {
            file: text(event, "File"),
            op: event.header("switchyard_op").map(|v| v.into_owned()),
        },
        A::PauseRecording | A::ResumeRecording => ConferenceFact::RecordingPaused {
            path: text(event, "Path"),
            paused: action == A::PauseRecording,
        },
        A::StartRecording => ConferenceFact::RecordingStarted {
            path: text(event, "Path"),
            error: event.error().map(|v| v.into_owned()),
        },
        A::StopRecording => ConferenceFact::RecordingStopped {
            path: text(event, "Path"),
            millis: event
                .header("Milliseconds-Elapsed")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            size: event
                .header("Record-File-Size")
                .and_then(|v| v.parse().ok()),
        },
        _ => return None,
    };
    Some(fact)
}

/// A dial-out's originate that failed, from its BACKGROUND_JOB: `Job-Command: originate`, a
/// `-ERR <CAUSE>` body, and our variables at the head of `Job-Command-Arg`
/// (`{origination_uuid=…,switchyard_role=dialout,…,switchyard_room=…}…`).
fn failed_dialout(event: &Event, body: &str) -> Option<Fact> {
    if event.header("Job-Command").as_deref() != Some("originate") {
        return None;
    }
    let cause = body.trim().strip_prefix("-ERR ")?;
    let arg = event.header("Job-Command-Arg")?;
    let vars = arg.strip_prefix('{')?.split_once('}')?.0;
    let var = |name: &str| {
        vars.split(',')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_owned)
    };
    if var("switchyard_role").as_deref() != Some("dialout") {
        return None;
    }
    let cause_ok = !cause.is_empty()
        && cause.len() <= 64
        && cause.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
    Some(Fact::DialoutFailed {
        room: var("switchyard_room")?,
        channel: var("origination_uuid")?,
        cause: if cause_ok {
            cause.to_owned()
        } else {
            "UNKNOWN".into()
        },
    })
}

/// The fact an event reports, if the controller cares about it.
pub fn from_event(event: &Event) -> Option<Observed> {
    let core_uuid = event.core_uuid()?.into_owned();
    let fact = match event.name() {
        EventName::ChannelCreate
        | EventName::ChannelProgress
        | EventName::ChannelProgressMedia
        | EventName::ChannelAnswer
        | EventName::ChannelPark
        | EventName::ChannelHangupComplete => {
            let kind = match event.name() {
                EventName::ChannelCreate => ChannelFact::Created,
                EventName::ChannelProgress | EventName::ChannelProgressMedia => {
                    ChannelFact::Ringing
                }
                EventName::ChannelAnswer => ChannelFact::Answered,
                EventName::ChannelPark => ChannelFact::Parked,
                _ => ChannelFact::HungUp,
            };
            let cause = event.hangup_cause().map(|c| c.into_owned());
            Fact::Channel {
                kind,
                info: channel_info(event)?,
                cause,
            }
        }
        EventName::Custom if event.is_conference() => Fact::Conference {
            room: event.conference_name()?.into_owned(),
            conference_uuid: text(event, "Conference-Unique-ID"),
            fact: conference_fact(event)?,
        },
        EventName::BackgroundJob => {
            let body = event.body().map(|b| b.into_owned()).unwrap_or_default();
            match failed_dialout(event, &body) {
                Some(fact) => fact,
                None => Fact::Job {
                    job_uuid: event.job_uuid()?.into_owned(),
                    body,
                },
            }
        }
        EventName::Dtmf => Fact::Dtmf {
            channel: event.unique_id()?.into_owned(),
            digit: event
                .header("DTMF-Digit")
                .filter(|d| d.len() == 1 && d.chars().all(|c| "0123456789*#ABCDabcd".contains(c)))?
                .to_ascii_uppercase(),
        },
        EventName::Heartbeat => Fact::Heartbeat,
        _ => return None,
    };
    let sequence = event.sequence().unwrap_or(0);
    Some(Observed {
        core_uuid,
        sequence,
        fact,
    })
}
