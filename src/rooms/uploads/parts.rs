//! Which part of a recording to copy next, and an attempt's outcome written into the
//! recording. A recording is one file, or, when its room moved to another node while it
//! recorded (`rooms::migrate`), finished parts on the nodes it left (`Recording::segments`) and
//! its own file on the last. Each part is copied by the node that holds it, the earlier ones
//! first; the recording is `ready` (and told so once) only when every part is in the bucket,
//! and `failed` as soon as one part is given up.

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use super::{Attempt, FIRST_BACKOFF, GIVE_UP_AFTER, MAX_BACKOFF};
use crate::conference::apply::Step;
use crate::conference::{
    EventKind, Micros, NodePrefix, Recording, RecordingStatus, Room, Upload, UploadStatus,
};

/// A part of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    /// Its own file (the last part).
    Last,
    /// A finished part, by its index in `segments`.
    Earlier(usize),
}

/// A copy to attempt: the part, the object's key, and the node and file to put it from.
pub(super) struct Copy {
    pub part: Part,
    pub key: String,
    pub node: NodePrefix,
    pub path: String,
}

/// What a recording's copy waits for.
pub(super) enum Due {
    /// This part's copy, now.
    Copy(Copy),
    /// A part still being written, or a retry's time not come.
    Later,
    /// Every part copied or given up (or none to copy): nothing more to do.
    Done,
}

/// What to do next for `rec` (of `room`) at `now`.
pub(super) fn due(room: &Room, rec: &Recording, now: Micros) -> Due {
    let Some(own) = &rec.upload else {
        return Due::Done;
    };
    let mut open = false;
    for (i, seg) in rec.segments.iter().enumerate() {
        let Some(u) = seg.upload.as_ref().filter(|u| !u.settled()) else {
            continue;
        };
        open = true;
        if u.status == UploadStatus::Uploading && u.next_at <= now {
            return Due::Copy(Copy {
                part: Part::Earlier(i),
                key: u.key.clone(),
                node: seg.node.clone(),
                path: seg.path.clone(),
            });
        }
    }
    match own.status {
        _ if open => Due::Later,
        UploadStatus::Ready | UploadStatus::Failed => Due::Done,
        UploadStatus::Waiting => Due::Later,
        UploadStatus::Uploading if own.next_at > now || rec.status != RecordingStatus::Ended => {
            Due::Later
        }
        UploadStatus::Uploading => Due::Copy(Copy {
            part: Part::Last,
            key: own.key.clone(),
            node: rec.file_node(room).clone(),
            path: rec.path.clone(),
        }),
    }
}

/// Writes an attempt's outcome into the recording's part; the recording once whole in the
/// bucket is told `ready` (with download URLs lasting `url_ttl`).
pub(super) fn settle(
    room: &mut Room,
    rec_id: Uuid,
    part: Part,
    attempt: &Attempt,
    objects: &crate::objects::ObjectStore,
    url_ttl: Duration,
    now: Micros,
) -> Vec<crate::conference::DomainEvent> {
    let mut step = Step::new(room, now);
    let Some(rec) = step.room.recordings.iter_mut().find(|r| r.id == rec_id) else {
        return Vec::new();
    };
    let ended = rec.status == RecordingStatus::Ended;
    let upload = match part {
        Part::Last => rec.upload.as_mut().filter(|_| ended),
        Part::Earlier(i) => rec.segments.get_mut(i).and_then(|s| s.upload.as_mut()),
    };
    let Some(upload) = upload.filter(|u| u.status == UploadStatus::Uploading) else {
        return Vec::new();
    };
    upload.attempts += 1;
    match attempt {
        Attempt::Ready { size, sha256 } => {
            upload.status = UploadStatus::Ready;
            upload.size_bytes = Some(*size);
            upload.sha256 = Some(sha256.clone());
            upload.error = None;
            upload.ready_at = Some(now);
            step.touch();
            if part == Part::Last {
                let data = ready_data(step.room, rec_id, objects, url_ttl, now);
                step.emit(EventKind::RecordingReady, data);
            }
        }
        Attempt::Retry(why) if upload.attempts < GIVE_UP_AFTER => {
            let wait = retry_wait(upload.attempts);
            upload.next_at = now + wait.as_micros() as Micros;
            upload.error = Some(why.clone());
            step.touch();
        }
        Attempt::Retry(why) | Attempt::GiveUp(why) => {
            upload.status = UploadStatus::Failed;
            upload.error = Some(why.clone());
            // A part lost is the recording's copy lost: never `ready`.
            if let (Part::Earlier(i), Some(own)) = (part, rec.upload.as_mut())
                && !own.settled()
            {
                own.status = UploadStatus::Failed;
                own.error = Some(format!("part {} could not be copied: {why}", i + 1));
            }
            step.touch();
        }
    }
    step.finish().events
}

/// The wait after the `attempts`-th failed attempt: doubling from [`FIRST_BACKOFF`] up to
/// [`MAX_BACKOFF`].
fn retry_wait(attempts: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1 << attempts.min(16))
        .min(MAX_BACKOFF)
}

/// `conference.recording.ready`: the recording's own file (size, sha256, a download URL), and
/// its earlier parts likewise when it has some.
fn ready_data(
    room: &Room,
    rec_id: Uuid,
    objects: &crate::objects::ObjectStore,
    url_ttl: Duration,
    now: Micros,
) -> serde_json::Value {
    let Some(rec) = room.recording_by_id(rec_id) else {
        return serde_json::Value::Null;
    };
    let expires = crate::api::extract::iso8601(now + url_ttl.as_micros() as Micros);
    let own = rec.upload.as_ref();
    let mut data = json!({
        "room_id": room.id,
        "recording_id": rec_id,
        "status": "ready",
        "storage": "s3",
        "size_bytes": own.and_then(|u| u.size_bytes),
        "duration_ms": rec.duration_ms,
        "sha256": own.and_then(|u| u.sha256.as_deref()),
        "url": own.map(|u| objects.get_url(&u.key, url_ttl)),
        "url_expires_at": expires,
    });
    if !rec.segments.is_empty() {
        let parts: Vec<serde_json::Value> = rec
            .segments
            .iter()
            .enumerate()
            .filter_map(|(i, seg)| {
                let u: &Upload = seg.upload.as_ref()?;
                Some(json!({
                    "part": i + 1,
                    "node": seg.node,
                    "size_bytes": u.size_bytes,
                    "sha256": u.sha256,
                    "url": objects.get_url(&u.key, url_ttl),
                }))
            })
            .collect();
        data["parts"] = parts.into();
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bucket down for an hour loses nothing (README): a copy is tried again, ever more
    /// slowly, for far longer than that before it is given up; the first retries come within
    /// seconds.
    #[test]
    fn a_copy_is_retried_for_about_a_day_before_it_is_given_up() {
        let waits: Vec<Duration> = (1..GIVE_UP_AFTER).map(retry_wait).collect();
        assert_eq!(waits[0], Duration::from_secs(2));
        assert!(waits.windows(2).all(|w| w[0] <= w[1]), "never sooner");
        assert_eq!(waits.last(), Some(&MAX_BACKOFF));
        let total: Duration = waits.iter().sum();
        assert!(
            total >= Duration::from_secs(20 * 3600),
            "retried for {:?} in all",
            total
        );
    }
}
