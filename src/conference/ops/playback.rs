//! Room playback as the application asks it: play (one operation over several files), pause and
//! resume (`pause_play` toggles), stop, volume; and undoing a change the node refused.

use serde_json::json;
use uuid::Uuid;

use super::{OpError, require_active};
use crate::conference::apply::{Applied, Step};
use crate::conference::events::EventKind;
use crate::conference::model::{Micros, Playback, PlaybackStatus, Room};

/// A playback change the node refused is undone (the state goes back to what the node holds).
pub fn restore_playback(room: &mut Room, previous: &Playback, now: Micros) -> Applied {
    let mut step = Step::new(room, now);
    if &step.room.playback != previous {
        step.room.playback = previous.clone();
        step.touch();
    }
    step.finish()
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
    use crate::conference::{AppId, NodePrefix, RoomId, RoomStatus, RoomType};

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
