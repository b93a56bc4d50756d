//! What the simulated conference hears, without audio: the alone prompt and hold music, the enter
//! and exit tones, who talks, and who holds the floor.
//!
//! Talking is a fixpoint over what each member hears. A member talks when its far end sends back
//! what it hears (a loopback call to the vanilla echo extension 9196), it is not muted, and it
//! hears something: hold music, a tone, a file, or another member who talks. So two echoing
//! members keep each other talking, a member stops when the last source it heard goes silent
//! (capture 04: muting one of two echoing members stops the other), and an unmuted member in a
//! silent room stays silent. A caller told to speak (`sim_talk`) talks whatever it hears, while
//! it is not muted or held. Muting ends talking without a stop-talking event (capture 01).
//!
//! The floor goes to the first member to join, and when its holder is muted or leaves, to each
//! member that talks in turn, newest first (captures 01 and 04: 1→3→2 after muting 1).

use std::time::{Duration, Instant};

use super::core::{Deferred, State};

/// Where mod_conference finds its prompts (not installed on the captured node, nor here).
const SOUND_PREFIX: &str = "/usr/share/freeswitch/sounds/en/us/callie";
/// The default profile's hold music (`moh-sound`).
pub(crate) const MOH: &str = "local_stream://moh";
/// The default profile's enter and exit sounds, and how long they take to play.
pub(crate) const ENTER_TONE: (&str, Duration) = (
    "tone_stream://%(200,0,500,600,700)",
    Duration::from_millis(600),
);
pub(crate) const EXIT_TONE: (&str, Duration) = (
    "tone_stream://%(500,0,300,200,100,50,25)",
    Duration::from_millis(500),
);
/// How long the conference takes to move the floor, and to notice talking start or stop.
pub(crate) const FLOOR_DELAY: Duration = Duration::from_millis(20);
const TALK_DELAY: Duration = Duration::from_millis(60);

/// An enter or exit tone: a room file like any other on a node, queued behind the tones
/// before it (`conference_file_play` appends to the room's file chain).
#[derive(Debug, Clone)]
pub(crate) struct Tone {
    pub file: String,
    pub token: u64,
    /// How long it plays once started (lead-in included).
    pub length: Duration,
    /// When it started; `None` while it waits its turn.
    pub started: Option<Instant>,
}

fn played_for(length: Duration) -> Vec<(&'static str, String)> {
    let ms = length.as_millis() as u64;
    vec![
        ("seconds", (ms / 1000).to_string()),
        ("milliseconds", ms.to_string()),
        ("samples", (ms * 8).to_string()),
    ]
}

impl State {
    /// The statistics stop-talking carries about the talk that ended (made up: no audio here).
    fn talk_stats(&mut self, room: &str, id: u32) -> Vec<(&'static str, String)> {
        let since = self
            .rooms
            .get_mut(room)
            .and_then(|r| r.members.iter_mut().find(|m| m.id == id))
            .and_then(|m| m.talk_started.take());
        let ms = since.map_or(0, |s| s.elapsed().as_millis() as u64);
        let packets = ms / 20;
        vec![
            ("talking-gate-hits", (packets * 2 / 3).to_string()),
            ("talking-total-packets", packets.to_string()),
            ("talking-duration-ms", ms.to_string()),
            ("talking-average-energy", "11470.061856".into()),
            ("talking-delta-average", "269.030928".into()),
            ("talking-hit-on-percent", "63.815789".into()),
            ("talking-non-hit-ratio", "15.463917".into()),
            ("talking-hit-off-percent", "9.868421".into()),
            ("talking-hit-off-differential", "53.947368".into()),
        ]
    }

    /// A member is alone: the `conf-alone` prompt (which fails: prompts are not installed),
    /// unless the room waits for its moderator; the hold music follows ([`State::resume_moh`]).
    pub(crate) fn alone(&mut self, room: &str) {
        if self
            .rooms
            .get(room)
            .is_none_or(|r| !r.sounds() || r.wait_mod)
        {
            return;
        }
        let file = format!("{SOUND_PREFIX}/conference/conf-alone.wav");
        let extra = [
            ("Action", "play-file".to_owned()),
            ("File", file),
            ("Async", "false".to_owned()),
            ("Error", "File could not be played".to_owned()),
        ];
        self.fire_room_action(room, "play-file", &extra);
    }

