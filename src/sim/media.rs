//! Room playback and recording in the simulator. Files play one after another (FreeSWITCH queues
//! them); each takes its real length when it is a local WAV, else a configured default, and ends
//! with play-file-done carrying the file's `{key=value}` parameters. Recordings are real WAV
//! files as long as the recording ran.

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use super::core::{Deferred, State};
use super::wav;

#[derive(Debug, Clone)]
pub(crate) struct PlayFile {
    /// The file as FreeSWITCH reports it (`File` header): without its `{…}` prefix.
    pub file: String,
    pub params: Vec<(String, String)>,
    pub remaining: Duration,
    pub started: Option<Instant>,
    pub total: Duration,
}

#[derive(Debug, Default)]
pub(crate) struct Playback {
    pub queue: VecDeque<PlayFile>,
    pub paused: bool,
    /// Changes whenever the current file's timer must be ignored (pause, stop, next file).
    pub token: u64,
    pub volume: i32,
}

/// `{a=b,c=d}file` → params and file.
pub(crate) fn split_params(arg: &str) -> (Vec<(String, String)>, String) {
    if let Some(inner) = arg.strip_prefix('{')
        && let Some((params, file)) = inner.split_once('}')
    {
        let params = params
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        return (params, file.to_owned());
    }
    (Vec::new(), arg.to_owned())
}

/// How long a file played: what it had played before a pause, and since it last started.
fn played(file: &PlayFile) -> Duration {
    let played = file.total.saturating_sub(file.remaining)
        + file.started.map(|s| s.elapsed()).unwrap_or_default();
    played.min(file.total)
}

impl State {
    /// How long a file plays, or `None` when FreeSWITCH could not open it.
    pub(crate) fn file_length(&self, file: &str) -> Option<Duration> {
        let is_stream = [
            "http://",
            "https://",
            "tone_stream://",
            "local_stream://",
            "say:",
            "tts://",
            "silence_stream://",
        ]
        .iter()
        .any(|p| file.starts_with(p));
        if self.unreachable_urls.contains(file)
            || (file.starts_with("tts://") && !self.speaks_tts_files())
        {
            return None;
        }
        if is_stream {
            return Some(self.config.default_play_duration);
        }
        if let Some((_, d)) = self.config.virtual_files.iter().find(|(p, _)| p == file) {
            return Some(*d);
        }
        let path = Path::new(file);
        if path.is_file() {
            return Some(wav::duration(path).unwrap_or(self.config.default_play_duration));
        }
        None
    }

    /// `conference <room> play <file>`: FreeSWITCH queues the file and fires play-file at once,
    /// for a queued file too. `File` is the argument as given (with its `{…}` prefix), and the
    /// event carries the parameters of the file playing now, not of the one queued (a queued
    /// file's play-file names the first file's `switchyard_op`: conference_api_sub_play merges
    /// `conference->fnode->fh.params`). A file that cannot be opened gets a play-file with
    /// `Error` and the `-ERR` reply.
    pub(crate) fn play(&mut self, room: &str, rest: &[&str]) -> String {
        let Some(&arg) = rest.first() else {
            return "play <file_path> [async|<member_id> [nomux]]".into();
        };
        if let Some(&member) = rest.get(1).filter(|&&w| w != "async") {
            return self.play_to_member(room, arg, member);
        }
        let (params, file) = split_params(arg);
        let has_member = self
            .rooms
            .get(room)
            .is_some_and(|r| r.members.iter().any(|m| !m.ghost));
        if !has_member {
            return format!("-ERR (play) File: {arg} not found.\n");
        }
        let Some(length) = self.file_length(&file) else {
            self.fire_room_action(
                room,
                "play-file",
                &[
                    ("Action", "play-file".into()),
                    ("File", arg.to_owned()),
                    ("Async", "false".into()),
                    ("Error", "File could not be played".into()),
                ],
            );
            return format!("-ERR (play) File: {arg} not found.\n");
        };
        let Some(r) = self.rooms.get_mut(room) else {
            return String::new();
        };
        r.playback.queue.push_back(PlayFile {
            file: arg.to_owned(),
            params,
            remaining: length,
            started: None,
            total: length,
        });
        let starts_now = r.playback.queue.len() == 1 && !r.playback.paused;
        let current = r
            .playback
            .queue
            .front()
            .map(|f| f.params.clone())
            .unwrap_or_default();
        let mut extra: Vec<(&str, String)> = current
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        extra.push(("Action", "play-file".into()));
        extra.push(("File", arg.to_owned()));
        extra.push(("Async", "false".into()));
        self.fire_room_action(room, "play-file", &extra);
        if starts_now {
            self.start_current(room);
            self.audio_changed(room, None);
        }
        format!("+OK (play) Playing file {arg}\n")
    }

    /// Starts (or resumes) the file at the head of the queue and arms its end timer.
    fn start_current(&mut self, room: &str) {
        let token = self.token();
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        r.playback.token = token;
        let Some(current) = r.playback.queue.front_mut() else {
            return;
        };
        current.started = Some(Instant::now());
        let after = current.remaining;
        self.later(
            after,
            Deferred::PlayDone {
                room: room.to_owned(),
                token,
            },
        );
    }

