//! mod_conference in the simulator: rooms made by the first join and destroyed with their last
//! member, node-wide member ids, member targets, and the `conference::maintenance` events.
//! Playback and recording live in [`super::media`]; this file is about rooms and members.

use std::fmt;
use std::time::Instant;

use super::audio::Tone;
use super::core::State;
use super::media::Playback;
use super::recording::Recording;
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

/// The conference profile of `freeswitch-conf/`, the one the controller uses.
pub(crate) const QUIET_PROFILE: &str = "switchyard";

#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub id: u32,
    pub uuid: String,
    pub speak: bool,
    pub hear: bool,
    /// On hold (`conference hold`): hears its hold file, not the room; not heard.
    pub held: bool,
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
    /// Files played to this member alone (`play <file> <id>`, a hold's file), in order.
    pub files: std::collections::VecDeque<super::media::PlayFile>,
    /// Changes whenever the current file's timer must be ignored.
    pub file_token: u64,
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
    /// The room's hold music: the profile's (`local_stream://moh` for every profile but
    /// `switchyard`, which has none), else the creating channel's `conference_moh_sound`.
    pub moh_sound: Option<String>,
    /// The hold music playing (to a member alone, or while the room waits), since when.
    pub moh: Option<Instant>,
    /// The room waits for a moderator (`wait-mod`, a conference flag of the creating member's
    /// `+flags{}` or its `conference_flags`): nobody is heard, the hold music plays whatever
    /// the count. Cleared, without an event, when a moderator joins; never set again.
    pub wait_mod: bool,
    /// The enter and exit tones playing (the first) and waiting.
    pub tones: std::collections::VecDeque<Tone>,
    /// `event_count` of PRESENCE_IN.
    pub presence_count: u64,
    /// `relate`: (member, other, speak, hear), newest last.
    pub relationships: Vec<(u32, u32, bool, bool)>,
    /// `enter_sound file` / `exit_sound file`: the room's own sounds.
    pub enter_sound: Option<String>,
    pub exit_sound: Option<String>,
}

impl Room {
    pub fn member(&self, id: u32) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    /// Whether the room's profile plays mod_conference's own sounds (the alone prompt, hold
    /// music, enter and exit tones). The `switchyard` profile of `freeswitch-conf/` has none;
    /// every other name behaves as vanilla `default`.
    pub fn sounds(&self) -> bool {
        self.profile != QUIET_PROFILE
    }

    /// Whether the conference thread plays the hold music now: the room has one and waits for
    /// its moderator or has a single member, and no room file plays (mod_conference.c,
    /// `conference_thread_run`).
    pub fn wants_moh(&self) -> bool {
        self.moh_sound.is_some()
            && (self.wait_mod || self.non_ghosts() == 1)
            && self.playback.queue.is_empty()
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
        let headers = self.room_headers(room)?;
        let mut e = self.event("CUSTOM", Some(MAINTENANCE), calling);
        for (n, v) in headers {
            e.push(n, v);
        }
        Some(e)
    }

    /// The six `Conference-*` headers of a room (mod_conference's `conference_event_add_data`).
    fn room_headers(&self, room: &str) -> Option<[(&'static str, String); 6]> {
        let r = self.rooms.get(room)?;
        Some([
            ("Conference-Name", room.to_owned()),
            ("Conference-Domain", self.config.domain.clone()),
            ("Conference-Size", r.non_ghosts().to_string()),
            ("Conference-Ghosts", r.ghosts().to_string()),
            ("Conference-Profile-Name", r.profile.clone()),
            ("Conference-Unique-ID", r.uuid.clone()),
        ])
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
    /// puts `Action` and `Old-ID` first and `New-ID` last). The member's data starts with the
    /// room's headers again when `pre` put something between (mod_conference adds the room's
    /// data, then the member's, which adds it again: floor-change has each `Conference-*` header
    /// twice).
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
        if !pre.is_empty() {
            for (n, v) in self.room_headers(room).into_iter().flatten() {
                e.push(n, v);
            }
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
        e.push("Hold", member.held.to_string());
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
