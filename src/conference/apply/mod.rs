//! `apply`: folds one FreeSWITCH conference fact into a room. Pure: no I/O, no clock (the caller
//! passes `now`). Applying the same fact twice changes nothing the second time; facts about
//! members the room does not know, or from a FreeSWITCH process the room does not live in, are
//! ignored and say why.
//!
//! This file holds the step every change goes through and the dispatch by fact; the facts
//! themselves are folded by family: [`members`] (add, delete, mute, kick, a member's channel
//! ending or parking), [`ending`] (the conference itself: created, destroyed, its control leg
//! lost, and how a room ends), [`media`] (playback and recordings); [`data`] builds the webhook
//! data of member and recording events.

mod bridge;
mod data;
mod dialout;
mod ending;
mod media;
mod members;
pub mod migration;

use serde_json::json;

use super::actions::Talk;
use super::events::{DomainEvent, EventKind};
use super::facts::ConferenceFact;
use super::model::{Exit, Micros, Room, RoomStatus, Session, Switch};

pub use bridge::{bridge_ended, call_node_failed, node_leg, room_node_failed};
pub use data::{member_data, recording_data};
pub use dialout::{ANSWERED_GRACE, DialoutStep, dialout_data, expire_dialouts, fail_dialout};
pub use ending::{lose_conference, terminate};
pub use media::end_recording;
pub use members::{channel_gone, channel_parked, dtmf, farewell, remove_member, why_left};

/// Why a fact changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// The room is terminated; nothing more happens to it.
    Terminated,
    /// The fact came from another FreeSWITCH process than the one the room lives in.
    StaleCore,
    /// A member the room does not know (or a stale member id).
    UnknownMember,
    /// A playback or recording the room is not running.
    UnknownOperation,
    /// The fact restates what the room already holds.
    NoChange,
    /// A member fact older (by the node's `Event-Sequence`) than one already applied for the
    /// same channel: another controller instance applied both, or the node delivered them out
    /// of order.
    Superseded,
}

/// Work the node must do because of a fact (the domain decides, the node layer acts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// The control leg is gone while the room should live: originate it again.
    EstablishControlLeg,
    /// Take a member out of the room (a `connect` partner left, the room ended), saying the
    /// room's post-actions to it on its way out: its call is parked, or its node-to-node leg
    /// hung up (the call parks again on its own node).
    Eject { exit: Exit, talks: Vec<Talk> },
    /// Say the room's pre-actions to a member who has just joined.
    Greet { member_id: u32, talks: Vec<Talk> },
    /// The room is over on our side: hang up the control leg.
    ReleaseControlLeg,
    /// Play a held member's music again (it ended; the member is still held).
    HoldMusic { member_id: u32, file: String },
    /// A coach stays unheard by a member who has just joined (`relate <coach> <member>
    /// nospeak`).
    Unhear { coach: u32, member_id: u32 },
    /// The conference is up: give it the room's enter and exit tones.
    Beeps { enter: bool, exit: bool },
    /// A member that moved with its room to another node arrived there muted: set its
    /// switches again as the room holds them (`hold_music`: what a held member hears, the
    /// node's hold music when `None`).
    Restore {
        member_id: u32,
        unmute: bool,
        deaf: bool,
        hold: bool,
        hold_music: Option<String>,
        /// The member's levels that are not the node's defaults.
        levels: Vec<(crate::conference::Level, i32)>,
    },
    /// Hang up a channel on the room's node (`uuid_kill … ORIGINATOR_CANCEL`): a call the room
    /// was placing (the room ended, or the node never settled it), or a node-to-node leg the
    /// room does not expect or no longer carries.
    Cancel { channel: String },
}

/// What applying a fact did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Applied {
    pub events: Vec<DomainEvent>,
    pub effects: Vec<Effect>,
    pub ignored: Option<Ignored>,
    /// The room changed (its `seq` moved).
    pub changed: bool,
}

impl Applied {
    fn ignored(why: Ignored) -> Applied {
        Applied {
            ignored: Some(why),
            ..Applied::default()
        }
    }
}

/// Context of one apply step.
pub struct Step<'a> {
    pub room: &'a mut Room,
    pub now: Micros,
    pub out: Applied,
}

