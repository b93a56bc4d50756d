//! The webhook data of member and recording events. Member data is made for nearly every event,
//! so it is built from a template of its keys rather than with `json!`.

use std::sync::LazyLock;

use serde_json::json;
use uuid::Uuid;

use crate::conference::model::{Member, Room};

/// The keys of [`member_data`], in order.
const MEMBER_KEYS: [&str; 16] = [
    "room_id",
    "uuid",
    "conferencecall_id",
    "member_id",
    "did",
    "caller_id",
    "muted",
    "deaf",
    "held",
    "talking",
    "moderator",
    "status",
    "command_uid",
    "reason",
    "hangup_cause",
    "metadata",
];

/// [`MEMBER_KEYS`] as a map of nulls: a copy of it has its keys hashed and placed already.
static MEMBER_TEMPLATE: LazyLock<serde_json::Map<String, serde_json::Value>> =
    LazyLock::new(|| {
        MEMBER_KEYS
            .iter()
            .map(|k| ((*k).to_owned(), serde_json::Value::Null))
            .collect()
    });

/// The webhook data of a member event: what `json!` would build (the same keys, values and
/// order), made from a copy of a template of its keys since it is made for nearly every event.
pub fn member_data(room: &Room, m: &Member) -> serde_json::Value {
    let mut uuid = Uuid::encode_buffer();
    let values: [serde_json::Value; 16] = [
        room.id.as_str().into(),
        m.session.as_str().into(),
        (&*m.conferencecall_id.hyphenated().encode_lower(&mut uuid)).into(),
        m.member_id.into(),
        m.did.as_str().into(),
        m.caller_id.as_str().into(),
        m.muted.into(),
        m.deaf.into(),
        m.held.into(),
        m.talking.into(),
        m.moderator.into(),
        value(m.status),
        m.command_uid.as_deref().into(),
        value(m.leave_reason),
        m.hangup_cause.as_deref().into(),
        m.metadata
            .clone()
            .map_or(serde_json::Value::Null, serde_json::Value::Object),
    ];
    let mut data = MEMBER_TEMPLATE.clone();
    for (slot, v) in data.values_mut().zip(values) {
        *slot = v;
    }
    serde_json::Value::Object(data)
}

/// A value as `json!` writes it (these serialize infallibly).
fn value(x: impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(x).unwrap_or(serde_json::Value::Null)
}

/// The webhook data of a recording event.
pub fn recording_data(room: &Room, id: Uuid) -> serde_json::Value {
    let rec = room.recording_by_id(id);
    json!({
        "room_id": room.id,
        "recording_id": id,
        "status": rec.map(|r| r.status),
        "format": rec.map(|r| r.format.as_str()),
        "duration_ms": rec.and_then(|r| r.duration_ms),
        "error": rec.and_then(|r| r.error.as_deref()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conference::{
        AppId, LeaveReason, MemberStatus, NodePrefix, RoomId, RoomType, Session, SessionId,
        SessionState,
    };

    /// `member_data` as it was written with `json!`: the same keys, values and order.
    #[test]
    fn member_data_is_what_json_would_build() {
        let prefix = NodePrefix::parse("abcde").unwrap_or_else(|e| panic!("{e}"));
        let app = AppId::parse("app").unwrap_or_else(|e| panic!("{e}"));
        let room = Room::new(
            RoomId::new(&prefix, Uuid::new_v4()),
            app,
            "r".into(),
            RoomType::Conference,
            "ctl".into(),
            1,
        );
        let channel = Uuid::new_v4().to_string();
        let session = Session {
            id: SessionId::new(&prefix, &channel),
            app: room.app.clone(),
            did: "100".into(),
            caller_id: "1001".into(),
            caller_name: "Caller".into(),
            state: SessionState::Parked,
            core_uuid: "core".into(),
            created_at: 1,
            answered_at: Some(1),
            ended_at: None,
            hangup_cause: None,
            seq: 1,
        };
        // Joining and unmuted, the rest as a join request makes it.
        let mut m = Member {
            muted: false,
            ..Member::requested(&session, None, 1)
        };
        for step in 0..2 {
            if step == 1 {
                m.member_id = Some(7);
                m.status = MemberStatus::Leaved;
                m.muted = true;
                m.held = true;
                m.talking = true;
                m.moderator = true;
                m.command_uid = Some("uid".into());
                m.leave_reason = Some(LeaveReason::JoinFailed);
                m.hangup_cause = Some("NORMAL_CLEARING".into());
                m.metadata = serde_json::from_value(json!({ "role": "host" })).ok();
            }
            let expected = json!({
                "room_id": room.id,
                "uuid": m.session,
                "conferencecall_id": m.conferencecall_id,
                "member_id": m.member_id,
                "did": m.did,
                "caller_id": m.caller_id,
                "muted": m.muted,
                "deaf": m.deaf,
                "held": m.held,
                "talking": m.talking,
                "moderator": m.moderator,
                "status": m.status,
                "command_uid": m.command_uid,
                "reason": m.leave_reason,
                "hangup_cause": m.hangup_cause,
                "metadata": m.metadata,
            });
            let data = member_data(&room, &m);
            assert_eq!(data, expected);
            assert_eq!(data.to_string(), expected.to_string());
        }
    }
}
