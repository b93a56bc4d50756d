//! The JSON shapes of the conference resource (seeds 000–003): a conference, a conferencecall,
//! a recording. `/v1.0` serves them as they are; `/api/v1` reuses the same fields.

use serde_json::{Value, json};
use uuid::Uuid;

use super::extract::tm;
use crate::conference::{Member, Recording, Room};

/// A conference exactly as seeds 000–003 show it.
pub fn conference(r: &Room) -> Value {
    json!({
        "id": r.id,
        "customer_id": r.app,
        "type": r.kind,
        "status": r.status,
        "name": r.name,
        "detail": r.detail,
        "data": r.data,
        "timeout": r.timeout,
        "pre_actions": r.pre_actions,
        "post_actions": r.post_actions,
        "conferencecall_ids": conferencecall_ids(r),
        "recording_id": r.recording.unwrap_or(Uuid::nil()),
        "recording_ids": recording_ids(r),
        "tm_create": tm(Some(r.created_at)),
        "tm_update": tm(Some(r.updated_at)),
        "tm_delete": tm(r.deleted_at),
    })
}

/// The participations currently in the room (joining, joined or leaving).
pub fn conferencecall_ids(r: &Room) -> Vec<Uuid> {
    r.members.values().map(|m| m.conferencecall_id).collect()
}

/// A member as `GET /api/v1/conferences/{room_id}/members` lists it.
pub fn member(m: &Member) -> Value {
    json!({
        "uuid": m.session,
        "did": m.did,
        "caller_id": m.caller_id,
        "muted": m.muted,
        "deaf": m.deaf,
        "held": m.held,
        "moderator": m.moderator,
        "coaching": m.coaching,
        "talking": m.talking,
        "conferencecall_id": m.conferencecall_id,
        "joined_at": m.joined_at.map(crate::api::extract::iso8601),
        "metadata": m.metadata,
        "volume_in": m.volume_in,
        "volume_out": m.volume_out,
        "energy": m.energy,
    })
}

pub fn recording_ids(r: &Room) -> Vec<Uuid> {
    r.recordings.iter().map(|rec| rec.id).collect()
}

/// A conferencecall exactly as seed 003 shows it; `reference_id` is the session id.
pub fn conferencecall(r: &Room, m: &Member) -> Value {
    json!({
        "id": m.conferencecall_id,
        "customer_id": r.app,
        "conference_id": r.id,
        "reference_type": "call",
        "reference_id": m.session,
        "status": m.status,
        "tm_create": tm(Some(m.requested_at)),
        "tm_update": tm(Some(m.updated_at)),
        "tm_delete": tm(m.left_at),
    })
}

/// A recording of a room, in the same style.
pub fn recording(r: &Room, rec: &Recording) -> Value {
    let filename = std::path::Path::new(&rec.path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    json!({
        "id": rec.id,
        "customer_id": r.app,
        "reference_type": "conference",
        "reference_id": r.id,
        "status": rec.status,
        "format": rec.format,
        "filename": filename,
        "file_url": format!("/api/v1/recordings/{}/file", rec.id),
        "duration_ms": rec.duration_ms,
        "error": rec.error,
        "tm_start": tm(rec.started_at),
        "tm_end": tm(rec.ended_at),
        "tm_create": tm(Some(rec.requested_at)),
        "tm_update": tm(Some(rec.updated_at)),
        "tm_delete": tm(None),
        "storage": if rec.upload.is_some() { "s3" } else { "local" },
        "upload_status": rec.upload.as_ref().map(|u| u.status),
        // The bucket's object once it is there; the node's file in local mode.
        "size_bytes": match &rec.upload {
            Some(u) => u.size_bytes,
            None => rec.size_bytes,
        },
        "sha256": rec.upload.as_ref().and_then(|u| u.sha256.as_deref()),
        "upload_error": rec.upload.as_ref().and_then(|u| u.error.as_deref()),
        "segments": rec.segments.iter().enumerate().map(|(i, seg)| json!({
            "part": i + 1,
            "node": seg.node,
            "filename": std::path::Path::new(&seg.path)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default(),
            "tm_end": tm(Some(seg.ended_at)),
            "file_url": format!("/api/v1/recordings/{}/file?part={}", rec.id, i + 1),
            "upload_status": seg.upload.as_ref().map(|u| u.status),
            "size_bytes": seg.upload.as_ref().and_then(|u| u.size_bytes),
            "sha256": seg.upload.as_ref().and_then(|u| u.sha256.as_deref()),
            "upload_error": seg.upload.as_ref().and_then(|u| u.error.as_deref()),
        })).collect::<Vec<_>>(),
    })
}
