//! What the application asks of a room (through the API), checked against the room's state.
//! Each operation changes the room and says what to tell the node; FreeSWITCH's confirmation
//! arrives later as a fact.

use serde_json::json;
use uuid::Uuid;

use super::apply::{Applied, Step, end_recording, member_data, remove_member};
use super::events::EventKind;
use super::model::{
    LeaveReason, Member, MemberStatus, Micros, PlaybackStatus, Recording, RecordingStatus, Room,
    RoomStatus, RoomType, Session,
};

/// Why an operation is refused (the API turns these into status codes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    #[error("the room is {0}")]
    RoomNotActive(&'static str),
    #[error("session already joined this room")]
    AlreadyJoined,
    #[error("session is still joining this room")]
    StillJoining,
    #[error("session is not in this room")]
    NotInRoom,
    #[error("a connect room takes two participants")]
    RoomFull,
    #[error("member is already {0}")]
    AlreadyInState(&'static str),
    #[error("nothing is playing in this room")]
    NothingPlaying,
    #[error("the room is already recording")]
    AlreadyRecording,
    #[error("the room is not recording")]
    NotRecording,
}

/// `join`: the member is `joining` until add-member confirms it.
pub fn request_join(
    room: &mut Room,
    session: &Session,
    command_uid: Option<String>,
    now: Micros,
) -> Result<Applied, OpError> {
    if room.status != RoomStatus::Progressing {
        return Err(OpError::RoomNotActive(room.status.as_str()));
    }
    if let Some(m) = room.members.get(session.id.channel()) {
        return Err(match m.status {
            MemberStatus::Joining => OpError::StillJoining,
            _ => OpError::AlreadyJoined,
        });
    }
    if room.kind == RoomType::Connect && room.members.len() >= 2 {
        return Err(OpError::RoomFull);
    }
    let member = Member {
        conferencecall_id: Uuid::new_v4(),
        session: session.id.clone(),
        member_id: None,
        status: MemberStatus::Joining,
        muted: true,
        did: session.did.clone(),
        caller_id: session.caller_id.clone(),
        command_uid,
        requested_at: now,
        joined_at: None,
        left_at: None,
        leave_reason: None,
        hangup_cause: None,
        kicked: false,
        updated_at: now,
    };
    let data = member_data(room, &member);
    room.members.insert(member.channel().to_owned(), member);
    let mut step = Step::new(room, now);
    step.emit(EventKind::MemberJoining, data);
    Ok(step.finish())
}

/// `leave` (or, with `kick`, the application removing a conferencecall): `leaving` until
/// del-member confirms it.
pub fn request_leave(
    room: &mut Room,
    channel: &str,
    kick: bool,
    now: Micros,
) -> Result<Applied, OpError> {
    let m = room.members.get_mut(channel).ok_or(OpError::NotInRoom)?;
    match m.status {
        MemberStatus::Joining => return Err(OpError::StillJoining),
        MemberStatus::Leaving => return Err(OpError::AlreadyInState("leaving")),
        _ => {}
    }
    m.kicked = kick;
    m.status = MemberStatus::Leaving;
    m.updated_at = now;
    let data = member_data(room, &room.members[channel]);
    let mut step = Step::new(room, now);
    step.emit(EventKind::MemberLeaving, data);
    Ok(step.finish())
}

/// Joins requested before `deadline` that FreeSWITCH never confirmed fail, and say so.
pub fn expire_joins(room: &mut Room, deadline: Micros, now: Micros) -> Applied {
    let stale: Vec<String> = room
        .members
        .values()
        .filter(|m| m.status == MemberStatus::Joining && m.requested_at < deadline)
        .map(|m| m.channel().to_owned())
        .collect();
    let mut step = Step::new(room, now);
    for channel in &stale {
        remove_member(&mut step, channel, LeaveReason::JoinFailed, None);
    }
    step.finish()
}

/// The room is being deleted (or timed out): `terminating` until its conference is gone on the
/// node. Its joined members are on their way out (kicked); the channels to move out are returned.
/// `reason` (`deleted`, `timeout`) goes with `conference.destroyed`.
pub fn request_terminate(room: &mut Room, reason: &str, now: Micros) -> (Applied, Vec<String>) {
    let mut step = Step::new(room, now);
    let mut leaving = Vec::new();
    if step.room.status < RoomStatus::Terminating {
        let data = json!({ "room_id": step.room.id, "name": step.room.name, "reason": reason });
        step.emit(EventKind::Destroyed, data);
        step.set_status(RoomStatus::Terminating);
        let channels: Vec<String> = step.room.members.keys().cloned().collect();
        for channel in channels {
            let Some(m) = step.room.members.get_mut(&channel) else {
                continue;
            };
            leaving.push(channel.clone());
            if m.status != MemberStatus::Joined {
                continue;
            }
            m.status = MemberStatus::Leaving;
            m.kicked = true;
            m.updated_at = now;
            let data = member_data(step.room, &step.room.members[&channel]);
            step.emit(EventKind::MemberLeaving, data);
        }
    }
    (step.finish(), leaving)
}

/// Starts a recording of the room into `path` (on the node); `initiating` until the node's
/// start-recording confirms it.
pub fn request_recording(
    room: &mut Room,
    id: Uuid,
    path: &str,
    now: Micros,
) -> Result<Applied, OpError> {
    require_active(room)?;
    if room.recording.is_some() {
        return Err(OpError::AlreadyRecording);
    }
    room.recordings.push(Recording {
        id,
        path: path.to_owned(),
        format: "wav".into(),
        status: RecordingStatus::Initiating,
        requested_at: now,
        started_at: None,
        ended_at: None,
        duration_ms: None,
        error: None,
        updated_at: now,
    });
    room.recording = Some(id);
    let mut step = Step::new(room, now);
    step.touch();
    Ok(step.finish())
}

/// Asks the active recording to stop; returns its path. `stopping` until stop-recording.
pub fn request_recording_stop(room: &mut Room, now: Micros) -> Result<(Applied, String), OpError> {
    let id = room.recording.ok_or(OpError::NotRecording)?;
    let rec = room
        .recordings
        .iter_mut()
        .find(|r| r.id == id)
        .ok_or(OpError::NotRecording)?;
    let path = rec.path.clone();
    if rec.status != RecordingStatus::Stopping {
        rec.status = RecordingStatus::Stopping;
        rec.updated_at = now;
    }
    let mut step = Step::new(room, now);
    step.touch();
    Ok((step.finish(), path))
}

/// A recording the node refused (or never got): it ends with the error.
pub fn recording_failed(room: &mut Room, id: Uuid, error: &str, now: Micros) -> Applied {
    let mut step = Step::new(room, now);
    end_recording(&mut step, id, None, Some(error), now);
    step.finish()
}

/// The room's conference is already gone from the node (or never existed): it is over.
pub fn finish_terminate(room: &mut Room, now: Micros) -> Applied {
    let mut step = Step::new(room, now);
    step.set_status(RoomStatus::Terminated);
    step.finish()
}

/// A join whose command never reached the node: the member is removed as `join_failed`.
pub fn join_not_sent(room: &mut Room, channel: &str, now: Micros) -> Applied {
    let mut step = Step::new(room, now);
    if step
        .room
        .members
        .get(channel)
        .is_some_and(|m| m.status == MemberStatus::Joining)
    {
        remove_member(&mut step, channel, LeaveReason::JoinFailed, None);
    }
    step.finish()
}

/// A leave whose command never reached the node: the member is joined again.
pub fn leave_not_sent(room: &mut Room, channel: &str, now: Micros) -> Applied {
    let mut step = Step::new(room, now);
    if let Some(m) = step
        .room
        .members
        .get_mut(channel)
        .filter(|m| m.status == MemberStatus::Leaving)
    {
        m.status = MemberStatus::Joined;
        m.kicked = false;
        m.updated_at = now;
        step.touch();
    }
    step.finish()
}

/// A playback change the node refused is undone (the state goes back to what the node holds).
pub fn restore_playback(
    room: &mut Room,
    previous: &super::model::Playback,
    now: Micros,
) -> Applied {
    let mut step = Step::new(room, now);
    if &step.room.playback != previous {
        step.room.playback = previous.clone();
        step.touch();
    }
    step.finish()
}

/// Room playback needs a live room (its control leg holds the FreeSWITCH conference open).
fn require_active(room: &Room) -> Result<(), OpError> {
    if room.status != RoomStatus::Progressing {
        return Err(OpError::RoomNotActive(room.status.as_str()));
    }
    Ok(())
}

/// `play`: one operation covers every URL; `conference.play.finished` fires when the last of
/// its files is done (see `apply`). A new play replaces the tracked operation.
pub fn request_play(
    room: &mut Room,
    operation: Uuid,
    urls: &[String],
    command_uid: Option<String>,
    now: Micros,
) -> Result<Applied, OpError> {
    require_active(room)?;
    room.playback.status = PlaybackStatus::Playing;
    room.playback.urls = urls.to_vec();
    room.playback.operation_id = Some(operation);
    room.playback.pending = urls.len() as u32;
    room.playback.failed.clear();
    room.playback.command_uid = command_uid;
    let data = json!({
        "room_id": room.id,
        "urls": urls,
        "operation_id": operation,
        "command_uid": room.playback.command_uid,
    });
    let mut step = Step::new(room, now);
    step.emit(EventKind::PlayStarted, data);
    Ok(step.finish())
}

/// Some files of a play operation never reached the node: they count as failed, and when none
/// is left to play the operation is over.
pub fn play_not_sent(room: &mut Room, operation: Uuid, unsent: &[String], now: Micros) -> Applied {
    let mut step = Step::new(room, now);
    let playback = &mut step.room.playback;
    if playback.operation_id != Some(operation) || playback.status == PlaybackStatus::Stopped {
        return step.finish();
    }
    playback.pending = playback.pending.saturating_sub(unsent.len() as u32);
    playback.failed.extend(unsent.iter().cloned());
    if playback.pending > 0 {
        step.touch();
        return step.finish();
    }
    playback.status = PlaybackStatus::Stopped;
    let data = json!({
        "room_id": step.room.id,
        "operation_id": operation,
        "urls": step.room.playback.urls,
        "failed_urls": step.room.playback.failed,
        "command_uid": step.room.playback.command_uid,
    });
    step.emit(EventKind::PlayFinished, data);
    step.finish()
}

/// Checks that `pause_play` can be sent: something is playing or paused.
pub fn check_pause(room: &Room) -> Result<(), OpError> {
    require_active(room)?;
    match room.playback.status {
        PlaybackStatus::Stopped => Err(OpError::NothingPlaying),
        _ => Ok(()),
    }
}

/// `pause_play` was accepted by the node: it toggles between paused and playing.
pub fn toggle_pause(room: &mut Room, now: Micros) -> Result<Applied, OpError> {
    check_pause(room)?;
    let (status, kind) = match room.playback.status {
        PlaybackStatus::Paused => (PlaybackStatus::Playing, EventKind::PlayResumed),
        _ => (PlaybackStatus::Paused, EventKind::PlayPaused),
    };
    room.playback.status = status;
    let data = playback_data(room);
    let mut step = Step::new(room, now);
    step.emit(kind, data);
    Ok(step.finish())
}

/// `stop all` was accepted by the node: nothing plays any more; the operation will not finish.
pub fn stop_playback(room: &mut Room, now: Micros) -> Result<Applied, OpError> {
    require_active(room)?;
    room.playback.status = PlaybackStatus::Stopped;
    room.playback.pending = 0;
    let data = playback_data(room);
    let mut step = Step::new(room, now);
    step.emit(EventKind::PlayStopped, data);
    Ok(step.finish())
}

/// `file-vol <db>` was accepted by the node.
pub fn set_volume(room: &mut Room, volume: i32, now: Micros) -> Result<Applied, OpError> {
    require_active(room)?;
    room.playback.volume = volume;
    let mut data = playback_data(room);
    data["volume"] = json!(volume);
    let mut step = Step::new(room, now);
    step.emit(EventKind::PlayVolumeChanged, data);
    Ok(step.finish())
}

fn playback_data(room: &Room) -> serde_json::Value {
    json!({
        "room_id": room.id,
        "operation_id": room.playback.operation_id,
        "status": room.playback.status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conference::{AppId, NodePrefix, RoomId};

    fn room() -> Room {
        let prefix = NodePrefix::parse("abcde").unwrap();
        let mut r = Room::new(
            RoomId::new(&prefix, Uuid::new_v4()),
            AppId::parse("app").unwrap(),
            "r".into(),
            RoomType::Conference,
            Uuid::new_v4().to_string(),
            1,
        );
        r.status = RoomStatus::Progressing;
        r
    }

    #[test]
    fn play_pause_resume_stop_and_volume_emit_their_events() {
        let mut r = room();
        assert_eq!(check_pause(&r), Err(OpError::NothingPlaying));
        let op = Uuid::new_v4();
        let urls = vec!["https://x/a.wav".to_owned(), "https://x/b.wav".to_owned()];
        let a = request_play(&mut r, op, &urls, None, 2).unwrap();
        assert_eq!(a.events[0].kind, EventKind::PlayStarted);
        assert_eq!(r.playback.pending, 2);
        assert_eq!(
            toggle_pause(&mut r, 3).unwrap().events[0].kind,
            EventKind::PlayPaused
        );
        assert_eq!(r.playback.status, PlaybackStatus::Paused);
        assert_eq!(
            toggle_pause(&mut r, 4).unwrap().events[0].kind,
            EventKind::PlayResumed
        );
        let v = set_volume(&mut r, -7, 5).unwrap();
        assert_eq!(v.events[0].data["volume"], -7);
        assert_eq!(
            stop_playback(&mut r, 6).unwrap().events[0].kind,
            EventKind::PlayStopped
        );
        assert_eq!(r.playback.status, PlaybackStatus::Stopped);
    }

    #[test]
    fn files_that_never_reached_the_node_finish_the_operation() {
        let mut r = room();
        let op = Uuid::new_v4();
        let urls = vec!["https://x/a.wav".to_owned(), "https://x/b.wav".to_owned()];
        request_play(&mut r, op, &urls, None, 2).unwrap();
        let a = play_not_sent(&mut r, op, &urls, 3);
        assert_eq!(a.events[0].kind, EventKind::PlayFinished);
        assert_eq!(r.playback.status, PlaybackStatus::Stopped);
        assert_eq!(r.playback.failed.len(), 2);
    }

    #[test]
    fn playback_needs_a_live_room() {
        let mut r = room();
        r.status = RoomStatus::Starting;
        let urls = vec!["https://x/a.wav".to_owned()];
        assert!(request_play(&mut r, Uuid::new_v4(), &urls, None, 2).is_err());
    }
}
