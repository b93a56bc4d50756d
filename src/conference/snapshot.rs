//! A node's state as a snapshot tells it (`conference json_list`, `show channels as json`), and
//! reconciling a room with it after a (re)connect: what the node says wins.

use std::borrow::Cow;

use serde::Deserialize;

use super::apply::{
    Applied, Effect, Ignored, Step, farewell, lose_conference, remove_member, terminate, why_left,
};
use super::facts::ConferenceFact;
use super::ids::SessionId;
use super::model::{
    Exit, LeaveReason, Member, MemberStatus, Micros, RecordingStatus, Room, RoomStatus, Session,
    Switch,
};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MemberFlags {
    #[serde(default = "yes")]
    pub can_speak: bool,
    #[serde(default = "yes")]
    pub can_hear: bool,
    #[serde(default)]
    pub hold: bool,
    #[serde(default)]
    pub talking: bool,
    #[serde(default)]
    pub is_moderator: bool,
}

fn yes() -> bool {
    true
}

impl Default for MemberFlags {
    /// A member as it joins with no flags: speaking, hearing, not held.
    fn default() -> MemberFlags {
        MemberFlags {
            can_speak: true,
            can_hear: true,
            hold: false,
            talking: false,
            is_moderator: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SnapshotMember {
    pub id: u32,
    #[serde(default)]
    pub uuid: String,
    pub flags: MemberFlags,
    /// The session a node-to-node leg carries (its tag, from `show channels`; see
    /// [`SnapshotChannel::presence_data`]): set by the resync, not by FreeSWITCH's list.
    #[serde(skip)]
    pub carries: Option<SessionId>,
}

/// One room of `conference json_list`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "ListedConference")]
pub struct SnapshotConference {
    pub conference_name: String,
    pub conference_uuid: String,
    /// The callers (control leg included).
    pub members: Vec<SnapshotMember>,
    /// The conference still waits for its moderator (`wait-mod`; `None`: not listed).
    pub wait_mod: Option<bool>,
    /// The recordings running in it.
    pub recordings: Vec<SnapshotRecording>,
}

/// A recording a conference runs, as `conference json_list` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRecording {
    pub path: String,
    pub paused: bool,
}

/// A conference as `json_list` writes it. FreeSWITCH lists a running recording among a
/// conference's members, as `{"type": "recording_node", "record_path": …, "join_time": …}`
/// (and `"status": "paused"` while paused) with no id, uuid or flags (1.10.12 and 1.11;
/// `conference_jlist` in mod_conference): only `caller` entries (or entries with no type, as
/// older versions write them) are members.
#[derive(Deserialize)]
struct ListedConference {
    conference_name: String,
    conference_uuid: String,
    #[serde(default)]
    members: Vec<Listed>,
    #[serde(default)]
    wait_mod: Option<bool>,
}

#[derive(Deserialize)]
struct Listed {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(flatten)]
    rest: serde_json::Value,
}

impl TryFrom<ListedConference> for SnapshotConference {
    type Error = serde_json::Error;

    fn try_from(listed: ListedConference) -> Result<SnapshotConference, serde_json::Error> {
        let (mut members, mut recordings) = (Vec::new(), Vec::new());
        for entry in listed.members {
            match entry.kind.as_deref() {
                None | Some("caller") => members.push(SnapshotMember::deserialize(entry.rest)?),
                Some("recording_node") => {
                    if let Some(path) = entry.rest["record_path"].as_str() {
                        recordings.push(SnapshotRecording {
                            path: path.to_owned(),
                            paused: entry.rest["status"] == "paused",
                        });
                    }
                }
                Some(_) => {}
            }
        }
        Ok(SnapshotConference {
            conference_name: listed.conference_name,
            conference_uuid: listed.conference_uuid,
            members,
            wait_mod: listed.wait_mod,
            recordings,
        })
    }
}

/// One row of `show channels as json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SnapshotChannel {
    pub uuid: String,
    #[serde(default)]
    pub cid_name: String,
    #[serde(default)]
    pub cid_num: String,
    #[serde(default)]
    pub dest: String,
    /// The number first dialed (an inline transfer rewrites `dest`).
    #[serde(default)]
    pub initial_dest: String,
    #[serde(default)]
    pub callstate: String,
    /// A node-to-node leg's tag (the session it carries), which the `nodes` dialplan copies into
    /// `presence_data` (FreeSWITCH's core database takes it from CHANNEL_EXECUTE on).
    #[serde(default)]
    pub presence_data: String,
}

