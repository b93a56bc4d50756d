//! mod_conference in the simulator: rooms made by the first join and destroyed with their last
//! member, node-wide member ids, member targets, and the `conference::maintenance` events.
//! Playback and recording live in [`super::media`]; this file is about rooms and members.

use std::fmt;
use std::time::Instant;

use super::audio::{FLOOR_DELAY, Tone};
use super::core::{Deferred, State};
use super::media::{Playback, Recording};
use crate::esl::EventData;

const MAINTENANCE: &str = "conference::maintenance";

/// `room[@profile][+pin][+flags{a|b}]`, the argument of the conference app.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JoinSpec {
    pub room: String,
    pub profile: String,
    pub flags: Vec<String>,
}

impl JoinSpec {
    pub fn parse(arg: &str) -> Option<JoinSpec> {
        let (head, flags) = match arg.find("+flags{") {
            Some(i) => {
                let rest = &arg[i + "+flags{".len()..];
                let inner = rest.split('}').next().unwrap_or_default();
                let flags = inner
                    .split(['|', ','])
                    .filter(|f| !f.is_empty())
                    .map(str::to_owned)
                    .collect();
                (&arg[..i], flags)
            }
            None => (arg, Vec::new()),
        };
        let head = head.split('+').next().unwrap_or_default();
        let (room, profile) = head.split_once('@').unwrap_or((head, "default"));
        if room.is_empty() {
            return None;
        }
        Some(JoinSpec {
            room: room.to_owned(),
            profile: profile.to_owned(),
            flags,
        })
    }
}

impl fmt::Display for JoinSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.room, self.profile)?;
        if !self.flags.is_empty() {
            write!(f, "+flags{{{}}}", self.flags.join("|"))?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub id: u32,
    pub uuid: String,
    pub speak: bool,
    pub hear: bool,
    pub moderator: bool,
    pub ghost: bool,
    pub joined: Instant,
    pub volume_in: i32,
    pub volume_out: i32,
    pub energy: i32,
    /// Start-talking fired, stop-talking not yet (driven by what the member hears, see `audio.rs`).
    pub talking: bool,
    pub talk_started: Option<Instant>,
    /// The far end sends back what it hears (a loopback whose `-b` leg runs `echo`).
    pub echo: bool,
}

#[derive(Debug)]
pub(crate) struct Room {
    pub name: String,
    pub uuid: String,
    pub profile: String,
    pub created: Instant,
    /// In join order; FreeSWITCH lists the newest first.
    pub members: Vec<Member>,
    pub floor: Option<u32>,
    pub locked: bool,
    pub max_members: i64,
    pub playback: Playback,
    pub recordings: Vec<Recording>,
    /// Hold music (`local_stream://moh`) playing to a member who is alone, since when.
    pub moh: Option<Instant>,
    /// The enter or exit tone playing.
    pub tone: Option<Tone>,
    /// `event_count` of PRESENCE_IN.
    pub presence_count: u64,
}

impl Room {
    pub fn member(&self, id: u32) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    pub fn non_ghosts(&self) -> usize {
        self.members.iter().filter(|m| !m.ghost).count()
    }

    pub fn ghosts(&self) -> usize {
        self.members.len() - self.non_ghosts()
    }
}

/// Who a member-target command applies to.
pub(crate) enum Target {
    Ids(Vec<u32>),
    Usage,
    Missing(String),
}

impl State {
    /// Conference-* headers every room event starts with.
    pub(crate) fn room_event(
        &mut self,
        room: &str,
        calling: (&str, &str, u32),
    ) -> Option<EventData> {
        let (size, ghosts, profile, uuid) = {
            let r = self.rooms.get(room)?;
            (
                r.non_ghosts(),
                r.ghosts(),
                r.profile.clone(),
                r.uuid.clone(),
            )
        };
        let mut e = self.event("CUSTOM", Some(MAINTENANCE), calling);
        e.push("Conference-Name", room);
        e.push("Conference-Domain", self.config.domain.clone());
        e.push("Conference-Size", size.to_string());
        e.push("Conference-Ghosts", ghosts.to_string());
        e.push("Conference-Profile-Name", profile);
        e.push("Conference-Unique-ID", uuid);
        Some(e)
    }

    /// A member event: room headers, the channel, the member's flags, then `Action`.
    pub(crate) fn member_event(
        &mut self,
        room: &str,
        id: u32,
        action: &str,
        extra: &[(&str, String)],
    ) {
        if let Some(member) = self.rooms.get(room).and_then(|r| r.member(id)).cloned() {
            self.member_event_for(room, &member, action, extra);
        }
    }

    /// The same for a member given by value (del-member describes a member already removed, so
    /// its `Conference-Size` is the size after the leave).
    pub(crate) fn member_event_for(
        &mut self,
        room: &str,
        member: &Member,
        action: &str,
        extra: &[(&str, String)],
    ) {
        let mut post = extra.to_vec();
        post.push(("Action", action.to_owned()));
        self.floor_event(room, member, &[], &post);
    }

