//! mod_conference in the simulator: rooms made by the first join and destroyed with their last
//! member, node-wide member ids, member targets, and the `conference::maintenance` events.
//! Playback and recording live in [`super::media`]; this file is about rooms and members.

use std::fmt;
use std::time::Instant;

use serde_json::{Map, Value, json};

use super::cjson;
use super::core::State;
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
}

impl Room {
    pub fn member(&self, id: u32) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    fn non_ghosts(&self) -> usize {
        self.members.iter().filter(|m| !m.ghost).count()
    }

    fn ghosts(&self) -> usize {
        self.members.len() - self.non_ghosts()
    }
}

/// Who a member-target command applies to.
enum Target {
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
    fn member_event_for(
        &mut self,
        room: &str,
        member: &Member,
        action: &str,
        extra: &[(&str, String)],
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
        e.push("Floor", floor.to_string());
        if let Some(ch) = self.channels.get(&member.uuid) {
            ch.push_headers(&mut e, false);
        }
        e.push("Video", "false");
        e.push("Hear", member.hear.to_string());
        e.push("See", "true");
        e.push("Speak", member.speak.to_string());
        e.push("Talking", "false");
        e.push("Mute-Detect", "false");
        e.push("Hold", "false");
        e.push("Member-ID", member.id.to_string());
        e.push(
            "Member-Type",
            if member.moderator {
                "moderator"
            } else {
                "member"
            },
        );
        e.push("Member-Ghost", member.ghost.to_string());
        e.push("Energy-Level", member.energy.to_string());
        e.push("Current-Energy", "0");
        for (n, v) in extra {
            e.push(n, v.clone());
        }
        e.push("Action", action);
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

    /// The conference app: create the room if needed, add the member, fire add-member.
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
                },
            );
            self.fire_room_action(&spec.room, "conference-create", &[]);
        }
        let id = self.next_member_id;
        self.next_member_id += 1;
        let has = |f: &str| spec.flags.iter().any(|x| x == f);
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
        };
        let room_uuid = match self.rooms.get_mut(&spec.room) {
            Some(room) => {
                room.members.push(member);
                if room.floor.is_none() && !has("ghost") {
                    room.floor = Some(id);
                }
                room.uuid.clone()
            }
            None => return,
        };
        if let Some(ch) = self.channels.get_mut(uuid) {
            ch.room = Some(spec.room.clone());
            ch.set_var("conference_name", spec.room.clone());
            ch.set_var("conference_member_id", id.to_string());
            ch.set_var("conference_uuid", room_uuid);
        }
        self.member_event(&spec.room, id, "add-member", &[]);
    }

    /// Takes a channel out of its room (del-member, and conference-destroy when it was the last).
    /// The channel's remaining inline apps are left alone: a transfer or hangup replaces them,
    /// kick and hup run them (see `remove_member_and_continue`).
    pub(crate) fn leave_room(&mut self, uuid: &str, cause: Option<&str>) {
        let Some(room_name) = self.channels.get_mut(uuid).and_then(|ch| ch.room.take()) else {
            return;
        };
        let Some(id) = self
            .rooms
            .get(&room_name)
            .and_then(|r| r.members.iter().find(|m| m.uuid == uuid))
            .map(|m| m.id)
        else {
            return;
        };
        let extra: Vec<(&str, String)> = cause
            .map(|c| vec![("Hangup-Cause", c.to_owned())])
            .unwrap_or_default();
        // del-member reports the size after the leave, so remove first and describe the member
        // from a copy.
        let member = self
            .rooms
            .get(&room_name)
            .and_then(|r| r.member(id))
            .cloned();
        if let Some(room) = self.rooms.get_mut(&room_name) {
            room.members.retain(|m| m.id != id);
            if room.floor == Some(id) {
                room.floor = room.members.iter().find(|m| !m.ghost).map(|m| m.id);
            }
        }
        if let Some(member) = member {
            self.member_event_for(&room_name, &member, "del-member", &extra);
        }
        if let Some(ch) = self.channels.get_mut(uuid) {
            ch.application = None;
        }
        let empty = self
            .rooms
            .get(&room_name)
            .is_some_and(|r| r.members.is_empty());
        if empty {
            self.destroy_room(&room_name);
        }
    }

    fn destroy_room(&mut self, room: &str) {
        self.stop_playback(room, true);
        self.stop_all_recordings(room);
        self.fire_room_action(room, "conference-destroy", &[]);
        self.rooms.remove(room);
    }

    /// Resolves `<id>|all|last|non_moderator|var=value`.
    fn target(&self, room: &Room, word: Option<&str>) -> Target {
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

    /// `conference …`: the whole mod_conference API the simulator supports.
    pub(crate) fn conference(&mut self, args: &str) -> String {
        let words: Vec<&str> = args.split_whitespace().collect();
        let Some(&first) = words.first() else {
            return "-ERR Conference command, not specified.\nTry 'help'\n".into();
        };
        match first {
            "list" => return self.list_all(),
            "json_list" => return self.json_list(None),
            "count" => return self.rooms.len().to_string(),
            _ => {}
        }
        let room = first;
        if !self.rooms.contains_key(room) {
            return format!("-ERR Conference {room} not found\n");
        }
        let Some(&sub) = words.get(1) else {
            return "Conference command, not specified.\nTry 'help'\n".into();
        };
        let rest = &words[2..];
        match sub {
            "list" => self.list_room(room, rest),
            "json_list" => self.json_list(Some(room)),
            "count" => self
                .rooms
                .get(room)
                .map(|r| r.non_ghosts().to_string())
                .unwrap_or_default(),
            "get" => self.get(room, rest.first().copied()),
            "set" => self.set(room, rest),
            "lock" | "unlock" => self.lock_room(room, sub == "lock"),
            "mute" | "unmute" | "tmute" | "deaf" | "undeaf" | "kick" | "hup" => {
                self.member_command(room, sub, rest)
            }
            "play" => self.play(room, rest),
            "pause_play" => self.pause_play(room),
            "stop" => self.stop(room, rest),
            "file-vol" | "file_vol" => self.file_vol(room, rest),
            "record" => self.record(room, rest.first().copied()),
            "norecord" => self.norecord(room, rest.first().copied()),
            "recording" => match rest.first().copied() {
                Some("start") => self.record(room, rest.get(1).copied()),
                Some("stop") => self.norecord(room, rest.get(1).copied()),
                _ => "-ERR Usage: recording <start|stop|pause|resume|check> <path|all>\n".into(),
            },
            "say" => self.say(room, None, &rest.join(" ")),
            "saymember" => self.say(
                room,
                rest.first().copied(),
                &rest.get(1..).unwrap_or_default().join(" "),
            ),
            _ => format!("-ERR Conference command '{sub}' not found.\n"),
        }
    }

    fn member_command(&mut self, room_name: &str, verb: &str, rest: &[&str]) -> String {
        let Some(room) = self.rooms.get(room_name) else {
            return format!("-ERR Conference {room_name} not found\n");
        };
        let ids = match self.target(room, rest.first().copied()) {
            Target::Ids(ids) => ids,
            Target::Missing(text) => return text,
            Target::Usage => {
                return format!("{verb} <[member_id|all]|last|non_moderator> [<quiet>]");
            }
        };
        let mut out = String::new();
        for id in ids {
            out.push_str(&self.apply_member(room_name, id, verb));
        }
        out
    }

    fn apply_member(&mut self, room_name: &str, id: u32, verb: &str) -> String {
        let Some(member) = self
            .rooms
            .get_mut(room_name)
            .and_then(|r| r.members.iter_mut().find(|m| m.id == id))
        else {
            return String::new();
        };
        let (action, reply) = match verb {
            "mute" => ("mute-member", "mute"),
            "unmute" => ("unmute-member", "unmute"),
            "tmute" if member.speak => ("mute-member", "mute"),
            "tmute" => ("unmute-member", "unmute"),
            "deaf" => ("deaf-member", "deaf"),
            "undeaf" => ("undeaf-member", "undeaf"),
            "kick" => ("kick-member", "kicked"),
            _ => ("hup-member", "hup"),
        };
        match action {
            "mute-member" => member.speak = false,
            "unmute-member" => member.speak = true,
            "deaf-member" => member.hear = false,
            "undeaf-member" => member.hear = true,
            _ => {}
        }
        let uuid = member.uuid.clone();
        self.member_event(room_name, id, action, &[]);
        if matches!(verb, "kick" | "hup") {
            self.remove_member_and_continue(&uuid);
        }
        format!("+OK {reply} {id}\n")
    }

    /// Kick and hup end the conference app; the channel runs what its inline dialplan has next
    /// (FreeSWITCH hangs up when nothing is left).
    fn remove_member_and_continue(&mut self, uuid: &str) {
        self.leave_room(uuid, None);
        let after = self
            .channels
            .get_mut(uuid)
            .map(|ch| std::mem::take(&mut ch.after))
            .unwrap_or_default();
        if self.channels.contains_key(uuid) {
            self.run_apps(uuid, after);
        }
    }

    fn member_line(&self, room: &Room, m: &Member, delim: &str) -> String {
        let ch = self.channels.get(&m.uuid);
        let mut flags = Vec::new();
        if m.hear {
            flags.push("hear");
        }
        if m.speak {
            flags.push("speak");
        }
        if room.floor == Some(m.id) {
            flags.push("floor");
        }
        if m.moderator {
            flags.push("moderator");
        }
        if m.ghost {
            flags.push("ghost");
        }
        [
            m.id.to_string(),
            ch.map(|c| c.name.clone()).unwrap_or_default(),
            m.uuid.clone(),
            ch.map(|c| c.cid_name.clone()).unwrap_or_default(),
            ch.map(|c| c.cid_number.clone()).unwrap_or_default(),
            flags.join("|"),
            m.volume_in.to_string(),
            m.volume_out.to_string(),
            m.energy.to_string(),
        ]
        .join(delim)
    }

    fn list_room(&self, name: &str, rest: &[&str]) -> String {
        let Some(room) = self.rooms.get(name) else {
            return String::new();
        };
        if rest.first() == Some(&"count") {
            return room.non_ghosts().to_string();
        }
        let delim = match rest {
            ["delim", d, ..] => *d,
            _ => ";",
        };
        room.members
            .iter()
            .rev()
            .filter(|m| !m.ghost)
            .map(|m| format!("{}\n", self.member_line(room, m, delim)))
            .collect()
    }

    fn list_all(&self) -> String {
        if self.rooms.is_empty() {
            return "+OK No active conferences.\n".into();
        }
        let mut out = String::new();
        for room in self.rooms.values() {
            let n = room.non_ghosts();
            out.push_str(&format!(
                "+OK Conference {} ({n} member{} rate: 8000{} flags: running|answered|enforce_min|dynamic|exit_sound|enter_sound|json_status)\n",
                room.name,
                if n == 1 { "" } else { "s" },
                if room.locked { " locked" } else { "" },
            ));
            out.push_str(&self.list_room(&room.name, &[]));
        }
        out
    }

    fn json_list(&self, only: Option<&str>) -> String {
        let rooms: Vec<Value> = self
            .rooms
            .values()
            .filter(|r| only.is_none_or(|o| o == r.name))
            .map(|room| {
                let members: Vec<Value> = room
                    .members
                    .iter()
                    .rev()
                    .map(|m| {
                        let ch = self.channels.get(&m.uuid);
                        json!({
                            "type": "caller", "id": m.id,
                            "flags": {
                                "can_hear": m.hear, "can_see": true, "can_speak": m.speak, "hold": false,
                                "mute_detect": false, "talking": false, "has_video": false, "video_bridge": false,
                                "has_floor": room.floor == Some(m.id), "is_moderator": m.moderator,
                                "end_conference": false, "mandatory_member_end_conference": false, "pass_digits": false,
                            },
                            "uuid": m.uuid,
                            "caller_id_name": ch.map(|c| c.cid_name.clone()).unwrap_or_default(),
                            "caller_id_number": ch.map(|c| c.cid_number.clone()).unwrap_or_default(),
                            "join_time": m.joined.elapsed().as_secs(), "last_talking": 0, "energy": m.energy,
                            "volume_in": m.volume_in, "volume_out": m.volume_out,
                            "output-volume": m.volume_out, "input-volume": m.volume_in,
                        })
                    })
                    .collect();
                let mut o = Map::new();
                for (k, v) in [
                    ("conference_name", json!(room.name)),
                    ("member_count", json!(room.non_ghosts())),
                    ("ghost_count", json!(room.ghosts())),
                    ("rate", json!(8000)),
                    ("run_time", json!(room.created.elapsed().as_secs())),
                    ("conference_uuid", json!(room.uuid)),
                    ("canvas_count", json!(0)),
                    ("max_bw_in", json!(0)),
                    ("force_bw_in", json!(0)),
                    ("video_floor_packets", json!(0)),
                    ("locked", json!(room.locked)),
                    ("destruct", json!(false)),
                    ("wait_mod", json!(false)),
                    ("audio_always", json!(false)),
                    ("running", json!(true)),
                    ("answered", json!(true)),
                    ("enforce_min", json!(true)),
                    ("bridge_to", json!(false)),
                    ("dynamic", json!(true)),
                    ("exit_sound", json!(true)),
                    ("enter_sound", json!(true)),
                    ("recording", json!(!room.recordings.is_empty())),
                    ("video_bridge", json!(false)),
                    ("video_floor_only", json!(false)),
                    ("video_rfc4579", json!(false)),
                    ("variables", json!({})),
                    ("members", Value::Array(members)),
                ] {
                    o.insert(k.into(), v);
                }
                Value::Object(o)
            })
            .collect();
        cjson::print(&Value::Array(rooms))
    }

    fn get(&self, name: &str, param: Option<&str>) -> String {
        let Some(room) = self.rooms.get(name) else {
            return String::new();
        };
        match param {
            Some("run_time") => room.created.elapsed().as_secs().to_string(),
            Some("count") => room.non_ghosts().to_string(),
            Some("count_ghosts") => room.ghosts().to_string(),
            Some("max_members") => room.max_members.to_string(),
            Some("rate") => "8000".into(),
            Some("profile_name") => room.profile.clone(),
            Some("uuid") => room.uuid.clone(),
            Some("is_locked") => {
                if room.locked {
                    "locked".into()
                } else {
                    String::new()
                }
            }
            Some("wait_mod") => String::new(),
            _ => "get <parameter-name>".into(),
        }
    }

    fn set(&mut self, name: &str, rest: &[&str]) -> String {
        let Some(room) = self.rooms.get_mut(name) else {
            return String::new();
        };
        match rest {
            ["max_members", v] => match v.parse::<i64>() {
                Ok(n) if n >= 0 => std::mem::replace(&mut room.max_members, n).to_string(),
                _ => "set <parameter-name> <value>".into(),
            },
            _ => "set <parameter-name> <value>".into(),
        }
    }

    fn lock_room(&mut self, name: &str, lock: bool) -> String {
        if let Some(room) = self.rooms.get_mut(name) {
            room.locked = lock;
        }
        self.fire_room_action(name, if lock { "lock" } else { "unlock" }, &[]);
        format!("+OK {name} {}\n", if lock { "locked" } else { "unlocked" })
    }

    fn say(&mut self, name: &str, member: Option<&str>, text: &str) -> String {
        if text.trim().is_empty() {
            return "-ERR (say) Error! No text.\n".into();
        }
        match member {
            None => {
                self.fire_room_action(
                    name,
                    "speak-text",
                    &[("Action", "speak-text".into()), ("Text", text.into())],
                );
                "+OK (say) OK\n".into()
            }
            Some(id) => {
                let id: u32 = id.parse().unwrap_or(0);
                if self.rooms.get(name).and_then(|r| r.member(id)).is_none() {
                    return format!("-ERR (saymember) Unknown Member {id}\n");
                }
                self.member_event(name, id, "speak-text-member", &[("Text", text.into())]);
                "+OK (saymember) OK\n".to_owned()
            }
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