    /// The end timer of the current file fired.
    pub(crate) fn play_done(&mut self, room: &str, token: u64) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        if r.playback.token != token || r.playback.paused {
            return;
        }
        if let Some(done) = r.playback.queue.pop_front() {
            self.fire_play_done(room, &done, done.total);
            self.audio_changed(room, None);
        }
        if self
            .rooms
            .get(room)
            .is_some_and(|r| !r.playback.queue.is_empty())
        {
            self.start_current(room);
        }
        self.resume_moh(room);
    }

    /// Stopped files are closed by the conference thread just after the command returned, so
    /// their play-file-done comes after the command's API event (captures 01/02); the hold
    /// music's (the async file's) first.
    pub(crate) fn files_stopped(
        &mut self,
        room: &str,
        moh: Option<Duration>,
        files: Vec<(PlayFile, Duration)>,
    ) {
        if let Some(length) = moh {
            self.moh_done(room, length);
        }
        for (file, played) in &files {
            self.fire_play_done(room, file, *played);
        }
        self.resume_moh(room);
        self.audio_changed(room, None);
    }

    pub(crate) fn fire_play_done(&mut self, room: &str, file: &PlayFile, played: Duration) {
        // Speech (`say:`) ends without an event: mod_conference closes file nodes only.
        if file.file.starts_with("say:") {
            return;
        }
        let ms = played.as_millis() as u64;
        let mut extra = vec![
            ("seconds", (ms / 1000).to_string()),
            ("milliseconds", ms.to_string()),
            ("samples", (ms * 8).to_string()),
            ("Action", "play-file-done".to_owned()),
            ("File", file.file.clone()),
        ];
        for (k, v) in &file.params {
            extra.push((k.as_str(), v.clone()));
        }
        self.fire_room_action(room, "play-file-done", &extra);
    }

    /// `pause_play`: a toggle; nothing playing prints nothing.
    pub(crate) fn pause_play(&mut self, room: &str) -> String {
        let token = self.token();
        let Some(r) = self.rooms.get_mut(room) else {
            return String::new();
        };
        if r.playback.queue.is_empty() {
            return String::new();
        }
        if r.playback.paused {
            r.playback.paused = false;
            self.start_current(room);
            return "+OK Resume\n".into();
        }
        r.playback.paused = true;
        r.playback.token = token;
        if let Some(current) = r.playback.queue.front_mut()
            && let Some(started) = current.started.take()
        {
            current.remaining = current.remaining.saturating_sub(started.elapsed());
        }
        "+OK Pause\n".into()
    }

    /// `stop [current|all|async]`: each stopped file gets its play-file-done. `all` stops the
    /// hold music too (it is the room's async file), `async` only the hold music
    /// (conference_file.c, `conference_file_stop`).
    pub(crate) fn stop(&mut self, room: &str, rest: &[&str]) -> String {
        let (moh, files) = match rest.first().copied() {
            None | Some("all") => (self.take_moh(room), self.stop_playback(room)),
            Some("current") => (None, self.stop_current(room)),
            Some("async") => (self.take_moh(room), Vec::new()),
            Some(_) => return "stop <[current|all|async|last]> [<member_id>]".into(),
        };
        let n = files.len() + usize::from(moh.is_some());
        if n > 0 {
            self.later(
                Duration::from_millis(1),
                Deferred::PlayStopped {
                    room: room.to_owned(),
                    moh,
                    files,
                },
            );
        }
        format!("+OK Stopped {n} files.\n")
    }

    /// Stops the file now playing (the next in the queue starts); it and how long it played.
    fn stop_current(&mut self, room: &str) -> Vec<(PlayFile, Duration)> {
        let token = self.token();
        let Some(r) = self.rooms.get_mut(room) else {
            return Vec::new();
        };
        r.playback.token = token;
        let Some(file) = r.playback.queue.pop_front() else {
            return Vec::new();
        };
        let played = played(&file);
        if self
            .rooms
            .get(room)
            .is_some_and(|r| !r.playback.queue.is_empty() && !r.playback.paused)
        {
            self.start_current(room);
        }
        vec![(file, played)]
    }

    /// Stops every file of the room: each and how long it played.
    pub(crate) fn stop_playback(&mut self, room: &str) -> Vec<(PlayFile, Duration)> {
        let token = self.token();
        let Some(r) = self.rooms.get_mut(room) else {
            return Vec::new();
        };
        r.playback.token = token;
        r.playback.paused = false;
        r.playback
            .queue
            .drain(..)
            .map(|file| {
                let length = played(&file);
                (file, length)
            })
            .collect()
    }

    /// `file-vol <dB>`: the volume of the file now playing.
    pub(crate) fn file_vol(&mut self, room: &str, rest: &[&str]) -> String {
        let Some(level) = rest.first().and_then(|v| v.parse::<i32>().ok()) else {
            return "-ERR missing args\nfile-vol <vol#>".into();
        };
        let Some(r) = self.rooms.get_mut(room) else {
            return String::new();
        };
        if r.playback.queue.is_empty() {
            return String::new();
        }
        r.playback.volume = level.clamp(-50, 50);
        "+OK volume changed\n".into()
    }
}
