//! A room's members (conferencecalls): their state as the node reports it and as commands ask
//! it, and the switches (mute, deaf, hold) a command turns on and off.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Micros, Session, is_zero};

fn is_zero_i8(n: &i8) -> bool {
    *n == 0
}

fn no_asks(asks: &[u8; 3]) -> bool {
    *asks == [0; 3]
}
use crate::conference::ids::SessionId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberStatus {
    Joining,
    Joined,
    Leaving,
    Leaved,
}

/// Why a member is no longer in the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// The application asked (conference/leave).
    Left,
    /// Kicked (room deleted, connect partner left, or an operator on the node).
    Kicked,
    /// The call ended.
    Hangup,
    /// The join was never confirmed by the node.
    JoinFailed,
    /// Moved to another room of the application (`conference/move`): that room tells it.
    Moved,
    /// A resync found the member gone from the node (an event was missed).
    NotOnNode,
    /// The node restarted; every conference on it is gone.
    NodeRestarted,
    /// The room was destroyed on the node.
    RoomEnded,
    /// A call carried from another node: the room's node or the call's node stopped answering
    /// (its Event Socket closed); a call that lives is parked on its own node.
    NodeFailed,
}

/// The node-to-node link that carries a member whose call is on another node than the room
/// (see `node::bridge`): a SIP leg from the call's node to the room's node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bridge {
    /// The outbound leg on the call's node (the controller chose its uuid).
    pub out: Uuid,
    /// The leg on the room's node, once that node reported it (its first event, tagged with the
    /// session): the room's node knows the member by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leg: Option<String>,
}

/// Where a member is taken out of the room: a channel on the room's node, and whether it is a
/// node-to-node leg (hung up, so that the call parks again on its own node) or the call itself
/// (parked on the room's node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub channel: String,
    pub bridged: bool,
}

/// One participation of a session in a room: a conferencecall of seeds 000–003.
/// Stored as JSON; absent fields are the empty ones (`None`, not kicked), which keeps each room
/// write small.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub conferencecall_id: Uuid,
    /// `{node prefix}-{channel uuid}`: the member's channel is part of it.
    pub session: SessionId,
    /// FreeSWITCH's member id, once add-member confirmed the join.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<u32>,
    pub status: MemberStatus,
    pub muted: bool,
    pub did: String,
    pub caller_id: String,
    /// The command_uid of the join request, echoed in its webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_uid: Option<String>,
    pub requested_at: Micros,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined_at: Option<Micros>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_at: Option<Micros>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leave_reason: Option<LeaveReason>,
    /// FreeSWITCH's Hangup-Cause when the call ended in the room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hangup_cause: Option<String>,
    /// A kick-member arrived; the coming del-member is a kick.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub kicked: bool,
    /// What the last mute or unmute the node accepted asks, until the node reports the member
    /// so (`muted` is what it reported). A new command is judged against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mute_requested: Option<bool>,
    /// Does not hear the room (FreeSWITCH's `can_hear` off), as the node reported.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deaf: bool,
    /// A deaf or undeaf asked and not reported yet (as `mute_requested`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deaf_requested: Option<bool>,
    /// On hold (FreeSWITCH's `hold`): hears hold music, is neither heard nor hears the room; its
    /// mute state is kept for when it comes back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
    /// A hold or unhold asked and not reported yet (as `mute_requested`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_requested: Option<bool>,
    /// Switch commands sent and not reported yet, per switch (mute, deaf, hold): a report
    /// settles the pending command only when none is left in flight. (An older command's report
    /// of the same value would otherwise settle a newer one early: unmute, mute, unmute sent
    /// while the node's reports wait for a new owner of its events, and the first unmute's
    /// report settles the last; the mute's report then shows the member muted, as before the
    /// last command, until the last report comes.)
    #[serde(default, skip_serializing_if = "no_asks")]
    pub asks: [u8; 3],
    /// The `command_uid` of the last switch command accepted for the member: a retry of it is
    /// answered as accepted again, not refused as done (see `ops::request_switch_by`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switch_uid: Option<String>,
    /// The file a hold plays to the member when it is not the node's hold music (which loops
    /// by itself): played again each time it ends while the member is held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_music: Option<String>,
    /// Joined as a moderator (FreeSWITCH's `moderator` flag): releases a room that waits for
    /// one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub moderator: bool,
    /// The room ends when this member leaves (as FreeSWITCH's `endconf`, but the others are
    /// moved out and their calls live on, as when the room is deleted).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub end_on_exit: bool,
    /// The volume of what the member says, −4…4, as the node reported it (0: unchanged).
    #[serde(default, skip_serializing_if = "is_zero_i8")]
    pub volume_in: i8,
    /// The volume of what the member hears, −4…4, as the node reported it (0: unchanged).
    #[serde(default, skip_serializing_if = "is_zero_i8")]
    pub volume_out: i8,
    /// The member's energy threshold as the node reported it after a change; `None`: the
    /// room profile's (`energy-level`, 100 in `freeswitch-conf/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy: Option<u32>,
    /// The application's own data about this participation (a JSON object, at most
    /// [`super::METADATA_MAX_BYTES`] serialized).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<super::Metadata>,
    /// Coaching: heard by this session's member alone (the node's `relate … nospeak` towards
    /// everyone else in the room). Stays while that member is away; ends with an uncoach or a
    /// leave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coaching: Option<SessionId>,
    /// Announcements to this member alone on their way (their operation ids), oldest first:
    /// each ends with its play-file-member-done.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub announcements: Vec<Uuid>,
    /// Speaking, as the node's start-talking / stop-talking said (only for apps that asked for
    /// talking events); a mute, a hold or a leave ends it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub talking: bool,
    /// The node's `Event-Sequence` of the newest talking event applied (apart from `event_seq`:
    /// the frequent talking events must not make an older state event look stale).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub talking_seq: u64,
    /// The node's `Event-Sequence` of the newest digit announced (see `apply::dtmf`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dtmf_seq: u64,
    /// A call on another node, carried to the room's node (`None`: the call is on the room's
    /// node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<Bridge>,
    /// On its way to the room's new node (a live migration, `rooms::migrate`): still a member,
    /// its switches kept, until that node's add-member; nothing is announced for the move.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub moving: bool,
    /// On its way to another room of the application (`conference/move`): leaving this one,
    /// and its del-member here tells nothing (the other room tells the move).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moving_to: Option<crate::conference::ids::RoomId>,
    /// Coming from another room of the application (`conference/move`), and what it brings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carried: Option<Box<Carried>>,
    /// The node's `Event-Sequence` of the newest event applied to this member (0: none yet).
    /// An older event of the channel is not applied again (see `apply::apply_event`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub event_seq: u64,
    pub updated_at: Micros,
}