    /// The conference thread starts the hold music, without an event, when the room wants it
    /// ([`Room::wants_moh`]) and it is not playing.
    ///
    /// [`Room::wants_moh`]: super::conference::Room::wants_moh
    pub(crate) fn resume_moh(&mut self, room: &str) {
        if let Some(r) = self.rooms.get_mut(room)
            && r.wants_moh()
        {
            r.moh.get_or_insert_with(Instant::now);
        }
    }

    /// The hold music is stopped (it plays as the room's async file): its play-file-done.
    pub(crate) fn stop_moh(&mut self, room: &str) {
        if let Some(played) = self.take_moh(room) {
            self.moh_done(room, played);
        }
    }

    /// Stops the hold music, if it plays; how long it played (its play-file-done is the
    /// caller's to fire, [`State::moh_done`]).
    pub(crate) fn take_moh(&mut self, room: &str) -> Option<Duration> {
        let since = self.rooms.get_mut(room)?.moh.take()?;
        Some(since.elapsed())
    }

    /// The play-file-done of hold music that played for `played`.
    pub(crate) fn moh_done(&mut self, room: &str, played: Duration) {
        let Some(file) = self.rooms.get(room).and_then(|r| r.moh_sound.clone()) else {
            return;
        };
        let mut extra = played_for(played);
        extra.push(("Action", "play-file-done".into()));
        extra.push(("File", file));
        extra.push(("Async", "true".into()));
        self.fire_room_action(room, "play-file-done", &extra);
    }

    /// The room's enter (`enter`) or exit sound is queued: the one set with `enter_sound` /
    /// `exit_sound file`, else the default profile's (none for `freeswitch-conf/`'s). It takes
    /// the 400 ms lead-in and 200 ms of tone on entering (seen on 1.11), 200 ms on leaving.
    pub(crate) fn start_tone(&mut self, room: &str, enter: bool) {
        let token = self.token();
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        let set = if enter { &r.enter_sound } else { &r.exit_sound };
        let (file, length) = match set {
            Some(file) if enter => (file.clone(), Duration::from_millis(600)),
            Some(file) => (file.clone(), Duration::from_millis(200)),
            None if r.sounds() => {
                let (file, length) = if enter { ENTER_TONE } else { EXIT_TONE };
                (file.to_owned(), length)
            }
            None => return,
        };
        r.tones.push_back(Tone {
            file,
            token,
            length,
            started: None,
        });
        if r.tones.len() == 1 {
            self.next_tone(room);
        }
    }

    /// The first queued tone starts playing.
    fn next_tone(&mut self, room: &str) {
        let Some(tone) = self.rooms.get_mut(room).and_then(|r| r.tones.front_mut()) else {
            return;
        };
        tone.started = Some(Instant::now());
        let (length, token) = (tone.length, tone.token);
        self.later(
            length,
            Deferred::ToneDone {
                room: room.to_owned(),
                token,
            },
        );
    }