impl<'a> Step<'a> {
    pub fn new(room: &'a mut Room, now: Micros) -> Step<'a> {
        Step {
            room,
            now,
            out: Applied::default(),
        }
    }

    /// Records a change: `seq` grows by one.
    pub fn touch(&mut self) {
        self.room.seq += 1;
        self.room.updated_at = self.now;
        self.out.changed = true;
    }

    /// Records a change that the application hears about.
    pub fn emit(&mut self, kind: EventKind, mut data: serde_json::Value) {
        self.touch();
        // Every event about a room carries the application's data about it.
        if let (Some(m), serde_json::Value::Object(d)) = (&self.room.metadata, &mut data) {
            d.entry("room_metadata")
                .or_insert_with(|| serde_json::Value::Object(m.clone()));
        }
        self.out.events.push(DomainEvent {
            kind,
            app: self.room.app.clone(),
            room: self.room.id.clone(),
            seq: self.room.seq,
            at: self.now,
            data,
            redelivers: None,
        });
    }

    /// Moves the room forward (never back) and says so. `terminated` is reached through
    /// [`terminate`], which first takes every member out.
    pub fn set_status(&mut self, status: RoomStatus) {
        if status <= self.room.status {
            return;
        }
        self.room.status = status;
        if status >= RoomStatus::Terminating {
            dialout::cancel_dialouts(self);
            crate::conference::ops::end_streams_where(
                self,
                |_| true,
                crate::conference::StreamStatus::Stopped,
                "room_ended",
            );
        }
        if status == RoomStatus::Terminated {
            self.room.deleted_at = Some(self.now);
        }
        let kind = match status {
            RoomStatus::Starting => return,
            RoomStatus::Progressing => EventKind::Progressing,
            RoomStatus::Terminating => EventKind::Terminating,
            RoomStatus::Terminated => EventKind::Terminated,
        };
        self.emit(
            kind,
            json!({ "room_id": self.room.id, "status": status.as_str() }),
        );
    }

    pub fn finish(self) -> Applied {
        if self.out.changed {
            self.room.note_occupancy(self.now);
        }
        self.out
    }
}

/// [`apply`] for a fact the node numbered `sequence` (its `Event-Sequence`; 0: not known).
/// A member fact older than the newest one already applied for its channel is not applied:
/// it would take the member back to a state the room has already announced it left (two
/// controller instances applying one node's events, the second a little behind the first,
/// would otherwise announce `unmuted → muted → unmuted` for one mute, or `joined` again after
/// `left`). The channel's newest applied sequence is kept on its member, and on its past
/// participation once it left.
pub fn apply_event(
    room: &mut Room,
    core_uuid: &str,
    conference_uuid: &str,
    fact: &ConferenceFact,
    session: Option<&Session>,
    now: Micros,
    sequence: u64,
) -> Applied {
    // A node-to-node leg's fact is about the call it carries.
    let resolved = fact
        .member_channel()
        .map(|c| room.member_key(c))
        .filter(|key| Some(*key) != fact.member_channel())
        .map(|key| fact.for_member(key));
    let fact = resolved.as_ref().unwrap_or(fact);
    if migration::is_target(room, core_uuid) {
        return migration::before_switch(room, conference_uuid, fact, now);
    }
    if let ConferenceFact::MemberTalking {
        channel,
        member_id,
        talking,
    } = fact
    {
        return guarded(room, core_uuid, now, |step| {
            members::talking(step, channel, *member_id, *talking, sequence)
        });
    }
    let channel = fact.member_channel().unwrap_or_default();
    if channel.is_empty() || channel == room.control.channel {
        return once(room, core_uuid, sequence, |room| {
            apply(room, core_uuid, conference_uuid, fact, session, now)
        });
    }
    in_order(room, core_uuid, channel, sequence, |room| {
        let mut out = apply(room, core_uuid, conference_uuid, fact, session, now);
        // An unmute (or unhold) says the member was muted at the node just before it: a spurt
        // that began before it is over, even when the mute between was missed or came late
        // (and, older than this, is not applied).
        let unsilenced = matches!(
            fact,
            ConferenceFact::MemberUnmuted { .. }
                | ConferenceFact::MemberSwitched {
                    switch: Switch::Hold,
                    on: false,
                    ..
                }
        );
        if unsilenced && out.ignored.is_none_or(|i| i == Ignored::NoChange) {
            let ended = guarded(room, core_uuid, now, |step| {
                members::spurt_ended(step, channel, sequence)
            });
            if ended.changed {
                out.events.extend(ended.events);
                out.changed = true;
                out.ignored = None;
            }
        }
        out
    })
}

/// Applies `f`, a fact about the room itself that its node numbered `sequence`, unless that
/// fact was applied already (its number is among the room's newest facts' marks, or older
/// than all of them when they are full); then marks the room with it. `sequence` 0 (not
/// known), or a fact of another process: `f` is applied as it is.
fn once(
    room: &mut Room,
    core_uuid: &str,
    sequence: u64,
    f: impl FnOnce(&mut Room) -> Applied,
) -> Applied {
    let tracked = sequence > 0 && room.core_uuid.as_deref() == Some(core_uuid);
    let marks = &room.fact_seqs;
    let seen = marks.binary_search(&sequence).is_ok()
        || (marks.len() >= Room::FACT_MARKS && marks.first().is_some_and(|m| sequence < *m));
    if tracked && seen {
        return Applied::ignored(Ignored::Superseded);
    }
    let out = f(room);
    // Only with a change: the room's `seq` moved, so the write is guarded like any other. A
    // fact that moved the room to another process is not marked (its marks are that one's).
    if tracked && out.changed && room.core_uuid.as_deref() == Some(core_uuid) {
        let marks = &mut room.fact_seqs;
        if let Err(at) = marks.binary_search(&sequence) {
            marks.insert(at, sequence);
        }
        if marks.len() > Room::FACT_MARKS {
            marks.remove(0);
        }
    }
    out
}

/// Applies `f`, a change about `channel` (a member fact, or its call's CHANNEL event) that the
/// node numbered `sequence`, unless an event of the channel at least as new was applied already
/// (see [`apply_event`]); then marks the channel's member with `sequence`. `channel` empty, the
/// control leg's, or `sequence` 0 (not known): `f` is applied as it is.
pub fn in_order(
    room: &mut Room,
    core_uuid: &str,
    channel: &str,
    sequence: u64,
    f: impl FnOnce(&mut Room) -> Applied,
) -> Applied {
    let tracked = !channel.is_empty() && sequence > 0 && channel != room.control.channel;
    if tracked
        && room.core_uuid.as_deref() == Some(core_uuid)
        && newest_applied(room, channel) >= sequence
    {
        return Applied::ignored(Ignored::Superseded);
    }
    let mut out = f(room);
    // A fact that restates the member's state still marks it (an older fact that contradicts it,
    // delivered later, must not be applied): the room's `seq` moves for the mark, so the write is
    // guarded like any other.
    let restated = out.ignored == Some(Ignored::NoChange)
        && room.core_uuid.as_deref() == Some(core_uuid)
        && room
            .members
            .get(channel)
            .is_some_and(|m| m.event_seq < sequence);
    if tracked && restated {
        room.seq += 1;
        out.changed = true;
        out.ignored = None;
    }
    // Only with a change: the room's `seq` moved, so the write is guarded like any other. Only
    // the room's node numbers its members' facts: the call's own node (a member carried from
    // another node) counts apart.
    if tracked && out.changed && room.core_uuid.as_deref() == Some(core_uuid) {
        let member = match room.members.get_mut(channel) {
            Some(m) => Some(m),
            None => std::sync::Arc::make_mut(&mut room.past_members)
                .iter_mut()
                .rev()
                .find(|m| m.channel() == channel),
        };
        if let Some(m) = member {
            m.event_seq = m.event_seq.max(sequence);
        }
    }
    out
}

/// The newest `Event-Sequence` applied for a channel, in the room or in its past.
fn newest_applied(room: &Room, channel: &str) -> u64 {
    let live = room.members.get(channel).map_or(0, |m| m.event_seq);
    room.past_members
        .iter()
        .filter(|m| m.channel() == channel)
        .map(|m| m.event_seq)
        .fold(live, u64::max)
}

/// Applies one conference fact. `session` is the session record of the channel the fact is
/// about, when there is one (it lets a member the controller did not add be recognised).
pub fn apply(
    room: &mut Room,
    core_uuid: &str,
    conference_uuid: &str,
    fact: &ConferenceFact,
    session: Option<&Session>,
    now: Micros,
) -> Applied {
    guarded(room, core_uuid, now, |step| {
        dispatch(step, core_uuid, conference_uuid, fact, session)
    })
}

/// Applies a step of a dial-out the room is placing (from its channel's events, or its
/// originate's result).
pub fn apply_dialout(
    room: &mut Room,
    core_uuid: &str,
    channel: &str,
    what: &DialoutStep,
    now: Micros,
) -> Applied {
    guarded(room, core_uuid, now, |step| {
        dialout::dialout_step(step, channel, what)
    })
}

/// Runs `f` on a live room of the node `core_uuid` (else says why not), and says "no change"
/// when it changed nothing and did not say why.
fn guarded(
    room: &mut Room,
    core_uuid: &str,
    now: Micros,
    f: impl FnOnce(&mut Step<'_>),
) -> Applied {
    if room.status == RoomStatus::Terminated {
        return Applied::ignored(Ignored::Terminated);
    }
    if room.core_uuid.as_deref().is_some_and(|c| c != core_uuid) {
        return Applied::ignored(Ignored::StaleCore);
    }
    let mut step = Step::new(room, now);
    f(&mut step);
    let mut out = step.finish();
    if !out.changed && out.ignored.is_none() {
        out.ignored = Some(Ignored::NoChange);
    }
    out
}

fn dispatch(
    step: &mut Step<'_>,
    core_uuid: &str,
    conference_uuid: &str,
    fact: &ConferenceFact,
    session: Option<&Session>,
) {
    match fact {
        ConferenceFact::Created => ending::conference_created(step, core_uuid, conference_uuid),
        ConferenceFact::Destroyed => ending::conference_destroyed(step, conference_uuid),
        ConferenceFact::MemberAdded {
            channel,
            member_id,
            speak,
            moderator,
        } => members::member_added(step, channel, *member_id, *speak, *moderator, session),
        ConferenceFact::MemberDeleted {
            channel,
            member_id,
            cause,
        } => members::member_deleted(step, channel, *member_id, cause.as_deref()),
        ConferenceFact::MemberMuted { channel, member_id } => {
            members::set_switch(step, channel, *member_id, Switch::Mute, true)
        }
        ConferenceFact::MemberUnmuted { channel, member_id } => {
            members::set_switch(step, channel, *member_id, Switch::Mute, false)
        }
        ConferenceFact::MemberSwitched {
            channel,
            member_id,
            switch,
            on,
        } => members::set_switch(step, channel, *member_id, *switch, *on),
        ConferenceFact::MemberFileDone {
            channel,
            member_id,
            op,
        } => members::file_done(step, channel, *member_id, op.as_deref()),
        ConferenceFact::MemberKicked { channel, member_id } => {
            members::kicked(step, channel, *member_id)
        }
        ConferenceFact::MemberLevel {
            channel,
            member_id,
            level,
            value,
        } => members::set_level(step, channel, *member_id, *level, *value),
        ConferenceFact::PlayFile {
            error: Some(_),
            op,
            file,
        } => media::file_done(step, op.as_deref(), file, true),
        ConferenceFact::PlayFile { .. } => step.out.ignored = Some(Ignored::NoChange),
        ConferenceFact::PlayFileDone { op, file } => {
            media::file_done(step, op.as_deref(), file, false)
        }
        ConferenceFact::RecordingStarted { path, error } => {
            media::recording_started(step, path, error.as_deref())
        }
        ConferenceFact::RecordingPaused { path, paused } => {
            media::recording_paused(step, path, *paused)
        }
        ConferenceFact::RecordingStopped { path, millis, size } => {
            media::recording_stopped(step, path, *millis, *size)
        }
        ConferenceFact::MemberTalking {
            channel,
            member_id,
            talking,
        } => members::talking(step, channel, *member_id, *talking, 0),
    }
}
