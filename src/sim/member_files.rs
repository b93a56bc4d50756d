//! Files played to one member alone: `conference <room> play <file> <member_id> [nomux]` and a
//! hold's file. As on FreeSWITCH 1.11 (fixtures/esl/07_participants.md, 08_announce_coach_beep.md):
//! a member's files play one after another; `play` fires play-file-member at once (a hold's file
//! fires nothing), and each file that ends, or that an unhold stops, fires
//! play-file-member-done with the file's `{key=value}` parameters as headers.

use std::time::{Duration, Instant};

use super::core::{Deferred, State};
use super::media::{PlayFile, split_params};

const PLAY_USAGE: &str = "play <file_path> [async|<member_id> [nomux]]";

impl State {
    /// `play <file> <member_id> [nomux]`.
    pub(crate) fn play_to_member(&mut self, room: &str, arg: &str, member: &str) -> String {
        let id: u32 = member.parse().unwrap_or(0);
        if self.rooms.get(room).and_then(|r| r.member(id)).is_none() {
            return format!("-ERR Member: {id} not found.\n{PLAY_USAGE}");
        }
        if !self.queue_member_file(room, id, arg) {
            return format!("-ERR (play) File: {arg} not found.\n");
        }
        // It carries the parameters of the member's file playing now (this one, or one queued
        // before it: a tagged file queued behind a `say:` has its tag only in `File`, seen on
        // 1.10 and 1.11), and `File` keeps its prefix.
        let params = self
            .member_mut(room, id)
            .and_then(|m| m.files.front().map(|f| f.params.clone()))
            .unwrap_or_else(|| split_params(arg).0);
        let mut extra: Vec<(&str, String)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        extra.push(("File", arg.to_owned()));
        self.member_event(room, id, "play-file-member", &extra);
        format!("+OK (play) Playing file {arg} to member {id}\n")
    }

    /// Queues a file for a member (false: it cannot be opened); it starts if it is the only one.
    pub(crate) fn queue_member_file(&mut self, room: &str, id: u32, arg: &str) -> bool {
        let (params, file) = split_params(arg);
        let Some(length) = self.file_length(&file) else {
            return false;
        };
        let file = arg.to_owned();
        let Some(m) = self.member_mut(room, id) else {
            return false;
        };
        m.files.push_back(PlayFile {
            file,
            params,
            remaining: length,
            started: None,
            total: length,
        });
        if m.files.len() == 1 {
            self.start_member_file(room, id);
        }
        true
    }

    fn member_mut(&mut self, room: &str, id: u32) -> Option<&mut super::conference::Member> {
        self.rooms
            .get_mut(room)?
            .members
            .iter_mut()
            .find(|m| m.id == id)
    }

    fn start_member_file(&mut self, room: &str, id: u32) {
        let token = self.token();
        let Some(m) = self.member_mut(room, id) else {
            return;
        };
        m.file_token = token;
        let Some(current) = m.files.front_mut() else {
            return;
        };
        current.started = Some(Instant::now());
        let after = current.remaining;
        self.later(
            after,
            Deferred::MemberFileDone {
                room: room.to_owned(),
                id,
                token,
            },
        );
    }

    /// The member's current file ended (unless its files changed since the timer was armed).
    pub(crate) fn member_file_done(&mut self, room: &str, id: u32, token: u64) {
        let Some(done) = self
            .member_mut(room, id)
            .filter(|m| m.file_token == token)
            .and_then(|m| m.files.pop_front())
        else {
            return;
        };
        self.fire_member_file_done(room, id, &done, done.total);
        if self
            .member_mut(room, id)
            .is_some_and(|m| !m.files.is_empty())
        {
            self.start_member_file(room, id);
        }
    }

    /// Stops every file of a member (an unhold does), each with its done event once the
    /// member's thread closes it: after the command's API event (observed with a hold's
    /// `local_stream://moh`, 1.10 and 1.11).
    pub(crate) fn stop_member_files(&mut self, room: &str, id: u32) {
        let token = self.token();
        let Some(m) = self.member_mut(room, id) else {
            return;
        };
        m.file_token = token;
        let files: Vec<(PlayFile, Duration)> = m
            .files
            .drain(..)
            .map(|file| {
                let played = file.started.map_or(Duration::ZERO, |s| s.elapsed());
                let played = played.min(file.total);
                (file, played)
            })
            .collect();
        if !files.is_empty() {
            let step = Deferred::MemberFilesStopped {
                room: room.to_owned(),
                id,
                files,
            };
            self.later(Duration::from_millis(1), step);
        }
    }

    pub(crate) fn fire_member_file_done(
        &mut self,
        room: &str,
        id: u32,
        file: &PlayFile,
        played: Duration,
    ) {
        // Speech (`say:`) ends without an event, as in a room.
        if file.file.starts_with("say:") {
            return;
        }
        let ms = played.as_millis() as u64;
        let mut extra: Vec<(&str, String)> = vec![
            ("seconds", (ms / 1000).to_string()),
            ("milliseconds", ms.to_string()),
            ("samples", (ms * 8).to_string()),
        ];
        for (k, v) in &file.params {
            extra.push((k.as_str(), v.clone()));
        }
        extra.push(("Action", "play-file-member-done".to_owned()));
        // As `conference_file_close` builds it: the room's data, the lengths, the file's
        // parameters and `Action`, then the member's data (the room's again), then `File`.
        if let Some(member) = self.rooms.get(room).and_then(|r| r.member(id)).cloned() {
            let post = [("File", file.file.clone())];
            self.floor_event(room, &member, &extra, &post);
        }
    }
}
