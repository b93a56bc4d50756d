//! The `conference …` API of the simulated mod_conference: listing, member commands, get/set,
//! lock, say. Playback and recording commands are in [`super::media`].

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::cjson;
use super::conference::{Member, Room, Target};
use super::core::{Deferred, State, Timer};

/// The conference API's argument splitting (`switch_separate_string`): words apart on spaces,
/// a word in single quotes kept whole with its quotes removed.
fn split_args(args: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut rest = args.trim_start();
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('\'')
            && let Some((word, after)) = quoted.split_once('\'')
        {
            words.push(word.to_owned());
            rest = after.trim_start();
            continue;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        words.push(rest[..end].to_owned());
        rest = rest[end..].trim_start();
    }
    words
}

impl State {
    /// `conference …`: the whole mod_conference API the simulator supports.
    pub(crate) fn conference(&mut self, args: &str) -> String {
        let owned = split_args(args);
        let words: Vec<&str> = owned.iter().map(String::as_str).collect();
        let Some(&first) = words.first() else {
            return "-ERR Conference command, not specified.\nTry 'help'\n".into();
        };
        match first {
            "list" => return self.list_all(words.get(1) == Some(&"summary")),
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
            "mute" | "unmute" | "tmute" | "deaf" | "undeaf" | "hold" | "unhold" | "kick"
            | "hup" => self.member_command(room, sub, rest),
            "play" => self.play(room, rest),
            "pause_play" => self.pause_play(room),
            "stop" => self.stop(room, rest),
            "file-vol" | "file_vol" => self.file_vol(room, rest),
            "record" => self.record(room, rest.first().copied()),
            "norecord" => self.norecord(room, rest.first().copied()),
            "recording" => self.recording(room, rest),
            "pause" => self.pause_recording(room, rest.first().copied(), true),
            "resume" => self.pause_recording(room, rest.first().copied(), false),
            "chkrecord" => self.check_recording(room),
            "volume_in" | "volume_out" => self.member_volume(room, sub, rest),
            "energy" => self.member_energy(room, rest),
            "relate" => self.relate(room, rest),
            "enter_sound" | "exit_sound" => self.room_sound(room, sub, rest),
            "say" => self.say(room, None, &rest.join(" ")),
            "saymember" => self.say(
                room,
                rest.first().copied(),
                &rest.get(1..).unwrap_or_default().join(" "),
            ),
            _ => format!("-ERR Conference command '{sub}' not found.\n"),
        }
    }

    /// `volume_in|volume_out <member> [level]`: a query without a level, else a change
    /// (-4…4) with its `volume-in-member` / `volume-out-member` event.
    fn member_volume(&mut self, room_name: &str, verb: &str, rest: &[&str]) -> String {
        let Some(room) = self.rooms.get(room_name) else {
            return format!("-ERR Conference {room_name} not found\n");
        };
        let ids = match self.target(room, rest.first().copied()) {
            Target::Ids(ids) => ids,
            Target::Missing(text) => return text,
            Target::Usage => {
                return format!("{verb} <[member_id|all]|last|non_moderator> [<newval>]");
            }
        };
        let level = match rest.get(1).map(|v| v.parse::<i32>()) {
            None => None,
            Some(Ok(v)) => Some(v.clamp(-4, 4)),
            Some(Err(_)) => {
                return format!("{verb} <[member_id|all]|last|non_moderator> [<newval>]");
            }
        };
        let inbound = verb == "volume_in";
        let label = if inbound { "IN" } else { "OUT" };
        let mut out = String::new();
        for id in ids {
            let Some(m) = self
                .rooms
                .get_mut(room_name)
                .and_then(|r| r.members.iter_mut().find(|m| m.id == id))
            else {
                continue;
            };
            let slot = if inbound {
                &mut m.volume_in
            } else {
                &mut m.volume_out
            };
            if let Some(level) = level {
                *slot = level;
            }
            let now = *slot;
            out.push_str(&format!("+OK Volume {label} {id} = {now}\n"));
            if level.is_some() {
                let action = if inbound {
                    "volume-in-member"
                } else {
                    "volume-out-member"
                };
                self.member_event(room_name, id, action, &[("Volume-Level", now.to_string())]);
            }
        }
        out
    }

