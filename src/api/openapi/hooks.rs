//! The document's `webhooks` section (OpenAPI 3.1): one entry per [`EventKind`], named as the
//! event's `type`, whose request body is the envelope (`webhook/envelope.rs`) with that `type`
//! and its `data`. The data schemas are written here, next to the list of kinds that picks
//! them; `tests/api/openapi.rs` checks that every kind has an entry, and the answers flow
//! (`tests/api/openapi_answers.rs`) that every webhook it caused matches its entry.

use serde_json::{Map, Value, json};

use crate::conference::EventKind;

/// Every kind of event, in the order of [`EventKind`].
pub const KINDS: [EventKind; 43] = {
    use EventKind::*;
    [
        Created,
        Destroyed,
        Progressing,
        Terminating,
        Terminated,
        MemberJoining,
        MemberJoined,
        MemberJoinFailed,
        MemberLeaving,
        MemberLeft,
        MemberMuted,
        MemberUnmuted,
        MemberDeaf,
        MemberUndeaf,
        MemberHeld,
        MemberUnheld,
        MemberDtmf,
        MemberTalking,
        MemberMoved,
        MemberAudio,
        MemberAnnouncementFinished,
        MemberCoaching,
        ParticipantRinging,
        ParticipantAnswered,
        ParticipantFailed,
        PlayStarted,
        PlayFinished,
        PlayPaused,
        PlayResumed,
        PlayStopped,
        PlayVolumeChanged,
        RecordingStarted,
        RecordingPaused,
        RecordingResumed,
        RecordingFinished,
        RecordingReady,
        Migrated,
        Locked,
        Unlocked,
        MetadataUpdated,
        StreamStarted,
        StreamStopped,
        StreamFailed,
    ]
};

/// What the event tells, and the schema of its `data` (see [`schemas`]).
fn entry(kind: EventKind) -> (&'static str, &'static str) {
    use EventKind::*;
    match kind {
        Created => ("A room was created.", "WebhookRoomCreated"),
        Destroyed => (
            "A room is ending: deleted, timed out (`timeout`, `empty_timeout`, \
             `departure_timeout`), its `end_on_exit` member left, or its `connect` partner left.",
            "WebhookRoomDestroyed",
        ),
        Progressing => (
            "The room is live on its node (its control leg is in).",
            "WebhookRoomStatus",
        ),
        Terminating => (
            "The room is ending; its members are moved out.",
            "WebhookRoomStatus",
        ),
        Terminated => (
            "The node holds nothing of the room any more: the last event of a room.",
            "WebhookRoomStatus",
        ),
        MemberJoining => ("A join was asked and sent to the node.", "WebhookMember"),
        MemberJoined => ("The node has the member in the room.", "WebhookMember"),
        MemberJoinFailed => (
            "A join (or a move) never reached the room; `reason` says why.",
            "WebhookMember",
        ),
        MemberLeaving => ("A leave was asked and sent to the node.", "WebhookMember"),
        MemberLeft => (
            "The member is out of the room; `reason` says why.",
            "WebhookMember",
        ),
        MemberMuted | MemberUnmuted | MemberDeaf | MemberUndeaf | MemberHeld | MemberUnheld => (
            "The node changed the member's switch (as the member's flags now say).",
            "WebhookMember",
        ),
        MemberDtmf => ("The member's caller pressed a key.", "WebhookMemberDtmf"),
        MemberTalking => (
            "The member started or stopped talking (apps with `talking_events`).",
            "WebhookMember",
        ),
        MemberMoved => (
            "The member moved here from another room of the application \
             (`conference/move`), instead of a leave and a join.",
            "WebhookMemberMoved",
        ),
        MemberAudio => (
            "One of the member's levels changed (`changed` says which).",
            "WebhookMemberAudio",
        ),
        MemberAnnouncementFinished => (
            "An announcement to the member ended (`completed` false: cut short).",
            "WebhookAnnouncementFinished",
        ),
        MemberCoaching => (
            "The member is heard by one member alone, or by everyone again.",
            "WebhookMemberCoaching",
        ),
        ParticipantRinging => ("A call the room placed rings.", "WebhookParticipant"),
        ParticipantAnswered => ("A call the room placed was answered.", "WebhookParticipant"),
        ParticipantFailed => (
            "A call the room placed will not join it; `reason` says why.",
            "WebhookParticipantFailed",
        ),
        PlayStarted => (
            "A play into the room was sent to the node.",
            "WebhookPlayStarted",
        ),
        PlayFinished => (
            "A play ended; `failed_urls` lists the files the node could not play.",
            "WebhookPlayFinished",
        ),
        PlayPaused | PlayResumed | PlayStopped => {
            ("The room's playback changed.", "WebhookPlayback")
        }
        PlayVolumeChanged => ("The room's playback volume changed.", "WebhookPlayVolume"),
        RecordingStarted | RecordingPaused | RecordingResumed | RecordingFinished => {
            ("The room's recording changed.", "WebhookRecording")
        }
        RecordingReady => (
            "A recording is whole in the object store (`[recordings] store = \"s3\"`).",
            "WebhookRecordingReady",
        ),
        Migrated => (
            "The room moved to another media node, its members with it.",
            "WebhookMigrated",
        ),
        Locked | Unlocked => ("The room was locked or unlocked.", "WebhookLock"),
        MetadataUpdated => (
            "The application's data about the room (`uuid` null) or a member changed.",
            "WebhookMetadataUpdated",
        ),
        StreamStarted => (
            "A stream's socket is open and audio flows (`connections` counts the sockets: \
             more than 1 after a takeover opened a new one).",
            "WebhookStream",
        ),
        StreamStopped => (
            "A stream ended: `reason` is `deleted`, `server_closed`, `room_ended` or \
             `member_left`.",
            "WebhookStream",
        ),
        StreamFailed => (
            "A stream's socket could not be opened, or was lost and not regained; `reason` \
             says why.",
            "WebhookStream",
        ),
    }
}