impl SnapshotChannel {
    /// A channel the node has but its `show channels` did not list yet: FreeSWITCH answers that
    /// from its core database, which trails the channel's events by a few hundred milliseconds,
    /// so a call that began just before the snapshot is missing from it. Only its uuid is known;
    /// the store already has its session.
    pub fn not_listed_yet(uuid: String) -> SnapshotChannel {
        SnapshotChannel {
            uuid,
            cid_name: String::new(),
            cid_num: String::new(),
            dest: String::new(),
            initial_dest: String::new(),
            callstate: String::new(),
            presence_data: String::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct ChannelRows {
    #[serde(default)]
    rows: Vec<SnapshotChannel>,
}

/// Parses `conference json_list` (an empty reply means no conferences).
pub fn parse_conferences(text: &str) -> Result<Vec<SnapshotConference>, serde_json::Error> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(text)
}

/// Parses `show channels as json` (`{"row_count":0}` when there are none).
pub fn parse_channels(text: &str) -> Result<Vec<SnapshotChannel>, serde_json::Error> {
    serde_json::from_str::<ChannelRows>(text).map(|r| r.rows)
}

/// Makes a room agree with its node. `conference` is the room in the snapshot (`None`: the node
/// has no such conference); `session` looks up the session of a channel. Joins requested before
/// `joins_settled_before` had time to reach the node: if their member is not there, they failed
/// (or joined and left while we were not listening — a snapshot cannot tell the two apart).
pub fn reconcile(
    room: &mut Room,
    core_uuid: &str,
    conference: Option<&SnapshotConference>,
    session: &dyn Fn(&str) -> Option<Session>,
    joins_settled_before: Micros,
    now: Micros,
) -> Applied {
    if room.status == RoomStatus::Terminated {
        return Applied {
            ignored: Some(Ignored::Terminated),
            ..Applied::default()
        };
    }
    // A room on its way to another node is its driver's until it is there (`rooms::migrate`);
    // the next audit compares it.
    if room.migration.is_some() {
        return Applied {
            ignored: Some(Ignored::NoChange),
            ..Applied::default()
        };
    }
    let restarted = room.core_uuid.as_deref().is_some_and(|c| c != core_uuid);
    let mut step = Step::new(room, now);
    let refused = match conference {
        Some(c) if !restarted => tie_legs(&mut step, c),
        _ => Vec::new(),
    };
    let keyed = conference.map(|c| by_member(step.room, c));
    let conference = keyed.as_deref();
    if restarted {
        node_restarted(&mut step, core_uuid);
    }
    match conference {
        None => conference_missing(&mut step),
        Some(conf) => conference_present(&mut step, core_uuid, conf, session, joins_settled_before),
    }
    let settled: Vec<String> = step
        .room
        .members
        .values()
        .filter(|m| m.status == MemberStatus::Joining && m.requested_at < joins_settled_before)
        .filter(|m| conference.is_none_or(|c| !c.members.iter().any(|s| s.uuid == m.channel())))
        .map(|m| m.channel().to_owned())
        .collect();
    for channel in &settled {
        remove_member(&mut step, channel, LeaveReason::JoinFailed, None);
    }
    for channel in refused {
        step.out.effects.push(Effect::Cancel { channel });
    }
    let mut out = step.finish();
    if !out.changed {
        out.ignored = Some(Ignored::NoChange);
    }
    out
}

/// Node-to-node legs the room's node lists whose first event was missed (a reconnect): each is
/// tied to the member the room is joining for the session it carries, as that event would have
/// ([`node_leg`](super::apply::node_leg)). Returns the tagged legs the room does not expect, to
/// be hung up.
fn tie_legs(step: &mut Step<'_>, conf: &SnapshotConference) -> Vec<String> {
    let mut refused = Vec::new();
    for listed in &conf.members {
        let Some(session) = &listed.carries else {
            continue;
        };
        if step.room.member_key(&listed.uuid) != listed.uuid {
            continue;
        }
        let waiting =
            step.room.members.values_mut().find(|m| {
                &m.session == session && m.bridge.as_ref().is_some_and(|b| b.leg.is_none())
            });
        match waiting.and_then(|m| m.bridge.as_mut()) {
            Some(bridge) => {
                bridge.leg = Some(listed.uuid.clone());
                step.touch();
            }
            None => refused.push(listed.uuid.clone()),
        }
    }
    refused
}

/// The snapshot's conference with its node-to-node legs named by the calls they carry (the
/// members' keys), so it compares with the room's members.
fn by_member<'c>(room: &Room, conf: &'c SnapshotConference) -> Cow<'c, SnapshotConference> {
    if conf
        .members
        .iter()
        .all(|m| room.member_key(&m.uuid) == m.uuid)
    {
        return Cow::Borrowed(conf);
    }
    let mut keyed = conf.clone();
    for m in &mut keyed.members {
        m.uuid = room.member_key(&m.uuid).to_owned();
    }
    Cow::Owned(keyed)
}