    /// `energy <member> [level|up|down]`: a query without a level, else a change with its
    /// `energy-level-member` event, whose `Energy-Level` comes twice (the member's data has it
    /// too). The reply has no `+OK`: `Energy <id> = <level>`.
    fn member_energy(&mut self, room_name: &str, rest: &[&str]) -> String {
        let Some(room) = self.rooms.get(room_name) else {
            return format!("-ERR Conference {room_name} not found\n");
        };
        let ids = match self.target(room, rest.first().copied()) {
            Target::Ids(ids) => ids,
            Target::Missing(text) => return text,
            Target::Usage => {
                return "energy <[member_id|all]|last|non_moderator> [<newval>]".into();
            }
        };
        let asked = rest.get(1).copied();
        let mut out = String::new();
        for id in ids {
            let Some(m) = self
                .rooms
                .get_mut(room_name)
                .and_then(|r| r.members.iter_mut().find(|m| m.id == id))
            else {
                continue;
            };
            // As FreeSWITCH: `up`/`down` step by 200 within 0…1800, anything else is atoi'd.
            match asked {
                None => {}
                Some("up") => m.energy = (m.energy + 200).min(1800),
                Some("down") => m.energy = (m.energy - 200).max(0),
                Some(v) => m.energy = atoi(v),
            }
            let now = m.energy;
            out.push_str(&format!("Energy {id} = {now}\n"));
            if asked.is_some() {
                self.member_event(
                    room_name,
                    id,
                    "energy-level-member",
                    &[("Energy-Level", now.to_string())],
                );
            }
        }
        out
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
        let mut leaving = Vec::new();
        for id in ids {
            out.push_str(&self.apply_member(room_name, id, verb, &mut leaving));
            match (verb, rest.get(1)) {
                // A hold's file plays to the member alone, with no play-file-member event.
                ("hold", Some(file)) => {
                    self.queue_member_file(room_name, id, file);
                }
                // An unhold stops all the member's files, after its own event.
                ("unhold", _) => self.stop_member_files(room_name, id),
                _ => {}
            }
        }
        if !leaving.is_empty() {
            // The members' own threads notice the kick after the command returned.
            self.timers.push(Timer {
                after: Duration::from_millis(1),
                steps: leaving,
            });
        }
        out
    }