fn t(kind: &str) -> Value {
    json!({ "type": kind })
}

fn or_null(kind: &str) -> Value {
    json!({ "type": [kind, "null"] })
}

fn one_of(values: &[&str]) -> Value {
    json!({ "type": "string", "enum": values })
}

fn one_of_or_null(values: &[&str]) -> Value {
    let mut all: Vec<Value> = values.iter().map(|v| json!(v)).collect();
    all.push(Value::Null);
    json!({ "type": ["string", "null"], "enum": all })
}

/// An object with these fields, each required, and `optional` ones; nothing else. Every event's
/// data may carry `room_metadata`, the room's metadata, when it has some.
fn object(required: Vec<(&str, Value)>, optional: Vec<(&str, Value)>) -> Value {
    let names: Vec<&str> = required.iter().map(|(n, _)| *n).collect();
    let mut properties = Map::new();
    for (name, schema) in required.into_iter().chain(optional) {
        properties.insert(name.to_owned(), schema);
    }
    properties.insert(
        "room_metadata".into(),
        json!({ "type": "object", "description": "The room's metadata, when it has some." }),
    );
    json!({
        "type": "object",
        "properties": properties,
        "required": names,
        "additionalProperties": false,
    })
}

const LEAVE_REASONS: &[&str] = &[
    "left",
    "kicked",
    "hangup",
    "join_failed",
    "moved",
    "not_on_node",
    "node_restarted",
    "room_ended",
    "node_failed",
];

/// The 16 fields every member event carries (`apply::member_data`).
fn member_fields() -> Vec<(&'static str, Value)> {
    vec![
        ("room_id", t("string")),
        ("uuid", t("string")),
        (
            "conferencecall_id",
            json!({ "type": "string", "format": "uuid" }),
        ),
        ("member_id", or_null("integer")),
        ("did", t("string")),
        ("caller_id", t("string")),
        ("muted", t("boolean")),
        ("deaf", t("boolean")),
        ("held", t("boolean")),
        ("talking", t("boolean")),
        ("moderator", t("boolean")),
        (
            "status",
            one_of(&["joining", "joined", "leaving", "leaved"]),
        ),
        ("command_uid", or_null("string")),
        ("reason", one_of_or_null(LEAVE_REASONS)),
        ("hangup_cause", or_null("string")),
        ("metadata", or_null("object")),
    ]
}

