//! Joining and leaving a simulated conference room, with what mod_conference does around it:
//! room creation and destruction, add-member/del-member, PRESENCE_IN, the alone prompt and hold
//! music, the enter and exit tones, the floor.

use std::time::{Duration, Instant};

use super::audio::{FLOOR_DELAY, MOH};
use super::conference::{JoinSpec, Member, QUIET_PROFILE, Room};
use super::core::{Deferred, State};
use super::media::Playback;

/// How long a member moved out of its room by `uuid_transfer` stays in: its thread notices the
/// transfer when it reads its next frame (20 ms at the profile's interval), while a hangup
/// (`uuid_kill`) is acted on at once. So when a room is torn down the controller's way (members
/// moved out, the control leg killed right after), the control leg's del-member comes before the
/// members': the order a real node often gives (FreeSWITCH 1.11: in 17 of 30 such teardowns of a
/// room of four, the control leg's del-member came before some member's; conference-destroy came
/// last every time), and the one a controller that ended a room on it would get wrong.
pub(crate) const NEXT_FRAME: Duration = Duration::from_millis(20);

impl State {
    /// The conference app: create the room if needed, add the member (add-member), and what
    /// mod_conference does around a join: the alone prompt and hold music for a member alone,
    /// the enter tone for the others, the floor for the first member.
    pub(crate) fn join(&mut self, uuid: &str, spec: &JoinSpec) {
        if !self.rooms.contains_key(&spec.room) {
            let var = |name: &str| {
                self.channels
                    .get(uuid)
                    .and_then(|ch| ch.var(name))
                    .map(str::to_owned)
            };
            // The conference flags are the creating member's `+flags{}` and its
            // `conference_flags` (mod_conference.c, `conference_function`).
            let conference_flags = var("conference_flags").unwrap_or_default();
            let wait_mod = spec
                .flags
                .iter()
                .map(String::as_str)
                .chain(conference_flags.split('|'))
                .any(|f| f == "wait-mod");
            let moh_sound = if spec.profile == QUIET_PROFILE {
                var("conference_moh_sound").filter(|s| !s.is_empty())
            } else {
                Some(MOH.to_owned())
            };
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
                    moh_sound,
                    moh: None,
                    wait_mod,
                    tones: Default::default(),
                    presence_count: 0,
                    relationships: Vec::new(),
                    enter_sound: None,
                    exit_sound: None,
                },
            );
            self.fire_room_action(&spec.room, "conference-create", &[]);
        }
        // As mod_conference (`__confmid`): a channel keeps its first member id for life, in
        // every conference it goes to.
        let id = match self.channels.get(uuid).and_then(|ch| ch.conf_member_id) {
            Some(id) => id,
            None => {
                let id = self.next_member_id;
                self.next_member_id += 1;
                if let Some(ch) = self.channels.get_mut(uuid) {
                    ch.conf_member_id = Some(id);
                }
                id
            }
        };
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
            held: false,
            moderator: has("moderator"),
            ghost: has("ghost"),
            joined: Instant::now(),
            volume_in: 0,
            volume_out: 0,
            energy: 100,
            talking: false,
            talk_started: None,
            echo,
            files: std::collections::VecDeque::new(),
            file_token: 0,
        };
        let ghost = member.ghost;
        let Some(room) = self.rooms.get_mut(&spec.room) else {
            return;
        };
        room.members.push(member);
        let (room_uuid, count) = (room.uuid.clone(), room.non_ghosts());
        // conference_<room>_<domain>_<caller id number>: the leg's caller id as it is now (an
        // answered outbound leg's is its callee's after the flip: the dialed number).
        let number = self
            .channels
            .get(uuid)
            .map(|ch| ch.cid_number.clone())
            .unwrap_or_default();
        let call_key = format!("conference_{}_{}_{number}", spec.room, self.config.domain);
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
        // A moderator ends the wait, without an event: the music is stopped below for good.
        if has("moderator")
            && let Some(room) = self.rooms.get_mut(&spec.room)
        {
            room.wait_mod = false;
        }
        if !ghost && count > 1 {
            self.stop_moh(&spec.room);
            self.start_tone(&spec.room, true);
        }
        let no_floor = self
            .rooms
            .get(&spec.room)
            .is_some_and(|r| r.floor.is_none());
        if !ghost && no_floor {
            self.set_floor(&spec.room, Some(id));
        }
        self.resume_moh(&spec.room);
        self.audio_changed(&spec.room, None);
    }

    /// Takes a channel out of its room: the floor if it held it, PRESENCE_IN, the alone prompt
    /// for a member left alone, del-member, the conference app's end (CODEC, EXECUTE_COMPLETE),
    /// then the exit tone, or the room's end when nobody is left.
    pub(crate) fn leave_room(&mut self, uuid: &str) {
        self.leave_room_with(uuid, true);
    }

    /// [`State::leave_room`]; `codec` false when the member's CODEC was fired already (a
    /// transfer resets the codec before del-member).
    pub(crate) fn leave_room_with(&mut self, uuid: &str, codec: bool) {
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
        // While the room waits for its moderator, a leave stops the music (it starts again).
        if self.rooms.get(&room_name).is_some_and(|r| r.wait_mod) {
            self.stop_moh(&room_name);
        }
        if let Some(ch) = self.channels.get_mut(uuid) {
            ch.unset_var("conference_call_key");
        }
        if codec {
            self.codec(uuid, false);
        }
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
            self.start_tone(&room_name, false);
        }
        if held_floor {
            self.later(
                FLOOR_DELAY,
                Deferred::Floor {
                    room: room_name.clone(),
                },
            );
        }
        self.resume_moh(&room_name);
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

    /// The room ends: as mod_conference's thread ends, it closes the files still in its chain
    /// (each with its play-file-done, speech excepted), then its async file (the hold music),
    /// before conference-destroy.
    fn destroy_room(&mut self, room: &str) {
        self.presence(room);
        for (file, played) in self.stop_playback(room) {
            self.fire_play_done(room, &file, played);
        }
        let tones = self
            .rooms
            .get_mut(room)
            .map(|r| std::mem::take(&mut r.tones))
            .unwrap_or_default();
        for tone in &tones {
            self.fire_tone_done(room, tone);
        }
        self.stop_moh(room);
        self.stop_all_recordings(room);
        self.fire_room_action(room, "conference-destroy", &[]);
        self.rooms.remove(room);
    }
}