/// A snapshot write refused: the room moved on after the snapshot was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stale {
    /// The room's version when the snapshot was asked for.
    pub seen: u64,
    /// Its version now.
    pub now: u64,
}

/// When a snapshot was taken, as a room sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// The room's version (`seq`) when the snapshot was asked for.
    pub version: u64,
    /// The newest `Event-Sequence` of the node the snapshot reflects (0: not known): every
    /// event so numbered or lower was fired before the snapshot was taken.
    pub events: u64,
}

/// [`reconcile`] with a snapshot taken at `taken`. A room that has moved on since its version
/// was read (events applied by this controller or another one, an API write) may hold what the
/// snapshot is too old to show: writing the snapshot over it would take the room back, and
/// announce the step back. Such a change is refused (`Stale`), and the next audit looks again.
/// A room that needs no change is never refused. Called inside the store's atomic room change,
/// so the version compared is the one the write replaces.
///
/// A change written holds every event up to `taken.events`: the members the node listed, and
/// every past participation, are marked with it, so such an event applied after it (one that
/// was still on its way, or applied late by another controller instance) is superseded
/// ([`in_order`](super::apply::in_order)) instead of replaying a change the snapshot already
/// showed: a member it listed taken out and added again by its last leave. A join on its way
/// that the node did not list yet is left unmarked: its events are newer than the snapshot, or
/// tell the join and its leave that the snapshot missed.
pub fn reconcile_at(
    room: &mut Room,
    taken: Taken,
    core_uuid: &str,
    conference: Option<&SnapshotConference>,
    session: &dyn Fn(&str) -> Option<Session>,
    joins_settled_before: Micros,
    now: Micros,
) -> Result<Applied, Stale> {
    let version = room.seq;
    let keyed = conference.map(|c| by_member(room, c));
    let conference = keyed.as_deref();
    let applied = reconcile(
        room,
        core_uuid,
        conference,
        session,
        joins_settled_before,
        now,
    );
    if applied.changed && version != taken.version {
        return Err(Stale {
            seen: taken.version,
            now: version,
        });
    }
    if applied.changed {
        let listed =
            |channel: &str| conference.is_some_and(|c| c.members.iter().any(|m| m.uuid == channel));
        let live = room.members.values_mut().filter(|m| listed(m.channel()));
        for m in live.chain(std::sync::Arc::make_mut(&mut room.past_members).iter_mut()) {
            m.event_seq = m.event_seq.max(taken.events);
        }
    }
    Ok(applied)
}

fn node_restarted(step: &mut Step<'_>, core_uuid: &str) {
    if step.room.core_uuid.as_deref() != Some(core_uuid) {
        // Another process numbers its events afresh.
        step.room.fact_seqs.clear();
    }
    step.room.core_uuid = Some(core_uuid.to_owned());
    step.room.conference_uuid = None;
    let had_control = step.room.control.member_id.take().is_some();
    let channels: Vec<String> = step.room.members.keys().cloned().collect();
    for channel in channels {
        remove_member(step, &channel, LeaveReason::NodeRestarted, None);
    }
    if had_control || step.room.status != RoomStatus::Starting {
        lose_conference(step);
    }
    step.touch();
}

