//! Room playback: play (one `conference <room> play` per URL, tagged with the operation id),
//! pause (a toggle), stop, volume. Immediate webhooks are written with the state change;
//! `conference.play.finished` comes from the node's `play-file-done`.

use uuid::Uuid;

use super::{CooldownGroup, Rooms, ServiceError, invalid};
use crate::conference::ops::{self, OpError};
use crate::conference::{AppId, PlaybackStatus, RoomId};
use crate::node::supervisor::now_micros;
use crate::node::{NodeError, commands};
use crate::store::Store;

/// What a playback control did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaybackState {
    pub status: PlaybackStatus,
    pub operation_id: Option<Uuid>,
    pub volume: i32,
}

impl<S: Store> Rooms<S> {
    /// Plays `urls` (already checked as http/https) into a room, in order; returns the
    /// operation id.
    pub async fn play(
        &self,
        app: &AppId,
        id: &RoomId,
        urls: &[String],
        command_uid: Option<String>,
    ) -> Result<Uuid, ServiceError> {
        let room = self.room(app, id).await?;
        let node = self.pool.get(&room.node)?;
        let op = Uuid::new_v4();
        let cmds = urls
            .iter()
            .map(|url| commands::play_tagged(id, &op, url, None, node.speech()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        ops::request_play(&mut room.clone(), op, urls, None, now_micros())?;
        self.cool(app, CooldownGroup::ConfPlay, id.as_str()).await?;
        self.change(app, id, |r| {
            ops::request_play(r, op, urls, command_uid.clone(), now_micros())
        })
        .await?;
        for (i, sent_for_url) in cmds.iter().enumerate() {
            for cmd in sent_for_url {
                if let Err(e) = node.expect_ok(cmd, false).await {
                    self.change(app, id, |r| {
                        Ok(ops::play_not_sent(r, op, &urls[i..], now_micros()))
                    })
                    .await?;
                    return Err(e.into());
                }
            }
        }
        if room.playback.volume != 0
            && let Ok(cmd) =
                commands::room_command(id, "file-vol", Some(&room.playback.volume.to_string()))
        {
            // The room's volume applies to the new files too; best effort.
            let _ = node.api(&cmd).await;
        }
        Ok(op)
    }

    /// Toggles pause/resume of the room's playback.
    pub async fn pause(&self, app: &AppId, id: &RoomId) -> Result<PlaybackState, ServiceError> {
        let room = self.room(app, id).await?;
        ops::check_pause(&room)?;
        let node = self.pool.get(&room.node)?;
        let cmd = commands::room_command(id, "pause_play", None).map_err(invalid)?;
        self.cool(app, CooldownGroup::ConferenceControl, id.as_str())
            .await?;
        match node.expect_ok(&cmd, false).await {
            Ok(_) => {}
            // An empty answer: the node's queue is empty (the last file just ended).
            Err(NodeError::Rejected(text)) if text.trim().is_empty() => {
                return Err(OpError::NothingPlaying.into());
            }
            Err(e) => return Err(e.into()),
        }
        self.change(app, id, |r| ops::toggle_pause(r, now_micros()))
            .await?;
        self.playback_state(app, id).await
    }

    /// Stops all playback in the room.
    pub async fn stop(&self, app: &AppId, id: &RoomId) -> Result<PlaybackState, ServiceError> {
        let room = self.room(app, id).await?;
        ops::stop_playback(&mut room.clone(), now_micros())?;
        let node = self.pool.get(&room.node)?;
        let cmd = commands::room_command(id, "stop", Some("all")).map_err(invalid)?;
        self.cool(app, CooldownGroup::ConferenceControl, id.as_str())
            .await?;
        // Recorded first, so the files' play-file-done that `stop` causes finish nothing.
        self.change(app, id, |r| ops::stop_playback(r, now_micros()))
            .await?;
        if let Err(e) = node.expect_ok(&cmd, true).await {
            self.change(app, id, |r| {
                Ok(ops::restore_playback(r, &room.playback, now_micros()))
            })
            .await?;
            return Err(e.into());
        }
        self.playback_state(app, id).await
    }

    /// Sets the playback volume (dB, −50…7, checked by the caller). With nothing playing the
    /// volume is only recorded (and applied to the next play): nothing is sent.
    pub async fn volume(
        &self,
        app: &AppId,
        id: &RoomId,
        volume: i32,
    ) -> Result<PlaybackState, ServiceError> {
        let room = self.room(app, id).await?;
        ops::set_volume(&mut room.clone(), volume, now_micros())?;
        if room.playback.status != PlaybackStatus::Stopped {
            let node = self.pool.get(&room.node)?;
            let cmd = commands::room_command(id, "file-vol", Some(&volume.to_string()))
                .map_err(invalid)?;
            self.cool(app, CooldownGroup::ConferenceControl, id.as_str())
                .await?;
            node.expect_ok(&cmd, true).await?;
        }
        self.change(app, id, |r| ops::set_volume(r, volume, now_micros()))
            .await?;
        self.playback_state(app, id).await
    }

    async fn playback_state(
        &self,
        app: &AppId,
        id: &RoomId,
    ) -> Result<PlaybackState, ServiceError> {
        let p = self.room(app, id).await?.playback;
        Ok(PlaybackState {
            status: p.status,
            operation_id: p.operation_id,
            volume: p.volume,
        })
    }
}