impl Member {
    /// The member's value of `level` as the API shows it (energy: `None` for the profile's).
    pub fn level(&self, level: Level) -> Option<i32> {
        match level {
            Level::VolumeIn => Some(i32::from(self.volume_in)),
            Level::VolumeOut => Some(i32::from(self.volume_out)),
            Level::Energy => self.energy.map(|e| i32::try_from(e).unwrap_or(i32::MAX)),
        }
    }

    /// Its levels that are not the node's defaults (what a move or a migration sets again).
    pub fn set_levels(&self) -> Vec<(Level, i32)> {
        Level::ALL
            .into_iter()
            .filter_map(|l| Some((l, self.level(l)?)))
            .filter(|(l, v)| *v != 0 || *l == Level::Energy)
            .collect()
    }

    /// Sets `level` as the node reported it; whether that changed it.
    pub fn set_level(&mut self, level: Level, value: i32) -> bool {
        let before = self.level(level);
        match level {
            Level::VolumeIn => self.volume_in = value.clamp(-4, 4) as i8,
            Level::VolumeOut => self.volume_out = value.clamp(-4, 4) as i8,
            Level::Energy => self.energy = Some(u32::try_from(value.max(0)).unwrap_or(0)),
        }
        self.level(level) != before
    }

    /// A new participation of `session`, as a join request makes it: joining, muted, a fresh
    /// conferencecall id.
    pub fn requested(session: &Session, command_uid: Option<String>, now: Micros) -> Member {
        let (did, caller_id) = (session.did.clone(), session.caller_id.clone());
        Member::new(session.id.clone(), did, caller_id, command_uid, now)
    }

    /// A participation of `session` asked for at `now`: joining, muted, a fresh conferencecall
    /// id, every switch off.
    pub fn new(
        session: SessionId,
        did: String,
        caller_id: String,
        command_uid: Option<String>,
        now: Micros,
    ) -> Member {
        Member {
            conferencecall_id: Uuid::new_v4(),
            session,
            member_id: None,
            status: MemberStatus::Joining,
            muted: true,
            did,
            caller_id,
            command_uid,
            requested_at: now,
            joined_at: None,
            left_at: None,
            leave_reason: None,
            hangup_cause: None,
            kicked: false,
            mute_requested: None,
            deaf: false,
            deaf_requested: None,
            held: false,
            hold_requested: None,
            hold_music: None,
            asks: [0; 3],
            switch_uid: None,
            moderator: false,
            end_on_exit: false,
            metadata: None,
            volume_in: 0,
            volume_out: 0,
            energy: None,
            coaching: None,
            announcements: Vec::new(),
            talking: false,
            talking_seq: 0,
            dtmf_seq: 0,
            bridge: None,
            moving: false,
            moving_to: None,
            carried: None,
            event_seq: 0,
            updated_at: now,
        }
    }

    /// The FreeSWITCH channel uuid of the call (on its own node): the member's key in its room.
    pub fn channel(&self) -> &str {
        self.session.channel()
    }