fn conference_missing(step: &mut Step<'_>) {
    // No conference on the node: nobody is in it. A terminating room is over; a live one keeps
    // the joins still on their way and needs its control leg (again): the node layer knows
    // whether one is already being originated.
    if step.room.status == RoomStatus::Terminating {
        step.room.conference_uuid = None;
        terminate(step, LeaveReason::NotOnNode);
        return;
    }
    let channels: Vec<String> = step
        .room
        .members
        .values()
        .filter(|m| m.status != MemberStatus::Joining)
        .map(|m| m.channel().to_owned())
        .collect();
    for channel in &channels {
        leave_unseen(step, channel);
    }
    if step.room.control.member_id.take().is_some() | step.room.conference_uuid.take().is_some() {
        step.touch();
    }
    lose_conference(step);
}

/// A member the node no longer lists left while we were not listening: as asked if it was on
/// its way out, else `not_on_node`.
fn leave_unseen(step: &mut Step<'_>, channel: &str) {
    if let Some(m) = step.room.members.get(channel) {
        let reason = why_left(m, LeaveReason::NotOnNode);
        remove_member(step, channel, reason, None);
    }
}

fn conference_present(
    step: &mut Step<'_>,
    core_uuid: &str,
    conf: &SnapshotConference,
    session: &dyn Fn(&str) -> Option<Session>,
    asked_before: Micros,
) {
    let created = ConferenceFact::Created;
    nested(step, core_uuid, &conf.conference_uuid, &created, None);
    let control_in = conf
        .members
        .iter()
        .any(|m| m.uuid == step.room.control.channel);
    if !control_in && step.room.control.member_id.take().is_some() {
        step.touch();
        lose_conference(step);
    }
    for m in &conf.members {
        let added = ConferenceFact::MemberAdded {
            channel: m.uuid.clone(),
            member_id: m.id,
            speak: m.flags.can_speak,
            moderator: m.flags.is_moderator,
        };
        let s = session(&m.uuid);
        nested(step, core_uuid, &conf.conference_uuid, &added, s.as_ref());
        // While a member is held, json_list shows can_speak and can_hear off whatever they
        // are (seen on 1.11; the events carry the real flags): only the hold is taken then.
        let mut switches = vec![(Switch::Hold, m.flags.hold)];
        if !m.flags.hold {
            switches.extend([
                (Switch::Mute, !m.flags.can_speak),
                (Switch::Deaf, !m.flags.can_hear),
            ]);
        }
        for (switch, on) in switches {
            let (channel, member_id) = (m.uuid.clone(), m.id);
            let fact = match switch {
                Switch::Mute if on => ConferenceFact::MemberMuted { channel, member_id },
                Switch::Mute => ConferenceFact::MemberUnmuted { channel, member_id },
                _ => ConferenceFact::MemberSwitched {
                    channel,
                    member_id,
                    switch,
                    on,
                },
            };
            nested(step, core_uuid, &conf.conference_uuid, &fact, None);
        }
        // A stop-talking missed while we were not listening; never the other way (talking is
        // only told to the apps that asked for it, through its events).
        if !m.flags.talking {
            let (channel, member_id) = (m.uuid.clone(), m.id);
            let stopped = ConferenceFact::MemberTalking {
                channel,
                member_id,
                talking: false,
            };
            nested(step, core_uuid, &conf.conference_uuid, &stopped, None);
        }
    }
    let gone: Vec<String> = step
        .room
        .members
        .values()
        .filter(|m| {
            m.status != MemberStatus::Joining && !conf.members.iter().any(|s| s.uuid == m.channel())
        })
        .map(|m| m.channel().to_owned())
        .collect();
    for channel in &gone {
        leave_unseen(step, channel);
    }
    // Whether the room still waits for its moderator: a moderator's join tells it with no
    // event of its own, and the member's add-member may have been missed.
    if let Some(waiting) = conf.wait_mod
        && step.room.waiting_for_moderator != waiting
    {
        step.room.waiting_for_moderator = waiting;
        step.touch();
    }
    forget_unreported_mutes(step, asked_before);
    recordings_as_listed(step, core_uuid, conf, asked_before);
    if step.room.status == RoomStatus::Terminating {
        move_out_again(step, conf, asked_before);
    }
}