    /// A member event with `pre` headers before the member's and `post` after (floor-change
    /// puts `Action` and `Old-ID` first and `New-ID` last).
    pub(crate) fn floor_event(
        &mut self,
        room: &str,
        member: &Member,
        pre: &[(&str, String)],
        post: &[(&str, String)],
    ) {
        let floor = self.rooms.get(room).and_then(|r| r.floor) == Some(member.id);
        let calling = (
            "conference_member.c",
            "conference_member_add_event_data",
            100,
        );
        let Some(mut e) = self.room_event(room, calling) else {
            return;
        };
        for (n, v) in pre {
            e.push(n, v.clone());
        }
        e.push("Floor", floor.to_string());
        if let Some(ch) = self.channels.get(&member.uuid) {
            ch.push_headers(&mut e, false);
        }
        e.push("Video", "false");
        e.push("Hear", member.hear.to_string());
        e.push("See", "true");
        e.push("Speak", member.speak.to_string());
        e.push("Talking", member.talking.to_string());
        e.push("Mute-Detect", "false");
        e.push("Hold", "false");
        e.push("Member-ID", member.id.to_string());
        let kind = if member.moderator {
            "moderator"
        } else {
            "member"
        };
        e.push("Member-Type", kind);
        e.push("Member-Ghost", member.ghost.to_string());
        e.push("Energy-Level", member.energy.to_string());
        e.push("Current-Energy", "0");
        for (n, v) in post {
            e.push(n, v.clone());
        }
        self.fire(e);
    }

    /// A room event with only `Action` (and extra headers) after the room headers.
    pub(crate) fn fire_room_action(&mut self, room: &str, action: &str, extra: &[(&str, String)]) {
        if let Some(mut e) = self.room_event(room, ("mod_conference.c", "conference_event", 200)) {
            for (n, v) in extra {
                e.push(n, v.clone());
            }
            if !extra.iter().any(|(n, _)| *n == "Action") {
                e.push("Action", action);
            }
            self.fire(e);
        }
    }

    /// The conference app: create the room if needed, add the member (add-member), and what
    /// mod_conference does around a join: the alone prompt and hold music for a member alone,
    /// the enter tone for the others, the floor for the first member.
    pub(crate) fn join(&mut self, uuid: &str, spec: &JoinSpec) {
        if !self.rooms.contains_key(&spec.room) {
            self.rooms.insert(
                spec.room.clone(),
                Room {
                    name: spec.room.clone(),
                    uuid: uuid::Uuid::new_v4().to_string(),
                    profile: spec.profile.clone(),
                    created: Instant::now(),
                    members: Vec::new(),
                    floor: None,
                    locked: false,
                    max_members: 0,
                    playback: Playback::default(),
                    recordings: Vec::new(),
                    moh: None,
                    tone: None,
                    presence_count: 0,
                },
            );
            self.fire_room_action(&spec.room, "conference-create", &[]);
        }
        let id = self.next_member_id;
        self.next_member_id += 1;
        let has = |f: &str| spec.flags.iter().any(|x| x == f);
        let echo = self
            .channels
            .get(uuid)
            .and_then(|ch| ch.partner.as_ref())
            .and_then(|p| self.channels.get(p))
            .is_some_and(|p| p.echoing);
        let member = Member {
            id,
            uuid: uuid.to_owned(),
            speak: !has("mute"),
            hear: !has("deaf"),
            moderator: has("moderator"),
            ghost: has("ghost"),
            joined: Instant::now(),
            volume_in: 0,
            volume_out: 0,
            energy: 100,
            talking: false,
            talk_started: None,
            echo,
        };
        let ghost = member.ghost;
        let Some(room) = self.rooms.get_mut(&spec.room) else {
            return;
        };
        room.members.push(member);
        let (room_uuid, count) = (room.uuid.clone(), room.non_ghosts());
        let call_key = format!(
            "conference_{}_{}_{}",
            spec.room, self.config.domain, spec.profile
        );
        if let Some(ch) = self.channels.get_mut(uuid) {
            ch.room = Some(spec.room.clone());
            for (k, v) in [
                ("conference_name", spec.room.clone()),
                ("app_session_uuid", room_uuid.clone()),
                ("read_codec", "L16".into()),
                ("read_rate", "8000".into()),
                ("conference_member_id", id.to_string()),
                ("conference_moderator", has("moderator").to_string()),
                ("conference_ghost", ghost.to_string()),
                ("conference_uuid", room_uuid),
                ("conference_call_key", call_key),
            ] {
                ch.set_var(k, v);
            }
        }
        self.codec(uuid, false);
        if !ghost && count == 1 {
            self.alone(&spec.room);
        }
        self.member_event(&spec.room, id, "add-member", &[]);
        self.presence(&spec.room);
        if !ghost && count > 1 {
            self.stop_moh(&spec.room);
            self.start_tone(&spec.room, super::audio::ENTER_TONE);
        }
        let no_floor = self
            .rooms
            .get(&spec.room)
            .is_some_and(|r| r.floor.is_none());
        if !ghost && no_floor {
            self.set_floor(&spec.room, Some(id));
        }
        self.audio_changed(&spec.room, None);
    }

