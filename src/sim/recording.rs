//! Room recordings in the simulator: `record`/`norecord`, `pause`/`resume`, and the
//! `recording start|stop|pause|resume|check` forms. A stopped recording is written as a real WAV
//! file as long as it ran (paused time excluded).

use std::path::Path;
use std::time::{Duration, Instant};

use super::core::{Deferred, State};
use super::wav;

#[derive(Debug, Clone)]
pub(crate) struct Recording {
    pub path: String,
    pub started: Instant,
    pub paused_at: Option<Instant>,
    pub paused_total: Duration,
}

impl Recording {
    /// How much audio the recording holds.
    fn length(&self) -> Duration {
        let paused_now = self.paused_at.map(|p| p.elapsed()).unwrap_or_default();
        self.started
            .elapsed()
            .saturating_sub(self.paused_total + paused_now)
    }
}

impl State {
    /// `recording <start|stop|pause|resume|check> [path|all]`.
    pub(crate) fn recording(&mut self, room: &str, rest: &[&str]) -> String {
        match rest.first().copied() {
            Some("start") => self.record(room, rest.get(1).copied()),
            Some("stop") => self.norecord(room, rest.get(1).copied()),
            Some("pause") => self.pause_recording(room, rest.get(1).copied(), true),
            Some("resume") => self.pause_recording(room, rest.get(1).copied(), false),
            Some("check") => self.check_recording(room),
            _ => "-ERR Usage: recording <start|stop|pause|resume|check> <path|all>\n".into(),
        }
    }

    /// `chkrecord` / `recording check`: the file being recorded.
    pub(crate) fn check_recording(&self, room: &str) -> String {
        match self.rooms.get(room).and_then(|r| r.recordings.first()) {
            Some(rec) => format!("+OK Record file {}\n", rec.path),
            None => format!("+OK conference {room} is not recording\n"),
        }
    }

    /// `pause <path>` / `resume <path>`: `+OK Pause recording file <path>` whatever the path,
    /// then `-ERR non-existant recording '<path>'` (and no event) when the room does not record
    /// it (conference_api.c, `conference_api_sub_pauserec`). `Other-Recordings` is whether the
    /// room records at all (its `record_count`, this recording included).
    pub(crate) fn pause_recording(
        &mut self,
        room: &str,
        path: Option<&str>,
        pause: bool,
    ) -> String {
        let verb = if pause { "pause" } else { "resume" };
        let Some(path) = path else {
            return format!("-ERR Usage: {verb} <path>\n");
        };
        let capital = if pause { "Pause" } else { "Resume" };
        let reply = format!("+OK {capital} recording file {path}\n");
        let Some(rec) = self
            .rooms
            .get_mut(room)
            .and_then(|r| r.recordings.iter_mut().find(|rec| rec.path == path))
        else {
            return format!("{reply}-ERR non-existant recording '{path}'\n");
        };
        match (pause, rec.paused_at) {
            (true, None) => rec.paused_at = Some(Instant::now()),
            (false, Some(since)) => {
                rec.paused_total += since.elapsed();
                rec.paused_at = None;
            }
            _ => {}
        }
        let others = self
            .rooms
            .get(room)
            .is_some_and(|r| !r.recordings.is_empty());
        let action = format!("{verb}-recording");
        let extra = [
            ("Action", action.clone()),
            ("Path", path.to_owned()),
            ("Other-Recordings", others.to_string()),
        ];
        self.fire_room_action(room, &action, &extra);
        reply
    }

    pub(crate) fn record(&mut self, room: &str, path: Option<&str>) -> String {
        let Some(path) = path else {
            return "-ERR Usage: record <path>\n".into();
        };
        let Some(r) = self.rooms.get_mut(room) else {
            return String::new();
        };
        r.recordings.push(Recording {
            path: path.to_owned(),
            started: Instant::now(),
            paused_at: None,
            paused_total: Duration::ZERO,
        });
        self.later(
            Duration::from_millis(1),
            Deferred::RecordingStarted {
                room: room.to_owned(),
                path: path.to_owned(),
            },
        );
        format!("+OK Record file {path}\n")
    }

    /// The recording thread runs: start-recording, then the room's presence counts it as a
    /// caller (PRESENCE_IN).
    pub(crate) fn recording_started(&mut self, room: &str, path: &str) {
        let running = self
            .rooms
            .get(room)
            .is_some_and(|r| r.recordings.iter().any(|rec| rec.path == path));
        if !running {
            return;
        }
        self.fire_room_action(
            room,
            "start-recording",
            &[("Action", "start-recording".into()), ("Path", path.into())],
        );
        self.presence(room);
    }

    /// `norecord <path|all>`: writes each stopped recording as a real WAV of its length.
    pub(crate) fn norecord(&mut self, room: &str, which: Option<&str>) -> String {
        let Some(which) = which else {
            return "-ERR Usage: norecord <[filename | all]>\n".into();
        };
        let Some(r) = self.rooms.get_mut(room) else {
            return String::new();
        };
        let (stopped, kept): (Vec<Recording>, Vec<Recording>) = r
            .recordings
            .drain(..)
            .partition(|rec| which == "all" || rec.path == which);
        r.recordings = kept;
        let mut out = String::new();
        if stopped.is_empty() && which != "all" {
            out.push_str(&format!("-ERR non-existant recording '{which}'\n"));
        }
        for rec in stopped {
            out.push_str(&format!("Stopped recording file {}\n", rec.path));
            self.later(
                Duration::from_millis(1),
                Deferred::RecordingStopped {
                    room: room.to_owned(),
                    recording: rec,
                },
            );
        }
        out.push_str("+OK Stopped recording 0 files\n");
        out
    }

    pub(crate) fn stop_all_recordings(&mut self, room: &str) {
        let recordings = self
            .rooms
            .get_mut(room)
            .map(|r| std::mem::take(&mut r.recordings))
            .unwrap_or_default();
        for rec in &recordings {
            self.finish_recording(room, rec);
        }
    }

    pub(crate) fn finish_recording(&mut self, room: &str, rec: &Recording) {
        let elapsed = rec.length();
        let samples = (elapsed.as_millis() as u64 * 8) as u32;
        let written = wav::write_tone(Path::new(&rec.path), 8000, samples);
        let mut extra = vec![
            ("Action", "stop-recording".to_owned()),
            ("Path", rec.path.clone()),
            ("Other-Recordings", "false".to_owned()),
            ("Samples-Out", samples.to_string()),
            ("Samplerate", "8000".to_owned()),
            ("Milliseconds-Elapsed", elapsed.as_millis().to_string()),
        ];
        match written {
            Ok(size) => extra.push(("Record-File-Size", size.to_string())),
            Err(e) => extra.push(("Error", format!("File could not be written: {e}"))),
        }
        self.fire_room_action(room, "stop-recording", &extra);
    }
}