    fn apply_member(
        &mut self,
        room_name: &str,
        id: u32,
        verb: &str,
        leaving: &mut Vec<Deferred>,
    ) -> String {
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
            "hold" => ("hold-member", "hold"),
            "unhold" => ("unhold-member", "unhold"),
            "kick" => ("kick-member", "kicked"),
            _ => ("hup-member", "hup"),
        };
        match action {
            "mute-member" => {
                // Muting ends talking without a stop-talking event.
                member.speak = false;
                member.talking = false;
            }
            "unmute-member" => member.speak = true,
            "deaf-member" => member.hear = false,
            "undeaf-member" => member.hear = true,
            // Hold ends talking without a stop-talking event; its file is the member's own
            // (no room play event).
            "hold-member" => {
                member.held = true;
                member.talking = false;
            }
            "unhold-member" => member.held = false,
            _ => {}
        }
        let uuid = member.uuid.clone();
        self.member_event(room_name, id, action, &[]);
        match action {
            // Both end the member's conference app; its channel runs what comes next (a
            // controller join parks it), as FreeSWITCH does.
            "kick-member" | "hup-member" => leaving.push(Deferred::Leave { uuid }),
            "mute-member" => self.audio_changed(room_name, Some(id)),
            _ => self.audio_changed(room_name, None),
        }
        format!("+OK {reply} {id}\n")
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
        if m.talking {
            flags.push("talking");
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

    /// `conference list [summary]`: each room's line (its count and flags), then its members
    /// unless `summary`.
    fn list_all(&self, summary: bool) -> String {
        if self.rooms.is_empty() {
            return "+OK No active conferences.\n".into();
        }
        let mut out = String::new();
        for room in self.rooms.values() {
            let n = room.non_ghosts();
            // The flags in conference_api.c's order (`conference_api_sub_list`).
            let flags: Vec<&str> = [("locked", room.locked), ("wait_mod", room.wait_mod)]
                .into_iter()
                .filter_map(|(name, set)| set.then_some(name))
                .chain([
                    "running",
                    "answered",
                    "enforce_min",
                    "dynamic",
                    "exit_sound",
                    "enter_sound",
                ])
                .chain((!room.recordings.is_empty()).then_some("recording"))
                .chain(["json_status"])
                .collect();
            out.push_str(&format!(
                "+OK Conference {} ({n} member{} rate: 8000{} flags: {})\n",
                room.name,
                if n == 1 { "" } else { "s" },
                if room.locked { " locked" } else { "" },
                flags.join("|"),
            ));
            if !summary {
                out.push_str(&self.list_room(&room.name, &[]));
            }
        }
        out
    }

    fn json_list(&self, only: Option<&str>) -> String {
        let rooms: Vec<Value> = self
            .rooms
            .values()
            .filter(|r| only.is_none_or(|o| o == r.name))
            .map(|room| {
                // FreeSWITCH lists a room's recordings among its members (newest first), as
                // `recording_node` entries with no id, flags or uuid (`"status": "paused"` while
                // paused); `join_time` is then the recording's start in Unix seconds, not an age.
                let mut members: Vec<(std::time::Instant, Value)> = room
                    .recordings
                    .iter()
                    .map(|r| {
                        let started = std::time::SystemTime::now()
                            .checked_sub(r.started.elapsed())
                            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                            .map_or(0, |d| d.as_secs());
                        let mut entry = json!({ "type": "recording_node", "record_path": r.path, "join_time": started });
                        if r.paused_at.is_some() {
                            entry["status"] = json!("paused");
                        }
                        (r.started, entry)
                    })
                    .collect();
                // A held member's can_* flags read false whatever they are (seen on 1.11).
                members.extend(room.members.iter().map(|m| {
                        let ch = self.channels.get(&m.uuid);
                        (m.joined, json!({
                            "type": "caller", "id": m.id,
                            "flags": {
                                "can_hear": m.hear && !m.held, "can_see": !m.held, "can_speak": m.speak && !m.held, "hold": m.held,
                                "mute_detect": false, "talking": m.talking, "has_video": false, "video_bridge": false,
                                "has_floor": room.floor == Some(m.id), "is_moderator": m.moderator,
                                "end_conference": false, "mandatory_member_end_conference": false, "pass_digits": false,
                            },
                            "uuid": m.uuid,
                            "caller_id_name": ch.map(|c| c.cid_name.clone()).unwrap_or_default(),
                            "caller_id_number": ch.map(|c| c.cid_number.clone()).unwrap_or_default(),
                            "join_time": m.joined.elapsed().as_secs(), "last_talking": 0, "energy": m.energy,
                            "volume_in": m.volume_in, "volume_out": m.volume_out,
                            "output-volume": m.volume_out, "input-volume": m.volume_in,
                        }))
                    }));
                // Newest first; a stable sort keeps members that joined in the same instant
                // in list order, which is newest first too.
                members.reverse();
                members.sort_by_key(|m| std::cmp::Reverse(m.0));
                let members: Vec<Value> = members.into_iter().map(|(_, v)| v).collect();
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
                    ("wait_mod", json!(room.wait_mod)),
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
            Some("wait_mod") => {
                if room.wait_mod {
                    "true".into()
                } else {
                    String::new()
                }
            }
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

    /// `relate <id>[,<id>…] <other>[,<other>…] nospeak|nohear|clear`, answered as 1.11 does
    /// (fixtures 07 and 08): a line per pair; an unknown id (0 included, but for `clear`, which
    /// clears every relationship of the member) is `-ERR relationship X->Y not found.`.
    /// `relate <id>` lists the member's relationships, newest first. The relationships change
    /// nothing else here: no simulated member hears audio.
    fn relate(&mut self, name: &str, rest: &[&str]) -> String {
        const USAGE: &str = "relate <member_id>[,<member_id>] <other_member_id>[,<other_member_id>] [nospeak|nohear|clear]";
        let Some(room) = self.rooms.get_mut(name) else {
            return String::new();
        };
        match rest {
            [] => return "+OK No relationships\n".into(),
            [id] => {
                let id: u32 = id.parse().unwrap_or(0);
                let lines: Vec<String> = room
                    .relationships
                    .iter()
                    .rev()
                    .filter(|r| r.0 == id)
                    .map(|&(a, b, speak, hear)| {
                        let speak = if speak { "SPEAK" } else { "NOSPEAK" };
                        let hear = if hear { "HEAR" } else { "NOHEAR" };
                        format!("{a} -> {b} {speak} {hear} NOSENDVIDEO \n")
                    })
                    .collect();
                if lines.is_empty() {
                    return "+OK No relationships\n".into();
                }
                return lines.concat();
            }
            _ => {}
        }
        let (Some(ids), Some(others), Some(&action)) = (rest.first(), rest.get(1), rest.get(2))
        else {
            return USAGE.into();
        };
        let clear = action == "clear";
        if !clear && action.split(',').any(|a| a != "nospeak" && a != "nohear") {
            return USAGE.into();
        }
        let known = |room: &super::conference::Room, id: &str| {
            id.parse::<u32>()
                .ok()
                .is_some_and(|id| room.members.iter().any(|m| m.id == id))
        };
        let mut out = String::new();
        for id in ids.split(',') {
            for other in others.split(',') {
                let found = known(room, id) && (known(room, other) || (clear && other == "0"));
                if !found {
                    out.push_str(&format!("-ERR relationship {id}->{other} not found.\n"));
                    continue;
                }
                let (a, b) = (id.parse().unwrap_or(0), other.parse().unwrap_or(0));
                room.relationships
                    .retain(|r| !(r.0 == a && (r.1 == b || (clear && b == 0))));
                if clear {
                    out.push_str(&format!("+OK relationship {id}->{other} cleared.\n"));
                    continue;
                }
                let speak = !action.split(',').any(|x| x == "nospeak");
                let hear = !action.split(',').any(|x| x == "nohear");
                room.relationships.push((a, b, speak, hear));
                out.push_str(&format!("+OK {id}->{other} {action} set\n"));
            }
        }
        out
    }

    /// `enter_sound|exit_sound file <file>` (1.11's replies: `exit_sound` names the old sound
    /// first); `on|off` are accepted and change nothing here.
    fn room_sound(&mut self, name: &str, verb: &str, rest: &[&str]) -> String {
        let Some(room) = self.rooms.get_mut(name) else {
            return String::new();
        };
        let which = if verb == "enter_sound" {
            "enter"
        } else {
            "exit"
        };
        match rest {
            ["file", file] => {
                let slot = if verb == "enter_sound" {
                    &mut room.enter_sound
                } else {
                    &mut room.exit_sound
                };
                let old = slot.replace((*file).to_owned()).unwrap_or_default();
                let set = format!("+OK {name} {which} sound file set to {file}\n");
                self.fire_room_action(name, &format!("{which}-sound-file-changed"), &[]);
                if verb == "exit_sound" {
                    format!("+OK Old exit sound: [{old}]\n{set}")
                } else {
                    set
                }
            }
            ["file"] => "-ERR No filename specified\n".into(),
            [state @ ("on" | "off")] => {
                let file = if verb == "enter_sound" {
                    room.enter_sound.clone()
                } else {
                    room.exit_sound.clone()
                };
                self.fire_room_action(name, &format!("{which}-sounds-{state}"), &[]);
                format!(
                    "+OK {name} {which} sounds {state} ({})\n",
                    file.unwrap_or_default()
                )
            }
            _ => format!("-ERR Bad args\n{verb} [on|off|file <filename>]"),
        }
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

/// C's `atoi`: an optional sign and the leading digits; 0 when there are none.
fn atoi(text: &str) -> i32 {
    let t = text.trim_start();
    let (sign, digits) = match t.as_bytes().first() {
        Some(b'-') => (-1i64, &t[1..]),
        Some(b'+') => (1, &t[1..]),
        _ => (1, t),
    };
    let n: i64 = digits
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0i64, |n, d| {
            (n * 10 + i64::from(d - b'0')).min(i64::from(i32::MAX) + 1)
        });
    i32::try_from(sign * n).unwrap_or(if sign < 0 { i32::MIN } else { i32::MAX })
}