    /// The channel the room's node knows the member by: the call's own, or the node-to-node
    /// leg that carries it (`None` while the room's node has not reported that leg).
    pub fn room_channel(&self) -> Option<&str> {
        match &self.bridge {
            None => Some(self.channel()),
            Some(b) => b.leg.as_deref(),
        }
    }

    /// How to take the member out on the room's node (`None`: a carried call whose leg the room's
    /// node has not reported yet; it is refused when it arrives).
    pub fn exit(&self) -> Option<Exit> {
        self.room_channel().map(|channel| Exit {
            channel: channel.to_owned(),
            bridged: self.bridge.is_some(),
        })
    }

    /// The node-to-node leg on the room's node, if the member is carried by one.
    pub fn leg(&self) -> Option<&str> {
        self.bridge.as_ref().and_then(|b| b.leg.as_deref())
    }

    /// A switch as the node reported it.
    pub fn switch(&self, switch: Switch) -> bool {
        match switch {
            Switch::Mute => self.muted,
            Switch::Deaf => self.deaf,
            Switch::Hold => self.held,
        }
    }

    /// A switch as last asked: the pending command, else what the node reported.
    pub fn as_asked(&self, switch: Switch) -> bool {
        self.pending(switch).unwrap_or(self.switch(switch))
    }

    /// The command on its way for a switch, if any.
    pub fn pending(&self, switch: Switch) -> Option<bool> {
        match switch {
            Switch::Mute => self.mute_requested,
            Switch::Deaf => self.deaf_requested,
            Switch::Hold => self.hold_requested,
        }
    }

    /// How many commands of a switch are on their way (see [`Member::asks`]).
    pub fn asks_mut(&mut self, switch: Switch) -> &mut u8 {
        let i = match switch {
            Switch::Mute => 0,
            Switch::Deaf => 1,
            Switch::Hold => 2,
        };
        &mut self.asks[i]
    }

    /// The switch as the node reported it, and the command on its way, to change.
    pub fn switch_mut(&mut self, switch: Switch) -> (&mut bool, &mut Option<bool>) {
        match switch {
            Switch::Mute => (&mut self.muted, &mut self.mute_requested),
            Switch::Deaf => (&mut self.deaf, &mut self.deaf_requested),
            Switch::Hold => (&mut self.held, &mut self.hold_requested),
        }
    }
}

/// What a member moving in from another room brings (`conference/move`): set again on the node
/// once it is in, as FreeSWITCH starts every member muted, hearing, at its default levels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Carried {
    pub from: crate::conference::ids::RoomId,
    /// Unmuted once in (it comes in muted, as every join does).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unmute: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deaf: bool,
    /// Its levels that are not the node's defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub levels: Vec<(Level, i32)>,
}

/// A member's audio level that mod_conference sets per member: the volume of what it says
/// (`volume_in`) and of what it hears (`volume_out`), −4…4 (0: as it comes), and the energy
/// threshold under which what it says is not heard (`energy`, the noise gate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    VolumeIn,
    VolumeOut,
    Energy,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::VolumeIn, Level::VolumeOut, Level::Energy];

    /// mod_conference's command (and the API's field).
    pub fn verb(self) -> &'static str {
        match self {
            Level::VolumeIn => "volume_in",
            Level::VolumeOut => "volume_out",
            Level::Energy => "energy",
        }
    }

    /// The values the API takes (FreeSWITCH clamps volumes to −4…4; its energy `up` stops at
    /// 1800).
    pub fn range(self) -> std::ops::RangeInclusive<i32> {
        match self {
            Level::VolumeIn | Level::VolumeOut => -4..=4,
            Level::Energy => 0..=1800,
        }
    }
}

/// A member's on/off state that a command asks the node for and the node reports: muted (not
/// heard), deaf (hears nothing of the room), held (hold music instead of the room, not heard).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Switch {
    Mute,
    Deaf,
    Hold,
}

impl Switch {
    pub const ALL: [Switch; 3] = [Switch::Mute, Switch::Deaf, Switch::Hold];

    /// mod_conference's command that turns it on (`on`) or off.
    pub fn verb(self, on: bool) -> &'static str {
        match (self, on) {
            (Switch::Mute, true) => "mute",
            (Switch::Mute, false) => "unmute",
            (Switch::Deaf, true) => "deaf",
            (Switch::Deaf, false) => "undeaf",
            (Switch::Hold, true) => "hold",
            (Switch::Hold, false) => "unhold",
        }
    }

    /// The member's state in words: `muted`, `undeaf`, `held`…
    pub fn state(self, on: bool) -> &'static str {
        match (self, on) {
            (Switch::Mute, true) => "muted",
            (Switch::Mute, false) => "unmuted",
            (Switch::Deaf, true) => "deaf",
            (Switch::Deaf, false) => "undeaf",
            (Switch::Hold, true) => "held",
            (Switch::Hold, false) => "unheld",
        }
    }
}
