//! Pausing and resuming a room's recording: asked here, confirmed by the node's
//! pause-recording / resume-recording.

use super::OpError;
use crate::conference::apply::{Applied, Step};
use crate::conference::model::{Micros, RecordingStatus, Room};

/// Pauses (`pause`) or resumes the active recording; returns its path. Judged against the last
/// asked, as a mute is: a repeat of a pending pause is 409, a resume right after it is not.
pub fn request_pause(
    room: &mut Room,
    pause: bool,
    now: Micros,
) -> Result<(Applied, String), OpError> {
    let id = room.recording.ok_or(OpError::NotRecording)?;
    let rec = room
        .recordings
        .iter_mut()
        .find(|r| r.id == id)
        .ok_or(OpError::NotRecording)?;
    match rec.status {
        RecordingStatus::Initiating => return Err(OpError::RecordingStarting),
        RecordingStatus::Stopping => return Err(OpError::RecordingStopping),
        RecordingStatus::Ended => return Err(OpError::NotRecording),
        RecordingStatus::Recording | RecordingStatus::Paused => {}
    }
    if rec.paused_as_asked() == pause {
        return Err(OpError::RecordingAlready(if pause {
            "paused"
        } else {
            "recording"
        }));
    }
    rec.pause_requested = Some(pause);
    rec.updated_at = now;
    let path = rec.path.clone();
    let mut step = Step::new(room, now);
    step.touch();
    Ok((step.finish(), path))
}

/// A pause (`pause`) or resume that never reached the node: the recording is as asked before.
pub fn pause_not_sent(room: &mut Room, pause: bool, now: Micros) -> Applied {
    let mut step = Step::new(room, now);
    let active = step.room.recording;
    if let Some(rec) = step
        .room
        .recordings
        .iter_mut()
        .find(|r| Some(r.id) == active && r.pause_requested == Some(pause))
    {
        let paused = rec.status == RecordingStatus::Paused;
        rec.pause_requested = (paused == pause).then_some(!pause);
        rec.updated_at = now;
        step.touch();
    }
    step.finish()
}