/// The room's active recording as the node runs it, for a start-recording, pause-recording,
/// resume-recording or stop-recording missed while we were not listening (a handover, a
/// reconnect): listed, it was started (and is paused as listed); not listed, it is over (its
/// duration taken from the clock, as for one that ends with its conference). A start or stop
/// asked after `asked_before` may not have reached the node yet, and is left to its event.
fn recordings_as_listed(
    step: &mut Step<'_>,
    core_uuid: &str,
    conf: &SnapshotConference,
    asked_before: Micros,
) {
    let Some(rec) = step.room.active_recording().cloned() else {
        return;
    };
    let listed = conf.recordings.iter().find(|r| r.path == rec.path);
    let fact = |error: Option<&str>| ConferenceFact::RecordingStarted {
        path: rec.path.clone(),
        error: error.map(str::to_owned),
    };
    let now = step.now;
    match (rec.status, listed) {
        (RecordingStatus::Initiating, Some(_)) => {
            nested(step, core_uuid, &conf.conference_uuid, &fact(None), None);
        }
        (RecordingStatus::Initiating, None) if rec.requested_at < asked_before => {
            let never = fact(Some("the node never started the recording"));
            nested(step, core_uuid, &conf.conference_uuid, &never, None);
            return;
        }
        (RecordingStatus::Recording | RecordingStatus::Paused, None) => {
            super::apply::end_recording(step, rec.id, None, None, now);
            return;
        }
        (RecordingStatus::Stopping, None) if rec.updated_at < asked_before => {
            super::apply::end_recording(step, rec.id, None, None, now);
            return;
        }
        _ => {}
    }
    // Paused or resumed as listed (a pause asked and not reported yet is left to its event).
    if let Some(listed) = listed
        && rec.pause_requested.is_none()
    {
        let paused = ConferenceFact::RecordingPaused {
            path: rec.path.clone(),
            paused: listed.paused,
        };
        nested(step, core_uuid, &conf.conference_uuid, &paused, None);
    }
}

/// A mute or unmute (deaf, hold…) asked before `asked_before` that the node never reported
/// (the report was lost while we were not listening): what the node holds now stands.
fn forget_unreported_mutes(step: &mut Step<'_>, asked_before: Micros) {
    let mut forgot = false;
    for m in step.room.members.values_mut() {
        if m.updated_at >= asked_before {
            continue;
        }
        for switch in Switch::ALL {
            *m.asks_mut(switch) = 0;
            let pending = m.switch_mut(switch).1;
            forgot |= pending.take().is_some();
        }
    }
    if forgot {
        step.touch();
    }
}

/// A terminating room the node still holds: members we asked out before `asked_before` that it
/// still lists are moved out again (a command lost on its way), and a control leg still in is
/// hung up again. Their del-members end the room.
fn move_out_again(step: &mut Step<'_>, conf: &SnapshotConference, asked_before: Micros) {
    let talks = farewell(step.room);
    let stuck: Vec<Exit> = step
        .room
        .members
        .values()
        .filter(|m| m.status != MemberStatus::Joining && m.updated_at < asked_before)
        .filter(|m| conf.members.iter().any(|s| s.uuid == m.channel()))
        .filter_map(Member::exit)
        .collect();
    for exit in stuck {
        step.out.effects.push(Effect::Eject {
            exit,
            talks: talks.clone(),
        });
    }
    if step.room.control.member_id.is_some() {
        step.out.effects.push(Effect::ReleaseControlLeg);
    }
}

/// Applies a fact inside a reconcile step and folds its result in.
fn nested(
    step: &mut Step<'_>,
    core_uuid: &str,
    conference_uuid: &str,
    fact: &ConferenceFact,
    session: Option<&Session>,
) {
    let applied = super::apply::apply(
        step.room,
        core_uuid,
        conference_uuid,
        fact,
        session,
        step.now,
    );
    step.out.changed |= applied.changed;
    step.out.events.extend(applied.events);
    step.out.effects.extend(applied.effects);
}
