//! Room recordings: start and stop them on the node, read them, find their files.

use std::path::PathBuf;

use uuid::Uuid;

use super::{Rooms, ServiceError, invalid};
use crate::conference::ops;
use crate::conference::{AppId, Recording, RecordingStatus, Room, RoomId};
use crate::node::commands;
use crate::node::supervisor::now_micros;
use crate::store::Store;

impl<S: Store> Rooms<S> {
    /// Starts recording a live room into a WAV file on its node; `initiating` until the node
    /// confirms with start-recording.
    pub async fn start_recording(
        &self,
        app: &AppId,
        id: &RoomId,
    ) -> Result<Recording, ServiceError> {
        let room = self.room(app, id).await?;
        if room.recording.is_none() {
            self.recording_place(app).await?;
        }
        let node = self.pool.get(&room.node)?;
        let rec_id = Uuid::new_v4();
        let path = node.config.recording_path(&rec_id);
        let cmd = commands::record(id, &path).map_err(invalid)?;
        // Listed for an uploader before anything is asked of the node (see `uploads.rs`).
        let object = self
            .objects()
            .map(|o| o.key(&format!("{app}/{id}/{rec_id}.wav")));
        if object.is_some() {
            self.store.set_upload_pending(app, id, rec_id, true).await?;
        }
        self.change(app, id, |r| {
            let applied = ops::request_recording(r, rec_id, &path, now_micros())?;
            if let (Some(key), Some(rec)) = (&object, r.recordings.last_mut()) {
                rec.upload = Some(crate::conference::Upload::waiting(key.clone()));
            }
            Ok(applied)
        })
        .await?;
        if let Err(e) = node.expect_ok(&cmd, false).await {
            let why = e.to_string();
            self.change(app, id, |r| {
                Ok(ops::recording_failed(r, rec_id, &why, now_micros()))
            })
            .await?;
            return Err(e.into());
        }
        self.recording_in(app, id, rec_id).await
    }

    /// Stops the room's active recording; `stopping` until the node confirms with
    /// stop-recording, which gives its duration.
    pub async fn stop_recording(
        &self,
        app: &AppId,
        id: &RoomId,
    ) -> Result<Recording, ServiceError> {
        let room = self.room(app, id).await?;
        let node = self.pool.get(&room.node)?;
        let active = room
            .active_recording()
            .cloned()
            .ok_or(ops::OpError::NotRecording)?;
        let cmd = commands::norecord(id, &active.path).map_err(invalid)?;
        self.change(app, id, |r| {
            ops::request_recording_stop(r, now_micros()).map(|(applied, _)| applied)
        })
        .await?;
        // `Stopped recording file …` then `+OK Stopped recording N files`, or `-ERR …` first.
        node.expect_no_error_line(&cmd).await?;
        self.recording_in(app, id, active.id).await
    }

    /// Pauses (`pause`) or resumes the room's active recording; the node confirms with
    /// pause-recording / resume-recording. While paused the node writes nothing: the file
    /// leaves the pause out.
    pub async fn pause_recording(
        &self,
        app: &AppId,
        id: &RoomId,
        pause: bool,
    ) -> Result<Recording, ServiceError> {
        let room = self.room(app, id).await?;
        let node = self.pool.get(&room.node)?;
        // Every check first (nothing is sent for a 409).
        let (_, path) = ops::request_pause(&mut room.clone(), pause, now_micros())?;
        let cmd = commands::pause_recording(id, &path, pause).map_err(invalid)?;
        self.change(app, id, |r| {
            ops::request_pause(r, pause, now_micros()).map(|(applied, _)| applied)
        })
        .await?;
        // `+OK Pause recording file <path>`, then `-ERR non-existant recording …` on a second
        // line when the node has no such recording.
        if let Err(e) = node.expect_no_error_line(&cmd).await {
            self.change(app, id, |r| Ok(ops::pause_not_sent(r, pause, now_micros())))
                .await?;
            return Err(e.into());
        }
        let active = room.recording.ok_or(ServiceError::NotFound("recording"))?;
        self.recording_in(app, id, active).await
    }