    pub(crate) fn tone_done(&mut self, room: &str, token: u64) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        if r.tones.front().is_none_or(|t| t.token != token) {
            return;
        }
        let Some(tone) = r.tones.pop_front() else {
            return;
        };
        self.fire_tone_done(room, &tone);
        self.next_tone(room);
        self.audio_changed(room, None);
    }

    /// A tone's play-file-done: it ended, or the room closed its files as it ended.
    pub(crate) fn fire_tone_done(&mut self, room: &str, tone: &Tone) {
        let mut extra = played_for(tone.started.map_or(Duration::ZERO, |s| s.elapsed()));
        let (params, _) = super::media::split_params(&tone.file);
        for (k, v) in &params {
            extra.push((k.as_str(), v.clone()));
        }
        extra.push(("Action", "play-file-done".into()));
        extra.push(("File", tone.file.clone()));
        self.fire_room_action(room, "play-file-done", &extra);
    }

    /// PRESENCE_IN for the room, as mod_conference sends it on every join and leave.
    pub(crate) fn presence(&mut self, room: &str) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        let count = r.non_ghosts();
        let event_count = r.presence_count;
        r.presence_count += 1;
        let mut e = self.event(
            "PRESENCE_IN",
            None,
            ("mod_conference.c", "conference_send_presence", 3870),
        );
        e.push("proto", "conf");
        e.push("login", room);
        e.push("from", format!("{room}@{}", self.config.domain));
        e.push("event_type", "presence");
        e.push("alt_event_type", "dialog");
        e.push("event_count", event_count.to_string());
        e.push("unique-id", room);
        if count == 0 {
            e.push("force-status", "Inactive");
            e.push("channel-state", "CS_HANGUP");
            e.push("answer-state", "terminated");
            e.push("call-direction", "inbound");
        } else {
            let plural = if count == 1 { "" } else { "s" };
            e.push("force-status", format!("Active ({count} caller{plural})"));
            e.push("channel-state", "CS_ROUTING");
            e.push(
                "answer-state",
                if count == 1 { "early" } else { "confirmed" },
            );
            e.push(
                "presence-call-direction",
                if count == 1 { "outbound" } else { "inbound" },
            );
        }
        self.fire(e);
    }

    /// Gives the floor to `new` (or nobody) with its floor-change event.
    pub(crate) fn set_floor(&mut self, room: &str, new: Option<u32>) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        let old = std::mem::replace(&mut r.floor, new);
        let member = new.and_then(|id| r.member(id)).cloned();
        let old_id = match (old, new) {
            (Some(id), Some(_)) => id.to_string(),
            _ => "none".to_owned(),
        };
        match member {
            Some(member) => {
                let pre = [("Action", "floor-change".to_owned()), ("Old-ID", old_id)];
                let post = [("New-ID", member.id.to_string())];
                self.floor_event(room, &member, &pre, &post);
            }
            None => {
                let extra = [
                    ("Action", "floor-change".to_owned()),
                    ("Old-ID", old_id),
                    ("New-ID", "none".to_owned()),
                ];
                self.fire_room_action(room, "floor-change", &extra);
            }
        }
    }

    /// The floor passes to each member that talks, newest first.
    pub(crate) fn floor_to_talkers(&mut self, room: &str) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let talkers: Vec<u32> = r
            .members
            .iter()
            .rev()
            .filter(|m| m.talking && m.speak && Some(m.id) != r.floor)
            .map(|m| m.id)
            .collect();
        for id in talkers {
            self.set_floor(room, Some(id));
        }
    }

    /// What members hear changed; `muted` is a member just muted (it may lose the floor).
    pub(crate) fn audio_changed(&mut self, room: &str, muted: Option<u32>) {
        let holder = self.rooms.get(room).and_then(|r| r.floor);
        if muted.is_some() && muted == holder {
            self.later(
                FLOOR_DELAY,
                Deferred::Floor {
                    room: room.to_owned(),
                },
            );
        }
        self.later(
            TALK_DELAY,
            Deferred::Talk {
                room: room.to_owned(),
            },
        );
    }

    /// Recomputes who talks (see the module docs), firing start-talking and stop-talking.
    pub(crate) fn update_talking(&mut self, room: &str) {
        loop {
            let Some(r) = self.rooms.get(room) else {
                return;
            };
            let sound = r.moh.is_some()
                || !r.tones.is_empty()
                || (!r.playback.queue.is_empty() && !r.playback.paused);
            let change = r.members.iter().find_map(|m| {
                let channel = self.channels.get(&m.uuid).filter(|ch| !ch.is_hungup());
                let (alive, speaking) = (channel.is_some(), channel.is_some_and(|ch| ch.speaking));
                // A held member hears its hold music, not the room, and is not heard (its
                // media is hard-muted): it never talks. A room that waits for its moderator
                // mixes no member in (conference_loop.c): its members hear the music only.
                let hears = m.hear
                    && (sound
                        || (!r.wait_mod
                            && r.members
                                .iter()
                                .any(|o| o.id != m.id && o.talking && o.speak && !o.held)));
                let voice = speaking || (m.echo && hears);
                let talks = alive && m.speak && !m.ghost && !m.held && voice;
                (talks != m.talking).then_some((m.id, talks))
            });
            let Some((id, talks)) = change else {
                return;
            };
            if let Some(m) = self
                .rooms
                .get_mut(room)
                .and_then(|r| r.members.iter_mut().find(|m| m.id == id))
            {
                m.talking = talks;
            }
            if talks {
                if let Some(m) = self
                    .rooms
                    .get_mut(room)
                    .and_then(|r| r.members.iter_mut().find(|m| m.id == id))
                {
                    m.talk_started = Some(Instant::now());
                }
                self.member_event(room, id, "start-talking", &[]);
            } else {
                let stats = self.talk_stats(room, id);
                self.member_event(room, id, "stop-talking", &stats);
            }
        }
    }
}