    /// Takes a channel out of its room: the floor if it held it, PRESENCE_IN, the alone prompt
    /// for a member left alone, del-member, the conference app's end (CODEC, EXECUTE_COMPLETE),
    /// then the exit tone, or the room's end when nobody is left.
    pub(crate) fn leave_room(&mut self, uuid: &str) {
        let Some(room_name) = self.channels.get_mut(uuid).and_then(|ch| ch.room.take()) else {
            return;
        };
        let Some(member) = self
            .rooms
            .get(&room_name)
            .and_then(|r| r.members.iter().find(|m| m.uuid == uuid))
            .cloned()
        else {
            return;
        };
        let held_floor = self
            .rooms
            .get(&room_name)
            .is_some_and(|r| r.floor == Some(member.id));
        if held_floor {
            self.set_floor(&room_name, None);
        }
        // del-member reports the size after the leave: remove first, describe from the copy.
        let left = match self.rooms.get_mut(&room_name) {
            Some(room) => {
                room.members.retain(|m| m.id != member.id);
                room.non_ghosts()
            }
            None => return,
        };
        self.presence(&room_name);
        if !member.ghost && left == 1 {
            self.alone(&room_name);
        }
        self.member_event_for(&room_name, &member, "del-member", &[]);
        if let Some(ch) = self.channels.get_mut(uuid) {
            ch.unset_var("conference_call_key");
        }
        self.codec(uuid, false);
        self.execute_complete(uuid);
        let empty = self
            .rooms
            .get(&room_name)
            .is_some_and(|r| r.members.is_empty());
        if empty {
            self.destroy_room(&room_name);
            return;
        }
        if !member.ghost && left > 0 {
            self.start_tone(&room_name, super::audio::EXIT_TONE);
        }
        if held_floor {
            self.later(
                FLOOR_DELAY,
                Deferred::Floor {
                    room: room_name.clone(),
                },
            );
        }
        self.audio_changed(&room_name, None);
    }

    /// A kicked (or hung up) member leaves; its channel runs what its inline dialplan has next,
    /// and hangs up when nothing is left.
    pub(crate) fn leave_and_continue(&mut self, uuid: &str) {
        self.leave_room(uuid);
        let after = self
            .channels
            .get_mut(uuid)
            .map(|ch| std::mem::take(&mut ch.after))
            .unwrap_or_default();
        if self.channels.contains_key(uuid) {
            self.run_apps(uuid, after);
        }
    }

    fn destroy_room(&mut self, room: &str) {
        self.presence(room);
        self.stop_playback(room, true);
        self.stop_moh(room);
        self.stop_all_recordings(room);
        self.fire_room_action(room, "conference-destroy", &[]);
        self.rooms.remove(room);
    }

    /// Resolves `<id>|all|last|non_moderator|var=value`.
    pub(crate) fn target(&self, room: &Room, word: Option<&str>) -> Target {
        let Some(word) = word else {
            return Target::Usage;
        };
        let newest_first = || room.members.iter().rev().filter(|m| !m.ghost);
        let id: u32 = word
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap_or(0);
        if id != 0 {
            return match room.member(id) {
                Some(_) => Target::Ids(vec![id]),
                None => Target::Missing(format!("-ERR Non-Existant ID {id}\n")),
            };
        }
        match word {
            "all" => Target::Ids(newest_first().map(|m| m.id).collect()),
            "non_moderator" => Target::Ids(
                newest_first()
                    .filter(|m| !m.moderator)
                    .map(|m| m.id)
                    .collect(),
            ),
            "last" => match room.members.iter().filter(|m| !m.ghost).map(|m| m.id).max() {
                Some(id) => Target::Ids(vec![id]),
                None => Target::Ids(Vec::new()),
            },
            _ => match word.split_once('=') {
                Some((var, value)) => {
                    let found = newest_first().find(|m| {
                        self.channels.get(&m.uuid).is_some_and(|ch| {
                            ch.var(var) == Some(value) || (var == "uuid" && ch.uuid == value)
                        })
                    });
                    match found {
                        Some(m) => Target::Ids(vec![m.id]),
                        None => Target::Missing("-ERR Non-Existant member\n".into()),
                    }
                }
                None => Target::Usage,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_specs_parse_profile_and_flags() {
        let s = JoinSpec::parse("abcde-room-1@switchyard+flags{mute|deaf}").unwrap();
        assert_eq!(
            (s.room.as_str(), s.profile.as_str()),
            ("abcde-room-1", "switchyard")
        );
        assert_eq!(s.flags, ["mute", "deaf"]);
        assert_eq!(s.to_string(), "abcde-room-1@switchyard+flags{mute|deaf}");
        assert_eq!(JoinSpec::parse("r").unwrap().profile, "default");
        assert!(JoinSpec::parse("@default").is_none());
    }
}