fn member(extra: Vec<(&'static str, Value)>) -> Value {
    let mut fields = member_fields();
    fields.extend(extra);
    object(fields, Vec::new())
}

fn dialout(extra: Vec<(&'static str, Value)>) -> Value {
    let mut fields = vec![
        ("room_id", t("string")),
        (
            "participant_id",
            json!({ "type": "string", "format": "uuid" }),
        ),
        ("uuid", t("string")),
        ("to", t("string")),
        (
            "state",
            one_of(&["dialing", "ringing", "answered", "failed"]),
        ),
        ("muted", t("boolean")),
        ("moderator", t("boolean")),
        ("end_on_exit", t("boolean")),
        ("command_uid", or_null("string")),
        ("metadata", or_null("object")),
    ];
    fields.extend(extra);
    object(fields, Vec::new())
}

fn playback(extra: Vec<(&'static str, Value)>) -> Value {
    let mut fields = vec![
        ("room_id", t("string")),
        ("operation_id", or_null("string")),
        ("status", one_of(&["playing", "paused", "stopped"])),
    ];
    fields.extend(extra);
    object(fields, Vec::new())
}

fn strings() -> Value {
    json!({ "type": "array", "items": { "type": "string" } })
}

/// The data schemas, by name.
pub fn schemas() -> Vec<(&'static str, Value)> {
    let room_status = one_of(&["progressing", "terminating", "terminated"]);
    // A member's data changed: the member's fields beside the three of the room's form.
    let member_keys: Vec<(&str, Value)> = member_fields()
        .into_iter()
        .filter(|(k, _)| !["room_id", "uuid", "metadata"].contains(k))
        .collect();
    vec![
        (
            "WebhookEnvelope",
            json!({
                "type": "object",
                "description": "Every webhook's body (Standard Webhooks: its `id` is the \
                    `webhook-id` header; `webhook-timestamp` and `webhook-signature` sign it). \
                    `seq` orders a room's events and never repeats.",
                "properties": {
                    "id": { "type": "string" },
                    "type": { "type": "string" },
                    "timestamp": { "type": "string", "description": "RFC 3339, UTC" },
                    "app_id": { "type": "string" },
                    "room_id": { "type": "string" },
                    "seq": { "type": "integer", "minimum": 0 },
                    "data": { "type": "object" },
                },
                "required": ["id", "type", "timestamp", "app_id", "room_id", "seq", "data"],
            }),
        ),
        (
            "WebhookRoomCreated",
            object(
                vec![
                    ("room_id", t("string")),
                    ("name", t("string")),
                    ("type", one_of(&["conference", "connect"])),
                ],
                Vec::new(),
            ),
        ),
        (
            "WebhookRoomDestroyed",
            object(
                vec![
                    ("room_id", t("string")),
                    ("name", t("string")),
                    (
                        "reason",
                        one_of(&[
                            "deleted",
                            "timeout",
                            "empty_timeout",
                            "departure_timeout",
                            "end_on_exit",
                            "partner_left",
                        ]),
                    ),
                ],
                Vec::new(),
            ),
        ),
        (
            "WebhookRoomStatus",
            object(
                vec![("room_id", t("string")), ("status", room_status)],
                Vec::new(),
            ),
        ),
        ("WebhookMember", member(Vec::new())),
        ("WebhookMemberDtmf", member(vec![("digit", t("string"))])),
        (
            "WebhookMemberMoved",
            member(vec![("from_room", t("string")), ("to_room", t("string"))]),
        ),
        (
            "WebhookMemberAudio",
            member(vec![
                (
                    "volume_in",
                    json!({ "type": "integer", "minimum": -4, "maximum": 4 }),
                ),
                (
                    "volume_out",
                    json!({ "type": "integer", "minimum": -4, "maximum": 4 }),
                ),
                ("energy", or_null("integer")),
                ("changed", one_of(&["volume_in", "volume_out", "energy"])),
            ]),
        ),
        (
            "WebhookAnnouncementFinished",
            member(vec![
                ("operation_id", t("string")),
                ("completed", t("boolean")),
            ]),
        ),
        (
            "WebhookMemberCoaching",
            member(vec![("coaching", or_null("string"))]),
        ),
        ("WebhookParticipant", dialout(Vec::new())),
        (
            "WebhookParticipantFailed",
            dialout(vec![
                (
                    "reason",
                    one_of(&[
                        "busy",
                        "no_answer",
                        "rejected",
                        "timeout",
                        "cancelled",
                        "failed",
                    ]),
                ),
                ("hangup_cause", or_null("string")),
            ]),
        ),
        (
            "WebhookPlayStarted",
            object(
                vec![
                    ("room_id", t("string")),
                    ("urls", strings()),
                    ("operation_id", t("string")),
                    ("command_uid", or_null("string")),
                ],
                Vec::new(),
            ),
        ),
        (
            "WebhookPlayFinished",
            object(
                vec![
                    ("room_id", t("string")),
                    ("operation_id", or_null("string")),
                    ("urls", strings()),
                    ("failed_urls", strings()),
                    ("command_uid", or_null("string")),
                ],
                Vec::new(),
            ),
        ),
        ("WebhookPlayback", playback(Vec::new())),
        (
            "WebhookPlayVolume",
            playback(vec![("volume", t("integer"))]),
        ),
        (
            "WebhookRecording",
            object(
                vec![
                    ("room_id", t("string")),
                    ("recording_id", t("string")),
                    (
                        "status",
                        one_of_or_null(&["initiating", "recording", "paused", "stopping", "ended"]),
                    ),
                    ("format", or_null("string")),
                    ("duration_ms", or_null("integer")),
                    ("error", or_null("string")),
                ],
                Vec::new(),
            ),
        ),
        (
            "WebhookRecordingReady",
            object(
                vec![
                    ("room_id", t("string")),
                    ("recording_id", t("string")),
                    ("status", one_of(&["ready"])),
                    ("storage", one_of(&["s3"])),
                    ("size_bytes", or_null("integer")),
                    ("duration_ms", or_null("integer")),
                    ("sha256", or_null("string")),
                    ("url", or_null("string")),
                    ("url_expires_at", t("string")),
                ],
                vec![(
                    "parts",
                    json!({
                        "type": "array",
                        "description": "A recording made across a room's move: one part per \
                            node, in order.",
                        "items": {
                            "type": "object",
                            "properties": {
                                "part": { "type": "integer" },
                                "node": { "type": "string" },
                                "size_bytes": { "type": ["integer", "null"] },
                                "sha256": { "type": ["string", "null"] },
                                "url": { "type": "string" },
                            },
                            "required": ["part", "node", "size_bytes", "sha256", "url"],
                            "additionalProperties": false,
                        },
                    }),
                )],
            ),
        ),
        (
            "WebhookMigrated",
            object(
                vec![
                    ("room_id", t("string")),
                    ("from_node", t("string")),
                    ("to_node", t("string")),
                    ("members", t("integer")),
                ],
                Vec::new(),
            ),
        ),
        (
            "WebhookLock",
            object(
                vec![("room_id", t("string")), ("locked", t("boolean"))],
                Vec::new(),
            ),
        ),
        (
            "WebhookStream",
            object(
                vec![
                    ("room_id", t("string")),
                    ("stream_id", t("string")),
                    ("url", t("string")),
                    ("track", one_of(&["room", "member"])),
                    ("session", or_null("string")),
                    ("protocol", one_of(&["twilio", "l16"])),
                    ("sample_rate", t("integer")),
                    ("bidirectional", t("boolean")),
                    (
                        "status",
                        one_of(&["starting", "streaming", "stopped", "failed"]),
                    ),
                    ("reason", or_null("string")),
                    ("error", or_null("string")),
                    ("connections", t("integer")),
                    ("kind", one_of(&["server", "listen"])),
                ],
                Vec::new(),
            ),
        ),
        (
            "WebhookMetadataUpdated",
            object(
                vec![
                    ("room_id", t("string")),
                    ("uuid", or_null("string")),
                    ("metadata", or_null("object")),
                ],
                member_keys,
            ),
        ),
    ]
}

/// The `webhooks` object: one POST per kind, its body the envelope with that `type` and data.
pub fn webhooks() -> Value {
    let mut out = Map::new();
    for kind in KINDS {
        let (what, data) = entry(kind);
        let name = kind.as_str();
        out.insert(
            name.to_owned(),
            json!({
                "post": {
                    "operationId": format!("webhook_{}", name.replace('.', "_")),
                    "summary": name,
                    "description": format!(
                        "{what} Delivered to the application's `webhook_url`, signed, in the \
                         room's order, at least once (retried, then dead-lettered)."
                    ),
                    "parameters": [
                        { "name": "webhook-id", "in": "header", "required": true,
                          "schema": { "type": "string" },
                          "description": "The envelope's `id`: the same on every retry." },
                        { "name": "webhook-timestamp", "in": "header", "required": true,
                          "schema": { "type": "string" },
                          "description": "Unix seconds, signed with the body." },
                        { "name": "webhook-signature", "in": "header", "required": true,
                          "schema": { "type": "string" },
                          "description": "`v1,<base64 HMAC-SHA256 of id.timestamp.body>`, one \
                              per configured secret, space-separated." },
                    ],
                    "requestBody": {
                        "required": true,
                        "content": { "application/json": { "schema": {
                            "allOf": [
                                { "$ref": "#/components/schemas/WebhookEnvelope" },
                                {
                                    "type": "object",
                                    "properties": {
                                        "type": { "type": "string", "enum": [name] },
                                        "data": { "$ref": format!("#/components/schemas/{data}") },
                                    },
                                },
                            ],
                        } } },
                    },
                    "responses": {
                        "2XX": { "description": "Received. Any other answer (or none in the \
                            configured timeout) is retried." },
                    },
                },
            }),
        );
    }
    Value::Object(out)
}

/// Adds the webhooks and their schemas to a serialized document.
pub fn add_to(doc: &mut Value) {
    if let Some(known) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for (name, schema) in schemas() {
            known.insert(name.to_owned(), schema);
        }
        // In name order, as the rest of the document's schemas.
        let mut sorted: Vec<(String, Value)> = std::mem::take(known).into_iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        known.extend(sorted);
    }
    if let Some(root) = doc.as_object_mut() {
        root.insert("webhooks".into(), webhooks());
    }
}