    async fn recording_in(
        &self,
        app: &AppId,
        room: &RoomId,
        id: Uuid,
    ) -> Result<Recording, ServiceError> {
        self.store
            .room(app, room)
            .await?
            .and_then(|r| r.recording_by_id(id).cloned())
            .ok_or(ServiceError::NotFound("recording"))
    }

    /// A recording of this app, with its room (live or ended).
    pub async fn recording(
        &self,
        app: &AppId,
        id: Uuid,
    ) -> Result<(Room, Recording), ServiceError> {
        let room = self.room_of_ref(app, id, "recording").await?;
        let rec = room
            .recording_by_id(id)
            .cloned()
            .ok_or(ServiceError::NotFound("recording"))?;
        Ok((room, rec))
    }

    /// Deletes a finished recording: its object in the bucket (or its file, where this
    /// controller sees the node's directory), then its record. Refused while it records or its
    /// copy is being made.
    pub async fn delete_recording(&self, app: &AppId, id: Uuid) -> Result<(), ServiceError> {
        let (room, rec) = self.recording(app, id).await?;
        let copying = rec
            .upload
            .iter()
            .chain(rec.segments.iter().filter_map(|s| s.upload.as_ref()))
            .any(|u| !u.settled());
        if rec.status != RecordingStatus::Ended || copying {
            return Err(ServiceError::Conflict(
                "the recording is still in progress or uploading".into(),
            ));
        }
        match (&rec.upload, self.objects()) {
            (Some(upload), Some(objects)) => {
                let parts = rec.segments.iter().filter_map(|s| s.upload.as_ref());
                for key in parts.chain([upload]).map(|u| &u.key) {
                    objects.delete(key).await.map_err(|e| {
                        ServiceError::Node(crate::node::NodeError::Unavailable(format!(
                            "object storage: {e}"
                        )))
                    })?;
                }
            }
            _ => {
                let files = rec.segments.iter().map(|s| (&s.node, &s.path));
                for (node, path) in files.chain([(rec.file_node(&room), &rec.path)]) {
                    let local = self
                        .pool
                        .get(node)
                        .ok()
                        .and_then(|n| n.config.local_recording_path(path));
                    if let Some(path) = local {
                        // Not on this controller's disk: the node keeps it (nothing to reach
                        // it by).
                        let _ = tokio::fs::remove_file(path).await;
                    }
                }
            }
        }
        crate::store::update_room(&*self.store, app, &room.id, |r| {
            let before = r.recordings.len();
            r.recordings
                .retain(|x| x.id != id || r.recording == Some(id));
            if r.recordings.len() != before {
                r.seq += 1;
                r.updated_at = now_micros();
            }
            Ok::<_, ServiceError>(((), Vec::new()))
        })
        .await?;
        self.store
            .set_upload_pending(app, &room.id, id, false)
            .await?;
        Ok(())
    }

    /// Where this controller reads a finished recording's file.
    pub async fn recording_file(
        &self,
        app: &AppId,
        id: Uuid,
        part: Option<usize>,
    ) -> Result<PathBuf, ServiceError> {
        let (room, rec) = self.recording(app, id).await?;
        let (node, path) = match part {
            None => {
                if rec.status != RecordingStatus::Ended {
                    return Err(ServiceError::Conflict(
                        "the recording is still in progress".into(),
                    ));
                }
                if rec.error.is_some() && rec.duration_ms.is_none() {
                    return Err(ServiceError::NotFound("recording file"));
                }
                (rec.file_node(&room), &rec.path)
            }
            // A finished part is complete whatever the recording does since.
            Some(n) => {
                let seg = n
                    .checked_sub(1)
                    .and_then(|i| rec.segments.get(i))
                    .ok_or(ServiceError::NotFound("recording part"))?;
                (&seg.node, &seg.path)
            }
        };
        self.pool
            .get(node)?
            .config
            .local_recording_path(path)
            .ok_or(ServiceError::NotFound("recording file"))
    }
}
