//! Playback and recordings: a play operation's files finishing (`play-file`, `play-file-done`),
//! a recording starting, stopping, or ending with its conference.

use uuid::Uuid;

use super::data::recording_data;
use super::{Ignored, Step};
use crate::conference::events::EventKind;
use crate::conference::model::{Micros, PlaybackStatus, RecordingStatus, UploadStatus};

/// One file of the tracked play operation is done (or, `failed`, could not be played); the
/// operation finishes with its last file.
pub(super) fn file_done(step: &mut Step<'_>, op: Option<&str>, file: &str, failed: bool) {
    let playback = &mut step.room.playback;
    let ours = playback
        .operation_id
        .is_some_and(|id| op == Some(id.to_string().as_str()));
    if !ours || playback.status == PlaybackStatus::Stopped || playback.pending == 0 {
        step.out.ignored = Some(Ignored::UnknownOperation);
        return;
    }
    playback.pending -= 1;
    if failed {
        playback.failed.push(file.to_owned());
    }
    if playback.pending > 0 {
        step.touch();
        return;
    }
    playback.status = PlaybackStatus::Stopped;
    let data = serde_json::json!({
        "room_id": step.room.id,
        "operation_id": playback.operation_id,
        "urls": playback.urls,
        "failed_urls": playback.failed,
        "command_uid": playback.command_uid,
    });
    step.emit(EventKind::PlayFinished, data);
}

pub(super) fn recording_started(step: &mut Step<'_>, path: &str, error: Option<&str>) {
    let Some(rec) = step
        .room
        .recordings
        .iter_mut()
        .find(|r| r.path == path && r.is_active())
    else {
        step.out.ignored = Some(Ignored::UnknownOperation);
        return;
    };
    let id = rec.id;
    if let Some(error) = error {
        let now = step.now;
        end_recording(step, id, None, Some(error), now);
        return;
    }
    if rec.status != RecordingStatus::Initiating {
        return;
    }
    rec.status = RecordingStatus::Recording;
    rec.started_at = Some(step.now);
    rec.updated_at = step.now;
    let data = recording_data(step.room, id);
    step.emit(EventKind::RecordingStarted, data);
}

pub(super) fn recording_stopped(step: &mut Step<'_>, path: &str, millis: u64, size: Option<u64>) {
    let Some(rec) = step
        .room
        .recordings
        .iter_mut()
        .find(|r| r.path == path && r.is_active())
    else {
        step.out.ignored = Some(Ignored::UnknownOperation);
        return;
    };
    rec.size_bytes = size;
    let id = rec.id;
    let now = step.now;
    end_recording(step, id, Some(millis), None, now);
}

/// A recording is over: stopped (with the node's duration), failed, or its conference is gone.
pub fn end_recording(
    step: &mut Step<'_>,
    id: Uuid,
    millis: Option<u64>,
    error: Option<&str>,
    now: Micros,
) {
    let Some(rec) = step
        .room
        .recordings
        .iter_mut()
        .find(|r| r.id == id && r.is_active())
    else {
        return;
    };
    rec.status = RecordingStatus::Ended;
    rec.ended_at = Some(now);
    rec.updated_at = now;
    rec.error = error.map(str::to_owned);
    // Complete: its copy can be made now (a file never written has none to make).
    let written = error.is_none() || millis.is_some();
    if let Some(upload) = rec
        .upload
        .as_mut()
        .filter(|u| u.status == UploadStatus::Waiting)
    {
        upload.status = match written {
            true => UploadStatus::Uploading,
            false => UploadStatus::Failed,
        };
    }
    // Its finished parts (a room that moved while it recorded) are complete by now too.
    for part in rec.segments.iter_mut() {
        if let Some(u) = part
            .upload
            .as_mut()
            .filter(|u| u.status == UploadStatus::Waiting)
        {
            u.status = UploadStatus::Uploading;
        }
    }
    rec.duration_ms = millis.or_else(|| {
        rec.started_at
            .filter(|_| error.is_none() || millis.is_some())
            .map(|s| u64::try_from((now - s) / 1000).unwrap_or(0))
    });
    if step.room.recording == Some(id) {
        step.room.recording = None;
    }
    let data = recording_data(step.room, id);
    step.emit(EventKind::RecordingFinished, data);
}

/// pause-recording (`paused`) or resume-recording of the recording at `path`. The node sends
/// one for every command, a repeat too: only a change is announced.
pub(super) fn recording_paused(step: &mut Step<'_>, path: &str, paused: bool) {
    let Some(rec) = step.room.recordings.iter_mut().find(|r| {
        r.path == path
            && matches!(
                r.status,
                RecordingStatus::Recording | RecordingStatus::Paused
            )
    }) else {
        step.out.ignored = Some(Ignored::UnknownOperation);
        return;
    };
    let settles = rec.pause_requested == Some(paused);
    if settles {
        rec.pause_requested = None;
    }
    let now = if paused {
        RecordingStatus::Paused
    } else {
        RecordingStatus::Recording
    };
    if rec.status == now {
        if settles {
            step.touch();
        }
        return;
    }
    rec.status = now;
    rec.updated_at = step.now;
    let id = rec.id;
    let data = recording_data(step.room, id);
    let kind = if paused {
        EventKind::RecordingPaused
    } else {
        EventKind::RecordingResumed
    };
    step.emit(kind, data);
}
